import numpy as np, gzip, os
D='/work/shared/datasets/smd'
M=sorted(f[:-7] for f in os.listdir(D+'/train'))
def load(m):
    p=f'/tmp/explore/{m}.npz'
    if os.path.exists(p):
        z=np.load(p); return z['tr'],z['te'],z['y']
    tr=np.loadtxt(gzip.open(f'{D}/train/{m}.txt.gz'),delimiter=',')
    te=np.loadtxt(gzip.open(f'{D}/test/{m}.txt.gz'),delimiter=',')
    y=np.loadtxt(f'{D}/test_label/{m}.txt').astype(int)
    np.savez(p,tr=tr,te=te,y=y); return tr,te,y
if __name__=='__main__':
    for m in M:
        tr,te,y=load(m); print(m,tr.shape,te.shape,y.mean())
