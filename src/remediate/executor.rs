//! One request -> one guarded run -> one record.
//!
//! A [`Request`] names a rule and carries the incident as `ANOMALYD_*` variables;
//! it never carries a command. The executor looks the rule up in its own
//! configuration, applies the guards (breaker, cooldown, runs per window, dry run),
//! checks the executable's trust again (it may have changed since the config was
//! read), runs it and records the result in the guard state. The daemon calls it
//! directly; the privileged runner unit calls it for requests from the spool
//! directory, so a compromised daemon can still only ask for configured rules.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::guards::{Block, GuardFile};
use super::runner::{Job, Outcome, Runner, Status};
use super::{trust, RemediationConfig, Rule};
use crate::store::StateDir;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique per request (also the spool file name).
    pub id: String,
    pub rule: String,
    pub ticket_id: String,
    /// The incident's resource, "" for whole-host incidents (cooldown key).
    pub resource: String,
    /// `ANOMALYD_*` variables describing the incident.
    pub env: Vec<(String, String)>,
    pub requested_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    Ok,
    Failed,
    Timeout,
    DryRun,
    /// Not run now: cooldown or runs per window.
    Skipped,
    /// Not run: breaker open, untrusted executable, unknown rule.
    Refused,
}

impl RunResult {
    pub const ALL: [RunResult; 6] = [
        RunResult::Ok,
        RunResult::Failed,
        RunResult::Timeout,
        RunResult::DryRun,
        RunResult::Skipped,
        RunResult::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Ok => "ok",
            RunResult::Failed => "failed",
            RunResult::Timeout => "timeout",
            RunResult::DryRun => "dry_run",
            RunResult::Skipped => "skipped",
            RunResult::Refused => "refused",
        }
    }

    /// Whether a command actually ran.
    pub fn ran(self) -> bool {
        matches!(self, RunResult::Ok | RunResult::Failed | RunResult::Timeout)
    }
}

/// What the ticket timeline shows for one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub rule: String,
    pub ticket_id: String,
    pub resource: String,
    pub command: Vec<String>,
    pub result: RunResult,
    /// Why it was skipped or refused, what a dry run would have done, or the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    pub started_ms: i64,
    /// This run's failure opened the circuit breaker.
    pub tripped: bool,
}

impl RunRecord {
    /// One line for the timeline.
    pub fn summary(&self) -> String {
        let cmd = self.command.join(" ");
        match (&self.outcome, self.result) {
            (Some(o), _) => format!(
                "remediation {:?}: {} ({}, {:.1} s){}",
                self.rule,
                o.status,
                self.result.as_str(),
                o.duration_ms as f64 / 1000.0,
                if self.tripped {
                    "; rule disabled by its circuit breaker"
                } else {
                    ""
                }
            ),
            (None, RunResult::DryRun) => {
                format!("remediation {:?}: dry run, would run: {cmd}", self.rule)
            }
            (None, r) => format!(
                "remediation {:?}: {}: {}",
                self.rule,
                r.as_str(),
                self.reason.as_deref().unwrap_or("")
            ),
        }
    }
}

pub struct Executor {
    config: RemediationConfig,
    runner: Runner,
    guards: GuardFile,
}

impl Executor {
    pub fn new(config: RemediationConfig, runner: Runner, state: &StateDir) -> Executor {
        Executor {
            config,
            runner,
            guards: GuardFile::in_dir(state),
        }
    }

    pub fn guards(&self) -> &GuardFile {
        &self.guards
    }

    pub fn config(&self) -> &RemediationConfig {
        &self.config
    }

    pub fn execute(&self, req: &Request, now_ms: i64) -> RunRecord {
        let mut rec = RunRecord {
            id: req.id.clone(),
            rule: req.rule.clone(),
            ticket_id: req.ticket_id.clone(),
            resource: req.resource.clone(),
            command: Vec::new(),
            result: RunResult::Refused,
            reason: None,
            outcome: None,
            started_ms: now_ms,
            tripped: false,
        };
        let Some(rule) = self.config.rule(&req.rule) else {
            rec.reason = Some(format!("no rule named {:?} in the configuration", req.rule));
            return rec;
        };
        rec.command = rule.command.clone();
        let env = job_env(rule, &req.env);
        let dry_run = self.config.dry_run || rule.dry_run;
        let g = &rule.guards;
        let decision = if dry_run {
            self.guards
                .read()
                .map(|s| s.check(&rule.name, g, &req.resource, now_ms))
        } else {
            self.guards.update(|s| {
                let block = s.check(&rule.name, g, &req.resource, now_ms);
                if block.is_none() {
                    s.started(&rule.name, g, &req.resource, now_ms);
                }
                block
            })
        };
        match decision {
            Err(e) => {
                rec.reason = Some(format!("guard state unusable, not running: {e}"));
                return rec;
            }
            Ok(Some(block)) => {
                rec.result = match block {
                    Block::Tripped(_) => RunResult::Refused,
                    _ => RunResult::Skipped,
                };
                rec.reason = Some(block.to_string());
                return rec;
            }
            Ok(None) => {}
        }
        if dry_run {
            rec.result = RunResult::DryRun;
            // Names only: a rule's `env` is where tokens go, and this reason ends up
            // on the ticket's timeline, in the API and in the sinks.
            let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
            rec.reason = Some(format!(
                "would run {:?} with environment variables {}",
                rule.command,
                keys.join(" ")
            ));
            return rec;
        }
        // Checked at config time too; the file or a directory may have changed since.
        if let Err(e) = trust::check_executable(Path::new(&rule.command[0])) {
            rec.reason = Some(format!("refusing {:?}: {e}", rule.command[0]));
            return rec;
        }
        if let Some(u) = &g.run_as {
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            if me != 0 && me != u.uid {
                rec.reason = Some(format!(
                    "run_as {:?} needs the daemon to run as root (it runs as uid {me}); \
                     use the runner unit (spool_dir)",
                    u.name
                ));
                return rec;
            }
        }
        let outcome = self.runner.run(&Job {
            argv: rule.command.clone(),
            env,
            timeout: g.timeout,
            output_cap: g.output_cap,
            run_as: g.run_as.clone(),
        });
        rec.result = match outcome.status {
            Status::Exited { code: 0 } => RunResult::Ok,
            Status::TimedOut => RunResult::Timeout,
            _ => RunResult::Failed,
        };
        let failure = (!outcome.status.success()).then(|| outcome.status.to_string());
        let end_ms = now_ms + outcome.duration_ms as i64;
        match self
            .guards
            .update(|s| s.finished(&rule.name, g, failure.as_deref(), end_ms))
        {
            Ok(tripped) => rec.tripped = tripped,
            Err(e) => tracing::warn!("remediation: cannot record the run's result: {e}"),
        }
        rec.outcome = Some(outcome);
        rec
    }
}

/// The rule's fixed variables, then the incident's `ANOMALYD_*` ones. Anything
/// else a request carries is dropped: the environment is ours to define.
fn job_env(rule: &Rule, incident: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = rule.env.clone();
    for (k, v) in incident {
        let name_ok = k.starts_with("ANOMALYD_")
            && k[9..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if name_ok && !v.contains('\0') && !env.iter().any(|(e, _)| e == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    env
}
