import numpy as np,sys
from m2 import ew, scale, show, run, load, M, pca_m
import m2
from sklearn.decomposition import PCA
def pot(s,q=1e-3,init=0.98):
    from scipy.stats import genpareto
    t=np.quantile(s,init); ex=s[s>t]-t
    if len(ex)<10 or ex.std()==0: return s.max()
    c,loc,sc=genpareto.fit(ex,floc=0)
    n=len(s); nt=len(ex); r=q*n/nt
    if abs(c)<1e-6: return t-sc*np.log(r)
    return t+sc/c*(r**(-c)-1)
thr={'q99':lambda s:np.quantile(s,.99),'q995':lambda s:np.quantile(s,.995),'2xq99':lambda s:2*np.quantile(s,.99),'pot1e-3':lambda s:pot(s,1e-3),'pot1e-4':lambda s:pot(s,1e-4)}
m2.thr=thr
def zs(floor=1e-2,alpha=0.1,p=2,kind='std'):
    def f(tr,te):
        a,b=scale(tr,te,kind,floor)
        g=lambda z: ew((np.abs(z)**p).sum(1),alpha)
        return g(a),g(b)
    return f
def combo(floor=1e-2,alpha=0.1,var=0.9,w=1.0):
    def f(tr,te):
        a,b=scale(tr,te,'std',floor)
        p=PCA(n_components=var,svd_solver='full').fit(a)
        def g(z):
            r=z-p.inverse_transform(p.transform(z))
            return ew((r**2).sum(1)+w*(z**2).sum(1),alpha)
        return g(a),g(b)
    return f
if __name__=="__main__":
  exps=eval(sys.argv[1])
  for name,f in exps: show(name,run(f,thr))
