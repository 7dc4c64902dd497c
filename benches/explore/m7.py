import numpy as np,sys
from m5 import *
import m2
from sklearn.cluster import KMeans
def km(k=20,alpha=0.1,floor=1e-2,cap=30,hold=0.0):
    def f(tr,te):
        n=len(tr); cut=int(n*(1-hold)); fit=tr[:cut]
        mu=fit.mean(0); sg=np.maximum(fit.std(0),floor); const=fit.std(0)<1e-9
        def z(x):
            q=(x-mu)/sg; q[:,const]=0; return q
        a=z(fit)
        cent=KMeans(k,n_init=1,random_state=0).fit(a).cluster_centers_ if k>0 else np.zeros((1,a.shape[1]))
        def g(x):
            zz=z(x); d=((zz[:,None,:]-cent[None])**2)
            i=d.sum(2).argmin(1); t=np.minimum(d[np.arange(len(zz)),i],cap**2)
            return ew(t.sum(1),alpha)
        full=g(np.vstack([tr,te]))
        return full[cut:n] if hold>0 else full[:n], full[n:]
    return f
if __name__=="__main__":
  exps=eval(sys.argv[1])
  for name,f in exps: show(name,run(f,m2.thr))
