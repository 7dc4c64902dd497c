//! What an incident is, as the ticket store, the sinks and remediation see it.
//!
//! These types are the contract between the incident engine (which decides when an
//! incident opens, changes and resolves) and everything downstream of it. Keep them
//! plain data: downstream code must not need the engine to read them.

use serde::{Deserialize, Serialize};

/// P0 is the most urgent (an outage: the host is cut off, or about to fail). `Ord`
/// follows urgency: `P0 < P1`, so "worse" is "smaller".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    P0,
    P1,
    P2,
    P3,
    P4,
}

/// The area of the host a problem is in, from its top causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Cpu,
    Memory,
    Storage,
    Network,
    Latency,
    Other,
}

/// What raised the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// The model's anomaly decision (debounced).
    Anomaly,
    /// A capacity forecast: a resource will run out within a horizon.
    Forecast,
    /// The fault-risk probability crossed its trigger level. No longer raised (the
    /// risk is an attribute of an anomaly incident); kept so old tickets still read.
    Risk,
    /// A ping target that used to answer stopped answering.
    Ping,
}

/// One contributing metric: its value now against what the model learned as normal.
/// How soon a capacity forecast says a resource runs out (the forecast event's
/// severity, as the incident engine and the severity rules see it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForecastLevel {
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// Feature name, e.g. `filesystem_used_ratio{mountpoint="/var"}`.
    pub feature: String,
    pub value: f64,
    /// The learned normal value (the model's centre for this sample); NaN if unknown.
    pub baseline: f64,
    /// Share of the anomaly score (the contributions of a sample add up to its score).
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id, also the ticket's id, e.g. `INC-42`.
    pub id: String,
    /// Dedup key: host + class + resource. Two incidents with one fingerprint are the
    /// same problem (a reopen within the reopen window reuses the ticket).
    pub fingerprint: String,
    pub host: String,
    pub class: Class,
    pub label: Label,
    pub severity: Severity,
    /// The resource concerned, when there is one: a mount point, a device, an
    /// interface, a ping target; `None` for whole-host anomalies.
    pub resource: Option<String>,
    /// One line for a ticket title, e.g. "storage: /var full in 3 h 10 min".
    pub title: String,
    /// Top causes, most important first.
    pub causes: Vec<Cause>,
    pub opened_ms: i64,
    pub updated_ms: i64,
    pub resolved_ms: Option<i64>,
}

/// What the engine reports per tick; downstream reacts to each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    Opened(Incident),
    /// Still open, and something worth telling changed (`what`, one line): new top
    /// causes, a worse severity, a new ETA.
    Updated {
        incident: Incident,
        what: String,
    },
    Resolved(Incident),
    /// Ended because the problem moved elsewhere: the dominant cause now belongs to
    /// another label or resource, and `by` (a new incident) carries it on.
    Superseded {
        incident: Incident,
        by: String,
    },
}

impl Change {
    pub fn incident(&self) -> &Incident {
        match self {
            Change::Opened(i) | Change::Resolved(i) => i,
            Change::Updated { incident, .. } | Change::Superseded { incident, .. } => incident,
        }
    }
}

/// Names as they appear in config files, tickets, the API and metric labels.
macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// The value named `s` (as written by `as_str`), if any.
            pub fn parse(s: &str) -> Option<$ty> {
                match s {
                    $($name => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(Severity { P0 => "P0", P1 => "P1", P2 => "P2", P3 => "P3", P4 => "P4" });
names!(Label {
    Cpu => "cpu",
    Memory => "memory",
    Storage => "storage",
    Network => "network",
    Latency => "latency",
    Other => "other",
});
names!(Class { Anomaly => "anomaly", Forecast => "forecast", Risk => "risk", Ping => "ping" });

impl Severity {
    /// One level more urgent; `None` at P0.
    pub fn raised(self) -> Option<Severity> {
        match self {
            Severity::P0 => None,
            Severity::P1 => Some(Severity::P0),
            Severity::P2 => Some(Severity::P1),
            Severity::P3 => Some(Severity::P2),
            Severity::P4 => Some(Severity::P3),
        }
    }
}

/// `INC-<n>`.
pub fn ticket_id(seq: u64) -> String {
    format!("INC-{seq}")
}

/// The number in a ticket id (`INC-7` -> 7).
pub fn ticket_seq(id: &str) -> Option<i64> {
    id.strip_prefix("INC-")?.parse().ok()
}
