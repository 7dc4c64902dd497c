//! History store figures, plain `std::time` (no harness): `cargo bench --bench history`.
//!
//! * append latency per sample with 100 features (p50/p99/max),
//! * database size per day at 1 s sampling, extrapolated, and for the default retention,
//!   and bytes on disk per stored sample (one feature's value),
//! * `training_frame()` (what a training reads) and `training_rows()` (the same rows as
//!   records) time for 43,200 rows (30 days of minute rows).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anomalyd::sample::Record;
use anomalyd::store::HistoryConfig;
use anomalyd::store::{History, Tier, HISTORY_FILE};

const FEATURES: usize = 100;
const T0: i64 = 1_700_000_040_000;

/// A host-like sample: a third of the features are whole numbers (idle error counters,
/// counts, sizes), the rest fractional rates and ratios.
fn sample(ts: i64, i: i64) -> Record {
    let values = (0..FEATURES)
        .map(|f| {
            let name = format!("feature_{f:03}{{device=\"nvme0n1\",mode=\"m{}\"}}", f % 7);
            let x = (i as f64 * 0.001 + f as f64).sin();
            let v = match f % 3 {
                0 if f % 2 == 0 => 0.0,
                0 => (x.abs() * 1e6).round(),
                1 => x.abs(),
                _ => x.abs() * 123_456.789,
            };
            (name, v)
        })
        .collect();
    Record {
        timestamp_ms: Some(ts),
        values,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let defaults = HistoryConfig::default();
    let dir = tempfile::tempdir().unwrap();

    // --- append latency, and bytes per row ---
    let path = dir.path().join(HISTORY_FILE);
    let mut h = History::open(&path, &defaults).unwrap();
    let n: i64 = 20_000;
    let mut lat = Vec::with_capacity(n as usize);
    for i in 0..n {
        let rec = sample(T0 + i * 1000, i);
        let t = Instant::now();
        h.append(&rec).unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "append, {FEATURES} features, {n} samples: p50 {:?}  p99 {:?}  max {:?}",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    let t = Instant::now();
    h.prune(T0 + n * 1000).unwrap();
    println!("prune (checkpoint, nothing to delete): {:?}", t.elapsed());
    let s = h.stats().unwrap();
    let rows = s.raw_rows + s.minute_rows;
    let per_row = s.size_bytes as f64 / rows as f64;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let blob: f64 = conn
        .query_row(
            "SELECT avg(length(data)) FROM blocks WHERE tier = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    println!(
        "files: main {} B, wal {} B, {pages} pages",
        std::fs::metadata(&path).unwrap().len(),
        std::fs::metadata(dir.path().join(format!("{HISTORY_FILE}-wal")))
            .map(|m| m.len())
            .unwrap_or(0)
    );
    drop(conn);
    let day_raw = per_row * 86_400.0;
    let day_minute = per_row * 1_440.0;
    let mib = |b: f64| b / (1 << 20) as f64;
    println!(
        "size: {} B for {rows} rows = {per_row:.0} B/row on disk (a raw block of ~60 rows is \
         {blob:.0} B; u32 id + f64 would be {} B a row)",
        s.size_bytes,
        FEATURES * 12
    );
    // What Prometheus calls a sample: one value of one series at one time.
    println!(
        "bytes on disk per stored sample (one feature's value): {:.2} (target <= 2)",
        s.size_bytes as f64 / (rows as f64 * FEATURES as f64)
    );
    println!(
        "per day at 1 s: raw {:.1} MiB + minute {:.2} MiB; defaults ({} d raw, {} d minute): {:.0} MiB",
        mib(day_raw),
        mib(day_minute),
        defaults.raw_retention.as_secs() / 86_400,
        defaults.retention.as_secs() / 86_400,
        mib(day_raw * (defaults.raw_retention.as_secs() as f64 / 86_400.0)
            + day_minute * (defaults.retention.as_secs() as f64 / 86_400.0))
    );
    drop(h);

    // --- training_rows over 30 days of minute rows ---
    let path = dir.path().join("training.db");
    let cfg = HistoryConfig {
        raw_retention: Duration::from_secs(3600),
        ..defaults.clone()
    };
    let mut h = History::open(&path, &cfg).unwrap();
    let minutes: i64 = 43_200;
    let t = Instant::now();
    for i in 0..minutes {
        h.append(&sample(T0 + i * 60_000, i)).unwrap();
    }
    let fill = t.elapsed();
    let now = T0 + minutes * 60_000;
    h.prune(now).unwrap();
    let s = h.stats().unwrap();
    println!(
        "training db: {} minute rows, {} raw rows, {:.1} MiB (filled in {fill:?})",
        s.minute_rows,
        s.raw_rows,
        mib(s.size_bytes as f64)
    );
    // What a training reads (a frame), and the same rows as records.
    for max_rows in [43_200usize, 10_000] {
        for frame in [true, false] {
            let mut times = Vec::new();
            let mut got = 0;
            for _ in 0..5 {
                let t = Instant::now();
                got = if frame {
                    h.training_frame(0, max_rows, i64::MAX).unwrap().len()
                } else {
                    h.training_rows(0, max_rows).unwrap().len()
                };
                times.push(t.elapsed());
            }
            times.sort();
            let what = if frame {
                "training_frame"
            } else {
                "training_rows"
            };
            println!(
                "{what}(max_rows={max_rows}) -> {got} rows: median {:?} (min {:?})",
                times[2], times[0]
            );
        }
    }
    let t = Instant::now();
    let last_hour = h.range(now - 3_600_000, now, Tier::Raw).unwrap().len();
    println!(
        "range(last hour, raw) -> {last_hour} rows: {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let pts = h
        .series("feature_042{device=\"nvme0n1\",mode=\"m0\"}", 0, now)
        .unwrap()
        .len();
    println!(
        "series(one feature, 30 days) -> {pts} points: {:?}",
        t.elapsed()
    );
}
