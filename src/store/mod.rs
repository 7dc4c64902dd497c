//! What must survive a restart: the sample history that training, reports and forecasts
//! read.
//!
//! [`History`] is an embedded SQLite file in the state directory (`history.db`); see
//! `history.rs` for the schema and the crash-safety argument, `codec.rs` for how one
//! row's values are encoded.

mod codec;
pub mod history;

pub use history::{History, HistoryError, PruneStats, Stats, Tier, HISTORY_FILE};
