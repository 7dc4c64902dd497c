//! Training: scale every feature, learn an optional time-of-day baseline (on the host's
//! local wall clock), fit k-means centroids (linfa) on what is left, then run the real
//! [`Scorer`] over the training rows and take a high quantile of those scores as the
//! decision threshold. The rows' typical spacing is recorded, so that live samples at
//! another interval are smoothed over the same time as the training rows were. No
//! labels are ever involved.

use linfa::prelude::*;
use linfa_clustering::KMeans;
use linfa_nn::distance::{Distance, L2Dist};
use ndarray::{Array2, ArrayView, Dimension};

use super::clock::Clock;
use super::features::Schema;
use super::score::Scorer;
use super::spec::Spec;
use super::threshold::quantile;
use super::{Model, TimeOfDay, TrainingWindow};
use crate::sample::{Frame, Record};

/// Why a model could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Spec(#[from] super::spec::SpecError),
    #[error("not enough history to learn from: {rows} rows, need at least {min}")]
    TooFewRows { rows: usize, min: usize },
    #[error("no usable features: every one of the {seen} features seen is constant or missing")]
    NoFeatures { seen: usize },
    #[error("k-means failed: {0}")]
    Fit(String),
}

/// Stages reported to a progress callback: (stage, done, total).
pub type Progress<'a> = &'a mut dyn FnMut(&'static str, usize, usize);

const MS_PER_DAY: i64 = 86_400_000;

/// The clock new models bin the time of day on (see [`super::clock`]).
const TRAINING_CLOCK: Clock = Clock::Local;

/// The typical spacing of `records` in ms: the median of the positive gaps between
/// consecutive timestamps. The median, because history has holes (the daemon was
/// stopped) and clock steps that say nothing about the sampling interval. `None`
/// without two consecutive timestamped rows.
pub(crate) fn row_interval_ms(stamps: &[Option<i64>]) -> Option<f64> {
    let mut gaps: Vec<f64> = stamps
        .windows(2)
        .filter_map(|w| match (w[0], w[1]) {
            (Some(a), Some(b)) if b > a => Some((b - a) as f64),
            _ => None,
        })
        .collect();
    if gaps.is_empty() {
        None
    } else {
        Some(quantile(&mut gaps, 0.5))
    }
}

/// One training row's score from training's threshold pass: what the passes after it
/// read of a [`super::Score`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScore {
    /// The smoothed score.
    pub value: f64,
    /// The row's own score before smoothing.
    pub raw: f64,
    /// [`super::Score::top_cause_raw`]; `None` when no feature contributed.
    pub top_cause_raw: Option<f64>,
}

/// The threshold pass's scores of every training row, in order, and the scorer after
/// the rows it was asked to warm on ([`Model::train_scored`]).
#[derive(Debug, Clone)]
pub struct Scored {
    pub rows: Vec<RowScore>,
    pub scorer: Scorer,
}

/// linfa's `L2Dist` without its cost per pair: `L2Dist` goes through ndarray-stats'
/// `sq_l2_dist`, which checks emptiness and shapes and drives a generic `Zip` for each
/// (row, centroid) pair, and that was a fifth of a replay's time. Here the contiguous
/// rows k-means hands over are summed as slices, four lanes at a time. Only the last
/// bits of a distance differ, which decides no membership: centroids are means of their
/// members, so the models are the same bit for bit (`model::train::tests::
/// slice_distance_gives_linfas_centroids`; replays compared byte for byte, README).
#[derive(Debug, Clone, Copy)]
struct SliceL2;

impl Distance<f64> for SliceL2 {
    fn distance<D: Dimension>(&self, a: ArrayView<f64, D>, b: ArrayView<f64, D>) -> f64 {
        self.rdistance(a, b).sqrt()
    }

    fn rdistance<D: Dimension>(&self, a: ArrayView<f64, D>, b: ArrayView<f64, D>) -> f64 {
        match (a.as_slice(), b.as_slice()) {
            (Some(x), Some(y)) if x.len() == y.len() => {
                // Four running sums, not one: each addition no longer waits for the one
                // before, which is what bounded the single sum.
                let mut lanes = [0.0f64; 4];
                let (xc, yc) = (x.chunks_exact(4), y.chunks_exact(4));
                let (xr, yr) = (xc.remainder(), yc.remainder());
                for (p, q) in xc.zip(yc) {
                    for l in 0..4 {
                        let d = p[l] - q[l];
                        lanes[l] += d * d;
                    }
                }
                let mut sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
                for (p, q) in xr.iter().zip(yr) {
                    let d = p - q;
                    sum += d * d;
                }
                sum
            }
            _ => L2Dist.rdistance(a, b),
        }
    }

    fn rdist_to_dist(&self, rdist: f64) -> f64 {
        rdist.sqrt()
    }

    fn dist_to_rdist(&self, dist: f64) -> f64 {
        dist.powi(2)
    }
}

/// Per-feature statistics over the finite values of one column.
struct ColumnStats {
    count: usize,
    mean: f64,
    std: f64,
    min: f64,
    max: f64,
}

/// Every column's statistics, in two passes over the rows (not two per column: the
/// frame is stored row by row). Each column's sums are still taken in row order.
fn column_stats(rows: &Frame) -> Vec<ColumnStats> {
    let d = rows.names().len();
    let mut count = vec![0usize; d];
    let mut sum = vec![0.0; d];
    let mut min = vec![f64::INFINITY; d];
    let mut max = vec![f64::NEG_INFINITY; d];
    for r in rows.rows() {
        for (j, &v) in r.iter().enumerate() {
            if v.is_finite() {
                count[j] += 1;
                sum[j] += v;
                min[j] = min[j].min(v);
                max[j] = max[j].max(v);
            }
        }
    }
    let mean: Vec<f64> = (0..d)
        .map(|j| {
            if count[j] > 0 {
                sum[j] / count[j] as f64
            } else {
                0.0
            }
        })
        .collect();
    let mut ss = vec![0.0; d];
    for r in rows.rows() {
        for (j, &v) in r.iter().enumerate() {
            if v.is_finite() {
                ss[j] += (v - mean[j]) * (v - mean[j]);
            }
        }
    }
    (0..d)
        .map(|j| ColumnStats {
            count: count[j],
            mean: mean[j],
            std: if count[j] > 0 {
                (ss[j] / count[j] as f64).sqrt()
            } else {
                0.0
            },
            min: min[j],
            max: max[j],
        })
        .collect()
}

/// Rows per block of [`each_rows_terms`].
const TERMS_BLOCK: usize = 1024;

/// Call `each(i, terms)` with every row's raw terms ([`Model::terms_of`] of the row's
/// `cols`), in row order. A row's terms need only the model, and the average they go
/// into next needs the rows in order: so a second thread computes them a few blocks
/// ahead while this one averages (a third of training's threshold pass). Without that
/// thread, both here.
fn each_rows_terms(
    model: &Model,
    rows: &Frame,
    cols: &[usize],
    mut each: impl FnMut(usize, &[f64]),
) {
    let d = cols.len();
    let n = rows.len();
    let fill = |start: usize, buf: &mut Vec<f64>, x: &mut [f64]| {
        let end = (start + TERMS_BLOCK).min(n);
        buf.clear();
        buf.resize((end - start) * d, 0.0);
        for (i, terms) in (start..end).zip(buf.chunks_exact_mut(d)) {
            let r = rows.row(i);
            for (v, &j) in x.iter_mut().zip(cols) {
                *v = r[j];
            }
            model.terms_of(rows.timestamps()[i], x, terms);
        }
    };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<f64>>(4);
        let (back, spare) = std::sync::mpsc::channel::<Vec<f64>>();
        let ahead = std::thread::Builder::new()
            .name("train-terms".into())
            .spawn_scoped(s, move || {
                let mut x = vec![0.0; d];
                for start in (0..n).step_by(TERMS_BLOCK) {
                    let mut buf = spare.try_recv().unwrap_or_default();
                    fill(start, &mut buf, &mut x);
                    if tx.send(buf).is_err() {
                        return;
                    }
                }
            });
        if ahead.is_ok() {
            let mut i = 0;
            for block in rx {
                for terms in block.chunks_exact(d) {
                    each(i, terms);
                    i += 1;
                }
                let _ = back.send(block);
            }
        } else {
            let (mut buf, mut x) = (Vec::new(), vec![0.0; d]);
            for start in (0..n).step_by(TERMS_BLOCK) {
                fill(start, &mut buf, &mut x);
                for (k, terms) in buf.chunks_exact(d).enumerate() {
                    each(start + k, terms);
                }
            }
        }
    });
}

impl Model {
    /// Learn a model from history. Records are used in the order given (the smoothing
    /// that the threshold is computed through is sequential).
    pub fn train(records: &[Record], spec: &Spec) -> Result<Model, TrainError> {
        Model::train_with_progress(records, spec, &mut |_, _, _| {})
    }

    /// [`Model::train`] with a progress callback (the CLI draws a bar with it).
    pub fn train_with_progress(
        records: &[Record],
        spec: &Spec,
        progress: Progress<'_>,
    ) -> Result<Model, TrainError> {
        Model::fit(&super::frame::from_records(records), spec, progress, None)
            .map(|(model, _)| model)
    }

    /// [`Model::train`], and what its threshold pass found: each row's score, and the
    /// scorer as it stood after the first `warm` rows, on the trained model. What is
    /// fitted next on the same rows (the fault risk, the false-alarm budget) and the
    /// live stream that follows start from these instead of scoring the rows again:
    /// the same scorer over the same rows gives the same numbers.
    pub fn train_scored(
        rows: &Frame,
        spec: &Spec,
        warm: usize,
    ) -> Result<(std::sync::Arc<Model>, Scored), TrainError> {
        let (model, scored) = Model::fit(rows, spec, &mut |_, _, _| {}, Some(warm))?;
        let model = std::sync::Arc::new(model);
        let mut scored = scored.unwrap_or_else(|| Scored {
            rows: Vec::new(),
            scorer: Scorer::new(model.clone()),
        });
        scored.scorer.rebind(model.clone());
        Ok((model, scored))
    }

    /// Training itself; keeps the threshold pass's scores when asked to `keep` them
    /// (with the scorer after that many rows).
    fn fit(
        rows: &Frame,
        spec: &Spec,
        progress: Progress<'_>,
        keep: Option<usize>,
    ) -> Result<(Model, Option<Scored>), TrainError> {
        spec.validate()?;
        let n = rows.len();
        let min = spec.min_rows.max(spec.clusters);
        if n < min {
            return Err(TrainError::TooFewRows { rows: n, min });
        }

        // 1. Features: the frame's, found by the same function scoring uses.
        progress("features", 0, n);

        // 2. Scale; constant (or all-missing) features are skipped.
        let mut names = Vec::new();
        let mut skipped = Vec::new();
        let mut cols = Vec::new();
        let mut center = Vec::new();
        let mut scale = Vec::new();
        for ((j, name), s) in rows.names().iter().enumerate().zip(column_stats(rows)) {
            if s.count < 2 || s.max <= s.min || s.std <= 0.0 {
                skipped.push(name.clone());
                continue;
            }
            names.push(name.clone());
            cols.push(j);
            center.push(s.mean);
            scale.push(s.std.max(spec.min_scale_fraction * (s.max - s.min)));
        }
        if names.is_empty() {
            return Err(TrainError::NoFeatures {
                seen: rows.names().len(),
            });
        }
        let d = names.len();
        // The z-scores, row by row in one block.
        let mut z: Vec<f64> = Vec::with_capacity(n * d);
        for r in rows.rows() {
            z.extend(
                cols.iter()
                    .enumerate()
                    .map(|(k, &j)| (r[j] - center[k]) / scale[k]),
            );
        }
        progress("features", n, n);

        // 3. Time of day, only when the history spans enough days to tell a routine
        //    (the nightly backup) from an accident.
        let stamps: Vec<i64> = rows.timestamps().iter().filter_map(|t| *t).collect();
        let window = TrainingWindow {
            first_ms: stamps.iter().min().copied(),
            last_ms: stamps.iter().max().copied(),
            rows: n,
        };
        let tod = &spec.time_of_day;
        let span_days = match (window.first_ms, window.last_ms) {
            (Some(a), Some(b)) => (b - a) as f64 / MS_PER_DAY as f64,
            _ => 0.0,
        };
        let time_of_day = if tod.bins > 0 && stamps.len() * 10 >= n * 9 && span_days >= tod.min_days
        {
            let bin_of: Vec<Option<usize>> = rows
                .timestamps()
                .iter()
                .map(|t| t.map(|ts| TRAINING_CLOCK.day_bin(ts, tod.bins)))
                .collect();
            let mut sum = vec![0.0; tod.bins * d];
            let mut cnt = vec![0usize; tod.bins * d];
            for (bin, zr) in bin_of.iter().zip(z.chunks_exact(d)) {
                if let Some(b) = *bin {
                    for (k, v) in zr.iter().enumerate() {
                        if v.is_finite() {
                            sum[b * d + k] += v;
                            cnt[b * d + k] += 1;
                        }
                    }
                }
            }
            let baseline: Vec<f64> = sum
                .iter()
                .zip(&cnt)
                .map(|(s, &c)| {
                    if c >= tod.min_bin_rows {
                        s / c as f64
                    } else {
                        0.0
                    }
                })
                .collect();
            for (bin, zr) in bin_of.iter().zip(z.chunks_exact_mut(d)) {
                if let Some(b) = *bin {
                    for (k, v) in zr.iter_mut().enumerate() {
                        *v -= baseline[b * d + k];
                    }
                }
            }
            Some(TimeOfDay {
                bins: tod.bins,
                clock: TRAINING_CLOCK,
                baseline,
            })
        } else {
            None
        };

        // 4. Operating modes: k-means on the (residual) z-scores; a missing value sits
        //    at the mean (0). Evenly strided rows keep large histories fast.
        progress("k-means", 0, 1);
        let stride = n.div_ceil(spec.max_fit_rows).max(1);
        let fit_rows: Vec<&[f64]> = z.chunks_exact(d).step_by(stride).collect();
        let mut fit = Array2::<f64>::zeros((fit_rows.len(), d));
        for (i, r) in fit_rows.iter().enumerate() {
            for (k, v) in r.iter().enumerate() {
                fit[[i, k]] = if v.is_finite() { *v } else { 0.0 };
            }
        }
        let k = spec.clusters.min(fit_rows.len());
        // linfa's own generator (seed 42), with a distance that gives the same sums.
        let rng = KMeans::<f64, L2Dist>::params(k)
            .check_ref()
            .map_err(|e| TrainError::Fit(e.to_string()))?
            .rng()
            .clone();
        let km = KMeans::params_with(k, rng, SliceL2)
            .n_runs(spec.kmeans_runs)
            .max_n_iterations(spec.kmeans_max_iterations)
            .tolerance(1e-4)
            .fit(&DatasetBase::from(fit))
            .map_err(|e| TrainError::Fit(e.to_string()))?;
        let centroids: Vec<f64> = km.centroids().iter().copied().collect();
        drop(z);
        progress("k-means", 1, 1);

        let floor = super::spec::floors_for(&spec.floors, &names, &center);
        let mut model = Model {
            schema: Schema::new(names),
            skipped,
            center,
            scale,
            floor,
            clusters: k,
            centroids,
            time_of_day,
            threshold: f64::INFINITY,
            raw_threshold: f64::INFINITY,
            spec: spec.clone(),
            window,
            row_interval_ms: row_interval_ms(rows.timestamps()),
            created_ms: crate::sample::now_ms(),
        };

        // 5. Threshold: the same scorer the daemon runs, over the training rows (so
        //    with the same time-based smoothing, now that the row interval is known).
        let shared = std::sync::Arc::new(model.clone());
        let mut scorer = Scorer::new(shared.clone());
        let mut scores = Vec::with_capacity(n);
        let mut raw = Vec::with_capacity(n);
        let mut kept = Vec::with_capacity(if keep.is_some() { n } else { 0 });
        let mut warmed = None;
        let step = (n / 100).max(1);
        let stamps = rows.timestamps();
        each_rows_terms(&shared, rows, &cols, |i, terms| {
            if keep == Some(i) {
                warmed = Some(scorer.clone());
            }
            let s = scorer.score_terms(stamps[i], terms);
            scores.push(s.value);
            raw.push(s.raw);
            if keep.is_some() {
                kept.push(s);
            }
            if i % step == 0 {
                progress("threshold", i, n);
            }
        });
        progress("threshold", n, n);
        model.threshold = quantile(&mut scores, spec.threshold_quantile);
        model.raw_threshold = quantile(&mut raw, spec.threshold_quantile);
        let scored = keep.map(|_| Scored {
            rows: kept,
            scorer: warmed.unwrap_or(scorer),
        });
        Ok((model, scored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The faster distance rounds its sums differently in the last bits only, which moves
    /// no row to another cluster: the same fit with linfa's `L2Dist` and with `SliceL2`
    /// gives the same centroids, bit for bit.
    #[test]
    fn slice_distance_gives_linfas_centroids() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let data = Array2::from_shape_fn((2_000, 38), |(i, j)| {
            let v: f64 = rng.random_range(-3.0..3.0);
            v * (1.0 + (i % 5) as f64) + j as f64 * 1e-3
        });
        for (a, b) in data.rows().into_iter().zip(data.rows().into_iter().skip(1)) {
            let (s, l) = (SliceL2.rdistance(a, b), L2Dist.rdistance(a, b));
            assert!((s - l).abs() <= 1e-12 * l, "{s} vs {l}");
        }
        // Columns are not contiguous: linfa's path.
        let (c0, c1) = (data.column(0), data.column(1));
        assert_eq!(SliceL2.rdistance(c0, c1), L2Dist.rdistance(c0, c1));
        let fit = |centroids: &mut Vec<u64>, slice: bool| {
            let ds = DatasetBase::from(data.clone());
            let km = if slice {
                let rng = KMeans::<f64, L2Dist>::params(5)
                    .check_ref()
                    .expect("valid")
                    .rng()
                    .clone();
                KMeans::params_with(5, rng, SliceL2)
                    .n_runs(2)
                    .fit(&ds)
                    .expect("fit")
                    .centroids()
                    .clone()
            } else {
                KMeans::params(5)
                    .n_runs(2)
                    .fit(&ds)
                    .expect("fit")
                    .centroids()
                    .clone()
            };
            centroids.extend(km.iter().map(|v| v.to_bits()));
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        fit(&mut a, true);
        fit(&mut b, false);
        assert_eq!(a, b);
    }

    #[test]
    fn row_interval_is_the_median_positive_gap() {
        // Minute rows with a one-day hole, a clock step back and a duplicate.
        let mut ts: Vec<i64> = (0..10).map(|i| i * 60_000).collect();
        ts.push(ts[9] + MS_PER_DAY);
        ts.push(ts[10] - 30_000);
        ts.push(ts[11]);
        ts.push(ts[12] + 61_000);
        let rows: Vec<Option<i64>> = ts.iter().map(|t| Some(*t)).collect();
        assert_eq!(row_interval_ms(&rows), Some(60_000.0));
        // Without timestamps, or with none consecutive: no interval (per sample).
        assert_eq!(row_interval_ms(&[None, None, None]), None);
        assert_eq!(row_interval_ms(&[Some(0), None, Some(1000)]), None);
        assert_eq!(row_interval_ms(&[Some(5), Some(5)]), None);
    }

    #[test]
    fn training_records_the_interval_and_the_local_clock() {
        let rows: Vec<Record> = (0..4 * 1440)
            .map(|i| Record {
                timestamp_ms: Some(1_700_000_000_000 + i * 60_000),
                values: vec![("a".into(), (i % 7) as f64), ("b".into(), (i % 11) as f64)],
            })
            .collect();
        let m = Model::train(&rows, &Spec::default()).expect("trains");
        assert_eq!(m.row_interval_ms(), Some(60_000.0));
        assert_eq!(m.time_of_day_clock(), Some(Clock::Local));
        let untimed: Vec<Record> = rows
            .iter()
            .map(|r| Record {
                timestamp_ms: None,
                values: r.values.clone(),
            })
            .collect();
        let m = Model::train(&untimed, &Spec::default()).expect("trains");
        assert_eq!(m.row_interval_ms(), None);
        assert_eq!(m.time_of_day_clock(), None);
    }

    #[test]
    fn too_few_rows_and_no_features() {
        let spec = Spec::default();
        let r = Record {
            timestamp_ms: None,
            values: vec![("a".into(), 1.0)],
        };
        assert!(matches!(
            Model::train(std::slice::from_ref(&r), &spec),
            Err(TrainError::TooFewRows { rows: 1, .. })
        ));
        let many = vec![r; 100];
        assert!(matches!(
            Model::train(&many, &spec),
            Err(TrainError::NoFeatures { seen: 1 })
        ));
    }

    /// The threshold pass, with each row's terms computed a block ahead on another
    /// thread, scores the rows as the daemon's scorer does one after another: every
    /// block, the last one partial, a missing value and a row without a time included.
    #[test]
    fn the_threshold_pass_scores_as_the_scorer_does() {
        let mut rows = crate::model::tests::history(3 * TERMS_BLOCK + 17, 5);
        rows[1500].values.retain(|(n, _)| n != "cpu");
        rows[2000].timestamp_ms = None;
        let frame = super::super::frame::from_records(&rows);
        let (model, scored) = Model::train_scored(&frame, &Spec::default(), 2500).expect("trains");
        let mut scorer = Scorer::new(model.clone());
        assert_eq!(scored.rows.len(), rows.len());
        for (i, (r, got)) in rows.iter().zip(&scored.rows).enumerate() {
            let want = scorer.score(r);
            assert_eq!(got.value.to_bits(), want.value.to_bits(), "row {i}");
            assert_eq!(got.raw.to_bits(), want.raw.to_bits(), "row {i}");
            assert_eq!(
                got.top_cause_raw,
                want.contributions.first().map(|_| want.top_cause_raw),
                "row {i}"
            );
        }
    }
}
