//! The embedded ticket store: `<state_dir>/tickets.db` (SQLite).
//!
//! One row per ticket (= incident id), its timeline in `ticket_events`, maintenance
//! silences in `silences`. Every change to a ticket and the deliveries it causes are
//! written in one transaction (the outbox's tables live in the same file), so a crash
//! can neither lose a ticket change nor send one twice. Ticket writes use
//! `synchronous=FULL`: a ticket is rare and precious, unlike a history row, so each
//! commit is fsynced (a few ms, once per incident change, never per tick).
//!
//! Several processes share the file: the daemon, the CLI (`tickets ack`...), the
//! outbox's delivery thread, remediation. WAL lets readers run beside the writer and
//! the busy timeout makes writers queue instead of failing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;

use super::delivery::{Delivery, DeliveryKind};
use super::response::{Clock, Deadline, Stage};
use super::route::Routing;
use super::{report, similar};
use crate::incident::{ticket_seq, Change, Incident, Matchers, Silence};
use crate::store::{sqlite, StateDir};

/// Bumped when the tables change shape (or meaning); an unknown newer version is
/// refused, an older one migrated. 2: `report` holds only the evidence (the body's
/// table of the ticket's fields is rebuilt from the row).
const SCHEMA_VERSION: i64 = 2;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ticket store {path}: {op}: {source}")]
    Sql {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ticket store {path}: schema version {found} is newer than this anomalyd understands ({SCHEMA_VERSION})")]
    Version { path: PathBuf, found: i64 },
    #[error("no ticket {0}")]
    NoTicket(String),
    #[error("no silence {0}")]
    NoSilence(i64),
    #[error("ticket {id} is resolved; {what} needs an open ticket")]
    Resolved { id: String, what: &'static str },
    #[error("ticket {id}: stored incident is unreadable: {source}")]
    Json {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "acknowledged" => Status::Acknowledged,
            "resolved" => Status::Resolved,
            _ => Status::Open,
        }
    }
}

/// One entry of a ticket's progress: opened, updated, action, acknowledged, assigned,
/// resolved, reopened, silenced...
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub at_ms: i64,
    pub kind: String,
    pub summary: String,
    pub detail: serde_json::Value,
}

/// A ticket as the CLI and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ticket {
    pub id: String,
    pub fingerprint: String,
    pub title: String,
    pub class: String,
    pub label: String,
    pub severity: String,
    pub status: Status,
    /// The silence that keeps this ticket from the sinks, while one matches.
    pub muted_by: Option<String>,
    pub assignee: Option<String>,
    pub opened_ms: i64,
    pub updated_ms: i64,
    pub resolved_ms: Option<i64>,
    /// From first opening to resolution (to `now` while open), in seconds.
    pub duration_seconds: f64,
    /// `recovered: ...` when the engine saw the problem end, or the operator's note.
    pub resolution: Option<String>,
    /// The report, Markdown: the ticket's fields, the evidence, what remediation did
    /// (rebuilt on every change, so it agrees with the fields above).
    pub body: String,
    pub incident: Incident,
    /// In time order (oldest first); empty in lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Event>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Names of the configured sinks: each ticket change is queued once per sink (or
    /// per sink of the ticket's route).
    sinks: Vec<String>,
    /// Who a new ticket goes to.
    routing: Routing,
    /// Random id of this database, drawn when it is created: the prefix of delivery
    /// ids, so a wiped state directory (ticket numbers from 1 again) never re-uses an
    /// id a receiver has already seen and would drop as a duplicate.
    instance: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Whether the file itself is unusable (not SQLite, or corrupt), as opposed to the
    /// environment or a newer schema: only then may it be moved aside.
    pub fn is_unusable_file(e: &StoreError) -> bool {
        matches!(e, StoreError::Sql { source, .. } if sqlite::is_unusable(source))
    }

    /// Open the store; if the file is unusable, move it (and its WAL) aside to
    /// `tickets.db.corrupt-<unix seconds>` and start a new one, as the history does.
    /// The second value says what was wrong and where the old file went, for the log.
    pub fn open_or_reset(path: &Path) -> Result<(Store, Option<String>), StoreError> {
        let problem = match Store::open(path) {
            Ok(s) => return Ok((s, None)),
            Err(e) if Store::is_unusable_file(&e) => e,
            Err(e) => return Err(e),
        };
        let aside = sqlite::move_aside(path).map_err(|e| StoreError::Sql {
            path: path.to_path_buf(),
            op: "cannot move the unusable file aside",
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(e.to_string()),
            ),
        })?;
        let store = Store::open(path)?;
        Ok((
            store,
            Some(format!(
                "{problem}; moved it to {} and started a new ticket store",
                aside.display()
            )),
        ))
    }

    /// The store of a state directory.
    pub fn open_in(state: &StateDir) -> Result<Store, StoreError> {
        Store::open(&state.tickets())
    }

    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        let err = |op| {
            let path = path.clone();
            move |source| StoreError::Sql { path, op, source }
        };
        let pragmas = sqlite::Pragmas {
            busy_timeout: BUSY_TIMEOUT,
            synchronous: "FULL",
            auto_vacuum: None,
            journal_size_limit: None,
            cache_kib: Some(sqlite::DAEMON_CACHE_KIB),
        };
        let conn = sqlite::open(&path, &pragmas).map_err(|e| err(e.op)(e.source))?;
        let mut store = Store {
            conn,
            path,
            sinks: Vec::new(),
            routing: Routing::default(),
            instance: String::new(),
        };
        store.instance = store.init_schema()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sinks that get a delivery for every ticket change (`tickets.sinks` names).
    pub fn with_sinks(mut self, names: Vec<String>) -> Store {
        self.sinks = names;
        self
    }

    /// Change the sinks on reload; changes from now on are queued for these.
    pub fn set_sinks(&mut self, names: Vec<String>) {
        self.sinks = names;
    }

    /// The routes new tickets take (set again on reload).
    pub fn set_routing(&mut self, routing: Routing) {
        self.routing = routing;
    }

    fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.path.clone(),
            op,
            source,
        }
    }

    /// A write transaction. IMMEDIATE takes the write lock at BEGIN, where the busy
    /// timeout applies: a deferred one that reads first and then writes gets
    /// SQLITE_BUSY at once when the outbox thread holds the lock (seen in CI).
    fn begin(&self) -> Result<Transaction<'_>, StoreError> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(self.err("cannot begin"))
    }

    /// The stored row of ticket `id`, which must exist.
    fn ticket_row(&self, conn: &Connection, id: &str) -> Result<Row, StoreError> {
        load_row(conn, id)
            .map_err(self.err("cannot read ticket"))?
            .ok_or_else(|| StoreError::NoTicket(id.to_string()))
    }

    /// Create what is missing; returns the database's instance id.
    fn init_schema(&self) -> Result<String, StoreError> {
        let tx = self.begin()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS tickets (
                 id TEXT PRIMARY KEY,
                 seq INTEGER NOT NULL UNIQUE,
                 fingerprint TEXT NOT NULL,
                 title TEXT NOT NULL,
                 class TEXT NOT NULL,
                 label TEXT NOT NULL,
                 severity TEXT NOT NULL,
                 status TEXT NOT NULL,
                 muted_by TEXT,
                 assignee TEXT,
                 opened_ms INTEGER NOT NULL,
                 updated_ms INTEGER NOT NULL,
                 resolved_ms INTEGER,
                 resolution TEXT,
                 report TEXT NOT NULL,
                 body TEXT NOT NULL,
                 incident TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS tickets_status ON tickets(status);
             CREATE INDEX IF NOT EXISTS tickets_fingerprint ON tickets(fingerprint, resolved_ms);
             CREATE TABLE IF NOT EXISTS ticket_events (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 ticket_id TEXT NOT NULL,
                 at_ms INTEGER NOT NULL,
                 kind TEXT NOT NULL,
                 summary TEXT NOT NULL,
                 detail TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS ticket_events_ticket ON ticket_events(ticket_id, id);
             CREATE TABLE IF NOT EXISTS silences (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 matchers TEXT NOT NULL,
                 starts_ms INTEGER NOT NULL,
                 ends_ms INTEGER NOT NULL,
                 comment TEXT NOT NULL,
                 created_ms INTEGER NOT NULL
             );",
        )
        .map_err(self.err("cannot create tables"))?;
        let found: Option<i64> = tx
            .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err("cannot read schema version"))?;
        match found {
            None => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('version', ?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(self.err("cannot write schema version"))?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Version {
                    path: self.path.clone(),
                    found: v,
                })
            }
            Some(1) => {
                evidence_only(&tx).map_err(self.err("cannot migrate reports"))?;
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'version'",
                    [SCHEMA_VERSION],
                )
                .map_err(self.err("cannot write schema version"))?;
            }
            Some(_) => {}
        }
        // 48 random bits (an INTEGER column; older databases get one on first open).
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?1)",
            [rand::random::<u64>() as i64 & 0xffff_ffff_ffff],
        )
        .map_err(self.err("cannot write instance id"))?;
        let instance: i64 = tx
            .query_row("SELECT value FROM meta WHERE key = 'instance'", [], |r| {
                r.get(0)
            })
            .map_err(self.err("cannot read instance id"))?;
        super::outbox::init_schema(&tx).map_err(self.err("cannot create outbox tables"))?;
        tx.commit().map_err(self.err("cannot commit schema"))?;
        Ok(format!("{instance:012x}"))
    }

    /// The sequence number the next new ticket gets.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let max: Option<i64> = self
            .conn
            .query_row("SELECT max(seq) FROM tickets", [], |r| r.get(0))
            .map_err(self.err("cannot read ticket sequence"))?;
        Ok(max.unwrap_or(0).max(0) as u64 + 1)
    }

    /// Changes made by other connections since the last call show up as a new value
    /// (SQLite's `data_version`): a cheap "should I re-read?" test.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(self.err("cannot read data_version"))
    }

    /// Record one engine change: open (or reopen), update or resolve the ticket, append
    /// to its timeline and, unless the ticket is muted, enqueue the delivery for the
    /// sinks -- all in one transaction. `evidence` is the freshly rendered evidence
    /// ([`report::render`]); the body is rebuilt around it from the row.
    pub fn apply(
        &self,
        change: &Change,
        evidence: &str,
        muted_by: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let inc = change.incident();
        let tx = self.begin()?;
        let existing = load_row(&tx, &inc.id).map_err(self.err("cannot read ticket"))?;
        let json = serde_json::to_string(inc).map_err(|source| StoreError::Json {
            id: inc.id.clone(),
            source,
        })?;
        let mut found_similar = None;
        let mut routed = None;
        let (kind, delivery_kind, summary) = match (change, &existing) {
            (Change::Opened(_), None) => {
                let seq = ticket_seq(&inc.id).unwrap_or_else(|| next_seq_tx(&tx).unwrap_or(1));
                tx.execute(
                    "INSERT INTO tickets (id, seq, fingerprint, title, class, label, severity,
                         status, muted_by, opened_ms, updated_ms, report, body, incident)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open', ?8, ?9, ?9, ?10, ?10, ?11)",
                    params![
                        inc.id,
                        seq,
                        inc.fingerprint,
                        inc.title,
                        inc.class.as_str(),
                        inc.label.as_str(),
                        inc.severity.as_str(),
                        muted_by,
                        inc.opened_ms,
                        evidence,
                        json
                    ],
                )
                .map_err(self.err("cannot insert ticket"))?;
                found_similar = find_similar(&tx, inc).map_err(self.err("cannot read tickets"))?;
                routed = self.route(&tx, inc, at_ms)?;
                (
                    "opened",
                    DeliveryKind::Open,
                    format!("opened: {}", inc.title),
                )
            }
            (Change::Opened(_), Some(_)) => {
                tx.execute(
                    "UPDATE tickets SET status = 'open', resolved_ms = NULL, resolution = NULL
                     WHERE id = ?1",
                    [&inc.id],
                )
                .and_then(|_| update_row(&tx, inc, &json, evidence, muted_by, at_ms))
                .map_err(self.err("cannot reopen ticket"))?;
                (
                    "reopened",
                    DeliveryKind::Open,
                    format!("reopened: {}", inc.title),
                )
            }
            (Change::Updated { what, .. }, _) => {
                update_row(&tx, inc, &json, evidence, muted_by, at_ms)
                    .map_err(self.err("cannot update ticket"))?;
                ("updated", DeliveryKind::Update, what.clone())
            }
            (Change::Resolved(_) | Change::Superseded { .. }, prev) => {
                let opened = prev.as_ref().map_or(inc.opened_ms, |p| p.opened_ms);
                let resolution = match change {
                    Change::Superseded { by, .. } => format!("superseded by {by}"),
                    _ => format!(
                        "recovered: back to normal after {}",
                        crate::text::fmt_duration_ms(at_ms - opened)
                    ),
                };
                let n = tx
                    .execute(
                        "UPDATE tickets SET status = 'resolved', updated_ms = ?2, resolved_ms = ?2,
                             resolution = ?3, report = ?4, incident = ?5
                         WHERE id = ?1 AND status != 'resolved'",
                        params![inc.id, at_ms, resolution, evidence, json],
                    )
                    .map_err(self.err("cannot resolve ticket"))?;
                if n == 0 {
                    // Already resolved (by an operator): nothing more to say.
                    return tx.commit().map_err(self.err("cannot commit"));
                }
                ("resolved", DeliveryKind::Resolve, resolution)
            }
        };
        let detail = serde_json::json!({
            "severity": inc.severity.as_str(),
            "label": inc.label.as_str(),
            "causes": inc.causes.iter().take(5).map(|c| &c.feature).collect::<Vec<_>>(),
            "muted_by": muted_by,
        });
        let event_id = insert_event(&tx, &inc.id, at_ms, kind, &summary, &detail)
            .map_err(self.err("cannot add event"))?;
        if let Some((summary, detail)) = routed {
            insert_event(&tx, &inc.id, at_ms, "routed", &summary, &detail)
                .map_err(self.err("cannot add event"))?;
        }
        if let Some((summary, detail)) = found_similar {
            insert_event(&tx, &inc.id, at_ms, "similar", &summary, &detail)
                .map_err(self.err("cannot add event"))?;
        }
        refresh_body(&tx, &inc.id).map_err(self.err("cannot write body"))?;
        // An update of a ticket an operator resolved meanwhile (the engine has not
        // noticed yet) is recorded, not sent: the sinks had the resolution.
        let resolved_before = matches!(change, Change::Updated { .. })
            && existing
                .as_ref()
                .is_some_and(|r| r.status == Status::Resolved);
        if muted_by.is_none() && !resolved_before {
            self.deliver(&tx, &inc.id, event_id, delivery_kind, &summary, at_ms)?;
        }
        tx.commit().map_err(self.err("cannot commit ticket change"))
    }

    /// Append an event to a ticket's timeline, e.g. a remediation action's result.
    /// Events of kind `action` (the report's "Remediation" section), `diagnose` (its
    /// "Diagnosis") and `deadline` (a response deadline near or passed) also go to the
    /// sinks as an update, unless the ticket is muted or resolved (the sinks' last word on a resolved ticket is its resolution; the
    /// body still has it).
    pub fn add_event(
        &self,
        ticket_id: &str,
        at_ms: i64,
        kind: &str,
        summary: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let tx = self.begin()?;
        let row = self.ticket_row(&tx, ticket_id)?;
        let event_id = insert_event(&tx, ticket_id, at_ms, kind, summary, detail)
            .map_err(self.err("cannot add event"))?;
        if kind == "action" || kind == "diagnose" || kind == "deadline" {
            refresh_body(&tx, ticket_id).map_err(self.err("cannot write body"))?;
            if row.muted_by.is_none() && row.status != Status::Resolved {
                self.deliver(
                    &tx,
                    ticket_id,
                    event_id,
                    DeliveryKind::Update,
                    summary,
                    at_ms,
                )?;
            }
        }
        tx.commit().map_err(self.err("cannot commit event"))
    }

    /// Operator: "I am on it". `who` is recorded (and becomes the assignee if none).
    /// Returns false, and records nothing, when the ticket is acknowledged already.
    pub fn ack(&self, id: &str, who: Option<&str>, at_ms: i64) -> Result<bool, StoreError> {
        let summary = match who {
            Some(w) => format!("acknowledged by {w}"),
            None => "acknowledged".to_string(),
        };
        let step = Step {
            kind: "acknowledged",
            summary: &summary,
            what: "acknowledge",
            on_resolved: false,
        };
        self.operator(
            id,
            at_ms,
            step,
            |row| row.status == Status::Acknowledged,
            |tx| {
                tx.execute(
                    "UPDATE tickets SET status = 'acknowledged', updated_ms = ?2,
                         assignee = coalesce(assignee, ?3)
                     WHERE id = ?1",
                    params![id, at_ms, who],
                )
            },
        )
    }

    /// Give the ticket an owner; resolved tickets too (a post-mortem has one). `by`,
    /// who did it, is recorded. Returns false, and records nothing, when `who` is the
    /// assignee already.
    pub fn assign(
        &self,
        id: &str,
        who: &str,
        by: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let summary = match by {
            Some(b) => format!("assigned to {who} by {b}"),
            None => format!("assigned to {who}"),
        };
        let step = Step {
            kind: "assigned",
            summary: &summary,
            what: "assign",
            on_resolved: true,
        };
        self.operator(
            id,
            at_ms,
            step,
            |row| row.assignee.as_deref() == Some(who),
            |tx| {
                tx.execute(
                    "UPDATE tickets SET assignee = ?3, updated_ms = ?2 WHERE id = ?1",
                    params![id, at_ms, who],
                )
            },
        )
    }

    /// Operator resolution with a note; `by`, who resolved it, is recorded. The engine
    /// notices and forgets the incident; if the problem goes on, it opens (or, within
    /// the reopen window, reopens) again.
    pub fn resolve(
        &self,
        id: &str,
        note: &str,
        by: Option<&str>,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let summary = format!("resolved by {}: {note}", by.unwrap_or("operator"));
        let step = Step {
            kind: "resolved",
            summary: &summary,
            what: "resolve",
            on_resolved: false,
        };
        self.operator(
            id,
            at_ms,
            step,
            |_| false,
            |tx| {
                tx.execute(
                    "UPDATE tickets SET status = 'resolved', updated_ms = ?2, resolved_ms = ?2,
                         resolution = ?3
                     WHERE id = ?1",
                    params![id, at_ms, note],
                )
            },
        )
        .map(|_| ())
    }

    /// One operator step in one transaction: the row, its timeline, its body and the
    /// sinks' delivery. Nothing happens when `done` says the ticket is that way
    /// already (false is returned).
    fn operator(
        &self,
        id: &str,
        at_ms: i64,
        step: Step,
        done: impl FnOnce(&Row) -> bool,
        update: impl FnOnce(&Transaction) -> rusqlite::Result<usize>,
    ) -> Result<bool, StoreError> {
        let tx = self.begin()?;
        let row = self.ticket_row(&tx, id)?;
        if row.status == Status::Resolved && !step.on_resolved {
            return Err(StoreError::Resolved {
                id: id.to_string(),
                what: step.what,
            });
        }
        if done(&row) {
            return Ok(false);
        }
        update(&tx).map_err(self.err("cannot update ticket"))?;
        let event_id = insert_event(
            &tx,
            id,
            at_ms,
            step.kind,
            step.summary,
            &serde_json::Value::Null,
        )
        .map_err(self.err("cannot add event"))?;
        refresh_body(&tx, id).map_err(self.err("cannot write body"))?;
        // A resolved ticket's last word to the sinks was its resolution: an update
        // now would make some of them (Alertmanager) fire again.
        if row.muted_by.is_none() && row.status != Status::Resolved {
            let kind = if step.kind == "resolved" {
                DeliveryKind::Resolve
            } else {
                DeliveryKind::Update
            };
            self.deliver(&tx, id, event_id, kind, step.summary, at_ms)?;
        }
        tx.commit().map_err(self.err("cannot commit"))?;
        Ok(true)
    }

    /// Enqueue one delivery for the sinks inside `tx`. The id is the database's
    /// instance id and the timeline event's, so it is unique (across wiped state
    /// directories too) and the same on every read.
    fn deliver(
        &self,
        tx: &Transaction,
        ticket_id: &str,
        event_id: i64,
        kind: DeliveryKind,
        summary: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let row = self.ticket_row(tx, ticket_id)?;
        let incident = row.incident()?;
        let delivery = Delivery {
            id: format!("{}-{ticket_id}-{event_id}", self.instance),
            ticket_id: ticket_id.to_string(),
            kind,
            incident,
            summary: summary.to_string(),
            body: row.body,
            at_ms,
        };
        let only = route_sinks(tx, ticket_id).map_err(self.err("cannot read route"))?;
        for sink in &self.sinks {
            if only.as_ref().is_some_and(|o| !o.contains(sink)) {
                continue;
            }
            super::outbox::enqueue(tx, sink, &delivery)
                .map_err(self.err("cannot enqueue delivery"))?;
        }
        Ok(())
    }

    /// Route the new ticket `inc` (inside `tx`, before its first delivery): set its
    /// assignee; the `routed` event to record, if a route matched.
    fn route(
        &self,
        tx: &Transaction,
        inc: &Incident,
        at_ms: i64,
    ) -> Result<Option<(String, serde_json::Value)>, StoreError> {
        if self.routing.routes.is_empty() {
            return Ok(None);
        }
        let mut failed = None;
        let routed = self.routing.route(inc, at_ms, |team| {
            tx.query_row(
                "SELECT count(*) FROM ticket_events
                 WHERE kind = 'routed' AND json_extract(detail, '$.team') = ?1",
                [team],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| failed = Some(e))
            .unwrap_or(0) as usize
        });
        if let Some(e) = failed {
            return Err(self.err("cannot count routed tickets")(e));
        }
        let Some(routed) = routed else {
            return Ok(None);
        };
        if let Some(a) = &routed.assignee {
            tx.execute(
                "UPDATE tickets SET assignee = ?2 WHERE id = ?1",
                params![inc.id, a],
            )
            .map_err(self.err("cannot route ticket"))?;
        }
        let mut parts = Vec::new();
        if let Some(a) = &routed.assignee {
            parts.push(format!("to {a}"));
        }
        if let Some(t) = &routed.team {
            parts.push(format!("team {t}"));
        }
        if let Some(s) = &routed.sinks {
            parts.push(format!("sinks {}", s.join(", ")));
        }
        let summary = format!("routed {} (route {})", parts.join(", "), routed.rule + 1);
        let detail = serde_json::json!({
            "route": routed.rule,
            "assignee": routed.assignee,
            "team": routed.team,
            "sinks": routed.sinks,
        });
        Ok(Some((summary, detail)))
    }

    /// What the response clocks of ticket `id` need from the store: its first
    /// opening, its first acknowledgement, the deadline events already said, its
    /// status and severity; `None` if there is no such ticket.
    pub fn clock(&self, id: &str) -> Result<Option<(Clock, Status, String)>, StoreError> {
        let Some(row) = load_row(&self.conn, id).map_err(self.err("cannot read ticket"))? else {
            return Ok(None);
        };
        let mut clock = Clock {
            opened_ms: row.opened_ms,
            ..Default::default()
        };
        for e in self.timeline(id)? {
            match e.kind.as_str() {
                "acknowledged" if clock.acked_ms.is_none() => clock.acked_ms = Some(e.at_ms),
                "deadline" => {
                    let d = e.detail["deadline"].as_str().and_then(Deadline::parse);
                    let s = e.detail["stage"].as_str().and_then(Stage::parse);
                    if let (Some(d), Some(s)) = (d, s) {
                        clock.said.push((d, s));
                    }
                }
                _ => {}
            }
        }
        Ok(Some((clock, row.status, row.severity)))
    }

    /// The muted ticket `id` is no longer silenced: unmute it and tell the sinks now.
    pub fn unmute(&self, id: &str, at_ms: i64) -> Result<(), StoreError> {
        let tx = self.begin()?;
        let row = self.ticket_row(&tx, id)?;
        let Some(silence) = row.muted_by else {
            return Ok(());
        };
        tx.execute("UPDATE tickets SET muted_by = NULL WHERE id = ?1", [id])
            .map_err(self.err("cannot unmute"))?;
        refresh_body(&tx, id).map_err(self.err("cannot write body"))?;
        let summary = format!("silence {silence} ended; the problem goes on");
        let event_id = insert_event(
            &tx,
            id,
            at_ms,
            "unmuted",
            &summary,
            &serde_json::Value::Null,
        )
        .map_err(self.err("cannot add event"))?;
        if row.status != Status::Resolved {
            self.deliver(&tx, id, event_id, DeliveryKind::Open, &summary, at_ms)?;
        }
        tx.commit().map_err(self.err("cannot commit"))
    }

    /// Tickets, newest first; `open_only` leaves resolved ones out. No timelines.
    pub fn list(&self, open_only: bool, now_ms: i64) -> Result<Vec<Ticket>, StoreError> {
        let sql = if open_only {
            "SELECT * FROM tickets WHERE status != 'resolved' ORDER BY seq DESC"
        } else {
            "SELECT * FROM tickets ORDER BY seq DESC"
        };
        let mut stmt = self
            .conn
            .prepare(sql)
            .map_err(self.err("cannot list tickets"))?;
        let rows = stmt
            .query_map([], Row::from_sql)
            .map_err(self.err("cannot list tickets"))?
            .collect::<rusqlite::Result<Vec<Row>>>()
            .map_err(self.err("cannot list tickets"))?;
        rows.into_iter().map(|r| r.ticket(now_ms)).collect()
    }

    /// One ticket with its timeline.
    pub fn get(&self, id: &str, now_ms: i64) -> Result<Option<Ticket>, StoreError> {
        let Some(row) = load_row(&self.conn, id).map_err(self.err("cannot read ticket"))? else {
            return Ok(None);
        };
        let mut t = row.ticket(now_ms)?;
        t.timeline = self.timeline(id)?;
        Ok(Some(t))
    }

    pub fn timeline(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        timeline(&self.conn, id).map_err(self.err("cannot read timeline"))
    }

    /// Incidents whose tickets are not resolved, with the silence muting each: what
    /// the engine picks up after a restart.
    pub fn open_incidents(&self) -> Result<Vec<(Incident, Option<String>)>, StoreError> {
        Ok(self
            .list(true, 0)?
            .into_iter()
            .map(|t| (t.incident, t.muted_by))
            .collect())
    }

    /// Status of the tickets `ids` (missing ones left out).
    pub fn statuses(&self, ids: &[&str]) -> Result<Vec<(String, Status)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT status FROM tickets WHERE id = ?1")
            .map_err(self.err("cannot read status"))?;
        let mut out = Vec::new();
        for id in ids {
            let s: Option<String> = stmt
                .query_row([id], |r| r.get(0))
                .optional()
                .map_err(self.err("cannot read status"))?;
            if let Some(s) = s {
                out.push((id.to_string(), Status::parse(&s)));
            }
        }
        Ok(out)
    }

    /// The most recently resolved ticket of `fingerprint`: (id, resolved_ms).
    pub fn last_resolved(&self, fingerprint: &str) -> Result<Option<(String, i64)>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, resolved_ms FROM tickets WHERE fingerprint = ?1 AND status = 'resolved'
                 ORDER BY resolved_ms DESC LIMIT 1",
                [fingerprint],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("cannot read tickets"))
    }

    /// The `limit` most recently resolved tickets: (fingerprint, id, opened, resolved),
    /// for the engine's reopen window and flap detection after a restart.
    pub fn recent_resolved(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT fingerprint, id, opened_ms, resolved_ms FROM tickets
                 WHERE status = 'resolved' AND resolved_ms IS NOT NULL
                 ORDER BY resolved_ms DESC LIMIT ?1",
            )
            .map_err(self.err("cannot read tickets"))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(self.err("cannot read tickets"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err("cannot read tickets"))
    }

    pub fn add_silence(
        &self,
        matchers: &Matchers,
        starts_ms: i64,
        ends_ms: i64,
        comment: &str,
        now_ms: i64,
    ) -> Result<String, StoreError> {
        let m = serde_json::to_string(matchers).map_err(|source| StoreError::Json {
            id: "silence".into(),
            source,
        })?;
        self.conn
            .execute(
                "INSERT INTO silences (matchers, starts_ms, ends_ms, comment, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m, starts_ms, ends_ms, comment, now_ms],
            )
            .map_err(self.err("cannot add silence"))?;
        Ok(format!("S-{}", self.conn.last_insert_rowid()))
    }

    /// Silences that have not ended by `now_ms` (all of them with `include_expired`).
    pub fn silences(&self, now_ms: i64, include_expired: bool) -> Result<Vec<Silence>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, matchers, starts_ms, ends_ms, comment FROM silences
                 WHERE ?1 OR ends_ms > ?2 ORDER BY id",
            )
            .map_err(self.err("cannot read silences"))?;
        let rows = stmt
            .query_map(params![include_expired, now_ms], |r| {
                let m: String = r.get(1)?;
                Ok(Silence {
                    id: format!("S-{}", r.get::<_, i64>(0)?),
                    // Written by add_silence; an unreadable one matches nothing.
                    matchers: serde_json::from_str(&m).unwrap_or(Matchers {
                        fingerprint: Some("(unreadable)".into()),
                        ..Default::default()
                    }),
                    starts_ms: r.get(2)?,
                    ends_ms: r.get(3)?,
                    comment: r.get(4)?,
                })
            })
            .map_err(self.err("cannot read silences"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err("cannot read silences"))
    }

    /// `id` is `S-<n>` or `<n>`.
    pub fn remove_silence(&self, id: &str) -> Result<(), StoreError> {
        let n: i64 = id
            .strip_prefix("S-")
            .unwrap_or(id)
            .parse()
            .map_err(|_| StoreError::NoSilence(-1))?;
        let removed = self
            .conn
            .execute("DELETE FROM silences WHERE id = ?1", [n])
            .map_err(self.err("cannot remove silence"))?;
        if removed == 0 {
            return Err(StoreError::NoSilence(n));
        }
        Ok(())
    }
}

/// The incident's latest state (`json`), evidence and mute into its ticket's row.
fn update_row(
    conn: &Connection,
    inc: &Incident,
    json: &str,
    evidence: &str,
    muted_by: Option<&str>,
    at_ms: i64,
) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE tickets SET title = ?2, label = ?3, severity = ?4, updated_ms = ?5,
             report = ?6, incident = ?7, muted_by = ?8
         WHERE id = ?1",
        params![
            inc.id,
            inc.title,
            inc.label.as_str(),
            inc.severity.as_str(),
            at_ms,
            evidence,
            json,
            muted_by
        ],
    )
}

/// Version 1 to 2: a stored report began with its own copy of the ticket's fields,
/// which went stale on operator changes, and said "Now: score ..." for good; keep the
/// evidence after them, and rebuild every body.
fn evidence_only(tx: &Transaction) -> rusqlite::Result<()> {
    let reports: Vec<(String, String)> = tx
        .prepare("SELECT id, report FROM tickets")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, old) in reports {
        let evidence = match old.find("\n## ") {
            Some(i) => &old[i..],
            None => old.as_str(),
        };
        let evidence: Vec<&str> = evidence
            .split("\n\n")
            .filter(|p| !p.starts_with("Now: score "))
            .collect();
        tx.execute(
            "UPDATE tickets SET report = ?2 WHERE id = ?1",
            params![id, evidence.join("\n\n")],
        )?;
        refresh_body(tx, &id)?;
    }
    Ok(())
}

fn next_seq_tx(tx: &Transaction) -> rusqlite::Result<i64> {
    let max: Option<i64> = tx.query_row("SELECT max(seq) FROM tickets", [], |r| r.get(0))?;
    Ok(max.unwrap_or(0) + 1)
}

fn insert_event(
    conn: &Connection,
    ticket_id: &str,
    at_ms: i64,
    kind: &str,
    summary: &str,
    detail: &serde_json::Value,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO ticket_events (ticket_id, at_ms, kind, summary, detail)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![ticket_id, at_ms, kind, summary, detail.to_string()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The sinks the ticket's route names (`None`: every sink).
fn route_sinks(conn: &Connection, id: &str) -> rusqlite::Result<Option<Vec<String>>> {
    let detail: Option<String> = conn
        .query_row(
            "SELECT detail FROM ticket_events WHERE ticket_id = ?1 AND kind = 'routed'
             ORDER BY id DESC LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(d) = detail.and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok()) else {
        return Ok(None);
    };
    Ok(d["sinks"].as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    }))
}

fn timeline(conn: &Connection, id: &str) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        // In time order: an event can be recorded after a later one (a run's result
        // comes in after the ticket resolved, a verification is dated at the
        // resolution); ties keep the order they were recorded in.
        "SELECT at_ms, kind, summary, detail FROM ticket_events WHERE ticket_id = ?1
         ORDER BY at_ms, id",
    )?;
    let rows = stmt.query_map([id], |r| {
        let d: String = r.get(3)?;
        Ok(Event {
            at_ms: r.get(0)?,
            kind: r.get(1)?,
            summary: r.get(2)?,
            detail: serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d)),
        })
    })?;
    rows.collect()
}

/// body = the ticket's fields as they are now + the stored evidence (`report`) + what
/// remediation did (timeline events of kind `action`): rebuilt on every change, so it
/// always says what the ticket's fields say.
fn refresh_body(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    let Some(row) = load_row(conn, id)? else {
        return Ok(());
    };
    let evidence: String =
        conn.query_row("SELECT report FROM tickets WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
    let incident: Incident = serde_json::from_str(&row.incident).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let events = timeline(conn, id)?;
    let (similar, earlier) = similar_now(conn, &events)?;
    let fields = report::Fields {
        id: &row.id,
        title: &row.title,
        severity: &row.severity,
        label: &row.label,
        class: &row.class,
        fingerprint: &row.fingerprint,
        status: row.status.as_str(),
        assignee: row.assignee.as_deref(),
        muted_by: row.muted_by.as_deref(),
        opened_ms: row.opened_ms,
        resolved_ms: row.resolved_ms,
        resolution: row.resolution.as_deref(),
        incident: &incident,
    };
    let body = report::body(
        &fields,
        &evidence,
        report::Extras {
            events: &events,
            similar: &similar,
            earlier,
        },
    );
    conn.execute(
        "UPDATE tickets SET body = ?2 WHERE id = ?1",
        params![id, body],
    )?;
    Ok(())
}

/// The earlier tickets most like the new ticket `inc` (see `similar`), as the
/// timeline event that keeps them: (summary, detail).
/// `None` when there is none: nothing is recorded.
fn find_similar(
    conn: &Connection,
    inc: &Incident,
) -> rusqlite::Result<Option<(String, serde_json::Value)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, fingerprint, opened_ms, incident FROM tickets WHERE id != ?1
         ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows: Vec<(String, String, i64, String)> = stmt
        .query_map(params![inc.id, similar::SEARCHED as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // A row whose incident cannot be read is no candidate (it is reported where it
    // is read for itself).
    let parsed: Vec<(&str, &str, i64, Incident)> = rows
        .iter()
        .filter_map(|(id, fp, at, json)| {
            serde_json::from_str(json)
                .ok()
                .map(|i| (id.as_str(), fp.as_str(), *at, i))
        })
        .collect();
    let earlier = parsed
        .iter()
        .filter(|(_, fp, at, i)| {
            *fp == inc.fingerprint
                && i.host == inc.host
                && *at <= inc.opened_ms
                && inc.opened_ms - *at <= similar::RECURRENCE_MS
        })
        .count();
    let candidates: Vec<similar::Candidate> = parsed
        .iter()
        .map(|(id, fp, _, i)| similar::Candidate {
            id,
            fingerprint: fp,
            incident: i,
        })
        .collect();
    let found = similar::find(inc, &candidates);
    let ids: Vec<&str> = found.iter().map(|(id, _)| *id).collect();
    if ids.is_empty() && earlier == 0 {
        return Ok(None);
    }
    let summary = format!(
        "similar past incidents: {}",
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    );
    let list: Vec<serde_json::Value> = found
        .iter()
        .map(|(id, m)| match m {
            similar::Match::Fingerprint => serde_json::json!({"id": id, "match": "fingerprint"}),
            similar::Match::Causes(c) => {
                serde_json::json!({"id": id, "match": "causes", "cosine": c})
            }
        })
        .collect();
    Ok(Some((
        summary,
        serde_json::json!({"similar": list, "earlier": earlier}),
    )))
}

/// The similar past incidents recorded on a ticket's timeline, with what the store
/// knows about them now (resolution note, verified fixes), and how often the
/// problem opened before.
fn similar_now(
    conn: &Connection,
    events: &[Event],
) -> rusqlite::Result<(Vec<similar::Similar>, usize)> {
    let Some(e) = events.iter().rev().find(|e| e.kind == "similar") else {
        return Ok((Vec::new(), 0));
    };
    let earlier = e.detail["earlier"].as_u64().unwrap_or(0) as usize;
    let mut out = Vec::new();
    for s in e.detail["similar"].as_array().into_iter().flatten() {
        let Some(id) = s["id"].as_str() else { continue };
        let Some(row) = load_row(conn, id)? else {
            continue;
        };
        let how = match s["cosine"].as_f64() {
            Some(c) => similar::Match::Causes(c),
            None => similar::Match::Fingerprint,
        };
        let mut fixes: Vec<String> = Vec::new();
        for v in timeline(conn, id)? {
            if v.kind == "action" && v.detail["verify"] == "resolved" {
                if let Some(rule) = v.detail["rule"].as_str() {
                    if !fixes.iter().any(|f| f == rule) {
                        fixes.push(rule.to_string());
                    }
                }
            }
        }
        out.push(similar::Similar {
            id: row.id,
            title: row.title,
            how,
            opened_ms: row.opened_ms,
            resolved_ms: row.resolved_ms,
            resolution: row.resolution,
            verified_fixes: fixes,
        });
    }
    Ok((out, earlier))
}

/// An operator step: its timeline kind and line, the verb for errors, and whether a
/// resolved ticket takes it.
struct Step<'a> {
    kind: &'static str,
    summary: &'a str,
    what: &'static str,
    on_resolved: bool,
}

/// A `tickets` row as stored.
struct Row {
    id: String,
    fingerprint: String,
    title: String,
    class: String,
    label: String,
    severity: String,
    status: Status,
    muted_by: Option<String>,
    assignee: Option<String>,
    opened_ms: i64,
    updated_ms: i64,
    resolved_ms: Option<i64>,
    resolution: Option<String>,
    body: String,
    incident: String,
}

impl Row {
    fn from_sql(r: &rusqlite::Row) -> rusqlite::Result<Row> {
        Ok(Row {
            id: r.get("id")?,
            fingerprint: r.get("fingerprint")?,
            title: r.get("title")?,
            class: r.get("class")?,
            label: r.get("label")?,
            severity: r.get("severity")?,
            status: Status::parse(&r.get::<_, String>("status")?),
            muted_by: r.get("muted_by")?,
            assignee: r.get("assignee")?,
            opened_ms: r.get("opened_ms")?,
            updated_ms: r.get("updated_ms")?,
            resolved_ms: r.get("resolved_ms")?,
            resolution: r.get("resolution")?,
            body: r.get("body")?,
            incident: r.get("incident")?,
        })
    }

    fn incident(&self) -> Result<Incident, StoreError> {
        serde_json::from_str(&self.incident).map_err(|source| StoreError::Json {
            id: self.id.clone(),
            source,
        })
    }

    fn ticket(self, now_ms: i64) -> Result<Ticket, StoreError> {
        let incident = self.incident()?;
        let end = self.resolved_ms.unwrap_or(now_ms.max(self.opened_ms));
        Ok(Ticket {
            duration_seconds: (end - self.opened_ms) as f64 / 1000.0,
            id: self.id,
            fingerprint: self.fingerprint,
            title: self.title,
            class: self.class,
            label: self.label,
            severity: self.severity,
            status: self.status,
            muted_by: self.muted_by,
            assignee: self.assignee,
            opened_ms: self.opened_ms,
            updated_ms: self.updated_ms,
            resolved_ms: self.resolved_ms,
            resolution: self.resolution,
            body: self.body,
            incident,
            timeline: Vec::new(),
        })
    }
}

fn load_row(conn: &Connection, id: &str) -> rusqlite::Result<Option<Row>> {
    conn.query_row("SELECT * FROM tickets WHERE id = ?1", [id], Row::from_sql)
        .optional()
}

#[cfg(test)]
mod tests;
