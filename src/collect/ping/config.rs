//! `collectors.ping`: the targets and the shape of a round, with its defaults.

use std::time::Duration;

use serde_yaml::Value;

use crate::config::reader::Reader;

#[derive(Debug, Clone, PartialEq)]
pub struct PingConfig {
    pub enabled: bool,
    /// Hostnames or IP addresses (v4 or v6).
    pub targets: Vec<String>,
    /// Echo requests per round.
    pub packets: u32,
    /// Gap between the requests of one round.
    pub packet_interval: Duration,
    /// How long to wait for a reply before counting it lost.
    pub timeout: Duration,
    /// Time between rounds (a round runs in the background and never blocks a tick).
    pub round_interval: Duration,
    /// ICMP payload bytes.
    pub payload_size: usize,
}

impl Default for PingConfig {
    fn default() -> Self {
        PingConfig {
            enabled: true,
            targets: Vec::new(),
            packets: 5,
            packet_interval: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
            round_interval: Duration::from_secs(5),
            payload_size: 56,
        }
    }
}

/// Read `collectors.ping`; problems go to `r` with their YAML path. A round must fit
/// in its interval (rounds never overlap).
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> PingConfig {
    const SECS: fn(u64) -> Duration = Duration::from_secs;
    const MILLIS: fn(u64) -> Duration = Duration::from_millis;
    let dp = PingConfig::default();
    let s = r.section(
        v,
        path,
        &[
            "enabled",
            "targets",
            "packets",
            "packet_interval",
            "timeout",
            "round_interval",
            "payload_size",
        ],
    );
    let ping = PingConfig {
        enabled: s.bool(r, "enabled", dp.enabled),
        targets: s.strings(r, "targets"),
        packets: s.int(r, "packets", dp.packets.into(), 1, 100) as u32,
        packet_interval: s.duration(
            r,
            "packet_interval",
            dp.packet_interval,
            MILLIS(1),
            SECS(10),
        ),
        timeout: s.duration(r, "timeout", dp.timeout, MILLIS(1), SECS(60)),
        round_interval: s.duration(
            r,
            "round_interval",
            dp.round_interval,
            MILLIS(100),
            SECS(3600),
        ),
        payload_size: s.int(r, "payload_size", dp.payload_size as u64, 8, 1400) as usize,
    };
    let round_len = ping.packet_interval * ping.packets.saturating_sub(1) + ping.timeout;
    if ping.enabled && round_len > ping.round_interval {
        r.error(
            path,
            format!(
                "a round takes up to {:?} (packets × packet_interval + timeout), longer than round_interval {:?}",
                round_len, ping.round_interval
            ),
        );
    }
    ping
}
