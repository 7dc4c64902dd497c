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
//!
//! The daemon often runs as root, so nothing in here may be redirected: a file is
//! created only with `O_EXCL|O_NOFOLLOW` ([`create_new`], [`write_atomic`]) and its
//! mode set explicitly ([`FILE_MODE`], whatever the umask), a state file that is a
//! symbolic link is refused ([`refuse_symlink`], checked for every name above when
//! the directory is opened), and so is a directory that others may write to.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Mode of every file the daemon creates here: the owner writes, its group (operators
/// running `anomalyd tickets`) reads, nobody else.
pub const FILE_MODE: u32 = 0o640;

/// Refuse `path` if it is a symbolic link (a missing file is fine).
pub fn refuse_symlink(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is a symbolic link; state files must be plain files",
                path.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Create `path`, which must not exist (not even as a dangling link), with
/// [`FILE_MODE`].
pub fn create_new(path: &Path) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(FILE_MODE)
        .open(path)?;
    // The mode given to open() is cut by the umask; set it for real.
    f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Replace `path` with `bytes` atomically: a new temporary file beside it (never an
/// existing one, never through a link), synced, then renamed over `path` (a rename
/// replaces a link at `path` instead of writing through it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = create_new(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let result = written.and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

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
    /// resolve it to an absolute path. Refused when others may write to it (they could
    /// plant links the daemon would follow as root) or when any state file in it is a
    /// symbolic link.
    pub fn create(dir: &Path) -> anyhow::Result<StateDir> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let root =
            std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let mode = std::fs::metadata(&root)
            .with_context(|| format!("reading {}", root.display()))?
            .permissions()
            .mode();
        anyhow::ensure!(
            mode & 0o002 == 0,
            "state directory {} is writable by others (mode {:o}); chmod o-w it",
            root.display(),
            mode & 0o7777
        );
        let state = StateDir { root };
        for name in [
            HISTORY_FILE,
            MODEL_FILE,
            RISK_FILE,
            OPENING_FILE,
            TICKETS_FILE,
            REMEDIATION_FILE,
        ] {
            for suffix in ["", "-wal", "-shm", "-journal", ".tmp", ".json.tmp"] {
                refuse_symlink(&state.root.join(format!("{name}{suffix}")))?;
            }
        }
        Ok(state)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Issue #18: `model.json.tmp` as a link to another file had that file overwritten
    /// by the first training; a dangling `history.db -> /x` created a database at /x.
    #[test]
    fn links_and_world_writable_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let state = dir.path().join("state");
        StateDir::create(&state).unwrap();
        symlink(&victim, state.join("model.json.tmp")).unwrap();
        let e = StateDir::create(&state).unwrap_err().to_string();
        assert!(e.contains("model.json.tmp is a symbolic link"), "{e}");
        // Written anyway (as the pre-fix code did): the link is never followed.
        write_atomic(&state.join("model.json"), b"{}").unwrap();
        create_new(&state.join("model.json.tmp")).unwrap_err();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        std::fs::remove_file(state.join("model.json.tmp")).unwrap();
        symlink(dir.path().join("x"), state.join("history.db")).unwrap();
        assert!(StateDir::create(&state).is_err());
        std::fs::remove_file(state.join("history.db")).unwrap();
        StateDir::create(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = StateDir::create(&state).unwrap_err().to_string();
        assert!(e.contains("writable by others"), "{e}");
    }

    #[test]
    fn files_are_created_with_an_explicit_mode_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let old = unsafe { libc::umask(0o000) };
        let p = dir.path().join("f");
        write_atomic(&p, b"x").unwrap();
        unsafe { libc::umask(old) };
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        // Nothing left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
