//! Maintenance silences: what they match, when they are active, and how the config's
//! `incidents.silences` are read. Stored silences (`anomalyd silence add`) are the
//! same type, kept in the ticket store. `label`, `class` and `fingerprint` match
//! exactly; `resource` is an anchored regular expression, as a remediation rule's
//! `resource` is (one way to name a set of mount points or devices everywhere).

use serde::Serialize;
use serde_yaml::Value;

use super::{Class, Incident, Label};
use crate::config::reader::{show, Pattern, Reader};

/// What a maintenance silence matches; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Matchers {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub class: Option<String>,
    /// Anchored regular expression on the incident's resource.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<Pattern>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fingerprint: Option<String>,
}

impl Matchers {
    pub fn matches(&self, i: &Incident) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        eq(&self.label, Some(i.label.as_str()))
            && eq(&self.class, Some(i.class.as_str()))
            && self
                .resource
                .as_ref()
                .is_none_or(|p| i.resource.as_deref().is_some_and(|r| p.is_match(r)))
            && eq(&self.fingerprint, Some(&i.fingerprint))
    }

    pub fn is_empty(&self) -> bool {
        self == &Matchers::default()
    }
}

impl std::fmt::Display for Matchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (k, v) in [
            ("label", self.label.as_deref()),
            ("class", self.class.as_deref()),
            ("resource", self.resource.as_ref().map(Pattern::as_str)),
            ("fingerprint", self.fingerprint.as_deref()),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        if parts.is_empty() {
            f.write_str("everything")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// A maintenance window: matching incidents are recorded, their tickets muted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    /// `S-<n>` for silences in the store, `config[<i>]` for the config's.
    pub id: String,
    pub matchers: Matchers,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub comment: String,
}

impl Silence {
    pub fn active(&self, now_ms: i64) -> bool {
        self.starts_ms <= now_ms && now_ms < self.ends_ms
    }
}

pub(super) fn parse_silence(
    r: &mut Reader,
    v: &Value,
    path: &str,
    index: usize,
) -> Option<Silence> {
    let s = r.section(Some(v), path, &["matchers", "starts", "ends", "comment"]);
    let m = r.section(
        s.get("matchers"),
        &s.path("matchers"),
        &["label", "class", "resource", "fingerprint"],
    );
    let opt = |r: &mut Reader, key: &str| {
        let v = m.string(r, key, "");
        (!v.is_empty()).then_some(v)
    };
    let matchers = Matchers {
        label: opt(r, "label"),
        class: opt(r, "class"),
        resource: m.pattern(r, "resource", None),
        fingerprint: opt(r, "fingerprint"),
    };
    let before = r.errors.len();
    if let Some(l) = &matchers.label {
        if Label::parse(l).is_none() {
            r.error(
                &m.path("label"),
                format!(
                    "{l:?} is not one of: {}",
                    Label::ALL
                        .iter()
                        .map(|l| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    if let Some(c) = &matchers.class {
        if Class::parse(c).is_none() {
            r.error(
                &m.path("class"),
                format!("{c:?} is not one of: anomaly, forecast, risk"),
            );
        }
    }
    if matchers.is_empty() {
        r.error(
            &s.path("matchers"),
            "a silence needs at least one matcher (label, class, resource or fingerprint)",
        );
    }
    let time = |r: &mut Reader, key: &str, default: i64| match s.get(key) {
        None => default,
        Some(Value::String(t)) => match crate::text::parse_timestamp_ms(t) {
            Some(ms) => ms,
            None => {
                r.error(
                    &s.path(key),
                    format!("invalid time {t:?} (expected RFC 3339, e.g. 2025-06-01T22:00:00Z)"),
                );
                default
            }
        },
        Some(other) => {
            r.error(
                &s.path(key),
                format!(
                    "expected a time like \"2025-06-01T22:00:00Z\", got {}",
                    show(other)
                ),
            );
            default
        }
    };
    let starts_ms = time(r, "starts", i64::MIN);
    let ends_ms = time(r, "ends", i64::MAX);
    if starts_ms >= ends_ms {
        r.error(&s.path("ends"), "must be later than starts");
    }
    let comment = s.string(r, "comment", "");
    (r.errors.len() == before).then(|| Silence {
        id: format!("config[{index}]"),
        matchers,
        starts_ms,
        ends_ms,
        comment,
    })
}
