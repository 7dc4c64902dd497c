//! Remediation: rules that run known fixes for incidents, under guards.
//!
//! - `config`: the `remediation:` section (rules, guards, diagnose) with trust checks
//!   at parse time (`trust`).
//! - `runner`: runs one command: no shell, clean environment, own process group under
//!   a subreaper supervisor, timeout, output cap, optional user switch.
//! - `guards`: cooldown, runs per window and the circuit breaker, persisted so a
//!   restart does not reset them.
//! - `executor`: one request (rule name + incident as `ANOMALYD_*`) through the
//!   guards and the runner, to one [`executor::RunRecord`].
//! - `diagnose`: the built-in diagnosis (top processes, open files, largest
//!   directories) for every new incident.
//! - `spool`: the directory between the hardened daemon and the root runner unit:
//!   rule-run and diagnose requests out, run records and diagnoses back.
//! - `engine`: incident changes -> requests (inline in replay, a worker thread live,
//!   or the privileged runner unit through `spool`), run records, verification and
//!   `diagnose` results -> ticket timeline [`engine::Event`]s and metrics. With a
//!   spool, diagnoses too are the runner's: the hardened daemon cannot see other
//!   users' processes.

mod config;
pub mod diagnose;
pub mod engine;
pub mod executor;
pub mod guards;
pub mod runner;
pub mod spool;
pub mod supervise;
pub mod trust;

pub use config::{
    parse_config, resolve_user, DiagnoseConfig, Guards, Match, RemediationConfig, Rule, RunAs,
};
pub use engine::{Engine, Event};
