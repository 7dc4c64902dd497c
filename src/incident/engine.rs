//! The incident state machine: per tick, signals in, changes out. Pure logic: no
//! clock of its own (the tick's `now_ms` is the clock, so replay and live agree), no
//! I/O (the ticket desk stores what it returns).
//!
//! Sources of incidents, each with its own slot:
//! - the model (one anomaly slot: one incident per host episode): it opens through the
//!   [`Gate`] and stays open while samples are anomalous (smoothed and raw score);
//! - each capacity forecast (`kind/resource`): opens when the forecaster fires;
//! - each ping target that used to answer and stopped (`ping/<target>`).
//!
//! The fault risk is not a source: it is evidence on the anomaly incident (its
//! severity rules see it). Every slot resolves after `resolve_for` without evidence.
//!
//! One problem, one ticket: when the anomaly's dominant cause moves to another label
//! or resource for `open_for`, the open incident is *superseded*: it ends, saying so,
//! and a new one with its own fingerprint carries the new problem (a remediation rule
//! never runs on a label an incident no longer has, because an incident's label never
//! changes). An anomaly and a forecast about the same thing (the same resource, or
//! memory and a memory/swap forecast) are one episode: whichever opened first gets
//! the other as news, not a second ticket.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::classify::{classify, label_of_feature};
use super::gate::{Gate, Persistence};
use super::severity::{evaluate, Facts};
use super::signals::{AnomalySignal, ForecastSignal, Signals};
use super::{Cause, Change, Class, Incident, IncidentConfig, Label};
use crate::text::{fmt_duration_ms, fmt_quantity};

/// One source of incidents and its open incident.
#[derive(Debug, Default)]
struct Slot {
    open: Option<Live>,
}

#[derive(Debug)]
struct Live {
    incident: Incident,
    last_active_ms: i64,
    flapping: bool,
    /// Features already named in the ticket: a new one in the top three is news.
    reported: HashSet<String>,
    /// The ETA last reported (forecasts): a halving is news.
    reported_eta: Option<f64>,
    /// The highest anomaly score seen: the causes kept are those of the worst moment,
    /// which is what the ticket should show, also after recovery.
    peak: f64,
}

/// A ping target: whether it ever answered (a target that never did is a
/// configuration problem, not an incident), and how long it has been lost.
#[derive(Debug, Default)]
struct Target {
    answered: bool,
    lost: Persistence,
    slot: Slot,
}

/// The anomaly's dominant cause moving elsewhere while its incident is open.
#[derive(Debug, Default)]
struct Moving {
    to: Option<(Label, Option<String>)>,
    held: Persistence,
}

pub struct Engine {
    config: IncidentConfig,
    host: String,
    next_seq: u64,
    anomaly: Slot,
    gate: Gate,
    moving: Moving,
    forecasts: BTreeMap<String, Slot>,
    targets: BTreeMap<String, Target>,
    /// Per fingerprint: when its incidents opened (within the flap window) and the
    /// last one resolved (id, when).
    opens: HashMap<String, VecDeque<i64>>,
    resolved: HashMap<String, (String, i64)>,
}

impl Engine {
    /// `next_seq`: the number the next new incident gets (`INC-<n>`), from the store.
    pub fn new(config: IncidentConfig, host: String, next_seq: u64) -> Engine {
        Engine {
            gate: Gate::new(config.opening.clone()),
            config,
            host,
            next_seq: next_seq.max(1),
            anomaly: Slot::default(),
            moving: Moving::default(),
            forecasts: BTreeMap::new(),
            targets: BTreeMap::new(),
            opens: HashMap::new(),
            resolved: HashMap::new(),
        }
    }

    pub fn reconfigure(&mut self, config: IncidentConfig) {
        self.gate.set_rule(config.opening.clone());
        self.config = config;
    }

    pub fn config(&self) -> &IncidentConfig {
        &self.config
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// A new model is in use: its false-alarm budget multiplier, and the gate forgets
    /// the old model's scores. [`Engine::prime`] then gives it the new model's view of
    /// the recent past.
    pub fn new_model(&mut self, multiplier: f64) {
        self.gate.reset(multiplier);
    }

    /// Feed the gate's recent history without deciding anything: `(timestamp, score /
    /// threshold)` of recent samples scored by the model now in use.
    pub fn prime(&mut self, recent: &[(i64, f64)]) {
        for &(t, ratio) in recent {
            self.gate.observe(t, ratio, false, true);
        }
    }

    /// The level (in units of the threshold) a score has to exceed now to open.
    pub fn opening_level(&self) -> f64 {
        self.gate.level()
    }

    /// Pick up an incident still open in the store (after a restart): it goes on where
    /// it was instead of opening a duplicate.
    /// A replay opens the store before its first row (`now_ms` 0): the incident was
    /// last known active at its last update, not at the epoch (which would resolve
    /// it on the first row, however anomalous).
    pub fn restore(&mut self, incident: Incident, now_ms: i64) {
        let live = Live {
            reported: incident.causes.iter().map(|c| c.feature.clone()).collect(),
            last_active_ms: now_ms.max(incident.updated_ms),
            incident,
            flapping: false,
            reported_eta: None,
            peak: f64::NAN,
        };
        let resource = live.incident.resource.clone().unwrap_or_default();
        match live.incident.class {
            // A risk incident from before risk became evidence: it resolves on its own.
            Class::Anomaly | Class::Risk => self.anomaly.open = Some(live),
            Class::Forecast => {
                // `<host>/forecast/<kind>/…`: the slot key is `<kind>/<resource>`.
                let kind = live
                    .incident
                    .fingerprint
                    .strip_prefix(&format!("{}/forecast/", self.host))
                    .and_then(|k| k.split('/').next())
                    .unwrap_or("bytes")
                    .to_string();
                let k = format!("{kind}/{resource}");
                self.forecasts.entry(k).or_default().open = Some(live);
            }
            Class::Ping => {
                let t = self.targets.entry(resource).or_default();
                t.answered = true;
                t.slot.open = Some(live);
            }
        }
    }

    /// Remember an incident resolved before a restart, for the reopen window and flap
    /// detection.
    pub fn remember(&mut self, fingerprint: &str, id: &str, opened_ms: i64, resolved_ms: i64) {
        self.opens
            .entry(fingerprint.to_string())
            .or_default()
            .push_back(opened_ms);
        let newer = self
            .resolved
            .get(fingerprint)
            .is_none_or(|(_, t)| *t <= resolved_ms);
        if newer {
            self.resolved
                .insert(fingerprint.to_string(), (id.to_string(), resolved_ms));
        }
    }

    /// The open incidents.
    pub fn open(&self) -> impl Iterator<Item = &Incident> {
        self.slots()
            .filter_map(|s| s.open.as_ref().map(|l| &l.incident))
    }

    pub fn is_flapping(&self, id: &str) -> bool {
        self.slots()
            .filter_map(|s| s.open.as_ref())
            .any(|l| l.incident.id == id && l.flapping)
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        std::iter::once(&self.anomaly)
            .chain(self.forecasts.values())
            .chain(self.targets.values().map(|t| &t.slot))
    }

    fn slots_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        std::iter::once(&mut self.anomaly)
            .chain(self.forecasts.values_mut())
            .chain(self.targets.values_mut().map(|t| &mut t.slot))
    }

    /// An operator resolved the ticket: forget the incident. If the problem goes on,
    /// it has to persist again, and opens (or reopens) a ticket.
    pub fn forget(&mut self, id: &str, now_ms: i64) {
        let mut gone = None;
        for slot in self.slots_mut() {
            if slot.open.as_ref().is_some_and(|l| l.incident.id == id) {
                gone = slot.open.take();
            }
        }
        if let Some(l) = gone {
            if l.incident.class == Class::Anomaly {
                self.gate.reset(self.gate.multiplier());
            }
            self.resolved
                .insert(l.incident.fingerprint, (l.incident.id, now_ms));
        }
    }

    /// Raise an open incident's severity one step (P4 -> P3 ...), e.g. because a
    /// remediation failed, or a response deadline passed. `None` if it is not open or
    /// already P0.
    pub fn escalate(&mut self, id: &str, reason: &str, now_ms: i64) -> Option<Change> {
        let live = self
            .slots_mut()
            .filter_map(|s| s.open.as_mut())
            .find(|l| l.incident.id == id)?;
        let up = live.incident.severity.raised()?;
        let what = format!("severity {} -> {up}: {reason}", live.incident.severity);
        live.incident.severity = up;
        live.incident.updated_ms = now_ms;
        Some(Change::Updated {
            incident: live.incident.clone(),
            what,
        })
    }

    /// One tick.
    pub fn tick(&mut self, now_ms: i64, s: &Signals) -> Vec<Change> {
        let mut out = Vec::new();
        if !self.config.enabled {
            return out;
        }
        let ping_loss_all = self.ping_loss_all(s);
        match &s.anomaly {
            Some(a) => self.anomaly_tick(now_ms, a, s, ping_loss_all, &mut out),
            // No model scores (turned off on reload, or learning afresh after a
            // restart): no evidence either, so an open anomaly incident resolves
            // after `resolve_for` instead of staying open with nothing to say.
            None => self.quiet(SlotId::Anomaly, now_ms, &mut out),
        }
        self.forecast_tick(now_ms, s, ping_loss_all, &mut out);
        self.ping_tick(now_ms, s, ping_loss_all, &mut out);
        out
    }

    /// Every target that has answered before lost everything in its last round (and
    /// there is at least one). A target that never answered proves nothing.
    fn ping_loss_all(&mut self, s: &Signals) -> bool {
        for p in &s.ping {
            if p.loss < 1.0 {
                self.targets.entry(p.target.clone()).or_default().answered = true;
            } else {
                self.targets.entry(p.target.clone()).or_default();
            }
        }
        let mut any = false;
        for p in &s.ping {
            if self.targets.get(&p.target).is_some_and(|t| t.answered) {
                if p.loss < 1.0 {
                    return false;
                }
                any = true;
            }
        }
        any
    }

    fn anomaly_tick(
        &mut self,
        now_ms: i64,
        a: &AnomalySignal,
        s: &Signals,
        ping_loss_all: bool,
        out: &mut Vec<Change>,
    ) {
        let open = self.anomaly.open.is_some();
        let gate = self.gate.observe(now_ms, a.ratio(), a.sample_opens, !open);
        let causes: Vec<Cause> = a
            .causes
            .iter()
            .take(self.config.top_causes)
            .cloned()
            .collect();
        let (label, resource) = classify(&causes);
        let ev = Evidence {
            class: Class::Anomaly,
            key: None,
            label,
            resource: resource.clone(),
            title: anomaly_title(label, &self.host, resource.as_deref(), &causes),
            causes,
            facts: Facts {
                class: Class::Anomaly,
                label,
                forecast: None,
                ping_loss_all,
                score_ratio: Some(a.ratio()),
                risk: s.risk,
                anomaly_open: true,
                eta_seconds: None,
            },
            eta: None,
            score: a.score,
        };
        let Some(live) = &self.anomaly.open else {
            self.moving = Moving::default();
            if gate.open {
                self.open_anomaly(ev, now_ms, out);
            }
            return;
        };
        if !a.ongoing() {
            self.moving
                .held
                .observe(now_ms, false, self.gate.rule().open_window);
            self.quiet(SlotId::Anomaly, now_ms, out);
            return;
        }
        // The dominant cause moved to another label or resource: once that has lasted
        // as long as an opening must, it is another problem.
        let here = (live.incident.label, live.incident.resource.clone());
        let there = (ev.label, ev.resource.clone());
        let elsewhere =
            !ev.causes.is_empty() && there != here && live.incident.class == Class::Anomaly;
        if elsewhere && self.moving.to.as_ref() != Some(&there) {
            self.moving = Moving {
                to: Some(there.clone()),
                held: Persistence::default(),
            };
        }
        // Only samples where the new problem is live count (as for an opening): a
        // spike the smoothed score still carries is not a problem that moved.
        let held = self.moving.held.observe(
            now_ms,
            elsewhere && a.sample_opens,
            self.gate.rule().open_window,
        );
        if elsewhere && held >= self.gate.rule().open_for.as_millis() as i64 {
            self.supersede(ev, now_ms, out);
            return;
        }
        self.active(SlotId::Anomaly, &ev, now_ms, out);
    }

    /// Open an anomaly incident, unless a forecast incident about the same thing is
    /// open: then it is news on that one.
    fn open_anomaly(&mut self, ev: Evidence, now_ms: i64, out: &mut Vec<Change>) {
        let related = self
            .forecasts
            .values_mut()
            .chain(self.targets.values_mut().map(|t| &mut t.slot))
            .filter_map(|s| s.open.as_mut())
            .find(|l| same_episode(ev.label, ev.resource.as_deref(), &l.incident));
        if let Some(live) = related {
            {
                let news = ev
                    .causes
                    .iter()
                    .filter(|c| !live.reported.contains(&c.feature))
                    .take(3)
                    .map(|c| c.feature.clone())
                    .collect::<Vec<_>>();
                if !news.is_empty() {
                    live.reported.extend(news.iter().cloned());
                    live.incident.updated_ms = now_ms;
                    out.push(Change::Updated {
                        incident: live.incident.clone(),
                        what: format!("anomalous on the same resource: {}", ev.title),
                    });
                }
            }
            return;
        }
        let change = self.open_incident(SlotId::Anomaly, ev, now_ms);
        out.push(change);
    }

    /// End the open anomaly incident as superseded and open one for `ev`.
    fn supersede(&mut self, ev: Evidence, now_ms: i64, out: &mut Vec<Change>) {
        let Some(mut old) = self.anomaly.open.take() else {
            return;
        };
        self.moving = Moving::default();
        let opened = self.open_incident(SlotId::Anomaly, ev, now_ms);
        let new = opened.incident();
        old.incident.resolved_ms = Some(now_ms);
        old.incident.updated_ms = now_ms;
        self.resolved.insert(
            old.incident.fingerprint.clone(),
            (old.incident.id.clone(), now_ms),
        );
        let by = format!(
            "{}: the problem moved to {}",
            new.id,
            match &new.resource {
                Some(r) => format!("{} ({r})", new.label),
                None => new.label.to_string(),
            }
        );
        out.push(Change::Superseded {
            incident: old.incident,
            by,
        });
        out.push(opened);
    }

    fn forecast_tick(
        &mut self,
        now_ms: i64,
        s: &Signals,
        ping_loss_all: bool,
        out: &mut Vec<Change>,
    ) {
        // Every forecast firing now, then every open one no longer firing.
        let mut seen = HashSet::new();
        for f in &s.forecasts {
            let key = f.key();
            seen.insert(key.clone());
            let ev = self.forecast_evidence(f, s, ping_loss_all);
            let own = self.forecasts.get(&key).is_some_and(|s| s.open.is_some());
            if !own && self.join_anomaly(&key, &ev, now_ms, out) {
                continue;
            }
            self.active(SlotId::Forecast(key), &ev, now_ms, out);
        }
        let cleared: Vec<String> = self
            .forecasts
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in cleared {
            self.quiet(SlotId::Forecast(key.clone()), now_ms, out);
            if self.forecasts.get(&key).is_some_and(|s| s.open.is_none()) {
                self.forecasts.remove(&key);
            }
        }
    }

    /// A forecast or a lost ping target about what the open anomaly incident is about:
    /// news on it (once, and whenever it makes the severity worse), not an incident of
    /// its own. `false` when there is no such anomaly incident.
    fn join_anomaly(
        &mut self,
        key: &str,
        ev: &Evidence,
        now_ms: i64,
        out: &mut Vec<Change>,
    ) -> bool {
        let rules = self.config.severity_rules.clone();
        let Some(live) = &mut self.anomaly.open else {
            return false;
        };
        if !same_episode(ev.label, ev.resource.as_deref(), &live.incident) {
            return false;
        }
        let mut what = Vec::new();
        if live.reported.insert(format!("joined:{key}")) {
            what.push(format!("same episode: {}", ev.title));
        }
        // The episode is as urgent as the worst of its parts.
        let sev = evaluate(&rules, &ev.facts);
        if sev < live.incident.severity {
            what.push(format!("severity {} -> {sev}", live.incident.severity));
            live.incident.severity = sev;
        }
        if !what.is_empty() {
            live.incident.updated_ms = now_ms;
            out.push(Change::Updated {
                incident: live.incident.clone(),
                what: what.join("; "),
            });
        }
        true
    }

    fn forecast_evidence(&self, f: &ForecastSignal, s: &Signals, ping_loss_all: bool) -> Evidence {
        let label = f.label();
        Evidence {
            class: Class::Forecast,
            key: Some(f.key()),
            label,
            resource: Some(f.resource.clone()),
            title: format!(
                "{label}: {} {} in {} on {}",
                f.resource,
                f.what(),
                fmt_duration_ms((f.eta_seconds * 1000.0) as i64),
                self.host
            ),
            causes: f.causes.clone(),
            facts: Facts {
                class: Class::Forecast,
                label,
                forecast: Some(f.level),
                ping_loss_all,
                score_ratio: None,
                risk: s.risk,
                anomaly_open: self.anomaly.open.is_some(),
                eta_seconds: Some(f.eta_seconds),
            },
            eta: Some(f.eta_seconds),
            score: f64::NAN,
        }
    }

    /// Targets that answered before and now lose every packet open an incident once
    /// that has lasted `open_for`; it resolves `resolve_for` after they answer again.
    fn ping_tick(&mut self, now_ms: i64, s: &Signals, ping_loss_all: bool, out: &mut Vec<Change>) {
        let rule = self.gate.rule().clone();
        let anomaly_open = self.anomaly.open.is_some();
        // A target no longer pinged (the config changed) has no evidence either way.
        let gone: Vec<String> = self
            .targets
            .iter()
            .filter(|(k, t)| t.slot.open.is_some() && !s.ping.iter().any(|p| &p.target == *k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.quiet(SlotId::Ping(key), now_ms, out);
        }
        for p in &s.ping {
            let Some(t) = self.targets.get_mut(&p.target) else {
                continue;
            };
            let lost = t.answered && p.loss >= 1.0;
            let held = t.lost.observe(now_ms, lost, rule.open_window);
            let key = p.target.clone();
            if !lost {
                self.quiet(SlotId::Ping(key), now_ms, out);
                continue;
            }
            let open = t.slot.open.is_some();
            if open || held >= rule.open_for.as_millis() as i64 {
                let key = key.clone();
                let ev = Evidence {
                    class: Class::Ping,
                    key: Some(key.clone()),
                    label: Label::Network,
                    resource: Some(key.clone()),
                    title: format!(
                        "network: ping target {key} stopped answering on {}",
                        self.host
                    ),
                    causes: vec![Cause {
                        feature: format!("ping_loss_ratio{{target=\"{key}\"}}"),
                        value: p.loss,
                        baseline: 0.0,
                        contribution: 1.0,
                    }],
                    facts: Facts {
                        class: Class::Ping,
                        label: Label::Network,
                        forecast: None,
                        ping_loss_all,
                        score_ratio: None,
                        risk: s.risk,
                        anomaly_open,
                        eta_seconds: None,
                    },
                    eta: None,
                    score: f64::NAN,
                };
                if !open && self.join_anomaly(&format!("ping/{key}"), &ev, now_ms, out) {
                    continue;
                }
                self.active(SlotId::Ping(key), &ev, now_ms, out);
            }
        }
    }

    fn slot(&mut self, id: &SlotId) -> &mut Slot {
        match id {
            SlotId::Anomaly => &mut self.anomaly,
            SlotId::Forecast(k) => self.forecasts.entry(k.clone()).or_default(),
            SlotId::Ping(k) => &mut self.targets.entry(k.clone()).or_default().slot,
        }
    }

    /// Evidence for a slot this tick: fold it into the open incident, or open one.
    fn active(&mut self, id: SlotId, ev: &Evidence, now_ms: i64, out: &mut Vec<Change>) {
        let rules = self.config.severity_rules.clone();
        if let Some(live) = &mut self.slot(&id).open {
            live.last_active_ms = now_ms;
            if let Some(c) = update(live, ev, &rules, now_ms) {
                out.push(c);
            }
            return;
        }
        let change = self.open_incident(id, ev.clone(), now_ms);
        out.push(change);
    }

    /// A tick without evidence for a slot: it resolves once that has lasted
    /// `resolve_for` (or, flapping, a whole flap window).
    fn quiet(&mut self, id: SlotId, now_ms: i64, out: &mut Vec<Change>) {
        let resolve_ms = self.config.resolve_for.as_millis() as i64;
        let flap_ms = self.config.flap_window.as_millis() as i64;
        let max_opens = self.config.flap_max_opens;
        let fingerprint = {
            let Some(live) = &mut self.slot(&id).open else {
                return;
            };
            // A clock stepped back puts the last evidence in the future: quiet time
            // counts from now, not from when the clock comes back to it.
            live.last_active_ms = live.last_active_ms.min(now_ms);
            if now_ms - live.last_active_ms < resolve_ms {
                return;
            }
            live.incident.fingerprint.clone()
        };
        let recent_opens = self
            .opens
            .get(&fingerprint)
            .map_or(0, |o| o.iter().filter(|t| now_ms - **t < flap_ms).count());
        let slot = self.slot(&id);
        let Some(live) = &mut slot.open else {
            return;
        };
        if max_opens > 0 && recent_opens >= max_opens && !live.flapping {
            live.flapping = true;
            live.incident.updated_ms = now_ms;
            out.push(Change::Updated {
                incident: live.incident.clone(),
                what: format!(
                    "flapping: opened {recent_opens} times within {}; held open until quiet for that long",
                    fmt_duration_ms(flap_ms)
                ),
            });
            return;
        }
        if live.flapping && now_ms - live.last_active_ms < flap_ms {
            return;
        }
        let Some(mut live) = slot.open.take() else {
            return;
        };
        live.incident.resolved_ms = Some(now_ms);
        live.incident.updated_ms = now_ms;
        self.resolved.insert(
            live.incident.fingerprint.clone(),
            (live.incident.id.clone(), now_ms),
        );
        out.push(Change::Resolved(live.incident));
    }

    fn open_incident(&mut self, id: SlotId, ev: Evidence, now_ms: i64) -> Change {
        let fingerprint = fingerprint(&self.host, &ev);
        let window_ms = self.config.reopen_window.as_millis() as i64;
        let flap_ms = self.config.flap_window.as_millis() as i64;
        let reopen = self
            .resolved
            .get(&fingerprint)
            .filter(|(_, at)| window_ms > 0 && now_ms - at < window_ms)
            .map(|(id, _)| id.clone());
        let incident_id = match reopen {
            Some(id) => id,
            None => {
                let id = super::ticket_id(self.next_seq);
                self.next_seq += 1;
                id
            }
        };
        let opens = self.opens.entry(fingerprint.clone()).or_default();
        opens.push_back(now_ms);
        while opens.front().is_some_and(|t| now_ms - t >= flap_ms) {
            opens.pop_front();
        }
        let incident = Incident {
            id: incident_id,
            fingerprint,
            host: self.host.clone(),
            class: ev.class,
            label: ev.label,
            severity: evaluate(&self.config.severity_rules, &ev.facts),
            resource: ev.resource,
            title: ev.title,
            causes: ev.causes,
            opened_ms: now_ms,
            updated_ms: now_ms,
            resolved_ms: None,
        };
        let live = Live {
            reported: incident.causes.iter().map(|c| c.feature.clone()).collect(),
            incident: incident.clone(),
            last_active_ms: now_ms,
            flapping: false,
            reported_eta: ev.eta,
            peak: ev.score,
        };
        self.slot(&id).open = Some(live);
        Change::Opened(incident)
    }
}

/// Whether evidence with `label` about `resource` belongs to the episode of `other`: the
/// same resource, or (memory has no resource of its own) both about memory.
fn same_episode(label: Label, resource: Option<&str>, other: &Incident) -> bool {
    match (resource, other.resource.as_deref()) {
        (Some(a), Some(b)) if a == b => true,
        _ => label == Label::Memory && other.label == Label::Memory,
    }
}

/// The dedup key: host, class, and what the problem is about. Parts are joined with
/// `/` and never empty, so a key never holds `//`.
fn fingerprint(host: &str, ev: &Evidence) -> String {
    let mut parts = vec![host.to_string(), ev.class.to_string()];
    match (&ev.class, &ev.key) {
        (Class::Forecast | Class::Ping, Some(key)) => parts.push(key.clone()),
        (Class::Anomaly, _) => {
            parts.push(ev.label.to_string());
            parts.extend(ev.resource.clone());
        }
        _ => {}
    }
    parts
        .iter()
        .flat_map(|p| p.split('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Debug, Clone)]
enum SlotId {
    Anomaly,
    Forecast(String),
    Ping(String),
}

/// What one active verdict says about its incident.
#[derive(Debug, Clone)]
struct Evidence {
    class: Class,
    /// Forecast slot key (`kind/resource`) or ping target.
    key: Option<String>,
    label: Label,
    resource: Option<String>,
    title: String,
    causes: Vec<Cause>,
    facts: Facts,
    eta: Option<f64>,
    /// Anomaly score (NaN for other classes: their evidence is always the latest).
    score: f64,
}

/// Fold an active tick into an open incident; a change when something is worth a
/// ticket update: a worse severity, a new top cause, an ETA halved. The label and
/// fingerprint stay those of the opening (they name the problem).
fn update(
    live: &mut Live,
    ev: &Evidence,
    rules: &[super::SeverityRule],
    now_ms: i64,
) -> Option<Change> {
    let mut what = Vec::new();
    let mut facts = ev.facts.clone();
    facts.label = live.incident.label;
    let sev = evaluate(rules, &facts);
    if sev < live.incident.severity {
        let why = match facts.risk {
            Some(r) if live.incident.class == Class::Anomaly => {
                format!(" (fault risk {:.0} %)", r * 100.0)
            }
            _ => String::new(),
        };
        what.push(format!("severity {} -> {sev}{why}", live.incident.severity));
        live.incident.severity = sev;
    }
    // A new cause is news when it weighs: at least a tenth of the worst score seen
    // (not the small contributions that stand out while a score decays).
    let weighs = |c: &Cause| live.peak.is_nan() || c.contribution >= 0.1 * live.peak;
    let new: Vec<&str> = ev
        .causes
        .iter()
        .take(3)
        .filter(|c| weighs(c) && !live.reported.contains(&c.feature))
        .map(|c| c.feature.as_str())
        .collect();
    if !new.is_empty() {
        what.push(format!("new top causes: {}", new.join(", ")));
        live.reported.extend(new.iter().map(|f| f.to_string()));
    }
    if let (Some(eta), Some(old)) = (ev.eta, live.reported_eta) {
        if eta < old / 2.0 {
            what.push(format!(
                "ETA now {} (was {})",
                fmt_duration_ms((eta * 1000.0) as i64),
                fmt_duration_ms((old * 1000.0) as i64)
            ));
            live.reported_eta = Some(eta);
        }
    }
    // The evidence is refreshed (anomalies: at a new peak); only news is reported.
    let worse = ev.score.is_nan() || live.peak.is_nan() || ev.score >= live.peak;
    if worse && !ev.causes.is_empty() {
        live.incident.causes = ev.causes.clone();
        if !ev.score.is_nan() {
            live.peak = ev.score;
        }
    }
    if live.incident.class != Class::Anomaly {
        live.incident.title = ev.title.clone();
    }
    if what.is_empty() {
        return None;
    }
    live.incident.updated_ms = now_ms;
    Some(Change::Updated {
        incident: live.incident.clone(),
        what: what.join("; "),
    })
}

fn anomaly_title(label: Label, host: &str, resource: Option<&str>, causes: &[Cause]) -> String {
    let on = match resource {
        Some(r) => format!("{host} ({r})"),
        None => host.to_string(),
    };
    // The cause named is the largest of the incident's own label: a cpu incident
    // whose single largest cause is a network metric (two cpu metrics outweigh it)
    // must not read "cpu anomaly: tcp_connections_established".
    let named = causes
        .iter()
        .find(|c| label_of_feature(&c.feature) == label)
        .or(causes.first());
    match named {
        Some(c) => format!(
            "{label} anomaly on {on}: {} {} (normal {})",
            c.feature,
            fmt_quantity(&c.feature, c.value),
            fmt_quantity(&c.feature, c.baseline)
        ),
        None => format!("{label} anomaly on {on}"),
    }
}

#[cfg(test)]
mod tests;
