//! systemd's notify protocol (sd_notify), without libsystemd.
//!
//! With `Type=notify` systemd waits for `READY=1` before it considers the service up,
//! and with `WatchdogSec=` it restarts the service when `WATCHDOG=1` stops arriving.
//! Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|p| !p.is_empty())
            .and_then(|path| UnixDatagram::unbound().ok().map(|s| (s, path)));
        Notifier { socket }
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Send one notification such as `READY=1` or `STATUS=...`. Failures are logged at
    /// debug level only: systemd being gone must never disturb sampling.
    pub fn send(&self, message: &str) {
        let Some((sock, path)) = &self.socket else {
            return;
        };
        let result = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|a| sock.send_to_addr(message.as_bytes(), &a))
        } else {
            sock.send_to(message.as_bytes(), path)
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }

    /// The watchdog period systemd expects pings within (`WATCHDOG_USEC`), if it
    /// is meant for this process (`WATCHDOG_PID`).
    pub fn watchdog_period() -> Option<Duration> {
        if let Ok(pid) = std::env::var("WATCHDOG_PID") {
            if pid.parse::<u32>().ok() != Some(std::process::id()) {
                return None;
            }
        }
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        (usec > 0).then(|| Duration::from_micros(usec))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), path.display().to_string())),
        };
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn disabled_without_socket() {
        let n = Notifier { socket: None };
        assert!(!n.enabled());
        n.send("READY=1");
    }
}
