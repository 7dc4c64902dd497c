//! What must survive a restart: the state directory ([`StateDir`], which names every
//! file in it), the sample history that training, reports and forecasts read, and the
//! one way every store opens SQLite ([`sqlite::open`]).
//!
//! [`History`] is an embedded SQLite file in the state directory (`history.db`); see
//! `history.rs` for the schema and the crash-safety argument, `blocks.rs` for the rows
//! kept in memory until they are written, `codec.rs` for how a block is encoded.

mod blocks;
mod codec;
mod config;
pub mod derived;
pub mod history;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod roundtrip;
pub mod sqlite;
mod state_dir;

pub use config::{parse_config, HistoryConfig};
pub use history::{History, HistoryError, PruneStats, Stats, Tier};
pub use state_dir::{
    create_new, refuse_symlink, write_atomic, Scratch, StateDir, FILE_MODE, HISTORY_FILE,
    MODEL_FILE, REMEDIATION_FILE, RISK_FILE, TICKETS_FILE,
};
