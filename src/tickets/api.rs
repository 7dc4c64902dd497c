//! `/api/v1/tickets` on the daemon's HTTP server (same TLS and auth as /metrics):
//! `GET /api/v1/tickets[?open=true]` lists tickets (newest first, no timelines),
//! `GET /api/v1/tickets/INC-42` gives one with its timeline. JSON, the same shape as
//! `anomalyd tickets list --json` / `show --json`.

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
        let mut guard = match self.store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.is_none() {
            match Store::open(&self.path) {
                Ok(s) => *guard = Some(s),
                Err(e) => return error(503, &e.to_string()),
            }
        }
        let Some(store) = guard.as_ref() else {
            return error(503, "ticket store unavailable");
        };
        let rest = path
            .strip_prefix("/api/v1/tickets")
            .unwrap_or("")
            .trim_matches('/');
        let result = if rest.is_empty() {
            let open = query
                .unwrap_or("")
                .split('&')
                .any(|kv| kv == "open=true" || kv == "open=1" || kv == "open");
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
            Ok(Err(e)) => error(500, &e.to_string()),
            Err(e) => error(500, &e.to_string()),
        }
    }
}

fn error(code: u16, message: &str) -> (u16, String) {
    (
        code,
        format!("{}\n", serde_json::json!({ "error": message })),
    )
}
