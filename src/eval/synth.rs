//! A generated host: weeks of one-minute rows that look like what the daemon records on
//! a quiet server, with faults injected where asked. It is how the incident figures are
//! checked without waiting a month: `anomalyd eval generate` writes it as CSV (with a
//! `label` column), `anomalyd eval incidents` replays it through the daemon's pipeline.
//!
//! What makes it hard on purpose (each is something a real month has):
//! - daily and weekly cycles (CPU, network, connections), with weekends at 60 %;
//! - Gaussian noise on every metric and heavy-tailed noise (Student t, 3 degrees of
//!   freedom) on latencies, I/O and network;
//! - short ping RTT spikes of a few milliseconds, about four a day;
//! - a quantised metric (`processes_running`, a Poisson count);
//! - a nightly backup (02:00–02:30: disk writes, busy, iowait);
//! - slow filesystem growth;
//! - one benign lasting step: a deploy raises memory use by 8 points on day
//!   `step_day` and it stays there.
//!
//! Faults are labelled (the `label` column is 1 while one lasts): a disk saturated
//! (busy 98 %, write latency 50–80 ms), a CPU pegged at 97 %, total ping loss.

use rand::rngs::StdRng;

use crate::sample::Record;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal, Poisson, StudentT};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// What can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Disk `sda` saturated: busy 98 %, write latency 50–80 ms, iowait 30 %.
    Disk,
    /// CPU pegged: user 95 %, load 8 on 4 cores.
    Cpu,
    /// Every ping to the gateway lost.
    PingLoss,
}

impl FaultKind {
    pub fn parse(s: &str) -> Option<FaultKind> {
        match s {
            "disk" => Some(FaultKind::Disk),
            "cpu" => Some(FaultKind::Cpu),
            "ping-loss" | "ping" => Some(FaultKind::PingLoss),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Start, in ms after the series' first row.
    pub at_ms: i64,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub days: f64,
    pub seed: u64,
    /// Timestamp of the first row (a Monday 00:00 UTC by default).
    pub start_ms: i64,
    /// Day of the benign memory step; `None`: no step.
    pub step_day: Option<f64>,
    pub faults: Vec<Fault>,
}

impl Spec {
    /// A month with the step on day 12 and, with `faults`, the three faults the
    /// incident targets name: a disk saturated for 40 min on day 20, a CPU pegged for
    /// 30 min on day 24, total ping loss for 20 min on day 27 (each at a different hour).
    pub fn month(seed: u64, faults: bool) -> Spec {
        let at = |day: f64, hour: f64| ((day + hour / 24.0) * DAY_MS as f64) as i64;
        Spec {
            days: 30.0,
            seed,
            start_ms: 1_767_571_200_000, // 2026-01-05 00:00 UTC, a Monday
            step_day: Some(12.4),
            faults: if faults {
                vec![
                    Fault {
                        kind: FaultKind::Disk,
                        at_ms: at(20.0, 14.3),
                        duration_ms: 40 * MINUTE_MS,
                    },
                    Fault {
                        kind: FaultKind::Cpu,
                        at_ms: at(24.0, 10.1),
                        duration_ms: 30 * MINUTE_MS,
                    },
                    Fault {
                        kind: FaultKind::PingLoss,
                        at_ms: at(27.0, 21.6),
                        duration_ms: 20 * MINUTE_MS,
                    },
                ]
            } else {
                Vec::new()
            },
        }
    }
}

/// The generated series: column names (the daemon's own series names) and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub timestamp_ms: i64,
    /// One per column; NaN is a missing value (no RTT while every ping is lost).
    pub values: Vec<f64>,
    /// Inside an injected fault.
    pub label: bool,
}

impl Series {
    /// The rows as the pipeline takes them (missing values left out) and their labels.
    pub fn records(&self) -> (Vec<Record>, Vec<bool>) {
        self.rows
            .iter()
            .map(|r| {
                let values = self
                    .columns
                    .iter()
                    .zip(&r.values)
                    .filter(|(_, v)| !v.is_nan())
                    .map(|(c, v)| (c.clone(), *v))
                    .collect();
                (
                    Record {
                        timestamp_ms: Some(r.timestamp_ms),
                        values,
                    },
                    r.label,
                )
            })
            .unzip()
    }

    /// CSV: `timestamp` (`YYYY-MM-DD HH:MM:SS`, UTC), the columns (quoted where
    /// needed), `label`.
    pub fn write_csv(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut head = vec!["timestamp".to_string()];
        head.extend(
            self.columns
                .iter()
                .map(|c| crate::model::csv::quote(c).into_owned()),
        );
        head.push("label".into());
        writeln!(out, "{}", head.join(","))?;
        for r in &self.rows {
            let t = crate::text::fmt_time(r.timestamp_ms);
            write!(out, "{}", t.trim_end_matches(" UTC"))?;
            for v in &r.values {
                if v.is_nan() {
                    write!(out, ",")?;
                } else {
                    write!(out, ",{v}")?;
                }
            }
            writeln!(out, ",{}", u8::from(r.label))?;
        }
        Ok(())
    }
}

const COLUMNS: &[&str] = &[
    r#"cpu_utilization_ratio{mode="user"}"#,
    r#"cpu_utilization_ratio{mode="system"}"#,
    r#"cpu_utilization_ratio{mode="iowait"}"#,
    r#"load_average{period="1m"}"#,
    "processes_running",
    "memory_used_ratio",
    "memory_available_bytes",
    r#"disk_busy_ratio{device="sda"}"#,
    r#"disk_write_latency_seconds{device="sda"}"#,
    r#"disk_written_bytes_per_second{device="sda"}"#,
    r#"filesystem_used_ratio{mountpoint="/",device="/dev/sda1",fstype="ext4"}"#,
    r#"network_receive_bytes_per_second{interface="eth0"}"#,
    r#"network_transmit_bytes_per_second{interface="eth0"}"#,
    "tcp_connections_established",
    r#"ping_rtt_median_seconds{target="gw",address="10.0.0.1"}"#,
    r#"ping_loss_ratio{target="gw",address="10.0.0.1"}"#,
];

const MEMORY_BYTES: f64 = 16e9;

/// Generate the series `spec` describes. The same spec gives the same rows.
pub fn generate(spec: &Spec) -> Series {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    #[allow(clippy::unwrap_used)] // constant, valid parameters
    let gauss: Normal<f64> = Normal::new(0.0, 1.0).unwrap();
    #[allow(clippy::unwrap_used)]
    let heavy: StudentT<f64> = StudentT::new(3.0).unwrap();
    let n = (spec.days * 1440.0).round() as usize;
    let mut rows = Vec::with_capacity(n);
    let mut spike_left = 0u32;
    let mut spike_rtt = 0.0;
    for i in 0..n {
        let t = i as i64 * MINUTE_MS;
        let ts = spec.start_ms + t;
        let day = t as f64 / DAY_MS as f64;
        let hour = (ts.rem_euclid(DAY_MS)) as f64 / 3_600_000.0;
        let weekday = ((ts.div_euclid(DAY_MS) + 3) % 7) as u32; // 1970-01-01 was a Thursday
        let weekend = if weekday >= 5 { 0.6 } else { 1.0 };
        // 0 at 03:00, 1 at 15:00.
        let cycle = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * (hour - 3.0) / 24.0).cos();
        let busy = cycle * weekend;
        let backup = (2.0..2.5).contains(&hour);
        let g = |rng: &mut StdRng| -> f64 { gauss.sample(rng) };
        let h = |rng: &mut StdRng| -> f64 { heavy.sample(rng) };

        let mut user = 0.08 + 0.30 * busy + 0.015 * g(&mut rng);
        let mut system = 0.3 * user + 0.004 * g(&mut rng);
        let mut iowait = 0.01 + 0.004 * h(&mut rng).abs() + if backup { 0.06 } else { 0.0 };
        let procs = Poisson::new(1.0 + 3.0 * busy).map_or(1.0, |p| p.sample(&mut rng));
        let step = match spec.step_day {
            Some(d) if day >= d => 0.08,
            _ => 0.0,
        };
        let mem = 0.45 + 0.04 * busy + step + 0.004 * g(&mut rng);
        let mut disk_busy =
            0.04 + 0.08 * busy + 0.01 * h(&mut rng).abs() + if backup { 0.45 } else { 0.0 };
        let mut latency = 0.002 + 0.0002 * h(&mut rng).abs() + if backup { 0.003 } else { 0.0 };
        let written =
            2e6 * (1.0 + 2.0 * busy) * (0.2 * g(&mut rng)).exp() + if backup { 80e6 } else { 0.0 };
        let fs = 0.40 + 0.001 * day - 0.0005 * (hour / 24.0) + 0.0002 * g(&mut rng);
        let rx = 5e6 * (0.3 + busy) * (0.25 * h(&mut rng).clamp(-4.0, 4.0)).exp();
        let tx = 0.4 * rx * (0.1 * g(&mut rng)).exp();
        let conns = (100.0 + 150.0 * busy + 5.0 * g(&mut rng)).round();
        // Ping: 0.40 ms ± 0.02, and now and then a spike of a few ms for a minute or two.
        if spike_left == 0 && rng.random_bool(4.0 / 1440.0) {
            spike_left = rng.random_range(1..=2);
            spike_rtt = rng.random_range(0.002..0.008);
        }
        let mut rtt = if spike_left > 0 {
            spike_left -= 1;
            spike_rtt
        } else {
            0.0004 + 0.00002 * g(&mut rng)
        };
        let mut loss = if rng.random_bool(0.0005) {
            1.0 / 3.0
        } else {
            0.0
        };
        let mut load = 4.0 * (user + system) + 0.3 * g(&mut rng).abs() + procs * 0.1;

        let mut label = false;
        for f in &spec.faults {
            if t < f.at_ms || t >= f.at_ms + f.duration_ms {
                continue;
            }
            label = true;
            match f.kind {
                FaultKind::Disk => {
                    disk_busy = 0.98;
                    latency = rng.random_range(0.05..0.08);
                    iowait = 0.30 + 0.02 * g(&mut rng);
                }
                FaultKind::Cpu => {
                    user = 0.95 + 0.01 * g(&mut rng);
                    system = 0.03;
                    load = 8.0 + 0.3 * g(&mut rng);
                }
                FaultKind::PingLoss => {
                    loss = 1.0;
                    rtt = f64::NAN;
                }
            }
        }
        let clip = |v: f64| v.clamp(0.0, 1.0);
        user = clip(user);
        system = clip(system);
        let values = vec![
            user,
            system,
            clip(iowait),
            load.max(0.0),
            procs,
            clip(mem),
            MEMORY_BYTES * (1.0 - clip(mem)),
            clip(disk_busy),
            latency.max(0.0),
            written.max(0.0),
            clip(fs),
            rx.max(0.0),
            tx.max(0.0),
            conns.max(0.0),
            if rtt.is_nan() { rtt } else { rtt.max(0.0) },
            loss,
        ];
        rows.push(Row {
            timestamp_ms: ts,
            values,
            label,
        });
    }
    Series {
        columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_month_and_faults_are_labelled() {
        let mut spec = Spec::month(7, true);
        spec.days = 28.0;
        let a = generate(&spec);
        // Compared as text: a lost ping's RTT is NaN, and NaN != NaN.
        let same = |x: &Series, y: &Series| format!("{x:?}") == format!("{y:?}");
        assert!(same(&a, &generate(&spec)));
        assert_eq!(a.rows.len(), 28 * 1440);
        assert!(!same(
            &a,
            &generate(&Spec {
                seed: 8,
                ..spec.clone()
            })
        ));
        // 40 + 30 + 20 minutes of faults.
        let labelled = a.rows.iter().filter(|r| r.label).count();
        assert_eq!(labelled, 40 + 30 + 20);
        // The disk fault saturates sda.
        let busy = a
            .columns
            .iter()
            .position(|c| c.starts_with("disk_busy_ratio"))
            .expect("busy");
        let r = a.rows.iter().find(|r| r.label).expect("a fault");
        assert_eq!(r.values[busy], 0.98);
        // Total ping loss leaves the RTT missing.
        let rtt = a
            .columns
            .iter()
            .position(|c| c.starts_with("ping_rtt"))
            .expect("rtt");
        assert!(a.rows.iter().any(|r| r.label && r.values[rtt].is_nan()));
        let (records, labels) = a.records();
        assert_eq!(records.len(), labels.len());
        assert!(records.iter().any(|r| r.values.len() < a.columns.len()));
    }

    #[test]
    fn the_csv_reads_back_through_the_csv_reader() {
        let mut spec = Spec::month(1, false);
        spec.days = 0.05;
        let s = generate(&spec);
        let mut out = Vec::new();
        s.write_csv(&mut out).expect("write");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m.csv");
        std::fs::write(&path, &out).expect("write");
        let t = crate::model::csv::read_table(&path).expect("reads");
        assert_eq!(t.records.len(), s.rows.len());
        assert_eq!(
            t.columns.len(),
            s.columns.len() + 1,
            "label is a column too"
        );
        assert_eq!(t.records[0].timestamp_ms, Some(s.rows[0].timestamp_ms));
    }
}
