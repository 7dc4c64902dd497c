//! The model file: versioned JSON carrying its schema, training window, threshold,
//! hyper-parameters and creation time. Anything that does not check out is refused
//! with a [`LoadError`] so the daemon can fall back to learning afresh.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::features::Schema;
use super::spec::Spec;
use super::{Model, TimeOfDay, TrainingWindow};

/// Identifies the file type.
pub const FORMAT: &str = "anomalyd-model";
/// Bumped whenever the meaning or layout of the file changes.
pub const FORMAT_VERSION: u32 = 1;

/// Why a model file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("model file {path} has format version {found}, this build reads version {expected}")]
    Version {
        path: PathBuf,
        found: u64,
        expected: u32,
    },
    #[error("model file {path} does not match the current features; missing: {}", missing.join(", "))]
    SchemaMismatch { path: PathBuf, missing: Vec<String> },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    format: String,
    version: u32,
    created_unix_ms: i64,
    schema: Vec<String>,
    skipped_constant: Vec<String>,
    training_window: TrainingWindow,
    threshold: f64,
    #[serde(default)]
    raw_threshold: f64,
    /// Typical spacing of the training rows (ms), the time `spec.smoothing_alpha`
    /// applies to; absent in files from before it existed (smoothing per sample).
    #[serde(default)]
    row_interval_ms: Option<f64>,
    spec: Spec,
    params: Params,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    center: Vec<f64>,
    scale: Vec<f64>,
    /// Minimum real change per feature, in its unit; absent in older files (none).
    #[serde(default)]
    floor: Vec<f64>,
    centroids: Vec<Vec<f64>>,
    time_of_day: Option<TimeOfDay>,
}

/// Time-of-day bins per day a model may have (one a minute; we train 48).
const MAX_DAY_BINS: usize = 1440;

/// Largest model file read (a 60-feature model with its baseline is about 100 KiB).
pub const MAX_MODEL_BYTES: u64 = 64 << 20;

impl Model {
    /// The model as the JSON text of its file.
    pub fn to_json(&self) -> String {
        let d = self.schema.len();
        let file = ModelFile {
            format: FORMAT.to_string(),
            version: FORMAT_VERSION,
            created_unix_ms: self.created_ms,
            schema: self.schema.names().to_vec(),
            skipped_constant: self.skipped.clone(),
            training_window: self.window.clone(),
            threshold: self.threshold,
            raw_threshold: self.raw_threshold,
            row_interval_ms: self.row_interval_ms,
            spec: self.spec.clone(),
            params: Params {
                center: self.center.clone(),
                scale: self.scale.clone(),
                floor: self.floor.clone(),
                centroids: self
                    .centroids
                    .chunks(d.max(1))
                    .map(<[f64]>::to_vec)
                    .collect(),
                time_of_day: self.time_of_day.clone(),
            },
        };
        // Serialising plain structs of finite numbers cannot fail.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Write the model atomically: a new temporary file (never through a link) and a
    /// rename ([`crate::store::write_atomic`]).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::store::write_atomic(path, (self.to_json() + "\n").as_bytes())
    }

    /// Read and check a model file.
    pub fn load(path: &Path) -> Result<Model, LoadError> {
        let text = crate::config::file::read_text(path, MAX_MODEL_BYTES).map_err(|source| {
            LoadError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Model::from_json(&text, path)
    }

    /// [`Model::load`], and also refuse a model that needs a feature this host no
    /// longer produces (extra current features are fine: they are ignored).
    pub fn load_for(path: &Path, current: &[String]) -> Result<Model, LoadError> {
        let model = Model::load(path)?;
        model
            .check_schema(current)
            .map_err(|missing| LoadError::SchemaMismatch {
                path: path.to_path_buf(),
                missing,
            })?;
        Ok(model)
    }

    /// The model's features absent from `current`, as an error.
    pub fn check_schema(&self, current: &[String]) -> Result<(), Vec<String>> {
        let have: std::collections::HashSet<&str> = current.iter().map(String::as_str).collect();
        let missing: Vec<String> = self
            .schema()
            .iter()
            .filter(|n| !have.contains(n.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }

    /// Parse and check the JSON text of a model file; `path` is for messages. Every
    /// size is checked against the others with checked arithmetic and every parameter
    /// must be finite (scales and thresholds positive), so a model that loads cannot
    /// panic or mislead in scoring.
    pub fn from_json(text: &str, path: &Path) -> Result<Model, LoadError> {
        let corrupt = |reason: String| LoadError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
            return Err(corrupt(format!(
                "not an {FORMAT} file (no \"format\": \"{FORMAT}\")"
            )));
        }
        let found = value
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| corrupt("no numeric \"version\"".to_string()))?;
        if found != u64::from(FORMAT_VERSION) {
            return Err(LoadError::Version {
                path: path.to_path_buf(),
                found,
                expected: FORMAT_VERSION,
            });
        }
        let f: ModelFile = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        f.spec.validate().map_err(|e| corrupt(e.to_string()))?;
        let d = f.schema.len();
        if d == 0 {
            return Err(corrupt("empty schema".to_string()));
        }
        let schema = Schema::new(f.schema);
        if schema.len() != d {
            return Err(corrupt("duplicate feature names in schema".to_string()));
        }
        let p = f.params;
        if p.center.len() != d || p.scale.len() != d {
            return Err(corrupt(format!(
                "center/scale length differs from the {d} features"
            )));
        }
        if p.centroids.is_empty() || p.centroids.iter().any(|c| c.len() != d) {
            return Err(corrupt(format!(
                "centroids must be non-empty rows of {d} values"
            )));
        }
        if !(p.floor.is_empty() || p.floor.len() == d)
            || !p.floor.iter().all(|f| f.is_finite() && *f >= 0.0)
        {
            return Err(corrupt(format!("floor must be empty or {d} values >= 0")));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !finite(&p.center)
            || !p.scale.iter().all(|s| s.is_finite() && *s > 0.0)
            || !p.centroids.iter().all(|c| finite(c))
        {
            return Err(corrupt("non-finite or non-positive parameters".to_string()));
        }
        // A threshold of -1e308 flagged every row. The raw threshold may be 0: files
        // from before it existed load with 0 (the smoothed decision alone counts).
        if !(f.threshold.is_finite() && f.threshold > 0.0) {
            return Err(corrupt(format!(
                "threshold: {} must be finite and > 0",
                f.threshold
            )));
        }
        if !(f.raw_threshold.is_finite() && f.raw_threshold >= 0.0) {
            return Err(corrupt(format!(
                "raw_threshold: {} must be finite and >= 0",
                f.raw_threshold
            )));
        }
        if let Some(iv) = f.row_interval_ms {
            if !(iv.is_finite() && iv > 0.0) {
                return Err(corrupt(format!("row_interval_ms: {iv} must be > 0")));
            }
        }
        if let Some(t) = &p.time_of_day {
            // Checked: a crafted `bins` whose product with `d` wraps around to the
            // baseline's length passed here and then indexed out of bounds in scoring.
            let cells = t.bins.checked_mul(d);
            if t.bins == 0
                || t.bins > MAX_DAY_BINS
                || cells != Some(t.baseline.len())
                || !finite(&t.baseline)
            {
                return Err(corrupt(
                    "time_of_day baseline has the wrong shape".to_string(),
                ));
            }
        }
        Ok(Model {
            schema,
            skipped: f.skipped_constant,
            center: p.center,
            scale: p.scale,
            floor: p.floor,
            clusters: p.centroids.len(),
            centroids: p.centroids.concat(),
            time_of_day: p.time_of_day,
            threshold: f.threshold,
            raw_threshold: f.raw_threshold,
            spec: f.spec,
            window: f.training_window,
            row_interval_ms: f.row_interval_ms,
            created_ms: f.created_unix_ms,
        })
    }
}
