import numpy as np, sys
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d3 import scores
from d1 import ew
every=int(sys.argv[1]); window=int(sys.argv[2])
R=[]
for m in M:
    tr,te,y=load(m); full=np.vstack([tr,te]); n0=len(tr)
    s1=np.empty(len(te)); dec=np.zeros(len(te),bool); state=None
    for st in range(0,len(te),every):
        hist=full[max(0,n0+st-window):n0+st]
        sh,sc=scores(hist,[hist,full[max(0,n0+st-50):n0+st+every]],c=0)
        sh=ew(sh,.1); t=np.quantile(sh,.99)
        sc=ew(sc,.1)[min(50,n0+st):]   # 50 rows of warm context for the EWMA
        s1[st:st+every]=sc/t
    b,ap=ap_f1(s1,y); dec=s1>1; p,r,f1=prf(dec,y)
    R.append((p,r,f1,ap,b,evr(dec,y)))
    print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%R[-1],flush=True)
print(sys.argv[1:],'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
