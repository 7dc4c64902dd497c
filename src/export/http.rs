//! The HTTP server: `/metrics`, `/healthz`, `/api/v1/tickets`, and a small landing
//! page.
//!
//! Scrapes are served from the body rendered at the end of the last tick
//! ([`super::metrics::Rendered`]), so a scrape never waits for, or causes, sampling.
//! Bound to loopback unless the operator says otherwise. TLS and basic auth come from
//! the exporter-toolkit style web config ([`super::webconfig`]), checked by
//! [`super::gate`].
//!
//! Nothing a client does may delay a tick, so the server runs on a thread and tokio
//! runtime of its own ([`spawn`]), with its own blocking pool for bcrypt and ticket
//! queries. What a client can hold is bounded ([`super::config::HttpConfig`]): at most
//! `max_connections` connections (the rest wait in the kernel's backlog), a header
//! must arrive within `header_timeout`, an idle keep-alive connection is closed after
//! `idle_timeout`. Failing accepts (out of descriptors) are logged once per episode
//! and retried with a growing back-off.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::config::HttpConfig;
use super::gate::{Decision, Gate};
use super::metrics::Rendered;
use super::webconfig::WebConfig;
use crate::sample::now_ms;
use crate::shutdown::Shutdown;

/// What `/healthz` reports on: the sampling loop stamps every completed tick.
/// Components that are off (ticket store unusable, ...) make it degraded.
#[derive(Debug, Default)]
pub struct Health {
    pub last_tick_ms: AtomicI64,
    pub interval_ms: AtomicI64,
    off: Mutex<Vec<String>>,
}

impl Health {
    pub fn tick(&self, at_ms: i64) {
        self.last_tick_ms.store(at_ms, Ordering::Relaxed);
    }
    /// The enabled components that are off, each with why (empty: all running).
    pub fn set_off(&self, off: Vec<String>) {
        if let Ok(mut o) = self.off.lock() {
            *o = off;
        }
    }
    /// Healthy while a tick completed within three intervals (and at least 5 s) and
    /// every enabled component runs.
    pub fn check(&self, now: i64) -> Result<(), String> {
        let last = self.last_tick_ms.load(Ordering::Relaxed);
        let limit = (3 * self.interval_ms.load(Ordering::Relaxed)).max(5000);
        let off = self.off.lock().map(|o| o.join("; ")).unwrap_or_default();
        if !off.is_empty() {
            Err(format!("degraded: {off}"))
        } else if last == 0 {
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
    /// What `/report` reads (`None`: 404); see `report.rs`.
    pub report: Option<super::report::ReportRoute>,
}

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn plain(status: StatusCode, body: &'static str) -> Resp {
    text(status, body, "text/plain; charset=utf-8")
}

const LANDING: &str = "<html><head><title>anomalyd</title></head><body><h1>anomalyd</h1>\
<p><a href=\"/metrics\">Metrics</a> &middot; <a href=\"/healthz\">Health</a> &middot; \
<a href=\"/api/v1/tickets\">Tickets</a> &middot; <a href=\"/report\">Report</a></p></body></html>\n";

/// Every request: auth first (the gate's bcrypt runs off this thread), then the
/// route. The API's reads of the ticket store go to the blocking pool (a SQLite read
/// can wait on a lock); everything else is served from memory.
async fn respond(state: &State, gate: &Gate, peer: IpAddr, req: &Request<Incoming>) -> Resp {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let resp = match gate.admit(peer, header).await {
        Decision::Allow => route(state, req).await,
        Decision::Deny => {
            let mut r = plain(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"anomalyd\""),
            );
            r
        }
        Decision::TooMany => {
            let mut r = plain(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins; try again later\n",
            );
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("10"));
            r
        }
        Decision::Busy => {
            let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "busy; try again\n");
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    };
    finish(state, resp)
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

async fn route(state: &State, req: &Request<Incoming>) -> Resp {
    let path = req.uri().path();
    let api = path == "/api/v1/tickets" || path.starts_with("/api/v1/tickets/");
    let known = api || matches!(path, "/metrics" | "/healthz" | "/" | "/report");
    let readable = matches!(*req.method(), Method::GET | Method::HEAD);
    if known && !readable {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        _ if api => tickets(state, req).await,
        "/metrics" => text(
            StatusCode::OK,
            state.rendered.get(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/healthz" => match state.health.check(now_ms()) {
            Ok(()) => plain(StatusCode::OK, "ok\n"),
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unhealthy: {e}\n"),
                "text/plain; charset=utf-8",
            ),
        },
        "/" => text(StatusCode::OK, LANDING, "text/html; charset=utf-8"),
        "/report" => {
            let (code, content_type, body) =
                super::report::serve(state.report.clone(), req.uri().query()).await;
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = text(code, body, content_type);
            if code == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            r
        }
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn tickets(state: &State, req: &Request<Incoming>) -> Resp {
    let Some(tickets) = state.tickets.clone() else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let answer =
        tokio::task::spawn_blocking(move || tickets.handle(&path, query.as_deref(), now_ms()))
            .await;
    match answer {
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
    }
}

/// Bind the listener (done before the first tick so READY=1 means "scrapable").
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The server's thread, for [`Server::join`].
pub struct Server {
    thread: std::thread::JoinHandle<()>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Server {
    /// Wait up to `timeout` for the server to end (it ends when the shutdown token
    /// fires); past that its thread is left to the process exit.
    pub fn join(self, timeout: Duration) {
        if self.done.recv_timeout(timeout).is_ok() {
            let _ = self.thread.join();
        }
    }
}

/// File descriptors this process may open, after raising the soft limit to the hard
/// one (as Go does at start): the connection cap is checked against it.
pub fn fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Serve on a thread and runtime of their own until the shutdown token fires.
pub fn spawn(
    listener: std::net::TcpListener,
    state: State,
    config: HttpConfig,
    shutdown: Shutdown,
) -> std::io::Result<Server> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // bcrypt (at most [`super::gate::BCRYPT_SLOTS`]) and ticket queries.
        .max_blocking_threads(4)
        // Those threads run below everything else: on a busy host a burst of
        // bcrypt must lose the CPU to the tick and to answering requests.
        .on_thread_start(|| {
            // SAFETY: setpriority on this thread's own id (Linux: per thread).
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 10);
            }
        })
        .thread_name("anomalyd-http")
        .build()?;
    let (tx, done) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("anomalyd-http".into())
        .spawn(move || {
            let _context = rt.enter();
            match TcpListener::from_std(listener) {
                Ok(l) => rt.block_on(serve(l, state, config, shutdown)),
                Err(e) => tracing::error!("HTTP server cannot start: {e}"),
            }
            // A bcrypt or ticket query still running must not hold the shutdown.
            rt.shutdown_timeout(Duration::from_millis(200));
            let _ = tx.send(());
        })?;
    Ok(Server { thread, done })
}

/// Accept-error bookkeeping: one log line when accepting starts failing (typically
/// EMFILE), one when it works again, a doubling pause between tries meanwhile.
#[derive(Default)]
struct AcceptErrors {
    failed: u64,
    pause: Duration,
}

impl AcceptErrors {
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        if self.failed == 0 {
            tracing::warn!(error = %e, "accept failed; retrying with back-off (logged again when it recovers)");
            self.pause = Duration::from_millis(10);
        } else {
            self.pause = (self.pause * 2).min(Duration::from_secs(1));
        }
        self.failed += 1;
        self.pause
    }

    fn succeeded(&mut self) {
        if self.failed > 0 {
            tracing::info!(failed = self.failed, "accepting connections again");
            self.failed = 0;
        }
    }
}

/// Serve until the shutdown. Open connections are dropped on shutdown: a scrape is
/// cheap to retry and a clean stop must not wait for slow clients.
pub async fn serve(
    listener: TcpListener,
    state: State,
    config: HttpConfig,
    mut shutdown: Shutdown,
) {
    let acceptor = state.web.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let gate = Gate::new(state.web.auth.clone());
    let slots = Arc::new(Semaphore::new(config.max_connections as usize));
    let trim = Arc::new(Trim::default());
    let trimmer = tokio::spawn({
        let trim = trim.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                trim.maybe();
            }
        }
    });
    let mut errors = AcceptErrors::default();
    loop {
        // Wait for a free slot before accepting, so a full server leaves new
        // connections in the backlog instead of spending descriptors on them.
        let permit = tokio::select! {
            _ = shutdown.wait() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    errors.succeeded();
                    a
                }
                Err(e) => {
                    let pause = errors.failed(&e);
                    drop(permit);
                    tokio::select! {
                        _ = shutdown.wait() => break,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        trim.opened();
        let (state, gate, acceptor, trim) =
            (state.clone(), gate.clone(), acceptor.clone(), trim.clone());
        let (config, mut shutdown) = (config.clone(), shutdown.clone());
        // Detached: a finished connection's task is freed at once (a JoinSet keeps
        // every finished task until it is joined). The shutdown ends each one.
        tokio::spawn(async move {
            tokio::select! {
                _ = connection(stream, peer, state, gate, acceptor, &config) => {}
                _ = shutdown.wait() => {}
            }
            drop(permit);
            trim.closed();
        });
    }
    trimmer.abort();
}

/// Serve one connection over any byte stream, as [`serve`] does a TCP connection (no
/// TLS): for the fuzz targets (`fuzz/`), which feed requests through memory.
#[doc(hidden)]
pub async fn serve_stream<S>(stream: S, peer: SocketAddr, state: State, config: &HttpConfig)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let gate = Gate::new(state.web.auth.clone());
    connection(stream, peer, state, gate, None, config).await;
}

/// One connection, TLS or not, until the client closes it or breaks a time limit.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    state: State,
    gate: Gate,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    config: &HttpConfig,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let stream = Tracked {
        inner: stream,
        activity: activity.clone(),
    };
    let svc = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            let (state, gate, activity) = (state.clone(), gate.clone(), activity.clone());
            async move {
                activity.request_started();
                let resp = respond(&state, &gate, peer.ip(), &req).await;
                activity.request_done();
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let builder = hyper::server::conn::http1::Builder::new();
    let served = async {
        let result = match acceptor {
            None => builder.serve_connection(TokioIo::new(stream), svc).await,
            Some(acc) => match acc.accept(stream).await {
                Ok(tls) => builder.serve_connection(TokioIo::new(tls), svc).await,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            },
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection error");
        }
    };
    tokio::select! {
        _ = served => {}
        why = activity.expired(config.header_timeout, config.idle_timeout) => {
            tracing::debug!(%peer, why, "connection closed");
        }
    }
}

/// When a connection last did anything, for its time limits. Times are milliseconds
/// since the connection opened; `pending` is when the bytes of a header not yet
/// complete started to arrive (+1; 0: none), and starts at the open, so a client that
/// sends nothing is held no longer than one that sends a header slowly.
struct Activity {
    opened: Instant,
    last_io: AtomicU64,
    pending: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_io: AtomicU64::new(0),
            pending: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn read(&self) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self
                .pending
                .compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.pending.store(0, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn request_done(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.wrote();
    }

    /// Resolves when a limit is broken, with which one.
    async fn expired(&self, header: Duration, idle: Duration) -> &'static str {
        let (header, idle) = (header.as_millis() as u64, idle.as_millis() as u64);
        loop {
            let now = self.now();
            let pending = self.pending.load(Ordering::Relaxed);
            let busy = self.in_flight.load(Ordering::Relaxed) > 0;
            let header_due = (pending > 0).then(|| pending - 1 + header);
            let idle_due = (!busy).then(|| self.last_io.load(Ordering::Relaxed) + idle);
            if header_due.is_some_and(|d| now >= d) {
                return "header timeout";
            }
            if idle_due.is_some_and(|d| now >= d) {
                return "idle timeout";
            }
            let next = [header_due, idle_due]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + header.min(idle));
            // Re-checked at the deadline: activity may have moved it.
            tokio::time::sleep(Duration::from_millis(next.saturating_sub(now).max(10))).await;
        }
    }
}

/// The socket, noting every read and write in its [`Activity`].
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Gives the memory of a burst of connections back to the system once it is over:
/// glibc keeps freed heap in its arenas, so 1,500 slowloris connections would leave
/// RSS up by their buffers for good.
#[derive(Default)]
struct Trim {
    open: AtomicUsize,
    peak: Mutex<usize>,
}

impl Trim {
    fn opened(&self) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut p) = self.peak.lock() {
            *p = (*p).max(open);
        }
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Called every few seconds: once a burst has drained, trim.
    fn maybe(&self) {
        let open = self.open.load(Ordering::Relaxed);
        let Ok(mut peak) = self.peak.lock() else {
            return;
        };
        if *peak >= 64 && open <= *peak / 16 {
            *peak = open;
            #[cfg(target_env = "gnu")]
            // SAFETY: malloc_trim only returns free memory to the system.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #18: "accept failed" was logged 582 times a minute with a fixed 100 ms
    /// pause. Now: a doubling pause up to 1 s, and the episode counted for one line
    /// when it starts and one when it ends.
    #[test]
    fn accept_errors_back_off_and_count_one_episode() {
        let mut errors = AcceptErrors::default();
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<u128> = (0..10).map(|_| errors.failed(&e).as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(errors.failed, 10);
        errors.succeeded();
        assert_eq!(errors.failed, 0);
        assert_eq!(
            errors.failed(&e).as_millis(),
            10,
            "a new episode starts over"
        );
    }
}
