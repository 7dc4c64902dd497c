//! Hyper-parameters of the model: one global set, shipped as `models/default.json` and
//! embedded in the binary, so that every host (and the SMD benchmark) runs the same
//! method. A model file records the spec it was trained with.

use serde::{Deserialize, Serialize};

use crate::config::reader::Pattern;

/// The checked-in specification (see `models/default.json`).
pub const DEFAULT_SPEC_JSON: &str = include_str!("../../models/default.json");

/// How to train a model. Every field is documented because this is what operators
/// tune; the defaults were chosen on the SMD benchmark (see `model/mod.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Number of k-means centroids describing the "normal" operating modes of the host.
    pub clusters: usize,
    /// Upper bound on Lloyd iterations per k-means run.
    pub kmeans_max_iterations: u64,
    /// Number of k-means restarts (the best inertia wins).
    pub kmeans_runs: usize,
    /// At most this many (evenly strided) rows are used to fit the centroids; the
    /// scaling and the threshold always use every row.
    pub max_fit_rows: usize,
    /// Training is refused with fewer rows than this.
    pub min_rows: usize,
    /// Floor of a feature's scale, as a fraction of its training range (max - min):
    /// keeps nearly-constant features from turning noise into huge z-scores.
    pub min_scale_fraction: f64,
    /// A feature's |z| distance from its centroid is capped here, so one runaway metric
    /// cannot drown every other cause.
    pub z_cap: f64,
    /// Weight of the newest sample in the exponentially weighted moving average of the
    /// per-feature terms (1.0 = no smoothing), per training-row interval: when the
    /// training rows had timestamps, a sample dt after the previous one weighs
    /// 1 − (1 − α)^(dt / interval), so the smoothing spans the same time live as in
    /// training. Without timestamps, per sample.
    pub smoothing_alpha: f64,
    /// The decision threshold is this quantile of the (smoothed) training scores.
    pub threshold_quantile: f64,
    /// Optional time-of-day baseline.
    pub time_of_day: TimeOfDaySpec,
    /// Minimum real changes per kind of metric (first match wins): a deviation from
    /// the model's expectation counts only beyond its floor, in the metric's own
    /// unit, so a ping RTT going from 0.40 ms to 0.42 ms is nothing whatever its
    /// z-score, and a feature that barely varied in training cannot page for a
    /// rounding step. Absent in files from before: no floors.
    #[serde(default)]
    pub floors: Vec<Floor>,
}

/// A minimum real change for the features whose metric name matches `pattern`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    /// Anchored regular expression on the metric name (the feature's labels left out).
    pub pattern: String,
    /// In the metric's own unit (seconds, a 0-1 ratio, bytes, per second...).
    #[serde(default)]
    pub absolute: f64,
    /// As a share of the feature's mean in training.
    #[serde(default)]
    pub relative: f64,
}

impl Floor {
    fn regex(&self) -> Result<Pattern, regex_lite::Error> {
        Pattern::new(&self.pattern)
    }
}

/// Per feature: the floor of the first rule matching its metric name, `max(absolute,
/// relative × |mean|)`, 0 when none matches.
pub fn floors_for(floors: &[Floor], names: &[String], means: &[f64]) -> Vec<f64> {
    let rules: Vec<(Pattern, &Floor)> = floors
        .iter()
        .filter_map(|f| f.regex().ok().map(|r| (r, f)))
        .collect();
    names
        .iter()
        .zip(means)
        .map(|(name, mean)| {
            let metric = name.split('{').next().unwrap_or(name);
            rules
                .iter()
                .find(|(r, _)| r.is_match(metric))
                .map_or(0.0, |(_, f)| f.absolute.max(f.relative * mean.abs()))
        })
        .collect()
}

/// When and how the model learns a per-time-of-day baseline (on the host's local wall
/// clock, see [`super::clock`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOfDaySpec {
    /// Number of equal bins the day is cut into (48 = half-hours); 0 disables it.
    pub bins: usize,
    /// The baseline is learned only when timestamps span at least this many days.
    pub min_days: f64,
    /// A bin with fewer training rows than this keeps a zero baseline.
    pub min_bin_rows: usize,
}

/// A spec that is out of range; every problem is listed.
#[derive(Debug, thiserror::Error)]
#[error("invalid model spec: {}", .0.join("; "))]
pub struct SpecError(pub Vec<String>);

impl Default for Spec {
    fn default() -> Self {
        // The embedded file is checked by `default_spec_parses_and_validates`.
        #[allow(clippy::expect_used)]
        Spec::from_json(DEFAULT_SPEC_JSON).expect("models/default.json is a valid spec")
    }
}

impl Spec {
    /// Parse and validate a spec from JSON text.
    pub fn from_json(text: &str) -> Result<Spec, SpecError> {
        let spec: Spec = serde_json::from_str(text).map_err(|e| SpecError(vec![e.to_string()]))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Check every field; out-of-range values are errors, never clamped.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut errs = Vec::new();
        if self.clusters == 0 {
            errs.push("clusters: must be at least 1".to_string());
        }
        if self.kmeans_runs == 0 {
            errs.push("kmeans_runs: must be at least 1".to_string());
        }
        if self.kmeans_max_iterations == 0 {
            errs.push("kmeans_max_iterations: must be at least 1".to_string());
        }
        if self.max_fit_rows < self.clusters {
            errs.push(format!(
                "max_fit_rows: {} is fewer than clusters ({})",
                self.max_fit_rows, self.clusters
            ));
        }
        if self.min_rows < 2 {
            errs.push(format!("min_rows: {} must be at least 2", self.min_rows));
        }
        if !(self.min_scale_fraction.is_finite() && self.min_scale_fraction >= 0.0) {
            errs.push(format!(
                "min_scale_fraction: {} must be >= 0",
                self.min_scale_fraction
            ));
        }
        if !(self.z_cap.is_finite() && self.z_cap > 0.0) {
            errs.push(format!("z_cap: {} must be > 0", self.z_cap));
        }
        if !(self.smoothing_alpha > 0.0 && self.smoothing_alpha <= 1.0) {
            errs.push(format!(
                "smoothing_alpha: {} must be in (0, 1]",
                self.smoothing_alpha
            ));
        }
        if !(self.threshold_quantile > 0.0 && self.threshold_quantile < 1.0) {
            errs.push(format!(
                "threshold_quantile: {} must be in (0, 1)",
                self.threshold_quantile
            ));
        }
        let t = &self.time_of_day;
        if t.bins > 24 * 60 {
            errs.push(format!("time_of_day.bins: {} exceeds 1440", t.bins));
        }
        if !(t.min_days.is_finite() && t.min_days >= 1.0) {
            errs.push(format!("time_of_day.min_days: {} must be >= 1", t.min_days));
        }
        for (i, f) in self.floors.iter().enumerate() {
            if let Err(e) = f.regex() {
                errs.push(format!("floors[{i}].pattern: {e}"));
            }
            if !(f.absolute.is_finite() && f.absolute >= 0.0) {
                errs.push(format!("floors[{i}].absolute: {} must be >= 0", f.absolute));
            }
            if !(f.relative.is_finite() && (0.0..=10.0).contains(&f.relative)) {
                errs.push(format!(
                    "floors[{i}].relative: {} must be between 0 and 10",
                    f.relative
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(SpecError(errs))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_and_validates() {
        let spec = Spec::from_json(DEFAULT_SPEC_JSON).expect("valid");
        assert_eq!(spec.clusters, 5);
    }

    #[test]
    fn invalid_spec_lists_every_problem() {
        let spec = Spec {
            clusters: 0,
            smoothing_alpha: 1.5,
            ..Spec::default()
        };
        let err = spec.validate().expect_err("invalid").to_string();
        assert!(err.contains("clusters"), "{err}");
        assert!(err.contains("smoothing_alpha: 1.5"), "{err}");
    }

    #[test]
    fn floors_follow_the_metric_name_first_match_wins() {
        let spec = Spec::default();
        let names: Vec<String> = [
            "ping_rtt_median_seconds{target=\"gw\"}",
            "network_receive_bytes_per_second{interface=\"eth0\"}",
            "memory_available_bytes",
            "filesystem_inodes_free{mountpoint=\"/\"}",
            "m11",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let means = [0.0004, 1e6, 8e9, 16e6, 0.5];
        let f = floors_for(&spec.floors, &names, &means);
        assert_eq!(f[0], 0.001, "ping RTT: 1 ms");
        assert_eq!(f[1], 0.2e6, "a byte rate: 20 % of its mean");
        assert_eq!(f[2], 0.02 * 8e9, "bytes: 2 %");
        assert_eq!(f[3], 0.01 * 16e6, "inodes: 1 %");
        assert_eq!(f[4], 0.0, "unknown unit: none");
        let bad = Spec {
            floors: vec![Floor {
                pattern: "([".into(),
                absolute: -1.0,
                relative: 0.0,
            }],
            ..Spec::default()
        };
        let err = bad.validate().expect_err("invalid").to_string();
        assert!(err.contains("floors[0].pattern"), "{err}");
        assert!(err.contains("floors[0].absolute: -1 must be >= 0"), "{err}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = Spec::from_json(r#"{"clusterz": 3}"#).expect_err("invalid");
        assert!(err.to_string().contains("clusterz"), "{err}");
    }
}
