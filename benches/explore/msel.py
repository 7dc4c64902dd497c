"""Hyper-parameter selection on train-only data (no test labels anywhere).

Each machine's train half is split in time: the first 70 % fits the model, the last
30 % is a validation slice into which synthetic faults are injected (level shifts,
spikes, ramps, noise bursts on a few features). The validation slice keeps the real
drift between the two periods, which is what defeats in-sample thresholds. Candidates
are ranked by mean F1 (threshold from the fit part's scores) and AUPRC on the
validation slices; the test half is not read here.

    python3 msel.py            # prints the candidate table, best first
"""
import numpy as np, itertools, sys
from load import load, M
from harness import ap_f1, prf
from sklearn.cluster import KMeans

def inject(fit, val, rng, rate=0.05):
    val = val.copy(); n, d = val.shape
    sd = fit.std(0); live = np.flatnonzero(sd > 1e-9)
    y = np.zeros(n, int); i = int(rng.integers(50, 300))
    while i < n - 10:
        L = int(min(200, max(1, rng.lognormal(np.log(12), 1.0))))
        j = min(n, i + L); k = int(rng.integers(1, 7))
        cols = rng.choice(live, size=min(k, len(live)), replace=False)
        kind = rng.integers(4)
        for c in cols:
            s = rng.uniform(3, 10) * sd[c] * rng.choice([-1, 1])
            if kind == 0:   val[i:j, c] += s                       # level shift
            elif kind == 1: val[i:min(j, i + 3), c] += 2 * s; j = min(j, i + 3)  # spike
            elif kind == 2: val[i:j, c] += s * np.linspace(0, 1, j - i)          # ramp
            else:           val[i:j, c] += rng.normal(0, abs(s), j - i)          # noise
        val[i:j] = np.clip(val[i:j], 0, 1)
        y[i:j] = 1
        i = j + int(rng.exponential(L / rate))
    return val, y

def ew(s, a):
    if a >= 1: return s
    out = np.empty_like(s); acc = s[0]
    for t in range(len(s)):
        acc = a * s[t] + (1 - a) * acc; out[t] = acc
    return out

def raw_scores(fit, xs, k, cap, floor=0.01):
    mu = fit.mean(0); sd = fit.std(0)
    sg = np.maximum(sd, np.maximum(floor * (fit.max(0) - fit.min(0)), 1e-12)); const = sd < 1e-9
    def z(x):
        q = (x - mu) / sg; q[:, const] = 0; return q
    cent = KMeans(k, n_init=2, random_state=0).fit(z(fit)).cluster_centers_
    out = []
    for x in xs:
        zz = np.clip(z(x), -cap, cap)
        dd = ((zz[:, None, :] - cent[None]) ** 2).sum(2)
        i = dd.argmin(1)
        out.append(((zz - cent[i]) ** 2).sum(1))
    return out

THR = {
    'q99': lambda s: np.quantile(s, .99), 'q995': lambda s: np.quantile(s, .995),
    'q999': lambda s: np.quantile(s, .999), 'max': lambda s: s.max(),
    '2xq99': lambda s: 2 * np.quantile(s, .99), '1.5xmax': lambda s: 1.5 * s.max(),
}

def main():
    data = {}
    for m in M:
        tr, _, _ = load(m)
        cut = int(0.7 * len(tr))
        rng = np.random.default_rng(abs(hash(m)) % 2**32 if False else sum(map(ord, m)))
        val, y = inject(tr[:cut], tr[cut:], rng)
        data[m] = (tr[:cut], val, y)
    rows = []
    for k, cap in itertools.product([1, 5, 10], [5, 10, 30]):
        per = {m: raw_scores(f, [f, v], k, cap) for m, (f, v, y) in data.items()}
        for a in [0.05, 0.1, 0.2, 0.5, 1.0]:
            sm = {m: (ew(s0, a), ew(s1, a)) for m, (s0, s1) in per.items()}
            aps = [ap_f1(sm[m][1], data[m][2])[1] for m in M]
            for tn, tf in THR.items():
                f1s = [prf(sm[m][1] > tf(sm[m][0]), data[m][2])[2] for m in M]
                rows.append((np.mean(f1s), np.mean(aps), k, cap, a, tn))
        print(f'k={k} cap={cap} done', file=sys.stderr)
    rows.sort(key=lambda r: -(r[0] + r[1]))
    print('F1    AUPRC  k  cap alpha thr')
    for r in rows[:25]:
        print('%.3f %.3f %2d %3d %.2f %s' % r)
    for r in rows:
        if (r[2], r[3], r[4], r[5]) == (5, 10, 0.1, 'q99'):
            print('current default: %.3f %.3f' % (r[0], r[1]))

if __name__ == '__main__':
    main()
