//! The daemon's state as the dashboard shows it, taken from the sample at the end of
//! each tick (the same points /metrics renders) and shared with the HTTP server.
//!
//! Like [`super::super::metrics::Rendered`], a request reads the last snapshot and
//! never waits for, or causes, a tick: the tick replaces one `Arc` under a lock held
//! for a pointer swap.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::sample::{Point, Sample};

/// What the overview and `GET /api/v1/live` show of the running daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// When the sample was taken (Unix ms); 0 before the first tick.
    pub at_ms: i64,
    pub model: ModelView,
    /// The last sample's anomaly score and the threshold (while a model scores).
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub anomaly: bool,
    /// The features that made most of the last score, main cause first.
    pub causes: Vec<Cause>,
    /// Every filesystem, then memory and swap.
    pub resources: Vec<Resource>,
    /// Open incidents, by label and severity (from the ticket desk's counts).
    pub incidents_open: Vec<OpenCount>,
    /// Probability that an incident opens within the fault-risk horizon.
    pub fault_risk: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelView {
    /// `warming_up`, `probation` or `trained` (empty before the first tick).
    pub phase: String,
    /// Time since the scoring model was trained.
    pub age_seconds: Option<f64>,
    /// Until the model scores and pages (end of warm-up or probation); 0 once it does.
    pub ready_seconds: Option<f64>,
    pub training: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    pub feature: String,
    pub contribution: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    /// `filesystem`, `memory` or `swap`.
    pub kind: &'static str,
    /// The mount point for a filesystem, else the kind.
    pub name: String,
    pub used_ratio: Option<f64>,
    pub size_bytes: Option<f64>,
    pub available_bytes: Option<f64>,
    /// At the current trend; `None` when it does not run out (or no forecast yet).
    pub seconds_until_exhaustion: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenCount {
    pub label: String,
    pub severity: String,
    pub count: f64,
}

fn label<'a>(p: &'a Point, name: &str) -> Option<&'a str> {
    p.labels
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// A forecast's +Inf ("never at this trend") is no exhaustion at all.
fn eta(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl Snapshot {
    /// Read the snapshot from a sample the pipeline has been through.
    pub fn from_sample(sample: &Sample) -> Snapshot {
        let mut s = Snapshot {
            at_ms: sample.timestamp_ms,
            ..Snapshot::default()
        };
        let mut memory = Resource::new("memory", "memory");
        let mut swap = Resource::new("swap", "swap");
        let mut ranked: Vec<(u32, Cause)> = Vec::new();
        for p in &sample.points {
            let v = p.value;
            match p.name {
                "model_state" if v == 1.0 => {
                    s.model.phase = label(p, "state").unwrap_or_default().to_string();
                }
                "model_age_seconds" => s.model.age_seconds = Some(v),
                "model_ready_seconds" => s.model.ready_seconds = Some(v),
                "model_training_running" => s.model.training = v == 1.0,
                "anomaly_score" => s.score = Some(v),
                "anomaly_threshold" => s.threshold = Some(v),
                "anomaly" => s.anomaly = v == 1.0,
                "fault_risk" => s.fault_risk = Some(v),
                "anomaly_cause_contribution" => {
                    let rank = label(p, "rank").and_then(|r| r.parse().ok()).unwrap_or(0);
                    let feature = label(p, "feature").unwrap_or_default().to_string();
                    ranked.push((
                        rank,
                        Cause {
                            feature,
                            contribution: v,
                        },
                    ));
                }
                "incidents_open" if v > 0.0 => s.incidents_open.push(OpenCount {
                    label: label(p, "label").unwrap_or_default().to_string(),
                    severity: label(p, "severity").unwrap_or_default().to_string(),
                    count: v,
                }),
                "memory_used_ratio" => memory.used_ratio = Some(v),
                "memory_total_bytes" => memory.size_bytes = Some(v),
                "memory_available_bytes" => memory.available_bytes = Some(v),
                "memory_seconds_until_exhaustion" => memory.seconds_until_exhaustion = eta(v),
                "swap_used_ratio" => swap.used_ratio = Some(v),
                "swap_total_bytes" => swap.size_bytes = Some(v),
                "swap_seconds_until_exhaustion" => swap.seconds_until_exhaustion = eta(v),
                name if name.starts_with("filesystem_") => {
                    let Some(mount) = label(p, "mountpoint") else {
                        continue;
                    };
                    let fs = match s.resources.iter_mut().find(|r| r.name == mount) {
                        Some(fs) => fs,
                        None => {
                            s.resources.push(Resource::new("filesystem", mount));
                            let last = s.resources.len() - 1;
                            &mut s.resources[last]
                        }
                    };
                    match name {
                        "filesystem_used_ratio" => fs.used_ratio = Some(v),
                        "filesystem_size_bytes" => fs.size_bytes = Some(v),
                        "filesystem_available_bytes" => fs.available_bytes = Some(v),
                        "filesystem_seconds_until_exhaustion" => {
                            fs.seconds_until_exhaustion = eta(v)
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if let (Some(total), Some(used)) = (swap.size_bytes, swap.used_ratio) {
            swap.available_bytes = Some(total * (1.0 - used));
        }
        s.resources.sort_by(|a, b| a.name.cmp(&b.name));
        s.resources.push(memory);
        // A host without swap has nothing to show for it.
        if swap.size_bytes.is_some_and(|t| t > 0.0) {
            s.resources.push(swap);
        }
        ranked.sort_by_key(|(rank, _)| *rank);
        s.causes = ranked.into_iter().map(|(_, c)| c).collect();
        s
    }
}

impl Resource {
    fn new(kind: &'static str, name: &str) -> Resource {
        Resource {
            kind,
            name: name.to_string(),
            used_ratio: None,
            size_bytes: None,
            available_bytes: None,
            seconds_until_exhaustion: None,
        }
    }
}

/// The last snapshot, shared between the tick (writer) and the HTTP server (readers).
#[derive(Clone, Default)]
pub struct Live(Arc<RwLock<Arc<Snapshot>>>);

impl Live {
    pub fn get(&self) -> Arc<Snapshot> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Called at the end of each tick with the sample /metrics is rendered from.
    pub fn update(&self, sample: &Sample) {
        let snapshot = Arc::new(Snapshot::from_sample(sample));
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = snapshot;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_model_causes_and_resources_from_the_sample() {
        let mut s = Sample::new(1_000);
        for (state, v) in [("warming_up", 0.0), ("probation", 0.0), ("trained", 1.0)] {
            s.info("model_state", "", &[("state", state)], v);
        }
        s.info("model_age_seconds", "", &[], 3600.0);
        s.info("anomaly_score", "", &[], 2.5);
        s.info("anomaly_threshold", "", &[], 1.0);
        s.info("anomaly", "", &[], 1.0);
        s.info(
            "anomaly_cause_contribution",
            "",
            &[("rank", "2"), ("feature", "b")],
            0.5,
        );
        s.info(
            "anomaly_cause_contribution",
            "",
            &[("rank", "1"), ("feature", "a")],
            2.0,
        );
        let fs = [
            ("mountpoint", "/var"),
            ("device", "sda"),
            ("fstype", "ext4"),
        ];
        s.info("filesystem_used_ratio", "", &fs, 0.9);
        s.info("filesystem_size_bytes", "", &fs, 100.0);
        // +Inf (never runs out) is pushed directly, as the forecast does.
        s.points.push(Point {
            name: "filesystem_seconds_until_exhaustion",
            help: "",
            kind: crate::sample::Kind::Gauge,
            labels: fs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value: f64::INFINITY,
            observations: Vec::new(),
            feature: false,
        });
        s.info("memory_used_ratio", "", &[], 0.5);
        s.info("memory_seconds_until_exhaustion", "", &[], 7200.0);
        s.info("swap_total_bytes", "", &[], 0.0);
        let snap = Snapshot::from_sample(&s);
        assert_eq!(snap.model.phase, "trained");
        assert_eq!(snap.model.age_seconds, Some(3600.0));
        assert_eq!(
            (snap.score, snap.threshold, snap.anomaly),
            (Some(2.5), Some(1.0), true)
        );
        let causes: Vec<&str> = snap.causes.iter().map(|c| c.feature.as_str()).collect();
        assert_eq!(causes, ["a", "b"], "main cause first");
        let names: Vec<&str> = snap.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["/var", "memory"], "no swap on a host without it");
        assert_eq!(snap.resources[0].used_ratio, Some(0.9));
        assert_eq!(snap.resources[0].seconds_until_exhaustion, None);
        assert_eq!(snap.resources[1].seconds_until_exhaustion, Some(7200.0));

        let live = Live::default();
        assert_eq!(live.get().at_ms, 0);
        live.update(&s);
        assert_eq!(live.get().at_ms, 1_000);
    }
}
