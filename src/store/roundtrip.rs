//! Property tests of the history store on random data: what the block store reads back
//! equals what the row-per-sample store (schema 1) returned for the same appends, for
//! every reader (`range`, `training_rows`, `series`, `stats`), and a schema 1 file
//! migrated on open reads back the same too.
//!
//! The row-per-sample store is replayed by [`Reference`], its semantics in a few lines
//! (a keyed table per tier: a second row with one timestamp replaces the first in `raw`,
//! `minute` takes the first row of each wall-clock minute, retention deletes rows older
//! than the cutoff, reads are ordered by time). Its schema 1 file is written by
//! [`write_v1`], with the same tables and row encoding (`codec::push`).
//!
//! Random data: NaN (with payloads), ±Inf, -0.0, counters that grow and reset, noisy
//! floats, integers and constants; gaps in time, a clock that steps back, features that
//! appear and disappear, rows whose features come in another order.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::codec;
use super::{History, HistoryConfig, Tier};
use crate::mode::Mode;
use crate::sample::Record;

const MINUTE_MS: i64 = 60_000;
const CASES: u64 = 24;

/// A record with its values as bits, so NaN compares equal to itself.
type Bits = (Option<i64>, Vec<(String, u64)>);

fn bits(records: &[Record]) -> Vec<Bits> {
    records
        .iter()
        .map(|r| {
            (
                r.timestamp_ms,
                r.values
                    .iter()
                    .map(|(n, v)| (n.clone(), v.to_bits()))
                    .collect(),
            )
        })
        .collect()
}

/// Equal, or a panic naming the first difference (whole histories are too long to print).
fn same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], what: String) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{what}: {} rows, expected {}; first difference at row {i}:\n got  {:?}\n want {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

/// The row-per-sample store's semantics.
#[derive(Default)]
struct Reference {
    raw: BTreeMap<i64, Record>,
    minute: BTreeMap<i64, Record>,
}

impl Reference {
    fn append(&mut self, r: &Record) {
        let ts = r.timestamp_ms.unwrap_or(0);
        self.raw.insert(ts, r.clone());
        let m = ts.div_euclid(MINUTE_MS) * MINUTE_MS;
        if self.minute.range(m..m + MINUTE_MS).next().is_none() {
            self.minute.insert(ts, r.clone());
        }
    }

    fn prune(&mut self, now: i64, c: &HistoryConfig) {
        let cut = |d: Duration| now - d.as_millis() as i64;
        self.raw = self.raw.split_off(&cut(c.raw_retention));
        self.minute = self.minute.split_off(&cut(c.retention));
    }

    fn tier(&self, tier: Tier) -> &BTreeMap<i64, Record> {
        match tier {
            Tier::Raw => &self.raw,
            Tier::Minute => &self.minute,
        }
    }

    fn range(&self, from: i64, to: i64, tier: Tier) -> Vec<Record> {
        if from >= to {
            return Vec::new();
        }
        self.tier(tier)
            .range(from..to)
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn training_rows(&self, since: i64, max: usize) -> Vec<Record> {
        if max == 0 {
            return Vec::new();
        }
        let minute: Vec<&Record> = self.minute.range(since..).map(|(_, r)| r).collect();
        let raw: Vec<&Record> = self.raw.range(since..).map(|(_, r)| r).collect();
        let covers = match (raw.first(), minute.first()) {
            (Some(r), Some(m)) => r.timestamp_ms <= m.timestamp_ms,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let rows = if minute.len() < max && raw.len() > minute.len() && covers {
            raw
        } else {
            minute
        };
        let (n, k) = (rows.len(), rows.len().min(max));
        (0..k).map(|i| rows[i * n / k].clone()).collect()
    }

    fn series(&self, name: &str, from: i64, to: i64) -> Vec<(i64, u64)> {
        let split = self
            .raw
            .keys()
            .next()
            .copied()
            .unwrap_or(i64::MAX)
            .clamp(from, to.max(from));
        let mut out = Vec::new();
        for (tier, lo, hi) in [(&self.minute, from, split), (&self.raw, split, to)] {
            if lo < hi {
                for (ts, r) in tier.range(lo..hi) {
                    if let Some((_, v)) = r.values.iter().find(|(n, _)| n == name) {
                        out.push((*ts, v.to_bits()));
                    }
                }
            }
        }
        out
    }
}

/// One random value of feature `f` at row `i`.
fn value(rng: &mut StdRng, f: usize, i: i64, counter: &mut f64) -> f64 {
    match f % 6 {
        0 => match rng.random_range(0..8) {
            0 => f64::NAN,
            1 => f64::from_bits(0x7ff8_0000_0000_0000 | rng.random_range(1..1u64 << 40)),
            2 => f64::INFINITY,
            3 => f64::NEG_INFINITY,
            4 => -0.0,
            _ => rng.random::<f64>() * 1e3,
        },
        1 => {
            // A counter that grows and sometimes resets.
            if rng.random_range(0..50) == 0 {
                *counter = 0.0;
            }
            *counter += rng.random_range(0..5000) as f64;
            *counter
        }
        2 => rng.random::<f64>(),
        3 => (i % 7) as f64,
        4 => 42.0,
        _ => rng.random_range(-1e9..1e9f64).round() / 1e3,
    }
}

/// Random records: 1 s steps with gaps, now and then a step back; each of `features`
/// has its own lifetime (appears late, disappears early, or both), and some rows list
/// their features in another order.
fn records(rng: &mut StdRng) -> Vec<Record> {
    let features = rng.random_range(1..12);
    let n = rng.random_range(1..900);
    let lives: Vec<(i64, i64)> = (0..features)
        .map(|_| {
            let a = if rng.random_bool(0.3) {
                rng.random_range(0..n)
            } else {
                0
            };
            let b = if rng.random_bool(0.3) {
                rng.random_range(a..=n)
            } else {
                n
            };
            (a, b)
        })
        .collect();
    let mut counters = vec![0.0; features];
    let mut ts = 1_700_000_000_000 + rng.random_range(0..MINUTE_MS);
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        ts += match rng.random_range(0..100) {
            0 => rng.random_range(60_000..3_600_000), // a gap
            // The clock steps back, onto rows already stored.
            1 => -1000 * rng.random_range(0..120),
            _ => 1000,
        };
        let mut values: Vec<(String, f64)> = (0..features)
            .filter(|&f| (lives[f].0..lives[f].1).contains(&i))
            .map(|f| {
                (
                    format!("f{f}{{dev=\"d{}\"}}", f % 3),
                    value(rng, f, i, &mut counters[f]),
                )
            })
            .collect();
        if rng.random_range(0..40) == 0 {
            values.reverse();
        }
        out.push(Record {
            timestamp_ms: Some(ts),
            values,
        });
    }
    out
}

fn config(rng: &mut StdRng) -> HistoryConfig {
    HistoryConfig {
        // Shorter than most series, so pruning cuts into them; longer than the clock
        // ever steps back (120 s), see "Retention" in `history.rs`.
        retention: Duration::from_secs(rng.random_range(900..7_200)),
        raw_retention: Duration::from_secs(rng.random_range(300..900)),
        max_size_bytes: 1 << 40,
        flush_interval: Duration::from_secs(rng.random_range(1..120)),
    }
}

/// Every reader of `h` against the reference.
fn compare(h: &History, reference: &Reference, rng: &mut StdRng, seed: u64) {
    for tier in [Tier::Raw, Tier::Minute] {
        same(
            &bits(&h.range(i64::MIN, i64::MAX, tier).unwrap()),
            &bits(&reference.range(i64::MIN, i64::MAX, tier)),
            format!("seed {seed}: range of {tier:?}"),
        );
    }
    let all: Vec<i64> = reference
        .raw
        .keys()
        .chain(reference.minute.keys())
        .copied()
        .collect();
    let pick = |rng: &mut StdRng| match all.len() {
        0 => 0,
        n => all[rng.random_range(0..n)] + rng.random_range(-1..=1),
    };
    for _ in 0..4 {
        let (a, b) = (pick(rng), pick(rng));
        let (from, to) = (a.min(b), a.max(b));
        for tier in [Tier::Raw, Tier::Minute] {
            same(
                &bits(&h.range(from, to, tier).unwrap()),
                &bits(&reference.range(from, to, tier)),
                format!("seed {seed}: range {from}..{to} of {tier:?}"),
            );
        }
        let max = rng.random_range(0..600);
        same(
            &bits(&h.training_rows(from, max).unwrap()),
            &bits(&reference.training_rows(from, max)),
            format!("seed {seed}: training_rows({from}, {max})"),
        );
        let name = format!(
            "f{}{{dev=\"d{}\"}}",
            rng.random_range(0..12),
            rng.random_range(0..3)
        );
        let got: Vec<(i64, u64)> = h
            .series(&name, from, to)
            .unwrap()
            .into_iter()
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        same(
            &got,
            &reference.series(&name, from, to),
            format!("seed {seed}: series {name}"),
        );
    }
    let s = h.stats().unwrap();
    let ends = |m: &BTreeMap<i64, Record>| (m.keys().next().copied(), m.keys().last().copied());
    let ((r0, r1), (m0, m1)) = (ends(&reference.raw), ends(&reference.minute));
    assert_eq!(
        (s.raw_rows, s.minute_rows, s.oldest_ms, s.newest_ms),
        (
            reference.raw.len() as u64,
            reference.minute.len() as u64,
            [r0, m0].into_iter().flatten().min(),
            [r1, m1].into_iter().flatten().max()
        ),
        "seed {seed}: stats"
    );
}

#[test]
fn the_block_store_reads_what_the_row_store_read() {
    for seed in 0..CASES {
        let rng = &mut StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let cfg = config(rng);
        let mode = if seed % 3 == 0 {
            Mode::Replay
        } else {
            Mode::Live
        };
        let mut h = History::open_mode(&path, &cfg, mode).unwrap();
        let mut reference = Reference::default();
        for r in records(rng) {
            h.append(&r).unwrap();
            reference.append(&r);
            let now = r.timestamp_ms.unwrap_or(0);
            match rng.random_range(0..200) {
                // Retention, with the cutoff inside the history.
                0..=2 => {
                    h.prune(now).unwrap();
                    reference.prune(now, &cfg);
                }
                // A restart: what was in memory is written on drop, read back from disk.
                3 => {
                    drop(h);
                    h = History::open_mode(&path, &cfg, mode).unwrap();
                }
                4 => compare(&h, &reference, rng, seed),
                _ => {}
            }
        }
        compare(&h, &reference, rng, seed);
        // Another process sees the same once the block in memory is written.
        h.flush().unwrap();
        let other = History::open(&path, &cfg).unwrap();
        compare(&other, &reference, rng, seed);
    }
}

/// A schema 1 file holding `records` as that store wrote them.
fn write_v1(path: &std::path::Path, records: &[Record]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         CREATE TABLE raw(ts INTEGER PRIMARY KEY, data BLOB NOT NULL);
         CREATE TABLE minute(ts INTEGER PRIMARY KEY, data BLOB NOT NULL);
         INSERT INTO meta VALUES ('schema_version', '1'), ('value_encoding', '1'), ('created_ms', '0');",
    )
    .unwrap();
    for r in records {
        let ts = r.timestamp_ms.unwrap_or(0);
        let mut blob = Vec::new();
        for (name, v) in &r.values {
            conn.execute("INSERT OR IGNORE INTO names(name) VALUES (?1)", [name])
                .unwrap();
            let id: u32 = conn
                .query_row("SELECT id FROM names WHERE name = ?1", [name], |r| r.get(0))
                .unwrap();
            codec::push(&mut blob, id, *v);
        }
        conn.execute(
            "INSERT OR REPLACE INTO raw(ts, data) VALUES (?1, ?2)",
            rusqlite::params![ts, blob],
        )
        .unwrap();
        let m = ts.div_euclid(MINUTE_MS) * MINUTE_MS;
        conn.execute(
            "INSERT INTO minute(ts, data) SELECT ?1, ?2
             WHERE NOT EXISTS (SELECT 1 FROM minute WHERE ts >= ?3 AND ts < ?4)",
            rusqlite::params![ts, blob, m, m + MINUTE_MS],
        )
        .unwrap();
    }
}

#[test]
fn a_schema_1_file_is_migrated_and_reads_the_same() {
    for seed in 100..100 + CASES / 2 {
        let rng = &mut StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let records = records(rng);
        write_v1(&path, &records);
        let mut reference = Reference::default();
        for r in &records {
            reference.append(r);
        }
        let cfg = HistoryConfig::default();
        let h = History::open(&path, &cfg).unwrap();
        compare(&h, &reference, rng, seed);
        drop(h);
        // Migrated once: the old tables are gone, the versions say 2.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["blocks", "meta", "names"], "seed {seed}");
        let version: String = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, "2");
        drop(conn);
        compare(&History::open(&path, &cfg).unwrap(), &reference, rng, seed);
    }
}
