//! The Tickets pages: the list, each ticket's page, and the operator's actions on it
//! (acknowledge, assign, resolve), applied through the ticket store exactly as
//! `anomalyd tickets ack|assign|resolve` applies them, so they land on the timeline and
//! go to the sinks the same way.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::markdown;
use super::page::{duration_s, page, time, trusted, Nav};
use super::query::{refuse, Refusal};
use crate::tickets::store::{Event, Status, Store, StoreError, Ticket};

/// Longest assignee or resolution note accepted from a form.
const MAX_FIELD: usize = 200;

fn status_class(s: Status) -> &'static str {
    s.as_str()
}

/// `GET /tickets[?open=true]`.
pub fn list_page(tickets: &[Ticket], open_only: bool) -> Markup {
    let poll = if open_only {
        "/api/v1/tickets?open=true"
    } else {
        "/api/v1/tickets"
    };
    page(
        "Tickets",
        Nav::Tickets,
        Some(poll),
        html! {
            h1 { "Tickets" }
            p.filter {
                @if open_only {
                    "Open only · " a href="/tickets" { "show all" }
                } @else {
                    "All · " a href="/tickets?open=true" { "open only" }
                }
            }
            (table(tickets))
        },
    )
}

/// The ticket table, also the overview's list of open incidents.
pub fn table(tickets: &[Ticket]) -> Markup {
    html! {
        table.tickets #tickets {
            thead { tr {
                th { "Ticket" } th { "Status" } th { "Severity" } th { "Label" }
                th { "Title" } th { "Assignee" } th { "Opened" } th { "Duration" }
            } }
            tbody {
                @for t in tickets {
                    tr.ticket-row data-id=(t.id) {
                        td { a href={ "/tickets/" (t.id) } { (t.id) } }
                        td { span class={ "status " (status_class(t.status)) } { (t.status.as_str()) } }
                        td { span class={ "sev " (t.severity) } { (t.severity) } }
                        td { (t.label) }
                        td { (t.title) }
                        td { (t.assignee.as_deref().unwrap_or("-")) }
                        td { (time(t.opened_ms)) }
                        td { (duration_s(Some(t.duration_seconds))) }
                    }
                }
                @if tickets.is_empty() {
                    tr.empty { td colspan="8" { "No tickets." } }
                }
            }
        }
    }
}

fn timeline(events: &[Event]) -> Markup {
    html! {
        table.timeline #timeline {
            thead { tr { th { "When" } th { "Event" } th { "Detail" } } }
            tbody {
                @for e in events {
                    tr class={ "event " (e.kind) } {
                        td { (time(e.at_ms)) } td { (e.kind) } td { (e.summary) }
                    }
                }
            }
        }
    }
}

/// `GET /tickets/ID`. `csrf`: the token for the action forms, `None` when this
/// client may only read.
pub fn ticket_page(t: &Ticket, csrf: Option<&str>) -> Markup {
    let runs: Vec<&Event> = t.timeline.iter().filter(|e| e.kind == "action").collect();
    let diagnosis = t.timeline.iter().rev().find(|e| e.kind == "diagnose");
    let poll = format!("/api/v1/tickets/{}", t.id);
    page(
        &t.id,
        Nav::Tickets,
        Some(&poll),
        html! {
            h1 { (t.id) ": " span #title { (t.title) } }
            dl.fields #fields data-ticket=(t.id) {
                dt { "Status" } dd { span #status class={ "status " (status_class(t.status)) } { (t.status.as_str()) } }
                dt { "Severity" } dd #severity { (t.severity) }
                dt { "Label" } dd #label { (t.label) }
                dt { "Assignee" } dd #assignee { (t.assignee.as_deref().unwrap_or("-")) }
                dt { "Opened" } dd { (time(t.opened_ms)) }
                dt { "Duration" } dd #duration { (duration_s(Some(t.duration_seconds))) }
                dt { "Resolution" } dd #resolution { (t.resolution.as_deref().unwrap_or("-")) }
                @if let Some(s) = &t.muted_by { dt { "Muted by" } dd { (s) } }
            }
            @match csrf {
                Some(token) if t.status != Status::Resolved => { (actions(&t.id, token, true)) }
                Some(token) => { (actions(&t.id, token, false)) }
                None => { p.readonly { "Read-only: actions need basic auth, or "
                    code { "http.dashboard_loopback_writes" } " for loopback clients." } }
            }
            h2 { "Timeline" }
            (timeline(&t.timeline))
            h2 { "Diagnosis" }
            @match diagnosis {
                Some(d) => p #diagnosis { (time(d.at_ms)) ": " (d.summary) " (details in the report below)" },
                None => p #diagnosis { "No diagnosis ran for this ticket." },
            }
            h2 { "Remediation runs" }
            @if runs.is_empty() {
                p #runs { "None." }
            } @else {
                ul #runs { @for r in &runs { li { (time(r.at_ms)) ": " (r.summary) } } }
            }
            h2 { "Report" }
            article.body #body { (trusted(markdown::render(&t.body))) }
        },
    )
}

fn actions(id: &str, token: &str, open: bool) -> Markup {
    html! {
        div.actions {
            @if open {
                form method="post" action={ "/tickets/" (id) "/ack" } {
                    input type="hidden" name="csrf" value=(token);
                    button #ack type="submit" { "Acknowledge" }
                }
            }
            form method="post" action={ "/tickets/" (id) "/assign" } {
                input type="hidden" name="csrf" value=(token);
                input #who name="who" required placeholder="assignee" maxlength=(MAX_FIELD);
                button #assign type="submit" { "Assign" }
            }
            @if open {
                form method="post" action={ "/tickets/" (id) "/resolve" } {
                    input type="hidden" name="csrf" value=(token);
                    input #note name="note" required placeholder="how it was resolved" maxlength=(MAX_FIELD);
                    button #resolve type="submit" { "Resolve" }
                }
            }
        }
    }
}

/// An operator's step, from the form it was posted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Ack,
    Assign(String),
    Resolve(String),
}

fn field(form: &BTreeMap<String, String>, name: &str, what: &str) -> Result<String, Refusal> {
    let v = form.get(name).map(|v| v.trim()).unwrap_or("");
    if v.is_empty() {
        return Err(refuse(400, format!("{name}: {what} is required")));
    }
    if v.chars().count() > MAX_FIELD || v.chars().any(char::is_control) {
        return Err(refuse(
            400,
            format!("{name}: at most {MAX_FIELD} characters on one line"),
        ));
    }
    Ok(v.to_string())
}

impl Action {
    /// The action named by the last part of the path (`ack`, `assign`, `resolve`).
    pub fn parse(name: &str, form: &BTreeMap<String, String>) -> Result<Action, Refusal> {
        match name {
            "ack" => Ok(Action::Ack),
            "assign" => field(form, "who", "the assignee").map(Action::Assign),
            "resolve" => field(form, "note", "how it was resolved").map(Action::Resolve),
            _ => Err(refuse(404, format!("no action {name:?}"))),
        }
    }

    /// Apply it as `by`, as the CLI does.
    pub fn apply(&self, store: &Store, id: &str, by: &str, now_ms: i64) -> Result<(), Refusal> {
        let done = match self {
            Action::Ack => store.ack(id, Some(by), now_ms).map(|_| ()),
            Action::Assign(who) => store.assign(id, who, Some(by), now_ms).map(|_| ()),
            Action::Resolve(note) => store.resolve(id, note, Some(by), now_ms),
        };
        done.map_err(|e| match e {
            StoreError::NoTicket(id) => refuse(404, format!("no ticket {id}")),
            e @ StoreError::Resolved { .. } => refuse(409, e.to_string()),
            e => {
                tracing::warn!("dashboard: {e}");
                refuse(503, "the ticket store failed; try again")
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_has_a_header_cell_over_each_cell_of_its_rows() {
        let e = Event {
            at_ms: 1_700_000_000_000,
            kind: "opened".into(),
            summary: "opened: cpu busy".into(),
            detail: serde_json::Value::Null,
        };
        let html = timeline(&[e]).into_string();
        let (head, body) = html.split_once("</thead>").unwrap();
        assert_eq!(
            head.matches("<th>").count(),
            body.matches("<td>").count(),
            "{html}"
        );
        assert!(
            !head.contains("<th></th>"),
            "a header without a name: {html}"
        );
        assert!(
            head.contains("<th>When</th><th>Event</th><th>Detail</th>"),
            "{html}"
        );
    }

    #[test]
    fn forms_need_their_fields_on_one_short_line() {
        let form = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(Action::parse("ack", &BTreeMap::new()), Ok(Action::Ack));
        assert_eq!(
            Action::parse("assign", &form("who", " alice ")),
            Ok(Action::Assign("alice".into()))
        );
        assert_eq!(
            Action::parse("assign", &form("who", ""))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            Action::parse("resolve", &form("note", "a\nb"))
                .unwrap_err()
                .status,
            400
        );
        let long = "x".repeat(MAX_FIELD + 1);
        assert_eq!(
            Action::parse("resolve", &form("note", &long))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            Action::parse("delete", &BTreeMap::new())
                .unwrap_err()
                .status,
            404
        );
    }
}
