import numpy as np, sys
from scipy.stats import norm
from sklearn.cluster import KMeans
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d1 import ew
def rankz(tr, tailscale):
    n=len(tr); S=np.sort(tr,0); ok=(S[-1]-S[0])>0
    sd=tr.std(0); rng=S[-1]-S[0]; sg=np.maximum(np.maximum(sd,0.01*rng),1e-12)
    def f(x):
        out=np.empty((len(x),ok.sum()))
        for jj,j in enumerate(np.flatnonzero(ok)):
            lo=np.searchsorted(S[:,j],x[:,j],'left'); hi=np.searchsorted(S[:,j],x[:,j],'right')
            u=(lo+hi)/2/n; u=np.clip(u,0.5/n,1-0.5/n); z=norm.ppf(u)
            # beyond the training range: continue linearly in std units
            z=np.where(x[:,j]>S[-1,j], norm.ppf(1-0.5/n)+tailscale*(x[:,j]-S[-1,j])/sg[j], z)
            z=np.where(x[:,j]<S[0,j], norm.ppf(0.5/n)-tailscale*(S[0,j]-x[:,j])/sg[j], z)
            out[:,jj]=z
        return out
    return f
def scores(tr,xs,k=5,cap=10,ts=1.0):
    z=rankz(tr,ts); Z0=z(tr); cent=KMeans(k,n_init=2,random_state=0).fit(Z0).cluster_centers_
    out=[]
    for x in xs:
        Z=z(x) if x is not tr else Z0; d=((Z[:,None,:]-cent[None])**2); i=d.sum(2).argmin(1)
        out.append(np.minimum(d[np.arange(len(Z)),i],cap*cap).sum(1))
    return out
if __name__=='__main__':
    k=int(sys.argv[1]); cap=float(sys.argv[2]); ts=float(sys.argv[3]); a=0.1;q=.99
    R=[]
    for m in M:
        tr,te,y=load(m); s0,s1=[ew(s,a) for s in scores(tr,[tr,te],k,cap,ts)]
        b,ap=ap_f1(s1,y); dec=s1>np.quantile(s0,q); p,r,f1=prf(dec,y)
        R.append((p,r,f1,ap,b,evr(dec,y)))
        if '-v' in sys.argv: print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%R[-1],flush=True)
    print(sys.argv[1:],'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
