//! Collectors: one file per area, all listed in [`build`], all run every tick. Each
//! file owns its `collectors.<name>` config, its defaults and its parser; this one
//! reads the `collectors:` section by asking each of them.
//!
//! A collector reads the host (through [`Paths`], so tests point it at a fixture tree)
//! and appends points to the tick's [`Sample`]. Collectors that need two readings to
//! form a rate keep the previous raw counters in `self`; on the first tick they emit no
//! rate rather than a bogus one. A failing collector returns an error which the runner
//! records as `anomalyd_collector_success 0`; it never stops the tick.

pub mod cpu;
pub mod disk;
pub mod memory;
pub mod network;
pub mod ping;
pub mod statvfs;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde_yaml::Value;

pub use crate::config::reader::Paths;
use crate::config::reader::{Filter, Reader, Section};
use crate::sample::{CollectorRun, Sample};

/// The `collectors:` section: which run, and each one's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Collectors {
    pub cpu: Toggle,
    pub memory: Toggle,
    pub disk: disk::DiskConfig,
    pub network: network::NetworkConfig,
    pub ping: ping::PingConfig,
}

/// A collector with no settings but whether it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toggle {
    pub enabled: bool,
}

impl Default for Collectors {
    fn default() -> Self {
        Collectors {
            cpu: Toggle { enabled: true },
            memory: Toggle { enabled: true },
            disk: Default::default(),
            network: Default::default(),
            ping: Default::default(),
        }
    }
}

/// Read the `collectors:` section; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> Collectors {
    let c = r.section(v, path, &["cpu", "memory", "disk", "network", "ping"]);
    Collectors {
        cpu: toggle(r, &c, "cpu"),
        memory: toggle(r, &c, "memory"),
        disk: disk::parse_config(r, c.get("disk"), &c.path("disk")),
        network: network::parse_config(r, c.get("network"), &c.path("network")),
        ping: ping::parse_config(r, c.get("ping"), &c.path("ping")),
    }
}

fn toggle(r: &mut Reader, parent: &Section, key: &str) -> Toggle {
    let s = r.section(parent.get(key), &parent.path(key), &["enabled"]);
    Toggle {
        enabled: s.bool(r, "enabled", true),
    }
}

/// Error from one collector in one tick.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl CollectError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        CollectError::Io {
            path: path.display().to_string(),
            source,
        }
    }
    pub fn parse(path: &Path, message: impl Into<String>) -> Self {
        CollectError::Parse {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}

/// Read a whole small file (procfs/sysfs), with the path in the error.
pub fn read(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|e| CollectError::io(path, e))
}

/// A name filter from the config with its verdict per name remembered. Mounts, devices
/// and interfaces keep their names tick after tick, and matching each against the
/// config's patterns every tick was a few percent of the daemon's CPU time. Collectors
/// are rebuilt when the config changes, so a verdict never outlives its filter.
pub struct Kept {
    filter: Filter,
    verdicts: HashMap<String, bool>,
}

impl Kept {
    pub fn new(filter: &Filter) -> Self {
        Kept {
            filter: filter.clone(),
            verdicts: HashMap::new(),
        }
    }

    pub fn keeps(&mut self, name: &str) -> bool {
        if let Some(&verdict) = self.verdicts.get(name) {
            return verdict;
        }
        // Bounded: a host that creates and deletes interfaces all day (containers'
        // veths) would otherwise grow this without end.
        if self.verdicts.len() >= 4096 {
            self.verdicts.clear();
        }
        let verdict = self.filter.keeps(name);
        self.verdicts.insert(name.to_string(), verdict);
        verdict
    }
}

/// One area of the host. `collect` is called once per tick with the tick's sample;
/// Rates are computed from `sample.timestamp_ms` against the previous call's timestamp, so tests
/// drive time explicitly.
pub trait Collector: Send {
    fn name(&self) -> &'static str;
    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError>;
}

/// The collectors enabled in `c`, reading the host through `paths`, in the order
/// they run.
pub fn build(paths: &Paths, c: &Collectors) -> Vec<Box<dyn Collector>> {
    let mut list: Vec<Box<dyn Collector>> = Vec::new();
    if c.cpu.enabled {
        list.push(Box::new(cpu::Cpu::new(paths.clone())));
    }
    if c.memory.enabled {
        list.push(Box::new(memory::Memory::new(paths.clone())));
    }
    if c.disk.enabled {
        list.push(Box::new(disk::Disk::new(paths.clone(), c.disk.clone())));
    }
    if c.network.enabled {
        list.push(Box::new(network::Network::new(
            paths.clone(),
            c.network.clone(),
        )));
    }
    if c.ping.enabled && !c.ping.targets.is_empty() {
        list.push(Box::new(ping::Ping::new(c.ping.clone())));
    }
    list
}

/// Run every collector once into a new sample stamped `timestamp_ms`, timing each.
pub fn run_all(collectors: &mut [Box<dyn Collector>], timestamp_ms: i64) -> Sample {
    let mut sample = Sample::new(timestamp_ms);
    for c in collectors.iter_mut() {
        let start = Instant::now();
        let result = c.collect(&mut sample);
        let duration_seconds = start.elapsed().as_secs_f64();
        sample.runs.push(CollectorRun {
            collector: c.name(),
            success: result.is_ok(),
            duration_seconds,
            error: result.err().map(|e| e.to_string()),
        });
    }
    sample
}

/// Helpers shared by the collectors' unit tests.
/// Every /proc and /sys parser on the same text, for the fuzz targets (`fuzz/`):
/// whatever the kernel, a container runtime or a fixture hands us, none may panic.
#[doc(hidden)]
pub fn parse_proc_for_fuzzing(text: &str) {
    cpu::parse_for_fuzzing(text);
    memory::parse_for_fuzzing(text);
    network::parse_for_fuzzing(text);
    disk::parse_for_fuzzing(text);
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Paths;
    use std::path::PathBuf;

    /// The checked-in fixture host `tests/fixtures/<host>` as collector paths.
    pub(crate) fn fixture(host: &str) -> Paths {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(host);
        Paths {
            procfs: root.join("proc"),
            sysfs: root.join("sys"),
            rootfs: root.join("root"),
        }
    }

    /// `actual` is present and equal to `expected` up to float rounding.
    #[allow(clippy::unwrap_used)]
    pub(crate) fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.unwrap();
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::reader::Pattern;

    #[test]
    fn kept_names_are_the_filters_verdicts_remembered_within_a_bound() {
        let filter = Filter {
            include: Some(Pattern::new("eth.*|veth.*").unwrap()),
            exclude: Some(Pattern::new("veth9.*").unwrap()),
        };
        let mut kept = Kept::new(&filter);
        for _ in 0..2 {
            for name in ["eth0", "veth1", "veth99", "lo", "docker0"] {
                assert_eq!(kept.keeps(name), filter.keeps(name), "{name}");
            }
        }
        for i in 0..10_000 {
            let name = format!("veth{i}");
            assert_eq!(kept.keeps(&name), !name.starts_with("veth9"), "{name}");
        }
        assert!(kept.verdicts.len() <= 4096, "{}", kept.verdicts.len());
    }
}
