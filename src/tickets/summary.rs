//! `anomalyd tickets report`: the tickets of a period summed up, the "4D tracking"
//! view across tickets. Counts by label, severity and status; per severity the mean
//! time to acknowledge (opening to the first `acknowledged` event) and to resolve
//! (opening to resolution); the problems (fingerprints) that opened most often; and
//! how remediation did: runs that succeeded, and runs verified to have fixed their
//! incident; and the SLA breaches (response deadlines passed, `deadline` events of
//! stage `breach`) per severity and deadline. Built from the store's tickets and timelines, nothing else.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::store::Ticket;
use crate::text::{fmt_duration_ms, fmt_time};

/// How many fingerprints the report lists.
pub const TOP_FINGERPRINTS: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The tickets that first opened in `[since_ms, until_ms]`.
    pub since_ms: i64,
    pub until_ms: i64,
    pub tickets: usize,
    pub by_label: BTreeMap<String, usize>,
    pub by_severity: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    /// Per severity.
    pub response: BTreeMap<String, Response>,
    /// Per severity (the ticket's when its deadline passed), only those with one.
    pub breaches: BTreeMap<String, Breaches>,
    /// Most tickets first (ties by fingerprint).
    pub top_fingerprints: Vec<Recurring>,
    pub remediation: Remediation,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Response {
    pub tickets: usize,
    pub acknowledged: usize,
    /// Mean time to acknowledge, of the acknowledged ones.
    pub mtta_seconds: Option<f64>,
    pub resolved: usize,
    /// Mean time to resolve, of the resolved ones.
    pub mttr_seconds: Option<f64>,
}

/// Response deadlines passed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Breaches {
    pub acknowledge: usize,
    pub resolve: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recurring {
    pub fingerprint: String,
    pub tickets: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Remediation {
    /// Runs recorded (dry runs, skipped and refused ones included).
    pub runs: usize,
    /// Runs whose command succeeded.
    pub succeeded: usize,
    /// Succeeded runs whose incident then resolved within the verify window.
    pub verified: usize,
    /// Succeeded runs whose incident did not resolve in time (or was superseded).
    pub not_verified: usize,
    /// succeeded / runs.
    pub success_rate: Option<f64>,
    /// verified / (verified + not_verified).
    pub verified_rate: Option<f64>,
}

fn mean(v: &[i64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<i64>() as f64 / v.len() as f64 / 1000.0)
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Sum up `tickets` (with their timelines) that first opened in `[since_ms, until_ms]`.
pub fn build(tickets: &[Ticket], since_ms: i64, until_ms: i64) -> Report {
    let chosen: Vec<&Ticket> = tickets
        .iter()
        .filter(|t| (since_ms..=until_ms).contains(&t.opened_ms))
        .collect();
    let mut by_label = BTreeMap::new();
    let mut by_severity = BTreeMap::new();
    let mut by_status = BTreeMap::new();
    let mut fingerprints: BTreeMap<&str, usize> = BTreeMap::new();
    let mut acks: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut fixes: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut response: BTreeMap<String, Response> = BTreeMap::new();
    let mut rem = Remediation::default();
    let mut breaches: BTreeMap<String, Breaches> = BTreeMap::new();
    for t in &chosen {
        for e in t.timeline.iter().filter(|e| e.kind == "deadline") {
            if e.detail["stage"] != "breach" {
                continue;
            }
            let sev = e.detail["severity"].as_str().unwrap_or(&t.severity);
            let b = breaches.entry(sev.to_string()).or_default();
            match e.detail["deadline"].as_str() {
                Some("acknowledge") => b.acknowledge += 1,
                Some("resolve") => b.resolve += 1,
                _ => {}
            }
        }
        *by_label.entry(t.label.clone()).or_insert(0) += 1;
        *by_severity.entry(t.severity.clone()).or_insert(0) += 1;
        *by_status.entry(t.status.as_str().to_string()).or_insert(0) += 1;
        *fingerprints.entry(&t.fingerprint).or_insert(0) += 1;
        response.entry(t.severity.clone()).or_default().tickets += 1;
        if let Some(a) = t.timeline.iter().find(|e| e.kind == "acknowledged") {
            acks.entry(&t.severity)
                .or_default()
                .push((a.at_ms - t.opened_ms).max(0));
        }
        if let Some(r) = t.resolved_ms {
            fixes
                .entry(&t.severity)
                .or_default()
                .push((r - t.opened_ms).max(0));
        }
        for e in t.timeline.iter().filter(|e| e.kind == "action") {
            if let Some(result) = e.detail["result"].as_str() {
                rem.runs += 1;
                rem.succeeded += usize::from(result == "ok");
            }
            match e.detail["verify"].as_str() {
                Some("resolved") => rem.verified += 1,
                Some(_) => rem.not_verified += 1,
                None => {}
            }
        }
    }
    for (sev, r) in &mut response {
        let a = acks.get(sev.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let f = fixes.get(sev.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        r.acknowledged = a.len();
        r.mtta_seconds = mean(a);
        r.resolved = f.len();
        r.mttr_seconds = mean(f);
    }
    rem.success_rate = ratio(rem.succeeded, rem.runs);
    rem.verified_rate = ratio(rem.verified, rem.verified + rem.not_verified);
    let mut top: Vec<Recurring> = fingerprints
        .into_iter()
        .map(|(f, n)| Recurring {
            fingerprint: f.to_string(),
            tickets: n,
        })
        .collect();
    top.sort_by(|a, b| {
        b.tickets
            .cmp(&a.tickets)
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    top.truncate(TOP_FINGERPRINTS);
    Report {
        since_ms,
        until_ms,
        tickets: chosen.len(),
        by_label,
        by_severity,
        by_status,
        response,
        breaches,
        top_fingerprints: top,
        remediation: rem,
    }
}

fn secs(s: Option<f64>) -> String {
    s.map_or("-".to_string(), |s| {
        fmt_duration_ms((s * 1000.0).round() as i64)
    })
}

fn percent(r: Option<f64>) -> String {
    r.map_or("-".to_string(), |r| format!("{:.0} %", r * 100.0))
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Tickets opened from {} to {}\n\n{} tickets.",
        fmt_time(r.since_ms),
        fmt_time(r.until_ms),
        r.tickets
    );
    for (title, key, map) in [
        ("By label", "Label", &r.by_label),
        ("By severity", "Severity", &r.by_severity),
        ("By status", "Status", &r.by_status),
    ] {
        let _ = writeln!(s, "\n## {title}\n\n| {key} | Tickets |\n|---|---|");
        for (k, n) in map {
            let _ = writeln!(s, "| {k} | {n} |");
        }
    }
    let _ = writeln!(
        s,
        "\n## Response times\n\n| Severity | Tickets | Acknowledged | MTTA | Resolved | MTTR |\n|---|---|---|---|---|---|"
    );
    for (sev, x) in &r.response {
        let _ = writeln!(
            s,
            "| {sev} | {} | {} | {} | {} | {} |",
            x.tickets,
            x.acknowledged,
            secs(x.mtta_seconds),
            x.resolved,
            secs(x.mttr_seconds)
        );
    }
    let _ = writeln!(
        s,
        "\n## SLA breaches\n\n| Severity | Acknowledge | Resolve |\n|---|---|---|"
    );
    for (sev, b) in &r.breaches {
        let _ = writeln!(s, "| {sev} | {} | {} |", b.acknowledge, b.resolve);
    }
    if r.breaches.is_empty() {
        let _ = writeln!(s, "| none | 0 | 0 |");
    }
    let _ = writeln!(
        s,
        "\n## Most frequent problems\n\n| Fingerprint | Tickets |\n|---|---|"
    );
    for f in &r.top_fingerprints {
        let _ = writeln!(s, "| `{}` | {} |", f.fingerprint, f.tickets);
    }
    let m = &r.remediation;
    let _ = writeln!(
        s,
        "\n## Remediation\n\n{} runs, {} succeeded ({}); of the succeeded runs checked, {} \
         verified to have fixed their incident, {} not ({}).",
        m.runs,
        m.succeeded,
        percent(m.success_rate),
        m.verified,
        m.not_verified,
        percent(m.verified_rate)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::store::{Event, Status};

    fn ticket(id: &str, sev: &str, fp: &str, opened: i64, events: Vec<Event>) -> Ticket {
        let incident = crate::incident::testing::storage_anomaly(id, opened, 0.9, 10.0);
        let resolved_ms = events
            .iter()
            .find(|e| e.kind == "resolved")
            .map(|e| e.at_ms);
        Ticket {
            id: id.into(),
            fingerprint: fp.into(),
            title: "t".into(),
            class: "anomaly".into(),
            label: "storage".into(),
            severity: sev.into(),
            status: if resolved_ms.is_some() {
                Status::Resolved
            } else {
                Status::Open
            },
            muted_by: None,
            assignee: None,
            opened_ms: opened,
            updated_ms: opened,
            resolved_ms,
            duration_seconds: 0.0,
            resolution: None,
            body: String::new(),
            incident,
            timeline: events,
        }
    }

    fn ev(at_ms: i64, kind: &str, detail: serde_json::Value) -> Event {
        Event {
            at_ms,
            kind: kind.into(),
            summary: String::new(),
            detail,
        }
    }

    #[test]
    fn counts_means_and_rates() {
        let null = serde_json::Value::Null;
        let min = 60_000;
        let tickets = vec![
            ticket(
                "INC-1",
                "P1",
                "a",
                0,
                vec![
                    ev(2 * min, "acknowledged", null.clone()),
                    ev(
                        3 * min,
                        "action",
                        serde_json::json!({"result": "ok", "id": "r1"}),
                    ),
                    ev(10 * min, "resolved", null.clone()),
                    ev(
                        10 * min,
                        "action",
                        serde_json::json!({"verify": "resolved", "run": "r1"}),
                    ),
                ],
            ),
            ticket(
                "INC-2",
                "P1",
                "a",
                60 * min,
                vec![
                    ev(64 * min, "acknowledged", null.clone()),
                    ev(
                        65 * min,
                        "action",
                        serde_json::json!({"result": "failed", "id": "r2"}),
                    ),
                ],
            ),
            ticket(
                "INC-3",
                "P3",
                "b",
                120 * min,
                vec![
                    ev(
                        125 * min,
                        "deadline",
                        serde_json::json!({"deadline": "acknowledge", "stage": "warning", "severity": "P3"}),
                    ),
                    ev(
                        126 * min,
                        "deadline",
                        serde_json::json!({"deadline": "acknowledge", "stage": "breach", "severity": "P3"}),
                    ),
                    // Escalated: its next deadline passed at P2.
                    ev(
                        140 * min,
                        "deadline",
                        serde_json::json!({"deadline": "resolve", "stage": "breach", "severity": "P2"}),
                    ),
                    ev(150 * min, "resolved", null.clone()),
                ],
            ),
            // Before the period.
            ticket("INC-0", "P3", "c", -10 * min, vec![]),
        ];
        let r = build(&tickets, 0, 200 * min);
        assert_eq!(r.tickets, 3);
        assert_eq!(r.by_severity.get("P1"), Some(&2));
        assert_eq!(r.by_status.get("resolved"), Some(&2));
        let p1 = &r.response["P1"];
        assert_eq!((p1.acknowledged, p1.resolved), (2, 1));
        assert_eq!(p1.mtta_seconds, Some(180.0));
        assert_eq!(p1.mttr_seconds, Some(600.0));
        assert_eq!(r.response["P3"].mttr_seconds, Some(1800.0));
        assert_eq!(r.response["P3"].mtta_seconds, None);
        assert_eq!(r.top_fingerprints[0].fingerprint, "a");
        assert_eq!(r.top_fingerprints[0].tickets, 2);
        assert_eq!(
            (
                r.remediation.runs,
                r.remediation.succeeded,
                r.remediation.verified
            ),
            (2, 1, 1)
        );
        assert_eq!(r.remediation.success_rate, Some(0.5));
        let md = markdown(&r);
        assert!(md.contains("| P1 | 2 | 2 | 3 min | 1 | 10 min |"), "{md}");
        assert!(md.contains("| P3 | 1 | 0 | - | 1 | 30 min |"), "{md}");
        assert!(md.contains("2 runs, 1 succeeded (50 %)"), "{md}");
        // Breaches by the severity the ticket had when each passed; warnings are not.
        assert_eq!(r.breaches.len(), 2);
        assert_eq!(
            r.breaches["P3"],
            Breaches {
                acknowledge: 1,
                resolve: 0
            }
        );
        assert!(md.contains("| P2 | 0 | 1 |\n| P3 | 1 | 0 |"), "{md}");
        let none = markdown(&build(&tickets[..2], 0, 200 * min));
        assert!(none.contains("| none | 0 | 0 |"), "{none}");
    }
}
