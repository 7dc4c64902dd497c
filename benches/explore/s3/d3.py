import numpy as np, sys
from sklearn.cluster import KMeans
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d1 import ew
def res(col):
    u=np.unique(col); 
    return np.min(np.diff(u)) if len(u)>1 else 0
def scores(tr,xs,k=5,cap=10,c=1.0,fl=0.01):
    mu=tr.mean(0); sd=tr.std(0); rng=tr.max(0)-tr.min(0)
    rs=np.array([res(tr[:,j]) for j in range(tr.shape[1])])
    sg=np.maximum(np.maximum(sd,fl*rng),np.maximum(c*rs,1e-12)); ok=rng>0
    z=lambda x:((x-mu)/sg)[:,ok]
    cent=KMeans(k,n_init=2,random_state=0,max_iter=100).fit(z(tr)).cluster_centers_
    out=[]
    for x in xs:
        Z=z(x); d=((Z[:,None,:]-cent[None])**2); i=d.sum(2).argmin(1)
        out.append(np.minimum(d[np.arange(len(Z)),i],cap**2).sum(1))
    return out
if __name__=='__main__':
    c=float(sys.argv[1]); k=int(sys.argv[2]) if len(sys.argv)>2 else 5; a=0.1; q=.99
    R=[]
    for m in M:
        tr,te,y=load(m)
        s0,s1=scores(tr,[tr,te],k=k,c=c)
        s0,s1=ew(s0,a),ew(s1,a)
        b,ap=ap_f1(s1,y); dec=s1>np.quantile(s0,q); p,r,f1=prf(dec,y)
        R.append((p,r,f1,ap,b,evr(dec,y)))
        if '-v' in sys.argv: print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%R[-1],flush=True)
    print('c',c,'k',k,'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
