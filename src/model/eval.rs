//! Detection metrics, computed exactly as `shared/tools/pointwise.py` does (no point
//! adjustment): point-wise precision/recall/F1 of the 0/1 decisions, AUPRC as
//! step-wise average precision of the scores (sklearn's `average_precision_score`),
//! the oracle best F1 over score thresholds (reference only), and event recall.

/// Metrics of one labelled series.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    pub rows: usize,
    pub segments: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Average precision; NaN when there are no positive labels.
    pub auprc: f64,
    /// Best F1 over all score thresholds — uses the labels, so reference only.
    pub best_f1: f64,
    /// Fraction of labelled segments with at least one flagged row; NaN without segments.
    pub event_recall: f64,
}

fn prf(tp: usize, fp: usize, fneg: usize) -> (f64, f64, f64) {
    let p = if tp + fp > 0 {
        tp as f64 / (tp + fp) as f64
    } else {
        0.0
    };
    let r = if tp + fneg > 0 {
        tp as f64 / (tp + fneg) as f64
    } else {
        0.0
    };
    let f = if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    };
    (p, r, f)
}

/// (best F1, average precision) of `score` against `labels`.
pub fn curve(score: &[f64], labels: &[bool]) -> (f64, f64) {
    let pos = labels.iter().filter(|l| **l).count();
    if pos == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let (mut ap, mut prev_rec, mut best) = (0.0, 0.0, 0.0f64);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = k + 1 == order.len() || score[order[k + 1]] != score[i];
        if last_of_tie {
            let prec = tp as f64 / (tp + fp) as f64;
            let rec = tp as f64 / pos as f64;
            ap += (rec - prev_rec) * prec;
            prev_rec = rec;
            if prec + rec > 0.0 {
                best = best.max(2.0 * prec * rec / (prec + rec));
            }
        }
    }
    (best, ap)
}

/// Runs of `true`, as (start, end-exclusive).
pub fn runs(x: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &v) in x.iter().enumerate() {
        match (v, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, x.len()));
    }
    out
}

/// All metrics of one series. The three slices must have the same length.
pub fn evaluate(score: &[f64], decision: &[bool], labels: &[bool]) -> Metrics {
    let (mut tp, mut fp, mut fneg) = (0, 0, 0);
    for (&d, &l) in decision.iter().zip(labels) {
        match (d, l) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            _ => {}
        }
    }
    let (precision, recall, f1) = prf(tp, fp, fneg);
    let (best_f1, auprc) = curve(score, labels);
    let segs = runs(labels);
    let hit = segs
        .iter()
        .filter(|(a, b)| decision[*a..*b].iter().any(|d| *d))
        .count();
    Metrics {
        rows: labels.len(),
        segments: segs.len(),
        precision,
        recall,
        f1,
        auprc,
        best_f1,
        event_recall: if segs.is_empty() {
            f64::NAN
        } else {
            hit as f64 / segs.len() as f64
        },
    }
}

/// Unweighted mean over series, ignoring NaNs (as pointwise.py's `nanmean`).
pub fn mean(all: &[Metrics]) -> Metrics {
    let m = |f: fn(&Metrics) -> f64| {
        let v: Vec<f64> = all.iter().map(f).filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Metrics {
        rows: all.iter().map(|x| x.rows).sum(),
        segments: all.iter().map(|x| x.segments).sum(),
        precision: m(|x| x.precision),
        recall: m(|x| x.recall),
        f1: m(|x| x.f1),
        auprc: m(|x| x.auprc),
        best_f1: m(|x| x.best_f1),
        event_recall: m(|x| x.event_recall),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_precision_like_sklearn() {
        // sklearn.metrics.average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.8333…
        let (_, ap) = curve(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert!((ap - 0.833_333_333_333_333_4).abs() < 1e-12, "{ap}");
        // Ties form one step: all equal scores -> AP = positive rate.
        let (_, ap) = curve(&[1.0; 4], &[true, false, false, false]);
        assert!((ap - 0.25).abs() < 1e-12);
    }

    #[test]
    fn pointwise_and_events() {
        let labels = [false, true, true, false, true, false];
        let dec = [true, true, false, false, false, false];
        let m = evaluate(&[0.0; 6], &dec, &labels);
        assert_eq!(m.segments, 2);
        assert!((m.precision - 0.5).abs() < 1e-12);
        assert!((m.recall - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.event_recall - 0.5).abs() < 1e-12);
        assert_eq!(runs(&[true, false, true, true]), vec![(0, 1), (2, 4)]);
    }
}
