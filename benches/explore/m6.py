import numpy as np,sys
from m5 import *
import m2
def trimstd(tr,lo=.005,hi=.995):
    ql=np.quantile(tr,lo,0); qh=np.quantile(tr,hi,0)
    c=np.clip(tr,ql,qh); return c.std(0)
def local(floor=1e-2,alpha=0.1,slow=0.01,w=1.0,wg=1.0,cap=30,trim=False):
    def f(tr,te):
        full=np.vstack([tr,te])
        base=ew(full,slow); base=np.vstack([full[:1],base[:-1]])  # prediction from past
        r=full-base; rtr=r[:len(tr)]
        sd=np.maximum(trimstd(rtr) if trim else rtr.std(0),floor)
        mu=tr.mean(0); sg=np.maximum(trimstd(tr) if trim else tr.std(0),floor)
        const=tr.std(0)<1e-9
        zl=r/sd; zg=(full-mu)/sg; zl[:,const]=0; zg[:,const]=0
        t=w*np.minimum(zl**2,cap**2)+wg*np.minimum(zg**2,cap**2)
        s=ew(t.sum(1),alpha)
        return s[:len(tr)],s[len(tr):]
    return f
if __name__=="__main__":
  exps=eval(sys.argv[1])
  for name,f in exps: show(name,run(f,m2.thr))
