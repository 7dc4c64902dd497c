//! One way to open a SQLite database, for every store in the state directory (history,
//! tickets, the outbox's connection to the tickets file): WAL, so readers in other
//! processes run beside the writer; a busy timeout, so writers queue instead of
//! failing; and the durability each store asks for.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

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
}

/// Which step of opening failed, and why; each store wraps it in its own error.
#[derive(Debug)]
pub struct OpenError {
    pub op: &'static str,
    pub source: rusqlite::Error,
}

/// Open (or create) the database at `path` with `p`.
pub fn open(path: &Path, p: &Pragmas) -> Result<Connection, OpenError> {
    let err = |op| move |source| OpenError { op, source };
    let conn = Connection::open(path).map_err(err("cannot open"))?;
    conn.busy_timeout(p.busy_timeout)
        .map_err(err("cannot set busy timeout"))?;
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
    if let Some(v) = p.journal_size_limit {
        conn.pragma_update(None, "journal_size_limit", v)
            .map_err(err("cannot set journal_size_limit"))?;
    }
    Ok(conn)
}
