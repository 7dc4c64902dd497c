//! `anomalyd remediation ...`: the subcommands (parsed here to keep `cli.rs` short).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::executor::Executor;
use super::guards::GuardFile;
use super::runner::Runner;
use super::spool::Spool;
use super::supervise::{supervise, Supervise};
use crate::cli::Common;
use crate::daemon::{load_config, prepare_state_dir, Overrides};

#[derive(Subcommand, Debug)]
pub enum RemediationCommand {
    /// Show each rule's guard state: breaker, recent runs, cooldowns.
    Status {
        #[command(flatten)]
        common: Common,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-enable a rule its circuit breaker disabled.
    Enable {
        #[command(flatten)]
        common: Common,
        /// The rule's name.
        rule: String,
    },
    /// Run the requests queued in the spool directory, then exit (what the
    /// privileged `anomalyd-remediate.service` runs).
    Serve {
        #[command(flatten)]
        common: Common,
    },
    /// (internal) Run one command under the subreaper supervisor; used by the daemon.
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        timeout_ms: u64,
        #[arg(long, default_value_t = 2000)]
        grace_ms: u64,
        #[arg(long)]
        uid: Option<u32>,
        #[arg(long)]
        gid: Option<u32>,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

fn config(common: &Common) -> anyhow::Result<crate::config::Config> {
    let o = Overrides {
        state_dir: common.state_dir.clone(),
        ..Default::default()
    };
    Ok(load_config(common.config.as_deref(), &o)?)
}

pub fn run(command: RemediationCommand) -> anyhow::Result<ExitCode> {
    match command {
        RemediationCommand::Status { common, json } => {
            let c = config(&common)?;
            let state = GuardFile::in_dir(&c.state_dir).read()?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &state)?;
                writeln!(out)?;
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
            let c = config(&common)?;
            if c.remediation.rule(&rule).is_none() {
                anyhow::bail!("no rule named {rule:?} in the configuration");
            }
            let file = GuardFile::in_dir(&c.state_dir);
            if file.update(|s| s.enable(&rule))? {
                println!("{rule}: re-enabled");
            } else {
                println!("{rule}: was not disabled");
            }
            Ok(ExitCode::SUCCESS)
        }
        RemediationCommand::Serve { common } => {
            let c = config(&common)?;
            let dir = c.remediation.spool_dir.clone().ok_or_else(|| {
                anyhow::anyhow!("remediation.spool_dir is not set in the configuration")
            })?;
            let state_dir = prepare_state_dir(&c.state_dir)?;
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
