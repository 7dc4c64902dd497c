import numpy as np, sys
from harness import *
def ewm(a):
    return lambda s: np.apply_along_axis(lambda c: ewma(c,a),0,s) if s.ndim==2 else ewma(s,a)
def robust(tr,te,floor=1e-3,kind='iqr'):
    med=np.median(tr,0)
    if kind=='iqr': sc=(np.quantile(tr,.75,0)-np.quantile(tr,.25,0))/1.349
    elif kind=='std': sc=tr.std(0)
    elif kind=='range': sc=(np.quantile(tr,.999,0)-np.quantile(tr,.001,0))
    sc=np.maximum(sc,floor)
    return (tr-med)/sc,(te-med)/sc
def make(kind='iqr',floor=1e-3,agg='sum2',cap=1e9,alpha=1.0):
    def f(tr,te):
        a,b=robust(tr,te,floor,kind)
        const=tr.std(0)<1e-9
        a[:,const]=0;b[:,const]=0
        def sc(z):
            t=np.minimum(np.abs(z),cap)
            if agg=='sum2': s=(t**2).sum(1)
            elif agg=='sum1': s=t.sum(1)
            elif agg=='max': s=t.max(1)
            return ewma(s,alpha)
        return sc(a),sc(b)
    return f
thr={'q99':lambda s:np.quantile(s,.99),'q995':lambda s:np.quantile(s,.995),'q999':lambda s:np.quantile(s,.999),'max':lambda s:s.max()}
for kind in ['iqr','std','range']:
  for floor in [1e-3,1e-2]:
    for agg in ['sum2','sum1','max']:
      for alpha in [1.0,0.3]:
        print(kind,floor,agg,alpha,run(make(kind,floor,agg,alpha=alpha),thr),flush=True)
