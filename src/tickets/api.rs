//! `/api/v1/tickets` on the daemon's HTTP server (same TLS and auth as /metrics):
//! `GET /api/v1/tickets[?open=true]` lists tickets (newest first, no timelines),
//! `GET /api/v1/tickets/INC-42` gives one with its timeline. JSON, the same shape as
//! `anomalyd tickets list --json` / `show --json`.
//!
//! Errors are logged in full and answered in general terms: an HTTP client learns
//! that the store failed, never where the state directory is.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::store::Store;

/// The store, opened on first use and kept (one connection for all requests; calls
/// run on the blocking pool, one at a time).
#[derive(Clone)]
pub struct TicketsApi {
    path: PathBuf,
    store: Arc<Mutex<Option<Store>>>,
}

impl TicketsApi {
    pub fn new(path: PathBuf) -> TicketsApi {
        TicketsApi {
            path,
            store: Arc::new(Mutex::new(None)),
        }
    }

    /// (HTTP status, JSON body) for a GET of `path`.
    pub fn handle(&self, path: &str, query: Option<&str>, now_ms: i64) -> (u16, String) {
        match self.with_store(|store| answer(store, path, query, now_ms)) {
            Ok(reply) => reply,
            Err(reason) => error(503, reason),
        }
    }

    /// Run `f` with the store (opened on first use), on the calling thread (the
    /// blocking pool): the API, the dashboard's pages and its actions share this one
    /// connection. `Err` is the general reason for a client when the store cannot open
    /// (the full error is logged, with the path, here).
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> Result<R, &'static str> {
        let mut guard = match self.store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.is_none() {
            match Store::open(&self.path) {
                Ok(s) => *guard = Some(s),
                Err(e) => {
                    tracing::warn!("ticket store: {e}");
                    return Err("ticket store unavailable");
                }
            }
        }
        guard.as_ref().map(f).ok_or("ticket store unavailable")
    }
}

/// The answer to a GET of `path` under `/api/v1/tickets`.
fn answer(store: &Store, path: &str, query: Option<&str>, now_ms: i64) -> (u16, String) {
    let rest = path
        .strip_prefix("/api/v1/tickets")
        .unwrap_or("")
        .trim_matches('/');
    let result = if rest.is_empty() {
        let open = match open_filter(query) {
            Ok(open) => open,
            Err(e) => return error(400, &e),
        };
        store
            .list(open, now_ms)
            .map(|t| serde_json::to_string_pretty(&t))
    } else {
        match store.get(rest, now_ms) {
            Ok(Some(t)) => Ok(serde_json::to_string_pretty(&t)),
            Ok(None) => return error(404, &format!("no ticket {rest}")),
            Err(e) => Err(e),
        }
    };
    match result {
        Ok(Ok(mut body)) => {
            body.push('\n');
            (200, body)
        }
        Ok(Err(e)) => {
            tracing::warn!("/api/v1/tickets: cannot encode: {e}");
            error(500, "ticket query failed")
        }
        Err(e) => {
            tracing::warn!("/api/v1/tickets: {e}");
            error(500, "ticket query failed")
        }
    }
}

/// `?open=true|1|false|0` (or a bare `open`); anything else is the client's mistake,
/// not "all tickets".
fn open_filter(query: Option<&str>) -> Result<bool, String> {
    let mut open = false;
    for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        open = match kv.split_once('=') {
            None if kv == "open" => true,
            Some(("open", "true" | "1")) => true,
            Some(("open", "false" | "0")) => false,
            Some(("open", v)) => return Err(format!("open={v:?}: expected true or false")),
            _ => return Err(format!("unknown parameter {kv:?} (only open=true|false)")),
        };
    }
    Ok(open)
}

fn error(code: u16, message: &str) -> (u16, String) {
    (
        code,
        format!("{}\n", serde_json::json!({ "error": message })),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Issue #18: `?open=maybe` listed every ticket; a store that cannot be opened
    /// answered with the state directory's path.
    #[test]
    fn bad_queries_are_400_and_errors_name_no_path() {
        assert_eq!(open_filter(Some("open=true")), Ok(true));
        assert_eq!(open_filter(Some("open")), Ok(true));
        assert_eq!(open_filter(Some("open=0")), Ok(false));
        assert_eq!(open_filter(None), Ok(false));
        let dir = tempfile::tempdir().unwrap();
        let api = TicketsApi::new(dir.path().join("tickets.db"));
        let (code, body) = api.handle("/api/v1/tickets", Some("open=maybe"), 0);
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("open=\\\"maybe\\\""), "{body}");
        assert_eq!(api.handle("/api/v1/tickets", Some("x=1"), 0).0, 400);
        // A directory where the database should be: the store cannot open.
        let secret = dir.path().join("secret-place");
        std::fs::create_dir_all(secret.join("tickets.db")).unwrap();
        let api = TicketsApi::new(secret.join("tickets.db"));
        let (code, body) = api.handle("/api/v1/tickets", None, 0);
        assert_eq!(code, 503, "{body}");
        assert!(
            !body.contains("secret-place") && !body.contains('/'),
            "{body}"
        );
    }
}
