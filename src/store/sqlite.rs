//! One way to open a SQLite database, for every store in the state directory (history,
//! tickets, the outbox's connection to the tickets file): WAL, so readers in other
//! processes run beside the writer; a busy timeout, so writers queue instead of
//! failing; and the durability each store asks for.
//!
//! The files are never reached through a symbolic link (the database, its WAL, its
//! shared-memory index), and a new database is created by us, `O_EXCL|O_NOFOLLOW`
//! with [`super::FILE_MODE`], before SQLite opens it (SQLite gives the WAL and index
//! the database's mode).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use super::state_dir::{create_new, refuse_symlink};

/// What a store asks of its connection.
#[derive(Debug, Clone, Copy)]
pub struct Pragmas {
    /// How long a statement waits for another connection's lock.
    pub busy_timeout: Duration,
    /// `FULL` (fsync at every commit) or `NORMAL` (fsync at checkpoints: a killed
    /// process loses nothing committed; only an OS crash can roll back the last commits).
    pub synchronous: &'static str,
    /// `INCREMENTAL` lets a store give freed pages back; it only takes effect on a new
    /// file, so it is set before anything else.
    pub auto_vacuum: Option<&'static str>,
    /// Bytes a WAL is truncated back to after a checkpoint.
    pub journal_size_limit: Option<i64>,
    /// The connection's page cache, in KiB (SQLite's default: 2,000). It fills with
    /// every page the connection touches until it reaches this size, so a long-running
    /// daemon's stores would each grow to it; the kernel's page cache holds the file
    /// anyway, and the daemon's queries are appends and sequential reads.
    pub cache_kib: Option<i64>,
}

/// The page cache of each of the daemon's long-lived connections (history, tickets,
/// outbox): 64 KiB instead of SQLite's 2 MB each, which they would reach as the files
/// grow (README, "Memory"). Their writes are appends and their reads sequential scans
/// that the kernel's page cache serves; what a B-tree descent needs again stays in 64 KiB.
pub const DAEMON_CACHE_KIB: i64 = 64;

/// Which step of opening failed, and why; each store wraps it in its own error.
#[derive(Debug)]
pub struct OpenError {
    pub op: &'static str,
    pub source: rusqlite::Error,
}

/// Open (or create) the database at `path` with `p`.
pub fn open(path: &Path, p: &Pragmas) -> Result<Connection, OpenError> {
    open_paged(path, p, None)
}

/// [`open`], and a new file gets pages of `page_size` bytes (SQLite's default is 4096;
/// the size is fixed when the file is first written, so this does nothing to an
/// existing file).
pub fn open_paged(
    path: &Path,
    p: &Pragmas,
    page_size: Option<i64>,
) -> Result<Connection, OpenError> {
    let err = |op| move |source| OpenError { op, source };
    let refused = |op, e: std::io::Error| OpenError {
        op,
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(e.to_string()),
        ),
    };
    for p in [
        path.to_path_buf(),
        suffixed(path, "-wal"),
        suffixed(path, "-shm"),
    ] {
        refuse_symlink(&p).map_err(|e| refused("refusing a symbolic link", e))?;
    }
    match create_new(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(refused("cannot create", e))
        }
        _ => {}
    }
    let flags = OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(path, flags).map_err(err("cannot open"))?;
    conn.busy_timeout(p.busy_timeout)
        .map_err(err("cannot set busy timeout"))?;
    if let Some(n) = page_size {
        conn.pragma_update(None, "page_size", n)
            .map_err(err("cannot set page_size"))?;
    }
    if let Some(v) = p.auto_vacuum {
        conn.pragma_update(None, "auto_vacuum", v)
            .map_err(err("cannot set auto_vacuum"))?;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(err("cannot enable WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "database could not use WAL; writes will be slower");
    }
    conn.pragma_update(None, "synchronous", p.synchronous)
        .map_err(err("cannot set synchronous"))?;
    if let Some(kib) = p.cache_kib {
        conn.pragma_update(None, "cache_size", -kib)
            .map_err(err("cannot set cache_size"))?;
    }
    if let Some(v) = p.journal_size_limit {
        conn.pragma_update(None, "journal_size_limit", v)
            .map_err(err("cannot set journal_size_limit"))?;
    }
    Ok(conn)
}

/// `path` with `suffix` appended to its file name (`history.db-wal`).
pub fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether SQLite found the file itself unusable (not a database, or corrupt), as
/// opposed to the environment (permissions, disk full, locks): only then may a store
/// move it aside.
pub fn is_unusable(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Rename `path` (and its `-wal`) to `<name>.corrupt-<unix seconds>[.n]` and remove its
/// `-shm`, so a fresh database can be created in its place; returns the new name.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut aside = suffixed(path, &format!(".corrupt-{secs}"));
    let mut n = 1;
    while aside.symlink_metadata().is_ok() {
        aside = suffixed(path, &format!(".corrupt-{secs}.{n}"));
        n += 1;
    }
    std::fs::rename(path, &aside)?;
    // A WAL left behind would be replayed into the new file if its header matched.
    let wal = suffixed(path, "-wal");
    if wal.symlink_metadata().is_ok() {
        std::fs::rename(&wal, suffixed(&aside, "-wal"))?;
    }
    match std::fs::remove_file(suffixed(path, "-shm")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    Ok(aside)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pragmas() -> Pragmas {
        Pragmas {
            busy_timeout: Duration::from_millis(100),
            synchronous: "FULL",
            auto_vacuum: None,
            journal_size_limit: None,
            cache_kib: None,
        }
    }

    #[test]
    fn a_bounded_page_cache_is_set_and_the_default_kept_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let cache =
            |c: &Connection| -> i64 { c.query_row("PRAGMA cache_size", [], |r| r.get(0)).unwrap() };
        let bounded = Pragmas {
            cache_kib: Some(DAEMON_CACHE_KIB),
            ..pragmas()
        };
        let conn = open(&dir.path().join("a.db"), &bounded).unwrap();
        assert_eq!(cache(&conn), -DAEMON_CACHE_KIB);
        let conn = open(&dir.path().join("b.db"), &pragmas()).unwrap();
        assert_eq!(cache(&conn), -2000);
    }

    #[test]
    fn links_are_refused_and_new_files_get_the_state_mode() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        symlink(dir.path().join("elsewhere.db"), &db).unwrap();
        let e = open(&db, &pragmas()).unwrap_err();
        assert_eq!(e.op, "refusing a symbolic link");
        assert!(!dir.path().join("elsewhere.db").exists());
        std::fs::remove_file(&db).unwrap();
        symlink(dir.path().join("w"), suffixed(&db, "-wal")).unwrap();
        assert!(open(&db, &pragmas()).is_err());
        std::fs::remove_file(suffixed(&db, "-wal")).unwrap();
        let old = unsafe { libc::umask(0) };
        let conn = open(&db, &pragmas());
        unsafe { libc::umask(old) };
        let conn = conn.unwrap();
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        for p in [db.clone(), suffixed(&db, "-wal")] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, super::super::FILE_MODE, "{}", p.display());
        }
    }
}
