//! The history store survives `kill -9` mid-write: a child process appends (writing a
//! block every `flush_interval` of its samples, and pruning, which checkpoints and
//! vacuums) as fast as it can; the parent SIGKILLs it at 20 random moments. After each
//! kill the file passes SQLite's integrity check and opens cleanly, and what it holds is
//! every row from the first up to at least the last acknowledged row minus one flush
//! interval: only the samples still in memory are lost, never older ones, and never
//! with a gap. The next child continues from the file's end.
//!
//! The child is this test binary re-executed with `--exact history_crash::child_appender` and an
//! environment variable naming the database, the usual way to get a second process
//! without a helper binary.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use anomalyd::sample::Record;
use anomalyd::store::{History, Tier, HISTORY_FILE};

const CHILD_ENV: &str = "ANOMALYD_HISTORY_CRASH_CHILD_DB";
/// A whole minute, so row i is the first of its minute exactly when i % 60 == 0.
const T0: i64 = 1_700_000_040_000;
const STEP_MS: i64 = 1000;
const FEATURES: usize = 40;
const KILLS: usize = 20;
/// In the samples' own time: a block every 6 rows, so most kills land between writes
/// and some during one.
const FLUSH: Duration = Duration::from_secs(5);

fn config() -> anomalyd::store::HistoryConfig {
    anomalyd::store::HistoryConfig {
        retention: Duration::from_secs(3650 * 86_400),
        raw_retention: Duration::from_secs(3650 * 86_400),
        max_size_bytes: 1 << 40,
        flush_interval: FLUSH,
    }
}

/// Row `i`: one sample a second, values that identify the row and the feature, some
/// constant, some integer, some not.
fn row(i: i64) -> Record {
    Record {
        timestamp_ms: Some(T0 + i * STEP_MS),
        values: (0..FEATURES)
            .map(|f| {
                let v = match f % 3 {
                    0 => i as f64 * 1000.0 + f as f64 + 0.5,
                    1 => (i * 4096) as f64,
                    _ => f as f64,
                };
                (format!("f{f}{{host=\"crash\"}}"), v)
            })
            .collect(),
    }
}

/// The child role: append rows from wherever the file ends, forever, printing each
/// appended index. Does nothing when run as an ordinary test.
#[test]
fn child_appender() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut h = History::open(&db, &config()).unwrap();
    let mut next = match h.stats().unwrap().newest_ms {
        Some(newest) => (newest - T0) / STEP_MS + 1,
        None => 0,
    };
    let mut out = std::io::stdout().lock();
    loop {
        h.append(&row(next)).unwrap();
        // Only after `append` returned: in memory at least, written within FLUSH.
        use std::io::Write;
        writeln!(out, "appended {next}").unwrap();
        out.flush().unwrap();
        if next % 97 == 0 {
            // Checkpoints (WAL -> main file) and vacuums are the riskiest moments.
            h.prune(T0 + next * STEP_MS).unwrap();
        }
        next += 1;
    }
}

/// What the file holds, checked: SQLite's integrity check, then the store opens and
/// its rows are exactly rows 0..n and the minute tier exactly their i % 60 == 0 rows.
/// Returns n.
fn check_file(db: &std::path::Path) -> i64 {
    // Integrity as SQLite sees it, opened before our own code touches the file.
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(check, vec!["ok".to_string()]);
    drop(conn);

    let h = History::open(db, &config()).unwrap();
    let raw = h.range(i64::MIN, i64::MAX, Tier::Raw).unwrap();
    for (i, rec) in raw.iter().enumerate() {
        assert_eq!(rec, &row(i as i64), "raw row {i}: a gap or a changed value");
    }
    let n = raw.len() as i64;
    // The minute tier is written in the same transactions as the raw rows.
    let minute = h.range(i64::MIN, i64::MAX, Tier::Minute).unwrap();
    let expected: Vec<Record> = (0..n).step_by(60).map(row).collect();
    assert_eq!(minute.len(), expected.len());
    assert!(minute == expected, "minute tier matches the raw rows");
    n
}

#[test]
fn kill_9_loses_at_most_the_last_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(HISTORY_FILE);
    let exe = std::env::current_exe().unwrap();
    let seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments from seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let flush_rows = FLUSH.as_millis() as i64 / STEP_MS;
    let mut on_disk: i64 = 0;
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
        // Read acknowledgements on a thread so the child never blocks on a full pipe;
        // the first one says the child is appending.
        let (started_tx, started) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("appended ") {
                    if last.is_none() {
                        let _ = started_tx.send(());
                    }
                    last = Some(n.trim().parse::<i64>().unwrap());
                }
            }
            last
        });
        started
            .recv_timeout(Duration::from_secs(60))
            .expect("the child started appending");
        let delay = Duration::from_micros(rng.random_range(0..300_000));
        let start = Instant::now();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed, not finished");
        let last = reader.join().unwrap().unwrap();
        let n = check_file(&db);
        eprintln!(
            "round {round}: killed {:?} into appending, last appended row {last}, {n} rows on disk",
            start.elapsed()
        );
        assert!(
            n >= on_disk,
            "round {round}: rows that were on disk are gone ({n} < {on_disk})"
        );
        // Rows 0..n are on disk; the ones lost are within one flush interval of the
        // last appended row.
        assert!(
            n > last - flush_rows,
            "round {round}: row {last} was appended but only rows up to {} are on disk, more than {FLUSH:?} of samples lost",
            n - 1
        );
        on_disk = n;
    }
    assert!(on_disk > 100, "the children must have written something");
}
