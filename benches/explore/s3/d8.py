import numpy as np, sys
from sklearn.mixture import GaussianMixture
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d1 import ew
from d6 import zf
def gmm(tr,xs,k=5,cap=10,vfloor=0.05):
    z=zf(tr); Z0=z(tr)
    g=GaussianMixture(k,covariance_type='diag',random_state=0,reg_covar=vfloor).fit(Z0[::2])
    mu=g.means_; var=g.covariances_
    out=[]
    for x in xs:
        Z=z(x); d=(Z[:,None,:]-mu[None])**2/var[None]
        ll=-0.5*(d.sum(2)+np.log(var).sum(1)[None])+np.log(g.weights_)[None]
        i=ll.argmax(1); out.append(np.minimum(d[np.arange(len(Z)),i],cap*cap).sum(1))
    return out
def km(tr,xs,k=5,cap=10):
    z=zf(tr); Z0=z(tr); cent=KMeans(k,n_init=2,random_state=0).fit(Z0).cluster_centers_
    out=[]
    for x in xs:
        Z=z(x); d=((Z[:,None,:]-cent[None])**2); i=d.sum(2).argmin(1)
        out.append(np.minimum(d[np.arange(len(Z)),i],cap*cap).sum(1))
    return out
def pca(tr,xs,v=0.9,cap=10):
    z=zf(tr); Z0=z(tr); p=PCA(v).fit(Z0)
    return [np.minimum((z(x)-p.inverse_transform(p.transform(z(x))))**2,cap*cap).sum(1) for x in xs]
if __name__=='__main__':
    which=sys.argv[1]; a=0.1; q=.99
    R=[]
    for m in M:
        tr,te,y=load(m)
        if which=='gmm': s0,s1=gmm(tr,[tr,te],k=int(sys.argv[2]),vfloor=float(sys.argv[3]))
        elif which=='ens':
            A=[ew(s,a) for s in km(tr,[tr,te])]; B=[ew(s,a) for s in pca(tr,[tr,te])]
            ta,tb=np.quantile(A[0],q),np.quantile(B[0],q)
            s0,s1=A[0]/ta+B[0]/tb, A[1]/ta+B[1]/tb
        s0,s1=(ew(s0,a),ew(s1,a)) if which!='ens' else (s0,s1)
        b,ap=ap_f1(s1,y); dec=s1>np.quantile(s0,q); p,r,f1=prf(dec,y)
        R.append((p,r,f1,ap,b,evr(dec,y)))
        if '-v' in sys.argv: print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%R[-1],flush=True)
    print(sys.argv[1:],'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
