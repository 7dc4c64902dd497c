//! Incident changes in, ticket timeline events out.
//!
//! The engine decides *which* rules an incident triggers (each rule at most once per
//! incident: on open, or on the update that first makes it match; a reopened incident
//! is the same incident, so what ran before it resolved does not run again), hands
//! the runs to an executor, and watches each incident after a successful run:
//! resolved within the rule's verify window means the action is verified; still open
//! means it did not help and the ticket's severity should go up one step. A run that
//! failed is never verified, and a resolution is only credited to a run that started
//! before it. It also asks for a diagnosis of every new incident.
//!
//! What ran on an incident before this engine saw it (before a restart, or before it
//! resolved and reopened) is on its ticket's timeline: the remediate stage hands it
//! over with [`Engine::recall`] the first time the incident comes by.
//!
//! Live, runs and diagnoses happen on worker threads (a hung script never delays a
//! tick) or in the privileged runner unit through the spool directory; in replay
//! they run inline so results are deterministic. Either way the results come back
//! through [`Engine::poll`] as [`Event`]s for the ticket store. With a spool the
//! diagnosis, too, is the runner's: the hardened daemon cannot see other users'
//! processes. The engine never waits for the runner: a diagnosis that has not come
//! back after [`DIAGNOSE_WAIT_MS`] is withdrawn with a warning, and the ticket goes
//! without one; a fix the runner has not taken after [`RUN_WAIT_MS`] is withdrawn
//! too and recorded on the ticket as skipped, with the reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc;

use crate::incident::{Change, Incident, Label};
use crate::mode::Mode;
use crate::sample::Sample;
use crate::store::StateDir;

use super::diagnose::{self, Diagnosis};
use super::executor::{Executor, Request, RunRecord, RunResult};
use super::runner::Runner;
use super::spool::{DiagnoseRequest, Finished, Spool};
use super::{Match, RemediationConfig};

/// One entry for a ticket's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ticket_id: String,
    pub at_ms: i64,
    /// `action` (runs and their verification; the store shows these in the report
    /// and sends them to the sinks) or `diagnose` (evidence, timeline only).
    pub kind: &'static str,
    pub summary: String,
    pub detail: serde_json::Value,
    /// Set when the ticket's severity should go up one step, with the reason.
    pub escalate: Option<String>,
}

enum Backend {
    Inline(Box<Executor>),
    Worker {
        tx: mpsc::SyncSender<Request>,
        rx: mpsc::Receiver<RunRecord>,
        /// Workers of earlier configurations, still finishing their queues.
        retired: Vec<mpsc::Receiver<RunRecord>>,
    },
    Spool {
        spool: Spool,
        /// Queued run requests the runner has not answered yet.
        waiting: Waiting<Request>,
    },
}

enum Diagnoser {
    Off,
    Worker {
        tx: mpsc::SyncSender<(String, Incident)>,
        rx: mpsc::Receiver<(String, Diagnosis)>,
    },
    /// The root runner diagnoses; answers come back with the run records.
    Spool {
        spool: Spool,
        /// Ticket ids of the diagnoses the runner has not answered yet.
        waiting: Waiting<String>,
    },
}

struct Verify {
    ticket_id: String,
    rule: String,
    run_id: String,
    ran_ms: i64,
    deadline_ms: i64,
}

pub struct Engine {
    config: RemediationConfig,
    backend: Backend,
    diagnoser: Diagnoser,
    /// (incident id, rule) pairs already handed to the executor (or recalled from the
    /// ticket's timeline), for the open incidents.
    triggered: HashSet<(String, String)>,
    /// Open incidents whose earlier runs have been recalled.
    recalled: HashSet<String>,
    /// Requests handed to the executor so far (each comes back as one record).
    requested: u64,
    verifying: Vec<Verify>,
    /// Incidents resolved recently, for runs whose result arrives after the fact.
    resolved: HashMap<String, i64>,
    runs: BTreeMap<(String, RunResult), u64>,
    tripped: BTreeMap<String, bool>,
    out: Vec<Event>,
    seq: u64,
}

/// Queue length between the engine and a worker; beyond it requests are dropped
/// (and recorded as skipped), never blocking a tick.
const QUEUE: usize = 64;

/// How long a diagnosis request may wait for the runner before it is withdrawn
/// (evidence taken much later than the incident opened would mislead).
pub const DIAGNOSE_WAIT_MS: i64 = 10 * 60 * 1000;

/// How long a run request may wait for the runner to *take* it. A fix run long
/// after its incident opened acts on a situation nobody checked it against, so it
/// is withdrawn and recorded as skipped; a run the runner has already started is
/// left to finish, and its late result is still recorded.
pub const RUN_WAIT_MS: i64 = 10 * 60 * 1000;

/// Spool requests the runner has not answered yet, by request id, with what the
/// engine needs when one is overdue and when it was queued.
struct Waiting<T> {
    items: HashMap<String, (T, i64)>,
}

impl<T> Waiting<T> {
    fn new() -> Self {
        Waiting {
            items: HashMap::new(),
        }
    }

    fn queued(&mut self, id: String, item: T, now_ms: i64) {
        self.items.insert(id, (item, now_ms));
    }

    fn answered(&mut self, id: &str) {
        self.items.remove(id);
    }

    /// Requests queued more than `wait_ms` ago, forgotten here, each with how long it
    /// waited and whether it was taken back from the spool (false: the runner had
    /// already taken it, and a late answer is still handled).
    fn overdue(&mut self, spool: &Spool, wait_ms: i64, now_ms: i64) -> Vec<(T, String, bool)> {
        let late: Vec<String> = self
            .items
            .iter()
            .filter(|(_, (_, at))| now_ms - *at > wait_ms)
            .map(|(id, _)| id.clone())
            .collect();
        late.into_iter()
            .filter_map(|id| {
                let (item, at) = self.items.remove(&id)?;
                let after = crate::text::fmt_duration_ms(now_ms - at);
                Some((item, after, spool.withdraw(&id)))
            })
            .collect()
    }
}

/// Run requests still unanswered after [`RUN_WAIT_MS`]: withdrawn ones come back as
/// skipped records (so the ticket says why nothing ran); ones the runner took are
/// only warned about.
fn unanswered_runs(spool: &Spool, waiting: &mut Waiting<Request>, now_ms: i64) -> Vec<RunRecord> {
    let mut out = Vec::new();
    for (req, after, withdrawn) in waiting.overdue(spool, RUN_WAIT_MS, now_ms) {
        if !withdrawn {
            tracing::warn!(
                ticket = %req.ticket_id, rule = %req.rule,
                "no result from the remediation runner after {after}; a late one is still recorded"
            );
            continue;
        }
        tracing::warn!(
            ticket = %req.ticket_id, rule = %req.rule,
            "the remediation runner did not take the run request in {after}; withdrawn \
             (is anomalyd-remediate.path enabled?)"
        );
        out.push(RunRecord {
            id: req.id,
            rule: req.rule,
            ticket_id: req.ticket_id,
            resource: req.resource,
            command: Vec::new(),
            result: RunResult::Skipped,
            reason: Some(format!(
                "the remediation runner did not take the request in {after}; withdrawn"
            )),
            outcome: None,
            started_ms: now_ms,
            tripped: false,
        });
    }
    out
}

impl Engine {
    /// `None` when remediation is disabled.
    pub fn open(
        config: &RemediationConfig,
        state: &StateDir,
        mode: Mode,
    ) -> anyhow::Result<Option<Engine>> {
        if !config.enabled {
            return Ok(None);
        }
        let backend = match (&config.spool_dir, mode) {
            (Some(dir), Mode::Live) => Backend::Spool {
                spool: Spool::open(dir)?,
                waiting: Waiting::new(),
            },
            _ => {
                let exec = Executor::new(config.clone(), Runner::current()?, state);
                match mode {
                    Mode::Replay => Backend::Inline(Box::new(exec)),
                    Mode::Live => spawn_executor(exec)?,
                }
            }
        };
        // Replay reads a recorded series: this host's processes are not evidence.
        let diagnoser = match (config.diagnose.enabled, mode, &config.spool_dir) {
            (false, _, _) | (_, Mode::Replay, _) => Diagnoser::Off,
            (true, Mode::Live, Some(dir)) => Diagnoser::Spool {
                spool: Spool::at(dir),
                waiting: Waiting::new(),
            },
            (true, Mode::Live, None) => spawn_diagnoser(config.diagnose.top)?,
        };
        let tripped = config
            .rules
            .iter()
            .map(|r| (r.name.clone(), false))
            .collect();
        Ok(Some(Engine {
            config: config.clone(),
            backend,
            diagnoser,
            triggered: HashSet::new(),
            recalled: HashSet::new(),
            requested: 0,
            verifying: Vec::new(),
            resolved: HashMap::new(),
            runs: BTreeMap::new(),
            tripped,
            out: Vec::new(),
            seq: 0,
        }))
    }

    /// Use another executor (tests: the supervisor binary is not the test binary).
    pub fn with_runner(mut self, runner: Runner, state: &StateDir) -> Engine {
        let exec = Executor::new(self.config.clone(), runner, state);
        self.backend = match self.backend {
            Backend::Inline(_) => Backend::Inline(Box::new(exec)),
            Backend::Worker { .. } => match spawn_executor(exec) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("remediation worker: {e}");
                    return self;
                }
            },
            b @ Backend::Spool { .. } => b,
        };
        self
    }

    /// A reloaded configuration: new rules and guards from now on. Runs already
    /// queued finish under the old configuration; verifications carry on.
    pub fn reconfigure(&mut self, config: &RemediationConfig, state: &StateDir) {
        if *config == self.config {
            return;
        }
        self.config = config.clone();
        for r in &config.rules {
            self.tripped.entry(r.name.clone()).or_insert(false);
        }
        if let Backend::Worker { rx, retired, .. } = &mut self.backend {
            let runner = match Runner::current() {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("remediation: keeping the old rules: {e}");
                    return;
                }
            };
            let exec = Executor::new(config.clone(), runner, state);
            match spawn_executor(exec) {
                Ok(Backend::Worker {
                    tx: ntx, rx: nrx, ..
                }) => {
                    let old = std::mem::replace(rx, nrx);
                    retired.push(old);
                    if let Backend::Worker { tx, .. } = &mut self.backend {
                        *tx = ntx;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("remediation: keeping the old rules: {e}"),
            }
        }
    }

    /// Whether the runs recorded on `incident_id`'s ticket have been handed over with
    /// [`recall`](Self::recall) since it (re)opened.
    pub fn recalled(&self, incident_id: &str) -> bool {
        self.recalled.contains(incident_id)
    }

    /// The rules already requested for `incident_id` (from its ticket's timeline, see
    /// [`rules_on_timeline`]): they do not run on it again.
    pub fn recall(&mut self, incident_id: &str, rules: impl IntoIterator<Item = String>) {
        self.recalled.insert(incident_id.to_string());
        for rule in rules {
            self.triggered.insert((incident_id.to_string(), rule));
        }
    }

    /// React to one incident change at `now_ms`.
    pub fn on_change(&mut self, change: &Change, now_ms: i64) {
        let i = change.incident();
        match change {
            Change::Opened(_) => {
                // A reopened incident: its earlier resolution is not this run's.
                self.resolved.remove(&i.id);
                self.diagnose(i, now_ms);
                self.trigger(i, now_ms);
            }
            Change::Updated { .. } => self.trigger(i, now_ms),
            Change::Superseded { by, .. } => {
                // Not a resolution: the problem moved to another incident. A run on
                // this one gets no credit for it.
                self.triggered.retain(|(id, _)| id != &i.id);
                self.recalled.remove(&i.id);
                let (gone, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.verifying)
                    .into_iter()
                    .partition(|v| v.ticket_id == i.id);
                self.verifying = rest;
                for v in gone {
                    self.out.push(Event {
                        ticket_id: v.ticket_id.clone(),
                        at_ms: now_ms,
                        kind: "action",
                        summary: format!(
                            "remediation {:?} not verified: the incident was superseded by {by}",
                            v.rule
                        ),
                        detail: serde_json::json!({
                            "verify": "superseded", "rule": v.rule, "run": v.run_id,
                            "ran_ms": v.ran_ms,
                        }),
                        escalate: None,
                    });
                }
            }
            Change::Resolved(_) => {
                self.resolved.insert(i.id.clone(), now_ms);
                // Forgotten while it is resolved (memory stays bounded); a reopen
                // recalls its runs from the ticket.
                self.triggered.retain(|(id, _)| id != &i.id);
                self.recalled.remove(&i.id);
                let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.verifying)
                    .into_iter()
                    .partition(|v| v.ticket_id == i.id);
                self.verifying = rest;
                for v in done {
                    self.verified(v, now_ms);
                }
            }
        }
    }

    /// Finished runs and diagnoses, and verify windows that ran out, as events.
    pub fn poll(&mut self, now_ms: i64) -> Vec<Event> {
        let mut records = Vec::new();
        let mut diagnoses = Vec::new();
        match &mut self.backend {
            Backend::Inline(_) => {}
            Backend::Worker { rx, retired, .. } => {
                records.extend(rx.try_iter());
                retired.retain(|r| loop {
                    match r.try_recv() {
                        Ok(rec) => records.push(rec),
                        Err(mpsc::TryRecvError::Empty) => break true,
                        Err(mpsc::TryRecvError::Disconnected) => break false,
                    }
                });
            }
            Backend::Spool { spool, waiting } => {
                for f in spool.results() {
                    match f {
                        Finished::Run(r) => {
                            waiting.answered(&r.id);
                            records.push(r);
                        }
                        Finished::Diagnosis(d) => diagnoses.push(d),
                    }
                }
                records.extend(unanswered_runs(spool, waiting, now_ms));
            }
        }
        for r in records {
            self.record(r, now_ms);
        }
        match &mut self.diagnoser {
            Diagnoser::Off => {}
            Diagnoser::Worker { rx, .. } => {
                let done: Vec<_> = rx.try_iter().collect();
                for (ticket, d) in done {
                    self.out.push(diagnosis_event(&ticket, d));
                }
            }
            Diagnoser::Spool { spool, waiting } => {
                for d in &diagnoses {
                    waiting.answered(&d.id);
                }
                for (ticket, after, withdrawn) in waiting.overdue(spool, DIAGNOSE_WAIT_MS, now_ms) {
                    if withdrawn {
                        tracing::warn!(
                            ticket = %ticket,
                            "no diagnosis: the remediation runner did not take the request \
                             in {after}; withdrawn (is anomalyd-remediate.path enabled?)"
                        );
                    } else {
                        tracing::warn!(
                            ticket = %ticket,
                            "no diagnosis from the remediation runner after {after}; \
                             a late one is still attached"
                        );
                    }
                }
            }
        }
        // Also answers to requests a previous daemon queued.
        for d in diagnoses {
            self.out.push(diagnosis_event(&d.ticket_id, d.diagnosis));
        }
        let (expired, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.verifying)
            .into_iter()
            .partition(|v| now_ms > v.deadline_ms);
        self.verifying = rest;
        for v in expired {
            let window = crate::text::fmt_duration_ms(v.deadline_ms - v.ran_ms);
            let summary = format!(
                "remediation {:?} not verified: the incident is still open {window} after the run",
                v.rule
            );
            self.out.push(Event {
                ticket_id: v.ticket_id.clone(),
                at_ms: now_ms,
                kind: "action",
                detail: serde_json::json!({
                    "verify": "not_verified", "rule": v.rule, "run": v.run_id,
                    "ran_ms": v.ran_ms, "window_ms": v.deadline_ms - v.ran_ms,
                }),
                escalate: Some(format!("remediation {:?} did not clear it", v.rule)),
                summary,
            });
        }
        // Forget resolutions no run can still be waiting for.
        let horizon = self
            .config
            .rules
            .iter()
            .map(|r| (r.guards.timeout + r.guards.verify_window).as_millis() as i64)
            .max()
            .unwrap_or(0);
        self.resolved.retain(|_, t| now_ms - *t <= horizon);
        std::mem::take(&mut self.out)
    }

    fn diagnose(&mut self, i: &Incident, now_ms: i64) {
        match &mut self.diagnoser {
            Diagnoser::Off => {}
            Diagnoser::Worker { tx, .. } => {
                if tx.try_send((i.id.clone(), i.clone())).is_err() {
                    tracing::warn!(incident = %i.id, "diagnosis queue full; skipped");
                }
            }
            Diagnoser::Spool { spool, waiting } => {
                self.seq += 1;
                let mut req = DiagnoseRequest {
                    id: format!("{}-diagnosis-{now_ms}-{}", i.id, self.seq),
                    ticket_id: i.id.clone(),
                    label: i.label,
                    // The runner takes a resource only as a storage incident's mount point.
                    resource: i
                        .resource
                        .clone()
                        .filter(|r| i.label == Label::Storage && r.starts_with('/')),
                    requested_ms: now_ms,
                };
                // A mount point the runner would refuse (odd spelling, control
                // characters): still diagnose the processes.
                if req.validate().is_err() {
                    req.resource = None;
                }
                if let Err(why) = req.validate() {
                    tracing::warn!(incident = %i.id, "cannot ask for a diagnosis: {why}");
                    return;
                }
                match spool.submit_diagnose(&req) {
                    Ok(()) => {
                        waiting.queued(req.id, i.id.clone(), now_ms);
                    }
                    Err(e) => tracing::warn!(incident = %i.id, "cannot queue a diagnosis: {e}"),
                }
            }
        }
    }

    fn trigger(&mut self, i: &Incident, now_ms: i64) {
        let dry_run = self.config.dry_run;
        let matching: Vec<String> = self
            .config
            .rules
            .iter()
            .filter(|r| r.matcher.matches(i))
            .map(|r| r.name.clone())
            .filter(|name| !self.triggered.contains(&(i.id.clone(), name.clone())))
            .collect();
        for rule in matching {
            self.triggered.insert((i.id.clone(), rule.clone()));
            self.requested += 1;
            self.seq += 1;
            let req = Request {
                id: format!("{}-{}-{}-{}", i.id, rule, now_ms, self.seq),
                rule: rule.clone(),
                ticket_id: i.id.clone(),
                resource: i.resource.clone().unwrap_or_default(),
                env: incident_env(i, dry_run),
                requested_ms: now_ms,
            };
            let refused = match &mut self.backend {
                Backend::Inline(exec) => {
                    let rec = exec.execute(&req, now_ms);
                    self.record(rec, now_ms);
                    None
                }
                Backend::Worker { tx, .. } => tx
                    .try_send(req.clone())
                    .err()
                    .map(|_| "the remediation queue is full".to_string()),
                Backend::Spool { spool, waiting } => match spool.submit(&req) {
                    Ok(()) => {
                        waiting.queued(req.id.clone(), req.clone(), now_ms);
                        None
                    }
                    Err(e) => Some(e.to_string()),
                },
            };
            if let Some(why) = refused {
                let rec = RunRecord {
                    id: req.id,
                    rule,
                    ticket_id: i.id.clone(),
                    resource: req.resource,
                    command: Vec::new(),
                    result: RunResult::Skipped,
                    reason: Some(why),
                    outcome: None,
                    started_ms: now_ms,
                    tripped: false,
                };
                self.record(rec, now_ms);
            }
        }
    }

    /// A run's record: count it, put it on the timeline, start verifying.
    fn record(&mut self, rec: RunRecord, now_ms: i64) {
        *self.runs.entry((rec.rule.clone(), rec.result)).or_default() += 1;
        if rec.tripped {
            self.tripped.insert(rec.rule.clone(), true);
            tracing::warn!(rule = %rec.rule, "remediation rule disabled by its circuit breaker");
        }
        let ran_ms = rec.started_ms + rec.outcome.as_ref().map_or(0, |o| o.duration_ms as i64);
        let at_ms = ran_ms.max(now_ms.min(ran_ms));
        tracing::info!(ticket = %rec.ticket_id, "{}", rec.summary());
        self.out.push(Event {
            ticket_id: rec.ticket_id.clone(),
            at_ms,
            kind: "action",
            summary: rec.summary(),
            detail: serde_json::to_value(&rec).unwrap_or_default(),
            escalate: None,
        });
        // Only a run that did its job can be credited with the incident resolving;
        // a failure is on the timeline already.
        if rec.result != RunResult::Ok {
            return;
        }
        let window = self
            .config
            .rule(&rec.rule)
            .map_or(self.config.defaults.verify_window, |r| {
                r.guards.verify_window
            });
        let v = Verify {
            ticket_id: rec.ticket_id.clone(),
            rule: rec.rule.clone(),
            run_id: rec.id.clone(),
            ran_ms,
            deadline_ms: ran_ms + window.as_millis() as i64,
        };
        match self.resolved.get(&rec.ticket_id) {
            // Resolved while the command ran (its result came in after).
            Some(&t) if t >= rec.started_ms => self.verified(v, t),
            // Resolved before the run started: nothing to credit it with.
            Some(_) => {}
            None => self.verifying.push(v),
        }
    }

    fn verified(&mut self, v: Verify, resolved_ms: i64) {
        let when = if resolved_ms >= v.ran_ms {
            format!(
                "{} after the run",
                crate::text::fmt_duration_ms(resolved_ms - v.ran_ms)
            )
        } else {
            "while the command ran".to_string()
        };
        self.out.push(Event {
            ticket_id: v.ticket_id.clone(),
            // Never before the run it verifies.
            at_ms: resolved_ms.max(v.ran_ms),
            kind: "action",
            summary: format!(
                "remediation {:?} verified: the incident resolved {when}",
                v.rule
            ),
            detail: serde_json::json!({
                "verify": "resolved", "rule": v.rule, "run": v.run_id,
                "ran_ms": v.ran_ms, "resolved_ms": resolved_ms,
            }),
            escalate: None,
        });
    }

    /// Counters for /metrics.
    pub fn export(&self, sample: &mut Sample) {
        for rule in &self.config.rules {
            for result in RunResult::ALL {
                let n = self
                    .runs
                    .get(&(rule.name.clone(), result))
                    .copied()
                    .unwrap_or(0);
                sample.counter(
                    "remediation_runs_total",
                    "Remediation requests since the daemon started, by rule and result \
                     (ok, failed, timeout, dry_run, skipped, refused)",
                    &[("rule", &rule.name), ("result", result.as_str())],
                    n as f64,
                );
            }
            sample.info(
                "remediation_rule_tripped",
                "Whether the rule's circuit breaker disabled it (1) until an operator re-enables it",
                &[("rule", &rule.name)],
                if self.tripped.get(&rule.name).copied().unwrap_or(false) {
                    1.0
                } else {
                    0.0
                },
            );
        }
    }

    /// Total records so far per (rule, result), for tests and status.
    pub fn counts(&self) -> &BTreeMap<(String, RunResult), u64> {
        &self.runs
    }

    /// Wait for queued work (tests and shutdown); gives up after `timeout`.
    pub fn drain(&mut self, timeout: std::time::Duration, now_ms: i64) -> Vec<Event> {
        let end = std::time::Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            events.extend(self.poll(now_ms));
            let recorded: u64 = self.runs.values().sum();
            if recorded >= self.requested || std::time::Instant::now() > end {
                return events;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Match {
    pub fn matches(&self, i: &Incident) -> bool {
        self.label.is_none_or(|l| l == i.label)
            && self.severity.is_none_or(|s| i.severity <= s)
            && self.class.is_none_or(|c| c == i.class)
            && self
                .cause
                .as_ref()
                .is_none_or(|p| i.causes.iter().any(|c| p.is_match(&c.feature)))
            && self
                .resource
                .as_ref()
                .is_none_or(|p| i.resource.as_deref().is_some_and(|r| p.is_match(r)))
    }
}

/// The rules a ticket's timeline says were requested for it (its `action` events that
/// are run records, whatever their result), for [`Engine::recall`].
pub fn rules_on_timeline<'a>(
    details: impl IntoIterator<Item = &'a serde_json::Value>,
) -> Vec<String> {
    details
        .into_iter()
        .filter(|d| d.get("result").is_some() && d.get("verify").is_none())
        .filter_map(|d| d.get("rule")?.as_str().map(str::to_string))
        .collect()
}

/// The incident as environment variables: the only way its data reaches a command.
pub fn incident_env(i: &Incident, dry_run: bool) -> Vec<(String, String)> {
    let top = i.causes.first();
    let mut env = vec![
        ("ANOMALYD_INCIDENT_ID", i.id.clone()),
        ("ANOMALYD_TICKET_ID", i.id.clone()),
        ("ANOMALYD_FINGERPRINT", i.fingerprint.clone()),
        ("ANOMALYD_HOST", i.host.clone()),
        ("ANOMALYD_CLASS", i.class.as_str().to_string()),
        ("ANOMALYD_LABEL", i.label.as_str().to_string()),
        ("ANOMALYD_SEVERITY", i.severity.as_str().to_string()),
        ("ANOMALYD_RESOURCE", i.resource.clone().unwrap_or_default()),
        ("ANOMALYD_TITLE", i.title.clone()),
        ("ANOMALYD_OPENED_MS", i.opened_ms.to_string()),
        (
            "ANOMALYD_CAUSE",
            top.map(|c| c.feature.clone()).unwrap_or_default(),
        ),
        (
            "ANOMALYD_CAUSE_VALUE",
            top.map(|c| c.value.to_string()).unwrap_or_default(),
        ),
        (
            "ANOMALYD_CAUSE_BASELINE",
            top.map(|c| c.baseline.to_string()).unwrap_or_default(),
        ),
        (
            "ANOMALYD_DRY_RUN",
            if dry_run { "1" } else { "0" }.to_string(),
        ),
    ];
    env.retain(|(_, v)| !v.contains('\0'));
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn diagnosis_event(ticket_id: &str, d: Diagnosis) -> Event {
    Event {
        ticket_id: ticket_id.to_string(),
        at_ms: d.at_ms,
        kind: "diagnose",
        summary: d.summary(),
        detail: serde_json::to_value(&d).unwrap_or_default(),
        escalate: None,
    }
}

fn spawn_executor(exec: Executor) -> anyhow::Result<Backend> {
    let (tx, jobs) = mpsc::sync_channel::<Request>(QUEUE);
    let (done, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("remediate".into())
        .spawn(move || {
            for req in jobs {
                let rec = exec.execute(&req, crate::sample::now_ms());
                if done.send(rec).is_err() {
                    return;
                }
            }
        })?;
    Ok(Backend::Worker {
        tx,
        rx,
        retired: Vec::new(),
    })
}

fn spawn_diagnoser(top: usize) -> anyhow::Result<Diagnoser> {
    let (tx, jobs) = mpsc::sync_channel::<(String, Incident)>(QUEUE);
    let (done, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("diagnose".into())
        .spawn(move || {
            for (ticket, incident) in jobs {
                let d = diagnose::diagnose(&incident, top);
                if done.send((ticket, d)).is_err() {
                    return;
                }
            }
        })?;
    Ok(Diagnoser::Worker { tx, rx })
}
