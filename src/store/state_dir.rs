//! The state directory and every file in it, named in one place.
//!
//! | file | written by | read by |
//! |---|---|---|
//! | `history.db` | the history writer (`store/history.rs`) | training, forecasts, `collect --once`, `train --history` |
//! | `model.json` | training (`pipeline`), `train --history` | the daemon at start, `collect --once` |
//! | `risk.json` | training, beside the model (`forecast/risk.rs`) | the daemon at start, `collect --once` |
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

    pub fn tickets(&self) -> PathBuf {
        self.root.join(TICKETS_FILE)
    }

    pub fn remediation(&self) -> PathBuf {
        self.root.join(REMEDIATION_FILE)
    }
}
