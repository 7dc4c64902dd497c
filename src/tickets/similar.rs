//! Similar past incidents: the knowledge base a new ticket draws on.
//!
//! When a ticket first opens, the store looks through this host's earlier tickets
//! for the ones most like it: first those with the same fingerprint (the same
//! problem on the same resource, newest first), then those whose cause vectors
//! (each cause's share of the anomaly score, by feature) point the same way, by
//! cosine similarity. The best [`TOP`] are kept as a timeline event (`similar`), and
//! every rebuild of the body shows them with what is known about them *now*: their
//! resolution note (`tickets resolve --note`) and the remediation rules verified to
//! have fixed them. An operator's note on an old ticket is thus advice on the next.
//!
//! Cosine rather than a rank measure: causes are few (a handful of features per
//! incident), and their shares carry the signal (a disk filling and a disk busy
//! share features but not their weights).

use std::collections::HashMap;
use std::fmt::Write;

use crate::incident::Incident;
use crate::text::{fmt_duration_ms, fmt_time};

/// How many similar incidents a ticket shows.
pub const TOP: usize = 3;
/// Cause vectors less alike than this are not "similar".
pub const MIN_COSINE: f64 = 0.5;
/// How many of the newest tickets are searched (bounded work at a ticket's opening).
pub const SEARCHED: usize = 1000;
/// "Seen N times in this window".
pub const RECURRENCE_MS: i64 = 30 * 86_400_000;

/// Why an earlier ticket was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Match {
    Fingerprint,
    /// Cosine similarity of the cause vectors, in (MIN_COSINE, 1].
    Causes(f64),
}

/// An earlier ticket as a candidate: its id, fingerprint and incident.
pub struct Candidate<'a> {
    pub id: &'a str,
    pub fingerprint: &'a str,
    pub incident: &'a Incident,
}

/// The earlier tickets most like `inc`, best first: same host only; the same
/// fingerprint before any cause match; `candidates` newest first.
pub fn find<'a>(inc: &Incident, candidates: &[Candidate<'a>]) -> Vec<(&'a str, Match)> {
    let mut same: Vec<(&str, Match)> = Vec::new();
    let mut alike: Vec<(&str, f64)> = Vec::new();
    let me = causes(inc);
    for c in candidates {
        if c.id == inc.id || c.incident.host != inc.host {
            continue;
        }
        if c.fingerprint == inc.fingerprint {
            same.push((c.id, Match::Fingerprint));
        } else {
            let cos = cosine(&me, &causes(c.incident));
            if cos >= MIN_COSINE {
                alike.push((c.id, cos));
            }
        }
    }
    // Stable: equal scores keep the newest first.
    alike.sort_by(|a, b| b.1.total_cmp(&a.1));
    same.extend(alike.into_iter().map(|(id, c)| (id, Match::Causes(c))));
    same.truncate(TOP);
    same
}

/// Each cause's share by feature (negative contributions count as none).
fn causes(inc: &Incident) -> HashMap<&str, f64> {
    let mut m = HashMap::new();
    for c in &inc.causes {
        if c.contribution.is_finite() && c.contribution > 0.0 {
            *m.entry(c.feature.as_str()).or_insert(0.0) += c.contribution;
        }
    }
    m
}

/// Cosine of two sparse vectors; 0 when either is empty.
pub fn cosine(a: &HashMap<&str, f64>, b: &HashMap<&str, f64>) -> f64 {
    let dot: f64 = a.iter().filter_map(|(k, x)| b.get(k).map(|y| x * y)).sum();
    let na = a.values().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.values().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// A similar past incident as the body shows it, read from the store at each
/// rebuild of the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Similar {
    pub id: String,
    pub title: String,
    pub how: Match,
    pub opened_ms: i64,
    pub resolved_ms: Option<i64>,
    /// The operator's note or the engine's `recovered: ...`.
    pub resolution: Option<String>,
    /// Remediation rules verified to have fixed it.
    pub verified_fixes: Vec<String>,
}

/// The body's section on similar past incidents. `earlier`: how often this problem
/// (fingerprint) opened on this host within [`RECURRENCE_MS`] before this ticket.
pub fn render(found: &[Similar], earlier: usize) -> String {
    let mut s = String::from("\n## Similar past incidents\n\n");
    if earlier > 0 {
        let last_fix = found
            .iter()
            .filter(|f| f.how == Match::Fingerprint)
            .find_map(|f| f.verified_fixes.last());
        let _ = write!(
            s,
            "Seen {} times in {} days on this host",
            earlier + 1,
            RECURRENCE_MS / 86_400_000
        );
        match last_fix {
            Some(rule) => {
                let _ = writeln!(s, "; last fixed by `{rule}`, verified.\n");
            }
            None => s.push_str(".\n\n"),
        }
    }
    for f in found {
        let how = match f.how {
            Match::Fingerprint => "same problem".to_string(),
            Match::Causes(c) => format!("causes {:.0} % alike", c * 100.0),
        };
        let when = match f.resolved_ms {
            Some(r) => format!(
                "opened {}, resolved after {}",
                fmt_time(f.opened_ms),
                fmt_duration_ms(r - f.opened_ms)
            ),
            None => format!("opened {}, still open", fmt_time(f.opened_ms)),
        };
        let _ = writeln!(s, "- **{}** {} ({how}; {when})", f.id, f.title);
        if let Some(r) = &f.resolution {
            let _ = writeln!(s, "  - Resolution: {}", one_line(r));
        }
        if f.verified_fixes.is_empty() {
            let _ = writeln!(s, "  - No verified fix.");
        } else {
            let rules: Vec<String> = f.verified_fixes.iter().map(|r| format!("`{r}`")).collect();
            let _ = writeln!(s, "  - Verified fix: {}", rules.join(", "));
        }
    }
    s
}

/// A note as one list item: line breaks would end it.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::testing::storage_anomaly;
    use crate::incident::Cause;

    fn with_causes(id: &str, fp: &str, causes: &[(&str, f64)]) -> Incident {
        let mut i = storage_anomaly(id, 0, 0.9, 10.0);
        i.fingerprint = fp.into();
        i.causes = causes
            .iter()
            .map(|(f, c)| Cause {
                feature: f.to_string(),
                value: 1.0,
                baseline: 0.0,
                contribution: *c,
            })
            .collect();
        i
    }

    #[test]
    fn fingerprint_first_then_cosine_and_never_another_host() {
        let me = with_causes(
            "INC-9",
            "fp-disk",
            &[("disk_used", 8.0), ("disk_busy", 2.0)],
        );
        let a = with_causes("INC-1", "fp-disk", &[("cpu", 9.0)]);
        let b = with_causes(
            "INC-2",
            "fp-other",
            &[("disk_used", 7.0), ("disk_busy", 3.0)],
        );
        let c = with_causes("INC-3", "fp-cpu", &[("cpu", 9.0), ("disk_busy", 1.0)]);
        let mut d = with_causes("INC-4", "fp-disk", &[("disk_used", 8.0)]);
        d.host = "elsewhere".into();
        let e = with_causes("INC-5", "fp-x", &[("disk_used", 1.0), ("cpu", 1.0)]);
        let all = [&e, &d, &c, &b, &a];
        let cands: Vec<Candidate> = all
            .iter()
            .map(|i| Candidate {
                id: &i.id,
                fingerprint: &i.fingerprint,
                incident: i,
            })
            .collect();
        let found = find(&me, &cands);
        let ids: Vec<&str> = found.iter().map(|(id, _)| *id).collect();
        // INC-1: same fingerprint (however unlike its causes); INC-2 0.99 alike;
        // INC-5 0.69 alike; INC-3 0.03 alike is left out, INC-4 is another host.
        assert_eq!(ids, ["INC-1", "INC-2", "INC-5"]);
        assert_eq!(found[0].1, Match::Fingerprint);
        match found[1].1 {
            Match::Causes(c) => assert!(c > 0.98, "{c}"),
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn the_section_says_how_often_and_what_fixed_it() {
        let s = render(
            &[Similar {
                id: "INC-2".into(),
                title: "storage: /data full".into(),
                how: Match::Fingerprint,
                opened_ms: 0,
                resolved_ms: Some(600_000),
                resolution: Some("rotated\nthe logs".into()),
                verified_fixes: vec!["clean-app-logs".into()],
            }],
            3,
        );
        assert!(
            s.contains(
                "Seen 4 times in 30 days on this host; last fixed by `clean-app-logs`, verified."
            ),
            "{s}"
        );
        assert!(s.contains("- **INC-2** storage: /data full (same problem; opened 1970-01-01 00:00:00 UTC, resolved after 10 min)"), "{s}");
        assert!(s.contains("  - Resolution: rotated the logs\n"), "{s}");
        assert!(s.contains("  - Verified fix: `clean-app-logs`"), "{s}");
    }
}
