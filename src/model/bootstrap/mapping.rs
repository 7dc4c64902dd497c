//! Which Prometheus series become which of anomalyd's features: one [`Family`] per
//! feature name, with its PromQL for node_exporter (and blackbox_exporter for ping)
//! and the label each of its labels comes from. Against anomalyd's own series the
//! mapping is the identity (`anomalyd_<feature>`).
//!
//! The node_exporter expressions compute what the collectors compute, so a feature
//! means the same whichever side produced it: CPU mode shares of all modes' time,
//! `used = total - available`, df's used ratio (root-reserved blocks count as neither
//! used nor usable), per-operation latency 0 when there was no operation, busy ratio
//! capped at 1. Counters are `rate()`s over the rate window. The collectors' filters
//! (mount points, filesystem types, devices, interfaces, ping targets) are applied to
//! the labels, so the names are exactly the ones the daemon would produce. The table
//! is documented in `docs/bootstrap.md`; keep the two in step.

use std::collections::BTreeMap;

use super::client::Series;
use crate::collect::Collectors;
use crate::sample::series_name;

/// The collector a family belongs to (its config switches it off, its filters apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Cpu,
    Memory,
    Filesystem,
    Disk,
    Network,
    Ping,
}

/// One feature name: where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// anomalyd's name (without the `anomalyd_` prefix and labels).
    pub name: &'static str,
    pub group: Group,
    /// Its labels, in the order its feature names carry them, each with the
    /// node_exporter (or blackbox) label it comes from.
    pub labels: &'static [(&'static str, &'static str)],
    /// PromQL over node_exporter series; `$i` is the instance matcher, `$w` the rate
    /// window. `None`: node_exporter has nothing equivalent (learnt locally later).
    pub node: Option<&'static str>,
}

const FS: &[(&str, &str)] = &[
    ("mountpoint", "mountpoint"),
    ("device", "device"),
    ("fstype", "fstype"),
];
const DEV: &[(&str, &str)] = &[("device", "device")];
const IF: &[(&str, &str)] = &[("interface", "device")];
/// Ping labels: `target` from the probe's `instance`; `address` is resolved here.
const PING: &[(&str, &str)] = &[("target", "instance"), ("address", "")];

macro_rules! fam {
    ($name:literal, $group:ident, $labels:expr, $node:expr) => {
        Family {
            name: $name,
            group: Group::$group,
            labels: $labels,
            node: $node,
        }
    };
}

/// Every model feature the collectors produce, in the collectors' order.
pub const FAMILIES: &[Family] = &[
    fam!(
        "cpu_utilization_ratio",
        Cpu,
        &[("mode", "mode")],
        Some(
            "sum by (mode) (rate(node_cpu_seconds_total{$i}[$w])) \
             / ignoring(mode) group_left sum(rate(node_cpu_seconds_total{$i}[$w]))"
        )
    ),
    fam!(
        "load_average",
        Cpu,
        &[("period", "period")],
        Some(
            "label_replace(node_load1{$i}, \"period\", \"1m\", \"\", \"\") \
             or label_replace(node_load5{$i}, \"period\", \"5m\", \"\", \"\") \
             or label_replace(node_load15{$i}, \"period\", \"15m\", \"\", \"\")"
        )
    ),
    fam!(
        "processes_running",
        Cpu,
        &[],
        Some("node_procs_running{$i}")
    ),
    fam!(
        "processes_blocked",
        Cpu,
        &[],
        Some("node_procs_blocked{$i}")
    ),
    fam!(
        "context_switches_per_second",
        Cpu,
        &[],
        Some("rate(node_context_switches_total{$i}[$w])")
    ),
    fam!(
        "interrupts_per_second",
        Cpu,
        &[],
        Some("rate(node_intr_total{$i}[$w])")
    ),
    fam!(
        "forks_per_second",
        Cpu,
        &[],
        Some("rate(node_forks_total{$i}[$w])")
    ),
    fam!(
        "major_page_faults_per_second",
        Memory,
        &[],
        Some("rate(node_vmstat_pgmajfault{$i}[$w])")
    ),
    fam!(
        "memory_available_bytes",
        Memory,
        &[],
        Some("node_memory_MemAvailable_bytes{$i}")
    ),
    fam!(
        "memory_used_bytes",
        Memory,
        &[],
        Some("node_memory_MemTotal_bytes{$i} - node_memory_MemAvailable_bytes{$i}")
    ),
    fam!(
        "memory_used_ratio",
        Memory,
        &[],
        Some(
            "(node_memory_MemTotal_bytes{$i} - node_memory_MemAvailable_bytes{$i}) \
             / (node_memory_MemTotal_bytes{$i} > 0)"
        )
    ),
    fam!(
        "memory_cached_bytes",
        Memory,
        &[],
        Some("node_memory_Cached_bytes{$i}")
    ),
    fam!(
        "memory_buffers_bytes",
        Memory,
        &[],
        Some("node_memory_Buffers_bytes{$i}")
    ),
    fam!(
        "swap_used_bytes",
        Memory,
        &[],
        Some(
            "(node_memory_SwapTotal_bytes{$i} - node_memory_SwapFree_bytes{$i}) \
             and (node_memory_SwapTotal_bytes{$i} > 0)"
        )
    ),
    fam!(
        "swap_used_ratio",
        Memory,
        &[],
        Some(
            "(node_memory_SwapTotal_bytes{$i} - node_memory_SwapFree_bytes{$i}) \
             / (node_memory_SwapTotal_bytes{$i} > 0)"
        )
    ),
    fam!(
        "filesystem_available_bytes",
        Filesystem,
        FS,
        Some("node_filesystem_avail_bytes{$i}")
    ),
    fam!(
        "filesystem_free_bytes",
        Filesystem,
        FS,
        Some("node_filesystem_free_bytes{$i}")
    ),
    fam!(
        "filesystem_used_ratio",
        Filesystem,
        FS,
        Some(
            "(node_filesystem_size_bytes{$i} - node_filesystem_free_bytes{$i}) \
             / ((node_filesystem_size_bytes{$i} - node_filesystem_free_bytes{$i} \
             + node_filesystem_avail_bytes{$i}) > 0)"
        )
    ),
    fam!(
        "filesystem_inodes_free",
        Filesystem,
        FS,
        Some("node_filesystem_files_free{$i} and (node_filesystem_files{$i} > 0)")
    ),
    fam!(
        "filesystem_inodes_used_ratio",
        Filesystem,
        FS,
        Some(
            "(node_filesystem_files{$i} - node_filesystem_files_free{$i}) \
             / (node_filesystem_files{$i} > 0)"
        )
    ),
    fam!(
        "disk_read_bytes_per_second",
        Disk,
        DEV,
        Some("rate(node_disk_read_bytes_total{$i}[$w])")
    ),
    fam!(
        "disk_written_bytes_per_second",
        Disk,
        DEV,
        Some("rate(node_disk_written_bytes_total{$i}[$w])")
    ),
    fam!(
        "disk_reads_per_second",
        Disk,
        DEV,
        Some("rate(node_disk_reads_completed_total{$i}[$w])")
    ),
    fam!(
        "disk_writes_per_second",
        Disk,
        DEV,
        Some("rate(node_disk_writes_completed_total{$i}[$w])")
    ),
    fam!(
        "disk_read_latency_seconds",
        Disk,
        DEV,
        Some(
            "rate(node_disk_read_time_seconds_total{$i}[$w]) \
             / (rate(node_disk_reads_completed_total{$i}[$w]) > 0) \
             or rate(node_disk_read_time_seconds_total{$i}[$w]) * 0"
        )
    ),
    fam!(
        "disk_write_latency_seconds",
        Disk,
        DEV,
        Some(
            "rate(node_disk_write_time_seconds_total{$i}[$w]) \
             / (rate(node_disk_writes_completed_total{$i}[$w]) > 0) \
             or rate(node_disk_write_time_seconds_total{$i}[$w]) * 0"
        )
    ),
    fam!(
        "disk_busy_ratio",
        Disk,
        DEV,
        Some("clamp_max(rate(node_disk_io_time_seconds_total{$i}[$w]), 1)")
    ),
    fam!(
        "disk_queue_depth",
        Disk,
        DEV,
        Some("rate(node_disk_io_time_weighted_seconds_total{$i}[$w])")
    ),
    fam!(
        "tcp_connections_established",
        Network,
        &[],
        Some("node_netstat_Tcp_CurrEstab{$i}")
    ),
    fam!(
        "network_receive_bytes_per_second",
        Network,
        IF,
        Some("rate(node_network_receive_bytes_total{$i}[$w])")
    ),
    fam!(
        "network_transmit_bytes_per_second",
        Network,
        IF,
        Some("rate(node_network_transmit_bytes_total{$i}[$w])")
    ),
    fam!(
        "network_receive_packets_per_second",
        Network,
        IF,
        Some("rate(node_network_receive_packets_total{$i}[$w])")
    ),
    fam!(
        "network_transmit_packets_per_second",
        Network,
        IF,
        Some("rate(node_network_transmit_packets_total{$i}[$w])")
    ),
    fam!(
        "network_receive_errors_per_second",
        Network,
        IF,
        Some("rate(node_network_receive_errs_total{$i}[$w])")
    ),
    fam!(
        "network_transmit_errors_per_second",
        Network,
        IF,
        Some("rate(node_network_transmit_errs_total{$i}[$w])")
    ),
    fam!(
        "network_receive_drops_per_second",
        Network,
        IF,
        Some("rate(node_network_receive_drop_total{$i}[$w])")
    ),
    fam!(
        "network_transmit_drops_per_second",
        Network,
        IF,
        Some("rate(node_network_transmit_drop_total{$i}[$w])")
    ),
    fam!(
        "tcp_retransmits_per_second",
        Network,
        &[],
        Some("rate(node_netstat_Tcp_RetransSegs{$i}[$w])")
    ),
    fam!(
        "tcp_resets_per_second",
        Network,
        &[],
        Some("rate(node_netstat_Tcp_OutRsts{$i}[$w])")
    ),
    // Not in node_exporter's default netstat fields (--collector.netstat.fields adds
    // them); where they are missing the daemon learns them itself later.
    fam!(
        "tcp_attempt_fails_per_second",
        Network,
        &[],
        Some("rate(node_netstat_Tcp_AttemptFails{$i}[$w])")
    ),
    fam!(
        "tcp_established_resets_per_second",
        Network,
        &[],
        Some("rate(node_netstat_Tcp_EstabResets{$i}[$w])")
    ),
    fam!(
        "udp_receive_errors_per_second",
        Network,
        &[],
        Some("rate(node_netstat_Udp_InErrors{$i}[$w])")
    ),
    // blackbox_exporter: one echo per probe, so its round-trip time stands for the
    // median; loss is the share of failed probes over the rate window. `$b` is the
    // probes' selector, `$t` the configured ping targets.
    fam!("ping_rtt_min_seconds", Ping, PING, None),
    fam!(
        "ping_rtt_median_seconds",
        Ping,
        PING,
        Some("avg_over_time(probe_icmp_duration_seconds{phase=\"rtt\",$b,instance=~\"$t\"}[$w])")
    ),
    fam!("ping_rtt_max_seconds", Ping, PING, None),
    fam!("ping_jitter_seconds", Ping, PING, None),
    fam!(
        "ping_loss_ratio",
        Ping,
        PING,
        Some("1 - avg_over_time(probe_success{$b,instance=~\"$t\"}[$w])")
    ),
];

/// Where the series come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// node_exporter (and blackbox_exporter for ping).
    Node,
    /// anomalyd's own /metrics: `anomalyd_<feature>`, the same labels.
    Anomalyd,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Node => "node_exporter",
            Source::Anomalyd => "anomalyd",
        }
    }
}

/// What a query is filled in with.
#[derive(Debug, Clone)]
pub struct Vars {
    /// The instance matcher, `instance="web1:9100"`.
    pub instance: String,
    /// The rate window as PromQL (`120s`).
    pub window: String,
    /// blackbox probe matchers (`job="blackbox"`); `None`: no ping from blackbox.
    pub blackbox: Option<String>,
    /// The configured ping targets as one anchored alternation.
    pub targets: Option<String>,
}

impl Family {
    /// The PromQL for this family from `source`; `None` when there is none (no
    /// node_exporter equivalent, or ping without targets or a blackbox selector).
    pub fn query(&self, source: Source, v: &Vars) -> Option<String> {
        let template = match source {
            Source::Anomalyd => return Some(format!("anomalyd_{}{{{}}}", self.name, v.instance)),
            Source::Node => self.node?,
        };
        let mut q = template.replace("$i", &v.instance).replace("$w", &v.window);
        if self.group == Group::Ping {
            q = q
                .replace("$b", v.blackbox.as_deref()?)
                .replace("$t", v.targets.as_deref()?);
        }
        Some(q)
    }

    /// The feature name of one answer series (`None`: the collectors' filters drop a
    /// node_exporter series, or a label is missing). `address` resolves a ping target the way the ping
    /// collector does.
    pub fn feature(
        &self,
        source: Source,
        labels: &BTreeMap<String, String>,
        collectors: &Collectors,
        address: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        let mut pairs: Vec<(&str, String)> = Vec::with_capacity(self.labels.len());
        for (ours, theirs) in self.labels {
            let value = match (source, *theirs) {
                (Source::Anomalyd, _) => labels.get(*ours)?.clone(),
                (Source::Node, "") => address(&pairs.first()?.1)?,
                (Source::Node, theirs) => labels.get(theirs)?.clone(),
            };
            pairs.push((ours, value));
        }
        let get = |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        let keep = match self.group {
            // anomalyd's own series are what that host's daemon produced, with its own
            // filters and ping targets: taken as they are.
            _ if source == Source::Anomalyd => true,
            Group::Cpu => collectors.cpu.enabled,
            Group::Memory => collectors.memory.enabled,
            Group::Filesystem => {
                let d = &collectors.disk;
                d.enabled
                    && d.mount_points.keeps(get("mountpoint")?)
                    && d.fs_types.keeps(get("fstype")?)
            }
            Group::Disk => collectors.disk.enabled && collectors.disk.devices.keeps(get("device")?),
            Group::Network => {
                collectors.network.enabled
                    && get("interface").is_none_or(|i| collectors.network.interfaces.keeps(i))
            }
            Group::Ping => {
                collectors.ping.enabled
                    && collectors
                        .ping
                        .targets
                        .iter()
                        .any(|t| Some(t.as_str()) == get("target"))
            }
        };
        keep.then(|| series_name(self.name, pairs.iter().map(|(k, v)| (*k, v.as_str()))))
    }
}

/// Rows of features by timestamp, from every family's answer.
#[derive(Debug, Default)]
pub struct Rows {
    by_time: BTreeMap<i64, Vec<(String, f64)>>,
    /// Families that gave at least one feature.
    pub mapped: Vec<&'static str>,
}

impl Rows {
    /// Add one family's answer.
    pub fn add(
        &mut self,
        family: &Family,
        source: Source,
        series: &[Series],
        collectors: &Collectors,
        address: &dyn Fn(&str) -> Option<String>,
    ) {
        let mut any = false;
        for s in series {
            let Some(name) = family.feature(source, &s.labels, collectors, address) else {
                continue;
            };
            for &(t, v) in &s.points {
                self.by_time.entry(t).or_default().push((name.clone(), v));
                any = true;
            }
        }
        if any {
            self.mapped.push(family.name);
        }
    }

    /// The rows, oldest first, as the model's records.
    pub fn records(self) -> Vec<crate::sample::Record> {
        self.by_time
            .into_iter()
            .map(|(t, values)| crate::sample::Record {
                timestamp_ms: Some(t),
                values,
            })
            .collect()
    }
}

/// `s` as a PromQL string literal's content (backslashes and quotes escaped).
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Anchored alternation of literal `targets` for a `=~` matcher (regex metacharacters
/// escaped, then escaped again for the PromQL string).
pub fn alternation(targets: &[String]) -> String {
    let alts: Vec<String> = targets.iter().map(|t| regex_lite::escape(t)).collect();
    escape(&alts.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn family(name: &str) -> &'static Family {
        FAMILIES.iter().find(|f| f.name == name).expect("family")
    }

    fn vars() -> Vars {
        Vars {
            instance: "instance=\"web1:9100\"".into(),
            window: "120s".into(),
            blackbox: Some("job=\"blackbox\"".into()),
            targets: Some(alternation(&["gw.example.com".into()])),
        }
    }

    const NO_DNS: &dyn Fn(&str) -> Option<String> = &|t| Some(format!("ip-of-{t}"));

    #[test]
    fn names_are_unique_and_node_queries_are_filled_in() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
        for f in FAMILIES {
            if let Some(q) = f.query(Source::Node, &vars()) {
                assert!(!q.contains('$'), "{}: {q}", f.name);
                assert!(q.contains("instance"), "{}: {q}", f.name);
            }
        }
        assert_eq!(
            family("forks_per_second")
                .query(Source::Node, &vars())
                .as_deref(),
            Some("rate(node_forks_total{instance=\"web1:9100\"}[120s])")
        );
        assert_eq!(
            family("ping_rtt_median_seconds").query(Source::Node, &vars()).as_deref(),
            Some("avg_over_time(probe_icmp_duration_seconds{phase=\"rtt\",job=\"blackbox\",instance=~\"gw\\\\.example\\\\.com\"}[120s])")
        );
        // No blackbox selector: no ping query; no node_exporter equivalent: none.
        let v = Vars {
            blackbox: None,
            ..vars()
        };
        assert_eq!(family("ping_loss_ratio").query(Source::Node, &v), None);
        assert_eq!(
            family("ping_jitter_seconds").query(Source::Node, &vars()),
            None
        );
        // anomalyd's own series: the identity.
        assert_eq!(
            family("disk_busy_ratio")
                .query(Source::Anomalyd, &vars())
                .as_deref(),
            Some("anomalyd_disk_busy_ratio{instance=\"web1:9100\"}")
        );
    }

    #[test]
    fn labels_are_renamed_ordered_and_filtered_like_the_collectors() {
        let c = Collectors::default();
        let fs = family("filesystem_used_ratio");
        let root = labels(&[
            ("device", "/dev/sda1"),
            ("fstype", "ext4"),
            ("instance", "web1:9100"),
            ("job", "node"),
            ("mountpoint", "/"),
        ]);
        assert_eq!(
            fs.feature(Source::Node, &root, &c, NO_DNS).as_deref(),
            Some("filesystem_used_ratio{mountpoint=\"/\",device=\"/dev/sda1\",fstype=\"ext4\"}")
        );
        // Excluded by the default filters, as the disk collector would.
        let overlay = labels(&[
            ("device", "overlay"),
            ("fstype", "overlay"),
            ("mountpoint", "/"),
        ]);
        assert_eq!(fs.feature(Source::Node, &overlay, &c, NO_DNS), None);
        let part = labels(&[("device", "sda1")]);
        assert_eq!(
            family("disk_busy_ratio").feature(Source::Node, &part, &c, NO_DNS),
            None
        );
        let lo = labels(&[("device", "lo")]);
        let rx = family("network_receive_bytes_per_second");
        assert_eq!(rx.feature(Source::Node, &lo, &c, NO_DNS), None);
        assert_eq!(
            rx.feature(Source::Node, &labels(&[("device", "eth0")]), &c, NO_DNS)
                .as_deref(),
            Some("network_receive_bytes_per_second{interface=\"eth0\"}")
        );
        // anomalyd's own series carry our label names already.
        assert_eq!(
            rx.feature(
                Source::Anomalyd,
                &labels(&[("interface", "eth0"), ("job", "x")]),
                &c,
                NO_DNS
            )
            .as_deref(),
            Some("network_receive_bytes_per_second{interface=\"eth0\"}")
        );
        // A switched-off collector maps nothing.
        let mut off = Collectors::default();
        off.cpu.enabled = false;
        let cpu = family("cpu_utilization_ratio");
        assert_eq!(
            cpu.feature(Source::Node, &labels(&[("mode", "user")]), &off, NO_DNS),
            None
        );
    }

    #[test]
    fn blackbox_probes_of_configured_targets_become_ping_features() {
        let mut c = Collectors::default();
        c.ping.targets = vec!["gw.example.com".into()];
        let rtt = family("ping_rtt_median_seconds");
        let probe = labels(&[
            ("instance", "gw.example.com"),
            ("job", "blackbox"),
            ("phase", "rtt"),
        ]);
        assert_eq!(
            rtt.feature(Source::Node, &probe, &c, NO_DNS).as_deref(),
            Some("ping_rtt_median_seconds{target=\"gw.example.com\",address=\"ip-of-gw.example.com\"}")
        );
        let other = labels(&[("instance", "db.example.com")]);
        assert_eq!(rtt.feature(Source::Node, &other, &c, NO_DNS), None);
        // A target that does not resolve here cannot be named as the daemon names it.
        assert_eq!(rtt.feature(Source::Node, &probe, &c, &|_| None), None);
    }

    #[test]
    fn rows_join_families_by_timestamp() {
        let c = Collectors::default();
        let mut rows = Rows::default();
        let s = |l: &[(&str, &str)], pts: &[(i64, f64)]| Series {
            labels: labels(l),
            points: pts.to_vec(),
        };
        rows.add(
            family("cpu_utilization_ratio"),
            Source::Node,
            &[s(&[("mode", "user")], &[(0, 0.2), (60_000, 0.3)])],
            &c,
            NO_DNS,
        );
        rows.add(
            family("forks_per_second"),
            Source::Node,
            &[s(&[], &[(60_000, 5.0)])],
            &c,
            NO_DNS,
        );
        rows.add(family("memory_used_bytes"), Source::Node, &[], &c, NO_DNS);
        assert_eq!(rows.mapped, ["cpu_utilization_ratio", "forks_per_second"]);
        let r = rows.records();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].values,
            [("cpu_utilization_ratio{mode=\"user\"}".to_string(), 0.2)]
        );
        assert_eq!(r[1].timestamp_ms, Some(60_000));
        assert_eq!(r[1].values.len(), 2);
    }
}
