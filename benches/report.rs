//! The health report's time on a week of 1 s history, plain `std::time` (no harness):
//! `cargo bench --profile ci --bench report`.
//!
//! Writes 7 days of samples at 1 s (604,800 rows of a host-like sample: CPU modes,
//! memory, two disks, two interfaces, a filesystem, a ping target, and the score and
//! threshold the daemon stores beside them) with the history API into a temp state
//! directory, then times `view::report::build` (reading and computing) and the HTML
//! rendering (charts included) for 1 h, 24 h and 7 d. The host facts and the process
//! table are left out: they are the host now (half a second of CPU sampling), not the
//! history.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anomalyd::sample::Record;
use anomalyd::store::derived::{ANOMALY_SCORE, ANOMALY_THRESHOLD};
use anomalyd::store::{History, HistoryConfig, StateDir};
use anomalyd::view::facts::{HostFacts, Link};
use anomalyd::view::report::{self, Live};

const DAYS: i64 = 7;
const T0: i64 = 1_700_000_040_000;

fn names() -> Vec<String> {
    let mut n = Vec::new();
    for m in [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ] {
        n.push(format!("cpu_utilization_ratio{{mode=\"{m}\"}}"));
    }
    for m in ["available", "used", "cached", "buffers"] {
        n.push(format!("memory_{m}_bytes"));
    }
    n.push("memory_used_ratio".into());
    for d in ["sda", "sdb"] {
        for m in [
            "disk_read_bytes_per_second",
            "disk_written_bytes_per_second",
            "disk_reads_per_second",
            "disk_writes_per_second",
            "disk_read_latency_seconds",
            "disk_write_latency_seconds",
            "disk_busy_ratio",
            "disk_queue_depth",
        ] {
            n.push(format!("{m}{{device=\"{d}\"}}"));
        }
    }
    for i in ["eth0", "eth1"] {
        for m in ["receive", "transmit"] {
            for k in ["bytes", "packets", "errors", "drops"] {
                n.push(format!("network_{m}_{k}_per_second{{interface=\"{i}\"}}"));
            }
        }
    }
    n.push("filesystem_available_bytes{mountpoint=\"/\",device=\"sda1\",fstype=\"ext4\"}".into());
    n.push("filesystem_used_ratio{mountpoint=\"/\",device=\"sda1\",fstype=\"ext4\"}".into());
    for m in ["min", "median", "max"] {
        n.push(format!(
            "ping_rtt_{m}_seconds{{target=\"gw\",address=\"192.0.2.1\"}}"
        ));
    }
    n.push("ping_loss_ratio{target=\"gw\",address=\"192.0.2.1\"}".into());
    n.push(ANOMALY_SCORE.into());
    n.push(ANOMALY_THRESHOLD.into());
    n
}

fn main() {
    // REPORT_BENCH_DIR keeps the written week (and reuses it on the next run) and
    // prints the time of each step of a build.
    let tmp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("REPORT_BENCH_DIR").map(std::path::PathBuf::from);
    let state = StateDir::at(kept.clone().unwrap_or_else(|| tmp.path().to_path_buf()));
    std::fs::create_dir_all(state.path()).unwrap();
    let reuse = kept.is_some() && state.history().exists();
    let config = HistoryConfig {
        raw_retention: Duration::from_secs(DAYS as u64 * 86_400),
        ..HistoryConfig::default()
    };
    let names = names();
    let rows = DAYS * 86_400;
    let started = Instant::now();
    if !reuse {
        let mut h = History::open(state.history(), &config).unwrap();
        for i in 0..rows {
            let x = (i as f64 * 0.01).sin().abs();
            let values = names
                .iter()
                .enumerate()
                .map(|(f, n)| {
                    let v = if n.contains("_ratio") {
                        (0.1 + 0.3 * x + 0.01 * f as f64).min(1.0)
                    } else if n.contains("ping_rtt") {
                        0.0004 + 0.0001 * x
                    } else if n == ANOMALY_THRESHOLD {
                        0.07
                    } else if n == ANOMALY_SCORE {
                        0.03 * x
                    } else {
                        (1e5 * x * (f + 1) as f64).round()
                    };
                    (n.clone(), v)
                })
                .collect();
            h.append(&Record {
                timestamp_ms: Some(T0 + i * 1000),
                values,
            })
            .unwrap();
            // As the daemon's writer does every 5 minutes: retention, and merging the
            // minute tier's small blocks.
            if i % 300 == 299 {
                h.prune(T0 + i * 1000).unwrap();
            }
        }
        h.flush().unwrap();
    }
    let size = std::fs::metadata(state.history()).unwrap().len();
    println!(
        "wrote {rows} rows x {} series (7 d at 1 s) in {:.1} s; history.db {:.1} MiB",
        names.len(),
        started.elapsed().as_secs_f64(),
        size as f64 / 1048576.0
    );

    let settings = anomalyd::settings::Config {
        history: config,
        ..Default::default()
    };
    let source = settings.report_source(&state);
    let live = Live {
        facts: HostFacts {
            host_name: "bench".into(),
            os: "Linux".into(),
            kernel: "6".into(),
            arch: "x86_64".into(),
            cores: 8,
            memory_bytes: 16 << 30,
            swap_bytes: 0,
            uptime_seconds: 0,
            links: vec![Link {
                interface: "eth0".into(),
                bits_per_second: 1_000_000_000,
            }],
        },
        processes: None,
        walk_directories: false,
    };
    let until = T0 + rows * 1000;
    for (label, since) in [("1 h", 3600), ("24 h", 86_400), ("7 d", 7 * 86_400)] {
        let mut build = Vec::new();
        let mut render = Vec::new();
        let mut bytes = 0;
        let mut steps = String::new();
        for run in 0..5 {
            let t = Instant::now();
            let mut last = Instant::now();
            let mut step = |s: &str| {
                if run == 0 {
                    steps.push_str(&format!(
                        " {:.0} ms, then {s};",
                        last.elapsed().as_secs_f64() * 1e3
                    ));
                    last = Instant::now();
                }
            };
            let r = report::build(&source, Duration::from_secs(since), until, &live, &mut step)
                .unwrap();
            build.push(t.elapsed());
            let t = Instant::now();
            bytes = report::html(&r).unwrap().len();
            render.push(t.elapsed());
        }
        build.sort();
        render.sort();
        println!(
            "report of {label:>4}: build (read + compute) median {:>6.1} ms, HTML with charts median {:>5.1} ms, {} KiB",
            build[2].as_secs_f64() * 1e3,
            render[2].as_secs_f64() * 1e3,
            bytes / 1024
        );
        if kept.is_some() {
            println!("  steps:{steps}");
        }
    }
}
