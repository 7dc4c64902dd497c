//! Scoring one sample: the hot path (run on every tick).
//!
//! For each schema feature j: z_j = (x_j - center_j) / scale_j, minus the time-of-day
//! baseline of the sample's bin when the model has one. The nearest centroid c is
//! chosen over the present features, and the feature's term is
//! t_j = min((z_j - c_j)^2, z_cap^2) (0 when the value is missing). The [`Scorer`] keeps
//! an exponentially weighted average e_j of each t_j, and the score is sum_j e_j — so the
//! per-feature attributions e_j add up to the score exactly, and an anomaly has to last a
//! few samples (as real incidents do) to cross the threshold.

use std::sync::Arc;

use super::train::day_bin;
use super::Model;
use crate::sample::Record;

/// The verdict on one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Anomaly score (>= 0); equals the sum of `contributions`.
    pub value: f64,
    /// `value > model.threshold()`.
    pub anomaly: bool,
    /// The sample's own score before smoothing (the sum of its raw terms).
    pub raw: f64,
    /// `raw > model.raw_threshold()`.
    pub raw_anomaly: bool,
    /// (feature index in `model.schema()`, attribution), largest first, zeros left out.
    pub contributions: Vec<(usize, f64)>,
}

impl Score {
    /// Index of the feature that contributes most, if any contributes.
    pub fn top_cause(&self) -> Option<usize> {
        self.contributions.first().map(|(i, _)| *i)
    }

    /// Whether this sample counts towards an incident: anomalous after smoothing
    /// *and* on its own. The smoothed score alone decays for dozens of samples after
    /// a large spike; an incident must end when the host is back to normal, not when
    /// the average has forgotten the spike. (As a point-wise decision this loses on
    /// SMD, whose labelled segments have normal-looking samples inside them, so
    /// `anomaly` stays the smoothed decision.)
    pub fn counts_for_incident(&self) -> bool {
        self.anomaly && self.raw_anomaly
    }
}

impl Model {
    /// Per-feature raw terms of one record (before smoothing). `x` is scratch space.
    pub(crate) fn terms_into(&self, record: &Record, x: &mut [f64], terms: &mut [f64]) {
        self.schema.vector_into(record, x);
        let d = x.len();
        let baseline = match (&self.time_of_day, record.timestamp_ms) {
            (Some(t), Some(ts)) => {
                let b = day_bin(ts, t.bins);
                Some(&t.baseline[b * d..(b + 1) * d])
            }
            _ => None,
        };
        for j in 0..d {
            let mut z = (x[j] - self.center[j]) / self.scale[j];
            if let Some(b) = baseline {
                z -= b[j];
            }
            x[j] = z; // NaN stays NaN: missing
        }
        let mut best = 0;
        let mut best_d = f64::INFINITY;
        for (c, cen) in self.centroids.chunks_exact(d).enumerate() {
            let mut dist = 0.0;
            for (z, m) in x.iter().zip(cen) {
                if !z.is_nan() {
                    dist += (z - m) * (z - m);
                }
            }
            if dist < best_d {
                best_d = dist;
                best = c;
            }
        }
        let cap2 = self.spec.z_cap * self.spec.z_cap;
        let cen = &self.centroids[best * d..(best + 1) * d];
        for j in 0..d {
            let z = x[j];
            terms[j] = if z.is_nan() {
                0.0
            } else {
                ((z - cen[j]) * (z - cen[j])).min(cap2)
            };
        }
    }
}

impl Model {
    /// What the model considers normal for this record, per schema feature, in the
    /// feature's own units: the nearest centroid (the operating mode the sample is
    /// closest to) plus the time-of-day baseline, unscaled. This is the "baseline" a
    /// ticket shows next to each cause's value.
    pub fn expected(&self, record: &Record) -> Vec<f64> {
        let d = self.schema.len();
        let mut x = vec![0.0; d];
        let mut terms = vec![0.0; d];
        self.terms_into(record, &mut x, &mut terms);
        // `x` now holds the scaled, de-seasoned values; find the centroid again.
        let mut best = 0;
        let mut best_d = f64::INFINITY;
        for (c, cen) in self.centroids.chunks_exact(d).enumerate() {
            let dist: f64 = x
                .iter()
                .zip(cen)
                .filter(|(z, _)| !z.is_nan())
                .map(|(z, m)| (z - m) * (z - m))
                .sum();
            if dist < best_d {
                best_d = dist;
                best = c;
            }
        }
        let baseline = match (&self.time_of_day, record.timestamp_ms) {
            (Some(t), Some(ts)) => {
                let b = day_bin(ts, t.bins);
                Some(&t.baseline[b * d..(b + 1) * d])
            }
            _ => None,
        };
        let cen = &self.centroids[best * d..(best + 1) * d];
        (0..d)
            .map(|j| {
                let z = cen[j] + baseline.map_or(0.0, |b| b[j]);
                self.center[j] + z * self.scale[j]
            })
            .collect()
    }
}

/// Scores a stream of samples against one model, carrying the smoothing state.
/// The same type runs in the daemon, `score`, `eval` and training's threshold pass,
/// so all of them agree.
#[derive(Debug, Clone)]
pub struct Scorer {
    model: Arc<Model>,
    state: Vec<f64>,
    started: bool,
    x: Vec<f64>,
    terms: Vec<f64>,
}

impl Scorer {
    pub fn new(model: Arc<Model>) -> Scorer {
        let d = model.schema.len();
        Scorer {
            model,
            state: vec![0.0; d],
            started: false,
            x: vec![0.0; d],
            terms: vec![0.0; d],
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Forget the smoothing state (e.g. after a long gap in sampling).
    pub fn reset(&mut self) {
        self.started = false;
        self.state.fill(0.0);
    }

    /// Score the next sample of the stream.
    pub fn score(&mut self, record: &Record) -> Score {
        self.model.terms_into(record, &mut self.x, &mut self.terms);
        let a = self.model.spec.smoothing_alpha;
        if self.started {
            for (e, t) in self.state.iter_mut().zip(&self.terms) {
                *e += a * (t - *e);
            }
        } else {
            self.state.copy_from_slice(&self.terms);
            self.started = true;
        }
        let mut contributions: Vec<(usize, f64)> = self
            .state
            .iter()
            .enumerate()
            .filter(|(_, e)| **e > 0.0)
            .map(|(j, e)| (j, *e))
            .collect();
        contributions.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let value: f64 = contributions.iter().map(|(_, e)| e).sum();
        let raw: f64 = self.terms.iter().sum();
        Score {
            value,
            anomaly: value > self.model.threshold,
            raw,
            raw_anomaly: raw > self.model.raw_threshold,
            contributions,
        }
    }
}
