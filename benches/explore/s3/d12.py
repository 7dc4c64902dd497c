import numpy as np, sys
from sklearn.cluster import KMeans
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d1 import ew
from d6 import zf
def scores(tr,xs,k=5,cap=10,w=1.0,lag=1):
    z=zf(tr); Z0=z(tr); cent=KMeans(k,n_init=2,random_state=0).fit(Z0).cluster_centers_
    D0=Z0[lag:]-Z0[:-lag]; dsd=np.maximum(D0.std(0),1e-3)
    out=[]
    for x in xs:
        Z=z(x); d=((Z[:,None,:]-cent[None])**2); i=d.sum(2).argmin(1)
        T=np.minimum(d[np.arange(len(Z)),i],cap*cap)
        D=np.zeros_like(Z); D[lag:]=(Z[lag:]-Z[:-lag])/dsd
        T2=np.minimum(D*D,cap*cap)
        out.append(T.sum(1)+w*T2.sum(1))
    return out
if __name__=='__main__':
    w=float(sys.argv[1]); lag=int(sys.argv[2]); a=0.1;q=.99
    R=[]
    for m in M:
        tr,te,y=load(m); s0,s1=[ew(s,a) for s in scores(tr,[tr,te],w=w,lag=lag)]
        b,ap=ap_f1(s1,y); dec=s1>np.quantile(s0,q); p,r,f1=prf(dec,y)
        R.append((p,r,f1,ap,b,evr(dec,y)))
    print(sys.argv[1:],'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
