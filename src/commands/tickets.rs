//! `anomalyd tickets ...`: the ticket store from the shell. Each command opens
//! `<state_dir>/tickets.db` (the daemon may be running: SQLite lets both at it), does
//! one thing, and exits; operator actions are recorded in the timeline and sent to
//! the sinks like the daemon's own changes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Common, TicketsCommand};
use crate::sample::now_ms;
use crate::text::{fmt_duration_ms, fmt_time};
use crate::tickets::{summary, Store, Ticket};

/// Open the store of the state directory named by `common` (or its config).
pub(super) fn open_store(common: &Common) -> anyhow::Result<Store> {
    let (config, state) = super::resolve_common(common)?;
    let db = state.tickets();
    anyhow::ensure!(
        db.exists(),
        "no ticket store at {} (has the daemon run with this state directory?)",
        db.display()
    );
    Ok(Store::open(&db)?.with_sinks(config.tickets.sink_names()))
}

/// `INC-42` or `42`.
fn ticket_id(id: &str) -> String {
    if id.chars().all(|c| c.is_ascii_digit()) {
        format!("INC-{id}")
    } else {
        id.to_string()
    }
}

/// Who is at the keyboard: the sudo caller, the login's variables, else the name the
/// password database has for our uid (cron, `env -i` and some containers set no
/// `$USER`; an acknowledgement must still say by whom).
fn operator() -> Option<String> {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            crate::remediate::resolve_user(&uid.to_string())
                .map(|u| u.name)
                .ok()
                .filter(|n| !n.is_empty())
        })
}

pub fn run(cmd: TicketsCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    match cmd {
        TicketsCommand::List { common, open, json } => {
            let tickets = open_store(&common)?.list(open, now)?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &tickets)?;
                writeln!(out)?;
            } else {
                write_table(out, &tickets)?;
            }
        }
        TicketsCommand::Show { common, id, json } => {
            let id = ticket_id(&id);
            let t = open_store(&common)?
                .get(&id, now)?
                .with_context(|| format!("no ticket {id}"))?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &t)?;
                writeln!(out)?;
            } else {
                write_ticket(out, &t)?;
            }
        }
        TicketsCommand::Ack { common, id, by } => {
            let id = ticket_id(&id);
            let by = by.or_else(operator);
            if open_store(&common)?.ack(&id, by.as_deref(), now)? {
                writeln!(out, "{id}: acknowledged")?;
            } else {
                writeln!(out, "{id}: already acknowledged")?;
            }
        }
        TicketsCommand::Assign {
            common,
            id,
            who,
            by,
        } => {
            let id = ticket_id(&id);
            anyhow::ensure!(!who.trim().is_empty(), "WHO must not be empty");
            let by = by.or_else(operator);
            if open_store(&common)?.assign(&id, who.trim(), by.as_deref(), now)? {
                writeln!(out, "{id}: assigned to {}", who.trim())?;
            } else {
                writeln!(out, "{id}: already assigned to {}", who.trim())?;
            }
        }
        TicketsCommand::Resolve {
            common,
            id,
            note,
            by,
        } => {
            let id = ticket_id(&id);
            anyhow::ensure!(
                !note.trim().is_empty(),
                "--note must say how it was resolved"
            );
            let by = by.or_else(operator);
            open_store(&common)?.resolve(&id, note.trim(), by.as_deref(), now)?;
            writeln!(out, "{id}: resolved")?;
        }
        TicketsCommand::Report {
            common,
            since,
            until,
            format,
        } => {
            let until = match &until {
                None => now,
                Some(s) => crate::text::parse_timestamp_ms(s).with_context(|| {
                    format!("--until {s:?} is not a time (RFC 3339, e.g. 2025-06-01T22:00:00Z)")
                })?,
            };
            let from = until.saturating_sub(since.as_millis() as i64);
            let store = open_store(&common)?;
            let mut tickets = store.list(false, until)?;
            tickets.retain(|t| (from..=until).contains(&t.opened_ms));
            for t in &mut tickets {
                t.timeline = store.timeline(&t.id)?;
            }
            let report = summary::build(&tickets, from, until);
            if format == "json" {
                serde_json::to_writer_pretty(&mut *out, &report)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", summary::markdown(&report))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_table(out: &mut dyn Write, tickets: &[Ticket]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<8} {:<12} {:<3} {:<8} {:<23} {:<12} {:<10} TITLE",
        "ID", "STATUS", "SEV", "LABEL", "OPENED", "DURATION", "ASSIGNEE"
    )?;
    for t in tickets {
        let status = if t.muted_by.is_some() {
            format!("{}*", t.status.as_str())
        } else {
            t.status.as_str().to_string()
        };
        writeln!(
            out,
            "{:<8} {:<12} {:<3} {:<8} {:<23} {:<12} {:<10} {}",
            t.id,
            status,
            t.severity,
            t.label,
            fmt_time(t.opened_ms),
            fmt_duration_ms((t.duration_seconds * 1000.0) as i64),
            t.assignee.as_deref().unwrap_or("-"),
            t.title
        )?;
    }
    if tickets.iter().any(|t| t.muted_by.is_some()) {
        writeln!(out, "(* muted by a silence: not sent to the sinks)")?;
    }
    Ok(())
}

fn write_ticket(out: &mut dyn Write, t: &Ticket) -> std::io::Result<()> {
    writeln!(out, "{}  {}", t.id, t.title)?;
    writeln!(out, "status:     {}", t.status.as_str())?;
    writeln!(out, "severity:   {}", t.severity)?;
    writeln!(out, "label:      {}", t.label)?;
    writeln!(out, "assignee:   {}", t.assignee.as_deref().unwrap_or("-"))?;
    writeln!(out, "opened:     {}", fmt_time(t.opened_ms))?;
    writeln!(
        out,
        "duration:   {}",
        fmt_duration_ms((t.duration_seconds * 1000.0) as i64)
    )?;
    writeln!(
        out,
        "resolution: {}",
        t.resolution.as_deref().unwrap_or("-")
    )?;
    if let Some(m) = &t.muted_by {
        writeln!(out, "muted by:   {m}")?;
    }
    writeln!(out, "\n{}\n\n## Timeline\n", t.body.trim_end())?;
    for e in &t.timeline {
        writeln!(out, "- {} {:<12} {}", fmt_time(e.at_ms), e.kind, e.summary)?;
    }
    Ok(())
}
