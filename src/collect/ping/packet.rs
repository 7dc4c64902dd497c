//! ICMP / ICMPv6 echo packets and the bookkeeping that pairs replies with requests.
//!
//! Everything here works on byte slices and `Instant`s, never on sockets, so the rules
//! that decide whether a datagram is *our* reply (type, checksum, identifier, sequence,
//! source, deadline) are unit-tested without privileges or a network.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use pnet::packet::icmp::{self, echo_reply, echo_request, IcmpPacket, IcmpTypes};
use pnet::packet::icmpv6::{self, Icmpv6Packet, Icmpv6Types};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::ipv4::Ipv4Packet;

/// Type, code, checksum, identifier, sequence number.
pub const ECHO_HEADER_LEN: usize = 8;

/// Address family of a target; decides packet format and socket domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// An echo request ready for `sendto`.
///
/// The ICMPv6 checksum is left zero: it covers a pseudo-header with the source address,
/// which the kernel picks, so the kernel fills it in for every ICMPv6 socket (RFC 3542
/// §3.1). For IPv4 we must compute it ourselves on raw sockets; datagram sockets
/// recompute it anyway after rewriting the identifier.
pub fn echo_request(family: Family, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; ECHO_HEADER_LEN + payload.len()];
    match family {
        Family::V4 => {
            if let Some(mut p) = echo_request::MutableEchoRequestPacket::new(&mut buf) {
                p.set_icmp_type(IcmpTypes::EchoRequest);
                p.set_icmp_code(echo_request::IcmpCodes::NoCode);
                p.set_identifier(ident);
                p.set_sequence_number(seq);
                p.set_payload(payload);
            }
            if let Some(mut p) = icmp::MutableIcmpPacket::new(&mut buf) {
                let sum = icmp::checksum(&p.to_immutable());
                p.set_checksum(sum);
            }
        }
        Family::V6 => {
            if let Some(mut p) = icmpv6::echo_request::MutableEchoRequestPacket::new(&mut buf) {
                p.set_icmpv6_type(Icmpv6Types::EchoRequest);
                p.set_icmpv6_code(icmpv6::echo_request::Icmpv6Codes::NoCode);
                p.set_identifier(ident);
                p.set_sequence_number(seq);
                p.set_payload(payload);
            }
        }
    }
    buf
}

/// The fields of an echo reply that tie it to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    pub ident: u16,
    pub seq: u16,
}

/// The echo reply in `buf`, or `None` for anything else (our own requests looping back,
/// NDP, errors, corrupt or truncated packets).
///
/// `with_ip_header` is true for raw IPv4 sockets, which deliver the whole datagram;
/// raw ICMPv6 and all datagram ICMP sockets deliver the ICMP message alone.
pub fn parse_reply(family: Family, with_ip_header: bool, buf: &[u8]) -> Option<EchoReply> {
    match family {
        Family::V4 => {
            let msg = if with_ip_header {
                strip_ipv4_header(buf)?
            } else {
                buf
            };
            let p = IcmpPacket::new(msg)?;
            if p.get_icmp_type() != IcmpTypes::EchoReply
                || p.get_icmp_code() != echo_reply::IcmpCodes::NoCode
            {
                return None;
            }
            // Raw sockets get a copy before the kernel's ICMP code validates the checksum.
            if icmp::checksum(&p) != p.get_checksum() {
                return None;
            }
            let r = echo_reply::EchoReplyPacket::new(msg)?;
            Some(EchoReply {
                ident: r.get_identifier(),
                seq: r.get_sequence_number(),
            })
        }
        Family::V6 => {
            // The ICMPv6 checksum was verified by the kernel before delivery (and needs
            // the destination address, which recvfrom does not give us).
            let p = Icmpv6Packet::new(buf)?;
            if p.get_icmpv6_type() != Icmpv6Types::EchoReply
                || p.get_icmpv6_code() != icmpv6::echo_reply::Icmpv6Codes::NoCode
            {
                return None;
            }
            let r = icmpv6::echo_reply::EchoReplyPacket::new(buf)?;
            Some(EchoReply {
                ident: r.get_identifier(),
                seq: r.get_sequence_number(),
            })
        }
    }
}

fn strip_ipv4_header(buf: &[u8]) -> Option<&[u8]> {
    let ip = Ipv4Packet::new(buf)?;
    if ip.get_version() != 4 || ip.get_next_level_protocol() != IpNextHeaderProtocols::Icmp {
        return None;
    }
    let len = usize::from(ip.get_header_length()) * 4;
    if len < Ipv4Packet::minimum_packet_size() {
        return None;
    }
    buf.get(len..)
}

#[derive(Debug)]
struct Request {
    seq: u16,
    sent_at: Instant,
    rtt: Option<Duration>,
}

/// The requests of one round and what came back for them.
#[derive(Debug)]
pub struct Pending {
    target: IpAddr,
    ident: u16,
    timeout: Duration,
    /// In send order, which is the order jitter is computed in.
    requests: Vec<Request>,
}

impl Pending {
    pub fn new(target: IpAddr, ident: u16, timeout: Duration) -> Self {
        Pending {
            target,
            ident,
            timeout,
            requests: Vec::new(),
        }
    }

    pub fn sent(&mut self, seq: u16, at: Instant) {
        self.requests.push(Request {
            seq,
            sent_at: at,
            rtt: None,
        });
    }

    /// Records `reply` received from `from` at `at` and returns its round-trip time if it
    /// answers one of this round's requests for the first time, in time.
    ///
    /// The source is checked as well as identifier and sequence: a raw socket sees every
    /// echo reply on the host, and another pinger may use the same identifier.
    pub fn accept(&mut self, from: IpAddr, reply: EchoReply, at: Instant) -> Option<Duration> {
        if from != self.target || reply.ident != self.ident {
            return None;
        }
        let req = self.requests.iter_mut().find(|r| r.seq == reply.seq)?;
        if req.rtt.is_some() {
            return None;
        }
        let rtt = at.checked_duration_since(req.sent_at)?;
        // A reply after the timeout was already counted lost; counting it now would make
        // the result depend on how long the round happened to wait for others.
        if rtt > self.timeout {
            return None;
        }
        req.rtt = Some(rtt);
        Some(rtt)
    }

    /// When the earliest unanswered request still within its timeout expires.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.requests
            .iter()
            .filter(|r| r.rtt.is_none())
            .map(|r| r.sent_at + self.timeout)
            .filter(|d| *d > now)
            .min()
    }

    /// True when every request is answered or timed out.
    pub fn settled(&self, now: Instant) -> bool {
        self.next_deadline(now).is_none()
    }

    pub fn received(&self) -> u32 {
        let n = self.requests.iter().filter(|r| r.rtt.is_some()).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Round-trip times in seconds, in send order.
    pub fn rtts(&self) -> Vec<f64> {
        self.requests
            .iter()
            .filter_map(|r| r.rtt)
            .map(|d| d.as_secs_f64())
            .collect()
    }
}

/// Summary of one round's round-trip times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// Mean absolute difference of consecutive rtts; `None` with fewer than two.
    pub jitter: Option<f64>,
}

/// Stats of `rtts` (send order), `None` when there are none.
pub fn stats(rtts: &[f64]) -> Option<Stats> {
    if rtts.is_empty() {
        return None;
    }
    let mut sorted = rtts.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    // RFC 3550's D(i-1,i) without its 1/16 exponential smoothing: a round is only a
    // handful of packets, too few for the smoothed estimator to settle.
    let jitter = (n >= 2).then(|| {
        let sum: f64 = rtts.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
        sum / (n - 1) as f64
    });
    Some(Stats {
        min: sorted[0],
        median,
        max: sorted[n - 1],
        jitter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet::packet::ipv4::MutableIpv4Packet;
    use pnet::packet::Packet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// What a peer sends back for `request`: same body, type flipped, checksum redone.
    fn reply_for(family: Family, request: &[u8]) -> Vec<u8> {
        let mut buf = request.to_vec();
        match family {
            Family::V4 => {
                buf[0] = IcmpTypes::EchoReply.0;
                fix_v4_checksum(&mut buf);
            }
            Family::V6 => buf[0] = Icmpv6Types::EchoReply.0,
        }
        buf
    }

    fn fix_v4_checksum(buf: &mut [u8]) {
        let mut p = icmp::MutableIcmpPacket::new(buf).expect("icmp");
        let sum = icmp::checksum(&p.to_immutable());
        p.set_checksum(sum);
    }

    fn with_ipv4_header(icmp: &[u8], header_words: u8) -> Vec<u8> {
        let header_len = usize::from(header_words) * 4;
        let mut buf = vec![0u8; header_len + icmp.len()];
        {
            let mut ip = MutableIpv4Packet::new(&mut buf).expect("ipv4");
            ip.set_version(4);
            ip.set_header_length(header_words);
            ip.set_total_length((header_len + icmp.len()) as u16);
            ip.set_ttl(64);
            ip.set_next_level_protocol(IpNextHeaderProtocols::Icmp);
            ip.set_source(Ipv4Addr::LOCALHOST);
            ip.set_destination(Ipv4Addr::LOCALHOST);
        }
        buf[header_len..].copy_from_slice(icmp);
        buf
    }

    #[test]
    fn v4_request_has_fields_and_valid_checksum() {
        let req = echo_request(Family::V4, 0x1234, 7, b"abcdef");
        assert_eq!(req.len(), ECHO_HEADER_LEN + 6);
        let p = echo_request::EchoRequestPacket::new(&req).expect("parse");
        assert_eq!(p.get_icmp_type(), IcmpTypes::EchoRequest);
        assert_eq!(p.get_identifier(), 0x1234);
        assert_eq!(p.get_sequence_number(), 7);
        assert_eq!(p.payload(), b"abcdef");
        let icmp = IcmpPacket::new(&req).expect("icmp");
        assert_eq!(icmp::checksum(&icmp), icmp.get_checksum());
        assert_ne!(icmp.get_checksum(), 0);
    }

    #[test]
    fn v6_request_has_fields_and_kernel_checksum() {
        let req = echo_request(Family::V6, 0xbeef, 65535, &[9; 16]);
        let p = icmpv6::echo_request::EchoRequestPacket::new(&req).expect("parse");
        assert_eq!(p.get_icmpv6_type(), Icmpv6Types::EchoRequest);
        assert_eq!(p.get_identifier(), 0xbeef);
        assert_eq!(p.get_sequence_number(), 65535);
        assert_eq!(p.get_checksum(), 0, "left for the kernel");
        // A receiver's checksum over the pseudo-header still works on our layout.
        let v6 = Icmpv6Packet::new(&req).expect("icmpv6");
        let lo = Ipv6Addr::LOCALHOST;
        assert_ne!(icmpv6::checksum(&v6, &lo, &lo), 0);
    }

    #[test]
    fn v4_reply_parses_with_and_without_ip_header() {
        let reply = reply_for(Family::V4, &echo_request(Family::V4, 42, 3, b"payload"));
        let want = Some(EchoReply { ident: 42, seq: 3 });
        assert_eq!(parse_reply(Family::V4, false, &reply), want);
        assert_eq!(
            parse_reply(Family::V4, true, &with_ipv4_header(&reply, 5)),
            want
        );
        // IP options make the header longer than 20 bytes.
        assert_eq!(
            parse_reply(Family::V4, true, &with_ipv4_header(&reply, 7)),
            want
        );
    }

    #[test]
    fn v4_parse_ignores_requests_bad_checksums_and_junk() {
        let req = echo_request(Family::V4, 42, 3, b"payload");
        // Our own request, seen by a raw socket on loopback.
        assert_eq!(parse_reply(Family::V4, false, &req), None);
        assert_eq!(
            parse_reply(Family::V4, true, &with_ipv4_header(&req, 5)),
            None
        );

        let mut corrupt = reply_for(Family::V4, &req);
        corrupt[ECHO_HEADER_LEN] ^= 0xff;
        assert_eq!(parse_reply(Family::V4, false, &corrupt), None);

        let reply = reply_for(Family::V4, &req);
        assert_eq!(parse_reply(Family::V4, false, &reply[..6]), None);
        assert_eq!(parse_reply(Family::V4, true, &reply), None, "no IP header");
        assert_eq!(parse_reply(Family::V4, false, &[]), None);

        let mut not_icmp = with_ipv4_header(&reply, 5);
        not_icmp[9] = 17; // UDP
        assert_eq!(parse_reply(Family::V4, true, &not_icmp), None);
    }

    #[test]
    fn v6_reply_parses_and_other_types_are_ignored() {
        let req = echo_request(Family::V6, 7, 9, b"x");
        assert_eq!(
            parse_reply(Family::V6, false, &reply_for(Family::V6, &req)),
            Some(EchoReply { ident: 7, seq: 9 })
        );
        assert_eq!(parse_reply(Family::V6, false, &req), None);
        let mut ndp = reply_for(Family::V6, &req);
        ndp[0] = Icmpv6Types::NeighborAdvert.0;
        assert_eq!(parse_reply(Family::V6, false, &ndp), None);
        assert_eq!(parse_reply(Family::V6, false, &[129, 0, 0]), None);
    }

    fn pending(at: Instant) -> Pending {
        let mut p = Pending::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 100, Duration::from_secs(1));
        p.sent(10, at);
        p.sent(11, at + Duration::from_millis(100));
        p
    }

    #[test]
    fn pending_matches_on_source_ident_and_seq() {
        let t0 = Instant::now();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut p = pending(t0);
        let at = t0 + Duration::from_millis(5);

        assert_eq!(
            p.accept(
                lo,
                EchoReply {
                    ident: 101,
                    seq: 10
                },
                at
            ),
            None
        );
        assert_eq!(
            p.accept(
                lo,
                EchoReply {
                    ident: 100,
                    seq: 12
                },
                at
            ),
            None
        );
        let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(
            p.accept(
                other,
                EchoReply {
                    ident: 100,
                    seq: 10
                },
                at
            ),
            None
        );
        assert_eq!(p.received(), 0);

        let ok = EchoReply {
            ident: 100,
            seq: 10,
        };
        assert_eq!(p.accept(lo, ok, at), Some(Duration::from_millis(5)));
        assert_eq!(p.accept(lo, ok, at), None, "duplicate");
        assert_eq!(p.received(), 1);
        assert_eq!(p.rtts(), vec![0.005]);
    }

    #[test]
    fn pending_rejects_late_replies_and_tracks_deadlines() {
        let t0 = Instant::now();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut p = pending(t0);
        assert_eq!(p.next_deadline(t0), Some(t0 + Duration::from_secs(1)));
        assert!(!p.settled(t0));

        let late = t0 + Duration::from_millis(1050);
        assert_eq!(
            p.accept(
                lo,
                EchoReply {
                    ident: 100,
                    seq: 10
                },
                late
            ),
            None
        );
        // Seq 11 was sent 100 ms later, so it is still in time.
        assert_eq!(
            p.accept(
                lo,
                EchoReply {
                    ident: 100,
                    seq: 11
                },
                late
            ),
            Some(Duration::from_millis(950))
        );
        assert!(p.settled(late));
        assert_eq!(p.received(), 1);
    }

    #[test]
    fn stats_median_and_jitter() {
        assert_eq!(stats(&[]), None);
        let one = stats(&[0.002]).expect("stats");
        assert_eq!(
            (one.min, one.median, one.max, one.jitter),
            (0.002, 0.002, 0.002, None)
        );

        let s = stats(&[0.010, 0.030, 0.020]).expect("stats");
        assert_eq!((s.min, s.median, s.max), (0.010, 0.020, 0.030));
        // |30-10| and |20-30| in send order, not sorted order.
        let j = s.jitter.expect("jitter");
        assert!((j - 0.015).abs() < 1e-12, "{j}");

        let even = stats(&[0.004, 0.001, 0.003, 0.002]).expect("stats");
        assert!((even.median - 0.0025).abs() < 1e-12);
    }
}
