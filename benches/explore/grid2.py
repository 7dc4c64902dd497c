import numpy as np, itertools, msel, sys
from load import load, M
from harness import ap_f1, prf
data={}
for m in M:
    tr,_,_=load(m); cut=int(0.7*len(tr))
    rng=np.random.default_rng(sum(map(ord,m)))
    v,y=msel.inject(tr[:cut],tr[cut:],rng); data[m]=(tr[:cut],v,y)
rows=[]
for k,cap in itertools.product([int(x) for x in sys.argv[1].split(',')],[5]):
    per={m:msel.raw_scores(f,[f,v],k,cap) for m,(f,v,y) in data.items()}
    for a in [0.3,0.5,0.7]:
        sm={m:(msel.ew(s0,a),msel.ew(s1,a)) for m,(s0,s1) in per.items()}
        aps=[ap_f1(sm[m][1],data[m][2])[1] for m in M]
        for tn in ['q99','q995']:
            tf=msel.THR[tn]
            f1s=[prf(sm[m][1]>tf(sm[m][0]),data[m][2])[2] for m in M]
            rows.append((np.mean(f1s),np.mean(aps),k,cap,a,tn))
rows.sort(key=lambda r:-(r[0]+r[1]))
for r in rows[:8]: print('%.3f %.3f %2d %3d %.2f %s'%r)
