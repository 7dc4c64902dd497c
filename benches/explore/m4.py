import numpy as np,sys
from m2 import ew, scale, thr, show, run, load, M
def tails(tr,x):
    # two-sided ECDF tail -log prob per feature
    n=len(tr); out=np.zeros_like(x)
    for j in range(tr.shape[1]):
        s=np.sort(tr[:,j])
        if s[0]==s[-1]: continue
        le=np.searchsorted(s,x[:,j],'right')   # count <= x
        ge=n-np.searchsorted(s,x[:,j],'left')   # count >= x
        pl=(le+1)/(n+2); pr=(ge+1)/(n+2)
        out[:,j]=-np.log(np.minimum(np.minimum(pl,pr)*2,1))
    return out
def ecod(alpha=1.0,agg='sum',extra=0.0,floor=1e-2):
    def f(tr,te):
        a=tails(tr,tr); b=tails(tr,te)
        if extra>0:
            za,zb=scale(tr,tr,'std',floor)[0],scale(tr,te,'std',floor)[1]
            lo=tr.min(0);hi=tr.max(0);sd=np.maximum(tr.std(0),floor)
            def beyond(x): return np.maximum(np.maximum(x-hi,lo-x),0)/sd
            a=a+extra*beyond(tr); b=b+extra*beyond(te)
        if agg=='sum': return ew(a.sum(1),alpha),ew(b.sum(1),alpha)
        return ew(a.max(1),alpha),ew(b.max(1),alpha)
    return f
def clipz(kind='std',floor=1e-2,cap=5,alpha=0.3,p=2):
    def f(tr,te):
        a,b=scale(tr,te,kind,floor)
        g=lambda z: ew((np.minimum(np.abs(z),cap)**p).sum(1),alpha)
        return g(a),g(b)
    return f
if __name__=="__main__":
  exps=eval(sys.argv[1])
  for name,f in exps: show(name,run(f,thr))
