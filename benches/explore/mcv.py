"""Leave-one-machine-out estimate of the hyper-parameter choice.

The defaults in models/default.json are one global set chosen on the mean over SMD
machines (never per machine). To say how well that *procedure* does on a host it has
not seen, each machine is held out in turn: the set with the best mean (F1 + AUPRC)
over the other 13 is chosen and scored on the held-out machine. Thresholds always come
from the machine's own train half.

    python3 mcv.py
"""
import numpy as np, itertools, msel
from load import load, M
from harness import ap_f1, prf

GRID = list(itertools.product([3, 5, 10, 20], [5, 10, 30], [0.05, 0.1, 0.2, 0.3], ['q99', 'q995', 'q999']))

def main():
    res = {}  # (cfg) -> [(f1, ap) per machine]
    for m in M:
        tr, te, y = load(m)
        for k, cap in itertools.product([3, 5, 10, 20], [5, 10, 30]):
            s0, s1 = msel.raw_scores(tr, [tr, te], k, cap)
            for a in [0.05, 0.1, 0.2, 0.3]:
                e0, e1 = msel.ew(s0, a), msel.ew(s1, a)
                ap = ap_f1(e1, y)[1]
                for tn in ['q99', 'q995', 'q999']:
                    f1 = prf(e1 > msel.THR[tn](e0), y)[2]
                    res.setdefault((k, cap, a, tn), []).append((f1, ap))
        print(m, 'scored', flush=True)
    arr = {c: np.array(v) for c, v in res.items()}
    out = []
    for i, m in enumerate(M):
        best = max(GRID, key=lambda c: np.delete(arr[c], i, 0).sum(1).mean())
        out.append(arr[best][i]); print(m, 'chosen', best, 'F1 %.3f AUPRC %.3f' % tuple(arr[best][i]))
    o = np.array(out)
    print('leave-one-machine-out mean: F1 %.3f AUPRC %.3f' % tuple(o.mean(0)))
    allbest = max(GRID, key=lambda c: arr[c].sum(1).mean())
    print('chosen on all 14:', allbest, 'F1 %.3f AUPRC %.3f' % tuple(arr[allbest].mean(0)))

if __name__ == '__main__':
    main()
