//! Guard state: cooldown per rule and resource, runs per window, and the circuit
//! breaker, kept in `<state_dir>/remediation.json` so a restart resets none of them.
//!
//! The file is small and read and written whole under an exclusive `flock` on a
//! sibling lock file, so `anomalyd remediation enable RULE` (another process) and
//! the daemon never lose each other's changes. Writes go to a temporary file that
//! is renamed over the old one: a crash leaves the old state or the new one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Guards;

const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardState {
    pub version: u32,
    pub rules: BTreeMap<String, RuleState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Start times (ms) of the runs still inside the window.
    pub runs_ms: Vec<i64>,
    /// Start time of the last run per resource ("" for whole-host incidents).
    pub last_run_ms: BTreeMap<String, i64>,
    pub consecutive_failures: u32,
    /// Set when the breaker trips; only an operator clears it.
    pub tripped: Option<Trip>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trip {
    pub at_ms: i64,
    pub failures: u32,
    pub last_error: String,
}

/// Why a run may not happen now.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Tripped(Trip),
    Cooldown { until_ms: i64, left_ms: i64 },
    RateLimited { runs: usize },
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Block::Tripped(t) => write!(
                f,
                "circuit breaker open after {} consecutive failures (last: {}); \
                 re-enable with `anomalyd remediation enable RULE`",
                t.failures, t.last_error
            ),
            Block::Cooldown { left_ms, .. } => write!(
                f,
                "in cooldown for this resource for another {}",
                crate::text::fmt_duration(std::time::Duration::from_secs(
                    (*left_ms as u64).div_ceil(1000)
                ))
            ),
            Block::RateLimited { runs } => write!(f, "already ran {runs} times in the window"),
        }
    }
}

impl GuardState {
    /// May `rule` run for `resource` at `now_ms`?
    pub fn check(&self, rule: &str, g: &Guards, resource: &str, now_ms: i64) -> Option<Block> {
        let s = self.rules.get(rule)?;
        if let Some(t) = &s.tripped {
            return Some(Block::Tripped(t.clone()));
        }
        if let Some(last) = s.last_run_ms.get(resource) {
            let until = last + g.cooldown.as_millis() as i64;
            if now_ms < until {
                return Some(Block::Cooldown {
                    until_ms: until,
                    left_ms: until - now_ms,
                });
            }
        }
        let since = now_ms - g.window.as_millis() as i64;
        let runs = s.runs_ms.iter().filter(|&&t| t > since).count();
        (runs >= g.max_runs as usize).then_some(Block::RateLimited { runs })
    }

    /// A run starts: it counts for the cooldown and the window from now.
    pub fn started(&mut self, rule: &str, g: &Guards, resource: &str, now_ms: i64) {
        let s = self.rules.entry(rule.to_string()).or_default();
        let since = now_ms - g.window.as_millis() as i64;
        s.runs_ms.retain(|&t| t > since);
        s.runs_ms.push(now_ms);
        let keep_after = now_ms - g.cooldown.as_millis() as i64;
        s.last_run_ms.retain(|_, t| *t > keep_after);
        s.last_run_ms.insert(resource.to_string(), now_ms);
    }

    /// A run ended. Returns true when this failure tripped the breaker.
    pub fn finished(&mut self, rule: &str, g: &Guards, failure: Option<&str>, now_ms: i64) -> bool {
        let s = self.rules.entry(rule.to_string()).or_default();
        let Some(error) = failure else {
            s.consecutive_failures = 0;
            return false;
        };
        s.consecutive_failures += 1;
        if s.tripped.is_none() && s.consecutive_failures >= g.failures_to_trip {
            s.tripped = Some(Trip {
                at_ms: now_ms,
                failures: s.consecutive_failures,
                last_error: error.to_string(),
            });
            return true;
        }
        false
    }

    /// Operator: close the breaker. Returns false if the rule was not tripped.
    pub fn enable(&mut self, rule: &str) -> bool {
        match self.rules.get_mut(rule) {
            Some(s) if s.tripped.is_some() => {
                s.tripped = None;
                s.consecutive_failures = 0;
                true
            }
            _ => false,
        }
    }

    pub fn tripped(&self, rule: &str) -> bool {
        self.rules.get(rule).is_some_and(|s| s.tripped.is_some())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not remediation state this version understands ({reason}); move it aside to start afresh")]
    Format { path: PathBuf, reason: String },
}

/// The state file, locked for the duration of one read-modify-write.
pub struct GuardFile {
    path: PathBuf,
}

impl GuardFile {
    pub fn in_dir(state: &crate::store::StateDir) -> GuardFile {
        GuardFile {
            path: state.remediation(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the state, let `f` change it, write it back (only if it changed).
    pub fn update<T>(&self, f: impl FnOnce(&mut GuardState) -> T) -> Result<T, GuardError> {
        let _lock = self.lock()?;
        let mut state = self.read()?;
        let before = state.clone();
        let out = f(&mut state);
        if state != before {
            self.write(&state)?;
        }
        Ok(out)
    }

    pub fn read(&self) -> Result<GuardState, GuardError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(GuardState {
                    version: VERSION,
                    ..Default::default()
                })
            }
            Err(e) => return Err(self.io(e)),
        };
        let state: GuardState = serde_json::from_str(&text).map_err(|e| GuardError::Format {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if state.version != VERSION {
            return Err(GuardError::Format {
                path: self.path.clone(),
                reason: format!("version {} (expected {VERSION})", state.version),
            });
        }
        Ok(state)
    }

    fn write(&self, state: &GuardState) -> Result<(), GuardError> {
        let tmp = self.path.with_extension("json.tmp");
        // Removing first unlinks whatever is there (a link is removed, not followed);
        // the new file is created exclusively.
        let _ = std::fs::remove_file(&tmp);
        let mut f = crate::store::create_new(&tmp).map_err(|e| self.io(e))?;
        let text = serde_json::to_string_pretty(state).unwrap_or_default();
        f.write_all(text.as_bytes()).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        give_to_dir_owner(&tmp, &self.path);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }

    fn lock(&self) -> Result<File, GuardError> {
        let lock = self.path.with_extension("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(crate::store::FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock)
            .map_err(|e| self.io(e))?;
        give_to_dir_owner(&lock, &self.path);
        // SAFETY: flock on a valid descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(self.io(std::io::Error::last_os_error()));
        }
        Ok(f)
    }

    fn io(&self, source: std::io::Error) -> GuardError {
        GuardError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// When root edits the state (the CLI), keep the files owned by whoever owns the
/// state directory (the daemon's user), or the daemon could no longer write them.
fn give_to_dir_owner(file: &Path, state: &Path) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    if let Some(meta) = state.parent().and_then(|d| std::fs::metadata(d).ok()) {
        let _ = std::os::unix::fs::chown(file, Some(meta.uid()), Some(meta.gid()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn g() -> Guards {
        Guards {
            cooldown: Duration::from_secs(60),
            max_runs: 2,
            window: Duration::from_secs(600),
            failures_to_trip: 2,
            ..Guards::default()
        }
    }

    #[test]
    fn cooldown_is_per_resource_and_window_counts_all() {
        let mut s = GuardState::default();
        assert_eq!(s.check("r", &g(), "/a", 0), None);
        s.started("r", &g(), "/a", 0);
        assert_eq!(
            s.check("r", &g(), "/a", 59_000),
            Some(Block::Cooldown {
                until_ms: 60_000,
                left_ms: 1000
            })
        );
        assert_eq!(s.check("r", &g(), "/b", 1000), None);
        s.started("r", &g(), "/b", 1000);
        assert_eq!(
            s.check("r", &g(), "/c", 2000),
            Some(Block::RateLimited { runs: 2 })
        );
        // Both runs leave the window after 600 s.
        assert_eq!(s.check("r", &g(), "/c", 601_001), None);
    }

    #[test]
    fn breaker_trips_on_consecutive_failures_and_holds_until_enabled() {
        let mut s = GuardState::default();
        assert!(!s.finished("r", &g(), Some("exit 1"), 0));
        assert!(!s.finished("r", &g(), None, 1));
        assert!(!s.finished("r", &g(), Some("exit 1"), 2));
        assert!(s.finished("r", &g(), Some("timed out"), 3));
        assert!(matches!(
            s.check("r", &g(), "/x", 10_000_000),
            Some(Block::Tripped(Trip { failures: 2, .. }))
        ));
        assert!(s.enable("r"));
        assert!(!s.enable("r"));
        assert_eq!(s.check("r", &g(), "/x", 10_000_000), None);
    }

    #[test]
    fn state_survives_a_reopen_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let f = GuardFile::in_dir(&crate::store::StateDir::at(dir.path()));
        f.update(|s| s.finished("r", &g(), Some("x"), 0)).unwrap();
        f.update(|s| s.finished("r", &g(), Some("x"), 1)).unwrap();
        assert!(GuardFile::in_dir(&crate::store::StateDir::at(dir.path()))
            .read()
            .unwrap()
            .tripped("r"));
        std::fs::write(f.path(), "{nonsense").unwrap();
        let e = f.read().unwrap_err().to_string();
        assert!(e.contains("move it aside"), "{e}");
    }
}
