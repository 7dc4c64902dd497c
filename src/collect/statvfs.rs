//! `statvfs` with a deadline, on one long-lived helper thread.
//!
//! A hard NFS mount whose server is gone blocks `statvfs` in the kernel indefinitely,
//! and the blocked thread cannot be cancelled. So the call runs on a helper thread and
//! the tick waits for it at most [`TIMEOUT`]. A mount whose call is still in flight is
//! skipped until that call returns (node_exporter does the same). The helper lives
//! across ticks: one thread per mount per tick was a tenth of the daemon's CPU time.
//! When a call overruns, its helper is left to finish it alone and the next call
//! starts a new one.

use std::collections::BTreeSet;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::disk::{FsStat, StatFs};

/// How long one `statvfs` may take before the mount is treated as hung.
pub const TIMEOUT: Duration = Duration::from_millis(500);

pub struct Guarded {
    call: StatFs,
    timeout: Duration,
    /// Mounts with a call in flight, shared with the helpers, which remove their mount
    /// when its call returns, late or not ([`Guarded::ask`]).
    in_flight: Arc<Mutex<BTreeSet<PathBuf>>>,
    helper: Option<Helper>,
}

struct Helper {
    requests: mpsc::Sender<PathBuf>,
    results: mpsc::Receiver<io::Result<FsStat>>,
}

impl Guarded {
    pub fn new(call: StatFs, timeout: Duration) -> Self {
        Guarded {
            call,
            timeout,
            in_flight: Arc::default(),
            helper: None,
        }
    }

    /// `call(path)` on the helper thread, or an error of kind `TimedOut` if it did not
    /// return in time or an earlier call on `path` has not returned yet.
    pub fn stat(&mut self, path: &Path) -> io::Result<FsStat> {
        if !lock(&self.in_flight).insert(path.to_path_buf()) {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                "an earlier statvfs on this mount has not returned",
            ));
        }
        self.ask(path)
    }

    /// The mount is freed by the helper when its call returns (before it answers, so
    /// an answer that comes as the wait gives up cannot leave the mount marked for
    /// ever), and here only when no helper took the call or one died in it.
    fn ask(&mut self, path: &Path) -> io::Result<FsStat> {
        let stopped = || io::Error::other("the statvfs helper thread stopped");
        let helper = match self.helper.take() {
            Some(h) => h,
            None => match self.spawn() {
                Ok(h) => h,
                Err(e) => {
                    lock(&self.in_flight).remove(path);
                    return Err(e);
                }
            },
        };
        if helper.requests.send(path.to_path_buf()).is_err() {
            lock(&self.in_flight).remove(path);
            return Err(stopped());
        }
        match helper.results.recv_timeout(self.timeout) {
            Ok(result) => {
                self.helper = Some(helper);
                result
            }
            Err(RecvTimeoutError::Timeout) => {
                let timeout = self.timeout;
                tracing::warn!(mount = %path.display(), "statvfs did not return within {timeout:?}; skipping this mount until it does");
                // `helper` is dropped here: the thread ends once its call returns.
                Err(io::Error::new(ErrorKind::TimedOut, "statvfs timed out"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                lock(&self.in_flight).remove(path);
                Err(stopped())
            }
        }
    }

    fn spawn(&self) -> io::Result<Helper> {
        let (requests, incoming) = mpsc::channel::<PathBuf>();
        let (answers, results) = mpsc::channel();
        let call = self.call;
        let in_flight = Arc::clone(&self.in_flight);
        std::thread::Builder::new()
            .name("statvfs".into())
            .spawn(move || {
                for path in incoming {
                    let result = call(&path);
                    lock(&in_flight).remove(&path);
                    if answers.send(result).is_err() {
                        // Nobody waits any more: the call overran.
                        return;
                    }
                }
            })?;
        Ok(Helper { requests, results })
    }
}

fn lock(set: &Mutex<BTreeSet<PathBuf>>) -> MutexGuard<'_, BTreeSet<PathBuf>> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn slow(path: &Path) -> io::Result<FsStat> {
        if path.ends_with("hung") {
            std::thread::sleep(Duration::from_millis(400));
        }
        Ok(FsStat::default())
    }

    #[test]
    fn hung_statvfs_is_skipped_until_it_returns() {
        let mut g = Guarded::new(slow, Duration::from_millis(50));
        let p = Path::new("/mnt/hung");
        let t = std::time::Instant::now();
        let e = g.stat(p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        // While the first call is stuck, the mount is skipped at once, and other
        // mounts are answered by a new helper.
        let e = g.stat(p).unwrap_err();
        assert!(e.to_string().contains("has not returned"), "{e}");
        assert!(g.stat(Path::new("/mnt/fine")).is_ok());
        assert!(t.elapsed() < Duration::from_millis(300));
        std::thread::sleep(Duration::from_millis(500));
        // Once it returned, the mount is tried again.
        g.timeout = Duration::from_secs(2);
        assert!(g.stat(p).is_ok());
    }

    /// The threads `counted` ran on.
    static CALLERS: Mutex<Vec<std::thread::ThreadId>> = Mutex::new(Vec::new());

    fn counted(_: &Path) -> io::Result<FsStat> {
        let me = std::thread::current().id();
        let mut seen = CALLERS.lock().unwrap();
        if !seen.contains(&me) {
            seen.push(me);
        }
        Ok(FsStat {
            size_bytes: 1,
            ..FsStat::default()
        })
    }

    #[test]
    fn one_helper_answers_call_after_call() {
        let mut g = Guarded::new(counted, TIMEOUT);
        for _ in 0..50 {
            assert_eq!(g.stat(Path::new("/")).unwrap().size_bytes, 1);
            assert_eq!(g.stat(Path::new("/home")).unwrap().size_bytes, 1);
        }
        assert_eq!(CALLERS.lock().unwrap().len(), 1, "one helper thread");
    }
}
