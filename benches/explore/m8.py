import numpy as np,sys
sys.argv=['x','[]']
import m2
from m5 import show, run, ew
from sklearn.cluster import KMeans
m2.thr={'q98':lambda s:np.quantile(s,.98),'q99':lambda s:np.quantile(s,.99),'q995':lambda s:np.quantile(s,.995)}
def km(k=5,alpha=0.1,floor=1e-2,cap=30,rel=False):
    def f(tr,te):
        mu=tr.mean(0); sd=tr.std(0)
        fl=floor*(tr.max(0)-tr.min(0)) if rel else floor
        sg=np.maximum(sd,np.maximum(fl,1e-12)); const=sd<1e-9
        def z(x):
            q=(x-mu)/sg; q[:,const]=0; return q
        a=z(tr); cent=KMeans(k,n_init=1,random_state=0).fit(a).cluster_centers_
        def g(x):
            zz=z(x); d=((zz[:,None,:]-cent[None])**2)
            i=d.sum(2).argmin(1); t=np.minimum(d[np.arange(len(zz)),i],cap**2)
            return ew(t.sum(1),alpha)
        return g(tr),g(te)
    return f
for rel in [False,True]:
  for fl in ([1e-2] if not rel else [0.01,0.03,0.1]):
    for cap in [10,30,100]:
      show(f'km5 rel{rel} fl{fl} cap{cap}',run(km(5,0.1,fl,cap,rel),m2.thr))
