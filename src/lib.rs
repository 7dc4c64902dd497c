//! anomalyd: a host daemon that samples, learns what normal looks like on this host,
//! and says when (and why) it is not.
//!
//! The data path, by folder:
//! - `collect/`: one collector per area (cpu, memory, disk, network, ping) fills a
//!   [`sample::Sample`] every tick; `config` says which run and where `/proc` is.
//! - `pipeline`: each sample is stored (`store/`), turned into a
//!   [`sample::Record`] of named features, scored by the model (`model/`).
//! - `export/`: the sample (with its scores) is rendered once per tick as Prometheus
//!   text and served over HTTP; `collect --once` prints it as a table.
//! - `daemon`: the tick loop, signals (TERM/INT stop, HUP reloads) and systemd
//!   notifications; `main.rs`/`cli.rs` only parse arguments and map errors to exit codes.
pub mod cli;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod export;
pub mod forecast;
pub mod incident;
pub mod logging;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod remediate;
pub mod replay;
pub mod sample;
pub mod signals;
pub mod store;
pub mod text;
pub mod tickets;
