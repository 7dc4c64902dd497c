//! `anomalyd tickets ...` and `anomalyd silence ...`: the ticket store from the shell.
//! Each command opens `<state_dir>/tickets.db` (the daemon may be running: SQLite
//! lets both at it), does one thing, and exits; operator actions are recorded in the
//! timeline and sent to the sinks like the daemon's own changes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::store::{Matchers, Store, Ticket};
use crate::cli::Common;
use crate::incident::{Class, Label};
use crate::sample::now_ms;
use crate::text::{fmt_duration_ms, fmt_time};

#[derive(Subcommand, Debug)]
pub enum TicketsCommand {
    /// List tickets, newest first.
    List {
        #[command(flatten)]
        common: Common,
        /// Only tickets not resolved yet.
        #[arg(long)]
        open: bool,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket: its fields, report and timeline.
    Show {
        #[command(flatten)]
        common: Common,
        /// Ticket id, e.g. INC-42 (or 42).
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge a ticket ("someone is on it").
    Ack {
        #[command(flatten)]
        common: Common,
        id: String,
        /// Who acknowledges (default: $SUDO_USER or $USER).
        #[arg(long, value_name = "WHO")]
        by: Option<String>,
    },
    /// Assign a ticket to someone.
    Assign {
        #[command(flatten)]
        common: Common,
        id: String,
        who: String,
    },
    /// Resolve a ticket with a note. If the problem goes on, the daemon opens it again.
    Resolve {
        #[command(flatten)]
        common: Common,
        id: String,
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SilenceCommand {
    /// Silence matching incidents for a while: they are recorded, their tickets kept
    /// from the sinks.
    Add(SilenceAdd),
    /// List silences (active and future; all with --all).
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove a silence.
    Remove {
        #[command(flatten)]
        common: Common,
        /// Silence id, e.g. S-3 (or 3).
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct SilenceAdd {
    #[command(flatten)]
    pub common: Common,
    /// cpu, memory, storage, network, latency or other.
    #[arg(long)]
    pub label: Option<String>,
    /// anomaly, forecast or risk.
    #[arg(long)]
    pub class: Option<String>,
    /// A mount point, device, interface or ping target, e.g. /var.
    #[arg(long)]
    pub resource: Option<String>,
    /// An exact incident fingerprint.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// How long, e.g. 2h or 30m.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,
    /// When it starts (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    pub starts: Option<String>,
    #[arg(long)]
    pub comment: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
}

/// Open the store of the state directory named by `common` (or its config).
fn open_store(common: &Common) -> anyhow::Result<Store> {
    let overrides = crate::daemon::Overrides {
        state_dir: common.state_dir.clone(),
        ..Default::default()
    };
    let config = crate::daemon::load_config(common.config.as_deref(), &overrides)?;
    let db: PathBuf = config.state_dir.join("tickets.db");
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

fn operator() -> Option<String> {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

pub fn run_tickets(cmd: TicketsCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
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
            open_store(&common)?.ack(&id, by.as_deref(), now)?;
            writeln!(out, "{id}: acknowledged")?;
        }
        TicketsCommand::Assign { common, id, who } => {
            let id = ticket_id(&id);
            anyhow::ensure!(!who.trim().is_empty(), "WHO must not be empty");
            open_store(&common)?.assign(&id, who.trim(), now)?;
            writeln!(out, "{id}: assigned to {}", who.trim())?;
        }
        TicketsCommand::Resolve { common, id, note } => {
            let id = ticket_id(&id);
            anyhow::ensure!(
                !note.trim().is_empty(),
                "--note must say how it was resolved"
            );
            open_store(&common)?.resolve(&id, note.trim(), now)?;
            writeln!(out, "{id}: resolved")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_silence(cmd: SilenceCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    match cmd {
        SilenceCommand::Add(a) => {
            if let Some(l) = &a.label {
                anyhow::ensure!(
                    Label::parse(l).is_some(),
                    "--label {l:?} is not one of: cpu, memory, storage, network, latency, other"
                );
            }
            if let Some(c) = &a.class {
                anyhow::ensure!(
                    Class::parse(c).is_some(),
                    "--class {c:?} is not one of: anomaly, forecast, risk"
                );
            }
            let matchers = Matchers {
                label: a.label,
                class: a.class,
                resource: a.resource,
                fingerprint: a.fingerprint,
            };
            anyhow::ensure!(
                !matchers.is_empty(),
                "say what to silence: --label, --class, --resource and/or --fingerprint"
            );
            anyhow::ensure!(!a.duration.is_zero(), "--duration must be more than 0");
            let starts = match &a.starts {
                None => now,
                Some(s) => crate::text::parse_timestamp_ms(s).with_context(|| {
                    format!("--starts {s:?} is not a time (RFC 3339, e.g. 2025-06-01T22:00:00Z)")
                })?,
            };
            let ends = starts.saturating_add(a.duration.as_millis() as i64);
            let id =
                open_store(&a.common)?.add_silence(&matchers, starts, ends, &a.comment, now)?;
            writeln!(
                out,
                "{id}: silencing {matchers} from {} to {}",
                fmt_time(starts),
                fmt_time(ends)
            )?;
        }
        SilenceCommand::List { common, all, json } => {
            let silences = open_store(&common)?.silences(now, all)?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &silences)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<6} {:<23} {:<23} {:<30} COMMENT",
                    "ID", "STARTS", "ENDS", "MATCHES"
                )?;
                for s in silences {
                    writeln!(
                        out,
                        "{:<6} {:<23} {:<23} {:<30} {}",
                        s.id,
                        fmt_time(s.starts_ms),
                        fmt_time(s.ends_ms),
                        s.matchers.to_string(),
                        s.comment
                    )?;
                }
            }
        }
        SilenceCommand::Remove { common, id } => {
            let id = if id.chars().all(|c| c.is_ascii_digit()) {
                format!("S-{id}")
            } else {
                id
            };
            open_store(&common)?.remove_silence(&id)?;
            writeln!(out, "{id}: removed")?;
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
