//! `anomalyd remediation ...`: guard state, re-enabling a tripped rule, the privileged
//! runner's `serve`, and the supervisor every command runs under.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::resolve_common;
use crate::cli::RemediationCommand;
use crate::remediate::executor::Executor;
use crate::remediate::guards::GuardFile;
use crate::remediate::runner::Runner;
use crate::remediate::spool::Spool;
use crate::remediate::supervise::{supervise, Supervise};
use crate::store::StateDir;

pub fn run(command: RemediationCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match command {
        RemediationCommand::Status { common, json } => {
            let (c, state_dir) = resolve_common(&common)?;
            let state = GuardFile::in_dir(&state_dir).read()?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &state)?;
                writeln!(out)?;
                return Ok(ExitCode::SUCCESS);
            }
            if c.remediation.rules.is_empty() {
                let from = common
                    .config
                    .as_ref()
                    .map_or("the built-in defaults".to_string(), |p| {
                        p.display().to_string()
                    });
                writeln!(
                    out,
                    "no remediation rules configured (remediation.rules in {from})"
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let now = crate::sample::now_ms();
            writeln!(
                out,
                "{:<24} {:<9} {:>8} {:>13}  last run",
                "RULE", "STATE", "FAILURES", "RUNS/WINDOW"
            )?;
            for rule in &c.remediation.rules {
                let s = state.rules.get(&rule.name).cloned().unwrap_or_default();
                let since = now - rule.guards.window.as_millis() as i64;
                let runs = s.runs_ms.iter().filter(|&&t| t > since).count();
                let last = s.runs_ms.iter().max().map_or("never".to_string(), |t| {
                    format!("{} ago", crate::text::fmt_duration_ms(now - t))
                });
                writeln!(
                    out,
                    "{:<24} {:<9} {:>8} {:>13}  {last}",
                    rule.name,
                    if s.tripped.is_some() {
                        "TRIPPED"
                    } else {
                        "enabled"
                    },
                    s.consecutive_failures,
                    format!("{runs}/{}", rule.guards.max_runs),
                )?;
                if let Some(t) = &s.tripped {
                    writeln!(
                        out,
                        "    tripped after {} failures, last: {}",
                        t.failures, t.last_error
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RemediationCommand::Enable { common, rule } => {
            let (c, state_dir) = resolve_common(&common)?;
            if c.remediation.rule(&rule).is_none() {
                anyhow::bail!("no rule named {rule:?} in the configuration");
            }
            let file = GuardFile::in_dir(&state_dir);
            if file.update(|s| s.enable(&rule))? {
                writeln!(out, "{rule}: re-enabled")?;
            } else {
                writeln!(out, "{rule}: was not disabled")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RemediationCommand::Serve { common } => {
            let (c, state_dir) = resolve_common(&common)?;
            let dir = c.remediation.spool_dir.clone().ok_or_else(|| {
                anyhow::anyhow!("remediation.spool_dir is not set in the configuration")
            })?;
            let state_dir = StateDir::create(state_dir.path())?;
            let exec = Executor::new(c.remediation.clone(), Runner::current()?, &state_dir);
            let n = Spool::at(&dir).serve(&exec);
            tracing::info!("handled {n} remediation requests");
            Ok(ExitCode::SUCCESS)
        }
        RemediationCommand::Supervise {
            timeout_ms,
            grace_ms,
            uid,
            gid,
            argv,
        } => {
            let code = supervise(&Supervise {
                argv,
                timeout: Duration::from_millis(timeout_ms),
                grace: Duration::from_millis(grace_ms),
                uid,
                gid,
            });
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
    }
}
