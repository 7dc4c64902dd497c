//! What a person looks at: the data behind the report and the dashboard pages, the
//! charts drawn from it, and the report itself. Reads the state directory only
//! (`history.db`, `tickets.db`, `model.json`), so it works from another process while
//! the daemon runs, and after it stopped. Nothing here writes.
//!
//! The data layer (each a plain, serialisable value; the dashboard's pages and JSON
//! API use the same ones):
//!
//! - [`facts`]: [`facts::HostFacts::gather`] — OS, kernel, host name, cores, memory,
//!   swap, uptime and link speeds, via `sysinfo` (and sysfs for the link speeds).
//! - [`period`]: [`period::Period`] — the time range of a view and the history tier
//!   read for it (`raw` up to [`period::RAW_MAX`], `minute` beyond);
//!   [`period::parse_since`] checks a `--since` / `?since=` value.
//! - [`health`]: [`health::build`] — the weighted health score (weights from
//!   [`HealthConfig`], `health.weights` in the config), each part 0–100 with a
//!   one-line account of how it was computed, and the resource use over the period.
//! - [`timeline`]: [`timeline::build`] — the anomaly score against its threshold over
//!   the period (the daemon stores both beside the features: `store::derived`), with
//!   the incidents of the period for shading.
//! - [`heatmap`]: [`heatmap::build`] — per ping target, a time × RTT-bucket density
//!   matrix (smokeping style) with the loss and the median of each column.
//! - [`charts`]: each of the above as an SVG string, drawn with `plotters`.
//! - [`report`]: `anomalyd report` and `GET /report`: [`report::build`] gathers
//!   everything into a [`report::Report`], rendered as HTML (maud, one self-contained
//!   file), Markdown or JSON; [`report::Source`] says where to read.

pub mod charts;
pub mod facts;
pub mod health;
pub mod heatmap;
pub mod period;
pub mod report;
pub mod timeline;

use serde_yaml::Value;

use crate::config::reader::Reader;

/// `health:` in the config: how the parts of the health score are weighed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthConfig {
    pub weights: Weights,
}

/// Relative weights of the health score's parts: any non-negative numbers with a
/// positive sum (the score divides by the sum of the parts it could compute).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Weights {
    pub cpu: f64,
    pub memory: f64,
    pub disk_io: f64,
    pub bandwidth: f64,
}

impl Default for HealthConfig {
    /// The platform's weights: vCPU 40 %, memory 30 %, disk IO 20 %, bandwidth 10 %.
    fn default() -> Self {
        HealthConfig {
            weights: Weights {
                cpu: 40.0,
                memory: 30.0,
                disk_io: 20.0,
                bandwidth: 10.0,
            },
        }
    }
}

/// Read the `health:` section; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> HealthConfig {
    let d = HealthConfig::default();
    let h = r.section(v, path, &["weights"]);
    let wpath = h.path("weights");
    let w = r.section(
        h.get("weights"),
        &wpath,
        &["cpu", "memory", "disk_io", "bandwidth"],
    );
    let max = 1e6;
    let weights = Weights {
        cpu: w.float(r, "cpu", d.weights.cpu, 0.0, max),
        memory: w.float(r, "memory", d.weights.memory, 0.0, max),
        disk_io: w.float(r, "disk_io", d.weights.disk_io, 0.0, max),
        bandwidth: w.float(r, "bandwidth", d.weights.bandwidth, 0.0, max),
    };
    if weights.cpu + weights.memory + weights.disk_io + weights.bandwidth <= 0.0 {
        r.error(
            &wpath,
            "the weights sum to 0; at least one must be positive",
        );
    }
    HealthConfig { weights }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<HealthConfig, Vec<String>> {
        let doc: Value = serde_yaml::from_str(yaml).unwrap();
        let mut r = Reader::default();
        let c = parse_config(&mut r, Some(&doc), "health");
        if r.errors.is_empty() {
            Ok(c)
        } else {
            Err(r.errors)
        }
    }

    #[test]
    fn weights_default_to_the_platform_split_and_are_validated() {
        assert_eq!(parse("{}").unwrap(), HealthConfig::default());
        let c = parse("weights: {cpu: 1, memory: 0, disk_io: 0, bandwidth: 0}").unwrap();
        assert_eq!(c.weights.cpu, 1.0);
        let e = parse("weights: {cpu: -1}").unwrap_err();
        assert!(
            e[0].starts_with("health.weights.cpu: -1 is out of range"),
            "{e:?}"
        );
        let e = parse("weights: {cpu: 0, memory: 0, disk_io: 0, bandwidth: 0}").unwrap_err();
        assert_eq!(
            e,
            ["health.weights: the weights sum to 0; at least one must be positive"]
        );
        let e = parse("weights: {gpu: 3}").unwrap_err();
        assert!(e[0].starts_with("health.weights.gpu: unknown key"), "{e:?}");
    }
}
