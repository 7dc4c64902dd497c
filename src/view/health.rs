//! The weighted health score: four parts, each 0–100 (100: all headroom left), and
//! their weighted mean. Default weights vCPU 40 %, memory 30 %, disk IO 20 %,
//! bandwidth 10 % (`health.weights`).
//!
//! Each part is 100 × (1 − the 95th percentile of a use ratio over the period), so a
//! host busy for more than 5 % of the time scores by its busy level, and a single
//! spike does not:
//!
//! - `cpu`: CPU busy, `1 − idle − iowait` of `cpu_utilization_ratio` (all vCPUs;
//!   iowait is waiting for disks, which the disk part counts);
//! - `memory`: `memory_used_ratio` (total − available, of total);
//! - `disk_io`: `disk_busy_ratio` of the busiest disk at each sample;
//! - `bandwidth`: the busiest link's use at each sample, the larger of receive and
//!   transmit over its link speed (full duplex), for interfaces whose speed is known.
//!
//! A part without data (no disk, no link speed known) is not scored and says why;
//! the score is the weighted mean of the parts that were, so its weight goes to them.
//! The same series, per sample, are the resource use chart ([`Health::usage`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::facts::HostFacts;
use super::period::Period;
use super::Weights;
use crate::sample::label_value;
use crate::store::{History, HistoryError};
use crate::text::{fmt_quantity, fmt_value};

/// Points of each usage series at most (the highest of each time slice).
pub const USAGE_POINTS: usize = 600;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The weighted mean of the scored parts; `None` when none could be scored.
    pub score: Option<f64>,
    /// How the score was computed from the parts.
    pub explanation: String,
    pub parts: Vec<Part>,
    /// Per part, its use ratio over the period (at most [`USAGE_POINTS`] points).
    pub usage: Vec<Usage>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    /// `cpu`, `memory`, `disk_io` or `bandwidth`.
    pub name: &'static str,
    /// As configured (not normalised).
    pub weight: f64,
    /// 0–100; `None`: not scored.
    pub score: Option<f64>,
    /// One line: from which metrics, over how many samples, with which result.
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub name: &'static str,
    /// `(ts_ms, ratio)`, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// The health of `period` from `history`, with the link speeds of `facts`.
pub fn build(
    history: &History,
    period: Period,
    facts: &HostFacts,
    weights: &Weights,
) -> Result<Health, HistoryError> {
    let names = history.names()?;
    let read = |n: &str| history.tier_series(n, period.from_ms, period.to_ms, period.tier);
    let with_base = |base: &str| -> Vec<&String> {
        names
            .iter()
            .filter(|n| n.split('{').next() == Some(base))
            .collect()
    };

    // cpu: 1 - idle - iowait, per sample.
    let mut cpu: BTreeMap<i64, f64> = BTreeMap::new();
    let idle = read("cpu_utilization_ratio{mode=\"idle\"}")?;
    let iowait: BTreeMap<i64, f64> = read("cpu_utilization_ratio{mode=\"iowait\"}")?
        .into_iter()
        .collect();
    for (ts, v) in idle {
        cpu.insert(ts, 1.0 - v - iowait.get(&ts).copied().unwrap_or(0.0));
    }
    let memory: BTreeMap<i64, f64> = read("memory_used_ratio")?.into_iter().collect();
    let mut disk: BTreeMap<i64, f64> = BTreeMap::new();
    let disks = with_base("disk_busy_ratio");
    for n in &disks {
        for (ts, v) in read(n)? {
            let e = disk.entry(ts).or_insert(0.0);
            *e = e.max(v);
        }
    }
    let mut net: BTreeMap<i64, f64> = BTreeMap::new();
    let mut links = Vec::new();
    for dir in [
        "network_receive_bytes_per_second",
        "network_transmit_bytes_per_second",
    ] {
        for n in with_base(dir) {
            let Some(interface) = label_value(n, "interface") else {
                continue;
            };
            let Some(bits) = facts.link_speed(interface) else {
                continue;
            };
            if !links.iter().any(|(i, _)| i == interface) {
                links.push((interface.to_string(), bits));
            }
            let capacity = bits as f64 / 8.0;
            for (ts, v) in read(n)? {
                let e = net.entry(ts).or_insert(0.0);
                *e = e.max(v / capacity);
            }
        }
    }
    links.sort();

    let cores = if facts.cores > 0 {
        format!(", {} vCPUs", facts.cores)
    } else {
        String::new()
    };
    let disks_said = match disks.len() {
        1 => "1 disk".to_string(),
        n => format!("{n} disks"),
    };
    let links_said = links
        .iter()
        .map(|(i, b)| format!("{i} {}", fmt_bits(*b)))
        .collect::<Vec<_>>()
        .join(", ");
    let parts = vec![
        part(
            "cpu",
            weights.cpu,
            &cpu,
            &format!("CPU busy (1 − idle − iowait of cpu_utilization_ratio{cores})"),
            "no CPU samples in the period",
        ),
        part(
            "memory",
            weights.memory,
            &memory,
            "memory used (memory_used_ratio)",
            "no memory samples in the period",
        ),
        part(
            "disk_io",
            weights.disk_io,
            &disk,
            &format!("the busiest disk's busy time (disk_busy_ratio, {disks_said})"),
            "no disk samples in the period",
        ),
        part(
            "bandwidth",
            weights.bandwidth,
            &net,
            &format!(
                "the busiest link's use (the larger of receive and transmit over its speed: {links_said})"
            ),
            "no interface with a known link speed (virtual interfaces report none)",
        ),
    ];
    let (score, explanation) = combine(&parts);
    let usage = [
        ("cpu", &cpu),
        ("memory", &memory),
        ("disk_io", &disk),
        ("bandwidth", &net),
    ]
    .into_iter()
    .filter(|(_, s)| !s.is_empty())
    .map(|(name, s)| Usage {
        name,
        points: slice_max(s, period, USAGE_POINTS),
    })
    .collect();
    Ok(Health {
        score,
        explanation,
        parts,
        usage,
    })
}

fn fmt_bits(bits: u64) -> String {
    match bits {
        b if b >= 1_000_000_000 && b % 1_000_000_000 == 0 => format!("{} Gb/s", b / 1_000_000_000),
        b if b >= 1_000_000_000 => format!("{:.1} Gb/s", b as f64 / 1e9),
        b => format!("{} Mb/s", b / 1_000_000),
    }
}

/// One part: 100 × (1 − p95 of the ratios).
fn part(
    name: &'static str,
    weight: f64,
    ratios: &BTreeMap<i64, f64>,
    what: &str,
    missing: &str,
) -> Part {
    let mut v: Vec<f64> = ratios.values().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Part {
            name,
            weight,
            score: None,
            explanation: format!("not scored: {missing}; its weight goes to the other parts"),
        };
    }
    v.sort_by(f64::total_cmp);
    let p95 = v[((v.len() - 1) as f64 * 0.95).round() as usize];
    let score = (100.0 * (1.0 - p95)).clamp(0.0, 100.0);
    Part {
        name,
        weight,
        score: Some(score),
        explanation: format!(
            "100 × (1 − {}), the 95th percentile of {what} over {} samples",
            fmt_quantity("x_ratio", p95),
            v.len()
        ),
    }
}

/// The weighted mean of the scored parts, and how it was computed.
fn combine(parts: &[Part]) -> (Option<f64>, String) {
    let scored: Vec<(&Part, f64)> = parts
        .iter()
        .filter_map(|p| p.score.map(|s| (p, s)))
        .filter(|(p, _)| p.weight > 0.0)
        .collect();
    let total: f64 = scored.iter().map(|(p, _)| p.weight).sum();
    if scored.is_empty() || total <= 0.0 {
        return (
            None,
            "no part could be scored (no samples in the period)".into(),
        );
    }
    let score = scored.iter().map(|(p, s)| p.weight * s).sum::<f64>() / total;
    let terms: Vec<String> = scored
        .iter()
        .map(|(p, s)| format!("{} × {:.0} ({})", fmt_value(p.weight), s, p.name))
        .collect();
    (
        Some(score),
        format!(
            "weighted mean of the parts scored: ({}) / {} = {:.0}",
            terms.join(" + "),
            fmt_value(total),
            score
        ),
    )
}

/// At most `max` points: the highest value of each equal slice of the period.
fn slice_max(s: &BTreeMap<i64, f64>, period: Period, max: usize) -> Vec<(i64, f64)> {
    if s.len() <= max {
        return s.iter().map(|(t, v)| (*t, *v)).collect();
    }
    let width = period.span_ms().max(1) as f64 / max as f64;
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(max);
    let mut slot = None;
    for (&t, &v) in s {
        let k = ((t - period.from_ms) as f64 / width) as i64;
        match out.last_mut() {
            Some(last) if slot == Some(k) => {
                if v > last.1 {
                    *last = (t, v);
                }
            }
            _ => {
                out.push((t, v));
                slot = Some(k);
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn series(v: &[f64]) -> BTreeMap<i64, f64> {
        v.iter().enumerate().map(|(i, x)| (i as i64, *x)).collect()
    }

    #[test]
    fn a_part_is_100_minus_the_95th_percentile_and_says_so() {
        // 100 samples at 20 % busy, 4 spikes to 100 %: the spikes are under 5 %.
        let mut v = vec![0.2; 96];
        v.extend([1.0; 4]);
        let p = part("cpu", 40.0, &series(&v), "CPU busy", "none");
        assert_eq!(p.score, Some(80.0));
        assert_eq!(
            p.explanation,
            "100 × (1 − 20.0 %), the 95th percentile of CPU busy over 100 samples"
        );
        let none = part("bandwidth", 10.0, &BTreeMap::new(), "x", "no link speed");
        assert_eq!(none.score, None);
        assert!(none
            .explanation
            .contains("its weight goes to the other parts"));
    }

    #[test]
    fn the_score_is_the_weighted_mean_of_the_parts_scored() {
        let mk = |name, weight, score| Part {
            name,
            weight,
            score,
            explanation: String::new(),
        };
        let parts = [
            mk("cpu", 40.0, Some(50.0)),
            mk("memory", 30.0, Some(100.0)),
            mk("disk_io", 20.0, Some(80.0)),
            mk("bandwidth", 10.0, None),
        ];
        let (score, why) = combine(&parts);
        // (40×50 + 30×100 + 20×80) / 90 = 73.3
        assert!((score.unwrap() - 6600.0 / 90.0).abs() < 1e-9);
        assert_eq!(
            why,
            "weighted mean of the parts scored: (40 × 50 (cpu) + 30 × 100 (memory) + 20 × 80 (disk_io)) / 90 = 73"
        );
        assert_eq!(combine(&[mk("cpu", 40.0, None)]).0, None);
    }
}
