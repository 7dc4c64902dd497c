//! Response levels: per severity, how long a ticket may wait for an acknowledgement
//! and for its resolution, and what happens as each deadline nears and passes.
//!
//! The deadlines count from the ticket's first opening on the pipeline's clock (the
//! tick's time, so a replay measures them on the replayed time), with the deadlines
//! of the ticket's severity *now* (an escalated ticket gets the shorter ones). Each
//! deadline gives at most two timeline events per ticket: `warning` when
//! `warn_at` of it is gone, `breach` when it has passed (a breach found late, after a
//! restart, is said without the warning before it). They are timeline events in the
//! store, so a restart does not say them again ([`due`] gets the ones already said).
//! An acknowledgement stops the acknowledgement clock for good; resolving stops both.
//! Muted tickets (silenced, probation) have no deadlines: nobody was told of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_yaml::Value;

use crate::config::reader::{show, Reader, Section};
use crate::incident::Severity;
use crate::text::fmt_duration_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Deadline {
    Acknowledge,
    Resolve,
}

impl Deadline {
    pub const ALL: [Deadline; 2] = [Deadline::Acknowledge, Deadline::Resolve];

    pub fn as_str(self) -> &'static str {
        match self {
            Deadline::Acknowledge => "acknowledge",
            Deadline::Resolve => "resolve",
        }
    }

    pub fn parse(s: &str) -> Option<Deadline> {
        Deadline::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// `warn_at` of the deadline is gone.
    Warning,
    /// The deadline has passed: an SLA breach.
    Breach,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Warning => "warning",
            Stage::Breach => "breach",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        [Stage::Warning, Stage::Breach]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// What a deadline event does besides going on the timeline and to the sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing more: the event is the re-notification.
    Notify,
    /// Raise the incident's severity one level (P1 -> P0), an update of its own.
    Escalate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub acknowledge: Duration,
    pub resolve: Duration,
}

impl Level {
    pub fn limit(&self, d: Deadline) -> Duration {
        match d {
            Deadline::Acknowledge => self.acknowledge,
            Deadline::Resolve => self.resolve,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseConfig {
    pub enabled: bool,
    /// Share of a deadline after which the warning event comes (0.8: at 80 %).
    pub warn_at: f64,
    pub on_warning: Action,
    pub on_breach: Action,
    /// Per severity, P0 first.
    pub levels: [Level; 5],
}

const MIN: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn level(ack: u64, resolve: u64) -> Level {
    Level {
        acknowledge: Duration::from_secs(ack),
        resolve: Duration::from_secs(resolve),
    }
}

impl Default for ResponseConfig {
    /// P0 15 min / 2 h and P1 5 min / 4 h (the levels sold for outages and urgent
    /// faults); P2 30 min / 1 d, P3 4 h / 3 d, P4 1 d / 7 d: business hours, then
    /// "this week".
    fn default() -> Self {
        ResponseConfig {
            enabled: true,
            warn_at: 0.8,
            on_warning: Action::Notify,
            on_breach: Action::Notify,
            levels: [
                level(15 * MIN, 2 * HOUR),
                level(5 * MIN, 4 * HOUR),
                level(30 * MIN, DAY),
                level(4 * HOUR, 3 * DAY),
                level(DAY, 7 * DAY),
            ],
        }
    }
}

impl ResponseConfig {
    pub fn level(&self, s: Severity) -> Level {
        self.levels[s as usize]
    }

    /// What an event at `stage` does.
    pub fn action(&self, stage: Stage) -> Action {
        match stage {
            Stage::Warning => self.on_warning,
            Stage::Breach => self.on_breach,
        }
    }
}

/// One deadline event that is due now.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub deadline: Deadline,
    pub stage: Stage,
    /// When the stage was reached (the warning point or the deadline itself).
    pub due_ms: i64,
    pub limit: Duration,
}

/// The deadline events due at `now_ms` for a ticket of `severity` opened at
/// `opened_ms`, given those already `said`: a breach replaces a warning not yet said
/// (one event, not two in the same tick).
pub fn due(
    cfg: &ResponseConfig,
    severity: Severity,
    opened_ms: i64,
    acked: bool,
    said: &[(Deadline, Stage)],
    now_ms: i64,
) -> Vec<Due> {
    let mut out = Vec::new();
    if !cfg.enabled {
        return out;
    }
    let lv = cfg.level(severity);
    for d in Deadline::ALL {
        if d == Deadline::Acknowledge && acked {
            continue;
        }
        let limit = lv.limit(d);
        let ms = limit.as_millis() as i64;
        let breach_at = opened_ms + ms;
        let warn_at = opened_ms + (ms as f64 * cfg.warn_at).round() as i64;
        let has = |s: Stage| said.contains(&(d, s));
        if has(Stage::Breach) {
            continue;
        }
        let stage = if now_ms >= breach_at {
            Stage::Breach
        } else if now_ms >= warn_at && !has(Stage::Warning) {
            Stage::Warning
        } else {
            continue;
        };
        out.push(Due {
            deadline: d,
            stage,
            due_ms: if stage == Stage::Breach {
                breach_at
            } else {
                warn_at
            },
            limit,
        });
    }
    out
}

/// The timeline line of a deadline event.
pub fn summary(d: &Due, severity: Severity, opened_ms: i64) -> String {
    let limit = fmt_duration_ms(d.limit.as_millis() as i64);
    let what = match d.deadline {
        Deadline::Acknowledge => "not acknowledged",
        Deadline::Resolve => "not resolved",
    };
    match d.stage {
        Stage::Warning => format!(
            "{} deadline ({severity}, {limit}) in {}: {what}",
            d.deadline.as_str(),
            fmt_duration_ms(opened_ms + d.limit.as_millis() as i64 - d.due_ms)
        ),
        Stage::Breach => format!(
            "{} deadline ({severity}, {limit}) passed: {what}",
            d.deadline.as_str()
        ),
    }
}

/// A ticket's clocks as the daemon follows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clock {
    pub opened_ms: i64,
    /// The first acknowledgement, if any.
    pub acked_ms: Option<i64>,
    pub said: Vec<(Deadline, Stage)>,
}

/// Since the daemon started: breaches counted, and response times not yet exported
/// (histograms take each observation once).
#[derive(Debug, Default)]
pub struct Tally {
    pub clocks: HashMap<String, Clock>,
    breaches: BTreeMap<(Severity, Deadline), u64>,
    pending: Mutex<Vec<(Severity, Deadline, f64)>>,
}

impl Tally {
    pub fn breach(&mut self, s: Severity, d: Deadline) {
        *self.breaches.entry((s, d)).or_default() += 1;
    }

    /// A ticket of severity `s` was acknowledged or resolved after `ms`.
    pub fn took(&self, s: Severity, d: Deadline, ms: i64) {
        if let Ok(mut p) = self.pending.lock() {
            p.push((s, d, ms.max(0) as f64 / 1000.0));
        }
    }

    /// `sla_breaches_total{severity,deadline}` and the
    /// `ticket_time_to_{acknowledge,resolve}_seconds{severity}` histograms (every
    /// series, so a dashboard sees zeros rather than nothing).
    pub fn export(&self, sample: &mut crate::sample::Sample) {
        let pending = self
            .pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        for s in Severity::ALL {
            for d in Deadline::ALL {
                sample.counter(
                    "sla_breaches_total",
                    "Response deadlines passed since the daemon started, by the ticket's severity and the deadline (acknowledge, resolve)",
                    &[("severity", s.as_str()), ("deadline", d.as_str())],
                    self.breaches.get(&(*s, d)).copied().unwrap_or(0) as f64,
                );
            }
            let took = |d: Deadline| -> Vec<f64> {
                pending
                    .iter()
                    .filter(|(ps, pd, _)| ps == s && *pd == d)
                    .map(|(_, _, v)| *v)
                    .collect()
            };
            sample.observe(
                "ticket_time_to_acknowledge_seconds",
                "Time from a ticket's opening to its first acknowledgement, by severity, for tickets acknowledged since the daemon started",
                &[("severity", s.as_str())],
                took(Deadline::Acknowledge),
            );
            sample.observe(
                "ticket_time_to_resolve_seconds",
                "Time from a ticket's opening to its resolution, by severity, for tickets resolved since the daemon started",
                &[("severity", s.as_str())],
                took(Deadline::Resolve),
            );
        }
    }
}

fn action(r: &mut Reader, s: &Section, key: &str, default: Action) -> Action {
    let d = match default {
        Action::Notify => "notify",
        Action::Escalate => "escalate",
    };
    match s.one_of(r, key, &["notify", "escalate"], d).as_str() {
        "escalate" => Action::Escalate,
        _ => Action::Notify,
    }
}

/// Read `tickets.response`; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> ResponseConfig {
    let d = ResponseConfig::default();
    let s = r.section(
        v,
        path,
        &["enabled", "warn_at", "on_warning", "on_breach", "levels"],
    );
    let names: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let lv = r.section(s.get("levels"), &s.path("levels"), &names);
    let mut levels = d.levels;
    for sev in Severity::ALL {
        let key = sev.as_str();
        let p = lv.path(key);
        if let Some(v) = lv.get(key) {
            if !matches!(v, Value::Mapping(_)) {
                r.error(
                    &p,
                    format!(
                        "expected {{acknowledge: <duration>, resolve: <duration>}}, got {}",
                        show(v)
                    ),
                );
                continue;
            }
        }
        let l = r.section(lv.get(key), &p, &["acknowledge", "resolve"]);
        let def = d.levels[*sev as usize];
        let (lo, hi) = (Duration::from_secs(MIN), Duration::from_secs(90 * DAY));
        let ack = l.duration(r, "acknowledge", def.acknowledge, lo, hi);
        let resolve = l.duration(r, "resolve", def.resolve, lo, hi);
        if ack > resolve {
            r.error(
                &l.path("acknowledge"),
                format!(
                    "{} is longer than resolve ({}): a ticket cannot be resolved before it is acknowledged",
                    crate::text::fmt_duration(ack),
                    crate::text::fmt_duration(resolve)
                ),
            );
        }
        levels[*sev as usize] = Level {
            acknowledge: ack,
            resolve,
        };
    }
    ResponseConfig {
        enabled: s.bool(r, "enabled", d.enabled),
        warn_at: s.float(r, "warn_at", d.warn_at, 0.01, 0.99),
        on_warning: action(r, &s, "on_warning", d.on_warning),
        on_breach: action(r, &s, "on_breach", d.on_breach),
        levels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    #[test]
    fn defaults_are_the_documented_levels() {
        let c = ResponseConfig::default();
        assert_eq!(c.level(Severity::P0), level(15 * MIN, 2 * HOUR));
        assert_eq!(c.level(Severity::P1), level(5 * MIN, 4 * HOUR));
        assert_eq!(c.level(Severity::P4), level(DAY, 7 * DAY));
    }

    #[test]
    fn warning_then_breach_once_each_and_ack_stops_its_clock() {
        let c = ResponseConfig::default();
        let p1 = Severity::P1;
        assert!(due(&c, p1, 0, false, &[], 4 * M - 1).is_empty());
        let w = due(&c, p1, 0, false, &[], 4 * M);
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].deadline, w[0].stage),
            (Deadline::Acknowledge, Stage::Warning)
        );
        assert_eq!(w[0].due_ms, 4 * M);
        let said = [(Deadline::Acknowledge, Stage::Warning)];
        assert!(due(&c, p1, 0, false, &said, 5 * M - 1).is_empty());
        let b = due(&c, p1, 0, false, &said, 5 * M);
        assert_eq!(
            (b[0].deadline, b[0].stage),
            (Deadline::Acknowledge, Stage::Breach)
        );
        let said = [
            (Deadline::Acknowledge, Stage::Warning),
            (Deadline::Acknowledge, Stage::Breach),
        ];
        assert!(due(&c, p1, 0, false, &said, 60 * M).is_empty(), "said once");
        // Acknowledged: no acknowledgement events, the resolution clock goes on.
        assert!(due(&c, p1, 0, true, &[], 5 * M).is_empty());
        let r = due(&c, p1, 0, true, &[], 4 * 60 * M);
        assert_eq!(
            (r[0].deadline, r[0].stage),
            (Deadline::Resolve, Stage::Breach)
        );
        assert_eq!(r.len(), 1, "the breach found late replaces its warning");
    }

    #[test]
    fn off_means_no_events() {
        let c = ResponseConfig {
            enabled: false,
            ..Default::default()
        };
        assert!(due(&c, Severity::P0, 0, false, &[], 1000 * M).is_empty());
    }

    #[test]
    fn config_reads_levels_and_rejects_bad_values_at_their_path() {
        let parse = |yaml: &str| {
            let v: Value = serde_yaml::from_str(yaml).expect("yaml");
            let mut r = Reader::default();
            let c = parse_config(&mut r, Some(&v), "tickets.response");
            (c, r.errors.join("\n"))
        };
        let (c, errors) = parse(
            "warn_at: 0.5\non_breach: escalate\nlevels:\n  P2: {acknowledge: 10m, resolve: 2h}\n",
        );
        assert_eq!(errors, "");
        assert_eq!(c.warn_at, 0.5);
        assert_eq!(c.on_breach, Action::Escalate);
        assert_eq!(c.on_warning, Action::Notify);
        assert_eq!(c.level(Severity::P2), level(10 * MIN, 2 * HOUR));
        assert_eq!(c.level(Severity::P1), level(5 * MIN, 4 * HOUR));
        let (_, errors) = parse(
            "warn_at: 1.5\non_breach: page\nlevels:\n  P5: {acknowledge: 1m}\n  \
             P1: {acknowledge: 5h, resolve: 4h}\n  P3: {acknowledge: 10s}\n  P4: 3h\n",
        );
        for want in [
            "tickets.response.warn_at: 1.5 is out of range",
            "tickets.response.on_breach: \"page\" is not one of",
            "tickets.response.levels.P5: unknown key",
            "tickets.response.levels.P1.acknowledge: 5h is longer than resolve (4h)",
            "tickets.response.levels.P3.acknowledge: \"10s\" is out of range",
            "tickets.response.levels.P4: expected {acknowledge",
        ] {
            assert!(errors.contains(want), "{want}\nnot in\n{errors}");
        }
    }
}
