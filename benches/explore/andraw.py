"""Incident-style decision check: smoothed decision alone vs smoothed AND the
sample's own (raw) score above the threshold, on the SMD test halves.

    python3 andraw.py
"""
import numpy as np, msel
from load import load, M
from harness import ap_f1, prf, evr
R=[]
for m in M:
    tr,te,y=load(m)
    s0,s1=msel.raw_scores(tr,[tr,te],5,10)
    e0,e1=msel.ew(s0,0.1),msel.ew(s1,0.1)
    t=np.quantile(e0,.99)
    a=prf(e1>t,y); b=prf((e1>t)&(s1>t),y)
    # score variant: min(raw, smoothed) for ranking
    ap1=ap_f1(e1,y)[1]; ap2=ap_f1(np.minimum(e1,s1),y)[1]
    R.append((a[2],b[2],ap1,ap2,evr(e1>t,y),evr((e1>t)&(s1>t),y)))
    print(m,'F1 ew %.3f and-raw %.3f | AP ew %.3f min %.3f | evR %.3f %.3f'%R[-1])
print('mean F1 ew %.3f and-raw %.3f | AP ew %.3f min %.3f | evR %.3f %.3f'%tuple(np.mean(R,0)))
