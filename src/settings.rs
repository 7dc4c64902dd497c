//! The whole configuration: YAML text -> validated [`Config`] with real types.
//!
//! Two passes (vector's shape): [`parse`] walks the YAML tree with a
//! [`Reader`] that records *every* problem (unknown key, wrong type, out-of-range value)
//! with its YAML path and the offending value, then either returns a whole `Config` or
//! all the errors at once. Out-of-range values are errors, never silently clamped.
//!
//! This file reads only the daemon's own keys (interval, listen, state directory, ...);
//! every other section is read by the module it configures (`collect::parse_config`,
//! `store::parse_config`, ...), which also owns its defaults. [`Config::default`] is
//! what `anomalyd run` uses with no file; `config/anomalyd.yaml` documents the same
//! defaults and a test keeps the two equal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use crate::collect::Collectors;
use crate::config::reader::{Paths, Reader};
use crate::export::config::HttpConfig;
use crate::forecast::ForecastConfig;
use crate::incident::IncidentConfig;
use crate::model::ModelConfig;
use crate::remediate::RemediationConfig;
use crate::store::HistoryConfig;
use crate::tickets::TicketsConfig;
use crate::view::HealthConfig;

/// The range of `interval` (and of `run --interval`).
pub const INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(3600));

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
    /// Connection cap and client timeouts of the HTTP server (`export/`).
    pub http: HttpConfig,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: String,
    pub paths: Paths,
    /// Which collectors run, each with its settings (`collect/`).
    pub collectors: Collectors,
    /// How long samples are kept (`store/`).
    pub history: HistoryConfig,
    /// When and how the daemon learns (`model/`).
    pub model: ModelConfig,
    /// Time to exhaustion of filesystems, memory and swap; fault risk (`forecast/`).
    pub forecast: ForecastConfig,
    /// Anomalies and forecasts -> incidents: debounce, dedup, severity (`incident/`).
    pub incidents: IncidentConfig,
    /// Ticket store and external sinks (`tickets/`).
    pub tickets: TicketsConfig,
    /// Rules that run fixes and diagnostics for incidents (`remediate/`).
    pub remediation: RemediationConfig,
    /// Weights of the health score in the report and the dashboard (`view/`).
    pub health: HealthConfig,
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
            http: Default::default(),
            log_level: "info".to_string(),
            paths: Paths::default(),
            collectors: Default::default(),
            model: Default::default(),
            history: Default::default(),
            forecast: Default::default(),
            incidents: Default::default(),
            tickets: Default::default(),
            remediation: Default::default(),
            health: Default::default(),
        }
    }
}

impl Config {
    /// What the health report reads (`anomalyd report`, `GET /report`).
    pub fn report_source(&self, state: &crate::store::StateDir) -> crate::view::report::Source {
        crate::view::report::Source {
            state: state.clone(),
            history: self.history.clone(),
            forecast: self.forecast.clone(),
            model: self.model.clone(),
            health: self.health.clone(),
            sysfs: self.paths.sysfs.clone(),
        }
    }
}

/// All the problems found in one configuration, one per line, each starting with its
/// YAML path.
#[derive(Debug, thiserror::Error)]
#[error("{} configuration error{}:\n  {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n  "))]
pub struct ConfigErrors(pub Vec<String>);

/// Read and validate a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = crate::config::file::read_text(path, crate::config::reader::MAX_YAML_BYTES as u64)
        .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    parse(&text).map_err(|ConfigErrors(errs)| {
        ConfigErrors(
            errs.into_iter()
                .map(|e| format!("{}: {e}", path.display()))
                .collect(),
        )
    })
}

/// Validate configuration text. An empty document is the defaults.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    let doc: Value = crate::config::reader::parse_yaml(text).map_err(|e| ConfigErrors(vec![e]))?;
    let mut r = Reader::default();
    let d = Config::default();
    let top = r.section(
        Some(&doc),
        "",
        &[
            "interval",
            "state_dir",
            "listen",
            "web_config_file",
            "http",
            "log_level",
            "paths",
            "collectors",
            "history",
            "model",
            "forecast",
            "incidents",
            "tickets",
            "remediation",
            "health",
        ],
    );
    let interval = top.duration(
        &mut r,
        "interval",
        d.interval,
        INTERVAL_RANGE.0,
        INTERVAL_RANGE.1,
    );
    let state_dir = top.opt_path(&mut r, "state_dir").unwrap_or(d.state_dir);
    let listen = top.socket_addr(&mut r, "listen", d.listen);
    let web_config_file = top.opt_path(&mut r, "web_config_file");
    let http = crate::export::config::parse_config(&mut r, top.get("http"), "http");
    let log_level = top.one_of(
        &mut r,
        "log_level",
        &["error", "warn", "info", "debug", "trace"],
        &d.log_level,
    );

    let p = r.section(top.get("paths"), "paths", &["procfs", "sysfs", "rootfs"]);
    let paths = Paths {
        procfs: p.opt_path(&mut r, "procfs").unwrap_or(d.paths.procfs),
        sysfs: p.opt_path(&mut r, "sysfs").unwrap_or(d.paths.sysfs),
        rootfs: p.opt_path(&mut r, "rootfs").unwrap_or(d.paths.rootfs),
    };

    // Each section is read by the module it configures.
    let collectors = crate::collect::parse_config(&mut r, top.get("collectors"), "collectors");
    let history = crate::store::parse_config(&mut r, top.get("history"), "history");
    let model = crate::model::parse_config(&mut r, top.get("model"), "model");
    let mut forecast = crate::forecast::parse_config(&mut r, top.get("forecast"), "forecast");
    let incidents = crate::incident::parse_config(&mut r, top.get("incidents"), "incidents");
    // The risk predicts exactly the incidents the engine opens: the same debounce.
    // The risk's target is counted on minute rows (what the model trains on).
    let minutes = |d: std::time::Duration| d.as_secs().div_ceil(60).max(1) as usize;
    forecast.risk.debounce_anomalous = minutes(incidents.opening.open_for);
    forecast.risk.debounce_of =
        minutes(incidents.opening.open_window).max(forecast.risk.debounce_anomalous);
    let tickets = crate::tickets::parse_config(&mut r, top.get("tickets"), "tickets");
    let remediation = crate::remediate::parse_config(&mut r, top.get("remediation"), "remediation");
    let health = crate::view::parse_config(&mut r, top.get("health"), "health");

    if r.errors.is_empty() {
        Ok(Config {
            interval,
            state_dir,
            listen,
            web_config_file,
            http,
            log_level,
            paths,
            collectors,
            history,
            model,
            forecast,
            incidents,
            tickets,
            remediation,
            health,
        })
    } else {
        Err(ConfigErrors(r.errors))
    }
}
