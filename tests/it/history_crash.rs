//! The history store survives `kill -9` mid-write: a child process appends (and prunes,
//! which checkpoints and vacuums) as fast as it can; the parent SIGKILLs it at random
//! moments, several times, then checks the file is intact and holds every row the child
//! reported as committed, with no gaps.
//!
//! The child is this test binary re-executed with `--exact history_crash::child_appender` and an
//! environment variable naming the database, the usual way to get a second process
//! without a helper binary.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anomalyd::sample::Record;
use anomalyd::store::{History, Tier, HISTORY_FILE};

const CHILD_ENV: &str = "ANOMALYD_HISTORY_CRASH_CHILD_DB";
/// A whole minute, so row i is the first of its minute exactly when i % 60 == 0.
const T0: i64 = 1_700_000_040_000;
const FEATURES: usize = 40;
const KILLS: usize = 8;

fn config() -> anomalyd::store::HistoryConfig {
    anomalyd::store::HistoryConfig {
        retention: Duration::from_secs(3650 * 86_400),
        raw_retention: Duration::from_secs(3650 * 86_400),
        max_size_bytes: 1 << 40,
    }
}

/// Row `i`: one sample a second, values that identify the row and the feature.
fn row(i: i64) -> Record {
    Record {
        timestamp_ms: Some(T0 + i * 1000),
        values: (0..FEATURES)
            .map(|f| {
                (
                    format!("f{f}{{host=\"crash\"}}"),
                    i as f64 * 1000.0 + f as f64 + 0.5,
                )
            })
            .collect(),
    }
}

/// The child role: append rows from wherever the file ends, forever, printing each
/// committed index. Does nothing when run as an ordinary test.
#[test]
fn child_appender() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut h = History::open(&db, &config()).unwrap();
    let mut next = match h.stats().unwrap().newest_ms {
        Some(newest) => (newest - T0) / 1000 + 1,
        None => 0,
    };
    let mut out = std::io::stdout().lock();
    loop {
        h.append(&row(next)).unwrap();
        // Only after `append` returned: the parent treats this as "committed".
        use std::io::Write;
        writeln!(out, "committed {next}").unwrap();
        out.flush().unwrap();
        if next % 97 == 0 {
            // Checkpoints (WAL -> main file) and vacuums are the riskiest moments.
            h.prune(T0 + next * 1000).unwrap();
        }
        next += 1;
    }
}

#[test]
fn kill_9_mid_write_keeps_every_committed_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(HISTORY_FILE);
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged: i64 = -1;
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "history_crash::child_appender",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read acknowledgements on a thread so the child never blocks on a full pipe.
        let reader = std::thread::spawn(move || {
            let mut last = None;
            let mut lines = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("committed ") {
                    last = Some(n.trim().parse::<i64>().unwrap());
                    lines += 1;
                }
            }
            (last, lines)
        });
        // Let it get going (first appends, then a few hundred more), then kill at a
        // moment that varies per round.
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(150 + 37 * round as u64));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed, not finished");
        let (last, lines) = reader.join().unwrap();
        eprintln!(
            "round {round}: killed after {:?}, {lines} appends acknowledged, last {last:?}",
            start.elapsed()
        );
        if let Some(last) = last {
            assert!(
                last > acknowledged,
                "each round continues from the file's end"
            );
            acknowledged = last;
        }
    }
    assert!(
        acknowledged > 100,
        "the children must have written something"
    );

    // Integrity as SQLite sees it, opened before our own code touches the file.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(check, vec!["ok".to_string()]);
    drop(conn);

    let h = History::open(&db, &config()).unwrap();
    let raw = h.range(i64::MIN, i64::MAX, Tier::Raw).unwrap();
    // A gap-free prefix: rows 0..n, each exactly as written, and n covers every
    // acknowledged row (a row may be committed but killed before its acknowledgement).
    for (i, rec) in raw.iter().enumerate() {
        assert_eq!(rec, &row(i as i64), "raw row {i}");
    }
    let n = raw.len() as i64;
    assert!(
        n > acknowledged,
        "{n} rows on disk but row {acknowledged} was acknowledged"
    );
    // The minute tier was written in the same transactions: exactly the rows i % 60 == 0.
    let minute = h.range(i64::MIN, i64::MAX, Tier::Minute).unwrap();
    let expected: Vec<Record> = (0..n).step_by(60).map(row).collect();
    assert_eq!(minute.len(), expected.len());
    assert!(minute == expected, "minute tier matches the raw rows");
    eprintln!("{n} rows intact after {KILLS} kills");
}
