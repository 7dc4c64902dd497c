import numpy as np, sys
from scipy.signal import lfilter
from sklearn.decomposition import PCA
from sklearn.cluster import KMeans
import harness
from harness import *
def ew(s,a):
    if a>=1: return s
    zi=np.array([(1-a)*s[0]])
    return lfilter([a],[1,-(1-a)],s,zi=zi)[0] if s.ndim==1 else lfilter([a],[1,-(1-a)],s,axis=0,zi=((1-a)*s[:1]))[0]
def scale(tr,te,kind,floor):
    if kind=='std': mu=tr.mean(0); sc=tr.std(0)
    else: mu=np.median(tr,0); sc=(np.quantile(tr,.75,0)-np.quantile(tr,.25,0))/1.349
    sc=np.maximum(sc,floor); const=tr.std(0)<1e-9
    a=(tr-mu)/sc; b=(te-mu)/sc; a[:,const]=0; b[:,const]=0
    return a,b
def pca_m(kind='std',floor=1e-2,var=0.9,alpha=1.0,cap=None,smooth_first=False):
    def f(tr,te):
        a,b=scale(tr,te,kind,floor)
        if smooth_first: a=ew(a,alpha); b=ew(b,alpha)
        p=PCA(n_components=var,svd_solver='full').fit(a)
        def sc(z):
            r=z-p.inverse_transform(p.transform(z)); t=r**2
            if cap: t=np.minimum(t,cap)
            s=t.sum(1)
            return s if smooth_first else ew(s,alpha)
        return sc(a),sc(b)
    return f
def km_m(kind='std',floor=1e-2,k=20,alpha=1.0):
    def f(tr,te):
        a,b=scale(tr,te,kind,floor)
        km=KMeans(k,n_init=2,random_state=0).fit(a)
        def sc(z): return ew(km.transform(z).min(1)**2,alpha)
        return sc(a),sc(b)
    return f
def raw_m(kind='std',floor=1e-2,alpha=1.0,p=2):
    def f(tr,te):
        a,b=scale(tr,te,kind,floor)
        return ew((np.abs(a)**p).sum(1),alpha),ew((np.abs(b)**p).sum(1),alpha)
    return f
thr={'q99':lambda s:np.quantile(s,.99),'q995':lambda s:np.quantile(s,.995),'q999':lambda s:np.quantile(s,.999)}
def show(name,r):
    thr=globals()['thr']
    print('%-40s AP %.3f best %.3f | '%(name,r['AP'],r['bestF1'])+' '.join('%s %.3f'%(k,r[k][2]) for k in thr),flush=True)
if __name__=="__main__":
  exps=eval(sys.argv[1])
  for name,f in exps: show(name,run(f,thr))
