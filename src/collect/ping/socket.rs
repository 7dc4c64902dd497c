//! ICMP sockets: raw when the process may (CAP_NET_RAW), otherwise the kernel's
//! unprivileged "ping" datagram sockets, which need the process's group inside
//! `net.ipv4.ping_group_range` (the same sysctl governs IPv6).
//!
//! The two kinds differ in what we must match replies on: on a raw socket we choose
//! the identifier and see every ICMP packet on the host (IPv4 with its IP header); on a
//! datagram socket the kernel replaces the identifier with the socket's local "port" and
//! only delivers replies carrying it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::packet::{parse_reply, EchoReply, Family};

/// Which ICMP socket kind to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SocketMode {
    /// Raw, falling back to datagram when raw sockets are not permitted.
    #[default]
    Auto,
    /// Raw only.
    Raw,
    /// Unprivileged datagram only (also usable as root, which is how tests cover it).
    Datagram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Raw,
    Datagram,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Datagram => "datagram",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("not permitted to open an ICMP socket for {family}: {detail}")]
    NotPermitted { family: Family, detail: String },
    #[error("opening {kind} ICMP socket for {family}: {source}")]
    Io {
        family: Family,
        kind: &'static str,
        #[source]
        source: io::Error,
    },
}

/// An open ICMP socket and the identifier its replies carry.
#[derive(Debug)]
pub struct IcmpSocket {
    // std's UdpSocket is only a typed wrapper over an fd's sendto/recvfrom; using it for
    // an ICMP socket gives safe `&mut [u8]` receives and parsed source addresses without
    // socket2's MaybeUninit buffers and the unsafe that goes with them.
    inner: UdpSocket,
    family: Family,
    kind: Kind,
    ident: u16,
}

impl IcmpSocket {
    /// Opens a socket of `family` as `mode` allows. `raw_ident` is the identifier used
    /// if the socket turns out raw.
    pub fn open(family: Family, mode: SocketMode, raw_ident: u16) -> Result<Self, OpenError> {
        match mode {
            SocketMode::Raw => {
                open_raw(family, raw_ident).map_err(|e| denied_or_io(family, Kind::Raw, e, None))
            }
            SocketMode::Datagram => {
                open_datagram(family).map_err(|e| denied_or_io(family, Kind::Datagram, e, None))
            }
            SocketMode::Auto => match open_raw(family, raw_ident) {
                Ok(s) => Ok(s),
                Err(raw) if raw.kind() == io::ErrorKind::PermissionDenied => open_datagram(family)
                    .map_err(|e| denied_or_io(family, Kind::Datagram, e, Some(raw))),
                Err(e) => Err(denied_or_io(family, Kind::Raw, e, None)),
            },
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn ident(&self) -> u16 {
        self.ident
    }

    pub fn send(&self, packet: &[u8], dest: SocketAddr) -> io::Result<()> {
        // A non-zero port on a raw IPv6 socket means "protocol" and must match; zero is
        // always right. The scope id of a link-local IPv6 target is kept.
        let mut dest = dest;
        dest.set_port(0);
        self.inner.send_to(packet, dest).map(|_| ())
    }

    /// Waits up to `timeout` for one datagram; `WouldBlock`/`TimedOut` when none came.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<(usize, IpAddr)> {
        // A zero read timeout is rejected by the kernel interface (it would mean "never").
        self.inner
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        self.inner.recv_from(buf).map(|(n, from)| (n, from.ip()))
    }

    /// The echo reply in a received datagram, if it is one.
    pub fn parse(&self, datagram: &[u8]) -> Option<EchoReply> {
        let with_ip_header = self.kind == Kind::Raw && self.family == Family::V4;
        parse_reply(self.family, with_ip_header, datagram)
    }
}

fn domain_protocol(family: Family) -> (Domain, Protocol) {
    match family {
        Family::V4 => (Domain::IPV4, Protocol::ICMPV4),
        Family::V6 => (Domain::IPV6, Protocol::ICMPV6),
    }
}

fn open_raw(family: Family, ident: u16) -> io::Result<IcmpSocket> {
    let (domain, protocol) = domain_protocol(family);
    let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
    Ok(IcmpSocket {
        inner: socket.into(),
        family,
        kind: Kind::Raw,
        ident,
    })
}

fn open_datagram(family: Family) -> io::Result<IcmpSocket> {
    let (domain, protocol) = domain_protocol(family);
    let socket = Socket::new(domain, Type::DGRAM, Some(protocol))?;
    // Binding port 0 makes the kernel pick a free identifier now, so we know what the
    // replies will carry before the first send.
    let any = match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    socket.bind(&SocketAddr::new(any, 0).into())?;
    let inner: UdpSocket = socket.into();
    let ident = inner.local_addr()?.port();
    Ok(IcmpSocket {
        inner,
        family,
        kind: Kind::Datagram,
        ident,
    })
}

fn denied_or_io(family: Family, kind: Kind, e: io::Error, raw: Option<io::Error>) -> OpenError {
    if e.kind() != io::ErrorKind::PermissionDenied {
        return OpenError::Io {
            family,
            kind: kind.describe(),
            source: e,
        };
    }
    let raw_part = |e: &io::Error| format!("raw socket: {e} (needs CAP_NET_RAW)");
    let datagram_part = |e: &io::Error| {
        format!(
            "datagram socket: {e} (the process's group must be inside \
             net.ipv4.ping_group_range)"
        )
    };
    let detail = match (kind, raw) {
        (Kind::Raw, _) => raw_part(&e),
        (Kind::Datagram, Some(raw)) => format!("{}; {}", raw_part(&raw), datagram_part(&e)),
        (Kind::Datagram, None) => datagram_part(&e),
    };
    OpenError::NotPermitted { family, detail }
}
