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
/// run on the blocking pool, one at a time). The dashboard's acknowledgements,
/// assignments and resolutions go through it, so it queues their deliveries for the
/// configured sinks as the daemon's own changes do.
#[derive(Clone)]
pub struct TicketsApi {
    path: PathBuf,
    store: Arc<Mutex<Opened>>,
}

/// The store once opened, and the sinks it delivers to.
struct Opened {
    store: Option<Store>,
    sinks: Vec<String>,
}

impl TicketsApi {
    /// `sinks`: the `tickets.sinks` names (`TicketsConfig::sink_names`).
    pub fn new(path: PathBuf, sinks: Vec<String>) -> TicketsApi {
        TicketsApi {
            path,
            store: Arc::new(Mutex::new(Opened { store: None, sinks })),
        }
    }

    /// The sinks changed on reload: changes from now on are queued for these.
    pub fn set_sinks(&self, sinks: Vec<String>) {
        let mut guard = self.lock();
        if let Some(store) = &mut guard.store {
            store.set_sinks(sinks.clone());
        }
        guard.sinks = sinks;
    }

    /// A request that panicked with the lock held left the store as it was: go on.
    fn lock(&self) -> std::sync::MutexGuard<'_, Opened> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut guard = self.lock();
        if guard.store.is_none() {
            match Store::open(&self.path) {
                Ok(s) => guard.store = Some(s.with_sinks(guard.sinks.clone())),
                Err(e) => {
                    tracing::warn!("ticket store: {e}");
                    return Err("ticket store unavailable");
                }
            }
        }
        guard
            .store
            .as_ref()
            .map(f)
            .ok_or("ticket store unavailable")
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
        let api = TicketsApi::new(dir.path().join("tickets.db"), Vec::new());
        let (code, body) = api.handle("/api/v1/tickets", Some("open=maybe"), 0);
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("open=\\\"maybe\\\""), "{body}");
        assert_eq!(api.handle("/api/v1/tickets", Some("x=1"), 0).0, 400);
        // A directory where the database should be: the store cannot open.
        let secret = dir.path().join("secret-place");
        std::fs::create_dir_all(secret.join("tickets.db")).unwrap();
        let api = TicketsApi::new(secret.join("tickets.db"), Vec::new());
        let (code, body) = api.handle("/api/v1/tickets", None, 0);
        assert_eq!(code, 503, "{body}");
        assert!(
            !body.contains("secret-place") && !body.contains('/'),
            "{body}"
        );
    }

    /// The dashboard's actions are queued for the sinks it was given, and after a
    /// reload for the new ones.
    #[test]
    fn actions_are_queued_for_the_sinks_of_the_day() {
        use crate::tickets::outbox;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tickets.db");
        let incident = |id: &str| {
            crate::incident::Change::Opened(crate::incident::testing::storage_anomaly(
                id, 1_000, 0.97, 12.0,
            ))
        };
        let daemon = Store::open(&path).unwrap();
        daemon
            .apply(&incident("INC-1"), "# Report", None, 1_000)
            .unwrap();
        daemon
            .apply(&incident("INC-2"), "# Report", None, 1_000)
            .unwrap();
        let api = TicketsApi::new(path.clone(), vec!["hook".into()]);
        let sinks_of = |id: &str| -> Vec<String> {
            let conn = rusqlite::Connection::open(&path).unwrap();
            outbox::rows(&conn)
                .unwrap()
                .into_iter()
                .filter(|r| r.delivery.ticket_id == id)
                .map(|r| r.sink)
                .collect()
        };
        api.with_store(|s| s.ack("INC-1", Some("alice"), 2_000))
            .unwrap()
            .unwrap();
        assert_eq!(sinks_of("INC-1"), ["hook"]);
        api.set_sinks(vec!["mail".into()]);
        api.with_store(|s| s.resolve("INC-2", "fixed", Some("alice"), 3_000))
            .unwrap()
            .unwrap();
        assert_eq!(sinks_of("INC-2"), ["mail"]);
    }
}
