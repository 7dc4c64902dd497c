import numpy as np, sys
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf, evr
from d3 import scores
from d1 import ew
frac=float(sys.argv[1]); q=float(sys.argv[2]); mode=sys.argv[3]
R=[]
for m in M:
    tr,te,y=load(m); n=int(len(tr)*frac)
    a,b_=tr[:n],tr[n:]
    sa,sb,st=[ew(s,.1) for s in scores(a,[a,b_,te],c=0)]
    if mode=='holdout':  # model on 70 %, threshold on the held-out 30 %
        s1=st; t=np.quantile(sb,q)
    else:  # model on all, threshold scaled by the out/in-sample ratio
        s0,s1=[ew(s,.1) for s in scores(tr,[tr,te],c=0)]
        t=np.quantile(s0,q)*max(1.0,np.quantile(sb,q)/np.quantile(sa,q))
    b,ap=ap_f1(s1,y); dec=s1>t; p,r,f1=prf(dec,y)
    R.append((p,r,f1,ap,b,evr(dec,y)))
    if '-v' in sys.argv: print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%R[-1],flush=True)
print(sys.argv[1:4],'mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f evr %.2f'%tuple(np.mean(R,0)))
