//! The HTTP server: `/metrics`, `/healthz`, `/api/v1/tickets`, and a small landing
//! page.
//!
//! Scrapes are served from the body rendered at the end of the last tick
//! ([`super::metrics::Rendered`]), so a scrape never waits for, or causes, sampling.
//! Bound to loopback unless the operator says otherwise. TLS and basic auth come from
//! the exporter-toolkit style web config ([`super::webconfig`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::metrics::Rendered;
use super::webconfig::WebConfig;
use crate::sample::now_ms;
use crate::shutdown::Shutdown;

/// What `/healthz` reports on: the sampling loop stamps every completed tick.
#[derive(Debug, Default)]
pub struct Health {
    pub last_tick_ms: AtomicI64,
    pub interval_ms: AtomicI64,
}

impl Health {
    pub fn tick(&self, at_ms: i64) {
        self.last_tick_ms.store(at_ms, Ordering::Relaxed);
    }
    /// Healthy while a tick completed within three intervals (and at least 5 s).
    pub fn check(&self, now: i64) -> Result<(), String> {
        let last = self.last_tick_ms.load(Ordering::Relaxed);
        let limit = (3 * self.interval_ms.load(Ordering::Relaxed)).max(5000);
        if last == 0 {
            Err("no sample taken yet".into())
        } else if now - last > limit {
            Err(format!(
                "last sample {} ms ago (limit {limit} ms)",
                now - last
            ))
        } else {
            Ok(())
        }
    }
}

#[derive(Clone)]
pub struct State {
    pub rendered: Rendered,
    pub health: Arc<Health>,
    pub web: WebConfig,
    /// The ticket store behind `/api/v1/tickets` (`None`: 404).
    pub tickets: Option<crate::tickets::api::TicketsApi>,
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const LANDING: &str = "<html><head><title>anomalyd</title></head><body><h1>anomalyd</h1>\
<p><a href=\"/metrics\">Metrics</a> &middot; <a href=\"/healthz\">Health</a> &middot; \
<a href=\"/api/v1/tickets\">Tickets</a></p></body></html>\n";

/// Every request: the API's reads of the ticket store go to the blocking pool (a
/// SQLite read can wait on a lock); everything else is served from memory.
async fn respond(state: &State, req: &Request<Incoming>) -> Resp {
    let path = req.uri().path();
    let api = path == "/api/v1/tickets" || path.starts_with("/api/v1/tickets/");
    if !api || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return route(state, req);
    }
    if let Some(denied) = deny(state, req) {
        return finish(state, denied);
    }
    let Some(tickets) = state.tickets.clone() else {
        return finish(
            state,
            text(
                StatusCode::NOT_FOUND,
                "not found\n",
                "text/plain; charset=utf-8",
            ),
        );
    };
    let path = path.to_string();
    let query = req.uri().query().map(str::to_string);
    let answer =
        tokio::task::spawn_blocking(move || tickets.handle(&path, query.as_deref(), now_ms()))
            .await;
    let resp = match answer {
        Ok((code, body)) => text(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
            "application/json",
        ),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "{\"error\": \"ticket query failed\"}\n",
            "application/json",
        ),
    };
    finish(state, resp)
}

/// Basic auth, when configured: `Some(401)` for a request without valid credentials.
fn deny(state: &State, req: &Request<Incoming>) -> Option<Resp> {
    let auth = state.web.auth.as_ref()?;
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth.check(header) {
        return None;
    }
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "Unauthorized\n",
        "text/plain; charset=utf-8",
    );
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"anomalyd\""),
    );
    Some(r)
}

/// The configured extra headers, on every response.
fn finish(state: &State, mut resp: Resp) -> Resp {
    for (k, v) in &state.web.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

fn route(state: &State, req: &Request<Incoming>) -> Resp {
    if let Some(denied) = deny(state, req) {
        return finish(state, denied);
    }
    let path = req.uri().path();
    let resp = match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/metrics") => text(
            StatusCode::OK,
            state.rendered.get(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (&Method::GET | &Method::HEAD, "/healthz") => match state.health.check(now_ms()) {
            Ok(()) => text(StatusCode::OK, "ok\n", "text/plain; charset=utf-8"),
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unhealthy: {e}\n"),
                "text/plain; charset=utf-8",
            ),
        },
        (&Method::GET, "/") => text(StatusCode::OK, LANDING, "text/html; charset=utf-8"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found\n",
            "text/plain; charset=utf-8",
        ),
    };
    finish(state, resp)
}

/// Bind the listener (done before the first tick so READY=1 means "scrapable").
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve until the shutdown. Open connections are dropped on shutdown: a scrape is
/// cheap to retry and a clean stop must not wait for slow clients.
pub async fn serve(listener: TcpListener, state: State, mut shutdown: Shutdown) {
    let acceptor = state.web.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut conns = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let state = state.clone();
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &req).await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            let result = match acceptor {
                None => builder.serve_connection(TokioIo::new(stream), svc).await,
                Some(acc) => {
                    match tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await {
                        Ok(Ok(tls)) => builder.serve_connection(TokioIo::new(tls), svc).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection error");
            }
        });
    }
    conns.shutdown().await;
}
