//! The ticket desk: per tick, signals -> incident engine -> reports -> ticket store.
//!
//! Silences are applied here: an incident that a silence matches when it opens is
//! recorded and gets its ticket as usual, but the ticket is *muted*: nothing goes to
//! the sinks. If the silence ends (or is removed) while the problem lasts, the ticket
//! is unmuted and announced then. (Muting rather than dropping keeps "every incident
//! has exactly one ticket" true, and nothing is lost when maintenance overruns.)
//!
//! Operators act on tickets from other processes (`anomalyd tickets resolve`); the
//! desk notices through SQLite's `data_version` and lets the engine forget an
//! incident an operator resolved.
//!
//! Writes are inline on the tick: a ticket change is one small fsynced transaction
//! (a few ms), and changes are rare (a debounced incident opening, updating or
//! resolving), so the tick is not delayed in any way that matters.

use std::collections::HashMap;
use std::path::Path;

use super::report::{render, Context, Recent};
use super::store::{Silence, Status, Store, StoreError};
use crate::config::Config;
use crate::incident::{Change, Engine, Incident, Label, Severity, Signals};
use crate::sample::{Record, Sample};

pub struct Desk {
    engine: Engine,
    store: Store,
    recent: Recent,
    config_silences: Vec<Silence>,
    stored_silences: Vec<Silence>,
    data_version: Option<i64>,
    /// Open incidents whose tickets are muted, and by which silence.
    muted: HashMap<String, String>,
    /// Report material of each open incident.
    contexts: HashMap<String, Context>,
    /// Samples that open an incident (the debounce window): not part of its "before".
    debounce_rows: usize,
    failing: bool,
    /// Incidents opened and resolved since the daemon started, per label: counters,
    /// so `increase()` over any window counts incidents even when one opens and
    /// resolves between two scrapes (the `incidents_open` gauge misses those).
    opened: HashMap<Label, u64>,
    resolved: HashMap<Label, u64>,
}

impl Desk {
    /// Open the store in `state_dir` and pick up the incidents still open there.
    pub fn open(config: &Config, state_dir: &Path, now_ms: i64) -> Result<Desk, StoreError> {
        let store = Store::open_in(state_dir)?.with_sinks(config.tickets.sink_names());
        let host = crate::incident::host_name(&config.incidents);
        let mut engine = Engine::new(config.incidents.clone(), host, store.next_seq()?);
        for (fp, id, opened, resolved) in store.recent_resolved(1000)? {
            engine.remember(&fp, &id, opened, resolved);
        }
        let mut muted = HashMap::new();
        for (incident, muted_by) in store.open_incidents()? {
            if let Some(m) = muted_by {
                muted.insert(incident.id.clone(), m);
            }
            engine.restore(incident, now_ms);
        }
        Ok(Desk {
            engine,
            store,
            recent: Recent::new(config.tickets.report_history.as_millis() as i64),
            config_silences: config.incidents.silences.clone(),
            stored_silences: Vec::new(),
            data_version: None,
            muted,
            contexts: HashMap::new(),
            debounce_rows: config.incidents.open_window,
            failing: false,
            opened: HashMap::new(),
            resolved: HashMap::new(),
        })
    }

    pub fn reconfigure(&mut self, config: &Config) {
        self.engine.reconfigure(config.incidents.clone());
        self.debounce_rows = config.incidents.open_window;
        self.config_silences = config.incidents.silences.clone();
        self.store.set_sinks(config.tickets.sink_names());
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.engine.open()
    }

    /// One tick: `record` feeds the report's recent history. Returns what changed
    /// (already stored), for remediation and logs.
    pub fn tick(&mut self, now_ms: i64, record: &Record, signals: &Signals) -> Vec<Change> {
        if let Err(e) = self.refresh(now_ms) {
            self.warn(&e);
        }
        let changes = self.engine.tick(now_ms, signals);
        // Follow every open incident's metrics (new ones included) before reporting.
        for inc in self.engine.open() {
            self.contexts.entry(inc.id.clone()).or_default().observe(
                inc,
                record,
                &self.recent,
                signals,
                self.debounce_rows,
            );
        }
        for c in &changes {
            self.record(c, signals, now_ms);
        }
        self.unmute_ended(now_ms);
        // After the reports: a new incident's "before" is the window up to this sample.
        self.recent.push(record);
        changes
    }

    /// Raise an open incident's severity one step (e.g. a remediation failed).
    pub fn escalate(&mut self, id: &str, reason: &str, now_ms: i64) -> Option<Change> {
        let c = self.engine.escalate(id, reason, now_ms)?;
        self.record(&c, &Signals::default(), now_ms);
        Some(c)
    }

    fn record(&mut self, c: &Change, signals: &Signals, now_ms: i64) {
        let inc = c.incident();
        match c {
            Change::Opened(i) => *self.opened.entry(i.label).or_default() += 1,
            Change::Resolved(i) => *self.resolved.entry(i.label).or_default() += 1,
            Change::Updated { .. } => {}
        }
        let muted_by = match c {
            Change::Opened(i) => {
                let m = self.silence_for(i, now_ms).map(|s| s.id.clone());
                match &m {
                    Some(s) => self.muted.insert(i.id.clone(), s.clone()),
                    None => self.muted.remove(&i.id),
                };
                m
            }
            Change::Updated { .. } => self.muted.get(&inc.id).cloned(),
            Change::Resolved(i) => self.muted.remove(&i.id),
        };
        let flapping = self.engine.is_flapping(&inc.id);
        let ctx = match c {
            Change::Resolved(i) => self.contexts.remove(&i.id).unwrap_or_default(),
            _ => self.contexts.get(&inc.id).cloned().unwrap_or_default(),
        };
        let report = render(
            inc,
            signals,
            &ctx,
            self.recent.window_ms(),
            flapping,
            muted_by.as_deref(),
            now_ms,
        );
        match self.store.apply(c, &report, muted_by.as_deref(), now_ms) {
            Ok(()) => {
                if self.failing {
                    self.failing = false;
                    tracing::info!("ticket store writes recovered");
                }
                log_change(c, muted_by.as_deref());
            }
            Err(e) => self.warn(&e),
        }
    }

    fn warn(&mut self, e: &StoreError) {
        // Said once per outage: the daemon keeps sampling and retries on the next change.
        if !self.failing {
            self.failing = true;
            tracing::warn!("ticket store: {e}");
        }
    }

    fn silence_for(&self, i: &Incident, now_ms: i64) -> Option<&Silence> {
        self.config_silences
            .iter()
            .chain(&self.stored_silences)
            .find(|s| s.active(now_ms) && s.matchers.matches(i))
    }

    /// Re-read silences and operator resolutions when another connection wrote.
    fn refresh(&mut self, now_ms: i64) -> Result<(), StoreError> {
        let v = self.store.data_version()?;
        if self.data_version == Some(v) {
            return Ok(());
        }
        self.data_version = Some(v);
        self.stored_silences = self.store.silences(now_ms, false)?;
        let ids: Vec<String> = self.engine.open().map(|i| i.id.clone()).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        for (id, status) in self.store.statuses(&refs)? {
            if status == Status::Resolved {
                tracing::info!(ticket = %id, "resolved by an operator; the incident starts over");
                self.engine.forget(&id, now_ms);
                self.muted.remove(&id);
                self.contexts.remove(&id);
            }
        }
        Ok(())
    }

    fn unmute_ended(&mut self, now_ms: i64) {
        if self.muted.is_empty() {
            return;
        }
        let open: Vec<Incident> = self.engine.open().cloned().collect();
        for i in open {
            if self.muted.contains_key(&i.id) && self.silence_for(&i, now_ms).is_none() {
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

    /// `incidents_open{label,severity}`, `incidents_muted` and the
    /// `incidents_{opened,resolved}_total{label}` counters.
    pub fn export(&self, sample: &mut Sample) {
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
        for i in self.engine.open() {
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
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::incident::{ForecastLevel, ForecastSignal};

    fn fill(eta: f64) -> Signals {
        Signals {
            forecasts: vec![ForecastSignal {
                resource: "/data".into(),
                kind: "bytes".into(),
                level: ForecastLevel::Critical,
                eta_seconds: eta,
                causes: Vec::new(),
            }],
            ..Signals::default()
        }
    }

    fn counter(desk: &Desk, name: &str, label: &str) -> Option<f64> {
        let mut s = Sample::new(0);
        desk.export(&mut s);
        s.get(name, &[("label", label)])
    }

    /// A desk on a new store with default config, and an empty record to tick with.
    fn fresh(dir: &Path) -> (Desk, Record) {
        let desk = Desk::open(&Config::default(), dir, 0).unwrap();
        let record = Record {
            timestamp_ms: Some(0),
            values: Vec::new(),
        };
        (desk, record)
    }

    #[test]
    fn counts_opened_and_resolved_incidents_per_label() {
        let dir = tempfile::tempdir().unwrap();
        let (mut desk, record) = fresh(dir.path());
        assert_eq!(
            counter(&desk, "incidents_opened_total", "storage"),
            Some(0.0)
        );
        // Two separate fills, each opening and then resolving one storage incident.
        let mut t = 0;
        for _ in 0..2 {
            for _ in 0..3 {
                t += 1000;
                desk.tick(t, &record, &fill(600.0));
            }
            for _ in 0..30 {
                t += 1000;
                desk.tick(t, &record, &Signals::default());
            }
        }
        assert_eq!(
            counter(&desk, "incidents_opened_total", "storage"),
            Some(2.0)
        );
        assert_eq!(
            counter(&desk, "incidents_resolved_total", "storage"),
            Some(2.0)
        );
        assert_eq!(counter(&desk, "incidents_opened_total", "cpu"), Some(0.0));
    }

    #[test]
    fn a_reload_changes_which_sinks_get_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut desk, record) = fresh(dir.path());
        desk.tick(1000, &record, &fill(600.0));
        let config = crate::config::parse(
            "tickets:\n  sinks:\n  - name: hook\n    type: webhook\n    url: http://127.0.0.1:9/t\n",
        )
        .unwrap();
        desk.reconfigure(&config);
        for t in 2..40 {
            desk.tick(t * 1000, &record, &Signals::default());
        }
        let conn = rusqlite::Connection::open(dir.path().join("tickets.db")).unwrap();
        let rows = crate::tickets::outbox::rows(&conn).unwrap();
        // Nothing was queued for the open (no sinks then); the resolve goes to the hook.
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].sink, "hook");
    }
}
