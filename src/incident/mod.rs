//! Anomaly decisions, forecasts and fault risk -> incidents.
//!
//! The [`Engine`] gets one [`Signals`] per tick (live and replay alike, with the tick's
//! own clock) and answers with [`Change`]s: an incident opened, updated (worse
//! severity, new top causes, new ETA), resolved or superseded. An anomaly opens
//! through the [`gate`] (persistence in time, standing out from the recent past, the
//! false-alarm budget's multiplier from [`calibrate`]); the engine deduplicates by
//! fingerprint (host + class + label/resource), waits `resolve_for` without evidence
//! before resolving (slow recovery), reopens the same incident when a
//! fingerprint comes back within the reopen window, and holds a flapping incident
//! open instead of opening and closing it over and over. Each incident gets a label
//! from its top causes ([`classify`]) and a severity from the configured rules
//! ([`severity`]). Silences ([`silence`]) are defined here and applied downstream, by
//! the ticket desk: a silenced incident is still recorded, its ticket muted (see
//! `tickets/desk.rs`). Ticket ids (`INC-<n>`) are the incidents' ids.
//!
//! How to raise N distinct incidents on purpose (used by the outbox fault tests):
//! replay a CSV with a normal stretch long enough to train on, then N short strong
//! bursts separated by normal gaps, with a config whose `incidents.reopen_window` is
//! `0s` and `incidents.flap_max_opens` is `0` (so every burst opens a new incident and
//! a new ticket rather than reopening or holding the last one), e.g.
//! `anomalyd replay --input bursts.csv --config c.yaml --state-dir DIR`. Each burst
//! becomes one ticket `INC-<n>` in `DIR/tickets.db`, with one `Open` delivery (and one
//! `Resolve`). `tests/common/bursts.rs` writes such a CSV and config
//! (`bursts::write(dir, n, extra_yaml)`, e.g. with a `tickets:` section naming the
//! sinks), and `tests/it/tickets.rs` checks it gives exactly `n` (100 in about a second).

pub mod calibrate;
pub mod classify;
pub mod engine;
pub mod gate;
pub mod severity;
pub mod signals;
mod silence;
mod types;

use std::time::Duration;

use serde_yaml::Value;

use crate::config::reader::show;
use crate::config::reader::Reader;

pub use calibrate::{Budget, Calibration};
pub use engine::Engine;
pub use gate::OpeningRule;
pub use severity::{Conditions, SeverityRule};
pub use signals::{AnomalySignal, ForecastSignal, PingSignal, Signals};
use silence::parse_silence;
pub use silence::{Matchers, Silence};
pub use types::{
    ticket_id, ticket_seq, Cause, Change, Class, ForecastLevel, Incident, Label, Severity,
};

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentConfig {
    /// Turn anomalies and forecasts into incidents and tickets at all.
    pub enabled: bool,
    /// Host name in fingerprints and titles; `None`: the system's host name.
    pub host: Option<String>,
    /// When an anomaly opens an incident: persistence, the recent level (see
    /// [`gate`]). Ping targets use the same persistence.
    pub opening: OpeningRule,
    /// At most this many anomaly incidents per period on the host's own history: the
    /// threshold multiplier calibrated at each training ([`calibrate`]).
    pub false_alarm_budget: Budget,
    /// Resolve once this long has passed without evidence (slow recovery).
    pub resolve_for: Duration,
    /// A problem (same fingerprint) that comes back within this time of being resolved
    /// reopens its incident and ticket instead of opening new ones. 0: never.
    pub reopen_window: Duration,
    /// An incident that opened this many times within `flap_window` is flapping: it is
    /// held open (one ticket, marked flapping) until it has been quiet for a whole
    /// `flap_window`. 0: no flap detection.
    pub flap_max_opens: usize,
    pub flap_window: Duration,
    /// Causes kept per incident (and used for its label).
    pub top_causes: usize,
    /// First matching rule gives the severity; none matching: P4.
    pub severity_rules: Vec<SeverityRule>,
    /// Maintenance windows from the config (more with `anomalyd silence add`).
    pub silences: Vec<Silence>,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            enabled: true,
            host: None,
            opening: OpeningRule::default(),
            false_alarm_budget: Budget::default(),
            resolve_for: Duration::from_secs(600),
            reopen_window: Duration::from_secs(3600),
            flap_max_opens: 4,
            flap_window: Duration::from_secs(3600),
            top_causes: 5,
            severity_rules: severity::default_rules(),
            silences: Vec::new(),
        }
    }
}

/// Keys of earlier versions, and what replaced them: named in the error, so an old
/// file says what to change instead of "unknown key".
const REPLACED: &[(&str, &str)] = &[
    (
        "open_after",
        "open_for (a duration, e.g. 3m) within open_window (e.g. 5m)",
    ),
    ("resolve_after", "resolve_for (a duration, e.g. 10m)"),
    (
        "risk_threshold",
        "severity_rules: the fault risk raises an anomaly's severity with `min_risk`",
    ),
];

/// Read the `incidents:` section; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> IncidentConfig {
    let d = IncidentConfig::default();
    let mut keys = vec![
        "enabled",
        "host",
        "open_for",
        "open_window",
        "recent_factor",
        "recent_window",
        "false_alarm_budget",
        "resolve_for",
        "reopen_window",
        "flap_max_opens",
        "flap_window",
        "top_causes",
        "severity_rules",
        "silences",
    ];
    keys.extend(REPLACED.iter().map(|(k, _)| *k));
    let s = r.section(v, path, &keys);
    for (old, new) in REPLACED {
        if s.get(old).is_some() {
            r.error(&s.path(old), format!("no longer used; replaced by {new}"));
        }
    }
    let host = match s.get("host") {
        None => None,
        Some(Value::String(h)) if !h.trim().is_empty() => Some(h.trim().to_string()),
        Some(other) => {
            r.error(
                &s.path("host"),
                format!("expected a host name or null, got {}", show(other)),
            );
            None
        }
    };
    let day = Duration::from_secs(86_400);
    let minute = Duration::from_secs(60);
    let o = &d.opening;
    let open_for = s.duration(r, "open_for", o.open_for, Duration::ZERO, day);
    let open_window = match s.get("open_window") {
        Some(Value::Number(n)) => {
            r.error(
                &s.path("open_window"),
                format!("{n} is a count of samples, as in earlier versions; it is a duration now (e.g. 5m)"),
            );
            o.open_window
        }
        _ => s.duration(r, "open_window", o.open_window, Duration::from_secs(1), day),
    };
    if open_for > open_window {
        r.error(
            &s.path("open_for"),
            format!(
                "{} is longer than open_window ({})",
                crate::text::fmt_duration(open_for),
                crate::text::fmt_duration(open_window)
            ),
        );
    }
    let opening = OpeningRule {
        open_for,
        open_window,
        recent_factor: s.float(r, "recent_factor", o.recent_factor, 0.0, 1000.0),
        recent_window: s.duration(r, "recent_window", o.recent_window, minute, 30 * day),
    };
    let false_alarm_budget = match s.get("false_alarm_budget") {
        None => d.false_alarm_budget,
        Some(Value::String(b)) => Budget::parse(b).unwrap_or_else(|e| {
            r.error(&s.path("false_alarm_budget"), e);
            d.false_alarm_budget
        }),
        Some(other) => {
            r.error(
                &s.path("false_alarm_budget"),
                format!(
                    "expected `<count> per <duration>` (e.g. `10 per 30d`), got {}",
                    show(other)
                ),
            );
            d.false_alarm_budget
        }
    };
    let severity_rules = match s.get("severity_rules") {
        None => d.severity_rules.clone(),
        Some(_) => s
            .list(r, "severity_rules")
            .into_iter()
            .filter_map(|(p, v)| severity::parse_rule(r, v, &p))
            .collect(),
    };
    let silences = s
        .list(r, "silences")
        .into_iter()
        .enumerate()
        .filter_map(|(i, (p, v))| parse_silence(r, v, &p, i))
        .collect();
    IncidentConfig {
        enabled: s.bool(r, "enabled", d.enabled),
        host,
        opening,
        false_alarm_budget,
        resolve_for: s.duration(
            r,
            "resolve_for",
            d.resolve_for,
            Duration::from_secs(1),
            30 * day,
        ),
        reopen_window: s.duration(
            r,
            "reopen_window",
            d.reopen_window,
            Duration::ZERO,
            30 * day,
        ),
        flap_max_opens: s.int(r, "flap_max_opens", d.flap_max_opens as u64, 0, 1000) as usize,
        flap_window: s.duration(
            r,
            "flap_window",
            d.flap_window,
            Duration::from_secs(1),
            30 * day,
        ),
        top_causes: s.int(r, "top_causes", d.top_causes as u64, 1, 50) as usize,
        severity_rules,
        silences,
    }
}

/// The host name for fingerprints and titles.
pub fn host_name(config: &IncidentConfig) -> String {
    if let Some(h) = &config.host {
        return h.clone();
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // (and we stop at the first NUL or the end either way).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// For unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Cause, Class, Incident, Label, Severity};

    /// The incident unit tests start from: a P3 storage anomaly on web1's `sdb`,
    /// opened at `at_ms`, its one cause `disk_busy_ratio{device="sdb"}` at `value`
    /// against a baseline of 0.1. Tests change what they need with `..`.
    pub(crate) fn storage_anomaly(id: &str, at_ms: i64, value: f64, contribution: f64) -> Incident {
        Incident {
            id: id.into(),
            fingerprint: "web1/anomaly/storage/sdb".into(),
            host: "web1".into(),
            class: Class::Anomaly,
            label: Label::Storage,
            severity: Severity::P3,
            resource: Some("sdb".into()),
            title: "storage anomaly on web1 (sdb)".into(),
            causes: vec![Cause {
                feature: "disk_busy_ratio{device=\"sdb\"}".into(),
                value,
                baseline: 0.1,
                contribution,
            }],
            opened_ms: at_ms,
            updated_ms: at_ms,
            resolved_ms: None,
        }
    }
}
