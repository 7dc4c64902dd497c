import numpy as np, msel, sys
from load import load, M
from harness import ap_f1, prf, evr
k,cap,a,tn=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),sys.argv[4]
R=[]
for m in M:
    tr,te,y=load(m)
    s0,s1=msel.raw_scores(tr,[tr,te],k,cap)
    s0,s1=msel.ew(s0,a),msel.ew(s1,a)
    b,ap=ap_f1(s1,y); p,r,f1=prf(s1>msel.THR[tn](s0),y)
    R.append((p,r,f1,ap,b)); print(m,'P%.3f R%.3f F1 %.3f AP %.3f best %.3f'%R[-1])
print('mean P%.3f R%.3f F1 %.3f AP %.3f best %.3f'%tuple(np.mean(R,0)))
