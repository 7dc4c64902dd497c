import numpy as np
import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..")); from load import load, M
from harness import prf
from d3 import scores
from d1 import ew
S=[]
for m in M:
    tr,te,y=load(m); s0,s1=[ew(s,.1) for s in scores(tr,[tr,te],c=0)]; S.append((s0,s1,y))
mults=[1,1.25,1.5,2,2.5,3]
F=np.array([[prf(s1>np.quantile(s0,.99)*k,y)[2] for k in mults] for s0,s1,y in S])
print('mult',mults); print('meanF1',np.round(F.mean(0),3))
# leave one machine out choice
lo=[F[i,np.argmax(np.delete(F,i,0).mean(0))] for i in range(len(M))]
print('LOMO F1',np.mean(lo))
