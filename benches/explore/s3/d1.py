import numpy as np, sys
from scipy.signal import lfilter
from sklearn.cluster import KMeans
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
def ew(x,a):
    zi=(1-a)*x[0:1] if x.ndim==1 else None
    y,_=lfilter([a],[1,-(1-a)],x,axis=0,zi=np.array([(1-a)*x[0]]) if x.ndim==1 else (1-a)*x[0:1])
    return y
def prep(tr):
    mu=tr.mean(0); sd=tr.std(0); rng=tr.max(0)-tr.min(0)
    sg=np.maximum(sd,np.maximum(0.01*rng,1e-12)); ok=rng>0
    return mu,sg,ok
def scores(tr,xs,k=5,cap=10,beta=0.0,clipd=None):
    mu,sg,ok=prep(tr)
    z=lambda x:((x-mu)/sg)[:,ok]
    cent=KMeans(k,n_init=2,random_state=0,max_iter=100).fit(z(tr)).cluster_centers_
    out=[]
    D=np.zeros(ok.sum())
    for x in xs:
        Z=z(x); T=np.empty(len(Z))
        if beta==0:
            d=((Z[:,None,:]-cent[None])**2); i=d.sum(2).argmin(1)
            T=np.minimum(d[np.arange(len(Z)),i],cap**2).sum(1)
        else:
            for t in range(len(Z)):
                zz=Z[t]-D
                dd=((zz[None]-cent)**2); i=dd.sum(1).argmin(); r=zz-cent[i]
                T[t]=np.minimum(r*r,cap*cap).sum()
                D=D+beta*np.clip(r,-cap,cap)
        out.append(T)
    return out
if __name__=='__main__':
    beta=float(sys.argv[1]); a=0.1
    R=[]
    for m in M:
        tr,te,y=load(m)
        s0,s1=scores(tr,[tr,te],beta=beta)
        s0,s1=ew(s0,a),ew(s1,a)
        b,ap=ap_f1(s1,y); p,r,f1=prf(s1>np.quantile(s0,.99),y)
        R.append((p,r,f1,ap,b,evr(s1>np.quantile(s0,.99),y))); print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%R[-1],flush=True)
    print('beta',beta,'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
