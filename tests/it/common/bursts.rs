//! A recorded series that produces a known number of incidents when replayed.
//!
//! `write(dir, n)` writes `dir/bursts.csv` and `dir/bursts.yaml`. The series is 200
//! minutes of normal behaviour (an exactly repeating 10-minute pattern, so the model
//! trained on it finds later normal rows no stranger than its training rows), then `n`
//! bursts of 4 minutes with `disk_busy_ratio{device="sdb"}` at 0.98 (normal: ~0.1),
//! each followed by 100 normal minutes, long enough for the smoothed score to decay
//! and the incident to resolve. The config trains once after a 2 h warm-up, never
//! retrains (bursts stay out of the model), has no probation (the tickets are sent at
//! once), and sets `reopen_window: 0s`,
//! `flap_max_opens: 0` and `recent_factor: 0` (equal bursts would not stand out from
//! each other) so each burst opens a new incident and ticket:
//!
//! `anomalyd replay --input dir/bursts.csv --config dir/bursts.yaml --state-dir DIR`
//! gives exactly `n` tickets `INC-1..INC-n` (label storage, resource sdb, P3), each
//! opened and resolved. `extra_yaml` is appended to the config (e.g. a `tickets:`
//! section with sinks).
#![allow(dead_code, clippy::unwrap_used)]

use std::fmt::Write;
use std::path::{Path, PathBuf};

pub const NORMAL_ROWS: usize = 200;
pub const BURST_ROWS: usize = 4;
pub const GAP_ROWS: usize = 100;
pub const T0: i64 = 1_700_000_000;

const PATTERN: [f64; 10] = [0.0, 0.3, 0.7, 1.0, 0.8, 0.4, 0.1, 0.5, 0.9, 0.6];

fn row(s: &mut String, i: usize, disk: Option<f64>) {
    row_with(s, i, disk, None)
}

fn row_with(s: &mut String, i: usize, disk: Option<f64>, cpu: Option<f64>) {
    let p = PATTERN[i % 10];
    let q = PATTERN[(i * 3) % 10];
    let disk = disk.unwrap_or(0.1 + 0.02 * q);
    let cpu = cpu.unwrap_or(0.3 + 0.05 * p);
    writeln!(
        s,
        "{},{:.4},{:.4},{disk:.4},{:.1}",
        T0 + i as i64 * 60,
        cpu,
        0.5 + 0.02 * q,
        1e6 * (1.0 + 0.1 * p)
    )
    .unwrap();
}

const HEADER: &str = "timestamp,cpu_utilization_ratio,memory_used_ratio,\"disk_busy_ratio{device=\"\"sdb\"\"}\",\"network_receive_bytes_per_second{interface=\"\"eth0\"\"}\"\n";

/// What a stretch of rows of [`write_parts`] does.
#[derive(Clone, Copy, Debug)]
pub enum Part {
    Normal(usize),
    /// `disk_busy_ratio{device="sdb"}` at 0.98.
    Disk(usize),
    /// `cpu_utilization_ratio` at 0.98.
    Cpu(usize),
}

/// Write the series `parts` to `path`, its first row being row `first` of the
/// series (so a series can be replayed in pieces, each after the last); returns the
/// next row's number. The config is [`write`]'s.
pub fn write_parts(path: &Path, first: usize, parts: &[Part]) -> usize {
    let mut s = String::from(HEADER);
    let mut i = first;
    for p in parts {
        let (n, disk, cpu) = match *p {
            Part::Normal(n) => (n, None, None),
            Part::Disk(n) => (n, Some(0.98), None),
            Part::Cpu(n) => (n, None, Some(0.98)),
        };
        for _ in 0..n {
            row_with(&mut s, i, disk, cpu);
            i += 1;
        }
    }
    std::fs::write(path, s).unwrap();
    i
}

/// (csv, config) paths.
pub fn write(dir: &Path, n: usize, extra_yaml: &str) -> (PathBuf, PathBuf) {
    let mut s = String::from(HEADER);
    let mut i = 0;
    for _ in 0..NORMAL_ROWS {
        row(&mut s, i, None);
        i += 1;
    }
    for _ in 0..n {
        for _ in 0..BURST_ROWS {
            row(&mut s, i, Some(0.98));
            i += 1;
        }
        for _ in 0..GAP_ROWS {
            row(&mut s, i, None);
            i += 1;
        }
    }
    let csv = dir.join("bursts.csv");
    std::fs::write(&csv, s).unwrap();
    let cfg = dir.join("bursts.yaml");
    std::fs::write(
        &cfg,
        format!(
            "interval: 1m\nmodel:\n  warmup: 2h\n  probation: 0s\n  retrain_interval: 365d\n\
             incidents:\n  host: test-host\n  open_for: 2m\n  open_window: 3m\n  resolve_for: 5m\n  \
             recent_factor: 0\n  reopen_window: 0s\n  flap_max_opens: 0\n{extra_yaml}"
        ),
    )
    .unwrap();
    (csv, cfg)
}
