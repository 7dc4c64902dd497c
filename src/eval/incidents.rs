//! Incident-level evaluation: what a recorded, labelled series would have paged.
//!
//! A series goes through the daemon's own pipeline in replay mode (warm-up, training,
//! retraining, the incident gate, probation, tickets), in a scratch state directory.
//! Every ticket that was not muted is a page. A page that opens inside a labelled
//! segment (from its first to its last labelled row) detects that segment (the first
//! such page gives the delay); any other page in the evaluated span is a false ticket.
//! These are the definitions of `shared/tools/smd_incidents.py`, which this replaces
//! (and agrees with, on the same runs).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::pipeline::{Mode, Pipeline};
use crate::sample::Record;
use crate::settings::Config;
use crate::store::Scratch;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: f64 = 86_400_000.0;

/// One labelled series to replay.
pub struct Series {
    pub name: String,
    pub records: Vec<Record>,
    /// One per record.
    pub labels: Vec<bool>,
    /// Pages count from this timestamp on (e.g. the SMD test half, or the end of the
    /// model's probation).
    pub from_ms: i64,
    pub config: Config,
}

/// What one series paged.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub name: String,
    pub segments: usize,
    pub detected: usize,
    /// Pages in the evaluated span.
    pub tickets: usize,
    pub false_tickets: usize,
    /// Length of the evaluated span.
    pub days: f64,
    /// Minutes from each detected segment's start to its first page.
    pub delays_min: Vec<f64>,
}

impl Outcome {
    pub fn recall(&self) -> f64 {
        self.detected as f64 / self.segments.max(1) as f64
    }

    pub fn false_per_day(&self) -> f64 {
        if self.days > 0.0 {
            self.false_tickets as f64 / self.days
        } else {
            0.0
        }
    }
}

/// The opening times of the tickets a replay of `series` pages with (muted ones left
/// out: a muted ticket pages nobody).
pub fn pages(series: &Series) -> anyhow::Result<Vec<i64>> {
    let scratch = Scratch::new("eval")?;
    let state = scratch.state();
    let mut pipeline = Pipeline::open_mode(&series.config, &state, Mode::Replay)
        .with_context(|| format!("{}: opening the pipeline", series.name))?;
    for r in &series.records {
        pipeline.process_record(r);
    }
    let opened = match pipeline.incidents() {
        Some(i) => i
            .desk()
            .store()
            .list(false, i64::MAX)?
            .into_iter()
            .filter(|t| t.muted_by.is_none())
            .map(|t| t.opened_ms)
            .collect(),
        None => Vec::new(),
    };
    pipeline.close(Duration::from_secs(5));
    Ok(opened)
}

/// Score `opened` (page times) against the series' labels.
pub fn score(series: &Series, opened: &[i64]) -> Outcome {
    let ts: Vec<i64> = series
        .records
        .iter()
        .map(|r| r.timestamp_ms.unwrap_or(0))
        .collect();
    let mut segments = Vec::new();
    let mut start = None;
    for (i, &l) in series.labels.iter().enumerate() {
        match (l, start) {
            (true, None) => start = Some(i),
            (false, Some(a)) => {
                segments.push((ts[a], ts[i - 1]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(a) = start {
        segments.push((ts[a], ts[ts.len() - 1]));
    }
    let last = ts.last().copied().unwrap_or(0);
    let mut pages: Vec<i64> = opened
        .iter()
        .copied()
        .filter(|t| *t >= series.from_ms && *t <= last)
        .collect();
    pages.sort_unstable();
    let mut hit = vec![false; segments.len()];
    let mut delays_min = Vec::new();
    let mut false_tickets = 0;
    for &t in &pages {
        match segments.iter().position(|(a, b)| *a <= t && t <= *b) {
            Some(k) => {
                if !hit[k] {
                    hit[k] = true;
                    delays_min.push((t - segments[k].0) as f64 / MINUTE_MS as f64);
                }
            }
            None => false_tickets += 1,
        }
    }
    // Segments that ended before the evaluated span are not counted.
    let counted: Vec<bool> = segments.iter().map(|(_, b)| *b >= series.from_ms).collect();
    // The span is its rows' worth of time (SMD: one minute a row).
    let step = median_step(&ts);
    let rows = ts.iter().filter(|t| **t >= series.from_ms).count();
    Outcome {
        name: series.name.clone(),
        segments: counted.iter().filter(|c| **c).count(),
        detected: hit.iter().zip(&counted).filter(|(h, c)| **h && **c).count(),
        tickets: pages.len(),
        false_tickets,
        days: rows as f64 * step as f64 / DAY_MS,
        delays_min,
    }
}

fn median_step(ts: &[i64]) -> i64 {
    let mut d: Vec<i64> = ts
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0)
        .collect();
    if d.is_empty() {
        return MINUTE_MS;
    }
    d.sort_unstable();
    d[d.len() / 2]
}

/// The totals over several series.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Totals {
    pub segments: usize,
    pub detected: usize,
    pub recall: f64,
    pub tickets: usize,
    pub false_tickets: usize,
    pub false_per_day: f64,
    /// Median over every detected segment (the upper median, as the Python tool).
    pub median_delay_min: Option<f64>,
}

pub fn totals(outcomes: &[Outcome]) -> Totals {
    let segments = outcomes.iter().map(|o| o.segments).sum::<usize>();
    let detected = outcomes.iter().map(|o| o.detected).sum::<usize>();
    let false_tickets = outcomes.iter().map(|o| o.false_tickets).sum::<usize>();
    let days: f64 = outcomes.iter().map(|o| o.days).sum();
    let mut delays: Vec<f64> = outcomes.iter().flat_map(|o| o.delays_min.clone()).collect();
    delays.sort_by(f64::total_cmp);
    Totals {
        segments,
        detected,
        recall: detected as f64 / segments.max(1) as f64,
        tickets: outcomes.iter().map(|o| o.tickets).sum(),
        false_tickets,
        false_per_day: if days > 0.0 {
            false_tickets as f64 / days
        } else {
            0.0
        },
        median_delay_min: delays.get(delays.len() / 2).copied(),
    }
}

/// One SMD machine as the Python tool builds it: the train half then the test half,
/// one row a minute from 2026-01-01 00:00 UTC, columns `m0`…; `config` with
/// `interval: 1m`, a warm-up of the train half (so the first model learns exactly the
/// train half) and daily retraining; pages count in the test half.
pub fn smd_series(data: &Path, machine: &str, config: &Config) -> anyhow::Result<Series> {
    let read = |half: &str| {
        crate::model::csv::read_table(&data.join(half).join(format!("{machine}.txt.gz")))
    };
    let train = read("train")?;
    let test = read("test")?;
    let labels = crate::eval::read_labels(&data.join("test_label").join(format!("{machine}.txt")))?;
    anyhow::ensure!(
        labels.len() == test.records.len(),
        "{machine}: {} labels for {} test rows",
        labels.len(),
        test.records.len()
    );
    const T0: i64 = 1_767_225_600_000; // 2026-01-01 00:00:00 UTC
    let ntrain = train.records.len();
    let records: Vec<Record> = train
        .records
        .into_iter()
        .chain(test.records)
        .enumerate()
        .map(|(i, r)| Record {
            timestamp_ms: Some(T0 + i as i64 * MINUTE_MS),
            values: r
                .values
                .into_iter()
                .map(|(name, v)| (format!("m{name}"), v))
                .collect(),
        })
        .collect();
    let mut config = config.clone();
    config.interval = Duration::from_secs(60);
    config.model.warmup = Duration::from_secs(60 * (ntrain as u64).saturating_sub(1));
    config.model.retrain_interval = Duration::from_secs(86_400);
    let mut all_labels = vec![false; ntrain];
    all_labels.extend(labels);
    Ok(Series {
        name: machine.to_string(),
        records,
        labels: all_labels,
        from_ms: T0 + ntrain as i64 * MINUTE_MS,
        config,
    })
}

/// A CSV with a 0/1 label column (`label` unless named): pages count once the model
/// is out of warm-up and probation.
pub fn csv_series(path: &Path, label_column: &str, config: &Config) -> anyhow::Result<Series> {
    let table = crate::model::csv::read_table(path)?;
    anyhow::ensure!(
        table.columns.iter().any(|c| c == label_column),
        "{}: no column {label_column:?} (columns: {})",
        path.display(),
        table.columns.join(", ")
    );
    let step = config.interval.as_millis() as i64;
    let mut records = Vec::with_capacity(table.records.len());
    let mut labels = Vec::with_capacity(table.records.len());
    for (i, mut r) in table.records.into_iter().enumerate() {
        let label = r
            .values
            .iter()
            .find(|(n, _)| n == label_column)
            .map(|(_, v)| *v);
        let label = match label {
            Some(v) if v == 0.0 || v.is_nan() => false,
            Some(1.0) => true,
            Some(v) => anyhow::bail!(
                "{}: row {}: {label_column} must be 0 or 1, got {v}",
                path.display(),
                i + 1
            ),
            None => false,
        };
        r.values.retain(|(n, _)| n != label_column);
        if r.timestamp_ms.is_none() {
            r.timestamp_ms = Some(i as i64 * step);
        }
        records.push(r);
        labels.push(label);
    }
    let first = records.first().and_then(|r| r.timestamp_ms).unwrap_or(0);
    let ready = config.model.warmup.max(config.model.probation);
    Ok(Series {
        name: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        records,
        labels,
        from_ms: first + ready.as_millis() as i64,
        config: config.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[u8], from_ms: i64) -> Series {
        Series {
            name: "s".into(),
            records: (0..labels.len())
                .map(|i| Record {
                    timestamp_ms: Some(i as i64 * MINUTE_MS),
                    values: Vec::new(),
                })
                .collect(),
            labels: labels.iter().map(|l| *l == 1).collect(),
            from_ms,
            config: Config::default(),
        }
    }

    #[test]
    fn pages_inside_segments_detect_them_the_rest_are_false() {
        //           0123456789012345678901234567
        let labels = b"0000111100000000001111000000";
        let labels: Vec<u8> = labels.iter().map(|c| c - b'0').collect();
        let s = series(&labels, 2 * MINUTE_MS);
        let at = |i: i64| i * MINUTE_MS;
        // A page before the span, two in the first segment, one false, none in the
        // second segment.
        let o = score(&s, &[at(1), at(5), at(7), at(12)]);
        assert_eq!(o.segments, 2);
        assert_eq!(o.detected, 1);
        assert_eq!(o.tickets, 3);
        assert_eq!(o.false_tickets, 1);
        assert_eq!(o.delays_min, [1.0]);
        assert!((o.days - 26.0 / 1440.0).abs() < 1e-12);
        let t = totals(&[o.clone(), o]);
        assert_eq!((t.segments, t.detected, t.false_tickets), (4, 2, 2));
        assert_eq!(t.recall, 0.5);
        assert_eq!(t.median_delay_min, Some(1.0));
    }
}
