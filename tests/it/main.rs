//! Every integration test, in one test binary (cargo's own layout): linking one binary
//! instead of one per file is most of what the test command's time went to. One module
//! per area; the helpers they share are in `common`.

mod common;

mod cli;
mod config;
mod daemon;
mod dashboard;
mod fleet;
mod forecast;
mod fuzz;
mod hardening;
mod history_crash;
mod history_full;
mod incidents;
mod layers;
mod metrics_golden;
mod model_daemon;
mod outbox_fault;
mod outbox_kill;
mod package;
mod prometheus;
mod remediation;
mod remediation_replay;
mod remediation_runner;
mod remediation_scripts;
mod report;
mod response;
mod run_script;
mod sinks_alertmanager;
mod sinks_alertmanager_cluster;
mod sinks_github;
mod sinks_jira;
mod sinks_reload;
mod sinks_smtp;
mod sinks_webhook;
mod smd_quality;
mod systemd;
mod tickets;
