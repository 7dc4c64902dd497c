//! Scoring one sample: the hot path (run on every tick).
//!
//! For each schema feature j: z_j = (x_j - center_j) / scale_j, minus the time-of-day
//! baseline of the sample's bin when the model has one. The nearest centroid c is
//! chosen over the present features, and the feature's term is
//! t_j = min((z_j - c_j)^2, z_cap^2) (0 when the value is missing). The [`Scorer`] keeps
//! an exponentially weighted average e_j of each t_j, and the score is sum_j e_j — so the
//! per-feature attributions e_j add up to the score exactly, and an anomaly has to last a
//! while (as real incidents do) to cross the threshold.
//!
//! The average is in *time*, not in samples: the weight α of the spec is per training
//! row interval Δ (the daemon trains on one row a minute, and scores a sample a
//! second), and a sample dt after the previous one weighs α_eff = 1 − (1 − α)^(dt/Δ).
//! So live scores are smoothed over the same minutes as the training scores the
//! threshold was taken from, whatever the sampling interval; a long gap weighs ≈ 1 and
//! forgets the old state by itself. Without timestamps (SMD, a CSV without a time
//! column, a model file from before Δ was recorded) α is per sample, as it always was.

use std::sync::Arc;

use super::features::Layout;
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
    /// This sample's own (raw) term of [`Score::top_cause`], the feature the smoothed
    /// score is mostly about: 0 when that feature is back within its floor, although
    /// the smoothed score still carries it (a spike minutes ago).
    pub top_cause_raw: f64,
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
    /// Per-feature raw terms of one record (before smoothing). `x` is scratch space;
    /// `layout` remembers where the stream's values go ([`Layout`]).
    pub(crate) fn terms_into(
        &self,
        record: &Record,
        x: &mut [f64],
        terms: &mut [f64],
        layout: &mut Layout,
    ) {
        self.schema.vector_into_with(record, x, layout);
        self.terms_of(record.timestamp_ms, x, terms);
    }

    /// [`Model::terms_into`] of a row already in schema order: `x` holds its values
    /// (NaN: missing) and is left holding the scaled, de-seasoned ones.
    pub(crate) fn terms_of(&self, ts: Option<i64>, x: &mut [f64], terms: &mut [f64]) {
        let d = x.len();
        let baseline = match (&self.time_of_day, ts) {
            (Some(t), Some(ts)) => Some(t.baseline_at(ts)),
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
                // Only the part of the deviation beyond the floor counts.
                let dz = match self.floor.get(j) {
                    Some(&f) if f > 0.0 => ((z - cen[j]).abs() - f / self.scale[j]).max(0.0),
                    _ => z - cen[j],
                };
                (dz * dz).min(cap2)
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
        self.terms_into(record, &mut x, &mut terms, &mut Layout::default());
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
            (Some(t), Some(ts)) => Some(t.baseline_at(ts)),
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
    /// Per feature, the weighted sum of its terms; divided by `weight` it is the
    /// average e_j.
    state: Vec<f64>,
    /// Total weight of the samples in `state`: 1 except while a time-weighted average
    /// is young (see [`Scorer::score`]).
    weight: f64,
    start: Start,
    /// Timestamp of the previous sample, when it had one.
    last_ms: Option<i64>,
    x: Vec<f64>,
    terms: Vec<f64>,
    layout: Layout,
    /// Feature indices by attribution, largest first, kept from sample to sample:
    /// the averages move little between samples, so the last order is nearly right and
    /// an insertion sort fixes it in about `d` steps. A full sort of every sample's
    /// attributions was most of training's threshold pass.
    rank: Vec<usize>,
    /// Scratch: this sample's attributions by feature ([`Scorer::rank`]).
    attr: Vec<f64>,
}

/// Where the average is in its start.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    Empty,
    OneSample,
    Running,
}

/// The weight of a sample `dt_ms` after the previous one, when the spec's `alpha` is
/// the weight of one `row_interval_ms`: 1 − (1 − α)^(dt/Δ), so that n samples Δ/n
/// apart move the average exactly as far as one sample Δ later.
pub fn time_alpha(alpha: f64, dt_ms: f64, row_interval_ms: f64) -> f64 {
    let rows = dt_ms / row_interval_ms;
    if rows == 1.0 {
        // Evenly spaced rows (training on its own rows): exactly the per-sample
        // weight; the formula below can be an ulp off it.
        return alpha;
    }
    // -expm1(rows · ln(1 − α)): accurate for the tiny weights of frequent samples,
    // where 1 − (1 − α)^rows would cancel.
    -(rows * (-alpha).ln_1p()).exp_m1()
}

impl Scorer {
    pub fn new(model: Arc<Model>) -> Scorer {
        let d = model.schema.len();
        Scorer {
            model,
            state: vec![0.0; d],
            weight: 1.0,
            start: Start::Empty,
            last_ms: None,
            x: vec![0.0; d],
            terms: vec![0.0; d],
            layout: Layout::default(),
            rank: (0..d).collect(),
            attr: vec![0.0; d],
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Keep the smoothing state, score against `model` from now on: training's pass
    /// ran on the model before its thresholds were set, which are all that differ
    /// (the state does not depend on them).
    pub(super) fn rebind(&mut self, model: Arc<Model>) {
        debug_assert!(model.schema == self.model.schema);
        self.model = model;
    }

    /// The smoothing weight of a sample at `ts_ms`: in time when the model knows its
    /// training rows' spacing and both this and the previous sample have timestamps
    /// with time between them ([`time_alpha`]); otherwise the spec's per-sample weight.
    /// A clock stepped back (dt ≤ 0) also gets the per-sample weight: how much time
    /// passed is unknown, and one row is the unit the weight was chosen for. The next
    /// sample is then timed from the stepped-back clock. The flag says whether the
    /// weight is in time.
    fn alpha(&self, ts_ms: Option<i64>) -> (f64, bool) {
        let a = self.model.spec.smoothing_alpha;
        match (self.model.row_interval_ms, ts_ms, self.last_ms) {
            (Some(interval), Some(ts), Some(last)) if ts > last => {
                (time_alpha(a, (ts - last) as f64, interval), true)
            }
            _ => (a, false),
        }
    }

    /// Score the next sample of the stream.
    ///
    /// The first sample starts the average. Per sample it seeds it, as it always did
    /// (it fades within ~20 samples). In time that would hold one sample for the whole
    /// smoothing time — ten minutes of 1 s samples after every start or retraining —
    /// so there the first sample weighs as much as the second, and the average starts
    /// as the plain mean of the samples so far, becoming the EWMA as time passes
    /// (`weight` → 1).
    pub fn score(&mut self, record: &Record) -> Score {
        let scale = self.advance(record);
        let count = self.rank(scale);
        let contributions: Vec<(usize, f64)> = self.rank[..count]
            .iter()
            .map(|&j| (j, self.attr[j]))
            .collect();
        let value = sum_of(&contributions);
        let raw: f64 = self.terms.iter().sum();
        let top_cause_raw = contributions.first().map_or(0.0, |(j, _)| self.terms[*j]);
        Score {
            value,
            anomaly: value > self.model.threshold,
            raw,
            raw_anomaly: raw > self.model.raw_threshold,
            top_cause_raw,
            contributions,
        }
    }

    /// [`Scorer::score`] reduced to what training's later passes read, with the same
    /// numbers, and without allocating the contributions (training scores every row),
    /// of a row in schema order: `values[k]` is the value of the model's feature `k`
    /// (NaN: missing), as `Schema::vector_into` gives it.
    pub fn score_values(&mut self, ts: Option<i64>, values: &[f64]) -> super::train::RowScore {
        let scale = self.advance_values(ts, values);
        self.row_score(scale)
    }

    /// [`Scorer::score_values`] of a row whose raw terms are known already
    /// ([`Model::terms_of`]; training computes them ahead on another thread).
    pub(super) fn score_terms(&mut self, ts: Option<i64>, terms: &[f64]) -> super::train::RowScore {
        self.terms.copy_from_slice(terms);
        let scale = self.take(ts);
        self.row_score(scale)
    }

    fn row_score(&mut self, scale: f64) -> super::train::RowScore {
        let count = self.rank(scale);
        let ranked = &self.rank[..count];
        super::train::RowScore {
            // As `sum_of` adds them: largest first.
            value: ranked.iter().map(|&j| self.attr[j]).sum(),
            raw: self.terms.iter().sum(),
            top_cause_raw: ranked.first().map(|&j| self.terms[j]),
        }
    }

    /// Take `record` into the average; returns the factor the state is scaled by.
    fn advance(&mut self, record: &Record) -> f64 {
        self.model
            .terms_into(record, &mut self.x, &mut self.terms, &mut self.layout);
        self.take(record.timestamp_ms)
    }

    /// [`Scorer::advance`] for a row already in schema order (a training frame's).
    fn advance_values(&mut self, ts: Option<i64>, values: &[f64]) -> f64 {
        self.x.copy_from_slice(values);
        self.model.terms_of(ts, &mut self.x, &mut self.terms);
        self.take(ts)
    }

    /// Take this sample's terms (just computed) into the average.
    fn take(&mut self, ts: Option<i64>) -> f64 {
        let (a, timed) = self.alpha(ts);
        self.last_ms = ts;
        match self.start {
            Start::Empty => {
                self.state.copy_from_slice(&self.terms);
                self.weight = 1.0;
                self.start = Start::OneSample;
            }
            Start::OneSample | Start::Running => {
                if self.start == Start::OneSample && timed {
                    for e in &mut self.state {
                        *e *= a;
                    }
                    self.weight = a;
                }
                self.start = Start::Running;
                for (e, t) in self.state.iter_mut().zip(&self.terms) {
                    *e += a * (t - *e);
                }
                // Stays exactly 1 per sample, so those scores are unchanged.
                self.weight += a * (1.0 - self.weight);
            }
        }
        1.0 / self.weight
    }

    /// Rank the features' attributions (`attr`): largest first, ties by feature index,
    /// those with nothing to attribute (a zero average) last. Returns how many have
    /// something: `rank[..count]` are the contributions.
    fn rank(&mut self, scale: f64) -> usize {
        let mut count = 0;
        for (a, e) in self.attr.iter_mut().zip(&self.state) {
            *a = if *e > 0.0 {
                count += 1;
                *e * scale
            } else {
                f64::NEG_INFINITY
            };
        }
        let (attr, rank) = (&self.attr, &mut self.rank);
        // One order for every sample: by attribution, then by index. It is total, so
        // the result is the one any sort gives, whatever order `rank` starts in.
        let before = |i: usize, j: usize| match attr[i].total_cmp(&attr[j]) {
            std::cmp::Ordering::Equal => i < j,
            o => o == std::cmp::Ordering::Greater,
        };
        for i in 1..rank.len() {
            let j = rank[i];
            let mut k = i;
            while k > 0 && before(j, rank[k - 1]) {
                rank[k] = rank[k - 1];
                k -= 1;
            }
            rank[k] = j;
        }
        count
    }
}

/// The score: the attributions summed largest first (the order fixes the rounding).
fn sum_of(contributions: &[(usize, f64)]) -> f64 {
    contributions.iter().map(|(_, e)| e).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::Noise;
    use crate::model::Spec;

    const T0: i64 = 1_700_000_000_000;
    const MINUTE: i64 = 60_000;

    fn row(ts: Option<i64>, cpu: f64, mem: f64, disk: f64) -> Record {
        Record {
            timestamp_ms: ts,
            values: vec![
                ("cpu".into(), cpu),
                ("mem".into(), mem),
                ("disk".into(), disk),
            ],
        }
    }

    /// `n` quiet minute rows (1.4 days for 2000: no time-of-day baseline, so a
    /// record scores the same whatever its time).
    fn minute_rows(n: usize) -> Vec<Record> {
        let mut z = Noise::new(11);
        (0..n)
            .map(|i| {
                row(
                    Some(T0 + i as i64 * MINUTE),
                    20.0 + 3.0 * z.next(),
                    60.0 + z.next(),
                    10.0 + 2.0 * z.next(),
                )
            })
            .collect()
    }

    fn model_on_minutes() -> (Vec<Record>, Arc<Model>) {
        let h = minute_rows(2000);
        let m = Model::train(&h, &Spec::default()).expect("trains");
        assert_eq!(m.row_interval_ms(), Some(MINUTE as f64));
        assert!(m.time_of_day.is_none());
        (h, Arc::new(m))
    }

    #[test]
    fn score_values_is_score_reduced() {
        let (h, m) = model_on_minutes();
        let mut a = Scorer::new(m.clone());
        let mut b = Scorer::new(m.clone());
        // A spike, so some rows have a top cause back within its floor.
        let mut rows = h[..300].to_vec();
        rows[150].values[0].1 += 40.0;
        for r in &rows {
            let s = a.score(r);
            let t = b.score_values(r.timestamp_ms, &m.schema.vector(r));
            assert_eq!(s.value.to_bits(), t.value.to_bits());
            assert_eq!(s.raw.to_bits(), t.raw.to_bits());
            assert_eq!(
                s.contributions.first().map(|_| s.top_cause_raw),
                t.top_cause_raw
            );
        }
    }

    /// The ranking kept from sample to sample is the full sort of each sample's
    /// attributions (largest first, ties by index, zeros left out), whatever came
    /// before: slow drifts, jumps, ties, averages at zero.
    #[test]
    fn kept_ranking_is_each_samples_full_sort() {
        let (_, m) = model_on_minutes();
        let mut scorer = Scorer::new(m);
        let d = scorer.state.len();
        let mut noise = Noise::new(11);
        for step in 0..500 {
            for (j, e) in scorer.state.iter_mut().enumerate() {
                *e = match step % 50 {
                    0 => noise.next() * 4.0,                  // a jump
                    7 => (j % 2) as f64,                      // ties and zeros
                    13 => 0.0,                                // nothing to attribute
                    _ => (*e + noise.next() * 0.05).max(0.0), // a drift
                };
            }
            let scale = 1.0 + (step % 3) as f64;
            let mut want: Vec<(usize, f64)> = scorer
                .state
                .iter()
                .enumerate()
                .filter(|(_, e)| **e > 0.0)
                .map(|(j, e)| (j, *e * scale))
                .collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let count = scorer.rank(scale);
            let got: Vec<(usize, f64)> = scorer.rank[..count]
                .iter()
                .map(|&j| (j, scorer.attr[j]))
                .collect();
            assert_eq!(got, want, "step {step}");
            assert_eq!(scorer.rank.len(), d);
        }
    }

    /// The same model, smoothing per sample (as a file without the interval loads).
    fn per_sample(model: &Model) -> Arc<Model> {
        let mut m = model.clone();
        m.row_interval_ms = None;
        Arc::new(m)
    }

    /// A constant, moderate anomaly (cpu 24 where it is 20 ± 3: raw score about twice
    /// the threshold, so the average needs a few rows to get there) every `step_ms`
    /// after `warm`;
    /// the number of samples until the smoothed score crosses the threshold.
    fn samples_to_cross(model: &Arc<Model>, warm: &[Record], step_ms: i64) -> usize {
        let mut s = model.scorer();
        let warmed = warm.iter().map(|r| s.score(r)).last().expect("warm-up");
        assert!(!warmed.anomaly, "anomalous before the anomaly: {warmed:?}");
        let last = warm.last().and_then(|r| r.timestamp_ms).expect("timed");
        (1..100_000)
            .find(|&k| {
                let r = row(Some(last + k as i64 * step_ms), 24.0, 60.0, 10.0);
                s.score(&r).anomaly
            })
            .expect("crosses")
    }

    #[test]
    fn time_alpha_is_per_row_interval() {
        assert_eq!(time_alpha(0.1, 60_000.0, 60_000.0), 0.1);
        // 60 one-second steps forget as much as one minute step.
        let a = time_alpha(0.1, 1000.0, 60_000.0);
        assert!((a - (1.0 - 0.9f64.powf(1.0 / 60.0))).abs() < 1e-15, "{a}");
        assert!(((1.0 - a).powi(60) - 0.9).abs() < 1e-12);
        // Two minutes at once weigh as two one-minute steps.
        let two = time_alpha(0.1, 120_000.0, 60_000.0);
        assert!((two - 0.19).abs() < 1e-12, "{two}");
        // A day's gap forgets nearly everything; alpha 1 stays 1.
        assert!(time_alpha(0.1, 86_400_000.0, 60_000.0) > 1.0 - 1e-12);
        assert_eq!(time_alpha(1.0, 1000.0, 60_000.0), 1.0);
    }

    #[test]
    fn minute_rows_score_as_they_did_per_sample() {
        let (h, model) = model_on_minutes();
        let old = per_sample(&model);
        let fresh = minute_rows(2600).split_off(2000);
        let (mut a, mut b) = (model.scorer(), old.scorer());
        for (i, r) in h.iter().chain(&fresh).enumerate() {
            let (x, y) = (a.score(r), b.score(r));
            // Only the start differs (the first row seeds the per-sample average, and
            // weighs one row in time); 0.9^k of it is left after k rows.
            let tol = if i < 300 {
                0.9f64.powi(i as i32)
            } else {
                1e-12
            };
            assert!(
                (x.value - y.value).abs() <= tol * y.value,
                "row {i}: {x:?} {y:?}"
            );
            if i >= 300 {
                assert_eq!(x.anomaly, y.anomaly, "row {i}");
                assert_eq!(x.top_cause(), y.top_cause(), "row {i}");
            }
        }
    }

    #[test]
    fn the_first_sample_does_not_hold_a_time_average() {
        let (h, model) = model_on_minutes();
        let spike = row(Some(T0), 30.0, 60.0, 10.0);
        // Normal rows, one second apart after a spiky first sample.
        let quiet: Vec<Record> = h[1000..1060]
            .iter()
            .enumerate()
            .map(|(k, r)| Record {
                timestamp_ms: Some(T0 + (k as i64 + 1) * 1000),
                values: r.values.clone(),
            })
            .collect();
        let mut s = model.scorer();
        let first = s.score(&spike);
        assert!(first.anomaly, "{first:?}");
        let scores: Vec<Score> = quiet.iter().map(|r| s.score(r)).collect();
        let last = scores.last().expect("scored");
        // A minute later the spike is one sample of 61 in the average, not the seed
        // of a ten-minute average.
        let mean = (first.raw + scores.iter().map(|x| x.raw).sum::<f64>()) / 61.0;
        assert!((last.value - mean).abs() < 0.1 * mean, "{last:?} vs {mean}");
        assert!(!last.anomaly, "{last:?} threshold {}", model.threshold());
        // Per sample the first sample seeds the average, as it always did.
        let mut p = per_sample(&model).scorer();
        p.score(&spike);
        let second = p.score(&quiet[0]);
        let seeded = 0.9 * first.raw + 0.1 * scores[0].raw;
        assert!((second.value - seeded).abs() < 1e-9 * seeded, "{second:?}");
    }

    #[test]
    fn one_second_samples_take_sixty_times_as_many_to_cross() {
        let (h, model) = model_on_minutes();
        let warm = &h[1000..1100];
        let by_minute = samples_to_cross(&model, warm, MINUTE);
        let by_second = samples_to_cross(&model, warm, 1000);
        assert!(
            by_minute >= 3,
            "the anomaly must take a few rows: {by_minute}"
        );
        // The same crossing time, seen at 60× the rate.
        assert!(
            60 * (by_minute - 1) < by_second && by_second <= 60 * by_minute,
            "{by_minute} minutes vs {by_second} seconds"
        );
        // A model without the interval (an old file) smooths per sample: 1 s samples
        // cross as fast as minute rows did.
        let old = per_sample(&model);
        assert_eq!(samples_to_cross(&old, warm, 1000), by_minute);
    }

    #[test]
    fn a_long_gap_forgets_and_a_clock_step_back_weighs_one_row() {
        let (h, model) = model_on_minutes();
        let mut s = model.scorer();
        for r in &h[..100] {
            s.score(r);
        }
        let last = h[99].timestamp_ms.expect("timed");
        for k in 1..=20 {
            s.score(&row(Some(last + k * MINUTE), 80.0, 60.0, 10.0));
        }
        // A normal row a day later: the average is (nearly) the row's own terms.
        let later = s.score(&row(Some(last + 86_400_000), 20.0, 60.0, 10.0));
        assert!(
            (later.value - later.raw).abs() <= 1e-9 * later.raw.max(1.0),
            "{later:?}"
        );
        // Stepping back: the per-sample weight, like a model without the interval.
        let mut t = per_sample(&model).scorer();
        let mut u = model.scorer();
        let first = row(Some(T0 + 10 * MINUTE), 80.0, 60.0, 10.0);
        let back = row(Some(T0), 20.0, 60.0, 10.0);
        assert_eq!(t.score(&first), u.score(&first));
        assert_eq!(t.score(&back), u.score(&back));
        // Then timed from the stepped-back clock: one minute on is one row.
        let next = row(Some(T0 + MINUTE), 20.0, 60.0, 10.0);
        assert_eq!(t.score(&next), u.score(&next));
        // Records without timestamps are per sample too.
        let mut v = model.scorer();
        let mut w = per_sample(&model).scorer();
        for r in &h[..50] {
            let r = Record {
                timestamp_ms: None,
                values: r.values.clone(),
            };
            assert_eq!(v.score(&r), w.score(&r));
        }
    }
}
