//! The incident state machine: per tick, signals in, changes out. Pure logic: no
//! clock of its own (the tick's `now_ms` is the clock, so replay and live agree), no
//! I/O (the ticket desk stores what it returns).

use super::classify::classify;
use super::severity::{evaluate, Facts};
use super::{Cause, Change, Class, ForecastLevel, Incident, IncidentConfig, Label, Severity};
use crate::model::{Model, Score};
use crate::sample::Record;
use crate::text::{fmt_duration_ms, fmt_value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Everything the engine looks at in one tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// The model's verdict; `None` while there is no model (nothing is learnt then,
    /// and an open anomaly incident neither grows nor resolves).
    pub anomaly: Option<AnomalySignal>,
    /// The capacity forecasts firing now: every tick, all of them. One that is no
    /// longer listed counts as cleared.
    pub forecasts: Vec<ForecastSignal>,
    /// Fault-risk probability, 0..1, when the forecaster computes one.
    pub risk: Option<f64>,
    /// Every ping target lost every packet of its last round.
    pub ping_loss_all: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnomalySignal {
    pub score: f64,
    pub threshold: f64,
    /// The smoothed decision (`Score::anomaly`): what opens an incident.
    pub anomalous: bool,
    /// The sample is anomalous on its own too (`Score::counts_for_incident`): what
    /// keeps an open incident going. The smoothed score decays for dozens of samples
    /// after a large spike; the incident must end when the host is normal again.
    pub ongoing: bool,
    /// Top contributing features with value and baseline, largest first.
    pub causes: Vec<Cause>,
}

impl AnomalySignal {
    /// The model's verdict on `record` with its `top` causes (those with at least 5%
    /// of the score), each with its value now and the model's expectation for it.
    ///
    /// On a normal sample (the usual tick) the causes are left empty: the engine only
    /// reads evidence from anomalous samples, and the baselines cost a second pass
    /// over the model on the sampling path.
    pub fn from_score(model: &Model, score: &Score, record: &Record, top: usize) -> AnomalySignal {
        let mut signal = AnomalySignal {
            score: score.value,
            threshold: model.threshold(),
            anomalous: score.anomaly,
            ongoing: score.counts_for_incident(),
            causes: Vec::new(),
        };
        if !signal.anomalous {
            return signal;
        }
        let names = model.schema();
        let expected = model.expected(record);
        // Metrics with a negligible share are noise, not causes (the first always counts).
        let floor = 0.05 * score.value;
        let causes = score
            .contributions
            .iter()
            .take(top)
            .enumerate()
            .filter(|(rank, (_, c))| *rank == 0 || *c >= floor)
            .map(|(_, &(i, contribution))| {
                let feature = names[i].clone();
                let value = record
                    .values
                    .iter()
                    .find(|(n, _)| *n == feature)
                    .map_or(f64::NAN, |(_, v)| *v);
                Cause {
                    feature,
                    value,
                    baseline: expected.get(i).copied().unwrap_or(f64::NAN),
                    contribution,
                }
            })
            .collect();
        signal.causes = causes;
        signal
    }
}

impl Signals {
    /// Whether every ping target in `record` lost every packet of its last round
    /// (false when no target is pinged).
    pub fn ping_loss_all_in(record: &Record) -> bool {
        let mut any = false;
        for (n, v) in &record.values {
            if n.starts_with("ping_loss_ratio{") {
                any = true;
                if *v < 1.0 {
                    return false;
                }
            }
        }
        any
    }
}

/// One firing capacity forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastSignal {
    /// Mount point for `bytes`/`inodes`; `memory` or `swap` for those kinds.
    pub resource: String,
    /// `bytes`, `inodes`, `memory` or `swap`.
    pub kind: String,
    pub level: ForecastLevel,
    /// Time until the resource runs out.
    pub eta_seconds: f64,
    /// Evidence (e.g. the free space now and its trend), shown in the report.
    pub causes: Vec<Cause>,
}

impl ForecastSignal {
    fn key(&self) -> String {
        format!("{}/{}", self.kind, self.resource)
    }
    fn label(&self) -> Label {
        match self.kind.as_str() {
            "memory" | "swap" => Label::Memory,
            _ => Label::Storage,
        }
    }
    fn what(&self) -> &'static str {
        match self.kind.as_str() {
            "bytes" => "full",
            "inodes" => "out of inodes",
            "memory" => "out of memory",
            "swap" => "out of swap",
            _ => "exhausted",
        }
    }
}

/// One source of incidents (the model, the risk, one forecast) and its open incident.
#[derive(Debug, Default)]
struct Slot {
    /// The last `open_window` verdicts (anomaly and risk only).
    window: VecDeque<bool>,
    open: Option<Live>,
    /// Anomaly only: resolved while the smoothed score is still above the threshold.
    /// Until it drops to [`TAIL_END`] × threshold, only samples anomalous on their
    /// own count, so the decaying average does not reopen what just ended.
    tail: bool,
}

/// Where the smoothed score's tail after an anomaly incident ends, as a share of the
/// threshold.
const TAIL_END: f64 = 0.5;

#[derive(Debug)]
struct Live {
    incident: Incident,
    /// Consecutive normal ticks.
    normal_run: usize,
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

pub struct Engine {
    config: IncidentConfig,
    host: String,
    next_seq: u64,
    anomaly: Slot,
    risk: Slot,
    forecasts: BTreeMap<String, Slot>,
    /// Per fingerprint: when its incidents opened (within the flap window) and the
    /// last one resolved (id, when).
    opens: HashMap<String, VecDeque<i64>>,
    resolved: HashMap<String, (String, i64)>,
}

impl Engine {
    /// `next_seq`: the number the next new incident gets (`INC-<n>`), from the store.
    pub fn new(config: IncidentConfig, host: String, next_seq: u64) -> Engine {
        Engine {
            config,
            host,
            next_seq: next_seq.max(1),
            anomaly: Slot::default(),
            risk: Slot::default(),
            forecasts: BTreeMap::new(),
            opens: HashMap::new(),
            resolved: HashMap::new(),
        }
    }

    pub fn reconfigure(&mut self, config: IncidentConfig) {
        self.config = config;
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Pick up an incident still open in the store (after a restart): it goes on where
    /// it was instead of opening a duplicate.
    pub fn restore(&mut self, incident: Incident, now_ms: i64) {
        let live = Live {
            reported: incident.causes.iter().map(|c| c.feature.clone()).collect(),
            incident,
            normal_run: 0,
            last_active_ms: now_ms,
            flapping: false,
            reported_eta: None,
            peak: f64::NAN,
        };
        let slot = match live.incident.class {
            Class::Anomaly => &mut self.anomaly,
            Class::Risk => &mut self.risk,
            Class::Forecast => {
                let prefix = format!("{}/forecast/", self.host);
                let key = live
                    .incident
                    .fingerprint
                    .strip_prefix(&prefix)
                    .unwrap_or(&live.incident.fingerprint)
                    .to_string();
                self.forecasts.entry(key).or_default()
            }
        };
        slot.open = Some(live);
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
        [&self.anomaly, &self.risk]
            .into_iter()
            .chain(self.forecasts.values())
    }

    fn slots_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        [&mut self.anomaly, &mut self.risk]
            .into_iter()
            .chain(self.forecasts.values_mut())
    }

    /// An operator resolved the ticket: forget the incident. If the problem goes on,
    /// it has to be debounced again, and opens (or reopens) a ticket.
    pub fn forget(&mut self, id: &str, now_ms: i64) {
        let mut gone = None;
        for slot in self.slots_mut() {
            if slot.open.as_ref().is_some_and(|l| l.incident.id == id) {
                gone = slot.open.take();
                slot.window.clear();
            }
        }
        if let Some(l) = gone {
            self.resolved
                .insert(l.incident.fingerprint, (l.incident.id, now_ms));
        }
    }

    /// Raise an open incident's severity one step (P4 -> P3 ...), e.g. because a
    /// remediation failed. `None` if it is not open or already P1.
    pub fn escalate(&mut self, id: &str, reason: &str, now_ms: i64) -> Option<Change> {
        let live = self
            .slots_mut()
            .filter_map(|s| s.open.as_mut())
            .find(|l| l.incident.id == id)?;
        let up = match live.incident.severity {
            Severity::P1 => return None,
            Severity::P2 => Severity::P1,
            Severity::P3 => Severity::P2,
            Severity::P4 => Severity::P3,
        };
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
        if let Some(a) = &s.anomaly {
            let causes: Vec<Cause> = a
                .causes
                .iter()
                .take(self.config.top_causes)
                .cloned()
                .collect();
            let (label, resource) = classify(&causes);
            let ratio = (a.threshold > 0.0).then(|| a.score / a.threshold);
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
                    ping_loss_all: s.ping_loss_all,
                    score_ratio: ratio,
                },
                eta: None,
                score: a.score,
            };
            let slot = &mut self.anomaly;
            // Well below, not just below: a decaying average oscillates around the
            // threshold for a while. Until then only samples anomalous on their own
            // open (a real recurrence still does).
            if a.score < TAIL_END * a.threshold {
                slot.tail = false;
            }
            let was_open = slot.open.is_some();
            let active = if was_open || slot.tail {
                a.ongoing
            } else {
                a.anomalous
            };
            self.step(SlotId::Anomaly, active, true, ev, now_ms, &mut out);
            // Resolved this tick with the average still high: the tail starts.
            if was_open && self.anomaly.open.is_none() && a.anomalous {
                self.anomaly.tail = true;
            }
        }
        if let Some(p) = s.risk {
            let active = p >= self.config.risk_threshold;
            let ev = Evidence {
                class: Class::Risk,
                key: None,
                label: Label::Other,
                resource: None,
                title: format!("fault risk {:.0}% on {}", p * 100.0, self.host),
                causes: Vec::new(),
                facts: Facts {
                    class: Class::Risk,
                    label: Label::Other,
                    forecast: None,
                    ping_loss_all: s.ping_loss_all,
                    score_ratio: None,
                },
                eta: None,
                score: f64::NAN,
            };
            self.step(SlotId::Risk, active, true, ev, now_ms, &mut out);
        }
        // Forecasts: every one firing now, then every open one no longer firing.
        let mut seen = HashSet::new();
        for f in &s.forecasts {
            let key = f.key();
            seen.insert(key.clone());
            let label = f.label();
            let ev = Evidence {
                class: Class::Forecast,
                key: Some(key.clone()),
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
                    ping_loss_all: s.ping_loss_all,
                    score_ratio: None,
                },
                eta: Some(f.eta_seconds),
                score: f64::NAN,
            };
            self.step(SlotId::Forecast(key), true, false, ev, now_ms, &mut out);
        }
        let cleared: Vec<String> = self
            .forecasts
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in cleared {
            self.quiet(SlotId::Forecast(key.clone()), now_ms, &mut out);
            if self.forecasts.get(&key).is_some_and(|s| s.open.is_none()) {
                self.forecasts.remove(&key);
            }
        }
        out
    }

    fn slot(&mut self, id: &SlotId) -> &mut Slot {
        match id {
            SlotId::Anomaly => &mut self.anomaly,
            SlotId::Risk => &mut self.risk,
            SlotId::Forecast(k) => self.forecasts.entry(k.clone()).or_default(),
        }
    }

    /// One verdict for one slot. `debounce`: open only after N of the last M are active.
    fn step(
        &mut self,
        id: SlotId,
        active: bool,
        debounce: bool,
        ev: Evidence,
        now_ms: i64,
        out: &mut Vec<Change>,
    ) {
        let (n, m) = (self.config.open_after, self.config.open_window);
        let slot = self.slot(&id);
        if debounce {
            slot.window.push_back(active);
            while slot.window.len() > m {
                slot.window.pop_front();
            }
        }
        if !active {
            self.quiet(id, now_ms, out);
            return;
        }
        let rules = self.config.severity_rules.clone();
        let slot = self.slot(&id);
        if let Some(live) = &mut slot.open {
            live.normal_run = 0;
            live.last_active_ms = now_ms;
            if let Some(c) = update(live, &ev, &rules, now_ms) {
                out.push(c);
            }
            return;
        }
        let due = !debounce || slot.window.iter().filter(|a| **a).count() >= n;
        if due {
            let change = self.open_incident(&id, ev, &rules, now_ms);
            out.push(change);
        }
    }

    /// A normal tick for a slot: count towards resolving its incident.
    fn quiet(&mut self, id: SlotId, now_ms: i64, out: &mut Vec<Change>) {
        let k = self.config.resolve_after;
        let flap_ms = self.config.flap_window.as_millis() as i64;
        let max_opens = self.config.flap_max_opens;
        let slot = self.slot(&id);
        let Some(live) = &mut slot.open else {
            return;
        };
        live.normal_run += 1;
        if live.normal_run < k {
            return;
        }
        let fp = live.incident.fingerprint.clone();
        let recent_opens = self
            .opens
            .get(&fp)
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
        slot.window.clear();
        live.incident.resolved_ms = Some(now_ms);
        live.incident.updated_ms = now_ms;
        self.resolved.insert(
            live.incident.fingerprint.clone(),
            (live.incident.id.clone(), now_ms),
        );
        out.push(Change::Resolved(live.incident));
    }

    fn open_incident(
        &mut self,
        id: &SlotId,
        ev: Evidence,
        rules: &[super::SeverityRule],
        now_ms: i64,
    ) -> Change {
        let fingerprint = match (&ev.class, &ev.key) {
            (Class::Forecast, Some(key)) => format!("{}/forecast/{key}", self.host),
            (Class::Anomaly, _) => match &ev.resource {
                Some(r) => format!("{}/anomaly/{}/{r}", self.host, ev.label),
                None => format!("{}/anomaly/{}", self.host, ev.label),
            },
            (class, _) => format!("{}/{class}", self.host),
        };
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
            severity: evaluate(rules, &ev.facts),
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
            normal_run: 0,
            last_active_ms: now_ms,
            flapping: false,
            reported_eta: ev.eta,
            peak: ev.score,
        };
        self.slot(id).open = Some(live);
        Change::Opened(incident)
    }
}

#[derive(Debug, Clone)]
enum SlotId {
    Anomaly,
    Risk,
    Forecast(String),
}

/// What one active verdict says about its incident.
struct Evidence {
    class: Class,
    /// Forecast slot key (`kind/resource`).
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
        what.push(format!("severity {} -> {sev}", live.incident.severity));
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
    match causes.first() {
        Some(c) => format!(
            "{label} anomaly on {on}: {} {} (normal {})",
            c.feature,
            fmt_value(c.value),
            fmt_value(c.baseline)
        ),
        None => format!("{label} anomaly on {on}"),
    }
}

#[cfg(test)]
mod tests;
