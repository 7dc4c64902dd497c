//! The store stage: each record appended to the history. Live, through a bounded queue
//! to a writer thread (a stalled disk must never delay a tick), which also writes the
//! block in memory when no sample came for a flush interval; in replay, inline.
//! Both prune on the same schedule of the series' clock.
//!
//! A record is stored with what the model made of it (its score and threshold, as
//! derived series: `store::derived`), so it is appended after scoring. In replay a
//! training that runs inline at this very record must see it in the history, as it
//! always has: [`Writer::inline`] stores it before training reads, and
//! [`Writer::append`] then skips it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::mode::Mode;
use crate::sample::Record;
use crate::store::History;

/// How often the history is pruned (retention and size bound).
const PRUNE_EVERY_MS: i64 = 5 * 60 * 1000;
/// How often the writer checks that its file is still the one at the history's path.
const CHECK_FILE_EVERY_MS: i64 = 10_000;

/// What the writer thread is sent.
pub(super) enum Msg {
    Record(Record),
    /// Write the block in memory now and answer: a training run is about to read the
    /// history from its own connection and must see every sample stored so far, as
    /// replay's inline training does.
    Flush(mpsc::Sender<()>),
}

pub(super) enum Writer {
    /// Live: a bounded queue to the writer thread. If the disk stalls the queue fills
    /// and samples are dropped from history (counted), never from sampling.
    Thread {
        tx: mpsc::SyncSender<Msg>,
        thread: Option<JoinHandle<()>>,
        /// Samples lost to history: the queue was full, or the disk refused them for
        /// too long (counted by the thread).
        dropped: Arc<AtomicU64>,
    },
    Inline {
        history: Box<History>,
        last_prune_ms: i64,
        /// This tick's record is stored already, for a training that read the history
        /// at it (see the module header).
        stored: bool,
        /// The row stored, refilled each tick (the record and its derived series).
        row: Record,
    },
}

impl Writer {
    pub(super) fn start(history: History, mode: Mode) -> Writer {
        match mode {
            Mode::Replay => Writer::Inline {
                history: Box::new(history),
                last_prune_ms: 0,
                stored: false,
                row: Record::default(),
            },
            Mode::Live => {
                let dropped = Arc::new(AtomicU64::new(0));
                let (tx, thread) = spawn_writer(history, dropped.clone());
                Writer::Thread {
                    tx,
                    thread,
                    dropped,
                }
            }
        }
    }

    /// The history, when it is written inline (replay: training reads it directly),
    /// with this tick's `record` stored first (without its score, which it has not
    /// got yet).
    pub(super) fn inline(&mut self, record: &Record) -> Option<&History> {
        match self {
            Writer::Inline {
                history, stored, ..
            } => {
                if !*stored {
                    *stored = true;
                    if let Err(e) = history.append(record) {
                        tracing::warn!("history: {}", crate::text::error_chain(&e));
                    }
                }
                Some(history)
            }
            Writer::Thread { .. } => None,
        }
    }

    /// Live: ask the writer thread to write its block now; the receiver hears once it
    /// has (or is dropped if it can't be asked). `None` inline, where readers see the
    /// block in memory.
    pub(super) fn request_flush(&self) -> Option<mpsc::Receiver<()>> {
        match self {
            Writer::Thread { tx, .. } => {
                let (done, rx) = mpsc::channel();
                tx.try_send(Msg::Flush(done)).ok()?;
                Some(rx)
            }
            Writer::Inline { .. } => None,
        }
    }

    /// Samples dropped from history because the writer thread was behind or the disk
    /// refused them for too long (live only).
    pub(super) fn dropped(&self) -> Option<u64> {
        match self {
            Writer::Thread { dropped, .. } => Some(dropped.load(Ordering::Relaxed)),
            Writer::Inline { .. } => None,
        }
    }

    /// Store this tick's record with its derived series (`derived`: empty before the
    /// first model).
    pub(super) fn append(&mut self, record: &Record, derived: &[(&str, f64)], now: i64) {
        let with_derived = |mut r: Record| {
            r.values
                .extend(derived.iter().map(|(n, v)| ((*n).to_string(), *v)));
            r
        };
        match self {
            Writer::Thread { tx, dropped, .. } => {
                let record = with_derived(record.clone());
                if let Err(mpsc::TrySendError::Full(_)) = tx.try_send(Msg::Record(record)) {
                    let n = dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(
                            dropped = n,
                            "history writer is behind; samples dropped from history"
                        );
                    }
                }
            }
            Writer::Inline {
                history,
                last_prune_ms,
                stored,
                row,
            } => {
                // Already stored when a training took it (then without its score).
                if !std::mem::take(stored) {
                    row.timestamp_ms = record.timestamp_ms;
                    let values = record.values.iter().map(|(n, v)| (n.as_str(), *v));
                    let mut k = 0;
                    for (name, value) in values.chain(derived.iter().copied()) {
                        row.set_at(k, name, value);
                        k += 1;
                    }
                    row.values.truncate(k);
                    if let Err(e) = history.append(row) {
                        tracing::warn!("history: {}", crate::text::error_chain(&e));
                    }
                }
                if now - *last_prune_ms >= PRUNE_EVERY_MS {
                    *last_prune_ms = now;
                    if let Err(e) = history.prune(now) {
                        tracing::warn!("history prune: {e}");
                    }
                }
            }
        }
    }

    /// Close the queue: the thread stores what is queued and writes its block, then
    /// ends. Wait for it up to `grace`; a disk that stalls longer does not hold the
    /// shutdown. Inline, the block is written now.
    pub(super) fn close(self, grace: Duration) {
        if let Writer::Inline { mut history, .. } = self {
            if let Err(e) = history.flush() {
                tracing::warn!("history: {e}");
            }
            return;
        }
        if let Writer::Thread { tx, thread, .. } = self {
            drop(tx);
            let Some(thread) = thread else { return };
            let end = Instant::now() + grace;
            while !thread.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!(
                    "history writer still busy at shutdown; the rest of its queue is dropped"
                );
            }
        }
    }
}

/// Samples appended to a history file someone removed would be lost at the next
/// restart: when the file at the path is no longer the one open (or is gone), open
/// the path again, which creates a new history, and say so. The samples still in
/// memory go to the new file.
fn check_file(history: &mut History, file: &mut Option<(u64, u64)>) {
    let now = History::file_id(history.path());
    if now == *file {
        return;
    }
    match history.reopen() {
        Ok(h) => {
            tracing::warn!(
                path = %history.path().display(),
                "history file was removed or replaced while running; reopened it"
            );
            *history = h;
            *file = History::file_id(history.path());
        }
        Err(e) => {
            // Tried again at the next check; said once per change of file.
            tracing::warn!("history file was removed or replaced; cannot reopen it: {e}");
            *file = now;
        }
    }
}

fn spawn_writer(
    mut history: History,
    dropped: Arc<AtomicU64>,
) -> (mpsc::SyncSender<Msg>, Option<JoinHandle<()>>) {
    let (tx, rx) = mpsc::sync_channel::<Msg>(1024);
    let spawned = std::thread::Builder::new()
        .name("history".into())
        .spawn(move || {
            let mut last_prune = 0i64;
            let mut failing = false;
            let mut lost_seen = 0u64;
            let idle = history.flush_interval();
            let mut file = History::file_id(history.path());
            let mut last_check = 0i64;
            loop {
                let record = match rx.recv_timeout(idle) {
                    Ok(Msg::Record(r)) => r,
                    Ok(Msg::Flush(done)) => {
                        let result = history.flush();
                        report(&mut failing, result);
                        count_lost(&history, &mut lost_seen, &dropped);
                        let _ = done.send(());
                        continue;
                    }
                    // No sample for a flush interval (sampling stalled, or a long
                    // interval): write what is in memory, so the bound holds.
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let result = history.flush();
                        report(&mut failing, result);
                        count_lost(&history, &mut lost_seen, &dropped);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let now = record.timestamp_ms.unwrap_or(0);
                if now - last_check >= CHECK_FILE_EVERY_MS {
                    last_check = now;
                    check_file(&mut history, &mut file);
                }
                let result = history.append(&record);
                report(&mut failing, result);
                count_lost(&history, &mut lost_seen, &dropped);
                if now - last_prune >= PRUNE_EVERY_MS {
                    last_prune = now;
                    if let Err(e) = history.prune(now) {
                        tracing::warn!("history prune: {e}");
                    }
                }
            }
            if let Err(e) = history.flush() {
                tracing::warn!("history: the last samples could not be written: {e}");
            }
        });
    match spawned {
        Ok(thread) => (tx, Some(thread)),
        Err(e) => {
            tracing::error!("cannot start the history writer: {e}");
            (tx, None)
        }
    }
}

/// Say once that history is not being written (disk full, read-only...) and once that
/// it is again; sampling and /metrics go on either way.
fn report(failing: &mut bool, result: Result<(), crate::store::HistoryError>) {
    match result {
        Ok(()) if *failing => {
            *failing = false;
            tracing::info!("history is being written again");
        }
        Ok(()) => {}
        Err(e) if !*failing => {
            *failing = true;
            tracing::warn!(
                "history is not being written: {}; sampling and /metrics go on, the samples \
                 wait in memory (up to 10 flush intervals, then they are dropped) and writing \
                 resumes by itself once the disk takes them",
                crate::text::error_chain(&e)
            );
        }
        Err(_) => {}
    }
}

/// Add the samples the store let go since the last call to the exported count.
fn count_lost(history: &History, seen: &mut u64, dropped: &AtomicU64) {
    let lost = history.dropped();
    if lost > *seen {
        dropped.fetch_add(lost - *seen, Ordering::Relaxed);
        *seen = lost;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::HistoryConfig;

    fn record(ts: i64) -> Record {
        Record {
            timestamp_ms: Some(ts),
            values: vec![("cpu".to_string(), 1.0)],
        }
    }

    /// Each record is stored once, with the score it got; in replay a training that
    /// reads the history at a record stores it first (then without its score).
    #[test]
    fn records_are_stored_once_with_their_score_and_before_an_inline_training() {
        use crate::store::derived::ANOMALY_SCORE;
        use crate::store::Tier;
        let dir = tempfile::tempdir().unwrap();
        let config = HistoryConfig::default();
        let t0 = 1_700_000_000_000;
        let score = [(ANOMALY_SCORE, 0.5)];
        for mode in [Mode::Live, Mode::Replay] {
            let path = dir.path().join(format!("{mode:?}.db"));
            let mut w = Writer::start(History::open_mode(&path, &config, mode).unwrap(), mode);
            w.append(&record(t0), &score, t0);
            if let Some(h) = w.inline(&record(t0 + 1000)) {
                // What a training at this record reads: the record itself.
                let rows = h.range(t0, t0 + 2000, Tier::Raw).unwrap();
                assert_eq!(rows.len(), 2, "{mode:?}");
            }
            w.append(&record(t0 + 1000), &score, t0 + 1000);
            w.close(Duration::from_secs(5));
            let h = History::open(&path, &config).unwrap();
            let raw = h.range(t0, t0 + 2000, Tier::Raw).unwrap();
            assert_eq!(raw.len(), 2, "{mode:?}");
            let scored = h
                .tier_series(ANOMALY_SCORE, t0, t0 + 2000, Tier::Raw)
                .unwrap();
            let want: &[(i64, f64)] = match mode {
                Mode::Live => &[(t0, 0.5), (t0 + 1000, 0.5)],
                // The second was stored for the training, before it was scored.
                Mode::Replay => &[(t0, 0.5)],
            };
            assert_eq!(scored, want, "{mode:?}");
        }
    }

    /// Issue #18: `rm history.db*` while running sent every later sample to the
    /// unlinked file, lost at the next restart.
    #[test]
    fn a_removed_history_file_is_noticed_and_a_new_one_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let config = HistoryConfig::default();
        let t0 = 1_700_000_000_000;
        let mut w = Writer::start(History::open(&path, &config).unwrap(), Mode::Live);
        w.append(&record(t0), &[], t0);
        std::thread::sleep(Duration::from_millis(200));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(crate::store::sqlite::suffixed(&path, suffix));
        }
        for i in 1..=30 {
            let ts = t0 + i * 1000;
            w.append(&record(ts), &[], ts);
        }
        w.close(Duration::from_secs(5));
        let stats = History::open(&path, &config).unwrap().stats().unwrap();
        // Every sample: the first one was still in memory (a block is written once a
        // flush interval) when the file went, and moved to the new file with the rest.
        assert_eq!(stats.raw_rows, 31, "rows in the new file");
    }
}
