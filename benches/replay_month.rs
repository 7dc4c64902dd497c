//! A month of 1 s samples through `anomalyd replay` with the daemon's defaults: what a
//! backtest of a month of the daemon's own history costs ("what would this config
//! have opened?"). No harness: `cargo bench --profile ci --bench replay_month`.
//!
//! Writes `DAYS` (default 30; 1 under `cargo test`) days of one row a second of 38 columns (daily cycles,
//! noise, a slow trend, counters; 2.6 million rows, about 0.9 GB of CSV) into a
//! temporary directory, then runs the built `anomalyd replay` on it once with
//! `interval: 1s` and every other setting at its default (one hour of warm-up,
//! retraining every 6 h on up to 43,200 rows, tickets), and prints wall and CPU time,
//! rows a second and the replay's peak RSS. `ANOMALYD=path` replays with another
//! build; `KEEP=dir` writes the CSV there and keeps it for the next run.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use rand::{Rng, SeedableRng};

const COLUMNS: usize = 38;
const T0: i64 = 1_767_571_200; // 2026-01-05 00:00 UTC

fn write_month(path: &std::path::Path, days: u64) -> u64 {
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let head: Vec<String> = (0..COLUMNS).map(|j| format!("m{j}")).collect();
    writeln!(out, "timestamp,{}", head.join(",")).unwrap();
    let rows = days * 86_400;
    let mut walk = [0.0f64; COLUMNS];
    let mut counter = [0u64; COLUMNS];
    let mut line = String::with_capacity(512);
    for i in 0..rows {
        let t = T0 + i as i64;
        let hour = (t.rem_euclid(86_400)) as f64 / 3600.0;
        let busy = 0.5 - 0.5 * (std::f64::consts::TAU * (hour - 3.0) / 24.0).cos();
        line.clear();
        use std::fmt::Write as _;
        write!(line, "{t}").unwrap();
        for j in 0..COLUMNS {
            let noise: f64 = rng.random_range(-1.0..1.0);
            let v = match j % 4 {
                // Ratios with a daily cycle.
                0 => (0.1 + 0.5 * busy * (1.0 + j as f64 / 40.0) + 0.02 * noise).clamp(0.0, 1.0),
                // A slow random walk (memory, a filesystem filling).
                1 => {
                    walk[j] += 0.001 * noise;
                    1e9 * (1.0 + walk[j].tanh() * 0.1)
                }
                // Events a second: whole counts.
                2 => {
                    counter[j] = (50.0 * busy + 5.0 * noise.abs()) as u64;
                    counter[j] as f64
                }
                // Latencies with a heavy tail.
                _ => 0.002 * (1.0 + busy) * (1.0 + noise.abs().powi(6) * 20.0),
            };
            write!(line, ",{v:.6}").unwrap();
        }
        line.push('\n');
        out.write_all(line.as_bytes()).unwrap();
    }
    out.flush().unwrap();
    rows
}

/// CPU seconds (user + system) and peak RSS (KiB) of the children waited for so far.
fn children_usage() -> (f64, i64) {
    // SAFETY: getrusage writes into the struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(u.ru_utime) + s(u.ru_stime), u.ru_maxrss)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` (the test suite) runs
    // this too, without it: a day then, to check the bench still works, not a month
    // (1.15 GB of CSV and a minute) at every test run.
    let bench = std::env::args().any(|a| a == "--bench");
    let days: u64 = std::env::var("DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(if bench { 30 } else { 1 });
    let bin = std::env::var("ANOMALYD").unwrap_or_else(|_| env!("CARGO_BIN_EXE_anomalyd").into());
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = std::env::var("KEEP")
        .map(PathBuf::from)
        .unwrap_or(tmp.path().into());
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join(format!("month-{days}d-1s.csv"));
    let rows = if csv.exists() {
        days * 86_400
    } else {
        let t = Instant::now();
        let rows = write_month(&csv, days);
        println!(
            "wrote {rows} rows × {COLUMNS} columns in {:.1?}",
            t.elapsed()
        );
        rows
    };
    let size = std::fs::metadata(&csv).unwrap().len();
    let cfg = tmp.path().join("replay.yaml");
    std::fs::write(&cfg, "interval: 1s\n").unwrap();
    let state = tmp.path().join("state");
    let t = Instant::now();
    let status = Command::new(&bin)
        .args(["replay", "--input"])
        .arg(&csv)
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let (cpu, rss_kib) = children_usage();
    let log = String::from_utf8_lossy(&status.stderr);
    let tickets = log
        .lines()
        .find(|l| l.starts_with("replay: "))
        .unwrap_or("");
    println!(
        "{rows} rows ({:.0} MB of CSV): {wall:.1} s wall, {cpu:.1} s CPU, peak RSS {} MB: \
         {:.0} rows/s wall, {:.0} rows per CPU second; {tickets}",
        size as f64 / 1e6,
        rss_kib / 1024,
        rows as f64 / wall,
        rows as f64 / cpu
    );
}
