//! anomalyd
pub mod collect;
pub mod config;
pub mod sample;
