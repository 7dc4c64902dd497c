import numpy as np, sys, pandas as pd
from sklearn.cluster import KMeans
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d1 import ew, prep
def resid(tr,xs,k=5):
    mu,sg,ok=prep(tr)
    z=lambda x:((x-mu)/sg)[:,ok]
    cent=KMeans(k,n_init=2,random_state=0,max_iter=100).fit(z(tr)).cluster_centers_
    out=[]
    for x in xs:
        Z=z(x); d=((Z[:,None,:]-cent[None])**2); i=d.sum(2).argmin(1)
        out.append(Z-cent[i])
    return out
def drift(R,W,L,minp,sig):
    df=pd.DataFrame(R)
    D=df.rolling(W,min_periods=minp).median().shift(L).fillna(0).values
    D=np.where(np.abs(D)>sig,D,0)
    return D
if __name__=='__main__':
    W,L,sig=int(sys.argv[1]),int(sys.argv[2]),float(sys.argv[3]); cap=10;a=0.1
    Rs=[]
    for m in M:
        tr,te,y=load(m)
        r0,r1=resid(tr,[tr,te])
        full=np.vstack([r0,r1])
        if W>0:
            D=drift(full,W,L,W//2,sig); full=full-D
        T=np.minimum(full**2,cap*cap).sum(1); T=ew(T,a)
        s0,s1=T[:len(r0)],T[len(r0):]
        b,ap=ap_f1(s1,y); dec=s1>np.quantile(s0,.99); p,r,f1=prf(dec,y)
        Rs.append((p,r,f1,ap,b,evr(dec,y)))
        if '-v' in sys.argv: print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%Rs[-1],flush=True)
    print(W,L,sig,'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(Rs,0)))
