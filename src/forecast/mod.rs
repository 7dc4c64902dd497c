//! Forecasting faults before they happen.
//!
//! Two signals, both computed from the same [`Record`](crate::sample::Record)s the
//! model scores, so the live daemon and `anomalyd replay` forecast alike:
//!
//! * **Time to exhaustion** ([`capacity`]): for every filesystem (bytes and inodes),
//!   memory available and swap, a robust trend (Theil–Sen over time buckets,
//!   [`trend`]) gives the time until the headroom reaches zero. Only a *consistent*
//!   decline counts (Mann–Kendall τ, signal above the residual noise, enough time
//!   covered), so a cache filled and emptied within minutes is not a disk about to
//!   die. An ETA under a horizon becomes a forecast event, with hysteresis.
//! * **Fault risk** ([`risk`]): from the model's recent score trajectory, a
//!   probability that an incident opens within a horizon, calibrated on the host's
//!   own history (in-sample scores of the training rows, no labels), combined with
//!   "a resource runs out within the horizon".
//!
//! What a tick produced is an [`Outlook`]; the pipeline exports it on /metrics and
//! hands it to the incident engine.

pub mod capacity;
pub mod risk;
pub mod trend;

use std::time::Duration;

use serde_yaml::Value;

use crate::config::reader::Reader;
use crate::sample::{Kind as PointKind, Point, Sample};
use crate::text::fmt_duration;

pub use capacity::Forecaster;
pub use risk::{Calibration, RiskTracker};

#[derive(Debug, Clone, PartialEq)]
pub struct ForecastConfig {
    /// Forecast at all (time to exhaustion and fault risk).
    pub enabled: bool,
    /// How much recent history the trend is fitted on.
    pub window: Duration,
    /// The window is averaged into this many time buckets; the trend is re-fitted
    /// when a bucket closes (not every tick).
    pub buckets: usize,
    /// The buckets must cover at least this much time before an ETA is given.
    pub min_span: Duration,
    /// Minimum |Mann–Kendall τ| of the buckets (1 = every later bucket lower than
    /// every earlier one); below it the decline is not consistent enough.
    pub min_consistency: f64,
    /// An ETA under this is a warning forecast event.
    pub warning: Duration,
    /// An ETA under this is a critical forecast event.
    pub critical: Duration,
    /// An event clears when the ETA rises above its horizon × this factor, or the
    /// trend goes away.
    pub clear_factor: f64,
    pub risk: RiskConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RiskConfig {
    pub enabled: bool,
    /// The risk is the probability that an incident opens within this time.
    pub horizon: Duration,
    /// Risk at or above this is a warning (cleared below 0.8 × this).
    pub warning: f64,
    /// An incident opens when `anomalous` of the last `of` samples are anomalous:
    /// copied from `incidents.open_after` / `open_window`, not a key of its own.
    pub debounce_anomalous: usize,
    pub debounce_of: usize,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            enabled: true,
            window: Duration::from_secs(6 * 3600),
            buckets: 240,
            min_span: Duration::from_secs(30 * 60),
            min_consistency: 0.6,
            // The node-mixin's filesystem alerts: 24 h warning, 4 h critical.
            warning: Duration::from_secs(24 * 3600),
            critical: Duration::from_secs(4 * 3600),
            clear_factor: 1.5,
            risk: RiskConfig::default(),
        }
    }
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            enabled: true,
            horizon: Duration::from_secs(30 * 60),
            warning: 0.5,
            debounce_anomalous: 3,
            debounce_of: 5,
        }
    }
}

const SECS: fn(u64) -> Duration = Duration::from_secs;
const DAY: u64 = 86_400;

/// Read the `forecast:` section; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> ForecastConfig {
    let d = ForecastConfig::default();
    let s = r.section(
        v,
        path,
        &[
            "enabled",
            "window",
            "buckets",
            "min_span",
            "min_consistency",
            "warning",
            "critical",
            "clear_factor",
            "risk",
        ],
    );
    let window = s.duration(r, "window", d.window, SECS(10), SECS(90 * DAY));
    let min_span = s.duration(r, "min_span", d.min_span, SECS(1), SECS(90 * DAY));
    let warning = s.duration(r, "warning", d.warning, SECS(1), SECS(3650 * DAY));
    let critical = s.duration(r, "critical", d.critical, SECS(1), SECS(3650 * DAY));
    if min_span > window {
        r.error(
            &s.path("min_span"),
            format!(
                "{} is longer than window {}",
                fmt_duration(min_span),
                fmt_duration(window)
            ),
        );
    }
    if critical > warning {
        r.error(
            &s.path("critical"),
            format!(
                "{} is longer than warning {} (critical is the nearer horizon)",
                fmt_duration(critical),
                fmt_duration(warning)
            ),
        );
    }
    let rs = r.section(
        s.get("risk"),
        &s.path("risk"),
        &["enabled", "horizon", "warning"],
    );
    let dr = &d.risk;
    let risk = RiskConfig {
        enabled: rs.bool(r, "enabled", dr.enabled),
        horizon: rs.duration(r, "horizon", dr.horizon, SECS(1), SECS(30 * DAY)),
        warning: rs.float(r, "warning", dr.warning, 0.01, 0.99),
        // Set from `incidents.open_after`/`open_window` once that section is read
        // (settings::parse): the risk predicts exactly the incidents the engine opens.
        debounce_anomalous: dr.debounce_anomalous,
        debounce_of: dr.debounce_of,
    };
    ForecastConfig {
        enabled: s.bool(r, "enabled", d.enabled),
        window,
        buckets: s.int(r, "buckets", d.buckets as u64, 8, 2000) as usize,
        min_span,
        min_consistency: s.float(r, "min_consistency", d.min_consistency, 0.0, 1.0),
        warning,
        critical,
        clear_factor: s.float(r, "clear_factor", d.clear_factor, 1.0, 10.0),
        risk,
    }
}

/// Which headroom runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Filesystem space available to unprivileged users.
    Bytes,
    /// Filesystem inodes free.
    Inodes,
    /// Memory available (MemAvailable).
    Memory,
    /// Swap space left (total - used).
    Swap,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bytes => "bytes",
            Kind::Inodes => "inodes",
            Kind::Memory => "memory",
            Kind::Swap => "swap",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Firing,
    Cleared,
}

/// Time to exhaustion of one resource.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Eta {
    pub kind: Kind,
    /// Mount point for filesystems, `memory` or `swap`.
    pub resource: String,
    /// Filesystem device and type (empty for memory and swap).
    pub device: String,
    pub fstype: String,
    /// Seconds until the headroom reaches zero; +inf without a confident decline.
    pub seconds: f64,
    /// Headroom now (bytes or inodes).
    pub headroom: f64,
    /// Fitted change of the headroom per second (negative: being used up); NaN
    /// before the first fit.
    pub rate: f64,
}

/// A forecast event: a resource expected to run out within a horizon.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ForecastEvent {
    pub kind: Kind,
    pub resource: String,
    pub device: String,
    pub severity: Severity,
    pub eta_seconds: f64,
    pub state: State,
    /// When this event (at this severity) started firing, Unix ms.
    pub since_ms: i64,
}

/// Fault risk at one tick.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Risk {
    /// Probability (0..1) that an incident opens within the horizon.
    pub probability: f64,
    /// The part from the anomaly score trajectory (calibrated), and the part from
    /// capacity (1 when a resource is expected to run out within the horizon).
    pub from_scores: f64,
    pub from_capacity: f64,
    pub horizon_seconds: f64,
    /// Whether the risk is at or above the warning level (with hysteresis).
    pub warning: bool,
}

/// What forecasting produced for one tick.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Outlook {
    pub etas: Vec<Eta>,
    /// Events firing now.
    pub active: Vec<ForecastEvent>,
    /// What changed this tick: events that started (or changed severity) and events
    /// that cleared.
    pub changes: Vec<ForecastEvent>,
    /// `None` until a model with a risk calibration is in place.
    pub risk: Option<Risk>,
}

impl Outlook {
    /// The nearest exhaustion, seconds (+inf when nothing runs out).
    pub fn min_eta(&self) -> f64 {
        self.etas
            .iter()
            .map(|e| e.seconds)
            .fold(f64::INFINITY, f64::min)
    }

    /// Add the forecast to the sample (what /metrics and `collect --once` show).
    pub fn export(&self, sample: &mut Sample, cfg: &ForecastConfig) {
        for e in &self.etas {
            let (name, help, fs) = match e.kind {
                Kind::Bytes => (
                    "filesystem_seconds_until_exhaustion",
                    "Time until the filesystem's available space runs out at its current trend (+Inf: no consistent decline)",
                    true,
                ),
                Kind::Inodes => (
                    "filesystem_inodes_seconds_until_exhaustion",
                    "Time until the filesystem's free inodes run out at their current trend (+Inf: no consistent decline)",
                    true,
                ),
                Kind::Memory => (
                    "memory_seconds_until_exhaustion",
                    "Time until available memory runs out at its current trend (+Inf: no consistent decline)",
                    false,
                ),
                Kind::Swap => (
                    "swap_seconds_until_exhaustion",
                    "Time until swap is full at its current trend (+Inf: no consistent decline)",
                    false,
                ),
            };
            let labels: Vec<(&'static str, String)> = if fs {
                vec![
                    ("mountpoint", e.resource.clone()),
                    ("device", e.device.clone()),
                    ("fstype", e.fstype.clone()),
                ]
            } else {
                Vec::new()
            };
            // +Inf is the honest value of "never at this trend" (Prometheus reads it,
            // and `< 4*3600` alert expressions do the right thing), so it is pushed
            // directly rather than through `Sample::info`, which drops non-finite values.
            sample.points.push(Point {
                name,
                help,
                kind: PointKind::Gauge,
                labels,
                value: e.seconds,
                observations: Vec::new(),
                feature: false,
            });
        }
        for ev in &self.active {
            sample.info(
                "forecast_event",
                "A forecast event is firing (1): the resource is expected to run out within the severity's horizon",
                &[
                    ("kind", ev.kind.as_str()),
                    ("resource", &ev.resource),
                    ("severity", ev.severity.as_str()),
                ],
                1.0,
            );
        }
        let horizon = |d: Duration| d.as_secs_f64();
        sample.info(
            "forecast_horizon_seconds",
            "ETA under which a forecast event fires, per severity",
            &[("severity", "warning")],
            horizon(cfg.warning),
        );
        sample.info(
            "forecast_horizon_seconds",
            "ETA under which a forecast event fires, per severity",
            &[("severity", "critical")],
            horizon(cfg.critical),
        );
        if let Some(r) = &self.risk {
            sample.info(
                "fault_risk",
                "Probability (0-1) that an incident opens within anomalyd_fault_risk_horizon_seconds",
                &[],
                r.probability,
            );
            sample.info(
                "fault_risk_horizon_seconds",
                "Horizon of anomalyd_fault_risk",
                &[],
                r.horizon_seconds,
            );
            sample.info(
                "fault_risk_warning",
                "Whether the fault risk is at or above the warning level (1)",
                &[],
                if r.warning { 1.0 } else { 0.0 },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlook_exports_etas_events_and_risk() {
        let o = Outlook {
            etas: vec![
                Eta {
                    kind: Kind::Bytes,
                    resource: "/var".into(),
                    device: "/dev/sdb1".into(),
                    fstype: "ext4".into(),
                    seconds: 11_400.0,
                    headroom: 1e9,
                    rate: -1e9 / 11_400.0,
                },
                Eta {
                    kind: Kind::Memory,
                    resource: "memory".into(),
                    device: String::new(),
                    fstype: String::new(),
                    seconds: f64::INFINITY,
                    headroom: 8e9,
                    rate: 0.0,
                },
            ],
            active: vec![ForecastEvent {
                kind: Kind::Bytes,
                resource: "/var".into(),
                device: "/dev/sdb1".into(),
                severity: Severity::Critical,
                eta_seconds: 11_400.0,
                state: State::Firing,
                since_ms: 0,
            }],
            changes: Vec::new(),
            risk: Some(Risk {
                probability: 0.25,
                from_scores: 0.25,
                from_capacity: 0.0,
                horizon_seconds: 1800.0,
                warning: false,
            }),
        };
        let mut s = Sample::new(0);
        o.export(&mut s, &ForecastConfig::default());
        let get = |n: &str, l: &[(&str, &str)]| s.get(n, l);
        assert_eq!(
            get(
                "filesystem_seconds_until_exhaustion",
                &[("mountpoint", "/var"), ("fstype", "ext4")]
            ),
            Some(11_400.0)
        );
        assert_eq!(
            get("memory_seconds_until_exhaustion", &[]),
            Some(f64::INFINITY)
        );
        assert_eq!(
            get(
                "forecast_event",
                &[
                    ("kind", "bytes"),
                    ("resource", "/var"),
                    ("severity", "critical")
                ]
            ),
            Some(1.0)
        );
        assert_eq!(get("fault_risk", &[]), Some(0.25));
        assert_eq!(get("fault_risk_horizon_seconds", &[]), Some(1800.0));
        assert_eq!(get("fault_risk_warning", &[]), Some(0.0));
        assert_eq!(o.min_eta(), 11_400.0);
    }
}
