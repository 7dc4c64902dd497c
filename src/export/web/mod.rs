//! The dashboard: HTML pages for people and the small JSON API their scripts poll,
//! on the same listener, TLS and basic auth as `/metrics` ([`super::http`] admits a
//! request before it comes here).
//!
//! - `GET /`: the overview ([`overview`]); `GET /latency`: the ping heatmaps
//!   ([`latency`]); `GET /tickets`, `GET /tickets/ID`: the tickets ([`tickets`]);
//! - `POST /tickets/ID/ack|assign|resolve`: the operator's actions, with a CSRF token
//!   ([`csrf`]), for an authenticated user, or without auth for loopback clients when
//!   `http.dashboard_loopback_writes` is on; read-only otherwise;
//! - `GET /api/v1/live`: the daemon's state ([`live::Snapshot`]) and its open
//!   tickets, JSON; `GET /api/v1/timeline|heatmap|health?since=`: the charts' data,
//!   JSON, and `GET /charts/score.svg|latency.svg`: the charts alone ([`overview`]);
//! - `GET /assets/...`: the stylesheet and script, compiled into the binary.
//!
//! Live state comes from the snapshot the tick leaves ([`live::Live`]); stored state
//! (tickets, history) is read on the server's blocking pool, so a request never waits
//! for a tick and a tick never waits for a request. Every bad request gets a 4xx that
//! says what was wrong ([`query`]).

pub mod csrf;
pub mod live;
pub mod markdown;
pub mod overview;
pub mod page;
pub mod query;
pub mod tickets;
pub mod views;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use maud::Markup;
use serde::Serialize;

use self::page::Nav;
use self::query::{params, refuse, Refusal, MAX_QUERY};
use crate::sample::now_ms;
use crate::tickets::api::TicketsApi;
use crate::tickets::store::Ticket;

pub use self::csrf::Csrf;
pub use self::live::Live;

type Resp = Response<Full<Bytes>>;

/// What the dashboard needs, shared by every connection.
#[derive(Clone)]
pub struct Dashboard {
    /// The snapshot the tick leaves.
    pub live: Live,
    csrf: Csrf,
    tickets: Option<TicketsApi>,
    /// The history behind the charts (`None`: pages without them).
    views: Option<views::Views>,
    /// Basic auth is on: every request here comes from a known user.
    auth: bool,
    /// `http.dashboard_loopback_writes`: without auth, loopback clients may act.
    loopback_writes: bool,
}

/// Who is asking: their address and, with basic auth, their user name.
#[derive(Debug, Clone)]
pub struct Client {
    pub peer: IpAddr,
    pub user: Option<String>,
}

/// A client's body may take this long to arrive once its header has.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

impl Dashboard {
    pub fn new(
        live: Live,
        tickets: Option<TicketsApi>,
        views: Option<views::Views>,
        auth: bool,
        loopback_writes: bool,
    ) -> Dashboard {
        Dashboard {
            live,
            csrf: Csrf::new(),
            tickets,
            views,
            auth,
            loopback_writes,
        }
    }

    /// Who `client` acts as, when it may act at all: `user:NAME` with basic auth,
    /// `loopback` when writes from loopback are allowed; `None` is read-only.
    fn identity(&self, client: &Client) -> Option<String> {
        if self.auth {
            client.user.as_ref().map(|u| format!("user:{u}"))
        } else if self.loopback_writes && client.peer.is_loopback() {
            Some("loopback".into())
        } else {
            None
        }
    }
}

/// Whether `path` is the dashboard's (the server routes the rest itself).
pub fn handles(path: &str) -> bool {
    matches!(
        path,
        "/" | "/latency"
            | "/tickets"
            | "/api/v1/live"
            | "/api/v1/timeline"
            | "/api/v1/heatmap"
            | "/api/v1/health"
            | "/charts/score.svg"
            | "/charts/latency.svg"
    ) || path.starts_with("/tickets/")
        || path.starts_with("/assets/")
}

fn respond(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Pages load nothing from elsewhere and run no inline script (ticket bodies quote
/// the host; their HTML is escaped, and this is the second fence).
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

fn html(status: u16, m: Markup) -> Resp {
    let mut r = respond(status, "text/html; charset=utf-8", m.into_string());
    r.headers_mut()
        .insert("content-security-policy", HeaderValue::from_static(CSP));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json(status: u16, v: &impl Serialize) -> Resp {
    match serde_json::to_string(v) {
        Ok(mut body) => {
            body.push('\n');
            respond(status, "application/json", body)
        }
        Err(e) => {
            tracing::warn!("dashboard: cannot encode JSON: {e}");
            respond(500, "application/json", "{\"error\": \"cannot encode\"}\n")
        }
    }
}

fn json_refusal(r: &Refusal) -> Resp {
    json(r.status, &serde_json::json!({ "error": r.reason }))
}

fn page_refusal(r: &Refusal, nav: Nav) -> Resp {
    let title = match r.status {
        404 => "Not found",
        403 => "Not allowed",
        409 => "Not possible",
        503 => "Unavailable",
        _ => "Bad request",
    };
    html(r.status, page::problem(title, nav, &r.reason))
}

/// Ticket ids are `INC-42`; anything else is no ticket (and is not echoed at length).
fn ticket_id(s: &str) -> Result<&str, Refusal> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s)
    } else {
        Err(refuse(404, "no such ticket"))
    }
}

/// Run `f` on the blocking pool (SQLite reads can wait on a lock; pages built from
/// history take milliseconds of CPU).
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, Refusal> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| refuse(503, "the request failed; try again"))
}

/// Serve one dashboard request (the caller has admitted the client).
pub async fn serve(d: &Dashboard, client: Client, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let post = path.starts_with("/tickets/") && path.matches('/').count() == 3;
    let allowed = if post { "POST" } else { "GET, HEAD" };
    let ok = if post {
        method == Method::POST
    } else {
        matches!(method, Method::GET | Method::HEAD)
    };
    if !ok {
        let mut r = respond(405, "text/plain; charset=utf-8", "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allowed));
        return r;
    }
    let query = req.uri().query().map(str::to_string);
    match path.as_str() {
        "/" => overview::serve(d, query).await,
        "/latency" => overview::latency(d, query).await,
        "/api/v1/live" => live_api(d, query).await,
        "/api/v1/timeline"
        | "/api/v1/heatmap"
        | "/api/v1/health"
        | "/charts/score.svg"
        | "/charts/latency.svg" => overview::data(d, &path, query).await,
        "/tickets" => ticket_list(d, query).await,
        _ if post => action(d, &client, &path, req).await,
        _ if path.starts_with("/tickets/") => ticket(d, &client, &path, query).await,
        _ => asset(&path),
    }
}

fn asset(path: &str) -> Resp {
    let (body, kind): (&'static str, &'static str) = match path {
        "/assets/dash.css" => (
            include_str!("../../../assets/dash.css"),
            "text/css; charset=utf-8",
        ),
        "/assets/dash.js" => (
            include_str!("../../../assets/dash.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return respond(404, "text/plain; charset=utf-8", "not found\n"),
    };
    let mut r = respond(200, kind, body);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    r
}

/// `GET /api/v1/live`: the snapshot and the open tickets.
async fn live_api(d: &Dashboard, query: Option<String>) -> Resp {
    if let Err(r) = params(query.as_deref(), &[]) {
        return json_refusal(&r);
    }
    let snapshot = d.live.get();
    let open = match open_tickets(d).await {
        Ok(t) => t,
        Err(r) => return json_refusal(&r),
    };
    #[derive(Serialize)]
    struct Answer<'a> {
        #[serde(flatten)]
        snapshot: &'a live::Snapshot,
        tickets_open: Vec<Ticket>,
    }
    json(
        200,
        &Answer {
            snapshot: &snapshot,
            tickets_open: open,
        },
    )
}

/// The open tickets, newest first (empty when incidents are off).
pub async fn open_tickets(d: &Dashboard) -> Result<Vec<Ticket>, Refusal> {
    list(d, true).await
}

async fn list(d: &Dashboard, open_only: bool) -> Result<Vec<Ticket>, Refusal> {
    let Some(api) = d.tickets.clone() else {
        return Ok(Vec::new());
    };
    blocking(move || api.with_store(|s| s.list(open_only, now_ms())))
        .await?
        .map_err(|e| refuse(503, e))?
        .map_err(|e| {
            tracing::warn!("dashboard: {e}");
            refuse(503, "the ticket store failed; try again")
        })
}

async fn ticket_list(d: &Dashboard, query: Option<String>) -> Resp {
    let open_only = match params(query.as_deref(), &["open"]).and_then(|p| {
        match p.get("open").map(String::as_str) {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(v) => Err(refuse(400, format!("open={v:?}: expected true or false"))),
        }
    }) {
        Ok(o) => o,
        Err(r) => return page_refusal(&r, Nav::Tickets),
    };
    match list(d, open_only).await {
        Ok(t) => html(200, tickets::list_page(&t, open_only)),
        Err(r) => page_refusal(&r, Nav::Tickets),
    }
}

async fn ticket(d: &Dashboard, client: &Client, path: &str, query: Option<String>) -> Resp {
    let id = match params(query.as_deref(), &[])
        .and_then(|_| ticket_id(path.trim_start_matches("/tickets/")))
    {
        Ok(id) => id.to_string(),
        Err(r) => return page_refusal(&r, Nav::Tickets),
    };
    let Some(api) = d.tickets.clone() else {
        return page_refusal(
            &refuse(404, "tickets are off (incidents.enabled)"),
            Nav::Tickets,
        );
    };
    let found = blocking({
        let id = id.clone();
        move || api.with_store(|s| s.get(&id, now_ms()))
    })
    .await;
    let t = match found {
        Ok(Ok(Ok(Some(t)))) => t,
        Ok(Ok(Ok(None))) => {
            return page_refusal(&refuse(404, format!("no ticket {id}")), Nav::Tickets)
        }
        Ok(Ok(Err(e))) => {
            tracing::warn!("dashboard: {e}");
            return page_refusal(&refuse(503, "the ticket store failed"), Nav::Tickets);
        }
        Ok(Err(e)) => return page_refusal(&refuse(503, e), Nav::Tickets),
        Err(r) => return page_refusal(&r, Nav::Tickets),
    };
    let token = d.identity(client).map(|i| d.csrf.token(&i));
    html(200, tickets::ticket_page(&t, token.as_deref()))
}

/// `POST /tickets/ID/ACTION`: check who may act and the CSRF token, apply, and send
/// the browser back to the ticket's page (303, so a reload does not post again).
async fn action(d: &Dashboard, client: &Client, path: &str, req: Request<Incoming>) -> Resp {
    match act(d, client, path, req).await {
        Ok(id) => {
            let mut r = respond(303, "text/plain; charset=utf-8", "done\n");
            if let Ok(v) = HeaderValue::try_from(format!("/tickets/{id}")) {
                r.headers_mut().insert(LOCATION, v);
            }
            r
        }
        Err(r) => page_refusal(&r, Nav::Tickets),
    }
}

async fn act(
    d: &Dashboard,
    client: &Client,
    path: &str,
    req: Request<Incoming>,
) -> Result<String, Refusal> {
    let rest = path.trim_start_matches("/tickets/");
    let (id, name) = rest.split_once('/').unwrap_or((rest, ""));
    let id = ticket_id(id)?.to_string();
    let Some(identity) = d.identity(client) else {
        return Err(refuse(
            403,
            "read-only: actions need basic auth (or http.dashboard_loopback_writes for loopback clients)",
        ));
    };
    let form = read_form(req).await?;
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    if !d.csrf.check(&identity, token) {
        return Err(refuse(
            403,
            "missing or stale form token (CSRF): reload the ticket's page and try again",
        ));
    }
    let action = tickets::Action::parse(name, &form)?;
    let Some(api) = d.tickets.clone() else {
        return Err(refuse(404, "tickets are off (incidents.enabled)"));
    };
    // Recorded as the CLI records `--by`: the user, or where the step came from.
    let by = client.user.clone().unwrap_or_else(|| "dashboard".into());
    let applied = blocking({
        let id = id.clone();
        move || api.with_store(|s| action.apply(s, &id, &by, now_ms()))
    })
    .await?;
    applied.map_err(|e| refuse(503, e))??;
    Ok(id)
}

/// A form body (`application/x-www-form-urlencoded`), at most [`MAX_QUERY`] bytes,
/// arriving within [`BODY_TIMEOUT`].
async fn read_form(req: Request<Incoming>) -> Result<BTreeMap<String, String>, Refusal> {
    let too_large = || refuse(413, format!("form body over {MAX_QUERY} bytes"));
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_QUERY as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), MAX_QUERY);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Err(_) => return Err(refuse(408, "the form body did not arrive in time")),
        Ok(Err(_)) => return Err(too_large()),
        Ok(Ok(b)) => b.to_bytes(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| refuse(400, "form body is not UTF-8"))?;
    params(Some(text), &["csrf", "who", "note"])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids_are_short_plain_names_and_anything_else_is_no_ticket() {
        assert_eq!(ticket_id("INC-42"), Ok("INC-42"));
        for bad in ["", "..", "INC-1/../x", "INC 1", "<b>", &"x".repeat(65)] {
            assert_eq!(ticket_id(bad).unwrap_err().status, 404, "{bad}");
        }
        assert!(handles("/") && handles("/tickets/INC-1/ack") && handles("/assets/dash.js"));
        assert!(!handles("/metrics") && !handles("/api/v1/tickets") && !handles("/report"));
    }
}
