//! The latency heatmap of each ping target, smokeping style: time along x, RTT
//! buckets up y, the count of observations in each cell as its colour, with the loss
//! and the median RTT of each column.
//!
//! The history keeps each ping round's min, median and max RTT and its loss ratio
//! per sample (not every echo), so each sample adds its round's three RTTs to its
//! column: a column's spread is the spread of its rounds. The RTT buckets are
//! [`BUCKETS`] log-spaced steps between the target's lowest and highest RTT of the
//! period (a LAN target at 0.2 ms and a remote one at 80 ms each fill their own
//! heatmap). An address that changed (DNS) stays one target.

use std::collections::BTreeMap;

use serde::Serialize;

use super::period::Period;
use crate::sample::label_value;
use crate::store::{History, HistoryError};

/// RTT buckets per heatmap.
pub const BUCKETS: usize = 24;
/// Columns of a heatmap (time slices of the period).
pub const COLUMNS: usize = 120;

const RTT: [&str; 3] = [
    "ping_rtt_min_seconds",
    "ping_rtt_median_seconds",
    "ping_rtt_max_seconds",
];
const MEDIAN: &str = "ping_rtt_median_seconds";
const LOSS: &str = "ping_loss_ratio";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heatmap {
    pub target: String,
    pub period: Period,
    /// Width of a column, ms.
    pub column_ms: i64,
    /// `BUCKETS + 1` edges in seconds, lowest first: bucket `b` is
    /// `[edges[b], edges[b + 1])`.
    pub edges: Vec<f64>,
    /// `counts[column][bucket]`: RTTs observed.
    pub counts: Vec<Vec<u32>>,
    /// Mean loss ratio of the rounds of each column (`None`: no round).
    pub loss: Vec<Option<f64>>,
    /// Median of the rounds' median RTTs in each column.
    pub median: Vec<Option<f64>>,
    /// Samples (ping rounds) read.
    pub rounds: usize,
}

impl Heatmap {
    /// The largest count of a cell (for colour scales).
    pub fn max_count(&self) -> u32 {
        self.counts.iter().flatten().copied().max().unwrap_or(0)
    }

    /// Mean loss over the period (`None`: no round).
    pub fn mean_loss(&self) -> Option<f64> {
        let v: Vec<f64> = self.loss.iter().flatten().copied().collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// One heatmap per ping target in the history's names, in target order, with
/// `columns` columns over `period`.
pub fn build(
    history: &History,
    period: Period,
    columns: usize,
) -> Result<Vec<Heatmap>, HistoryError> {
    let names = history.names()?;
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in names {
        let base = n.split('{').next().unwrap_or("");
        if RTT.contains(&base) || base == LOSS {
            if let Some(t) = label_value(&n, "target") {
                by_target.entry(t.to_string()).or_default().push(n.clone());
            }
        }
    }
    let mut out = Vec::new();
    for (target, names) in by_target {
        let mut rtts: Vec<(i64, f64, bool)> = Vec::new(); // (ts, rtt, is_median)
        let mut loss: Vec<(i64, f64)> = Vec::new();
        for name in &names {
            let base = name.split('{').next().unwrap_or("");
            let points = history.tier_series(name, period.from_ms, period.to_ms, period.tier)?;
            if base == LOSS {
                loss.extend(points);
            } else {
                let median = base == MEDIAN;
                rtts.extend(points.into_iter().map(|(t, v)| (t, v, median)));
            }
        }
        if rtts.is_empty() && loss.is_empty() {
            continue;
        }
        out.push(matrix(target, period, columns, &rtts, &loss));
    }
    Ok(out)
}

/// The heatmap of one target from its points.
pub fn matrix(
    target: String,
    period: Period,
    columns: usize,
    rtts: &[(i64, f64, bool)],
    loss: &[(i64, f64)],
) -> Heatmap {
    let columns = columns.max(1);
    let span = period.span_ms().max(1);
    let column_ms = (span + columns as i64 - 1) / columns as i64;
    let col = |ts: i64| (((ts - period.from_ms) / column_ms.max(1)) as usize).min(columns - 1);
    let positive: Vec<f64> = rtts
        .iter()
        .map(|r| r.1)
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let lo = positive.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = positive.iter().copied().fold(0.0, f64::max);
    let edges = edges(lo, hi);
    let mut counts = vec![vec![0u32; BUCKETS]; columns];
    let mut medians: Vec<Vec<f64>> = vec![Vec::new(); columns];
    let mut rounds = 0;
    for &(ts, v, is_median) in rtts {
        if !(v.is_finite() && v > 0.0) {
            continue;
        }
        let c = col(ts);
        let b = edges.partition_point(|e| *e <= v).clamp(1, BUCKETS) - 1;
        counts[c][b] += 1;
        if is_median {
            medians[c].push(v);
            rounds += 1;
        }
    }
    let mut loss_sum = vec![(0.0, 0usize); columns];
    for &(ts, l) in loss {
        let c = col(ts);
        loss_sum[c].0 += l;
        loss_sum[c].1 += 1;
    }
    Heatmap {
        target,
        period,
        column_ms,
        edges,
        counts,
        loss: loss_sum
            .iter()
            .map(|&(s, n)| (n > 0).then(|| s / n as f64))
            .collect(),
        median: medians.iter_mut().map(|m| median(m)).collect(),
        rounds: rounds.max(loss.len()),
    }
}

/// `BUCKETS + 1` log-spaced edges around `[lo, hi]`, a little wider so neither end
/// sits on an edge; a decade around `lo` when the RTT never moved (or no RTT).
fn edges(lo: f64, hi: f64) -> Vec<f64> {
    let (lo, hi) = if lo.is_finite() && hi > 0.0 && hi > lo * 1.05 {
        (lo / 1.1, hi * 1.1)
    } else if lo.is_finite() && lo > 0.0 {
        (lo / 3.0, lo * 3.0)
    } else {
        (1e-4, 1e-1)
    };
    let (a, b) = (lo.ln(), hi.ln());
    (0..=BUCKETS)
        .map(|i| (a + (b - a) * i as f64 / BUCKETS as f64).exp())
        .collect()
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Tier;

    #[test]
    fn each_round_fills_its_column_and_loss_and_median_follow() {
        let period = Period {
            from_ms: 0,
            to_ms: 100_000,
            tier: Tier::Raw,
        };
        // Column 0: rounds at 1 ms; column 1: at 10 ms with half the echoes lost.
        let mut rtts = Vec::new();
        let mut loss = Vec::new();
        for s in 0..100 {
            let ts = s * 1000;
            let rtt = if s < 50 { 0.001 } else { 0.010 };
            rtts.push((ts, rtt * 0.9, false));
            rtts.push((ts, rtt, true));
            rtts.push((ts, rtt * 1.1, false));
            loss.push((ts, if s < 50 { 0.0 } else { 0.5 }));
        }
        let h = matrix("gw".into(), period, 2, &rtts, &loss);
        assert_eq!(h.counts.len(), 2);
        assert_eq!(h.counts[0].iter().sum::<u32>(), 150);
        assert_eq!(h.median, [Some(0.001), Some(0.010)]);
        assert_eq!(h.loss, [Some(0.0), Some(0.5)]);
        assert_eq!(h.rounds, 100);
        // The two columns' RTTs sit in different buckets, low and high.
        let top = |c: &Vec<u32>| c.iter().rposition(|n| *n > 0).unwrap_or(0);
        assert!(top(&h.counts[0]) < BUCKETS / 2 && top(&h.counts[1]) >= BUCKETS / 2);
        assert_eq!(h.edges.len(), BUCKETS + 1);
    }
}
