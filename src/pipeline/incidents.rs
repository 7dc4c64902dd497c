//! The last three stages of the tick path: `incident` decides, `tickets` records,
//! `remediate` acts. The pipeline calls them in that order, each with what the one
//! before produced; none of them calls another.
//!
//! Remediation's feedback goes back as an input of the *next* tick: a run that did
//! not help asks for an escalation, which the incident engine applies first thing on
//! the next tick (the desk records it, and remediation sees the escalated incident
//! with that tick's changes, so a stronger rule may match the worse severity).

use crate::forecast::{self, Outlook};
use crate::incident::{self, Cause, Change, Engine, ForecastLevel, ForecastSignal, Signals};
use crate::mode::Mode;
use crate::remediate;
use crate::sample::{Record, Sample};
use crate::settings::Config;
use crate::store::StateDir;
use crate::tickets::{Desk, StoreError};

/// A ticket whose severity should go up one step, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub ticket_id: String,
    pub reason: String,
}

/// The incident engine, the ticket desk and remediation, with the escalations the last
/// tick left for this one.
pub struct Incidents {
    engine: Engine,
    desk: Desk,
    /// `None` when remediation is off (or, live, could not start).
    remediation: Option<remediate::Engine>,
    escalations: Vec<Escalation>,
}

impl Incidents {
    /// Open the ticket store and carry on from what it remembers (the next ticket
    /// number, incidents to reopen, incidents still open).
    pub fn open(config: &Config, state: &StateDir, now_ms: i64) -> Result<Incidents, StoreError> {
        let (desk, restored) = Desk::open(&config.incidents, &config.tickets, state)?;
        let host = incident::host_name(&config.incidents);
        let mut engine = Engine::new(config.incidents.clone(), host, restored.next_seq);
        for (fp, id, opened, resolved) in restored.resolved {
            engine.remember(&fp, &id, opened, resolved);
        }
        for incident in restored.open {
            engine.restore(incident, now_ms);
        }
        Ok(Incidents {
            engine,
            desk,
            remediation: None,
            escalations: Vec::new(),
        })
    }

    /// Add remediation (`None` when it is disabled).
    pub fn with_remediation(mut self, remediation: Option<remediate::Engine>) -> Incidents {
        self.remediation = remediation;
        self
    }

    /// Open remediation for `config`: in replay a failure is the replay's; live, the
    /// daemon carries on without it.
    pub fn open_remediation(
        config: &Config,
        state: &StateDir,
        mode: Mode,
    ) -> anyhow::Result<Option<remediate::Engine>> {
        match (
            remediate::Engine::open(&config.remediation, state, mode),
            mode,
        ) {
            (Ok(e), _) => Ok(e),
            (Err(e), Mode::Replay) => Err(e),
            (Err(e), Mode::Live) => {
                tracing::error!("remediation is off: {e:#}");
                Ok(None)
            }
        }
    }

    pub fn config(&self) -> &incident::IncidentConfig {
        self.engine.config()
    }

    /// A new model is in use: the gate takes its budget multiplier and its view of the
    /// recent past.
    pub fn new_model(&mut self, multiplier: f64, recent: &[(i64, f64)]) {
        self.engine.new_model(multiplier);
        self.engine.prime(recent);
    }

    /// The level a smoothed score must exceed to open an incident, in units of the
    /// model's threshold.
    pub fn opening_level(&self) -> f64 {
        self.engine.opening_level()
    }

    /// See [`Desk::look_for_changes_every`].
    pub fn look_for_changes_every(&mut self, every: std::time::Duration) {
        self.desk.look_for_changes_every(every);
    }

    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    /// One tick of the three stages. Returns the incident changes (already recorded).
    pub fn tick(&mut self, now_ms: i64, record: &Record, signals: &Signals) -> Vec<Change> {
        // incident: what operators resolved and what remediation asked for last tick
        // come first, then this tick's signals.
        for id in self.desk.refresh(now_ms, &self.engine) {
            self.engine.forget(&id, now_ms);
        }
        let mut changes = Vec::new();
        for e in std::mem::take(&mut self.escalations) {
            if let Some(c) = self.engine.escalate(&e.ticket_id, &e.reason, now_ms) {
                // tickets
                self.desk.record_escalation(&c, &self.engine, now_ms);
                changes.push(c);
            }
        }
        let decided = self.engine.tick(now_ms, signals);
        // tickets
        self.desk
            .record_tick(now_ms, record, signals, &decided, &self.engine);
        changes.extend(decided);
        // tickets: response deadlines on this tick's time; an escalating one raises
        // the severity now (remediation below sees the raised incident).
        for (id, reason) in self.desk.deadlines(now_ms, &self.engine) {
            if let Some(c) = self.engine.escalate(&id, &reason, now_ms) {
                self.desk.record_escalation(&c, &self.engine, now_ms);
                changes.push(c);
            }
        }
        // remediate: never for a young model's muted tickets
        if let Some(r) = &mut self.remediation {
            let acted: Vec<Change> = changes
                .iter()
                .filter(|c| !self.desk.on_probation(&c.incident().id))
                .cloned()
                .collect();
            self.escalations = remediate_stage(r, &self.desk, &acted, now_ms);
        }
        changes
    }

    pub fn reconfigure(&mut self, config: &Config, state: &StateDir) {
        self.engine.reconfigure(config.incidents.clone());
        self.desk.reconfigure(&config.incidents, &config.tickets);
        if let Some(r) = &mut self.remediation {
            r.reconfigure(&config.remediation, state);
        }
    }

    pub fn export(&self, sample: &mut Sample) {
        self.desk.export(sample, &self.engine);
        if let Some(r) = &self.remediation {
            r.export(sample);
        }
    }
}

/// The forecast events firing now, as the incident engine wants them: all of them on
/// every tick (one no longer listed has cleared), each with its evidence.
pub(super) fn forecast_signals(outlook: &Outlook) -> Vec<ForecastSignal> {
    outlook
        .active
        .iter()
        .map(|e| {
            let eta = outlook
                .etas
                .iter()
                .find(|t| t.kind == e.kind && t.resource == e.resource);
            let causes = eta
                .map(|t| {
                    vec![Cause {
                        feature: forecast_feature(t),
                        value: t.headroom,
                        // No learned normal for a trend: where it takes the
                        // resource in an hour (the report labels it so).
                        baseline: t.headroom + t.rate * 3600.0,
                        contribution: 1.0,
                    }]
                })
                .unwrap_or_default();
            ForecastSignal {
                resource: e.resource.clone(),
                kind: e.kind.as_str().to_string(),
                level: match e.severity {
                    forecast::Severity::Warning => ForecastLevel::Warning,
                    forecast::Severity::Critical => ForecastLevel::Critical,
                },
                eta_seconds: e.eta_seconds,
                causes,
            }
        })
        .collect()
}

/// The headroom series an ETA was fitted on, named like the feature it comes from.
fn forecast_feature(t: &forecast::Eta) -> String {
    let fs = [
        ("mountpoint", t.resource.as_str()),
        ("device", t.device.as_str()),
        ("fstype", t.fstype.as_str()),
    ];
    match t.kind {
        forecast::Kind::Bytes => crate::sample::series_name("filesystem_available_bytes", fs),
        forecast::Kind::Inodes => crate::sample::series_name("filesystem_inodes_free", fs),
        forecast::Kind::Memory => "memory_available_bytes".to_string(),
        forecast::Kind::Swap => "swap_free_bytes".to_string(),
    }
}

/// The remediate stage: this tick's incident changes in; the runs, verifications and
/// diagnoses it reports go onto the tickets' timelines; the escalations it asks for
/// are returned, for the incident engine's next tick.
pub fn remediate_stage(
    engine: &mut remediate::Engine,
    desk: &Desk,
    changes: &[Change],
    now_ms: i64,
) -> Vec<Escalation> {
    for c in changes {
        let id = &c.incident().id;
        // The first time an open incident comes by (new, reopened, or open before a
        // restart): the rules its ticket says already ran do not run again.
        let ends = matches!(c, Change::Resolved(_) | Change::Superseded { .. });
        if !ends && !engine.recalled(id) {
            match desk.store().timeline(id) {
                Ok(events) => engine.recall(
                    id,
                    remediate::engine::rules_on_timeline(events.iter().map(|e| &e.detail)),
                ),
                Err(err) => tracing::warn!(ticket = %id, "cannot read the timeline: {err}"),
            }
        }
        engine.on_change(c, now_ms);
    }
    let mut escalations = Vec::new();
    for e in engine.poll(now_ms) {
        if let Err(err) =
            desk.store()
                .add_event(&e.ticket_id, e.at_ms, e.kind, &e.summary, &e.detail)
        {
            tracing::warn!(ticket = %e.ticket_id, "cannot record remediation event: {err}");
        }
        if let Some(reason) = e.escalate {
            escalations.push(Escalation {
                ticket_id: e.ticket_id,
                reason,
            });
        }
    }
    escalations
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::incident::{ForecastLevel, ForecastSignal};
    use std::path::Path;

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

    fn counter(desk: &Incidents, name: &str, label: &str) -> Option<f64> {
        let mut s = Sample::new(0);
        desk.export(&mut s);
        s.get(name, &[("label", label)])
    }

    /// The stages on a new ticket store with default config, and an empty record to
    /// tick with. (These tests were the desk's when it drove the engine.)
    fn fresh(dir: &Path) -> (Incidents, Record) {
        let desk = Incidents::open(&Config::default(), &StateDir::at(dir), 0).unwrap();
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
            // Resolved once quiet for `resolve_for` (10 min).
            for _ in 0..11 {
                t += 60_000;
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
        let config = crate::settings::parse(
            // Without response deadlines: their events would be deliveries too.
            "tickets:\n  response: {enabled: false}\n  sinks:\n  - name: hook\n    type: webhook\n    url: http://127.0.0.1:9/t\n",
        )
        .unwrap();
        desk.reconfigure(&config, &StateDir::at(dir.path()));
        for t in 2..14 {
            desk.tick(t * 60_000, &record, &Signals::default());
        }
        let conn = rusqlite::Connection::open(dir.path().join("tickets.db")).unwrap();
        let rows = crate::tickets::outbox::rows(&conn).unwrap();
        // Nothing was queued for the open (no sinks then); the resolve goes to the hook.
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].sink, "hook");
    }

    /// The deadline events on INC-1's timeline: (deadline, stage).
    fn deadline_events(dir: &Path) -> Vec<(String, String)> {
        let store = crate::tickets::Store::open(&dir.join("tickets.db")).unwrap();
        store
            .timeline("INC-1")
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "deadline")
            .map(|e| {
                let s = |k: &str| e.detail[k].as_str().unwrap().to_string();
                (s("deadline"), s("stage"))
            })
            .collect()
    }

    fn ack_times(desk: &Incidents) -> Vec<f64> {
        let mut s = Sample::new(0);
        desk.export(&mut s);
        s.points
            .iter()
            .filter(|p| {
                p.name == "ticket_time_to_acknowledge_seconds"
                    && p.labels.contains(&("severity", "P1".to_string()))
            })
            .flat_map(|p| p.observations.clone())
            .collect()
    }

    /// A P1 (a critical forecast) nobody acknowledges: at 4 min (80 % of its 5) the
    /// warning, at 5 min the breach, each once, also after a restart; counted.
    #[test]
    fn an_unacknowledged_p1_warns_and_breaches_once_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut desk, record) = fresh(dir.path());
        let mut t = 0;
        for _ in 0..20 {
            t += 30_000;
            desk.tick(t, &record, &fill(600.0));
        }
        let want = vec![
            ("acknowledge".to_string(), "warning".to_string()),
            ("acknowledge".to_string(), "breach".to_string()),
        ];
        assert_eq!(deadline_events(dir.path()), want);
        let mut s = Sample::new(0);
        desk.export(&mut s);
        let breaches = |s: &Sample, sev: &str| {
            s.get(
                "sla_breaches_total",
                &[("severity", sev), ("deadline", "acknowledge")],
            )
        };
        assert_eq!(breaches(&s, "P1"), Some(1.0));
        assert_eq!(breaches(&s, "P0"), Some(0.0));
        drop(desk);
        let mut desk = Incidents::open(&Config::default(), &StateDir::at(dir.path()), t).unwrap();
        for _ in 0..20 {
            t += 30_000;
            desk.tick(t, &record, &fill(600.0));
        }
        assert_eq!(deadline_events(dir.path()), want, "not said again");
    }

    /// Acknowledged (from another process, as `tickets ack` does) before its
    /// warning: no acknowledgement events, and the time to acknowledge is observed.
    #[test]
    fn acknowledging_stops_the_acknowledgement_clock() {
        let dir = tempfile::tempdir().unwrap();
        let (mut desk, record) = fresh(dir.path());
        desk.tick(30_000, &record, &fill(600.0));
        desk.tick(60_000, &record, &fill(600.0));
        let other = crate::tickets::Store::open(&dir.path().join("tickets.db")).unwrap();
        assert!(other.ack("INC-1", Some("alice"), 150_000).unwrap());
        let mut t = 60_000;
        for _ in 0..20 {
            t += 30_000;
            desk.tick(t, &record, &fill(600.0));
            if t == 180_000 {
                assert_eq!(
                    ack_times(&desk),
                    vec![120.0],
                    "opened at 30 s, acked at 150 s"
                );
            }
        }
        assert_eq!(deadline_events(dir.path()), Vec::new());
    }

    /// A replay looks for an operator's changes on a wall-clock period, not at every
    /// tick; once the period has passed the change is seen as at every tick.
    #[test]
    fn a_replay_looks_for_an_operators_changes_on_a_period() {
        let dir = tempfile::tempdir().unwrap();
        let (mut desk, record) = fresh(dir.path());
        desk.look_for_changes_every(std::time::Duration::from_secs(3600));
        desk.tick(30_000, &record, &fill(600.0));
        desk.tick(60_000, &record, &fill(600.0));
        let other = crate::tickets::Store::open(&dir.path().join("tickets.db")).unwrap();
        assert!(other.ack("INC-1", Some("alice"), 150_000).unwrap());
        desk.tick(180_000, &record, &fill(600.0));
        assert_eq!(ack_times(&desk), Vec::<f64>::new(), "within the period");
        desk.look_for_changes_every(std::time::Duration::ZERO);
        desk.tick(210_000, &record, &fill(600.0));
        assert_eq!(ack_times(&desk), vec![120.0], "seen once looked for");
    }

    /// `on_breach: escalate`: the breach raises the severity one level (P1 -> P0);
    /// the new level's acknowledgement deadline is not said again.
    #[test]
    fn a_breach_can_escalate() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            crate::settings::parse("tickets:\n  response: {on_breach: escalate}\n").unwrap();
        let mut desk = Incidents::open(&config, &StateDir::at(dir.path()), 0).unwrap();
        let record = Record {
            timestamp_ms: Some(0),
            values: Vec::new(),
        };
        let mut raised = Vec::new();
        let mut t = 0;
        for _ in 0..40 {
            t += 30_000;
            for c in desk.tick(t, &record, &fill(600.0)) {
                if let Change::Updated { what, incident } = c {
                    raised.push((t, what, incident.severity));
                }
            }
        }
        assert_eq!(raised.len(), 1, "{raised:?}");
        let (at, what, sev) = &raised[0];
        // Opened on the first tick (30 s): 5 min later.
        assert_eq!((*at, *sev), (330_000, crate::incident::Severity::P0));
        assert!(
            what.starts_with("severity P1 -> P0: acknowledge deadline (P1, 5 min) passed"),
            "{what}"
        );
        assert_eq!(deadline_events(dir.path()).len(), 2);
    }
}
