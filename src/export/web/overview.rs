//! The Overview page: the model's state, the anomaly score against its threshold,
//! the top causes now, every filesystem, memory and swap with time to exhaustion, and
//! the open incidents; the Latency page's frame.

use std::time::Duration;

use maud::{html, Markup};

use super::live::Snapshot;
use super::page::{duration_s, page, quantity, time, Nav};
use super::query::{params, range};
use super::{html, open_tickets, page_refusal, tickets, Dashboard, Resp};
use crate::tickets::store::Ticket;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// `GET /`.
pub async fn serve(d: &Dashboard, query: Option<String>) -> Resp {
    if let Err(r) = params(query.as_deref(), &["since"]).and_then(|p| range(&p, DAY)) {
        return page_refusal(&r, Nav::Overview);
    }
    let snapshot = d.live.get();
    let open = match open_tickets(d).await {
        Ok(t) => t,
        Err(r) => return page_refusal(&r, Nav::Overview),
    };
    html(200, render(&snapshot, &open))
}

fn phase_text(s: &Snapshot) -> String {
    let m = &s.model;
    match m.phase.as_str() {
        "" => "starting (no sample yet)".into(),
        "warming_up" => format!(
            "warming up: scores in {}",
            duration_s(m.ready_seconds)
        ),
        "probation" => format!(
            "probation: model {} old, pages in {}",
            duration_s(m.age_seconds),
            duration_s(m.ready_seconds)
        ),
        "trained" => format!("trained, model {} old", duration_s(m.age_seconds)),
        other => other.to_string(),
    }
}

pub fn render(s: &Snapshot, open: &[Ticket]) -> Markup {
    page(
        "Overview",
        Nav::Overview,
        Some("/api/v1/live"),
        html! {
            h1 { "Overview" }
            section.cards {
                div.card #model {
                    h2 { "Model" }
                    p #phase data-phase=(s.model.phase) { (phase_text(s)) }
                    @if s.model.training { p.note { "training now" } }
                }
                div.card #now {
                    h2 { "Anomaly score now" }
                    p.big {
                        span #score { (s.score.map_or("-".into(), crate::text::fmt_value)) }
                        " / threshold "
                        span #threshold { (s.threshold.map_or("-".into(), crate::text::fmt_value)) }
                    }
                    p #anomaly class=[s.anomaly.then_some("alarm")] {
                        @if s.anomaly { "anomalous" } @else { "normal" }
                    }
                    @if let Some(r) = s.fault_risk {
                        p { "fault risk " span #risk { (quantity("risk_ratio", Some(r))) } }
                    }
                }
            }
            section #causes-now {
                h2 { "Top causes now" }
                table #causes {
                    thead { tr { th { "Feature" } th { "Contribution" } } }
                    tbody {
                        @for c in &s.causes {
                            tr { td { (c.feature) } td { (crate::text::fmt_value(c.contribution)) } }
                        }
                    }
                }
            }
            section {
                h2 { "Filesystems, memory and swap" }
                table #resources {
                    thead { tr {
                        th { "Resource" } th { "Used" } th { "Size" } th { "Available" }
                        th { "Runs out in" }
                    } }
                    tbody {
                        @for r in &s.resources {
                            tr class={ "resource " (r.kind) } {
                                td { (r.name) }
                                td { (quantity("used_ratio", r.used_ratio)) }
                                td { (quantity("size_bytes", r.size_bytes)) }
                                td { (quantity("available_bytes", r.available_bytes)) }
                                td { (r.seconds_until_exhaustion.map_or("not at this trend".into(), |s| duration_s(Some(s)))) }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Open incidents" }
                (tickets::table(open))
            }
            p.foot { "Sample of " span #at { (if s.at_ms > 0 { time(s.at_ms) } else { "-".into() }) } }
        },
    )
}

/// `GET /latency`.
pub async fn latency(_d: &Dashboard, query: Option<String>) -> Resp {
    if let Err(r) = params(query.as_deref(), &["since", "target"]).and_then(|p| range(&p, HOUR)) {
        return page_refusal(&r, Nav::Latency);
    }
    html(
        200,
        page(
            "Latency",
            Nav::Latency,
            None,
            html! { h1 { "Latency" } },
        ),
    )
}
