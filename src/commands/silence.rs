//! `anomalyd silence ...`: maintenance silences in the ticket store, from the shell.
//! The daemon picks a change up on its next tick.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::tickets::open_store;
use crate::cli::SilenceCommand;
use crate::config::reader::Pattern;
use crate::incident::{Class, Label, Matchers};
use crate::sample::now_ms;
use crate::text::fmt_time;

pub fn run(cmd: SilenceCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
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
            let resource = match &a.resource {
                Some(r) if !r.is_empty() => {
                    Some(Pattern::parse(r).map_err(|e| anyhow::anyhow!("--resource: {e}"))?)
                }
                _ => None,
            };
            let matchers = Matchers {
                label: a.label,
                class: a.class,
                resource,
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
