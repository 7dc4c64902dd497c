//! The ticket desk: records what the incident engine decided. Per tick it gets the
//! engine's changes, renders each changed incident's evidence (its report but for the
//! ticket's own fields, which the store adds) and writes it to the ticket store (which queues the sinks' deliveries in the same transaction). It reads
//! the engine (which incidents are open, which flap) and never drives it: the pipeline
//! runs the engine, then hands its changes here.
//!
//! Probation is applied here too: an anomaly incident that opens while the model is
//! young (`model.probation`) gets a ticket muted by [`PROBATION`]: recorded, never
//! sent, never remediated, and it stays muted (it was decided by a model nobody
//! should trust yet).
//!
//! Silences are applied here: an incident that a silence matches when it opens is
//! recorded and gets its ticket as usual, but the ticket is *muted*: nothing goes to
//! the sinks. If the silence ends (or is removed) while the problem lasts, the ticket
//! is unmuted and announced then. (Muting rather than dropping keeps "every incident
//! has exactly one ticket" true, and nothing is lost when maintenance overruns.)
//!
//! Operators act on tickets from other processes (`anomalyd tickets resolve`); the
//! desk notices through SQLite's `data_version` and tells the pipeline, through
//! [`Desk::refresh`], which incidents an operator resolved, so the engine forgets them.
//!
//! Response deadlines are followed here too ([`Desk::deadlines`], after the engine's
//! changes are recorded): per open, unmuted ticket, its clocks ([`response`]) on the
//! tick's time; the events go to the store (and the sinks), and escalations back to
//! the pipeline, which has the engine raise the severity.
//!
//! Writes are inline on the tick: a ticket change is one small fsynced transaction
//! (a few ms), and changes are rare (a debounced incident opening, updating or
//! resolving), so the tick is not delayed in any way that matters.

use std::collections::{HashMap, VecDeque};

use super::report::{render, Context, Recent};
use super::response::{self, Action, Deadline, ResponseConfig, Stage, Tally};
use super::store::{Status, Store, StoreError};
use super::TicketsConfig;
use crate::incident::{
    Change, Engine, Incident, IncidentConfig, Label, Severity, Signals, Silence,
};
use crate::sample::{Record, Sample};
use crate::store::StateDir;

/// What mutes the tickets of anomalies decided during the model's probation.
pub const PROBATION: &str = "probation";

/// How many refused changes the desk keeps to write again (a day of a busy host's
/// changes; each holds its ticket body, a few kB).
const MAX_UNWRITTEN: usize = 10_000;

/// How often the changes waiting are tried again without a new change.
const RETRY_MS: i64 = 10_000;

/// A change the store refused, as it was to be written.
struct Unwritten {
    change: Change,
    evidence: String,
    muted_by: Option<String>,
    at_ms: i64,
}

pub struct Desk {
    store: Store,
    recent: Recent,
    config_silences: Vec<Silence>,
    stored_silences: Vec<Silence>,
    data_version: Option<i64>,
    /// Ask the store for other connections' changes at most this often (wall time);
    /// zero: at every tick. See [`Desk::look_for_changes_every`].
    look_every: std::time::Duration,
    looked: Option<std::time::Instant>,
    /// Open incidents whose tickets are muted, and by which silence.
    muted: HashMap<String, String>,
    /// Report material of each open incident.
    contexts: HashMap<String, Context>,
    /// How long before an incident opens its samples may already be anomalous (the
    /// opening window): not part of its "before".
    opening_ms: i64,
    failing: bool,
    /// Changes the store refused (a full or read-only disk), oldest first. The engine
    /// has moved on, so they are written again, in order and before anything newer,
    /// until the store takes them: a ticket is never updated before it exists, and a
    /// resolution is never lost. At most [`MAX_UNWRITTEN`]; past that the oldest go,
    /// said in the log.
    unwritten: VecDeque<Unwritten>,
    /// When the changes waiting were last tried again ([`RETRY_MS`]).
    retried_ms: i64,
    /// Incidents opened and resolved since the daemon started, per label: counters,
    /// so `increase()` over any window counts incidents even when one opens and
    /// resolves between two scrapes (the `incidents_open` gauge misses those).
    opened: HashMap<Label, u64>,
    resolved: HashMap<Label, u64>,
    response: ResponseConfig,
    /// Open tickets' clocks, breaches and response times since the daemon started.
    tally: Tally,
}

/// What the ticket store remembers for the incident engine at start: the next ticket
/// number, recently resolved incidents (to reopen), and the incidents still open.
pub struct Restored {
    pub next_seq: u64,
    /// (fingerprint, id, opened, resolved), newest first.
    pub resolved: Vec<(String, String, i64, i64)>,
    pub open: Vec<Incident>,
}

impl Desk {
    /// Open the store in `state` and pick up the incidents still open there (and which
    /// of them are muted); [`Restored`] is what the engine needs to carry on.
    pub fn open(
        incidents: &IncidentConfig,
        tickets: &TicketsConfig,
        state: &StateDir,
    ) -> Result<(Desk, Restored), StoreError> {
        let (store, problem) = Store::open_or_reset(&state.tickets())?;
        if let Some(p) = problem {
            tracing::warn!("tickets: {p}");
        }
        let mut store = store.with_sinks(tickets.sink_names());
        store.set_routing(tickets.routing.clone());
        let next_seq = store.next_seq()?;
        let resolved = store.recent_resolved(1000)?;
        let mut muted = HashMap::new();
        let mut open = Vec::new();
        for (incident, muted_by) in store.open_incidents()? {
            if let Some(m) = muted_by {
                muted.insert(incident.id.clone(), m);
            }
            open.push(incident);
        }
        let desk = Desk {
            store,
            recent: Recent::new(tickets.report_history.as_millis() as i64),
            config_silences: incidents.silences.clone(),
            stored_silences: Vec::new(),
            data_version: None,
            look_every: std::time::Duration::ZERO,
            looked: None,
            muted,
            contexts: HashMap::new(),
            opening_ms: incidents.opening.open_window.as_millis() as i64,
            failing: false,
            unwritten: VecDeque::new(),
            retried_ms: i64::MIN,
            opened: HashMap::new(),
            resolved: HashMap::new(),
            response: tickets.response.clone(),
            tally: Tally::default(),
        };
        Ok((
            desk,
            Restored {
                next_seq,
                resolved,
                open,
            },
        ))
    }

    pub fn reconfigure(&mut self, incidents: &IncidentConfig, tickets: &TicketsConfig) {
        self.opening_ms = incidents.opening.open_window.as_millis() as i64;
        self.config_silences = incidents.silences.clone();
        self.store.set_sinks(tickets.sink_names());
        self.store.set_routing(tickets.routing.clone());
        self.response = tickets.response.clone();
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Before the engine's tick: re-read silences and operator resolutions when another
    /// connection wrote. Returns the open incidents an operator resolved: the engine
    /// forgets them (the incident starts over).
    pub fn refresh(&mut self, now_ms: i64, engine: &Engine) -> Vec<String> {
        match self.read_changes(now_ms, engine) {
            Ok(resolved) => resolved,
            Err(e) => {
                self.warn(&e);
                Vec::new()
            }
        }
    }

    /// Look for other connections' changes (an operator's `tickets ack`, a silence) at
    /// most every `every` of wall time instead of at every tick. A replay sets it: it
    /// runs tens of thousands of ticks a second, and asking SQLite for its
    /// `data_version` takes the WAL's read lock each time (a sixth of a replay's time
    /// outside training). Nothing of the replay's own changes this (SQLite counts only
    /// other connections' commits), so a replay nobody touches decides the same.
    pub fn look_for_changes_every(&mut self, every: std::time::Duration) {
        self.look_every = every;
    }

    fn read_changes(&mut self, now_ms: i64, engine: &Engine) -> Result<Vec<String>, StoreError> {
        if !self.look_every.is_zero() {
            let now = std::time::Instant::now();
            if self
                .looked
                .is_some_and(|t| now.duration_since(t) < self.look_every)
            {
                return Ok(Vec::new());
            }
            self.looked = Some(now);
        }
        let v = self.store.data_version()?;
        if self.data_version == Some(v) {
            return Ok(Vec::new());
        }
        self.data_version = Some(v);
        self.stored_silences = self.store.silences(now_ms, false)?;
        let ids: Vec<String> = engine.open().map(|i| i.id.clone()).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut resolved = Vec::new();
        for (id, status) in self.store.statuses(&refs)? {
            if status == Status::Resolved {
                tracing::info!(ticket = %id, "resolved by an operator; the incident starts over");
                self.muted.remove(&id);
                self.contexts.remove(&id);
                resolved.push(id);
            }
        }
        // Acknowledgements (and operator resolutions) stop the clocks they are about.
        let followed: Vec<String> = self.tally.clocks.keys().cloned().collect();
        for id in followed {
            self.reread_clock(&id, now_ms)?;
        }
        Ok(resolved)
    }

    /// Read ticket `id`'s clock from the store again: a new acknowledgement or
    /// resolution is a response time; a resolved ticket is no longer followed.
    fn reread_clock(&mut self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        let Some((clock, status, severity)) = self.store.clock(id)? else {
            self.tally.clocks.remove(id);
            return Ok(());
        };
        let sev = Severity::parse(&severity).unwrap_or(Severity::P4);
        let known = self.tally.clocks.get(id).cloned();
        if let (Some(old), Some(acked)) = (&known, clock.acked_ms) {
            if old.acked_ms.is_none() {
                self.tally
                    .took(sev, Deadline::Acknowledge, acked - clock.opened_ms);
            }
        }
        if status == Status::Resolved {
            if known.is_some() {
                let at = self
                    .store
                    .get(id, now_ms)?
                    .and_then(|t| t.resolved_ms)
                    .unwrap_or(now_ms);
                self.tally
                    .took(sev, Deadline::Resolve, at - clock.opened_ms);
            }
            self.tally.clocks.remove(id);
        } else {
            self.tally.clocks.insert(id.to_string(), clock);
        }
        Ok(())
    }

    /// After the tick's changes are recorded: the deadline events due now for the
    /// open tickets, recorded (and sent); returns the tickets whose severity should
    /// go up one level, with why (`on_warning` / `on_breach: escalate`).
    pub fn deadlines(&mut self, now_ms: i64, engine: &Engine) -> Vec<(String, String)> {
        let mut escalate = Vec::new();
        // Followed with the levels off too: the response times are measured anyway.
        let open: Vec<(String, Severity)> = engine
            .open()
            .filter(|i| !self.muted.contains_key(&i.id))
            .map(|i| (i.id.clone(), i.severity))
            .collect();
        for (id, sev) in open {
            if !self.tally.clocks.contains_key(&id) {
                if let Err(e) = self.reread_clock(&id, now_ms) {
                    self.warn(&e);
                    continue;
                }
            }
            let Some(clock) = self.tally.clocks.get(&id) else {
                continue;
            };
            let opened = clock.opened_ms;
            let due = response::due(
                &self.response,
                sev,
                opened,
                clock.acked_ms.is_some(),
                &clock.said,
                now_ms,
            );
            for d in due {
                let summary = response::summary(&d, sev, opened);
                let detail = serde_json::json!({
                    "deadline": d.deadline.as_str(),
                    "stage": d.stage.as_str(),
                    "severity": sev.as_str(),
                    "due_ms": d.due_ms,
                    "limit_seconds": d.limit.as_secs(),
                });
                if let Err(e) = self
                    .store
                    .add_event(&id, now_ms, "deadline", &summary, &detail)
                {
                    self.warn(&e);
                    break;
                }
                tracing::warn!(ticket = %id, "{summary}");
                if let Some(c) = self.tally.clocks.get_mut(&id) {
                    c.said.push((d.deadline, d.stage));
                }
                if d.stage == Stage::Breach {
                    self.tally.breach(sev, d.deadline);
                }
                if self.response.action(d.stage) == Action::Escalate {
                    escalate.push((id.clone(), summary));
                }
            }
        }
        escalate
    }

    /// After the engine's tick: record its `changes` (already decided), with `record`
    /// feeding the reports' recent history.
    pub fn record_tick(
        &mut self,
        now_ms: i64,
        record: &Record,
        signals: &Signals,
        changes: &[Change],
        engine: &Engine,
    ) {
        // Changes waiting are tried again every few seconds of the series' time, not
        // at every tick: a store that is busy makes each try wait its busy timeout.
        if !self.unwritten.is_empty() && now_ms.saturating_sub(self.retried_ms) >= RETRY_MS {
            self.retried_ms = now_ms;
            self.write_unwritten();
        }
        // Follow every open incident's metrics (new ones included) before reporting.
        for inc in engine.open() {
            self.contexts.entry(inc.id.clone()).or_default().observe(
                inc,
                record,
                &self.recent,
                signals,
                self.opening_ms,
            );
        }
        for c in changes {
            self.record(c, signals, engine, now_ms);
        }
        self.unmute_ended(now_ms, engine);
        // After the reports: a new incident's "before" is the window up to this sample.
        self.recent.push(record);
    }

    /// Record an escalation the engine made outside its tick (remediation asked).
    pub fn record_escalation(&mut self, c: &Change, engine: &Engine, now_ms: i64) {
        self.record(c, &Signals::default(), engine, now_ms);
    }

    fn record(&mut self, c: &Change, signals: &Signals, engine: &Engine, now_ms: i64) {
        let inc = c.incident();
        match c {
            Change::Opened(i) => *self.opened.entry(i.label).or_default() += 1,
            Change::Resolved(i) | Change::Superseded { incident: i, .. } => {
                *self.resolved.entry(i.label).or_default() += 1;
                if let Some(clock) = self.tally.clocks.remove(&i.id) {
                    self.tally
                        .took(i.severity, Deadline::Resolve, now_ms - clock.opened_ms);
                }
            }
            Change::Updated { .. } => {}
        }
        let muted_by = match c {
            Change::Opened(i) => {
                let young = signals.probation && i.class == crate::incident::Class::Anomaly;
                let m = match young {
                    true => Some(PROBATION.to_string()),
                    false => self.silence_for(i, now_ms).map(|s| s.id.clone()),
                };
                match &m {
                    Some(s) => self.muted.insert(i.id.clone(), s.clone()),
                    None => self.muted.remove(&i.id),
                };
                m
            }
            Change::Updated { .. } => self.muted.get(&inc.id).cloned(),
            Change::Resolved(i) | Change::Superseded { incident: i, .. } => {
                self.muted.remove(&i.id)
            }
        };
        let flapping = engine.is_flapping(&inc.id);
        let ctx = match c {
            Change::Resolved(i) | Change::Superseded { incident: i, .. } => {
                self.contexts.remove(&i.id).unwrap_or_default()
            }
            _ => self.contexts.get(&inc.id).cloned().unwrap_or_default(),
        };
        let evidence = render(
            inc,
            signals,
            &ctx,
            self.recent.window_ms(),
            flapping,
            now_ms,
        );
        if self.unwritten.len() == MAX_UNWRITTEN {
            if let Some(lost) = self.unwritten.pop_front() {
                tracing::error!(
                    ticket = %lost.change.incident().id,
                    "ticket store: {MAX_UNWRITTEN} changes waiting to be written; dropped the oldest"
                );
            }
        }
        self.unwritten.push_back(Unwritten {
            change: c.clone(),
            evidence,
            muted_by,
            at_ms: now_ms,
        });
        self.write_unwritten();
    }

    /// Write the changes waiting, oldest first, until one is refused.
    fn write_unwritten(&mut self) {
        while let Some(u) = self.unwritten.front() {
            match self
                .store
                .apply(&u.change, &u.evidence, u.muted_by.as_deref(), u.at_ms)
            {
                Ok(()) => {
                    log_change(&u.change, u.muted_by.as_deref());
                    self.unwritten.pop_front();
                    if self.failing && self.unwritten.is_empty() {
                        self.failing = false;
                        tracing::info!("ticket store writes recovered; every change written");
                    }
                }
                Err(e) => {
                    self.warn(&e);
                    return;
                }
            }
        }
    }

    fn warn(&mut self, e: &StoreError) {
        // Said once per outage: the daemon keeps sampling and writes the changes
        // waiting at every tick.
        if !self.failing {
            self.failing = true;
            tracing::warn!("ticket store: {e}; changes are kept and written once it takes them");
        }
    }

    fn silence_for(&self, i: &Incident, now_ms: i64) -> Option<&Silence> {
        self.config_silences
            .iter()
            .chain(&self.stored_silences)
            .find(|s| s.active(now_ms) && s.matchers.matches(i))
    }

    /// Whether `id`'s ticket was muted because the model was on probation.
    pub fn on_probation(&self, id: &str) -> bool {
        self.muted.get(id).is_some_and(|m| m == PROBATION)
    }

    fn unmute_ended(&mut self, now_ms: i64, engine: &Engine) {
        if self.muted.is_empty() {
            return;
        }
        for i in engine.open() {
            let silenced = self.muted.get(&i.id).is_some_and(|m| m != PROBATION);
            if silenced && self.silence_for(i, now_ms).is_none() {
                match self.store.unmute(&i.id, now_ms) {
                    Ok(()) => {
                        self.muted.remove(&i.id);
                        tracing::info!(ticket = %i.id, "silence over; ticket sent to the sinks");
                    }
                    Err(e) => self.warn(&e),
                }
            }
        }
    }

    /// `incidents_open{label,severity}` (from the engine's open incidents),
    /// `incidents_muted` and the `incidents_{opened,resolved}_total{label}` counters.
    pub fn export(&self, sample: &mut Sample, engine: &Engine) {
        for l in Label::ALL {
            sample.counter(
                "incidents_opened_total",
                "Incidents opened (or reopened) since the daemon started, by label",
                &[("label", l.as_str())],
                self.opened.get(l).copied().unwrap_or(0) as f64,
            );
            sample.counter(
                "incidents_resolved_total",
                "Incidents resolved since the daemon started, by label",
                &[("label", l.as_str())],
                self.resolved.get(l).copied().unwrap_or(0) as f64,
            );
        }
        let mut counts: HashMap<(Label, Severity), usize> = HashMap::new();
        for i in engine.open() {
            *counts.entry((i.label, i.severity)).or_default() += 1;
        }
        for l in Label::ALL {
            for s in Severity::ALL {
                sample.info(
                    "incidents_open",
                    "Open incidents by label and severity",
                    &[("label", l.as_str()), ("severity", s.as_str())],
                    counts.get(&(*l, *s)).copied().unwrap_or(0) as f64,
                );
            }
        }
        self.tally.export(sample);
        sample.info(
            "incidents_muted",
            "Open incidents whose tickets a maintenance silence keeps from the sinks",
            &[],
            self.muted.len() as f64,
        );
    }
}

fn log_change(c: &Change, muted_by: Option<&str>) {
    let i = c.incident();
    let muted = muted_by.unwrap_or("-");
    match c {
        Change::Opened(_) => {
            tracing::info!(ticket = %i.id, severity = %i.severity, label = %i.label, muted, "incident opened: {}", i.title)
        }
        Change::Updated { what, .. } => {
            tracing::info!(ticket = %i.id, severity = %i.severity, "incident updated: {what}")
        }
        Change::Resolved(_) => tracing::info!(ticket = %i.id, "incident resolved: {}", i.title),
        Change::Superseded { by, .. } => {
            tracing::info!(ticket = %i.id, "incident superseded by {by}: {}", i.title)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::incident::testing::storage_anomaly;

    /// The state directory's disk refuses writes (a trigger makes every new ticket
    /// fail, as a full disk would) while an incident opens and resolves: both changes
    /// wait, and once the store takes writes again the ticket is written, opened then
    /// resolved, in order. They used to be logged and lost: no ticket ever existed.
    #[test]
    fn changes_the_store_refused_are_written_once_it_takes_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let incidents = IncidentConfig::default();
        let (mut desk, _) = Desk::open(&incidents, &TicketsConfig::default(), &state).unwrap();
        let engine = Engine::new(incidents, "web1".into(), 1);
        let side = rusqlite::Connection::open(state.tickets()).unwrap();
        side.execute_batch(
            "CREATE TRIGGER full BEFORE INSERT ON tickets BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
        let opened = storage_anomaly("INC-1", 60_000, 0.97, 12.0);
        let mut resolved = opened.clone();
        resolved.resolved_ms = Some(600_000);
        desk.record_escalation(&Change::Opened(opened), &engine, 60_000);
        desk.record_escalation(&Change::Resolved(resolved), &engine, 600_000);
        assert!(desk.store().get("INC-1", 700_000).unwrap().is_none());
        assert_eq!(desk.unwritten.len(), 2);

        side.execute_batch("DROP TRIGGER full;").unwrap();
        let record = Record {
            timestamp_ms: Some(700_000),
            values: Vec::new(),
        };
        desk.record_tick(700_000, &record, &Signals::default(), &[], &engine);
        assert!(desk.unwritten.is_empty());
        let ticket = desk.store().get("INC-1", 700_000).unwrap().unwrap();
        assert_eq!(ticket.opened_ms, 60_000);
        assert_eq!(ticket.resolved_ms, Some(600_000));
    }
}
