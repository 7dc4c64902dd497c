//! The `http` section: how many connections the server holds and how long it waits
//! for a client. Read here, beside the server it configures.

use std::time::Duration;

use serde_yaml::Value;

use crate::config::reader::Reader;

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Connections held at once; more wait in the kernel's backlog. Kept well under
    /// the file-descriptor limit so the collectors can always open /proc.
    pub max_connections: u64,
    /// A request's header must arrive within this (slowloris); it also bounds a new
    /// connection that sends nothing and a TLS handshake.
    pub header_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
    /// Without basic auth the dashboard is read-only; this lets clients on loopback
    /// acknowledge, assign and resolve tickets from it (with basic auth every
    /// authenticated user may, whatever this says).
    pub dashboard_loopback_writes: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            dashboard_loopback_writes: false,
        }
    }
}

/// File descriptors kept free of connections: the collectors, the databases, the
/// ping sockets and the remediation children need them whatever clients do.
pub const RESERVED_FDS: u64 = 256;

pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> HttpConfig {
    let d = HttpConfig::default();
    let s = r.section(
        v,
        path,
        &[
            "max_connections",
            "header_timeout",
            "idle_timeout",
            "dashboard_loopback_writes",
        ],
    );
    let secs = Duration::from_secs;
    HttpConfig {
        max_connections: s.int(r, "max_connections", d.max_connections, 1, 1 << 20),
        header_timeout: s.duration(
            r,
            "header_timeout",
            d.header_timeout,
            Duration::from_millis(100),
            secs(300),
        ),
        idle_timeout: s.duration(r, "idle_timeout", d.idle_timeout, secs(1), secs(3600)),
        dashboard_loopback_writes: s.bool(
            r,
            "dashboard_loopback_writes",
            d.dashboard_loopback_writes,
        ),
    }
}
