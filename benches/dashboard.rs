//! Dashboard page render time, server side, from 7 days of 1 s history:
//! `cargo bench --profile ci --bench dashboard`.
//!
//! Writes a week of samples at 1 s (604,800 rows: CPU, memory, a disk, a link, three
//! ping targets, the score and its threshold) with the history API into a temporary
//! state directory, then times what a request for each page does after admission: the
//! history reads (the minute tier beyond 6 h, raw below), the data layer, the SVG
//! charts and the HTML. Prints the median and the worst of [`RUNS`] for each page and
//! range, and what parts of it cost alone. The first request of a minute also finds
//! the raw tier's oldest row (printed on its own), which the pages then remember for a
//! minute. Plain `std::time`, no harness.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anomalyd::export::web::live::Snapshot;
use anomalyd::export::web::overview::{latency_page, overview_page};
use anomalyd::export::web::views::Views;
use anomalyd::sample::Record;
use anomalyd::store::derived::{ANOMALY_SCORE, ANOMALY_THRESHOLD};
use anomalyd::store::{History, HistoryConfig, StateDir};
use anomalyd::view::heatmap::COLUMNS;
use anomalyd::view::HealthConfig;

const RUNS: usize = 7;
const WEEK_S: i64 = 7 * 86_400;

fn record(ts: i64, i: i64) -> Record {
    let x = (i as f64 / 3600.0).sin();
    let mut values = vec![
        (
            "cpu_utilization_ratio{mode=\"idle\"}".to_string(),
            0.7 + 0.2 * x,
        ),
        ("cpu_utilization_ratio{mode=\"iowait\"}".to_string(), 0.01),
        (
            "cpu_utilization_ratio{mode=\"user\"}".to_string(),
            0.2 - 0.1 * x,
        ),
        ("memory_used_ratio".to_string(), 0.45 + 0.05 * x),
        (
            "disk_busy_ratio{device=\"sda\"}".to_string(),
            0.1 + 0.05 * x.abs(),
        ),
        (
            "network_receive_bytes_per_second{interface=\"eth0\"}".to_string(),
            1e6 * (1.0 + x),
        ),
        (
            "network_transmit_bytes_per_second{interface=\"eth0\"}".to_string(),
            5e5 * (1.0 + x),
        ),
        (
            ANOMALY_SCORE.to_string(),
            0.3 + 0.2 * x.abs() + if i % 50_000 < 300 { 3.0 } else { 0.0 },
        ),
        (ANOMALY_THRESHOLD.to_string(), 1.0),
    ];
    for (t, base) in [("gw", 0.0004), ("dns", 0.002), ("remote", 0.03)] {
        let jitter = ((i * 7919) % 100) as f64 / 100.0;
        let lost = if i % 20_000 < 120 { 1.0 } else { 0.0 };
        let labels = format!("{{target=\"{t}\",address=\"192.0.2.1\"}}");
        values.push((
            format!("ping_rtt_min_seconds{labels}"),
            base * (0.9 + 0.1 * jitter),
        ));
        values.push((
            format!("ping_rtt_median_seconds{labels}"),
            base * (1.0 + 0.2 * jitter),
        ));
        values.push((
            format!("ping_rtt_max_seconds{labels}"),
            base * (1.2 + 0.5 * jitter),
        ));
        values.push((format!("ping_loss_ratio{labels}"), lost));
    }
    Record {
        timestamp_ms: Some(ts),
        values,
    }
}

fn time(what: &str, mut f: impl FnMut() -> usize) {
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        bytes = f();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{what:<28} median {:>7.1} ms   worst {:>7.1} ms   ({} KiB out)",
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3,
        bytes / 1024
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // `ANOMALYD_BENCH_DIR=DIR`: keep the week's history there and reuse it next time.
    let state = StateDir::at(
        std::env::var("ANOMALYD_BENCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| dir.path().to_path_buf()),
    );
    // Keep the whole week in the raw tier too: the worst case for the file's size; the
    // pages read the minute tier beyond 6 h either way.
    let config = HistoryConfig {
        raw_retention: Duration::from_secs(8 * 86_400),
        retention: Duration::from_secs(30 * 86_400),
        ..HistoryConfig::default()
    };
    let now = anomalyd::sample::now_ms() / 1000 * 1000;
    let start = now - WEEK_S * 1000;
    let t = Instant::now();
    let reuse = state.history().exists();
    if !reuse {
        let mut h = History::open(state.history(), &config).unwrap();
        for i in 0..WEEK_S {
            let ts = start + i * 1000;
            h.append(&record(ts, i)).unwrap();
            // As the daemon does every few minutes: expire, and merge the minute tier's
            // small blocks.
            if i % 300 == 299 {
                h.prune(ts).unwrap();
            }
        }
        h.flush().unwrap();
    }
    if reuse {
        println!("reusing the week of history in {}", state.path().display());
    } else {
        println!(
            "wrote 7 days of 1 s history ({WEEK_S} rows, 21 series) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    {
        let h = History::open(state.history(), &config).unwrap();
        for (since, tier) in [
            (3600, anomalyd::store::Tier::Raw),
            (WEEK_S, anomalyd::store::Tier::Minute),
        ] {
            time(&format!("  one series {since} s"), || {
                h.tier_series(ANOMALY_SCORE, now - since * 1000, now, tier)
                    .unwrap()
                    .len()
            });
        }
        time("  the raw tier's oldest row", || {
            h.oldest_in(anomalyd::store::Tier::Raw).unwrap().is_some() as usize
        });
        time("  host facts", || {
            anomalyd::view::facts::HostFacts::gather(std::path::Path::new("/sys")).cores
        });
    }
    let views = Views::new(
        state,
        config,
        "/sys".into(),
        HealthConfig::default().weights,
    );
    let snapshot = Snapshot::default();
    for (since, name) in [(3600, "1h"), (86_400, "24h"), (WEEK_S as u64, "7d")] {
        let since = Duration::from_secs(since);
        time(&format!("overview ?since={name}"), || {
            let data = views.overview(&[], since, now);
            assert!(data.is_ok());
            overview_page(&snapshot, &[], Some(data), since)
                .into_string()
                .len()
        });
        time("  its data alone", || {
            views.overview(&[], since, now).unwrap().health.parts.len()
        });
        time("  its score chart alone", || {
            let t = views.timeline(&[], since, now).unwrap();
            anomalyd::view::charts::score_chart(&t).unwrap().len()
        });
        time(&format!("latency ?since={name}"), || {
            let maps = views.heatmaps(since, now, COLUMNS, None).unwrap();
            assert_eq!(maps.len(), 3);
            latency_page(&maps, since, None).into_string().len()
        });
        time("  its data alone", || {
            views.heatmaps(since, now, COLUMNS, None).unwrap().len()
        });
    }
}
