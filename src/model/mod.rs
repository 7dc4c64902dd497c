//! The learning core: what "normal" looks like on this host, and how far a sample is
//! from it — with the metrics to blame.
//!
//! # Method
//! 1. **Features** ([`features`]): a [`Record`](crate::sample::Record) becomes a vector in
//!    the model's schema order; missing values are NaN and never anomalous.
//! 2. **Scaling**: each feature is centred on its training mean and divided by
//!    max(std, 1% of its training range) — scale-free across bytes/s and ratios, and
//!    the floor keeps nearly constant features from amplifying noise. Constant
//!    features are skipped.
//! 3. **Time of day** (optional): when timestamps span ≥ `min_days` days, the mean
//!    scaled value per half-hour of the host's local wall clock ([`clock`]) is
//!    subtracted, so a nightly backup is normal, before and after a DST change.
//! 4. **Operating modes**: k-means (linfa, k = 5) on the scaled residuals.
//! 5. **Score** ([`score`]): per feature, the squared distance to the nearest centroid
//!    beyond the feature's floor (a minimum real change in its unit, by kind of
//!    metric: `spec.floors`) (|z| capped at 10), smoothed per feature with an EWMA (α = 0.1 per training row
//!    interval: with timestamps the weight follows the time elapsed, so 1 s live
//!    samples are smoothed over the same minutes as the minute rows the threshold was
//!    learnt on; without, per sample); the score is the sum, so the per-feature
//!    attributions add up to it exactly.
//! 6. **Threshold** ([`threshold`]): the 0.99 quantile of the training rows' scores,
//!    computed by the same [`Scorer`]. No labels anywhere.
//!
//! # Why this method (measured on SMD, 14 machines, train-only thresholds)
//! Candidates were tried in Python first (`benches/explore/`), mean over machines of
//! point-wise F1 at the q99 threshold and AUPRC (no point adjustment):
//!
//! | method                                        | F1@q99 | AUPRC | oracle F1 |
//! |-----------------------------------------------|-------:|------:|----------:|
//! | PCA (90 % var.) reconstruction error          | 0.26   | 0.42  | 0.49 |
//! | PCA error + EWMA 0.1                          | 0.33   | 0.51  | 0.56 |
//! | robust z (median/IQR), sum z², EWMA 0.3       | 0.33   | 0.51  | 0.54 |
//! | ECOD-style tail probabilities + EWMA          | 0.19   | 0.38  | 0.42 |
//! | std z, sum z², EWMA 0.1                       | 0.33   | 0.52  | 0.57 |
//! | … deviation from a slow EWMA baseline         | 0.35   | 0.45  | 0.49 |
//! | k-means k=20 distance, EWMA 0.1               | 0.29   | 0.52  | 0.57 |
//! | **k-means k=5, |z| cap 10, EWMA 0.1 (chosen)**| 0.40   | 0.54  | 0.59 |
//!
//! Smoothing was the largest single gain (anomalies are segments); a threshold from
//! a peaks-over-threshold fit or from a held-out tail of train did worse than the
//! in-sample q99. This Rust implementation reaches mean F1 0.394, AUPRC 0.531, event
//! recall 0.81 (oracle best F1 0.578) — short of the targets (F1 ≥ 0.55,
//! AUPRC ≥ 0.60); `anomalyd eval smd` prints the per-machine table.
//!
//! # How much of that is selection on the test half
//! The table's set was chosen on the mean over the 14 machines' test halves (one
//! global set, never per machine; thresholds always from the machine's own train
//! half). Two checks of what that choice is worth on a host it has not seen:
//! - **Leave one machine out** (`benches/explore/mcv.py`): for each machine, pick the
//!   grid point (k 3–20, z cap 5–30, EWMA 0.05–0.3, q99/q99.5/q99.9) that is best on
//!   the other 13 and score the held-out one. Mean F1 **0.367**, AUPRC **0.528**
//!   against 0.391 / 0.544 for the grid point chosen on all 14: the global choice is
//!   optimistic by about 0.02 F1, not more. This is the figure to quote for a new host.
//! - **Train-only selection with injected faults** (`benches/explore/msel.py`): split
//!   each train half 70/30 in time, inject shifts, spikes, ramps and noise into the
//!   30 %, rank candidates there. It prefers many clusters (k = 160, cap 5, EWMA 0.5,
//!   q99.5: F1 0.44 / AUPRC 0.44 on the injected faults), which on the real test
//!   halves does worse (F1 0.274, AUPRC 0.464; `anomalyd eval smd --spec` with that
//!   set, 3 min) than the shipped set. The injected faults are easier than SMD's real
//!   ones, so this procedure was not adopted; the script stays for the next attempt.
//!
//! # Where the F1 goes, and what did not get it back
//! On 6 of the 14 machines the best threshold lies above the *maximum* training
//! score (2-3x it): their test halves drift away from their train halves in ways
//! labelled normal (a metric growing for weeks, a lasting change after an incident,
//! a quantised metric whose one step is 9 training standard deviations, a variance
//! five times larger). Any threshold from the train half flags most of those test
//! halves (precision 0.01-0.05 on machine-1-5, 1-8, 2-8). Thirteen remedies were
//! measured (`benches/explore/s3/`, table in `benches/explore/README.md`): online
//! drift of the residuals, rolling-median baselines, quantum-aware scale floors,
//! score normalisation by its recent level, held-out thresholds, 1-NN, GMM, PCA
//! ensembles, rank transforms, first differences, top-k sums, and the daemon's own
//! daily retraining replayed over the test half. None beat this method by more than
//! 0.03 F1 without losing AUPRC; a drift that is "the new normal" and a labelled
//! anomaly of 800-3161 rows look the same without labels.

pub mod bootstrap;
pub mod clock;
mod config;
pub mod csv;
pub mod eval;
pub mod features;
pub mod frame;
pub mod persist;
pub mod score;
pub mod spec;
pub mod threshold;
pub mod train;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use clock::Clock;
pub use config::{parse_config, ModelConfig};
pub use features::Schema;
pub use persist::LoadError;
pub use score::{Score, Scorer};
pub use spec::Spec;
pub use train::{RowScore, Scored, TrainError};

/// The model's lifecycle: nothing to score with until enough history has been learnt;
/// a retrained model is swapped in whole.
#[derive(Debug, Clone, Default)]
pub enum ModelState {
    #[default]
    Untrained,
    Trained(Arc<Model>),
}

/// Where the model is in its life, as operators see it (`anomalyd_model_state`, the
/// log, `collect --once`, systemd's status line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No model yet: the history is being collected. The first training is due at
    /// `until_ms` (unknown before the first sample).
    WarmingUp { until_ms: Option<i64> },
    /// A model scores and its verdicts are exported, but the tickets it opens are
    /// muted until `until_ms`, when the history covers `model.probation`.
    Probation { until_ms: i64 },
    /// Scoring, and paging.
    Trained,
}

impl Phase {
    pub const NAMES: [&'static str; 3] = ["warming_up", "probation", "trained"];

    pub fn name(&self) -> &'static str {
        match self {
            Phase::WarmingUp { .. } => "warming_up",
            Phase::Probation { .. } => "probation",
            Phase::Trained => "trained",
        }
    }

    /// When the model will be scoring and paging, if known and not yet.
    pub fn ready_ms(&self) -> Option<i64> {
        match self {
            Phase::WarmingUp { until_ms } => *until_ms,
            Phase::Probation { until_ms } => Some(*until_ms),
            Phase::Trained => None,
        }
    }

    /// From the model in use, the first stored sample, the configured durations and
    /// the time now.
    pub fn at(
        state: &ModelState,
        first_ms: Option<i64>,
        warmup_ms: i64,
        probation_ms: i64,
        now_ms: i64,
    ) -> Phase {
        match state {
            ModelState::Untrained => Phase::WarmingUp {
                until_ms: first_ms.map(|f| f + warmup_ms),
            },
            ModelState::Trained(m) => {
                // The longer of the daemon's own history and the span the model was
                // trained on (a model bootstrapped from the fleet's Prometheus has seen
                // the host already): docs/bootstrap.md, "Probation".
                let own = first_ms.map_or(0, |f| (now_ms - f).max(0));
                let learnt = bootstrap::covered_history(m.window()).as_millis() as i64;
                let covered = own.max(learnt);
                if covered < probation_ms {
                    Phase::Probation {
                        until_ms: now_ms + (probation_ms - covered),
                    }
                } else {
                    Phase::Trained
                }
            }
        }
    }
}

impl ModelState {
    pub fn model(&self) -> Option<&Arc<Model>> {
        match self {
            ModelState::Untrained => None,
            ModelState::Trained(m) => Some(m),
        }
    }
}

/// What the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingWindow {
    /// First and last timestamp (Unix ms) of the training rows, when they had any.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub rows: usize,
}

/// Per-time-of-day baseline of the scaled features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeOfDay {
    /// Bins per day, on `clock`.
    pub bins: usize,
    /// The wall clock the bins follow; files from before it was recorded used UTC.
    #[serde(default)]
    pub clock: Clock,
    /// `bins × features`, row-major.
    pub baseline: Vec<f64>,
}

impl TimeOfDay {
    /// The baseline row (one value per feature) of the bin `ts_ms` falls in.
    pub(crate) fn baseline_at(&self, ts_ms: i64) -> &[f64] {
        let d = self.baseline.len() / self.bins.max(1);
        let b = self.clock.day_bin(ts_ms, self.bins);
        &self.baseline[b * d..(b + 1) * d]
    }
}

/// A trained model. Immutable; share it as `Arc<Model>` and score with a [`Scorer`].
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) schema: Schema,
    pub(crate) skipped: Vec<String>,
    pub(crate) center: Vec<f64>,
    pub(crate) scale: Vec<f64>,
    /// Per feature, the minimum real change in its own unit (`spec.floors`); a
    /// deviation counts only beyond it. Empty: none (files from before).
    pub(crate) floor: Vec<f64>,
    pub(crate) clusters: usize,
    /// `clusters × features`, row-major.
    pub(crate) centroids: Vec<f64>,
    pub(crate) time_of_day: Option<TimeOfDay>,
    pub(crate) threshold: f64,
    /// The same quantile of the training rows' unsmoothed scores: with it a sample
    /// counts towards an incident only when it is anomalous on its own too
    /// ([`Score::counts_for_incident`]). 0 in files from before it existed (then
    /// the smoothed decision alone counts, as it did).
    pub(crate) raw_threshold: f64,
    pub(crate) spec: Spec,
    pub(crate) window: TrainingWindow,
    /// Typical spacing of the training rows (median gap between timestamps, ms): the
    /// time `spec.smoothing_alpha` applies to. `None` when the rows had no timestamps
    /// (or the file predates it): the smoothing is then per sample.
    pub(crate) row_interval_ms: Option<f64>,
    pub(crate) created_ms: i64,
}

impl Model {
    /// Feature names, in the order of [`Score::contributions`] indices.
    pub fn schema(&self) -> &[String] {
        self.schema.names()
    }

    /// Features seen in training but skipped because they were constant.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn raw_threshold(&self) -> f64 {
        self.raw_threshold
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn window(&self) -> &TrainingWindow {
        &self.window
    }

    /// Typical spacing of the training rows in ms, when they had timestamps: the
    /// smoothing weight is per this much time (see [`Scorer::score`]).
    pub fn row_interval_ms(&self) -> Option<f64> {
        self.row_interval_ms
    }

    /// The clock of the time-of-day bins, when the model has them.
    pub fn time_of_day_clock(&self) -> Option<Clock> {
        self.time_of_day.as_ref().map(|t| t.clock)
    }

    /// Unix ms when the model was trained.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// Number of k-means centroids (operating modes).
    pub fn clusters(&self) -> usize {
        self.clusters
    }

    /// Whether the time-of-day baseline was learnt.
    pub fn uses_time_of_day(&self) -> bool {
        self.time_of_day.is_some()
    }

    /// A fresh [`Scorer`] for this model.
    pub fn scorer(self: &Arc<Self>) -> Scorer {
        Scorer::new(Arc::clone(self))
    }
}

#[cfg(test)]
pub(crate) mod tests;
