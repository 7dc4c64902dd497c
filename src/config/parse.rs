//! YAML text -> [`Config`]: every key read with its default, every problem collected.

use std::path::Path;
use std::time::Duration;

use serde_yaml::Value;

use super::reader::{Reader, Section};
use super::{Config, DiskConfig, Filter, NetworkConfig, PingConfig};
use crate::collect::Paths;

/// All the problems found in one configuration, one per line, each starting with its
/// YAML path.
#[derive(Debug, thiserror::Error)]
#[error("{} configuration error{}:\n  {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.join("\n  "))]
pub struct ConfigErrors(pub Vec<String>);

/// Read and validate a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    parse(&text).map_err(|ConfigErrors(errs)| {
        ConfigErrors(
            errs.into_iter()
                .map(|e| format!("{}: {e}", path.display()))
                .collect(),
        )
    })
}

const SECS: fn(u64) -> Duration = Duration::from_secs;
const MILLIS: fn(u64) -> Duration = Duration::from_millis;
const DAY: u64 = 86_400;

/// Validate configuration text. An empty document is the defaults.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    let doc: Value = serde_yaml::from_str(text)
        .map_err(|e| ConfigErrors(vec![format!("malformed YAML: {e}")]))?;
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
            "log_level",
            "paths",
            "collectors",
            "history",
            "model",
            "forecast",
            "incidents",
            "tickets",
            "remediation",
        ],
    );
    let interval = top.duration(&mut r, "interval", d.interval, MILLIS(10), SECS(3600));
    let state_dir = top.opt_path(&mut r, "state_dir").unwrap_or(d.state_dir);
    let listen = top.socket_addr(&mut r, "listen", d.listen);
    let web_config_file = top.opt_path(&mut r, "web_config_file");
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

    let c = r.section(
        top.get("collectors"),
        "collectors",
        &["cpu", "memory", "disk", "network", "ping"],
    );
    let dc = &d.collectors;
    let cpu = toggle(&mut r, &c, "cpu");
    let memory = toggle(&mut r, &c, "memory");

    let s = r.section(
        c.get("disk"),
        "collectors.disk",
        &["enabled", "mount_points", "fs_types", "devices"],
    );
    let disk = DiskConfig {
        enabled: s.bool(&mut r, "enabled", true),
        mount_points: filter(&mut r, &s, "mount_points", &dc.disk.mount_points),
        fs_types: filter(&mut r, &s, "fs_types", &dc.disk.fs_types),
        devices: filter(&mut r, &s, "devices", &dc.disk.devices),
    };

    let s = r.section(
        c.get("network"),
        "collectors.network",
        &["enabled", "interfaces"],
    );
    let network = NetworkConfig {
        enabled: s.bool(&mut r, "enabled", true),
        interfaces: filter(&mut r, &s, "interfaces", &dc.network.interfaces),
    };

    let s = r.section(
        c.get("ping"),
        "collectors.ping",
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
    let dp = &dc.ping;
    let ping = PingConfig {
        enabled: s.bool(&mut r, "enabled", dp.enabled),
        targets: s.strings(&mut r, "targets"),
        packets: s.int(&mut r, "packets", dp.packets.into(), 1, 100) as u32,
        packet_interval: s.duration(
            &mut r,
            "packet_interval",
            dp.packet_interval,
            MILLIS(1),
            SECS(10),
        ),
        timeout: s.duration(&mut r, "timeout", dp.timeout, MILLIS(1), SECS(60)),
        round_interval: s.duration(
            &mut r,
            "round_interval",
            dp.round_interval,
            MILLIS(100),
            SECS(3600),
        ),
        payload_size: s.int(&mut r, "payload_size", dp.payload_size as u64, 8, 1400) as usize,
    };
    let round_len = ping.packet_interval * ping.packets.saturating_sub(1) + ping.timeout;
    if ping.enabled && round_len > ping.round_interval {
        r.error(
            "collectors.ping",
            format!(
                "a round takes up to {:?} (packets × packet_interval + timeout), longer than round_interval {:?}",
                round_len, ping.round_interval
            ),
        );
    }

    let h = r.section(
        top.get("history"),
        "history",
        &["retention", "raw_retention", "max_size"],
    );
    let history = super::History {
        retention: h.duration(
            &mut r,
            "retention",
            d.history.retention,
            SECS(3600),
            SECS(3650 * DAY),
        ),
        raw_retention: h.duration(
            &mut r,
            "raw_retention",
            d.history.raw_retention,
            SECS(60),
            SECS(365 * DAY),
        ),
        max_size_bytes: h.size(&mut r, "max_size", d.history.max_size_bytes, 1 << 20),
    };

    let m = r.section(
        top.get("model"),
        "model",
        &[
            "enabled",
            "warmup",
            "retrain_interval",
            "window",
            "max_training_rows",
            "top_causes",
            "spec_file",
        ],
    );
    let dm = &d.model;
    let spec_file = m.opt_path(&mut r, "spec_file");
    let spec = match &spec_file {
        None => dm.spec.clone(),
        Some(p) => match std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| crate::model::Spec::from_json(&t).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                r.error(&m.path("spec_file"), format!("{}: {e}", p.display()));
                dm.spec.clone()
            }
        },
    };
    let model = super::ModelConfig {
        enabled: m.bool(&mut r, "enabled", dm.enabled),
        warmup: m.duration(&mut r, "warmup", dm.warmup, MILLIS(100), SECS(365 * DAY)),
        retrain_interval: m.duration(
            &mut r,
            "retrain_interval",
            dm.retrain_interval,
            SECS(1),
            SECS(365 * DAY),
        ),
        window: m.duration(&mut r, "window", dm.window, SECS(1), SECS(3650 * DAY)),
        max_training_rows: m.int(
            &mut r,
            "max_training_rows",
            dm.max_training_rows as u64,
            10,
            10_000_000,
        ) as usize,
        top_causes: m.int(&mut r, "top_causes", dm.top_causes as u64, 1, 20) as usize,
        spec_file,
        spec,
    };

    // Each later stage reads its own section (its config lives with its code).
    let mut forecast = crate::forecast::parse_config(&mut r, top.get("forecast"), "forecast");
    let incidents = crate::incident::parse_config(&mut r, top.get("incidents"), "incidents");
    forecast.risk.debounce_anomalous = incidents.open_after;
    forecast.risk.debounce_of = incidents.open_window;
    let tickets = crate::tickets::parse_config(&mut r, top.get("tickets"), "tickets");
    let remediation = crate::remediate::parse_config(&mut r, top.get("remediation"), "remediation");

    if r.errors.is_empty() {
        Ok(Config {
            interval,
            state_dir,
            listen,
            web_config_file,
            log_level,
            paths,
            collectors: super::Collectors {
                cpu,
                memory,
                disk,
                network,
                ping,
            },
            history,
            model,
            forecast,
            incidents,
            tickets,
            remediation,
        })
    } else {
        Err(ConfigErrors(r.errors))
    }
}

fn toggle(r: &mut Reader, parent: &Section, key: &str) -> super::Toggle {
    let s = r.section(parent.get(key), &parent.path(key), &["enabled"]);
    super::Toggle {
        enabled: s.bool(r, "enabled", true),
    }
}

fn filter(r: &mut Reader, parent: &Section, key: &str, default: &Filter) -> Filter {
    let s = r.section(parent.get(key), &parent.path(key), &["include", "exclude"]);
    Filter {
        include: s.pattern(r, "include", default.include.clone()),
        exclude: s.pattern(r, "exclude", default.exclude.clone()),
    }
}
