import numpy as np, sys, pandas as pd
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d3 import scores
from d1 import ew
def norm(s0,s1,W,L,stat='median'):
    full=np.r_[s0,s1]; n0=len(s0)
    base=np.median(s0)
    r=pd.Series(full).rolling(W,min_periods=1)
    lev=(r.median() if stat=='median' else r.quantile(float(stat))).shift(L).bfill().values
    ref=np.quantile(s0,0.5) if stat=='median' else np.quantile(s0,float(stat))
    f=full/np.maximum(lev/ref,1.0)
    return f[:n0],f[n0:]
if __name__=='__main__':
    W,L,stat=int(sys.argv[1]),int(sys.argv[2]),sys.argv[3]; q=.99
    R=[]
    for m in M:
        tr,te,y=load(m); s0,s1=scores(tr,[tr,te],c=0); s0,s1=ew(s0,.1),ew(s1,.1)
        if W>0: s0,s1=norm(s0,s1,W,L,stat)
        b,ap=ap_f1(s1,y); dec=s1>np.quantile(s0,q); p,r,f1=prf(dec,y)
        R.append((p,r,f1,ap,b,evr(dec,y)))
        if '-v' in sys.argv: print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%R[-1],flush=True)
    print(W,L,stat,'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
