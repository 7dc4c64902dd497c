import numpy as np, sys
from sklearn.cluster import KMeans
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d1 import ew
from d6 import zf
def terms(tr,xs,k=5,cap=10):
    z=zf(tr); Z0=z(tr); cent=KMeans(k,n_init=2,random_state=0).fit(Z0).cluster_centers_
    out=[]
    for x in xs:
        Z=z(x); d=((Z[:,None,:]-cent[None])**2); i=d.sum(2).argmin(1)
        out.append(np.minimum(d[np.arange(len(Z)),i],cap*cap))
    return out
if __name__=='__main__':
    top=int(sys.argv[1]); a=0.1;q=.99
    R=[]
    for m in M:
        tr,te,y=load(m); T0,T1=[ew(T,a) for T in terms(tr,[tr,te])]
        s0=-np.sort(-T0,1)[:,:top].sum(1); s1=-np.sort(-T1,1)[:,:top].sum(1)
        b,ap=ap_f1(s1,y); dec=s1>np.quantile(s0,q); p,r,f1=prf(dec,y)
        R.append((p,r,f1,ap,b,evr(dec,y)))
        if '-v' in sys.argv: print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%R[-1],flush=True)
    print(sys.argv[1:],'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
