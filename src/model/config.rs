//! `model:`: when and on what the daemon learns, and the hyper-parameters it uses.

use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;

use super::Spec;
use crate::config::reader::Reader;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Learn and score at all.
    pub enabled: bool,
    /// History needed (time since the first stored sample) before the first training.
    pub warmup: Duration,
    /// Until the history covers this long, a trained model's anomaly tickets open
    /// muted (recorded, not sent, no remediation): a young model observes first.
    pub probation: Duration,
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
    pub spec: Spec,
    /// `model.bootstrap`: on a start without a model, train one from the host's
    /// history in Prometheus first (`None`: off).
    pub bootstrap: Option<super::bootstrap::BootstrapConfig>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            enabled: true,
            warmup: Duration::from_secs(3600),
            probation: Duration::from_secs(24 * 3600),
            retrain_interval: Duration::from_secs(6 * 3600),
            window: Duration::from_secs(30 * 24 * 3600),
            max_training_rows: 43_200,
            top_causes: 3,
            spec_file: None,
            spec: Spec::default(),
            bootstrap: None,
        }
    }
}

/// Read the `model:` section (and the spec file it names); problems go to `r` with
/// their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> ModelConfig {
    const SECS: fn(u64) -> Duration = Duration::from_secs;
    const DAY: u64 = 86_400;
    let m = r.section(
        v,
        path,
        &[
            "enabled",
            "warmup",
            "probation",
            "retrain_interval",
            "window",
            "max_training_rows",
            "top_causes",
            "spec_file",
            "floors",
            "bootstrap",
        ],
    );
    let dm = ModelConfig::default();
    let spec_file = m.opt_path(r, "spec_file");
    let spec = match &spec_file {
        None => dm.spec.clone(),
        Some(p) => match crate::config::file::read_text(p, crate::config::file::SMALL)
            .map_err(|e| e.to_string())
            .and_then(|t| Spec::from_json(&t).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                r.error(&m.path("spec_file"), format!("{}: {e}", p.display()));
                dm.spec.clone()
            }
        },
    };
    let mut spec = spec;
    if m.get("floors").is_some() {
        spec.floors = m
            .list(r, "floors")
            .into_iter()
            .filter_map(|(p, v)| parse_floor(r, v, &p))
            .collect();
    }
    ModelConfig {
        enabled: m.bool(r, "enabled", dm.enabled),
        warmup: m.duration(
            r,
            "warmup",
            dm.warmup,
            Duration::from_millis(100),
            SECS(365 * DAY),
        ),
        probation: m.duration(
            r,
            "probation",
            dm.probation,
            Duration::ZERO,
            SECS(365 * DAY),
        ),
        retrain_interval: m.duration(
            r,
            "retrain_interval",
            dm.retrain_interval,
            SECS(1),
            SECS(365 * DAY),
        ),
        window: m.duration(r, "window", dm.window, SECS(1), SECS(3650 * DAY)),
        max_training_rows: m.int(
            r,
            "max_training_rows",
            dm.max_training_rows as u64,
            10,
            10_000_000,
        ) as usize,
        top_causes: m.int(r, "top_causes", dm.top_causes as u64, 1, 20) as usize,
        spec_file,
        spec,
        bootstrap: super::bootstrap::parse_config(r, m.get("bootstrap"), &m.path("bootstrap")),
    }
}

/// One `model.floors` entry: `{pattern, absolute, relative}`.
fn parse_floor(r: &mut Reader, v: &Value, path: &str) -> Option<super::spec::Floor> {
    let f = r.section(Some(v), path, &["pattern", "absolute", "relative"]);
    let before = r.errors.len();
    let pattern = f.string(r, "pattern", "");
    if pattern.is_empty() {
        r.error(
            &f.path("pattern"),
            "missing (an anchored regular expression on the metric name)",
        );
    } else if let Err(e) = crate::config::reader::Pattern::parse(&pattern) {
        r.error(&f.path("pattern"), e);
    }
    let floor = super::spec::Floor {
        pattern,
        absolute: f.float(r, "absolute", 0.0, 0.0, 1e18),
        relative: f.float(r, "relative", 0.0, 0.0, 10.0),
    };
    (r.errors.len() == before).then_some(floor)
}
