//! Everything that leaves the daemon for other programs: Prometheus text and the HTTP
//! server that serves it (with optional TLS and basic auth).

pub mod http;
pub mod metrics;
pub mod table;
pub mod webconfig;
