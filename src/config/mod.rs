//! Configuration: YAML text -> validated [`Config`] with real types.
//!
//! Two passes (vector's shape): [`parse`] walks the YAML tree with a [`reader::Reader`]
//! that records *every* problem (unknown key, wrong type, out-of-range value) with its
//! YAML path and the offending value, then either returns a whole `Config` or all the
//! errors at once. Out-of-range values are errors, never silently clamped.
//! [`Config::default`] is what `anomalyd run` uses with no file; `config/anomalyd.yaml`
//! documents the same defaults and a test keeps the two equal.

mod parse;
pub(crate) mod reader;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use crate::collect::Paths;

pub use parse::{load, parse, ConfigErrors};
pub use reader::{parse_duration, parse_listen, parse_size, Reader, Section};

/// Default Prometheus port: unassigned in Prometheus' port registry next to exporters.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9187";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Time between samples.
    pub interval: Duration,
    /// Where history, models and tickets live.
    pub state_dir: PathBuf,
    /// Address of the HTTP server (/metrics, /healthz, API). Loopback by default.
    pub listen: SocketAddr,
    /// Optional exporter-toolkit web config (TLS, basic auth).
    pub web_config_file: Option<PathBuf>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: String,
    pub paths: Paths,
    pub collectors: Collectors,
    pub history: History,
    pub model: ModelConfig,
    /// Time to exhaustion of filesystems, memory and swap; fault risk (`forecast/`).
    pub forecast: crate::forecast::ForecastConfig,
    /// Anomalies and forecasts -> incidents: debounce, dedup, severity (`incident/`).
    pub incidents: crate::incident::IncidentConfig,
    /// Ticket store and external sinks (`tickets/`).
    pub tickets: crate::tickets::TicketsConfig,
    /// Rules that run fixes and diagnostics for incidents (`remediate/`).
    pub remediation: crate::remediate::RemediationConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Learn and score at all.
    pub enabled: bool,
    /// History needed (time since the first stored sample) before the first training.
    pub warmup: Duration,
    /// How often the model is retrained in the background.
    pub retrain_interval: Duration,
    /// How much history a training run reads (the newest part).
    pub window: Duration,
    /// At most this many history rows per training run (evenly spread over the window).
    pub max_training_rows: usize,
    /// How many top causes are exported per sample.
    pub top_causes: usize,
    /// Hyper-parameters: `models/default.json` built in, or a file.
    pub spec_file: Option<PathBuf>,
    pub spec: crate::model::Spec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Collectors {
    pub cpu: Toggle,
    pub memory: Toggle,
    pub disk: DiskConfig,
    pub network: NetworkConfig,
    pub ping: PingConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toggle {
    pub enabled: bool,
}

/// Anchored regular expression (`^...$` added), as node_exporter's include/exclude flags.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl Pattern {
    pub fn new(src: &str) -> Result<Self, regex::Error> {
        Regex::new(&format!("^(?:{src})$")).map(Pattern)
    }
    pub fn is_match(&self, s: &str) -> bool {
        self.0.is_match(s)
    }
    /// The pattern as the user wrote it.
    pub fn as_str(&self) -> &str {
        let s = self.0.as_str();
        &s[4..s.len() - 2]
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Name filter: kept when it matches `include` (if set) and does not match `exclude`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub include: Option<Pattern>,
    pub exclude: Option<Pattern>,
}

impl Filter {
    pub fn keeps(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|p| p.is_match(name))
            && !self.exclude.as_ref().is_some_and(|p| p.is_match(name))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskConfig {
    pub enabled: bool,
    /// Filesystems by mount point.
    pub mount_points: Filter,
    /// Filesystems by type (pseudo filesystems excluded by default).
    pub fs_types: Filter,
    /// Block devices in /proc/diskstats by name (partitions and virtual devices excluded by default).
    pub devices: Filter,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    pub enabled: bool,
    /// Interfaces by name (loopback excluded by default).
    pub interfaces: Filter,
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// One sample per minute is kept this long (what training reads).
    pub retention: Duration,
    /// Every sample is kept this long (recent detail for reports and forecasts).
    pub raw_retention: Duration,
    /// Upper bound of the history database on disk, in bytes; oldest samples go first.
    pub max_size_bytes: u64,
}

pub const DEFAULT_MOUNT_EXCLUDE: &str =
    "/(dev|proc|sys|run/credentials/.+|var/lib/docker/.+|var/lib/containers/storage/.+)(/.*)?";
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs|nfsd|ramfs";
pub const DEFAULT_DEVICE_EXCLUDE: &str =
    "(ram|loop|fd|(h|s|v|xv)d[a-z]+|nvme\\d+n\\d+p|mmcblk\\d+p)\\d+|dm-\\d+|sr\\d+|zram\\d+";
pub const DEFAULT_INTERFACE_EXCLUDE: &str = "lo";

fn pattern(src: &str) -> Option<Pattern> {
    // Only called with the constants above, which a unit test compiles.
    Pattern::new(src).ok()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(1),
            state_dir: PathBuf::from("anomalyd-state"),
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9187))),
            web_config_file: None,
            log_level: "info".to_string(),
            paths: Paths::default(),
            collectors: Collectors {
                cpu: Toggle { enabled: true },
                memory: Toggle { enabled: true },
                disk: DiskConfig {
                    enabled: true,
                    mount_points: Filter {
                        include: None,
                        exclude: pattern(DEFAULT_MOUNT_EXCLUDE),
                    },
                    fs_types: Filter {
                        include: None,
                        exclude: pattern(DEFAULT_FS_TYPES_EXCLUDE),
                    },
                    devices: Filter {
                        include: None,
                        exclude: pattern(DEFAULT_DEVICE_EXCLUDE),
                    },
                },
                network: NetworkConfig {
                    enabled: true,
                    interfaces: Filter {
                        include: None,
                        exclude: pattern(DEFAULT_INTERFACE_EXCLUDE),
                    },
                },
                ping: PingConfig {
                    enabled: true,
                    targets: Vec::new(),
                    packets: 5,
                    packet_interval: Duration::from_millis(100),
                    timeout: Duration::from_secs(1),
                    round_interval: Duration::from_secs(5),
                    payload_size: 56,
                },
            },
            model: ModelConfig {
                enabled: true,
                warmup: Duration::from_secs(3600),
                retrain_interval: Duration::from_secs(6 * 3600),
                window: Duration::from_secs(30 * 24 * 3600),
                max_training_rows: 43_200,
                top_causes: 3,
                spec_file: None,
                spec: crate::model::Spec::default(),
            },
            history: History {
                retention: Duration::from_secs(30 * 24 * 3600),
                raw_retention: Duration::from_secs(2 * 24 * 3600),
                max_size_bytes: 1 << 30,
            },
            forecast: Default::default(),
            incidents: Default::default(),
            tickets: Default::default(),
            remediation: Default::default(),
        }
    }
}
