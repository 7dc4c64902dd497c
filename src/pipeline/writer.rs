//! The store stage: each record appended to the history. Live, through a bounded queue
//! to a writer thread (a stalled disk must never delay a tick); in replay, inline.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::mode::Mode;
use crate::sample::Record;
use crate::store::History;

/// How often the history is pruned (retention and size bound).
const PRUNE_EVERY_MS: i64 = 5 * 60 * 1000;
/// How often the writer checks that its file is still the one at the history's path.
const CHECK_FILE_EVERY_MS: i64 = 10_000;

pub(super) enum Writer {
    /// Live: a bounded queue to the writer thread. If the disk stalls the queue fills
    /// and samples are dropped from history (counted), never from sampling.
    Thread {
        tx: mpsc::SyncSender<Record>,
        thread: Option<JoinHandle<()>>,
        dropped: u64,
    },
    Inline {
        history: Box<History>,
        last_prune_ms: i64,
    },
}

impl Writer {
    pub(super) fn start(history: History, mode: Mode) -> Writer {
        match mode {
            Mode::Replay => Writer::Inline {
                history: Box::new(history),
                last_prune_ms: 0,
            },
            Mode::Live => {
                let (tx, thread) = spawn_writer(history);
                Writer::Thread {
                    tx,
                    thread,
                    dropped: 0,
                }
            }
        }
    }

    /// The history, when it is written inline (replay: training reads it directly).
    pub(super) fn inline(&self) -> Option<&History> {
        match self {
            Writer::Inline { history, .. } => Some(history),
            Writer::Thread { .. } => None,
        }
    }

    /// Samples dropped because the writer thread was behind (live only).
    pub(super) fn dropped(&self) -> Option<u64> {
        match self {
            Writer::Thread { dropped, .. } => Some(*dropped),
            Writer::Inline { .. } => None,
        }
    }

    pub(super) fn append(&mut self, record: &Record, now: i64) {
        match self {
            Writer::Thread { tx, dropped, .. } => {
                if let Err(mpsc::TrySendError::Full(_)) = tx.try_send(record.clone()) {
                    *dropped += 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(
                            dropped = *dropped,
                            "history writer is behind; samples dropped from history"
                        );
                    }
                }
            }
            Writer::Inline {
                history,
                last_prune_ms,
            } => {
                if let Err(e) = history.append(record) {
                    tracing::warn!("history: {}", crate::text::error_chain(&e));
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

    /// Close the queue: the thread stores what is queued, then ends. Wait for it up to
    /// `grace`; a disk that stalls longer does not hold the shutdown.
    pub(super) fn close(self, grace: Duration) {
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
/// the path again, which creates a new history, and say so.
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

fn spawn_writer(mut history: History) -> (mpsc::SyncSender<Record>, Option<JoinHandle<()>>) {
    let (tx, rx) = mpsc::sync_channel::<Record>(1024);
    let spawned = std::thread::Builder::new()
        .name("history".into())
        .spawn(move || {
            let mut last_prune = 0i64;
            let mut failing = false;
            let mut file = History::file_id(history.path());
            let mut last_check = 0i64;
            for record in rx {
                let now = record.timestamp_ms.unwrap_or(0);
                if now - last_check >= CHECK_FILE_EVERY_MS {
                    last_check = now;
                    check_file(&mut history, &mut file);
                }
                match history.append(&record) {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("history writes recovered");
                    }
                    Ok(()) => {}
                    // Disk full or read-only: say so once, keep trying, keep sampling.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(
                            "history write failed (will keep retrying quietly): {}",
                            crate::text::error_chain(&e)
                        );
                    }
                    Err(_) => {}
                }
                if now - last_prune >= PRUNE_EVERY_MS {
                    last_prune = now;
                    if let Err(e) = history.prune(now) {
                        tracing::warn!("history prune: {e}");
                    }
                }
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

    /// Issue #18: `rm history.db*` while running sent every later sample to the
    /// unlinked file, lost at the next restart.
    #[test]
    fn a_removed_history_file_is_noticed_and_a_new_one_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let config = HistoryConfig::default();
        let t0 = 1_700_000_000_000;
        let mut w = Writer::start(History::open(&path, &config).unwrap(), Mode::Live);
        w.append(&record(t0), t0);
        std::thread::sleep(Duration::from_millis(200));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(crate::store::sqlite::suffixed(&path, suffix));
        }
        for i in 1..=30 {
            let ts = t0 + i * 1000;
            w.append(&record(ts), ts);
        }
        w.close(Duration::from_secs(5));
        let stats = History::open(&path, &config).unwrap().stats().unwrap();
        assert!(
            stats.raw_rows >= 20,
            "{} rows in the new file",
            stats.raw_rows
        );
    }
}
