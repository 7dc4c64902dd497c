import numpy as np
from load import load, M
def ap_f1(score,y):
    order=np.argsort(-score,kind='mergesort'); s=score[order]; yy=y[order]
    tp=np.cumsum(yy); fp=np.cumsum(1-yy)
    last=np.r_[np.flatnonzero(np.diff(s)),len(s)-1]
    tp=tp[last].astype(float); fp=fp[last].astype(float); pos=y.sum()
    prec=tp/(tp+fp); rec=tp/pos
    f1=np.where(prec+rec>0,2*prec*rec/np.maximum(prec+rec,1e-300),0)
    return f1.max(), float(np.sum(np.diff(np.r_[0.0,rec])*prec))
def prf(dec,y):
    tp=np.sum(dec&(y==1)); fp=np.sum(dec&(y==0)); fn=np.sum((~dec)&(y==1))
    p=tp/(tp+fp) if tp+fp else 0; r=tp/(tp+fn) if tp+fn else 0
    return p,r,(2*p*r/(p+r) if p+r else 0)
def evr(dec,y):
    d=np.diff(np.r_[0,y,0]); st=np.flatnonzero(d==1); en=np.flatnonzero(d==-1)
    return np.mean([dec[a:b].any() for a,b in zip(st,en)])
def ewma(s,a):
    if a>=1: return s
    out=np.empty_like(s); acc=s[0]
    for i in range(len(s)):
        acc=a*s[i]+(1-a)*acc if i else s[0]; out[i]=acc
    return out
def run(method, thr_fns, machines=M, verbose=False):
    res={k:[] for k in thr_fns}
    aps=[];bests=[]
    for m in machines:
        tr,te,y=load(m)
        str_,ste=method(tr,te)
        b,ap=ap_f1(ste,y); aps.append(ap); bests.append(b)
        for k,f in thr_fns.items():
            t=f(str_); dec=ste>t
            p,r,f1=prf(dec,y); res[k].append((p,r,f1,evr(dec,y)))
            if verbose: print(m,k,'P%.3f R%.3f F1%.3f AP%.3f best%.3f'%(p,r,f1,ap,b))
    out={'AP':np.mean(aps),'bestF1':np.mean(bests)}
    for k in res:
        a=np.array(res[k]); out[k]=tuple(np.round(a.mean(0),3))
    return out
