import numpy as np
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import ap_f1, prf
from d3 import scores
from d1 import ew
for m in M:
    tr,te,y=load(m); s0,s1=scores(tr,[tr,te],c=0); s0,s1=ew(s0,.1),ew(s1,.1)
    # oracle threshold
    cand=np.quantile(s1,np.linspace(0.5,0.999,400)); f=[prf(s1>t,y)[2] for t in cand]; t=cand[int(np.argmax(f))]
    print(m,'q99 %.1f max %.1f oracle %.1f (train quantile %.4f, ratio to max %.2f) F1 %.3f; test normal median %.1f train median %.1f'%(np.quantile(s0,.99),s0.max(),t,(s0<t).mean(),t/s0.max(),max(f),np.median(s1[y==0]),np.median(s0)))
