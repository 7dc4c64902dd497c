//! Network: traffic and errors per interface (`/proc/net/dev`), TCP and UDP trouble
//! counters for the whole host (`/proc/net/snmp`).
//!
//! Everything but the established-connection count is a per-second rate, so the first
//! tick only has that count. Interfaces come and go (containers create a veth per start);
//! one that reappears with smaller counters gets no rate for that tick instead of a
//! negative or wrapped-around one. `/proc/net/snmp` is optional: without it only the
//! protocol points are missing.

use std::collections::HashMap;
use std::io::ErrorKind;

use serde_yaml::Value;

use super::{read, CollectError, Collector, Kept, Paths};
use crate::config::reader::{Filter, Pattern, Reader};
use crate::sample::Sample;

/// `collectors.network`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    pub enabled: bool,
    /// Interfaces by name (loopback excluded by default).
    pub interfaces: Filter,
}

pub const DEFAULT_INTERFACE_EXCLUDE: &str = "lo";

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            enabled: true,
            interfaces: Filter {
                include: None,
                exclude: Pattern::builtin(DEFAULT_INTERFACE_EXCLUDE),
            },
        }
    }
}

/// Read `collectors.network`; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> NetworkConfig {
    let d = NetworkConfig::default();
    let s = r.section(v, path, &["enabled", "interfaces"]);
    NetworkConfig {
        enabled: s.bool(r, "enabled", d.enabled),
        interfaces: s.filter(r, "interfaces", &d.interfaces),
    }
}

const HELP_ESTABLISHED: &str = "TCP connections in ESTABLISHED or CLOSE-WAIT state";

/// Host-wide counters turned into rates: `/proc/net/snmp` section and field, metric, help.
const PROTOCOL_RATES: [(&str, &str, &str, &str); 5] = [
    (
        "Tcp",
        "RetransSegs",
        "tcp_retransmits_per_second",
        "TCP segments retransmitted per second",
    ),
    (
        "Tcp",
        "OutRsts",
        "tcp_resets_per_second",
        "TCP resets sent per second",
    ),
    (
        "Tcp",
        "AttemptFails",
        "tcp_attempt_fails_per_second",
        "TCP connection attempts that failed per second",
    ),
    (
        "Tcp",
        "EstabResets",
        "tcp_established_resets_per_second",
        "Established TCP connections reset per second",
    ),
    (
        "Udp",
        "InErrors",
        "udp_receive_errors_per_second",
        "UDP datagrams that could not be delivered per second, other than for lack of a port",
    ),
];

/// Values of [`PROTOCOL_RATES`] in the same order, `None` where the kernel had none.
type ProtocolCounters = [Option<u64>; 5];

/// The `/proc/net/dev` counters we use, cumulative (or deltas of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct InterfaceCounters {
    receive_bytes: u64,
    receive_packets: u64,
    receive_errors: u64,
    receive_drops: u64,
    transmit_bytes: u64,
    transmit_packets: u64,
    transmit_errors: u64,
    transmit_drops: u64,
}

impl InterfaceCounters {
    /// Increase since `before`; `None` if any counter went backwards, which means the
    /// interface was recreated (or a 32-bit counter wrapped) and no delta can be trusted.
    fn since(&self, before: &InterfaceCounters) -> Option<InterfaceCounters> {
        Some(InterfaceCounters {
            receive_bytes: self.receive_bytes.checked_sub(before.receive_bytes)?,
            receive_packets: self.receive_packets.checked_sub(before.receive_packets)?,
            receive_errors: self.receive_errors.checked_sub(before.receive_errors)?,
            receive_drops: self.receive_drops.checked_sub(before.receive_drops)?,
            transmit_bytes: self.transmit_bytes.checked_sub(before.transmit_bytes)?,
            transmit_packets: self.transmit_packets.checked_sub(before.transmit_packets)?,
            transmit_errors: self.transmit_errors.checked_sub(before.transmit_errors)?,
            transmit_drops: self.transmit_drops.checked_sub(before.transmit_drops)?,
        })
    }

    /// Metric name, help and value of each counter, for emitting rates.
    fn named(&self) -> [(&'static str, &'static str, u64); 8] {
        [
            (
                "network_receive_bytes_per_second",
                "Bytes received per second",
                self.receive_bytes,
            ),
            (
                "network_transmit_bytes_per_second",
                "Bytes sent per second",
                self.transmit_bytes,
            ),
            (
                "network_receive_packets_per_second",
                "Packets received per second",
                self.receive_packets,
            ),
            (
                "network_transmit_packets_per_second",
                "Packets sent per second",
                self.transmit_packets,
            ),
            (
                "network_receive_errors_per_second",
                "Receive errors per second",
                self.receive_errors,
            ),
            (
                "network_transmit_errors_per_second",
                "Transmit errors per second",
                self.transmit_errors,
            ),
            (
                "network_receive_drops_per_second",
                "Received packets dropped per second",
                self.receive_drops,
            ),
            (
                "network_transmit_drops_per_second",
                "Outgoing packets dropped per second",
                self.transmit_drops,
            ),
        ]
    }
}

struct Previous {
    timestamp_ms: i64,
    interfaces: HashMap<String, InterfaceCounters>,
    protocols: ProtocolCounters,
}

pub struct Network {
    paths: Paths,
    interfaces: Kept,
    previous: Option<Previous>,
}

impl Network {
    pub fn new(paths: Paths, config: NetworkConfig) -> Self {
        Network {
            paths,
            interfaces: Kept::new(&config.interfaces),
            previous: None,
        }
    }
}

impl Collector for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let dev_path = self.paths.proc("net/dev");
        let interfaces: HashMap<String, InterfaceCounters> = parse_net_dev(&read(&dev_path)?)
            .into_iter()
            .filter(|(name, _)| self.interfaces.keeps(name))
            .collect();
        let snmp_path = self.paths.proc("net/snmp");
        let snmp = match std::fs::read_to_string(&snmp_path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => return Err(CollectError::io(&snmp_path, e)),
        };
        let snmp = parse_snmp(&snmp);
        let protocols: ProtocolCounters =
            PROTOCOL_RATES.map(|(section, field, _, _)| snmp.get(&(section, field)).copied());

        if let Some(&established) = snmp.get(&("Tcp", "CurrEstab")) {
            sample.feature(
                "tcp_connections_established",
                HELP_ESTABLISHED,
                &[],
                established as f64,
            );
        }

        if let Some(previous) = &self.previous {
            let elapsed_ms = sample.timestamp_ms - previous.timestamp_ms;
            // A clock that stood still or stepped back gives no interval to divide by.
            if elapsed_ms > 0 {
                let seconds = elapsed_ms as f64 / 1000.0;
                emit_interfaces(sample, &previous.interfaces, &interfaces, seconds);
                emit_protocols(sample, &previous.protocols, &protocols, seconds);
            }
        }
        // Replacing the map drops interfaces that disappeared.
        self.previous = Some(Previous {
            timestamp_ms: sample.timestamp_ms,
            interfaces,
            protocols,
        });
        Ok(())
    }
}

fn emit_interfaces(
    sample: &mut Sample,
    before: &HashMap<String, InterfaceCounters>,
    after: &HashMap<String, InterfaceCounters>,
    seconds: f64,
) {
    let mut current: Vec<(&String, &InterfaceCounters)> = after.iter().collect();
    current.sort_by(|a, b| a.0.cmp(b.0));
    for (name, counters) in current {
        let Some(delta) = before.get(name).and_then(|b| counters.since(b)) else {
            continue;
        };
        for (metric, help, value) in delta.named() {
            sample.feature(metric, help, &[("interface", name)], value as f64 / seconds);
        }
    }
}

fn emit_protocols(
    sample: &mut Sample,
    before: &ProtocolCounters,
    after: &ProtocolCounters,
    seconds: f64,
) {
    for ((_, _, metric, help), (before, after)) in
        PROTOCOL_RATES.iter().zip(before.iter().zip(after))
    {
        if let (Some(before), Some(after)) = (before, after) {
            // Smaller than before: the counters were reset (network namespace recreated).
            if let Some(delta) = after.checked_sub(*before) {
                sample.feature(metric, help, &[], delta as f64 / seconds);
            }
        }
    }
}

/// Interface name and counters per line; the two header lines and anything malformed
/// are skipped.
fn parse_net_dev(text: &str) -> Vec<(String, InterfaceCounters)> {
    text.lines()
        .filter_map(|line| {
            // Interface names cannot contain ':', and old kernels glue the first number
            // to it (`eth0:1234`), so split there rather than on whitespace.
            let (name, rest) = line.split_once(':')?;
            let mut n = [0u64; 16];
            let mut fields = rest.split_whitespace();
            for slot in &mut n {
                *slot = fields.next()?.parse().ok()?;
            }
            let counters = InterfaceCounters {
                receive_bytes: n[0],
                receive_packets: n[1],
                receive_errors: n[2],
                receive_drops: n[3],
                transmit_bytes: n[8],
                transmit_packets: n[9],
                transmit_errors: n[10],
                transmit_drops: n[11],
            };
            Some((name.trim().to_string(), counters))
        })
        .collect()
}

/// `/proc/net/snmp` as (section, field) -> value. Each section is a line of field names
/// followed by a line of values with the same `Section:` prefix. Fields that are not
/// unsigned numbers (`MaxConn` is -1) are left out.
fn parse_snmp(text: &str) -> HashMap<(&str, &str), u64> {
    let mut values = HashMap::new();
    let mut header: Option<(&str, &str)> = None;
    for line in text.lines() {
        let Some((section, rest)) = line.split_once(':') else {
            header = None;
            continue;
        };
        match header.take() {
            Some((names_section, names)) if names_section == section => {
                for (field, value) in names.split_whitespace().zip(rest.split_whitespace()) {
                    if let Ok(value) = value.parse() {
                        values.insert((section, field), value);
                    }
                }
            }
            _ => header = Some((section, rest)),
        }
    }
    values
}

#[doc(hidden)]
pub fn parse_for_fuzzing(text: &str) {
    let _ = parse_net_dev(text);
    let _ = parse_snmp(text);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;
    use crate::collect::testing::{assert_close, fixture};

    fn default_config() -> NetworkConfig {
        NetworkConfig::default()
    }

    fn collect_in_turn(hosts: &[&str], config: NetworkConfig) -> (Network, Sample) {
        let mut network = Network::new(fixture(hosts[0]), config);
        let mut sample = Sample::new(0);
        for (i, host) in hosts.iter().enumerate() {
            network.paths = fixture(host);
            sample = Sample::new(1_000_000 + i as i64 * 1000);
            network.collect(&mut sample).unwrap();
        }
        (network, sample)
    }

    fn interfaces(s: &Sample, name: &str) -> Vec<String> {
        s.points
            .iter()
            .filter(|p| p.name == name)
            .filter_map(|p| {
                p.labels
                    .iter()
                    .find(|(k, _)| *k == "interface")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }

    #[test]
    fn first_tick_has_only_the_connection_count() {
        let (_, s) = collect_in_turn(&["host"], default_config());
        assert_close(s.get("tcp_connections_established", &[]), 12.0);
        assert_eq!(s.points.len(), 1, "{:?}", s.points);
    }

    #[test]
    fn second_tick_has_exact_interface_rates() {
        let (_, s) = collect_in_turn(&["host", "host2"], default_config());
        let eth0 = [("interface", "eth0")];
        assert_close(s.get("network_receive_bytes_per_second", &eth0), 125_000.0);
        assert_close(s.get("network_transmit_bytes_per_second", &eth0), 50_000.0);
        assert_close(s.get("network_receive_packets_per_second", &eth0), 100.0);
        assert_close(s.get("network_transmit_packets_per_second", &eth0), 60.0);
        assert_close(s.get("network_receive_errors_per_second", &eth0), 1.0);
        assert_close(s.get("network_transmit_errors_per_second", &eth0), 0.0);
        assert_close(s.get("network_receive_drops_per_second", &eth0), 2.0);
        assert_close(s.get("network_transmit_drops_per_second", &eth0), 1.0);
        // lo is excluded by default; the veth was recreated with smaller counters.
        assert_eq!(interfaces(&s, "network_receive_bytes_per_second"), ["eth0"]);
        assert!(s.points.iter().all(|p| p.feature && p.value >= 0.0));
    }

    #[test]
    fn second_tick_has_exact_protocol_rates() {
        let (_, s) = collect_in_turn(&["host", "host2"], default_config());
        assert_close(s.get("tcp_retransmits_per_second", &[]), 10.0);
        assert_close(s.get("tcp_resets_per_second", &[]), 5.0);
        assert_close(s.get("tcp_attempt_fails_per_second", &[]), 3.0);
        assert_close(s.get("tcp_established_resets_per_second", &[]), 1.0);
        assert_close(s.get("tcp_connections_established", &[]), 15.0);
        assert_close(s.get("udp_receive_errors_per_second", &[]), 2.0);
    }

    #[test]
    fn interface_filter_comes_from_config() {
        let config = NetworkConfig {
            interfaces: Filter {
                include: Some(Pattern::new("lo|veth.*").unwrap()),
                exclude: Some(Pattern::new("veth.*").unwrap()),
            },
            ..default_config()
        };
        let (_, s) = collect_in_turn(&["host", "host2"], config);
        assert_close(
            s.get("network_receive_bytes_per_second", &[("interface", "lo")]),
            10_000.0,
        );
        assert_eq!(interfaces(&s, "network_receive_bytes_per_second"), ["lo"]);
    }

    #[test]
    fn counter_reset_yields_no_rate_and_vanished_interfaces_are_dropped() {
        let (network, _) = collect_in_turn(&["host", "host2"], default_config());
        let previous = network.previous.unwrap();
        let mut kept: Vec<&String> = previous.interfaces.keys().collect();
        kept.sort();
        assert_eq!(kept, ["eth0", "veth3f2a1b9"], "docker0 is gone");

        let (_, s) = collect_in_turn(&["host2", "host"], default_config());
        // eth0's counters went backwards; the veth's went up, which is indistinguishable
        // from traffic.
        assert_eq!(
            interfaces(&s, "network_receive_bytes_per_second"),
            ["veth3f2a1b9"]
        );
        assert!(s.get("tcp_retransmits_per_second", &[]).is_none());
    }

    #[test]
    fn missing_snmp_only_omits_protocol_points() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        std::fs::copy(fixture("host").proc("net/dev"), dir.path().join("net/dev")).unwrap();
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        };
        let mut network = Network::new(paths, default_config());
        network.collect(&mut Sample::new(1000)).unwrap();
        let mut s = Sample::new(2000);
        network.collect(&mut s).unwrap();
        assert_close(
            s.get("network_receive_bytes_per_second", &[("interface", "eth0")]),
            0.0,
        );
        assert!(s.points.iter().all(|p| p.name.starts_with("network_")));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let dev = "Inter-| header\n face |bytes\n eth0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n eth1: 1 2 x\n eth2: 1 2\n";
        let parsed = parse_net_dev(dev);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0, "eth0");
        assert_eq!(parsed[0].1.transmit_drops, 12);

        let snmp = "Tcp: A B\nUdp: 1 2\nTcp: C D\nTcp: 3 -1\nbroken\nUdp: E\n";
        let parsed = parse_snmp(snmp);
        assert_eq!(parsed, HashMap::from([(("Tcp", "C"), 3)]));
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let mut network = Network::new(fixture("no-such-host"), default_config());
        let err = network.collect(&mut Sample::new(0)).unwrap_err();
        assert!(
            err.to_string().contains("no-such-host/proc/net/dev"),
            "{err}"
        );
    }

    #[test]
    fn reads_this_machine() {
        let config = NetworkConfig {
            interfaces: Filter::default(),
            ..default_config()
        };
        let mut network = Network::new(Paths::default(), config);
        network.collect(&mut Sample::new(1000)).unwrap();
        let mut s = Sample::new(2000);
        network.collect(&mut s).unwrap();
        assert!(s
            .get("network_receive_bytes_per_second", &[("interface", "lo")])
            .is_some());
        assert!(s.get("tcp_connections_established", &[]).is_some());
    }
}
