//! Alertmanager API v2: `POST <url>/api/v2/alerts` with a JSON list of alerts.
//!
//! The path for fleets: every host posts its alerts to the same Alertmanager cluster,
//! which groups, dedups (by label set) and routes them.
//!
//! A cluster is given as `urls:`, one per Alertmanager, and every POST goes to each of
//! them: Alertmanager's documented high-availability contract is that clients send
//! to *all* instances, never through a load balancer, and the instances deduplicate
//! the notifications among themselves (gossip). As in Prometheus' notifier, a POST
//! counts as delivered when at least one instance took it; the ones that failed are
//! logged, and they get the alert again with the next re-send (every
//! `resend_interval`), or resolve it by its `endsAt` if they stay down.
//!
//! An alert's labels identify it, so they must not change while the problem lasts:
//! `alertname="anomalyd_<class>"`, `host`, `area`, `severity`, `resource` (when there
//! is one), `fingerprint`, plus the sink's configured `labels`. If an update changes
//! them (a worse severity), the old label set is resolved and the new one fired in the
//! same POST. Title, report and ticket id go into annotations.
//!
//! While firing, alerts are re-sent every `resend_interval` with
//! `endsAt = now + 4 x resend_interval` (Prometheus' own rule): a daemon that dies
//! stops refreshing them and Alertmanager resolves them by itself shortly after. The
//! set of firing alerts lives in the outbox's sink state, so a restart keeps re-sending.
//! A resolve posts the alert with `endsAt` = the resolve time.
//!
//! Guarantee: exactly-once in effect. Alertmanager identifies alerts by labels, so a
//! repeated POST (a retry, or a re-send after a `kill -9`) updates the same alert.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::http::Http;
use super::{Attempt, Sink, SinkConfig, SinkError, SinkState};
use crate::config::reader::{Reader, Section};
use crate::incident::Incident;
use crate::tickets::DeliveryKind;

pub(crate) const KEYS: &[&str] = &["url", "urls", "resend_interval", "labels"];

#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerConfig {
    /// Base URLs, one per instance of the cluster (`url:` for one, `urls:` for
    /// several); alerts go to `<url>/api/v2/alerts` of each.
    pub urls: Vec<String>,
    /// Firing alerts are posted again this often.
    pub resend_interval: Duration,
    /// Extra labels on every alert (e.g. `team: infra`).
    pub labels: BTreeMap<String, String>,
}

pub(crate) fn parse(r: &mut Reader, s: &Section) -> AlertmanagerConfig {
    let labels = super::string_map(r, s, "labels");
    for k in labels.keys() {
        let ok = k
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !ok || k.is_empty() || k.starts_with("__") {
            r.error(
                &format!("{}.{k}", s.path("labels")),
                "not a valid Prometheus label name",
            );
        }
    }
    AlertmanagerConfig {
        urls: urls(r, s),
        resend_interval: s.duration(
            r,
            "resend_interval",
            Duration::from_secs(60),
            Duration::from_secs(1),
            Duration::from_secs(3600),
        ),
        labels,
    }
}

/// `url: U` or `urls: [U, ...]` (exactly one of the two), each checked like every
/// sink URL, without duplicates.
fn urls(r: &mut Reader, s: &Section) -> Vec<String> {
    match (s.get("url").is_some(), s.get("urls").is_some()) {
        (true, true) => {
            r.error(
                &s.path("urls"),
                "set either url (one Alertmanager) or urls (a cluster), not both",
            );
            Vec::new()
        }
        (true, false) => vec![super::url(r, s, "url", true, "")],
        (false, false) => {
            r.error(
                &s.path("url"),
                "missing: an http:// or https:// URL (or urls: a list, for a cluster)",
            );
            Vec::new()
        }
        (false, true) => {
            let list = s.strings(r, "urls");
            if list.is_empty() && s.get("urls").is_some_and(|v| v.is_sequence()) {
                r.error(
                    &s.path("urls"),
                    "empty: list every Alertmanager of the cluster",
                );
            }
            let mut out: Vec<String> = Vec::new();
            for (i, u) in list.iter().enumerate() {
                let at = format!("{}[{i}]", s.path("urls"));
                if let Err(e) = super::check_url(u) {
                    r.error(&at, format!("{u:?}: {e}"));
                    continue;
                }
                let u = u.trim_end_matches('/').to_string();
                if out.contains(&u) {
                    r.error(&at, format!("{u:?} is listed twice"));
                }
                out.push(u);
            }
            out
        }
    }
}

pub struct Alertmanager {
    config: AlertmanagerConfig,
    http: Http,
    /// `<url>/api/v2/alerts` of every instance.
    endpoints: Vec<String>,
}

impl Alertmanager {
    pub fn new(c: &SinkConfig, a: AlertmanagerConfig) -> Result<Self, String> {
        Ok(Alertmanager {
            endpoints: a
                .urls
                .iter()
                .map(|u| format!("{u}/api/v2/alerts"))
                .collect(),
            config: a,
            http: Http::new(c.timeout),
        })
    }

    fn labels(&self, i: &Incident) -> BTreeMap<String, String> {
        let mut l = self.config.labels.clone();
        let class = serde_json::to_value(i.class)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let area = serde_json::to_value(i.label)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        l.insert("alertname".into(), format!("anomalyd_{class}"));
        l.insert("host".into(), i.host.clone());
        l.insert("area".into(), area);
        l.insert("severity".into(), format!("{:?}", i.severity));
        if let Some(r) = &i.resource {
            l.insert("resource".into(), r.clone());
        }
        l.insert("fingerprint".into(), i.fingerprint.clone());
        l
    }

    /// POST `alerts` to every instance; delivered when one of them took it.
    fn post(&self, alerts: &[Value], what: &str) -> Result<(), SinkError> {
        let body = serde_json::to_vec(alerts)
            .map_err(|e| SinkError::rejected(format!("cannot encode: {e}")))?;
        let results: Vec<Result<(), SinkError>> = self
            .endpoints
            .iter()
            .map(|endpoint| {
                self.http
                    .send(
                        "POST",
                        endpoint,
                        &[("Content-Type", "application/json")],
                        Some(&body),
                        what,
                    )
                    .map(|_| ())
            })
            .collect();
        one_is_enough(results)
    }

    fn ends_firing(&self, now_ms: i64) -> String {
        rfc3339(now_ms + 4 * self.config.resend_interval.as_millis() as i64)
    }
}

impl Sink for Alertmanager {
    fn deliver(&mut self, a: &Attempt) -> Result<Option<SinkState>, SinkError> {
        let d = a.delivery;
        let i = &d.incident;
        let labels = self.labels(i);
        let resolved = d.kind == DeliveryKind::Resolve;
        let ends = if resolved {
            rfc3339(i.resolved_ms.unwrap_or(d.at_ms))
        } else {
            self.ends_firing(a.now_ms)
        };
        let alert = json!({
            "labels": labels,
            "annotations": {
                "summary": i.title,
                "description": d.body,
                "ticket": d.ticket_id,
                "event": d.summary,
            },
            "startsAt": rfc3339(i.opened_ms),
            "endsAt": ends,
        });
        let mut alerts = vec![alert.clone()];
        // Labels changed (e.g. severity): end the old alert, or it would linger until
        // its own endsAt.
        if let Some(p) = a.previous.filter(|p| p.open) {
            if let Some(old) = p.data.get("labels") {
                if old != &json!(labels) {
                    let mut o = p.data.clone();
                    o["endsAt"] = json!(rfc3339(d.at_ms));
                    alerts.push(o);
                }
            }
        }
        let what = format!("alertmanager {:?} {}", d.kind, d.ticket_id).to_lowercase();
        self.post(&alerts, &what)?;
        Ok(Some(SinkState {
            fingerprint: i.fingerprint.clone(),
            ticket_id: d.ticket_id.clone(),
            external_ref: json!(labels).to_string(),
            open: !resolved,
            resolved_ms: resolved.then_some(d.at_ms),
            last_sent_ms: a.now_ms,
            data: alert,
        }))
    }

    fn resend_interval(&self) -> Option<Duration> {
        Some(self.config.resend_interval)
    }

    fn resend(&mut self, open: &[SinkState], now_ms: i64) -> Result<(), SinkError> {
        let ends = self.ends_firing(now_ms);
        let alerts: Vec<Value> = open
            .iter()
            .filter(|s| s.data.is_object())
            .map(|s| {
                let mut a = s.data.clone();
                a["endsAt"] = json!(ends);
                a
            })
            .collect();
        if alerts.is_empty() {
            return Ok(());
        }
        self.post(
            &alerts,
            &format!("alertmanager re-send {} alerts", alerts.len()),
        )
    }
}

/// The outcome of one POST sent to every instance: `Ok` when at least one took it
/// (the others are logged: they catch up with the next re-send). When none did, the
/// error of the one that may have processed it wins (the retry is then in doubt),
/// else the first; every instance's message is kept.
fn one_is_enough(results: Vec<Result<(), SinkError>>) -> Result<(), SinkError> {
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let errors: Vec<SinkError> = failed.into_iter().filter_map(Result::err).collect();
    if !ok.is_empty() {
        for e in &errors {
            tracing::warn!("{e} (delivered to another Alertmanager of the cluster)");
        }
        return Ok(());
    }
    let message = errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let mut worst = errors
        .iter()
        .find(|e| e.maybe_delivered)
        .or(errors.first())
        .cloned()
        .unwrap_or_else(|| SinkError::rejected("no Alertmanager configured"));
    worst.message = message;
    Err(worst)
}

/// Unix milliseconds as RFC 3339 UTC (`2024-05-01T12:00:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_instance_that_took_it_is_enough() {
        let down = || SinkError::unreachable("am1: connection refused");
        assert_eq!(one_is_enough(vec![Err(down()), Ok(())]), Ok(()));
        assert_eq!(one_is_enough(vec![Ok(()), Ok(())]), Ok(()));
        // None took it: an instance that may have processed it makes the retry in
        // doubt, and every instance's message is kept.
        let e = one_is_enough(vec![Err(down()), Err(SinkError::in_doubt("am2: HTTP 503"))])
            .expect_err("none took it");
        assert!(e.sink_down && e.maybe_delivered, "{e:?}");
        assert_eq!(e.message, "am1: connection refused; am2: HTTP 503");
        let e = one_is_enough(vec![Err(down()), Err(down())]).expect_err("both down");
        assert!(e.sink_down && !e.maybe_delivered, "{e:?}");
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_714_564_800_000), "2024-05-01T12:00:00.000Z");
    }
}
