//! The state directory and every file in it, named in one place.
//!
//! | file | written by | read by |
//! |---|---|---|
//! | `history.db` | the history writer (`store/history.rs`) | training, forecasts, `collect --once`, `train --history` |
//! | `model.json` | training (`pipeline`), `train --history` | the daemon at start, `collect --once` |
//! | `risk.json` | training, beside the model (`forecast/risk.rs`) | the daemon at start, `collect --once` |
//! | `opening.json` | training, beside the model (`incident/calibrate.rs`) | the daemon at start |
//! | `tickets.db` | the desk, the outbox, operators (`tickets/`) | `tickets`, `silence`, `/api/v1/tickets` |
//! | `remediation.json` | remediation's guards (`remediate/guards.rs`) | `remediation status` |

use std::path::{Path, PathBuf};

use anyhow::Context;

/// File name of the history database inside the state directory.
pub const HISTORY_FILE: &str = "history.db";
/// The trained model.
pub const MODEL_FILE: &str = "model.json";
/// The fault-risk calibration fitted with the model.
pub const RISK_FILE: &str = "risk.json";
/// The false-alarm budget's calibration for the model.
pub const OPENING_FILE: &str = "opening.json";
/// Tickets, their timelines, silences and the outbox.
pub const TICKETS_FILE: &str = "tickets.db";
/// Remediation's guard state (cooldowns, runs per window, tripped rules).
pub const REMEDIATION_FILE: &str = "remediation.json";

/// Where the daemon keeps what must survive a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The directory as given, not created: for commands that only read what the
    /// daemon left there.
    pub fn at(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// Create the directory (owner and group only: it holds history and tickets) and
    /// resolve it to an absolute path.
    pub fn create(dir: &Path) -> anyhow::Result<StateDir> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let root =
            std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        Ok(StateDir { root })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn history(&self) -> PathBuf {
        self.root.join(HISTORY_FILE)
    }

    pub fn model(&self) -> PathBuf {
        self.root.join(MODEL_FILE)
    }

    pub fn risk(&self) -> PathBuf {
        self.root.join(RISK_FILE)
    }

    pub fn opening(&self) -> PathBuf {
        self.root.join(OPENING_FILE)
    }

    pub fn tickets(&self) -> PathBuf {
        self.root.join(TICKETS_FILE)
    }

    pub fn remediation(&self) -> PathBuf {
        self.root.join(REMEDIATION_FILE)
    }
}

/// A state directory of its own under the system's temporary directory, removed on
/// drop: for replays and evaluations, whose state is disposable and must never mix
/// with the daemon's.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(what: &str) -> anyhow::Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("anomalyd-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }

    pub fn state(&self) -> StateDir {
        StateDir::at(&self.0)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
