//! Everything that leaves the daemon for other programs: Prometheus text and the HTTP
//! server that serves it (with optional TLS and basic auth).

pub mod config;
pub mod gate;
pub mod http;
pub mod metrics;
pub mod report;
pub mod table;
pub mod webconfig;
