//! The history store: every sample the daemon takes, in one SQLite file
//! (`<state_dir>/history.db`), in two tiers, as compressed blocks.
//!
//! * `raw` keeps every sample for `raw_retention` (2 days by default): recent detail for
//!   reports ("the last hour") and forecasts.
//! * `minute` keeps the *first* sample of each wall-clock minute for `retention` (30 days):
//!   what training reads. It is a subsample, not a per-minute mean, because the model
//!   scores raw samples and must learn their real spread; a mean would make normal noise
//!   look anomalous.
//!
//! Samples are appended to a block in memory, one per tier, and the block is written
//! (one row, one transaction) once it spans `flush_interval` (60 s by default): a
//! minute of samples at 1 s costs one small compressed write instead of sixty row
//! inserts. Readers of the same `History` see the block in memory too; other processes
//! see what was written.
//!
//! Schema (version [`SCHEMA_VERSION`], checked on open; blocks encoded as described in
//! `codec.rs`, format [`VALUE_ENCODING`]; a version 1 file is migrated on open):
//!
//! ```sql
//! meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)    -- versions, retention watermarks
//! names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)
//! blocks(id INTEGER PRIMARY KEY, tier INTEGER, start_ts INTEGER, end_ts INTEGER,
//!        rows INTEGER, data BLOB)                 -- tier 0 raw, 1 minute; ts Unix ms
//! ```
//!
//! Feature names are interned once in `names` (and cached in memory) so a block stores
//! small ids, not the ~40-byte names. Two rows with one timestamp (a clock stepped
//! back): the later one is read, as a replacing insert would leave it.
//!
//! Retention moves a per-tier watermark (rows older are no longer read) and deletes the
//! blocks entirely behind it, so a read returns exactly the rows a row-per-sample table
//! would still hold. One difference: a sample that is already older than its tier's
//! watermark when it is appended (the clock stepped back by more than the retention,
//! two days for `raw`) is not read back; the row store kept it until its next prune.
//!
//! The API is synchronous: the daemon calls it from a dedicated thread. A `History` is
//! `Send` but not `Sync` (one connection, one user at a time).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use super::blocks::{Buffer, Part, Rows};
use super::codec;
use super::sqlite;
use super::HistoryConfig;
use crate::mode::Mode;
use crate::sample::{Frame, Record};

pub use super::state_dir::HISTORY_FILE;
/// Version of the table layout; a file with another version is refused on open, except
/// version 1 (one row per sample), which is migrated.
pub const SCHEMA_VERSION: i64 = 2;
/// Version of the encoding in `codec.rs`: 2 for blocks, 1 for schema 1's rows.
pub const VALUE_ENCODING: i64 = 2;

const MINUTE_MS: i64 = 60_000;
/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// A WAL bigger than this is truncated back to it after a checkpoint; without a limit a
/// single large prune would leave a WAL file as large as the blocks it deleted.
const JOURNAL_SIZE_LIMIT: i64 = 8 << 20;
/// Free pages beyond this share of the file are returned to the filesystem even when
/// under the size bound (e.g. after `retention` was shortened). Below it they are left
/// for the next blocks to reuse, which is cheaper than moving pages around.
const MAX_FREE_SHARE: f64 = 0.25;
/// Each size-bound round deletes at least this share of each tier's oldest blocks.
const MIN_EVICT_SHARE: f64 = 0.05;
/// How long a checkpoint waits for readers in other processes before giving up.
const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// More distinct feature names than any host has; see [`feature_id`].
const MAX_FEATURE_ID: u32 = 1 << 24;
/// Other processes (a `train` or `report` command) may hold a read lock briefly.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes per database page. A block a minute is ~10 KB: with SQLite's default 4 KiB
/// pages, the pages of the table, its index and the file header that a commit rewrites
/// cost more than the block itself, written once to the WAL and once more at the
/// checkpoint; 1 KiB pages write a fraction of that. (Set on new files only.)
const PAGE_SIZE: i64 = 1024;
/// A replay's scratch file holds plain blocks of ~1 MB: with small pages each is a
/// chain of a thousand overflow pages, walked one by one at every read (training
/// reads the whole history at each retraining). 64 KiB pages make that chain short.
const SCRATCH_PAGE_SIZE: i64 = 65536;
/// Minute-tier blocks are written with the raw block, a row or so each; once this many
/// small ones have gathered, `prune` merges them into one (an hour of minute rows
/// compresses ten times better than sixty one-row blocks).
const MINUTE_COMPACT_BLOCKS: i64 = 60;
/// A replay's block: as many rows as fit a block, written without compression (see
/// [`History::open_mode`]).
const SCRATCH_BLOCK_ROWS: usize = 4096;
/// Rows a migrated or live block holds at most (an hour at 1 s): a live block is cut by
/// `flush_interval` long before, except at sub-second intervals.
const BLOCK_ROWS: usize = 3600;
/// While the disk refuses writes, rows stay in memory for this many flush intervals,
/// then are dropped (counted): a full disk must not grow the daemon without bound.
const MAX_UNWRITTEN_FLUSHES: i64 = 10;
/// `meta` keys of the tiers' retention watermarks.
const KEPT_FROM_KEYS: [&str; 2] = ["raw_kept_from_ms", "minute_kept_from_ms"];

/// Why the history store failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history database {}: {op}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("history database {}: not a SQLite database ({detail})", path.display())]
    NotADatabase { path: PathBuf, detail: String },
    #[error(
        "history database {}: a SQLite database, but not an anomalyd history (it has tables and no `meta` table)",
        path.display()
    )]
    Foreign { path: PathBuf },
    #[error(
        "history database {}: {key} is {found:?}, this anomalyd reads version {supported} (written by another anomalyd version?)",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        key: &'static str,
        found: String,
        supported: i64,
    },
    #[error("history database {}: corrupt: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("history database {}: record has no timestamp; history rows are keyed by time", path.display())]
    NoTimestamp { path: PathBuf },
    #[error("history database {}: {op}", path.display())]
    Sqlite {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

impl HistoryError {
    /// Whether the file itself is unusable (not SQLite, corrupt, someone else's, or a
    /// version we can't read), as opposed to a transient or environmental failure
    /// (permissions, disk full, locked). Only the former justifies moving the file aside.
    pub fn is_unusable_file(&self) -> bool {
        matches!(
            self,
            HistoryError::NotADatabase { .. }
                | HistoryError::Foreign { .. }
                | HistoryError::UnsupportedVersion { .. }
                | HistoryError::Corrupt { .. }
        )
    }
}

/// Which tier to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Every sample, for `raw_retention`.
    Raw,
    /// The first sample of each wall-clock minute, for `retention`.
    Minute,
}

impl Tier {
    /// The `tier` column's value.
    fn code(self) -> i64 {
        match self {
            Tier::Raw => 0,
            Tier::Minute => 1,
        }
    }

    fn slot(self) -> usize {
        self.code() as usize
    }
}

/// What [`History::stats`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    pub raw_rows: u64,
    pub minute_rows: u64,
    /// Oldest/newest timestamp in either tier (Unix ms); `None` when empty.
    pub oldest_ms: Option<i64>,
    pub newest_ms: Option<i64>,
    /// Database pages plus the write-ahead log, in bytes.
    pub size_bytes: u64,
}

/// What one [`History::prune`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneStats {
    /// Rows in blocks deleted because all of their rows were older than the tier's
    /// retention (rows of a block that straddles the cutoff are hidden at once and
    /// deleted with their block).
    pub raw_expired: u64,
    pub minute_expired: u64,
    /// Rows in the oldest blocks, deleted to get under `max_size_bytes`.
    pub raw_evicted: u64,
    pub minute_evicted: u64,
    pub size_before: u64,
    pub size_after: u64,
}

/// The in-memory copy of the `names` table.
#[derive(Default)]
struct Names {
    ids: HashMap<String, u32>,
    /// Indexed by id: ids are dense from 1.
    by_id: Vec<Option<String>>,
    max_id: i64,
}

impl Names {
    fn insert(&mut self, id: u32, name: String) {
        self.max_id = self.max_id.max(i64::from(id));
        let slot = id as usize;
        if self.by_id.len() <= slot {
            self.by_id.resize(slot + 1, None);
        }
        self.by_id[slot] = Some(name.clone());
        self.ids.insert(name, id);
    }

    fn name(&self, id: u32) -> Option<String> {
        self.by_id.get(id as usize).and_then(Clone::clone)
    }
}

/// An open history database. See the module documentation.
pub struct History {
    conn: Connection,
    path: PathBuf,
    config: HistoryConfig,
    /// Live: blocks are cut by `flush_interval` and compressed. Replay: cut by size,
    /// stored plain, never synced (see [`History::open_mode`]).
    mode: Mode,
    /// Behind a `RefCell` so the `&self` readers can pick up names that another process
    /// (the daemon, while a CLI command reads) added since we loaded them.
    names: RefCell<Names>,
    /// Rows appended and not yet written, per tier (`Tier::slot`).
    buffers: [Buffer; 2],
    /// Start of the newest minute that has a minute-tier row.
    newest_minute: Option<i64>,
    /// Per tier, rows older than this are gone (retention and the size bound): blocks
    /// entirely older are deleted, the rest of a straddling block is hidden.
    kept_from: [i64; 2],
    kept_from_dirty: bool,
    /// Per tier, the newest row of the block that ends first (`None`: no blocks): what
    /// `prune` compares with the watermark before touching the file.
    oldest_end: [Option<i64>; 2],
    /// Nothing was written since `prune` last measured the file, so its size is known
    /// to be within the bound.
    size_settled: bool,
    /// Rows dropped from memory because the disk refused them for too long.
    dropped: u64,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("path", &self.path)
            .field("config", &self.config)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl History {
    /// Open (or create) the history database at `path` for the live daemon or a
    /// command that reads it.
    ///
    /// Fails with [`HistoryError::NotADatabase`], [`HistoryError::Corrupt`],
    /// [`HistoryError::Foreign`] or [`HistoryError::UnsupportedVersion`] when the file
    /// can't be used as is; [`History::open_or_reset`] handles those by starting afresh.
    /// A schema 1 file (one SQLite row per sample) is migrated to blocks, in one
    /// transaction: if that fails, the file is left as it was.
    pub fn open(path: impl AsRef<Path>, config: &HistoryConfig) -> Result<History, HistoryError> {
        History::open_mode(path, config, Mode::Live)
    }

    /// [`History::open`] for `mode`. In [`Mode::Replay`] the history is a replay's
    /// scratch state, rebuilt by running the replay again, so it is written for speed:
    /// blocks of [`SCRATCH_BLOCK_ROWS`] rows, stored without compression, and
    /// `synchronous=OFF` (never an fsync). What is read back is the same either way.
    pub fn open_mode(
        path: impl AsRef<Path>,
        config: &HistoryConfig,
        mode: Mode,
    ) -> Result<History, HistoryError> {
        let path = path.as_ref().to_path_buf();
        check_header(&path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| HistoryError::Io {
                path: path.clone(),
                op: "cannot create its directory",
                source,
            })?;
        }
        // Crash safety: in WAL mode a commit appends its pages to the `-wal` file with
        // write(2); synchronous=NORMAL skips the fsync at commit and only syncs at
        // checkpoints. A killed process (kill -9, OOM killer, panic=abort) cannot lose
        // anything already handed to the kernel, so every flushed block survives and the
        // file is never corrupt; what was still in memory (at most `flush_interval` of
        // samples) is lost. Only an OS crash or power loss can roll back the last
        // transactions — still to a consistent state. (tests/it/history_crash.rs kills a
        // writer with SIGKILL and checks this.)
        let pragmas = sqlite::Pragmas {
            busy_timeout: BUSY_TIMEOUT,
            synchronous: match mode {
                Mode::Live => "NORMAL",
                Mode::Replay => "OFF",
            },
            // Must precede the first CREATE TABLE to take effect (a no-op on an existing
            // file): lets `prune` give freed pages back without a full VACUUM.
            auto_vacuum: Some("INCREMENTAL"),
            journal_size_limit: Some(JOURNAL_SIZE_LIMIT),
            // A replay's scratch store keeps SQLite's default: it lives for one run.
            cache_kib: match mode {
                Mode::Live => Some(sqlite::DAEMON_CACHE_KIB),
                Mode::Replay => None,
            },
        };
        let page_size = match mode {
            Mode::Live => PAGE_SIZE,
            Mode::Replay => SCRATCH_PAGE_SIZE,
        };
        let conn = sqlite::open_paged(&path, &pragmas, Some(page_size))
            .map_err(|e| sql_err(&path, e.op)(e.source))?;
        let mut history = History {
            conn,
            path,
            config: config.clone(),
            mode,
            names: RefCell::new(Names::default()),
            buffers: [Buffer::default(), Buffer::default()],
            newest_minute: None,
            kept_from: [i64::MIN; 2],
            kept_from_dirty: false,
            oldest_end: [None; 2],
            size_settled: false,
            dropped: 0,
        };
        history.init_schema()?;
        history.refresh_names()?;
        history.kept_from = history.read_kept_from()?;
        history.read_oldest_end()?;
        let newest_minute: Option<i64> = history
            .conn
            .query_row(
                "SELECT max(end_ts) FROM blocks WHERE tier = ?1",
                [Tier::Minute.code()],
                |r| r.get(0),
            )
            .map_err(sql_err(&history.path, "cannot read the newest minute"))?;
        history.newest_minute = newest_minute.map(minute_of);
        Ok(history)
    }

    /// Open the database; if the file is unusable (see [`HistoryError::is_unusable_file`]),
    /// move it (and its `-wal`) aside to `<name>.corrupt-<unix seconds>` and create a fresh
    /// one. The second value says what was wrong and where the old file went, for the log.
    ///
    /// Environmental errors (permissions, disk full, locked) are returned: moving a good
    /// file aside because of them would throw history away.
    pub fn open_or_reset(
        path: impl AsRef<Path>,
        config: &HistoryConfig,
        mode: Mode,
    ) -> Result<(History, Option<String>), HistoryError> {
        let path = path.as_ref();
        let problem = match History::open_mode(path, config, mode) {
            Ok(h) => return Ok((h, None)),
            Err(e) if e.is_unusable_file() => e,
            Err(e) => return Err(e),
        };
        let aside = move_aside(path)?;
        let history = History::open_mode(path, config, mode)?;
        Ok((
            history,
            Some(format!(
                "{problem}; moved it to {} and started a new history",
                aside.display()
            )),
        ))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How often a live block is written (`history.flush_interval`).
    pub fn flush_interval(&self) -> Duration {
        self.config.flush_interval
    }

    /// Rows dropped from memory because the disk refused them for longer than
    /// [`MAX_UNWRITTEN_FLUSHES`] flush intervals.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Store one sample: always in `raw`, and in `minute` if it is the first sample of its
    /// wall-clock minute. The sample joins the block in memory (readers of this
    /// `History` see it at once); the block is written when it spans `flush_interval`
    /// (live) or is full (replay). A second sample with the same timestamp replaces the
    /// first in `raw` (clock stepped back) and leaves `minute` alone.
    ///
    /// An error means the block could not be written: the rows stay in memory and the
    /// next append tries again, until they have waited [`MAX_UNWRITTEN_FLUSHES`] flush
    /// intervals and are dropped.
    pub fn append(&mut self, record: &Record) -> Result<(), HistoryError> {
        let ts = record
            .timestamp_ms
            .ok_or_else(|| HistoryError::NoTimestamp {
                path: self.path.clone(),
            })?;
        let minute = minute_of(ts);
        let first_of_minute = match self.newest_minute {
            None => true,
            Some(newest) if minute > newest => true,
            Some(newest) if minute == newest => false,
            // The clock stepped back into an earlier minute: look for a row there.
            Some(_) => self
                .timestamps(Tier::Minute, minute, minute.saturating_add(MINUTE_MS))?
                .is_empty(),
        };
        self.push(Tier::Raw, ts, &record.values)?;
        if first_of_minute {
            self.push(Tier::Minute, ts, &record.values)?;
            self.newest_minute = Some(self.newest_minute.map_or(minute, |n| n.max(minute)));
        }
        if self.flush_due(ts) {
            if let Err(e) = self.flush() {
                let span = self.buffers[Tier::Raw.slot()]
                    .first_ts()
                    .map_or(0, |first| ts.saturating_sub(first));
                if span >= MAX_UNWRITTEN_FLUSHES * duration_ms(self.config.flush_interval) {
                    self.dropped += self.buffers[Tier::Raw.slot()].len() as u64;
                    for b in &mut self.buffers {
                        b.clear();
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn push(&mut self, tier: Tier, ts: i64, values: &[(String, f64)]) -> Result<(), HistoryError> {
        if self.buffers[tier.slot()].push(ts, values) {
            return Ok(());
        }
        // The row's features come in another order than the block's: write the block
        // and start the next one with this row.
        self.flush()?;
        let fits = self.buffers[tier.slot()].push(ts, values);
        debug_assert!(fits, "an empty block takes any row");
        Ok(())
    }

    fn flush_due(&self, ts: i64) -> bool {
        let raw = &self.buffers[Tier::Raw.slot()];
        match self.mode {
            Mode::Replay => raw.len() >= SCRATCH_BLOCK_ROWS,
            Mode::Live => {
                raw.len() >= BLOCK_ROWS
                    || raw.first_ts().is_some_and(|first| {
                        ts.saturating_sub(first) >= duration_ms(self.config.flush_interval)
                    })
            }
        }
    }

    /// Write the blocks in memory (and moved retention watermarks), in one transaction.
    /// The daemon's writer also calls this when no sample came for a flush interval and
    /// at shutdown.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        if self.buffers.iter().all(Buffer::is_empty) && !self.kept_from_dirty {
            return Ok(());
        }
        let path = &self.path;
        let err = |op| sql_err(path, op);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("cannot begin writing a block"))?;
        // Names first added by this transaction join the cache only once it commits, so a
        // failed flush can't leave ids in memory that the file doesn't have.
        let mut added: Vec<(String, u32)> = Vec::new();
        for tier in [Tier::Raw, Tier::Minute] {
            let buffer = &self.buffers[tier.slot()];
            if buffer.is_empty() {
                continue;
            }
            let mut ids: HashMap<&str, u32> = HashMap::new();
            {
                let names = self.names.borrow();
                for name in buffer.names() {
                    let id = match names.ids.get(name) {
                        Some(&id) => id,
                        None => match added.iter().find(|(n, _)| n == name) {
                            Some(&(_, id)) => id,
                            None => {
                                let id = intern(&tx, name, path)?;
                                added.push((name.to_string(), id));
                                id
                            }
                        },
                    };
                    ids.insert(name, id);
                }
            }
            let data = buffer.encode(
                |n| ids.get(n).copied().unwrap_or(0),
                self.mode == Mode::Live,
            );
            insert_block(&tx, tier, buffer.timestamps(), &data, path)?;
            let end = buffer.timestamps().iter().copied().max();
            let slot = tier.slot();
            self.oldest_end[slot] = match (self.oldest_end[slot], end) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if self.kept_from_dirty {
            write_kept_from(&tx, self.kept_from, path)?;
        }
        tx.commit().map_err(err("cannot commit a block"))?;
        let mut names = self.names.borrow_mut();
        for (name, id) in added {
            names.insert(id, name);
        }
        for b in &mut self.buffers {
            b.clear();
        }
        self.kept_from_dirty = false;
        self.size_settled = false;
        Ok(())
    }

    /// Rows to train on: at most `max_rows` samples with `ts >= since_ms`, oldest first,
    /// evenly subsampled when there are more.
    ///
    /// Which tier: the minute tier, unless the raw tier is strictly better, i.e. the minute
    /// tier has fewer than `max_rows` rows in the window *and* the raw tier has more rows
    /// *and* reaches back at least as far. Then the raw tier covers the same span in finer
    /// detail — the daemon's first hours (or a test running seconds at a 100 ms interval),
    /// or a window shorter than `raw_retention`. Once history is older than
    /// `raw_retention`, the raw tier covers only the recent end, so the minute tier wins
    /// and training sees the whole window.
    ///
    /// Evenly subsampled: of `n` rows, the ones at index `floor(i * n / max_rows)` for
    /// `i in 0..max_rows` — spread over the whole window, not the most recent ones.
    pub fn training_rows(
        &self,
        since_ms: i64,
        max_rows: usize,
    ) -> Result<Vec<Record>, HistoryError> {
        // One read transaction: names, counts and rows come from the same snapshot even
        // if another process writes meanwhile.
        let _tx = self.snapshot()?;
        let rows = self.training_tier_rows(since_ms, max_rows)?;
        Ok(evenly(rows.len(), max_rows)
            .map(|i| rows.record(i))
            .collect())
    }

    /// The rows training reads from (see [`History::training_rows`]), all of them.
    fn training_tier_rows(&self, since_ms: i64, max_rows: usize) -> Result<Rows, HistoryError> {
        let minute = self.timestamps(Tier::Minute, since_ms, i64::MAX)?;
        let raw = self.timestamps(Tier::Raw, since_ms, i64::MAX)?;
        let raw_covers = match (raw.first(), minute.first()) {
            (Some(r), Some(m)) => r <= m,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let tier = if minute.len() < max_rows && raw.len() > minute.len() && raw_covers {
            Tier::Raw
        } else {
            Tier::Minute
        };
        self.rows(tier, since_ms, i64::MAX, None)
    }

    /// [`History::training_rows`] as one [`Frame`], the rows after `until_ms` left out:
    /// what a training reads, without a [`Record`] (and a name per value) per row.
    /// The same rows, features and values as `model::frame::from_records` of those
    /// records (`model::frame::tests::the_history_reads_the_frame_of_its_training_rows`).
    pub fn training_frame(
        &self,
        since_ms: i64,
        max_rows: usize,
        until_ms: i64,
    ) -> Result<Frame, HistoryError> {
        let _tx = self.snapshot()?;
        let rows = self.training_tier_rows(since_ms, max_rows)?;
        let picks: Vec<usize> = evenly(rows.len(), max_rows)
            .filter(|&i| rows.timestamp(i) <= until_ms)
            .collect();
        Ok(rows.frame(&picks))
    }

    /// Every row of `tier` with `from_ms <= ts < to_ms`, oldest first (e.g. the last hour
    /// of raw samples for a report).
    pub fn range(&self, from_ms: i64, to_ms: i64, tier: Tier) -> Result<Vec<Record>, HistoryError> {
        let _tx = self.snapshot()?;
        let rows = self.rows(tier, from_ms, to_ms, None)?;
        Ok((0..rows.len()).map(|i| rows.record(i)).collect())
    }

    /// One feature's `(ts, value)` points with `from_ms <= ts < to_ms`, oldest first, at
    /// the finest resolution kept: minute rows before the oldest raw row, raw rows from
    /// there on. Rows without the feature are skipped; an unknown name gives no points.
    pub fn series(
        &self,
        name: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, HistoryError> {
        let _tx = self.snapshot()?;
        let raw_oldest = self.oldest(Tier::Raw)?;
        let split = raw_oldest
            .unwrap_or(i64::MAX)
            .clamp(from_ms, to_ms.max(from_ms));
        let mut out = Vec::new();
        for (tier, lo, hi) in [(Tier::Minute, from_ms, split), (Tier::Raw, split, to_ms)] {
            if lo < hi {
                out.extend(self.rows(tier, lo, hi, Some(name))?.points());
            }
        }
        Ok(out)
    }

    /// Enforce retention per tier, then the size bound: while the database (pages + WAL)
    /// is over `max_size_bytes`, delete the oldest share of *both* tiers' blocks (at least
    /// 5%, or the excess share if larger) and give the pages back to the filesystem.
    /// Deleting from both keeps each tier's time span shrinking in proportion instead of
    /// sacrificing the long minute history for raw detail or vice versa. The daemon calls
    /// this every few minutes; when nothing has expired and nothing was written since
    /// the last call, it does nothing.
    pub fn prune(&mut self, now_ms: i64) -> Result<PruneStats, HistoryError> {
        let mut stats = PruneStats::default();
        for (tier, keep) in [
            (Tier::Raw, self.config.raw_retention),
            (Tier::Minute, self.config.retention),
        ] {
            let cutoff = now_ms.saturating_sub(duration_ms(keep));
            if cutoff > self.kept_from[tier.slot()] {
                self.kept_from[tier.slot()] = cutoff;
                self.kept_from_dirty = true;
            }
        }
        let expired = self.delete_hidden_blocks()?;
        (stats.raw_expired, stats.minute_expired) = (expired[0], expired[1]);
        // Compacted whether or not something expired: once raw rows expire at every
        // prune (after `raw_retention`), a short-circuit would never merge again.
        let compacted = self.compact_minute()?;
        let deleted = expired.iter().sum::<u64>() > 0 || compacted;
        if !deleted && self.size_settled {
            // Nothing written or deleted since the last measure: nothing to do (a
            // replay prunes every few rows of its series and writes a block per
            // thousands).
            return Ok(stats);
        }

        let max = self.config.max_size_bytes;
        let size = self.size_bytes()?;
        stats.size_before = size;
        if !deleted && size <= max {
            let (pages, free) = self.page_counts()?;
            if (free as f64) <= MAX_FREE_SHARE * pages as f64 {
                stats.size_after = size;
                self.size_settled = true;
                return Ok(stats);
            }
        }
        self.incremental_vacuum()?;
        let mut settled = self.checkpoint()?;
        let mut size = self.bounded_size(settled)?;
        while size > max {
            let share = (1.0 - max as f64 / size as f64).max(MIN_EVICT_SHARE);
            let raw = self.evict_oldest(Tier::Raw, share)?;
            let minute = self.evict_oldest(Tier::Minute, share)?;
            if raw + minute == 0 {
                // Both tiers are empty: what is left is the schema itself, and a bound
                // smaller than an empty database can't be met.
                break;
            }
            stats.raw_evicted += raw;
            stats.minute_evicted += minute;
            self.incremental_vacuum()?;
            settled = self.checkpoint()?;
            size = self.bounded_size(settled)?;
        }
        if stats.raw_evicted + stats.minute_evicted > 0 {
            tracing::info!(
                path = %self.path.display(),
                raw_evicted = stats.raw_evicted,
                minute_evicted = stats.minute_evicted,
                max_size_bytes = max,
                "history over its size bound; deleted the oldest samples"
            );
        }
        stats.size_after = self.size_bytes()?;
        self.size_settled = stats.size_after <= max;
        self.read_oldest_end()?;
        Ok(stats)
    }

    fn read_oldest_end(&mut self) -> Result<(), HistoryError> {
        for tier in [Tier::Raw, Tier::Minute] {
            self.oldest_end[tier.slot()] = self
                .conn
                .query_row(
                    "SELECT min(end_ts) FROM blocks WHERE tier = ?1",
                    [tier.code()],
                    |r| r.get(0),
                )
                .map_err(sql_err(&self.path, "cannot read the oldest block"))?;
        }
        Ok(())
    }

    /// Merge the small minute-tier blocks into one once [`MINUTE_COMPACT_BLOCKS`] of them
    /// have gathered (live only: a replay's blocks are large already). True if it did.
    fn compact_minute(&mut self) -> Result<bool, HistoryError> {
        if self.mode == Mode::Replay {
            return Ok(false);
        }
        let path = &self.path;
        let err = |op| sql_err(path, op);
        let tier = Tier::Minute;
        let small: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM blocks WHERE tier = ?1 AND rows < ?2")
            .and_then(|mut s| {
                s.query_row(params![tier.code(), MINUTE_COMPACT_BLOCKS], |r| r.get(0))
            })
            .map_err(err("cannot count small blocks"))?;
        if small < MINUTE_COMPACT_BLOCKS {
            return Ok(false);
        }
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(err("cannot begin compaction"))?;
        let mut parts = Vec::new();
        let mut last_id = 0i64;
        {
            let names = self.names.borrow();
            let mut stmt = tx
                .prepare("SELECT id, start_ts, data FROM blocks WHERE tier = ?1 AND rows < ?2 ORDER BY id")
                .map_err(err("cannot read small blocks"))?;
            let mut rows = stmt
                .query(params![tier.code(), MINUTE_COMPACT_BLOCKS])
                .map_err(err("cannot read small blocks"))?;
            while let Some(row) = rows.next().map_err(err("cannot read small blocks"))? {
                last_id = row.get(0).map_err(err("cannot read small blocks"))?;
                let start: i64 = row.get(1).map_err(err("cannot read small blocks"))?;
                let data = row
                    .get_ref(2)
                    .and_then(|v| v.as_blob().map_err(Into::into))
                    .map_err(err("cannot read small blocks"))?;
                let block = codec::decode_block(data, None).map_err(|e| self.corrupt(start, e))?;
                let part = Part::named(block, |id| names.name(id)).map_err(|id| {
                    self.corrupt(
                        start,
                        codec::DecodeError::Block(format!("unknown feature id {id}")),
                    )
                })?;
                parts.push(part);
            }
        }
        let kept = self.kept_from[tier.slot()];
        let rows = Rows::new(parts, |t| t >= kept);
        let ids = self.names.borrow().ids.clone();
        let id_of = |n: &str| ids.get(n).copied().unwrap_or(0);
        let write = |buffer: &Buffer| {
            insert_block(
                &tx,
                tier,
                buffer.timestamps(),
                &buffer.encode(id_of, true),
                path,
            )
        };
        let mut buffer = Buffer::default();
        for i in 0..rows.len() {
            let r = rows.record(i);
            let ts = r.timestamp_ms.unwrap_or(0);
            if buffer.len() >= BLOCK_ROWS || !buffer.push(ts, &r.values) {
                write(&buffer)?;
                buffer.clear();
                buffer.push(ts, &r.values);
            }
        }
        tx.execute(
            "DELETE FROM blocks WHERE tier = ?1 AND rows < ?2 AND id <= ?3",
            params![tier.code(), MINUTE_COMPACT_BLOCKS, last_id],
        )
        .map_err(err("cannot delete merged blocks"))?;
        if !buffer.is_empty() {
            write(&buffer)?;
        }
        tx.commit().map_err(err("cannot commit compaction"))?;
        self.read_oldest_end()?;
        Ok(true)
    }

    /// Delete the blocks whose every row is older than its tier's watermark, and write
    /// the watermarks, in one transaction; rows deleted per tier.
    fn delete_hidden_blocks(&mut self) -> Result<[u64; 2], HistoryError> {
        let err = |op| sql_err(&self.path, op);
        let found = [Tier::Raw, Tier::Minute]
            .iter()
            .any(|t| self.oldest_end[t.slot()].is_some_and(|end| end < self.kept_from[t.slot()]));
        if !found {
            return Ok([0, 0]);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("cannot begin prune"))?;
        let mut rows = [0u64; 2];
        for tier in [Tier::Raw, Tier::Minute] {
            let p = params![tier.code(), self.kept_from[tier.slot()]];
            let n: i64 = tx
                .query_row(
                    "SELECT coalesce(sum(rows), 0) FROM blocks WHERE tier = ?1 AND end_ts < ?2",
                    p,
                    |r| r.get(0),
                )
                .map_err(err("cannot count expired rows"))?;
            tx.execute("DELETE FROM blocks WHERE tier = ?1 AND end_ts < ?2", p)
                .map_err(err("cannot delete expired blocks"))?;
            rows[tier.slot()] = u64::try_from(n).unwrap_or(0);
        }
        write_kept_from(&tx, self.kept_from, &self.path)?;
        tx.commit().map_err(err("cannot commit prune"))?;
        self.kept_from_dirty = false;
        self.read_oldest_end()?;
        Ok(rows)
    }

    /// Row counts, time span and size.
    pub fn stats(&self) -> Result<Stats, HistoryError> {
        let _tx = self.snapshot()?;
        let raw = self.timestamps(Tier::Raw, i64::MIN, i64::MAX)?;
        let minute = self.timestamps(Tier::Minute, i64::MIN, i64::MAX)?;
        let ends = |v: &Vec<i64>| (v.first().copied(), v.last().copied());
        let ((raw_min, raw_max), (minute_min, minute_max)) = (ends(&raw), ends(&minute));
        Ok(Stats {
            raw_rows: raw.len() as u64,
            minute_rows: minute.len() as u64,
            oldest_ms: [raw_min, minute_min].into_iter().flatten().min(),
            newest_ms: [raw_max, minute_max].into_iter().flatten().max(),
            size_bytes: self.size_bytes()?,
        })
    }

    /// The distinct timestamps of `tier` with `from <= ts < to`, sorted, from the
    /// blocks' timestamp columns alone.
    fn timestamps(&self, tier: Tier, from: i64, to: i64) -> Result<Vec<i64>, HistoryError> {
        let from = from.max(self.kept_from[tier.slot()]);
        let mut out = Vec::new();
        self.each_block(tier, from, to, |data| {
            out.extend(
                codec::decode_timestamps(data)?
                    .into_iter()
                    .filter(|t| (from..to).contains(t)),
            );
            Ok(())
        })?;
        let buffer = &self.buffers[tier.slot()];
        out.extend(
            buffer
                .timestamps()
                .iter()
                .filter(|t| (from..to).contains(*t)),
        );
        if !out.windows(2).all(|w| w[0] < w[1]) {
            out.sort_unstable();
            out.dedup();
        }
        Ok(out)
    }

    /// The oldest row of `tier` still kept.
    fn oldest(&self, tier: Tier) -> Result<Option<i64>, HistoryError> {
        let kept = self.kept_from[tier.slot()];
        let err = |op| sql_err(&self.path, op);
        // Without the blobs: sorting them too made SQLite read every block of the tier
        // (0.6 s for a week at 1 s); the one straddling block is read by id below.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT start_ts, id FROM blocks WHERE tier = ?1 AND end_ts >= ?2 ORDER BY start_ts",
            )
            .map_err(err("cannot read the oldest row"))?;
        let mut rows = stmt
            .query(params![tier.code(), kept])
            .map_err(err("cannot read the oldest row"))?;
        let mut best = self.buffers[tier.slot()]
            .timestamps()
            .iter()
            .copied()
            .filter(|&t| t >= kept)
            .min();
        while let Some(row) = rows.next().map_err(err("cannot read the oldest row"))? {
            let start: i64 = row.get(0).map_err(err("cannot read the oldest row"))?;
            if best.is_some_and(|b| start >= b) {
                break;
            }
            if start >= kept {
                best = Some(start);
                break;
            }
            // A block straddling the watermark: its oldest row still kept.
            let id: i64 = row.get(1).map_err(err("cannot read the oldest row"))?;
            let data: Vec<u8> = self
                .conn
                .prepare_cached("SELECT data FROM blocks WHERE id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)))
                .map_err(err("cannot read the oldest row"))?;
            let ts = codec::decode_timestamps(&data).map_err(|e| self.corrupt(start, e))?;
            if let Some(t) = ts.into_iter().filter(|&t| t >= kept).min() {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        Ok(best)
    }

    /// Rows of `tier` with `from <= ts < to`, from the blocks and the buffer, with every
    /// feature or only `only`.
    fn rows(
        &self,
        tier: Tier,
        from: i64,
        to: i64,
        only: Option<&str>,
    ) -> Result<Rows, HistoryError> {
        let from = from.max(self.kept_from[tier.slot()]);
        let only_id = match only {
            Some(name) => match self.names.borrow().ids.get(name) {
                Some(&id) => Some(Some(id)),
                // Not on disk (perhaps in the buffer): blocks give only timestamps.
                None => Some(None),
            },
            None => None,
        };
        let mut parts = Vec::new();
        {
            let names = self.names.borrow();
            self.each_block(tier, from, to, |data| {
                let block = match only_id {
                    Some(Some(id)) => codec::decode_block(data, Some(id))?,
                    Some(None) => codec::BlockOut {
                        ts: codec::decode_timestamps(data)?,
                        columns: Vec::new(),
                    },
                    None => codec::decode_block(data, None)?,
                };
                let part = Part::named(block, |id| names.name(id))
                    .map_err(|id| codec::DecodeError::Block(format!("unknown feature id {id}")))?;
                parts.push(part);
                Ok(())
            })?;
        }
        let buffer = &self.buffers[tier.slot()];
        if !buffer.is_empty() {
            parts.push(buffer.part(only));
        }
        Ok(Rows::new(parts, |t| (from..to).contains(&t)))
    }

    /// Call `f` with every block of `tier` that may hold rows in `[from, to)`, in the
    /// order they were written.
    fn each_block(
        &self,
        tier: Tier,
        from: i64,
        to: i64,
        mut f: impl FnMut(&[u8]) -> Result<(), codec::DecodeError>,
    ) -> Result<(), HistoryError> {
        if from >= to {
            return Ok(());
        }
        let err = |op| sql_err(&self.path, op);
        // The ids first, then each block by id: with the blobs in the same query SQLite
        // sorted them by id through its sorter, copying every block of the range (and
        // spilling them to a temporary file for a few days of 1 s rows).
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id FROM blocks
                     WHERE tier = ?1 AND end_ts >= ?2 AND start_ts < ?3 ORDER BY id",
                )
                .map_err(err("cannot read blocks"))?;
            let rows = stmt
                .query_map(params![tier.code(), from, to], |r| r.get(0))
                .map_err(err("cannot read blocks"))?;
            rows.collect::<Result<_, _>>()
                .map_err(err("cannot read blocks"))?
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT start_ts, data FROM blocks WHERE id = ?1")
            .map_err(err("cannot read blocks"))?;
        for id in ids {
            let mut rows = stmt.query([id]).map_err(err("cannot read blocks"))?;
            // Gone since the ids were read (pruned by another connection): skipped.
            let Some(row) = rows.next().map_err(err("cannot read blocks"))? else {
                continue;
            };
            let start: i64 = row.get(0).map_err(err("cannot read blocks"))?;
            let data = row
                .get_ref(1)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(err("cannot read blocks"))?;
            f(data).map_err(|e| self.corrupt(start, e))?;
        }
        Ok(())
    }

    /// Database pages (`page_count * page_size`, which includes pages still only in the
    /// WAL) plus the WAL file's length: what the size bound limits.
    fn size_bytes(&self) -> Result<u64, HistoryError> {
        Ok(self.page_bytes()? + self.wal_bytes())
    }

    /// The size the eviction loop compares with the bound. If the checkpoint could not
    /// finish (another process is reading an old snapshot), the WAL can't shrink however
    /// many blocks we delete, so counting it would empty the database; it is left out
    /// until a later prune can checkpoint.
    fn bounded_size(&self, checkpointed: bool) -> Result<u64, HistoryError> {
        if checkpointed {
            self.size_bytes()
        } else {
            self.page_bytes()
        }
    }

    fn page_bytes(&self) -> Result<u64, HistoryError> {
        let (pages, _) = self.page_counts()?;
        let page_size: i64 = self
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sql_err(&self.path, "cannot read page size"))?;
        Ok(pages * u64::try_from(page_size).unwrap_or(0))
    }

    fn wal_bytes(&self) -> u64 {
        fs::metadata(wal_path(&self.path))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    fn page_counts(&self) -> Result<(u64, u64), HistoryError> {
        let err = |op| sql_err(&self.path, op);
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(err("cannot read page count"))?;
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .map_err(err("cannot read freelist count"))?;
        Ok((
            u64::try_from(pages).unwrap_or(0),
            u64::try_from(free).unwrap_or(0),
        ))
    }

    /// Delete the oldest `share` of a tier's blocks (at least one if it has any) and
    /// move its watermark past them; rows deleted.
    fn evict_oldest(&mut self, tier: Tier, share: f64) -> Result<u64, HistoryError> {
        let err = |op| sql_err(&self.path, op);
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM blocks WHERE tier = ?1",
                [tier.code()],
                |r| r.get(0),
            )
            .map_err(err("cannot count blocks to evict"))?;
        if n == 0 {
            return Ok(0);
        }
        let k = ((n as f64 * share).ceil() as i64).clamp(1, n);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("cannot begin eviction"))?;
        let (rows, newest): (i64, Option<i64>) = tx
            .query_row(
                "SELECT coalesce(sum(rows), 0), max(end_ts) FROM
                 (SELECT rows, end_ts FROM blocks WHERE tier = ?1 ORDER BY start_ts LIMIT ?2)",
                params![tier.code(), k],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err("cannot read blocks to evict"))?;
        tx.execute(
            "DELETE FROM blocks WHERE id IN
             (SELECT id FROM blocks WHERE tier = ?1 ORDER BY start_ts LIMIT ?2)",
            params![tier.code(), k],
        )
        .map_err(err("cannot evict blocks"))?;
        if let Some(newest) = newest {
            let slot = tier.slot();
            self.kept_from[slot] = self.kept_from[slot].max(newest.saturating_add(1));
        }
        write_kept_from(&tx, self.kept_from, &self.path)?;
        tx.commit().map_err(err("cannot commit eviction"))?;
        Ok(u64::try_from(rows).unwrap_or(0))
    }

    /// Move free pages to the end of the file and truncate it.
    fn incremental_vacuum(&self) -> Result<(), HistoryError> {
        let err = |op| sql_err(&self.path, op);
        // The pragma frees pages as it is stepped, so it must be run to completion, which
        // `execute_batch` (one step) would not do.
        let mut stmt = self
            .conn
            .prepare("PRAGMA incremental_vacuum")
            .map_err(err("cannot vacuum"))?;
        let mut rows = stmt.query([]).map_err(err("cannot vacuum"))?;
        while rows.next().map_err(err("cannot vacuum"))?.is_some() {}
        Ok(())
    }

    /// Copy the WAL into the database and truncate it, so the file sizes on disk match
    /// what `size_bytes` counts. Returns false if a reader in another process holds an old
    /// snapshot (after the busy timeout): the checkpoint is then partial, and the next
    /// prune finishes it.
    fn checkpoint(&self) -> Result<bool, HistoryError> {
        let err = |op| sql_err(&self.path, op);
        // A TRUNCATE checkpoint waits for readers through the busy handler; a reader may
        // hold its snapshot for a whole report, so wait briefly rather than BUSY_TIMEOUT
        // per eviction round.
        self.conn
            .busy_timeout(CHECKPOINT_BUSY_TIMEOUT)
            .map_err(err("cannot set busy timeout"))?;
        let busy = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(err("cannot checkpoint"));
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(err("cannot set busy timeout"))?;
        let busy = busy?;
        if busy != 0 {
            tracing::debug!(path = %self.path.display(), "history checkpoint blocked by a reader");
        }
        Ok(busy == 0)
    }

    /// A read transaction with the names refreshed inside it, so names and blocks come
    /// from the same snapshot even if another process writes meanwhile (a name added
    /// after we read `names` would otherwise look like a dangling id). Nested inside a
    /// transaction of our own (none is open between calls) it would fail, so readers
    /// take it once, first.
    fn snapshot(&self) -> Result<rusqlite::Transaction<'_>, HistoryError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql_err(&self.path, "cannot begin read"))?;
        self.refresh_names()?;
        Ok(tx)
    }

    /// Load names added since the last load (by us before a restart, or by the daemon
    /// while another process reads).
    fn refresh_names(&self) -> Result<(), HistoryError> {
        let err = |op| sql_err(&self.path, op);
        let max_id: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM names", [], |r| r.get(0))
            .map_err(err("cannot read feature names"))?;
        let mut names = self.names.borrow_mut();
        if max_id.unwrap_or(0) <= names.max_id {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id, name FROM names WHERE id > ?1")
            .map_err(err("cannot read feature names"))?;
        let rows = stmt
            .query_map([names.max_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err("cannot read feature names"))?;
        for row in rows {
            let (id, name) = row.map_err(err("cannot read feature names"))?;
            names.insert(feature_id(id, &self.path)?, name);
        }
        Ok(())
    }

    fn read_kept_from(&self) -> Result<[i64; 2], HistoryError> {
        let mut out = [i64::MIN; 2];
        for (slot, key) in KEPT_FROM_KEYS.iter().enumerate() {
            let v: Option<String> = self
                .conn
                .query_row(
                    "SELECT CAST(value AS TEXT) FROM meta WHERE key = ?1",
                    [key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_err(&self.path, "cannot read meta"))?;
            if let Some(v) = v {
                out[slot] = v.trim().parse().map_err(|_| HistoryError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("meta {key} is {v:?}, not a timestamp"),
                })?;
            }
        }
        Ok(out)
    }

    fn corrupt(&self, block_start: i64, e: codec::DecodeError) -> HistoryError {
        HistoryError::Corrupt {
            path: self.path.clone(),
            detail: format!("block starting at {block_start}: {e}"),
        }
    }

    /// Create the tables in a new file, migrate a schema 1 file, or check the versions
    /// of an existing one.
    fn init_schema(&mut self) -> Result<(), HistoryError> {
        let path = &self.path;
        let err = |op| sql_err(path, op);
        // IMMEDIATE: two processes opening a new file at once must not both create tables.
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(err("cannot begin schema check"))?;
        let (tables, has_meta): (i64, bool) = tx
            .query_row(
                "SELECT count(*), coalesce(sum(name = 'meta'), 0) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? > 0)),
            )
            .map_err(err("cannot read schema"))?;
        if !has_meta {
            if tables > 0 {
                return Err(HistoryError::Foreign {
                    path: path.to_path_buf(),
                });
            }
            tx.execute_batch(
                "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);",
            )
            .map_err(err("cannot create tables"))?;
            create_blocks(&tx, path)?;
            for (key, value) in [
                ("schema_version", SCHEMA_VERSION.to_string()),
                ("value_encoding", VALUE_ENCODING.to_string()),
                ("created_ms", crate::sample::now_ms().to_string()),
            ] {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2)",
                    params![key, value],
                )
                .map_err(err("cannot write meta"))?;
            }
        } else {
            let version = |key: &'static str| -> Result<Option<String>, HistoryError> {
                tx.query_row(
                    "SELECT CAST(value AS TEXT) FROM meta WHERE key = ?1",
                    [key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err("cannot read meta"))
            };
            let parse =
                |v: &Option<String>| v.as_deref().and_then(|v| v.trim().parse::<i64>().ok());
            let schema = version("schema_version")?;
            let encoding = version("value_encoding")?;
            match (parse(&schema), parse(&encoding)) {
                (Some(SCHEMA_VERSION), Some(VALUE_ENCODING)) => {}
                (Some(1), Some(1)) => migrate_v1(&tx, path)?,
                (Some(SCHEMA_VERSION) | Some(1), _) => {
                    return Err(HistoryError::UnsupportedVersion {
                        path: path.to_path_buf(),
                        key: "value_encoding",
                        found: encoding.unwrap_or_else(|| "missing".to_string()),
                        supported: VALUE_ENCODING,
                    })
                }
                _ => {
                    return Err(HistoryError::UnsupportedVersion {
                        path: path.to_path_buf(),
                        key: "schema_version",
                        found: schema.unwrap_or_else(|| "missing".to_string()),
                        supported: SCHEMA_VERSION,
                    })
                }
            }
        }
        tx.commit().map_err(err("cannot commit schema"))
    }
}

impl Drop for History {
    /// Write what is still in memory: a clean stop loses nothing. (A kill loses at most
    /// `flush_interval`; see `open_mode`.)
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("history: the last samples could not be written: {e}");
        }
    }
}

/// Of `n` rows, the indices of at most `max` spread evenly over all of them: pick `i`
/// is row `floor(i * n / k)` for `k = min(n, max)`.
fn evenly(n: usize, max: usize) -> impl Iterator<Item = usize> {
    let k = n.min(max) as u128;
    // u128: n * k can pass u64 in theory.
    (0..k).map(move |i| (i * n as u128 / k) as usize)
}

fn minute_of(ts: i64) -> i64 {
    ts.div_euclid(MINUTE_MS) * MINUTE_MS
}

fn create_blocks(tx: &rusqlite::Transaction<'_>, path: &Path) -> Result<(), HistoryError> {
    // `id` is the write order, which decides between two rows with one timestamp;
    // start_ts/end_ts are the block's oldest and newest row. One index: every read asks
    // for the blocks that end after some time (recent ones, mostly), and each index is
    // one more page written per block.
    tx.execute_batch(
        "CREATE TABLE blocks(
             id INTEGER PRIMARY KEY,
             tier INTEGER NOT NULL,
             start_ts INTEGER NOT NULL,
             end_ts INTEGER NOT NULL,
             rows INTEGER NOT NULL,
             data BLOB NOT NULL);
         CREATE INDEX blocks_end ON blocks(tier, end_ts);",
    )
    .map_err(sql_err(path, "cannot create the blocks table"))
}

fn insert_block(
    tx: &rusqlite::Transaction<'_>,
    tier: Tier,
    ts: &[i64],
    data: &[u8],
    path: &Path,
) -> Result<(), HistoryError> {
    let start = ts.iter().copied().min().unwrap_or(0);
    let end = ts.iter().copied().max().unwrap_or(0);
    tx.prepare_cached(
        "INSERT INTO blocks(tier, start_ts, end_ts, rows, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![tier.code(), start, end, ts.len() as i64, data]))
    .map(|_| ())
    .map_err(sql_err(path, "cannot write a block"))
}

fn write_kept_from(
    tx: &rusqlite::Transaction<'_>,
    kept_from: [i64; 2],
    path: &Path,
) -> Result<(), HistoryError> {
    for (key, v) in KEPT_FROM_KEYS.iter().zip(kept_from) {
        if v == i64::MIN {
            continue;
        }
        tx.prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![key, v.to_string()]))
            .map_err(sql_err(path, "cannot write the retention watermark"))?;
    }
    Ok(())
}

/// Schema 1 → 2, inside the caller's transaction: every row of `raw` and `minute`
/// into blocks of [`BLOCK_ROWS`] rows (same feature ids), then the old tables dropped.
fn migrate_v1(tx: &rusqlite::Transaction<'_>, path: &Path) -> Result<(), HistoryError> {
    let err = |op| sql_err(path, op);
    let started = Instant::now();
    create_blocks(tx, path)?;
    let mut names: HashMap<u32, String> = HashMap::new();
    {
        let mut stmt = tx
            .prepare("SELECT id, name FROM names")
            .map_err(err("cannot read feature names"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(err("cannot read feature names"))?;
        for row in rows {
            let (id, name) = row.map_err(err("cannot read feature names"))?;
            names.insert(feature_id(id, path)?, name);
        }
    }
    let ids: HashMap<&str, u32> = names.iter().map(|(&id, n)| (n.as_str(), id)).collect();
    let mut migrated = 0u64;
    for tier in [Tier::Raw, Tier::Minute] {
        let table = match tier {
            Tier::Raw => "raw",
            Tier::Minute => "minute",
        };
        let mut buffer = Buffer::default();
        let write = |buffer: &mut Buffer| -> Result<(), HistoryError> {
            if !buffer.is_empty() {
                let data = buffer.encode(|n| ids.get(n).copied().unwrap_or(0), true);
                insert_block(tx, tier, buffer.timestamps(), &data, path)?;
                buffer.clear();
            }
            Ok(())
        };
        let mut stmt = tx
            .prepare(&format!("SELECT ts, data FROM {table} ORDER BY ts"))
            .map_err(err("cannot read schema 1 rows"))?;
        let mut rows = stmt.query([]).map_err(err("cannot read schema 1 rows"))?;
        while let Some(row) = rows.next().map_err(err("cannot read schema 1 rows"))? {
            let ts: i64 = row.get(0).map_err(err("cannot read schema 1 rows"))?;
            let data = row
                .get_ref(1)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(err("cannot read schema 1 rows"))?;
            let mut values = Vec::new();
            for entry in codec::decode(data) {
                let (id, v) = entry.map_err(|e| HistoryError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("schema 1 row {ts}: {e}"),
                })?;
                let name = names.get(&id).ok_or_else(|| HistoryError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("schema 1 row {ts} refers to unknown feature id {id}"),
                })?;
                values.push((name.clone(), v));
            }
            if buffer.len() >= BLOCK_ROWS || !buffer.push(ts, &values) {
                write(&mut buffer)?;
                buffer.push(ts, &values);
            }
            migrated += 1;
        }
        write(&mut buffer)?;
    }
    tx.execute_batch(
        "DROP TABLE raw; DROP TABLE minute;
         UPDATE meta SET value = '2' WHERE key IN ('schema_version', 'value_encoding');",
    )
    .map_err(err("cannot finish the migration"))?;
    tracing::info!(
        path = %path.display(),
        rows = migrated,
        seconds = started.elapsed().as_secs_f64(),
        "history migrated from one row per sample (schema 1) to compressed blocks (schema 2)"
    );
    Ok(())
}

/// Intern a feature name inside the flush transaction and return its id.
fn intern(tx: &rusqlite::Transaction<'_>, name: &str, path: &Path) -> Result<u32, HistoryError> {
    let err = |op| sql_err(path, op);
    // `INSERT OR IGNORE` + `SELECT` rather than trusting our cache: another writer may
    // have added the name (e.g. after a reset the cache is rebuilt from the file anyway).
    tx.prepare_cached("INSERT OR IGNORE INTO names(name) VALUES (?1)")
        .and_then(|mut s| s.execute([name]))
        .map_err(err("cannot add feature name"))?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM names WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)))
        .map_err(err("cannot read feature name id"))?;
    feature_id(id, path)
}

/// Refuse a file that exists and isn't SQLite before SQLite sees it, for a clear message.
/// An empty file is fine: SQLite treats it as a new database.
fn check_header(path: &Path) -> Result<(), HistoryError> {
    use std::io::Read;
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(HistoryError::Io {
                path: path.to_path_buf(),
                op: "cannot read",
                source,
            })
        }
    };
    let mut head = Vec::with_capacity(16);
    file.by_ref()
        .take(16)
        .read_to_end(&mut head)
        .map_err(|source| HistoryError::Io {
            path: path.to_path_buf(),
            op: "cannot read",
            source,
        })?;
    if head.is_empty() || head.as_slice() == SQLITE_MAGIC {
        return Ok(());
    }
    Err(HistoryError::NotADatabase {
        path: path.to_path_buf(),
        detail: format!(
            "the file starts with {:?} instead of the SQLite header",
            String::from_utf8_lossy(&head)
        ),
    })
}

/// Ids are handed out densely from 1 by SQLite; one beyond [`MAX_FEATURE_ID`] means a
/// damaged `names` table, and would make the id-indexed name cache absurdly large.
fn feature_id(id: i64, path: &Path) -> Result<u32, HistoryError> {
    match u32::try_from(id) {
        Ok(id) if id <= MAX_FEATURE_ID => Ok(id),
        _ => Err(HistoryError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("feature id {id} out of range"),
        }),
    }
}

/// Rename `path` to `<name>.corrupt-<unix seconds>` (with its `-wal`), remove its `-shm`.
fn move_aside(path: &Path) -> Result<PathBuf, HistoryError> {
    let io = |op| {
        move |source| HistoryError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = path.as_os_str().to_string_lossy().into_owned();
    let mut aside = PathBuf::from(format!("{base}.corrupt-{secs}"));
    // Two resets within a second must not overwrite the first file moved aside.
    let mut n = 1;
    while aside.exists() {
        aside = PathBuf::from(format!("{base}.corrupt-{secs}.{n}"));
        n += 1;
    }
    fs::rename(path, &aside).map_err(io("cannot move the unusable file aside"))?;
    // A WAL left behind would be replayed into the new file if its header happened to
    // match, so it goes with the file it belongs to; the -shm index is only a cache.
    let wal = wal_path(path);
    if wal.exists() {
        fs::rename(&wal, wal_path(&aside)).map_err(io("cannot move the unusable WAL aside"))?;
    }
    match fs::remove_file(suffixed(path, "-shm")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io("cannot remove the stale -shm file")(e))
        }
        _ => {}
    }
    Ok(aside)
}

fn wal_path(path: &Path) -> PathBuf {
    suffixed(path, "-wal")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Map a SQLite error to our error, recognising the ones that mean "this file is bad".
fn sql_err<'a>(path: &'a Path, op: &'static str) -> impl Fn(rusqlite::Error) -> HistoryError + 'a {
    move |source| match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => HistoryError::NotADatabase {
            path: path.to_path_buf(),
            detail: format!("{op}: {source}"),
        },
        Some(ErrorCode::DatabaseCorrupt) => HistoryError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("{op}: {source}"),
        },
        _ => HistoryError::Sqlite {
            path: path.to_path_buf(),
            op,
            source,
        },
    }
}

/// Noticing a history file removed or replaced under a running daemon (`rm
/// history.db*`): the writer compares the file's identity now and then and reopens.
impl History {
    /// (device, inode) of the file at `path` now; `None` when there is none.
    pub fn file_id(path: &Path) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }

    /// A new handle on the same path, settings and mode (a new file if it was
    /// removed). The rows in memory, not yet written, move to the new handle: they
    /// were never in the old file, and they go to the new one at its next flush.
    pub fn reopen(&mut self) -> Result<History, HistoryError> {
        let mut h = History::open_mode(&self.path, &self.config, self.mode)?;
        h.buffers = std::mem::take(&mut self.buffers);
        h.newest_minute = h.newest_minute.max(self.newest_minute);
        h.dropped = self.dropped;
        Ok(h)
    }
}

/// Readers for the report and the dashboard (`view/`): one series of one tier, and the
/// names stored, so a chart reads the columns it draws and nothing else.
impl History {
    /// Every feature name the file has stored (and the rows in memory hold), sorted.
    pub fn names(&self) -> Result<Vec<String>, HistoryError> {
        let _tx = self.snapshot()?;
        let mut out: Vec<String> = self.names.borrow().ids.keys().cloned().collect();
        for b in &self.buffers {
            out.extend(b.names().map(str::to_string));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// One feature's `(ts, value)` points of `tier` with `from_ms <= ts < to_ms`,
    /// oldest first ([`History::series`] picks the tier itself). Only that column of
    /// each block is decoded.
    pub fn tier_series(
        &self,
        name: &str,
        from_ms: i64,
        to_ms: i64,
        tier: Tier,
    ) -> Result<Vec<(i64, f64)>, HistoryError> {
        let _tx = self.snapshot()?;
        Ok(self.rows(tier, from_ms, to_ms, Some(name))?.points())
    }

    /// The oldest row of `tier` still kept (`None`: the tier is empty).
    pub fn oldest_in(&self, tier: Tier) -> Result<Option<i64>, HistoryError> {
        self.oldest(tier)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    const T0: i64 = 1_700_000_040_000; // a whole minute

    fn cfg(retention_s: u64, raw_retention_s: u64, max_size_bytes: u64) -> HistoryConfig {
        HistoryConfig {
            retention: Duration::from_secs(retention_s),
            raw_retention: Duration::from_secs(raw_retention_s),
            max_size_bytes,
            ..HistoryConfig::default()
        }
    }

    fn default_cfg() -> HistoryConfig {
        HistoryConfig::default()
    }

    fn rec(ts: i64, values: &[(&str, f64)]) -> Record {
        Record {
            timestamp_ms: Some(ts),
            values: values.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }
    }

    /// A sample with `n` features whose values depend on `ts`.
    fn wide(ts: i64, n: usize) -> Record {
        Record {
            timestamp_ms: Some(ts),
            values: (0..n)
                .map(|i| {
                    (
                        format!("feature_{i}{{dev=\"sda\"}}"),
                        (ts / 1000) as f64 * 0.37 + i as f64,
                    )
                })
                .collect(),
        }
    }

    fn open(dir: &tempfile::TempDir, c: &HistoryConfig) -> History {
        History::open(dir.path().join(HISTORY_FILE), c).unwrap()
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = open(&dir, &default_cfg());
        let a = rec(
            T0,
            &[
                ("cpu_busy_ratio", 0.25),
                ("memory_used_bytes", 1.5e9),
                ("zero", 0.0),
            ],
        );
        // A different feature set, in a different order, with a negative value.
        let b = rec(
            T0 + 1000,
            &[("zero", -0.0), ("cpu_busy_ratio", 0.5), ("temp", -3.75)],
        );
        h.append(&a).unwrap();
        h.append(&b).unwrap();
        let got = h.range(T0, T0 + 2000, Tier::Raw).unwrap();
        assert_eq!(got, vec![a.clone(), b.clone()]);
        assert!(got[1].values[0].1.is_sign_negative(), "-0.0 keeps its sign");
        assert_eq!(
            h.range(T0, T0 + 1000, Tier::Raw).unwrap(),
            vec![a.clone()],
            "to is exclusive"
        );
        assert_eq!(h.range(i64::MIN, i64::MAX, Tier::Minute).unwrap(), vec![a]);
        assert_eq!(
            h.series("cpu_busy_ratio", T0, T0 + 2000).unwrap(),
            vec![(T0, 0.25), (T0 + 1000, 0.5)]
        );
        assert_eq!(
            h.series("temp", T0, T0 + 2000).unwrap(),
            vec![(T0 + 1000, -3.75)]
        );
        assert_eq!(h.series("no_such_feature", T0, T0 + 2000).unwrap(), vec![]);
        let s = h.stats().unwrap();
        assert_eq!((s.raw_rows, s.minute_rows), (2, 1));
        assert_eq!((s.oldest_ms, s.newest_ms), (Some(T0), Some(T0 + 1000)));
        assert!(s.size_bytes > 0);
    }

    #[test]
    fn empty_store_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let h = open(&dir, &default_cfg());
        assert_eq!(h.stats().unwrap().oldest_ms, None);
        assert!(h.training_rows(0, 100).unwrap().is_empty());
        assert!(h.range(0, i64::MAX, Tier::Raw).unwrap().is_empty());
    }

    #[test]
    fn record_without_timestamp_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = open(&dir, &default_cfg());
        let e = h.append(&Record {
            timestamp_ms: None,
            values: vec![("x".into(), 1.0)],
        });
        let e = e.unwrap_err();
        assert!(matches!(e, HistoryError::NoTimestamp { .. }));
        assert!(e.to_string().contains("no timestamp"), "{e}");
        assert_eq!(h.stats().unwrap().raw_rows, 0);
    }

    #[test]
    fn minute_tier_keeps_the_first_sample_of_each_minute() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = open(&dir, &default_cfg());
        // 3.5 minutes at 1 s, starting 10 s into a minute.
        let start = T0 + 10_000;
        for i in 0..210 {
            h.append(&rec(start + i * 1000, &[("x", i as f64)]))
                .unwrap();
        }
        let minute = h.range(i64::MIN, i64::MAX, Tier::Minute).unwrap();
        let ts: Vec<i64> = minute.iter().filter_map(|r| r.timestamp_ms).collect();
        assert_eq!(ts, vec![start, T0 + 60_000, T0 + 120_000, T0 + 180_000]);
        // The real sample, not an aggregate.
        assert_eq!(minute[1].values, vec![("x".to_string(), 50.0)]);
        // A late sample for an earlier minute that already has one changes nothing.
        h.append(&rec(T0 + 61_500, &[("x", -1.0)])).unwrap();
        assert_eq!(h.stats().unwrap().minute_rows, 4);
        // Before the epoch the minute is still the wall-clock minute (floor, not truncation).
        h.append(&rec(-30_000, &[("x", 1.0)])).unwrap();
        h.append(&rec(-1, &[("x", 2.0)])).unwrap();
        h.append(&rec(0, &[("x", 3.0)])).unwrap();
        let early: Vec<i64> = h
            .range(-120_000, 60_000, Tier::Minute)
            .unwrap()
            .iter()
            .filter_map(|r| r.timestamp_ms)
            .collect();
        assert_eq!(early, vec![-30_000, 0]);
    }

    #[test]
    fn training_rows_prefers_minute_tier_once_it_covers_more() {
        let dir = tempfile::tempdir().unwrap();
        // raw kept 10 minutes, minute tier 1 day.
        let mut h = open(&dir, &cfg(86_400, 600, 1 << 30));
        // 2 hours at 10 s.
        let end = T0 + 2 * 3_600_000;
        let mut ts = T0;
        while ts < end {
            h.append(&rec(ts, &[("x", ts as f64)])).unwrap();
            ts += 10_000;
        }
        // Before pruning the raw tier covers the same span with 6x the rows: raw wins.
        let rows = h.training_rows(0, 10_000).unwrap();
        assert_eq!(rows.len(), 720);
        // Asking for fewer rows than the minute tier has: minute tier, evenly spread.
        let rows = h.training_rows(0, 60).unwrap();
        assert_eq!(rows.len(), 60);
        let ts: Vec<i64> = rows.iter().filter_map(|r| r.timestamp_ms).collect();
        assert_eq!(ts[0], T0);
        assert!(ts.iter().all(|t| t % 60_000 == 0), "minute-tier rows");
        assert_eq!(ts[1] - ts[0], 120_000, "every second of 120 minute rows");

        h.prune(end).unwrap();
        // Now raw holds only the last 10 minutes: the minute tier covers more.
        let rows = h.training_rows(0, 10_000).unwrap();
        assert_eq!(rows.len(), 120);
        assert_eq!(rows[0].timestamp_ms, Some(T0));
        // A window inside raw retention reads raw again.
        let rows = h.training_rows(end - 300_000, 10_000).unwrap();
        assert_eq!(rows.len(), 30);
        assert_eq!(h.training_rows(0, 0).unwrap(), vec![]);
    }

    #[test]
    fn training_rows_fall_back_to_raw_for_short_runs() {
        // What an integration test sees: seconds of history at a 100 ms interval.
        let dir = tempfile::tempdir().unwrap();
        let mut h = open(&dir, &default_cfg());
        for i in 0..50 {
            h.append(&rec(T0 + 5_000 + i * 100, &[("x", i as f64)]))
                .unwrap();
        }
        assert_eq!(h.stats().unwrap().minute_rows, 1);
        let rows = h.training_rows(0, 1000).unwrap();
        assert_eq!(rows.len(), 50);
        // Evenly subsampled: 50 rows down to 10 keeps every 5th, first row included.
        let rows = h.training_rows(0, 10).unwrap();
        let xs: Vec<f64> = rows.iter().map(|r| r.values[0].1).collect();
        assert_eq!(
            xs,
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
        );
        // 50 down to 20: indices floor(i * 50 / 20).
        let rows = h.training_rows(0, 20).unwrap();
        assert_eq!(rows.len(), 20);
        assert_eq!(rows[1].values[0].1, 2.0);
        assert_eq!(rows[19].values[0].1, 47.0);
    }

    #[test]
    fn series_joins_minute_history_and_raw_detail() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = open(&dir, &cfg(86_400, 300, 1 << 30));
        let end = T0 + 3_600_000;
        let mut ts = T0;
        while ts < end {
            h.append(&rec(ts, &[("fs_avail", (ts - T0) as f64)]))
                .unwrap();
            ts += 5_000;
        }
        h.prune(end).unwrap();
        let s = h.series("fs_avail", T0, end).unwrap();
        // 55 minute rows before raw's oldest (end - 300 s), then 60 raw rows at 5 s.
        assert_eq!(s.len(), 55 + 60);
        assert!(
            s.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        assert_eq!(s[54].0, end - 360_000);
        assert_eq!(s[55].0, end - 300_000);
        assert!(s.iter().all(|&(t, v)| v == (t - T0) as f64));
        // A window entirely in raw.
        assert_eq!(h.series("fs_avail", end - 10_000, end).unwrap().len(), 2);
    }

    #[test]
    fn prune_applies_each_tiers_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = open(&dir, &cfg(3_600, 600, 1 << 30));
        let end = T0 + 2 * 3_600_000;
        let mut ts = T0;
        while ts < end {
            h.append(&wide(ts, 5)).unwrap();
            ts += 10_000;
        }
        let now = end;
        let p = h.prune(now).unwrap();
        // Whole blocks are deleted (a block spans `flush_interval`, 7 rows at 10 s); the
        // rows of the block straddling the cutoff are hidden, and go with their block.
        assert!((720 - 60 - 7..=720 - 60).contains(&p.raw_expired), "{p:?}");
        assert!((60 - 7..=60).contains(&p.minute_expired), "{p:?}");
        assert_eq!((p.raw_evicted, p.minute_evicted), (0, 0));
        let raw = h.range(i64::MIN, i64::MAX, Tier::Raw).unwrap();
        assert_eq!(raw.len(), 60);
        assert!(raw.iter().all(|r| r.timestamp_ms >= Some(now - 600_000)));
        let minute = h.range(i64::MIN, i64::MAX, Tier::Minute).unwrap();
        assert_eq!(minute.len(), 60);
        assert!(minute
            .iter()
            .all(|r| r.timestamp_ms >= Some(now - 3_600_000)));
        // Idempotent.
        let p = h.prune(now).unwrap();
        assert_eq!((p.raw_expired, p.minute_expired), (0, 0));
    }

    #[test]
    fn prune_enforces_the_size_bound() {
        let dir = tempfile::tempdir().unwrap();
        let max = 256 * 1024;
        let mut h = open(&dir, &cfg(30 * 86_400, 2 * 86_400, max));
        let mut ts = T0;
        for _ in 0..4_000 {
            h.append(&wide(ts, 60)).unwrap();
            ts += 15_000;
        }
        let before = h.stats().unwrap();
        assert!(
            before.size_bytes > 4 * max,
            "test needs a database well over the bound"
        );
        let p = h.prune(ts).unwrap();
        let after = h.stats().unwrap();
        assert!(p.raw_evicted > 0 && p.minute_evicted > 0, "{p:?}");
        assert!(after.size_bytes <= max, "{} > {max}", after.size_bytes);
        assert_eq!(p.size_after, after.size_bytes);
        // The files on disk agree (no hidden WAL or free pages), within one page of slack.
        let on_disk = fs::metadata(h.path()).unwrap().len()
            + fs::metadata(wal_path(h.path()))
                .map(|m| m.len())
                .unwrap_or(0);
        assert!(on_disk <= max + 4096, "{on_disk} on disk");
        // The newest rows are the ones kept, and the data still reads back.
        assert_eq!(after.newest_ms, before.newest_ms);
        assert!(after.raw_rows > 100, "kept {} raw rows", after.raw_rows);
        let last = h.range(ts - 15_000, ts, Tier::Raw).unwrap();
        assert_eq!(last, vec![wide(ts - 15_000, 60)]);
        // Appending more and pruning again stays bounded.
        for _ in 0..1_000 {
            h.append(&wide(ts, 60)).unwrap();
            ts += 15_000;
        }
        h.prune(ts).unwrap();
        assert!(h.stats().unwrap().size_bytes <= max);
    }

    #[test]
    fn a_reader_blocking_the_checkpoint_does_not_empty_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let max = 512 * 1024;
        let mut h = open(&dir, &cfg(30 * 86_400, 2 * 86_400, max));
        let mut ts = T0;
        for _ in 0..1_000 {
            h.append(&wide(ts, 60)).unwrap();
            ts += 15_000;
        }
        // Another process (a report) holds a read snapshot: the WAL can't be truncated.
        let reader = Connection::open(h.path()).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM blocks", [], |r| r.get(0))
            .unwrap();
        // Grow the WAL past the bound on its own.
        for _ in 0..1_500 {
            h.append(&wide(ts, 60)).unwrap();
            ts += 15_000;
        }
        assert!(wal_path(h.path()).metadata().unwrap().len() > max);
        let p = h.prune(ts).unwrap();
        let s = h.stats().unwrap();
        assert!(s.raw_rows > 100, "kept {} rows: {p:?}", s.raw_rows);
        assert!(h.page_bytes().unwrap() <= max);
        // Once the reader is gone, the next prune gets the files under the bound.
        reader.execute_batch("COMMIT").unwrap();
        drop(reader);
        h.prune(ts).unwrap();
        assert!(h.stats().unwrap().size_bytes <= max);
    }

    #[test]
    fn a_bound_below_an_empty_database_empties_it_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = open(&dir, &cfg(86_400, 86_400, 1));
        for i in 0..100 {
            h.append(&wide(T0 + i * 1000, 10)).unwrap();
        }
        // The bound is on the file: the rows still in memory are written first.
        h.flush().unwrap();
        h.prune(T0 + 100_000).unwrap();
        let s = h.stats().unwrap();
        assert_eq!((s.raw_rows, s.minute_rows), (0, 0));
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut h = open(&dir, &default_cfg());
            h.append(&rec(T0, &[("a", 1.0), ("b", 2.0)])).unwrap();
        }
        let mut h = open(&dir, &default_cfg());
        // Names interned before the restart keep their ids; new ones get fresh ids.
        h.append(&rec(T0 + 1000, &[("b", 3.0), ("c", 4.0)]))
            .unwrap();
        h.flush().unwrap();
        assert_eq!(
            h.range(i64::MIN, i64::MAX, Tier::Raw).unwrap(),
            vec![
                rec(T0, &[("a", 1.0), ("b", 2.0)]),
                rec(T0 + 1000, &[("b", 3.0), ("c", 4.0)])
            ]
        );
        let ids: Vec<(i64, String)> = h
            .conn
            .prepare("SELECT id, name FROM names ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]);
    }

    #[test]
    fn a_reader_sees_names_added_by_the_writer_after_it_opened() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = open(&dir, &default_cfg());
        writer.append(&rec(T0, &[("a", 1.0)])).unwrap();
        let reader = open(&dir, &default_cfg());
        writer.append(&rec(T0 + 1000, &[("new", 2.0)])).unwrap();
        // Other processes see what was written, not the block still in memory.
        assert_eq!(
            reader.range(T0 + 1000, T0 + 2000, Tier::Raw).unwrap(),
            vec![]
        );
        writer.flush().unwrap();
        assert_eq!(
            reader.range(T0 + 1000, T0 + 2000, Tier::Raw).unwrap(),
            vec![rec(T0 + 1000, &[("new", 2.0)])]
        );
        assert_eq!(
            reader.series("new", 0, i64::MAX).unwrap(),
            vec![(T0 + 1000, 2.0)]
        );
    }

    #[test]
    fn names_with_unicode_and_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            r#"filesystem_available_bytes{mountpoint="/mnt/données",device="/dev/sdb1"}"#,
            r#"x{label="it's \"quoted\" ; DROP TABLE raw; --"}"#,
            "温度{zone=\"😀\"}",
            "",
        ];
        let values: Vec<(&str, f64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i as f64))
            .collect();
        {
            let mut h = open(&dir, &default_cfg());
            h.append(&rec(T0, &values)).unwrap();
        }
        let h = open(&dir, &default_cfg());
        assert_eq!(
            h.range(T0, T0 + 1, Tier::Raw).unwrap(),
            vec![rec(T0, &values)]
        );
        assert_eq!(h.series(names[1], T0, T0 + 1).unwrap(), vec![(T0, 1.0)]);
        assert_eq!(h.series(names[2], T0, T0 + 1).unwrap(), vec![(T0, 2.0)]);
    }

    #[test]
    fn duplicate_timestamp_replaces_the_raw_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = open(&dir, &default_cfg());
        h.append(&rec(T0, &[("x", 1.0)])).unwrap();
        h.append(&rec(T0, &[("x", 2.0)])).unwrap();
        assert_eq!(
            h.range(T0, T0 + 1, Tier::Raw).unwrap(),
            vec![rec(T0, &[("x", 2.0)])]
        );
        assert_eq!(h.stats().unwrap().raw_rows, 1);
    }

    #[test]
    fn random_bytes_are_rejected_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let junk: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(&path, &junk).unwrap();
        fs::write(suffixed(&path, "-wal"), b"stale wal").unwrap();

        let e = History::open(&path, &default_cfg()).unwrap_err();
        assert!(matches!(e, HistoryError::NotADatabase { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("not a SQLite database") && msg.contains(HISTORY_FILE),
            "{msg}"
        );
        assert!(e.is_unusable_file());
        assert_eq!(
            fs::read(&path).unwrap(),
            junk,
            "open must not touch a file it refuses"
        );

        let (mut h, problem) = History::open_or_reset(&path, &default_cfg(), Mode::Live).unwrap();
        let problem = problem.unwrap();
        assert!(
            problem.contains("not a SQLite database") && problem.contains(".corrupt-"),
            "{problem}"
        );
        h.append(&rec(T0, &[("x", 1.0)])).unwrap();
        assert_eq!(h.stats().unwrap().raw_rows, 1);
        let moved: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".corrupt-"))
            .collect();
        assert_eq!(
            moved.len(),
            2,
            "database and its WAL moved aside: {moved:?}"
        );
        let aside = moved.iter().find(|n| !n.ends_with("-wal")).unwrap();
        assert_eq!(fs::read(dir.path().join(aside)).unwrap(), junk);
        // A healthy file is opened as is.
        drop(h);
        let (h, problem) = History::open_or_reset(&path, &default_cfg(), Mode::Live).unwrap();
        assert_eq!((problem, h.stats().unwrap().raw_rows), (None, 1));
    }

    #[test]
    fn sqlite_header_with_garbage_pages_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(SQLITE_MAGIC).unwrap();
        f.write_all(&[0xA5; 8192]).unwrap();
        drop(f);
        let e = History::open(&path, &default_cfg()).unwrap_err();
        assert!(e.is_unusable_file(), "{e:?}");
        let (_, problem) = History::open_or_reset(&path, &default_cfg(), Mode::Live).unwrap();
        assert!(problem.is_some());
    }

    #[test]
    fn corrupt_row_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = open(&dir, &default_cfg());
        h.append(&rec(T0, &[("x", 1.5)])).unwrap();
        h.flush().unwrap();
        h.conn
            .execute("UPDATE blocks SET data = x'0100' WHERE start_ts = ?1", [T0])
            .unwrap();
        let e = h.range(T0, T0 + 1, Tier::Raw).unwrap_err();
        assert!(matches!(e, HistoryError::Corrupt { .. }), "{e:?}");
        assert!(
            e.to_string().contains(&format!("block starting at {T0}")),
            "{e}"
        );
        let unknown_id = codec::encode_block(
            &[T0],
            &[codec::ColumnIn {
                id: 50,
                rows: &[0],
                values: &[1.0],
            }],
            true,
        );
        h.conn
            .execute(
                "UPDATE blocks SET data = ?2 WHERE start_ts = ?1",
                params![T0, unknown_id],
            )
            .unwrap();
        let e = h.range(T0, T0 + 1, Tier::Raw).unwrap_err();
        assert!(e.to_string().contains("unknown feature id 50"), "{e}");
    }

    #[test]
    fn unknown_schema_version_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        drop(History::open(&path, &default_cfg()).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = '3' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(conn);
        let e = History::open(&path, &default_cfg()).unwrap_err();
        assert!(
            matches!(&e, HistoryError::UnsupportedVersion { key: "schema_version", found, supported: 2, .. } if found == "3"),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("schema_version is \"3\"") && msg.contains("reads version 2"),
            "{msg}"
        );

        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("UPDATE meta SET value = '1' WHERE key = 'schema_version'; DELETE FROM meta WHERE key = 'value_encoding'")
            .unwrap();
        drop(conn);
        let e = History::open(&path, &default_cfg()).unwrap_err();
        assert!(
            e.to_string().contains("value_encoding is \"missing\""),
            "{e}"
        );
    }

    #[test]
    fn another_applications_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE tickets(id INTEGER PRIMARY KEY)")
            .unwrap();
        let e = History::open(&path, &default_cfg()).unwrap_err();
        assert!(matches!(e, HistoryError::Foreign { .. }), "{e:?}");
        assert!(e.to_string().contains("not an anomalyd history"), "{e}");
    }

    #[test]
    fn new_file_uses_wal_and_incremental_auto_vacuum() {
        let dir = tempfile::tempdir().unwrap();
        let h = open(&dir, &default_cfg());
        let mode: String = h
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let vacuum: i64 = h
            .conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = h
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        let page: i64 = h
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        let cache: i64 = h
            .conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            (mode.as_str(), vacuum, sync, page, cache),
            ("wal", 2, 1, PAGE_SIZE, -sqlite::DAEMON_CACHE_KIB)
        );
        // A replay's scratch history never waits for the disk.
        let replay =
            History::open_mode(dir.path().join("replay.db"), &default_cfg(), Mode::Replay).unwrap();
        let sync: i64 = replay
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 0, "synchronous=OFF");
        let page: i64 = replay
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            page, SCRATCH_PAGE_SIZE,
            "large blocks, short overflow chains"
        );
        // Choosing the page size does not bypass how state files are created.
        use std::os::unix::fs::PermissionsExt;
        for name in [HISTORY_FILE, "replay.db"] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, super::super::FILE_MODE, "{name}");
        }
    }

    #[test]
    fn small_minute_blocks_are_merged_and_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        // Raw rows kept an hour: the prune below expires raw blocks and must merge the
        // minute ones all the same (a live history expires raw rows at every prune).
        let mut h = open(&dir, &cfg(30 * 86_400, 3_600, 1 << 30));
        // Two hours at 1 s: a block a minute in each tier.
        for i in 0..7_200 {
            h.append(&wide(T0 + i * 1000, 8)).unwrap();
        }
        h.flush().unwrap();
        let before = h.range(i64::MIN, i64::MAX, Tier::Minute).unwrap();
        let count = |h: &History| -> i64 {
            h.conn
                .query_row("SELECT count(*) FROM blocks WHERE tier = 1", [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        assert!(count(&h) > 100, "{} blocks", count(&h));
        h.prune(T0 + 7_200_000).unwrap();
        assert_eq!(count(&h), 1, "the one- or two-row blocks merged into one");
        assert_eq!(h.range(i64::MIN, i64::MAX, Tier::Minute).unwrap(), before);
        let stats = h.stats().unwrap();
        assert_eq!(stats.minute_rows, 120);
        assert!(stats.raw_rows <= 3_660, "{} raw rows", stats.raw_rows);
    }

    #[test]
    fn history_can_move_to_a_blocking_thread() {
        fn send<T: Send + 'static>() {}
        send::<History>();
        send::<HistoryError>();
    }

    #[test]
    fn environmental_errors_do_not_reset() {
        // A directory where the file should be: an I/O problem, not a bad file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        fs::create_dir(&path).unwrap();
        let e = History::open_or_reset(&path, &default_cfg(), Mode::Live).unwrap_err();
        assert!(!e.is_unusable_file(), "{e:?}");
        assert!(path.is_dir(), "left alone");
    }
}
