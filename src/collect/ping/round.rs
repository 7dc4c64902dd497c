//! One ping round against one target: resolve it, send `packets` echo requests
//! `packet_interval` apart, and wait for each reply up to `timeout`.
//!
//! A round runs on its target's worker thread, so it may block (DNS, socket waits); it
//! only has to notice a stop request promptly, which it does by never waiting on the
//! socket longer than [`STOP_CHECK`].

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::packet::{echo_request, Pending, ECHO_HEADER_LEN};
use super::socket::{IcmpSocket, OpenError};
use super::PingConfig;
use super::Stop;

/// Longest a round waits on a socket before looking at the stop flag again.
pub const STOP_CHECK: Duration = Duration::from_millis(100);

/// What a completed round saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub address: IpAddr,
    /// Echo requests the round tried to send, including any the kernel refused.
    pub sent: u32,
    pub received: u32,
    /// Round-trip times in seconds, in send order.
    pub rtts: Vec<f64>,
    /// First send or receive error, e.g. "Network is unreachable".
    pub error: Option<String>,
}

/// Why a round could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("resolving {target:?}: {source}")]
    Resolve {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("resolving {target:?}: no addresses")]
    NoAddress { target: String },
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// The address to ping for `target`: an IP literal as is, a hostname through the
/// system resolver (first answer, which getaddrinfo orders by RFC 6724 preference).
pub fn resolve(target: &str) -> Result<SocketAddr, RoundError> {
    if let Ok(ip) = target.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 0));
    }
    (target, 0)
        .to_socket_addrs()
        .map_err(|source| RoundError::Resolve {
            target: target.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| RoundError::NoAddress {
            target: target.to_string(),
        })
}

/// Runs one round over `socket`; `None` if `stop` was set meanwhile. `seq` carries on
/// across rounds so a straggler from the previous round cannot match this one.
pub fn probe(
    socket: &IcmpSocket,
    dest: SocketAddr,
    config: &PingConfig,
    seq: &mut u16,
    stop: &Stop,
) -> Option<Round> {
    let payload: Vec<u8> = (0..config.payload_size).map(|i| i as u8).collect();
    // Room for an IPv4 header with options in front of a reply as large as our request;
    // anything longer is not ours and may be truncated.
    let mut buf = vec![0u8; 60 + ECHO_HEADER_LEN + config.payload_size + 64];
    let mut pending = Pending::new(dest.ip(), socket.ident(), config.timeout);
    let mut sent = 0u32;
    let mut error: Option<String> = None;
    let mut next_send = Instant::now();

    loop {
        if stop.is_set() {
            return None;
        }
        let now = Instant::now();
        if sent < config.packets && now >= next_send {
            let request = echo_request(socket.family(), socket.ident(), *seq, &payload);
            // Stamped before the syscall, as ping(8) does, so the rtt includes the send.
            let at = Instant::now();
            match socket.send(&request, dest) {
                Ok(()) => pending.sent(*seq, at),
                Err(e) => {
                    error.get_or_insert_with(|| format!("sending to {}: {e}", dest.ip()));
                }
            }
            *seq = seq.wrapping_add(1);
            sent += 1;
            next_send += config.packet_interval;
            continue;
        }
        if sent >= config.packets && pending.settled(now) {
            break;
        }

        let mut wake = now + STOP_CHECK;
        if sent < config.packets {
            wake = wake.min(next_send);
        }
        if let Some(deadline) = pending.next_deadline(now) {
            wake = wake.min(deadline);
        }
        let wait = wake.saturating_duration_since(now);
        match socket.recv(&mut buf, wait) {
            Ok((n, from)) => {
                let at = Instant::now();
                if let Some(reply) = buf.get(..n).and_then(|d| socket.parse(d)) {
                    pending.accept(from, reply, at);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                error.get_or_insert_with(|| format!("receiving from {}: {e}", dest.ip()));
                // Sleep instead of spinning on an error that returns at once.
                std::thread::sleep(wait);
            }
        }
    }

    Some(Round {
        address: dest.ip(),
        sent,
        received: pending.received(),
        rtts: pending.rtts(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_resolve_without_lookup() {
        assert_eq!(
            resolve("127.0.0.1").expect("v4").ip(),
            "127.0.0.1".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            resolve("::1").expect("v6").ip(),
            "::1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        // From /etc/hosts; no DNS query leaves the host.
        assert!(resolve("localhost").expect("localhost").ip().is_loopback());
    }
}
