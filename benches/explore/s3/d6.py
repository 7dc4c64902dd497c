import numpy as np, sys
from sklearn.neighbors import NearestNeighbors
from sklearn.cluster import KMeans
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d1 import ew
def zf(tr):
    mu=tr.mean(0); sd=tr.std(0); rng=tr.max(0)-tr.min(0)
    sg=np.maximum(np.maximum(sd,0.01*rng),1e-12); ok=rng>0
    return lambda x:((x-mu)/sg)[:,ok]
def knn(tr,xs,n=4000,cap=10,k=1):
    z=zf(tr); Z0=z(tr); idx=np.linspace(0,len(Z0)-1,min(n,len(Z0))).astype(int)
    ref=Z0[idx]; nn=NearestNeighbors(n_neighbors=k+1).fit(ref)
    out=[]
    for j,x in enumerate(xs):
        Z=z(x); d,i=nn.kneighbors(Z)
        # leave-one-out for train rows that are in ref: use 2nd neighbour when distance 0
        if j==0: ii=np.where(d[:,0]<1e-12,i[:,1],i[:,0])
        else: ii=i[:,0]
        T=np.minimum((Z-ref[ii])**2,cap*cap).sum(1); out.append(T)
    return out
def pernorm(tr,xs,k=5,cap=10,qn=0.5):
    z=zf(tr); Z0=z(tr)
    cent=KMeans(k,n_init=2,random_state=0).fit(Z0).cluster_centers_
    def terms(Z):
        d=((Z[:,None,:]-cent[None])**2); i=d.sum(2).argmin(1); return np.minimum(d[np.arange(len(Z)),i],cap*cap)
    T0=terms(Z0); w=1/np.maximum(np.quantile(T0,qn,axis=0) if qn<1 else T0.mean(0),1e-3)
    return [terms(z(x))*w for x in xs]
if __name__=='__main__':
    which=sys.argv[1]; a=0.1; q=.99
    R=[]
    for m in M:
        tr,te,y=load(m)
        if which=='knn': s0,s1=knn(tr,[tr,te],n=int(sys.argv[2]))
        else:
            T0,T1=pernorm(tr,[tr,te],qn=float(sys.argv[2])); s0,s1=T0.sum(1),T1.sum(1)
        s0,s1=ew(s0,a),ew(s1,a)
        b,ap=ap_f1(s1,y); dec=s1>np.quantile(s0,q); p,r,f1=prf(dec,y)
        R.append((p,r,f1,ap,b,evr(dec,y)))
        if '-v' in sys.argv: print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%R[-1],flush=True)
    print(sys.argv[1:],'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
