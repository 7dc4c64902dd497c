//! The outbox: a persistent queue of deliveries to external sinks, in the tickets
//! database, and the [`Deliverer`] thread that empties it.
//!
//! Why a queue in the same SQLite file: the ticket store calls [`enqueue`] inside the
//! transaction that changes the ticket, so a crash can neither lose a delivery (the
//! ticket change and its deliveries commit together) nor invent one. The deliverer
//! then works through the rows on its own thread, never on the sampling path:
//!
//! - rows are delivered in order per (sink, ticket); a ticket whose oldest row is
//!   waiting for a retry holds back its later rows (a resolve never overtakes its open);
//! - a failed row is kept with its attempts, last error and next attempt time, retried
//!   with exponential backoff and jitter between the sink's `retry_initial` and
//!   `retry_max`; a sink that is down (refused connection, 5xx, 429) is paused as a
//!   whole rather than hammered row by row;
//! - before a request is sent the row is marked *in doubt* (committed); a 2xx answer
//!   marks it delivered and updates the sink's state in one transaction. If the daemon
//!   dies in between (`kill -9`) or the answer is lost, the next attempt is made in
//!   doubt: the delivery id goes out again as the idempotency key, and sinks that
//!   create tickets look for one carrying that id before creating another;
//! - per (sink, fingerprint) the sink's [`SinkState`] (external ticket, open or
//!   resolved when) decides whether an open reuses the external ticket (reopen window),
//!   and lists the Alertmanager alerts to re-send while firing, across restarts;
//! - delivered rows are pruned after the retention time.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::sinks::{self, Attempt, Sink, SinkConfig, SinkState};
use super::Delivery;
use crate::sample::Sample;
use crate::shutdown::Shutdown;

/// Create the outbox tables (idempotent). Called by the ticket store when it opens
/// the tickets database, inside its schema transaction.
pub fn init_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            sink TEXT NOT NULL,
            id TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ms INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            in_doubt INTEGER NOT NULL DEFAULT 0,
            delivered_ms INTEGER,
            UNIQUE (sink, id)
        );
        CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (sink, seq)
            WHERE delivered_ms IS NULL;
        CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox (delivered_ms)
            WHERE delivered_ms IS NOT NULL;
        CREATE TABLE IF NOT EXISTS sink_state (
            sink TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            external_ref TEXT NOT NULL,
            open INTEGER NOT NULL,
            resolved_ms INTEGER,
            last_sent_ms INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (sink, fingerprint)
        ) WITHOUT ROWID;",
    )
}

/// Queue `d` for `sink`, inside the caller's transaction (the ticket store's, so the
/// ticket change and its deliveries commit or vanish together). An empty `d.id` gets
/// a random one. Enqueueing the same (sink, id) twice keeps the first: a replayed
/// store operation cannot double a delivery.
pub fn enqueue(tx: &Transaction, sink: &str, d: &Delivery) -> rusqlite::Result<()> {
    let mut d = d.clone();
    if d.id.is_empty() {
        let n: u128 = rand::rng().random();
        d.id = format!("{n:032x}");
    }
    let payload = serde_json::to_string(&d)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.execute(
        "INSERT OR IGNORE INTO outbox (sink, id, ticket_id, kind, payload, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![sink, d.id, d.ticket_id, kind_name(&d), payload, d.at_ms],
    )?;
    Ok(())
}

fn kind_name(d: &Delivery) -> &'static str {
    match d.kind {
        super::DeliveryKind::Open => "open",
        super::DeliveryKind::Update => "update",
        super::DeliveryKind::Resolve => "resolve",
    }
}

/// One queued delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub seq: i64,
    pub sink: String,
    pub delivery: Delivery,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub in_doubt: bool,
    pub delivered_ms: Option<i64>,
}

/// Every row of the outbox, oldest first (for `tickets` commands and tests).
pub fn rows(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut st = conn.prepare(
        "SELECT seq, sink, payload, attempts, next_attempt_ms, last_error, in_doubt,
                delivered_ms FROM outbox ORDER BY seq",
    )?;
    let rows = st.query_map([], |r| {
        let payload: String = r.get(2)?;
        let delivery: Delivery = serde_json::from_str(&payload).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?;
        Ok(Row {
            seq: r.get(0)?,
            sink: r.get(1)?,
            delivery,
            attempts: r.get(3)?,
            next_attempt_ms: r.get(4)?,
            last_error: r.get(5)?,
            in_doubt: r.get(6)?,
            delivered_ms: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// The sink's state for `fingerprint`, if it has one.
pub fn sink_state(
    conn: &Connection,
    sink: &str,
    fingerprint: &str,
) -> rusqlite::Result<Option<SinkState>> {
    conn.query_row(
        "SELECT fingerprint, ticket_id, external_ref, open, resolved_ms, last_sent_ms, data
         FROM sink_state WHERE sink = ?1 AND fingerprint = ?2",
        params![sink, fingerprint],
        state_from_row,
    )
    .optional()
}

fn state_from_row(r: &rusqlite::Row) -> rusqlite::Result<SinkState> {
    let data: String = r.get(6)?;
    Ok(SinkState {
        fingerprint: r.get(0)?,
        ticket_id: r.get(1)?,
        external_ref: r.get(2)?,
        open: r.get(3)?,
        resolved_ms: r.get(4)?,
        last_sent_ms: r.get(5)?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
    })
}

fn save_state(tx: &Transaction, sink: &str, s: &SinkState) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO sink_state
           (sink, fingerprint, ticket_id, external_ref, open, resolved_ms, last_sent_ms, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            sink,
            s.fingerprint,
            s.ticket_id,
            s.external_ref,
            s.open,
            s.resolved_ms,
            s.last_sent_ms,
            s.data.to_string()
        ],
    )?;
    Ok(())
}

/// Counters and gauges of the outbox, shared between the deliverer thread and the
/// exporter.
#[derive(Debug, Default)]
pub struct OutboxStats {
    inner: Mutex<StatsInner>,
}

#[derive(Debug, Default, Clone)]
struct StatsInner {
    pending: BTreeMap<String, u64>,
    /// (sink, result) -> count; result is `delivered` or `failed`.
    results: BTreeMap<(String, &'static str), u64>,
}

impl OutboxStats {
    /// Add `anomalyd_outbox_pending{sink}` and
    /// `anomalyd_sink_deliveries_total{sink,result}` to a sample.
    pub fn export(&self, sample: &mut Sample) {
        let s = match self.inner.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for (sink, n) in &s.pending {
            sample.info(
                "outbox_pending",
                "Ticket deliveries waiting in the outbox, per sink.",
                &[("sink", sink)],
                *n as f64,
            );
        }
        for ((sink, result), n) in &s.results {
            sample.counter(
                "sink_deliveries_total",
                "Delivery attempts per sink and result (delivered, failed) since start.",
                &[("sink", sink), ("result", result)],
                *n as f64,
            );
        }
    }

    /// Pending rows of `sink` as last counted.
    pub fn pending(&self, sink: &str) -> u64 {
        self.with(|s| s.pending.get(sink).copied().unwrap_or(0))
    }

    /// Attempts of `sink` with `result` (`delivered` or `failed`).
    pub fn count(&self, sink: &str, result: &str) -> u64 {
        self.with(|s| {
            s.results
                .iter()
                .filter(|((k, r), _)| k == sink && *r == result)
                .map(|(_, n)| *n)
                .sum()
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut StatsInner) -> T) -> T {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn add(&self, sink: &str, result: &'static str) {
        self.with(|s| *s.results.entry((sink.to_string(), result)).or_insert(0) += 1);
    }
}

/// What one [`Deliverer::run_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub delivered: u64,
    pub failed: u64,
    /// Rows still waiting after this run, all sinks.
    pub pending: u64,
    pub resent: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {what}: {source}")]
    Sql {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error("sink {name}: {message}")]
    Sink { name: String, message: String },
}

struct Entry {
    config: SinkConfig,
    sink: Box<dyn Sink>,
    /// The sink as a whole is paused until then (it was down).
    down_until_ms: i64,
    down_failures: u32,
}

/// Delivers the outbox's rows to the configured sinks. Blocking; owns its own
/// connection to the tickets database.
pub struct Deliverer {
    conn: Connection,
    path: PathBuf,
    sinks: Vec<Entry>,
    stats: Arc<OutboxStats>,
    stop: Arc<AtomicBool>,
    retention: Duration,
    last_prune_ms: i64,
}

/// Delivered rows are kept this long (for `tickets` history and debugging).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86400);

impl Deliverer {
    /// Open the tickets database at `db` and build the configured sinks.
    pub fn open(db: &Path, configs: &[SinkConfig]) -> Result<Self, OutboxError> {
        let mut built = Vec::new();
        for c in configs {
            let sink = sinks::build(c).map_err(|message| OutboxError::Sink {
                name: c.name.clone(),
                message,
            })?;
            built.push((c.clone(), sink));
        }
        Self::with_sinks(db, built)
    }

    /// Like [`open`](Self::open) with sinks built by the caller (tests).
    pub fn with_sinks(
        db: &Path,
        sinks: Vec<(SinkConfig, Box<dyn Sink>)>,
    ) -> Result<Self, OutboxError> {
        let err = |what| {
            let path = db.to_path_buf();
            move |source| OutboxError::Sql { path, what, source }
        };
        let pragmas = crate::store::sqlite::Pragmas {
            busy_timeout: Duration::from_secs(5),
            synchronous: "NORMAL",
            auto_vacuum: None,
            journal_size_limit: None,
            cache_kib: Some(crate::store::sqlite::DAEMON_CACHE_KIB),
        };
        let conn = crate::store::sqlite::open(db, &pragmas).map_err(|e| err(e.op)(e.source))?;
        init_schema(&conn).map_err(err("cannot create tables"))?;
        Ok(Deliverer {
            conn,
            path: db.to_path_buf(),
            sinks: sinks
                .into_iter()
                .map(|(config, sink)| Entry {
                    config,
                    sink,
                    down_until_ms: 0,
                    down_failures: 0,
                })
                .collect(),
            stats: Arc::new(OutboxStats::default()),
            stop: Arc::new(AtomicBool::new(false)),
            retention: DEFAULT_RETENTION,
            last_prune_ms: 0,
        })
    }

    /// How long delivered rows are kept.
    pub fn set_retention(&mut self, r: Duration) {
        self.retention = r;
    }

    pub fn stats(&self) -> Arc<OutboxStats> {
        self.stats.clone()
    }

    /// Deliver every due row (and re-send what must be re-sent) once, at `now_ms`.
    /// Errors of the database are logged and retried on the next run.
    pub fn run_once(&mut self, now_ms: i64) -> Report {
        let mut report = Report::default();
        for i in 0..self.sinks.len() {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            if let Err(e) = self.run_sink(i, now_ms, &mut report) {
                tracing::error!(sink = %self.sinks[i].config.name, path = %self.path.display(), "outbox: {e}");
            }
        }
        if now_ms - self.last_prune_ms >= 3_600_000 {
            self.last_prune_ms = now_ms;
            if let Err(e) = self.prune(now_ms) {
                tracing::warn!(path = %self.path.display(), "outbox: cannot prune: {e}");
            }
        }
        match self.count_pending() {
            Ok(p) => {
                report.pending = p.values().sum();
                self.stats.with(|s| s.pending = p);
            }
            Err(e) => tracing::warn!("outbox: cannot count pending rows: {e}"),
        }
        report
    }

    fn count_pending(&self) -> rusqlite::Result<BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, u64> = self
            .sinks
            .iter()
            .map(|e| (e.config.name.clone(), 0))
            .collect();
        let mut st = self.conn.prepare_cached(
            "SELECT sink, COUNT(*) FROM outbox WHERE delivered_ms IS NULL GROUP BY sink",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
        for r in rows {
            let (k, n) = r?;
            out.insert(k, n);
        }
        Ok(out)
    }

    fn prune(&self, now_ms: i64) -> rusqlite::Result<()> {
        let cutoff = now_ms - self.retention.as_millis() as i64;
        self.conn.execute(
            "DELETE FROM outbox WHERE delivered_ms IS NOT NULL AND delivered_ms < ?1",
            [cutoff],
        )?;
        for e in &self.sinks {
            // A resolved problem older than both the reopen window and the retention
            // can no longer be reopened: forget its external ticket.
            let keep = e.config.reopen_window.max(self.retention).as_millis() as i64;
            self.conn.execute(
                "DELETE FROM sink_state WHERE sink = ?1 AND open = 0 AND resolved_ms < ?2",
                params![e.config.name, now_ms - keep],
            )?;
        }
        Ok(())
    }

    fn run_sink(&mut self, i: usize, now_ms: i64, report: &mut Report) -> rusqlite::Result<()> {
        if self.sinks[i].down_until_ms > now_ms {
            return Ok(());
        }
        let name = self.sinks[i].config.name.clone();
        let due: Vec<(i64, String, i64, u32, bool)> = {
            let mut st = self.conn.prepare_cached(
                "SELECT seq, ticket_id, next_attempt_ms, attempts, in_doubt FROM outbox
                 WHERE sink = ?1 AND delivered_ms IS NULL ORDER BY seq LIMIT 5000",
            )?;
            let rows = st.query_map([&name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        // Tickets whose oldest pending row is not delivered yet: later rows wait.
        let mut blocked: HashSet<String> = HashSet::new();
        for (seq, ticket, next_ms, attempts, in_doubt) in due {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if blocked.contains(&ticket) {
                continue;
            }
            if next_ms > now_ms {
                blocked.insert(ticket);
                continue;
            }
            match self.attempt(i, seq, attempts, in_doubt, now_ms)? {
                AttemptResult::Delivered => report.delivered += 1,
                AttemptResult::Failed { sink_down } => {
                    report.failed += 1;
                    blocked.insert(ticket);
                    if sink_down {
                        return Ok(());
                    }
                }
            }
        }
        self.resend(i, now_ms, report)
    }

    fn attempt(
        &mut self,
        i: usize,
        seq: i64,
        attempts: u32,
        was_in_doubt: bool,
        now_ms: i64,
    ) -> rusqlite::Result<AttemptResult> {
        let name = self.sinks[i].config.name.clone();
        let payload: String =
            self.conn
                .query_row("SELECT payload FROM outbox WHERE seq = ?1", [seq], |r| {
                    r.get(0)
                })?;
        let delivery: Delivery = match serde_json::from_str(&payload) {
            Ok(d) => d,
            Err(e) => {
                // Cannot happen for rows we wrote; keep the row, retry slowly, say why.
                self.fail(
                    i,
                    seq,
                    attempts + 1,
                    was_in_doubt,
                    &format!("unreadable row: {e}"),
                    now_ms,
                )?;
                return Ok(AttemptResult::Failed { sink_down: false });
            }
        };
        let previous = sink_state(&self.conn, &name, &delivery.incident.fingerprint)?;
        let window = self.sinks[i].config.reopen_window.as_millis() as i64;
        let reuse = previous.as_ref().is_some_and(|p| {
            !p.external_ref.is_empty()
                && (p.open || p.resolved_ms.is_some_and(|r| delivery.at_ms - r <= window))
        });
        // Committed before the request leaves: if we die while it is in flight, the
        // next attempt knows it may have arrived.
        self.conn.execute(
            "UPDATE outbox SET in_doubt = 1, attempts = attempts + 1 WHERE seq = ?1",
            [seq],
        )?;
        let a = Attempt {
            delivery: &delivery,
            previous: previous.as_ref(),
            reuse,
            in_doubt: was_in_doubt,
            now_ms,
        };
        let result = self.sinks[i].sink.deliver(&a);
        match result {
            Ok(state) => {
                let tx = self
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "UPDATE outbox SET delivered_ms = ?2, in_doubt = 0, last_error = NULL
                     WHERE seq = ?1",
                    params![seq, now_ms],
                )?;
                if let Some(s) = state {
                    save_state(&tx, &name, &s)?;
                }
                tx.commit()?;
                let e = &mut self.sinks[i];
                e.down_failures = 0;
                self.stats.add(&name, "delivered");
                tracing::debug!(sink = %name, id = %delivery.id, ticket = %delivery.ticket_id, "delivered");
                Ok(AttemptResult::Delivered)
            }
            Err(err) => {
                self.stats.add(&name, "failed");
                let in_doubt = was_in_doubt || err.maybe_delivered;
                let next = self.fail(i, seq, attempts + 1, in_doubt, &err.message, now_ms)?;
                if err.sink_down {
                    let e = &mut self.sinks[i];
                    e.down_failures = e.down_failures.saturating_add(1);
                    e.down_until_ms = now_ms + backoff(&e.config, e.down_failures);
                }
                tracing::warn!(sink = %name, ticket = %delivery.ticket_id, attempts = attempts + 1,
                    retry_in_ms = next - now_ms, "delivery failed: {}", err.message);
                Ok(AttemptResult::Failed {
                    sink_down: err.sink_down,
                })
            }
        }
    }

    /// Record a failed attempt; returns the next attempt time.
    fn fail(
        &self,
        i: usize,
        seq: i64,
        attempts: u32,
        in_doubt: bool,
        message: &str,
        now_ms: i64,
    ) -> rusqlite::Result<i64> {
        let next = now_ms + backoff(&self.sinks[i].config, attempts);
        self.conn.execute(
            "UPDATE outbox SET next_attempt_ms = ?2, last_error = ?3, in_doubt = ?4
             WHERE seq = ?1",
            params![seq, next, message, in_doubt],
        )?;
        Ok(next)
    }

    fn resend(&mut self, i: usize, now_ms: i64, report: &mut Report) -> rusqlite::Result<()> {
        let Some(every) = self.sinks[i].sink.resend_interval() else {
            return Ok(());
        };
        let name = self.sinks[i].config.name.clone();
        let cutoff = now_ms - every.as_millis() as i64;
        let due: Vec<SinkState> = {
            let mut st = self.conn.prepare_cached(
                "SELECT fingerprint, ticket_id, external_ref, open, resolved_ms, last_sent_ms, data
                 FROM sink_state WHERE sink = ?1 AND open = 1 AND last_sent_ms <= ?2",
            )?;
            let rows = st.query_map(params![name, cutoff], state_from_row)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if due.is_empty() {
            return Ok(());
        }
        match self.sinks[i].sink.resend(&due, now_ms) {
            Ok(()) => {
                let tx = self
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                for s in &due {
                    tx.execute(
                        "UPDATE sink_state SET last_sent_ms = ?3 WHERE sink = ?1 AND fingerprint = ?2",
                        params![name, s.fingerprint, now_ms],
                    )?;
                }
                tx.commit()?;
                report.resent += due.len() as u64;
            }
            Err(err) => {
                let e = &mut self.sinks[i];
                e.down_failures = e.down_failures.saturating_add(1);
                e.down_until_ms = now_ms + backoff(&e.config, e.down_failures);
                tracing::warn!(sink = %name, "re-send failed: {}", err.message);
            }
        }
        Ok(())
    }

    /// Run on a thread of its own: deliver what is due every `poll`, until stopped.
    pub fn spawn(self, poll: Duration) -> std::io::Result<DelivererHandle> {
        self.spawn_until(poll, Shutdown::never())
    }

    /// [`spawn`](Self::spawn), also ending (before its next round) when `shutdown`
    /// fires; the daemon still stops the handle, to wait for a request in flight.
    pub fn spawn_until(
        self,
        poll: Duration,
        shutdown: Shutdown,
    ) -> std::io::Result<DelivererHandle> {
        let stats = self.stats.clone();
        let stop = self.stop.clone();
        let (wake_tx, wake_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let mut me = self;
        let thread = std::thread::Builder::new()
            .name("outbox".into())
            .spawn(move || {
                while !me.stop.load(Ordering::Relaxed) && !shutdown.is_set() {
                    me.run_once(crate::sample::now_ms());
                    match wake_rx.recv_timeout(poll) {
                        Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                let _ = done_tx.send(());
            })?;
        Ok(DelivererHandle {
            stats,
            stop,
            wake: wake_tx,
            done: done_rx,
            thread: Some(thread),
        })
    }
}

enum AttemptResult {
    Delivered,
    Failed { sink_down: bool },
}

/// Delay before attempt `attempts + 1`: `retry_initial * 2^(attempts-1)`, capped at
/// `retry_max`, then a random point in its upper half (jitter: many hosts whose sink
/// came back must not retry in lockstep).
pub fn backoff(c: &SinkConfig, attempts: u32) -> i64 {
    let first = c.retry_initial.as_millis() as i64;
    let max = c.retry_max.as_millis() as i64;
    let exp = attempts.saturating_sub(1).min(30);
    let base = first.saturating_mul(1_i64 << exp).min(max).max(1);
    let half = base / 2;
    half + rand::rng().random_range(0..=base - half)
}

/// The running deliverer thread.
pub struct DelivererHandle {
    stats: Arc<OutboxStats>,
    stop: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl DelivererHandle {
    pub fn stats(&self) -> Arc<OutboxStats> {
        self.stats.clone()
    }

    /// Look for due rows now rather than at the next poll (after an enqueue).
    pub fn wake(&self) {
        let _ = self.wake.send(());
    }

    /// Stop and wait up to `wait` for a request in flight to finish. A request still
    /// running then is abandoned with the process; its row stays in doubt and is
    /// retried (with a look-up) after the restart.
    pub fn stop(mut self, wait: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.send(());
        if self.done.recv_timeout(wait).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        } else {
            tracing::warn!("outbox: a delivery is still in flight at shutdown; it will be retried after restart");
        }
    }
}

impl Drop for DelivererHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.send(());
    }
}

#[cfg(test)]
mod tests;
