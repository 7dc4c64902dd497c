//! anomalyd: a host daemon that samples, learns what normal looks like on this host,
//! and says when (and why) it is not.
//!
//! The tick path, each stage called by `pipeline` in this order:
//!
//! `collect` → `store` → `model` → `forecast` → `incident` → `tickets` → `remediate`
//!
//! - `collect/`: one collector per area (cpu, memory, disk, network, ping) fills a
//!   [`sample::Sample`] every tick; each collector owns its config.
//! - `store/`: the state directory ([`store::StateDir`]), the sample history, the one
//!   way every store opens SQLite.
//! - `model/`: features, training, scoring, the persisted model.
//! - `forecast/`: time to exhaustion, forecast events, fault risk.
//! - `incident/`: anomalies and forecasts -> incidents (debounce, dedup, severity),
//!   silences, ticket ids.
//! - `tickets/`: records what `incident` decided: ticket store, reports, outbox, sinks.
//! - `remediate/`: rules, guards, runner, diagnosis; its escalations are an input of
//!   the next tick.
//!
//! Around the path: `config/`, `text`, `sample`, `mode`, `shutdown`, `notify`,
//! `logging` and `memory` (the allocator's settings) are leaves every layer may use;
//! `view/` reads what the stages stored for people (host facts, health score,
//! timelines, heatmaps, charts, the health report); `settings` assembles the whole
//! configuration from each stage's section; `export/` renders and serves /metrics and
//! the report; `pipeline/` drives the stages; `daemon` runs the tick loop, reloads and
//! the one shutdown; `commands/` has one file per subcommand and resolves the command
//! line into a config and a state directory; `cli` parses, `main.rs` dispatches.
//! Imports only go down this list (`tests/it/layers.rs` checks it).
#[cfg(test)]
mod child_test;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod eval;
pub mod export;
pub mod forecast;
pub mod incident;
pub mod logging;
pub mod memory;
pub mod mode;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod remediate;
pub mod sample;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod text;
pub mod tickets;
pub mod view;
