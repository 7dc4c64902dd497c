//! Fault risk: the probability that an incident opens within a horizon.
//!
//! **Features** (all in time units, so 1 s live samples and 1 min history rows mean
//! the same): the score/threshold ratio now (capped at 5), its fast (horizon/30) and
//! slow (horizon/6) exponential averages and their difference (is it climbing?), and
//! the time-decayed share of anomalous samples (horizon/3). The score itself is
//! smoothed in time as well (per training row interval, see `model::score`), so the
//! ratio the calibration saw on minute rows is the one live 1 s samples give.
//!
//! **Target**: "an incident opens within the horizon", with an incident opening
//! exactly as the incident engine debounces it: `anomalous` of the last `of` samples
//! anomalous while none is open; it closes once `of` samples in a row are normal.
//!
//! **Calibration** ([`calibrate`]): when a model is trained, its training rows are
//! scored in time order by the model itself (in-sample, as the threshold is), the
//! debounced incidents they would have opened are the target, and a ridge-regularised
//! logistic regression maps features to probability. No labels anywhere: the host's
//! own history only. Rows with an incident already open are left out (the question
//! "will one open?" is moot then).
//!
//! **Capacity**: a resource expected to run out within the horizon is itself an
//! incident in the making, so the risk is combined as 1 − (1 − p_scores)(1 − p_capacity)
//! with p_capacity = 1 for an ETA under the horizon, falling linearly to 0 at twice it.
//! That part is a rule, not calibrated (capacity exhaustion is rare in any history).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Risk, RiskConfig};
use crate::model::{Model, Score, Scorer};
use crate::sample::Record;

pub const FORMAT: &str = "anomalyd-risk";
pub const FORMAT_VERSION: u32 = 1;

/// Number of features; see the module header.
pub const FEATURES: usize = 5;
/// The ratio is capped: beyond 5× the threshold "how far" adds nothing.
const RATIO_CAP: f64 = 5.0;
/// Ridge penalty on the standardised weights (not the intercept).
const RIDGE: f64 = 1.0;
/// A warning clears below this share of the warning level.
const CLEAR_SHARE: f64 = 0.8;

/// Exponential average in time: a gap of `tau` weighs the new value 63 %.
#[derive(Debug, Clone, Copy)]
struct Ewma {
    tau_s: f64,
    value: f64,
}

impl Ewma {
    fn push(&mut self, dt_s: Option<f64>, x: f64) -> f64 {
        self.value = match dt_s {
            None => x,
            Some(dt) => {
                let a = 1.0 - (-dt.max(0.0) / self.tau_s).exp();
                self.value + a * (x - self.value)
            }
        };
        self.value
    }
}

/// The score trajectory's features, updated per sample.
#[derive(Debug, Clone)]
pub struct Trajectory {
    fast: Ewma,
    slow: Ewma,
    share: Ewma,
    last_ms: Option<i64>,
}

impl Trajectory {
    pub fn new(horizon: Duration) -> Trajectory {
        let h = horizon.as_secs_f64().max(1e-3);
        let e = |tau_s| Ewma { tau_s, value: 0.0 };
        Trajectory {
            fast: e(h / 30.0),
            slow: e(h / 6.0),
            share: e(h / 3.0),
            last_ms: None,
        }
    }

    pub fn push(&mut self, ts_ms: i64, ratio: f64, anomalous: bool) -> [f64; FEATURES] {
        let r = if ratio.is_finite() {
            ratio.clamp(0.0, RATIO_CAP)
        } else {
            RATIO_CAP
        };
        let dt = self.last_ms.map(|l| (ts_ms - l) as f64 / 1000.0);
        self.last_ms = Some(ts_ms);
        let fast = self.fast.push(dt, r);
        let slow = self.slow.push(dt, r);
        let share = self.share.push(dt, if anomalous { 1.0 } else { 0.0 });
        [r, fast, slow, fast - slow, share]
    }
}

/// Incidents as the incident engine opens them: `k` anomalous of the last `m`.
#[derive(Debug, Clone)]
pub struct Debounce {
    recent: VecDeque<bool>,
    k: usize,
    m: usize,
    open: bool,
}

impl Debounce {
    pub fn new(k: usize, m: usize) -> Debounce {
        Debounce {
            recent: VecDeque::with_capacity(m + 1),
            k,
            m: m.max(1),
            open: false,
        }
    }

    /// (an incident opened with this sample, one is open after it)
    pub fn push(&mut self, anomalous: bool) -> (bool, bool) {
        self.recent.push_back(anomalous);
        if self.recent.len() > self.m {
            self.recent.pop_front();
        }
        let hits = self.recent.iter().filter(|a| **a).count();
        let was = self.open;
        if !self.open && hits >= self.k {
            self.open = true;
        } else if self.open && hits == 0 && self.recent.len() == self.m {
            self.open = false;
        }
        (self.open && !was, self.open)
    }
}

/// A fitted risk calibration, stored beside the model it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub format: String,
    pub version: u32,
    /// `created_unix_ms` of the model whose scores this calibrates.
    pub model_created_ms: i64,
    pub horizon_ms: i64,
    pub debounce_anomalous: usize,
    pub debounce_of: usize,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
    /// Rows used, how many were followed by an opening within the horizon, and how
    /// many incidents opened: what the calibration rests on.
    pub rows: usize,
    pub positives: usize,
    pub incidents: usize,
}

impl Calibration {
    /// P(an incident opens within the horizon | features).
    pub fn probability(&self, x: &[f64; FEATURES]) -> f64 {
        let z: f64 = (0..FEATURES)
            .map(|j| self.weights[j] * (x[j] - self.mean[j]) / self.scale[j])
            .sum();
        sigmoid(self.bias + z)
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::store::write_atomic(path, (text + "\n").as_bytes())
    }

    /// Read and check a calibration for `model` under `cfg`; the reason when it
    /// does not apply.
    pub fn load(path: &Path, model: &Model, cfg: &RiskConfig) -> Result<Calibration, String> {
        let text = crate::config::file::read_text(path, crate::config::file::SMALL)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let c: Calibration = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a risk calibration: {e}", path.display()))?;
        if c.format != FORMAT || c.version != FORMAT_VERSION {
            return Err(format!(
                "{}: format {:?} version {}, this build reads {FORMAT:?} version {FORMAT_VERSION}",
                path.display(),
                c.format,
                c.version
            ));
        }
        if c.model_created_ms != model.created_ms() {
            return Err(format!("{}: belongs to another model", path.display()));
        }
        if c.horizon_ms != cfg.horizon.as_millis() as i64
            || c.debounce_anomalous != cfg.debounce_anomalous
            || c.debounce_of != cfg.debounce_of
        {
            return Err(format!(
                "{}: calibrated for another horizon or debounce; recalibrated at the next training",
                path.display()
            ));
        }
        let ok = |v: &[f64]| v.len() == FEATURES && v.iter().all(|x| x.is_finite());
        if !ok(&c.mean)
            || !ok(&c.weights)
            || !ok(&c.scale)
            || c.scale.iter().any(|s| *s <= 0.0)
            || !c.bias.is_finite()
        {
            return Err(format!("{}: corrupt parameters", path.display()));
        }
        Ok(c)
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Feature rows, debounce states and opening times of a scored stream.
struct Stream {
    x: Vec<[f64; FEATURES]>,
    ts: Vec<i64>,
    open: Vec<bool>,
    opens: Vec<i64>,
}

fn stream(model: &Model, stamps: &[Option<i64>], scores: &[f64], cfg: &RiskConfig) -> Stream {
    let mut traj = Trajectory::new(cfg.horizon);
    let mut deb = Debounce::new(cfg.debounce_anomalous, cfg.debounce_of);
    let mut s = Stream {
        x: Vec::with_capacity(stamps.len()),
        ts: Vec::with_capacity(stamps.len()),
        open: Vec::with_capacity(stamps.len()),
        opens: Vec::new(),
    };
    for (i, (t, &value)) in stamps.iter().zip(scores).enumerate() {
        // Rows without time (a header-less CSV) are a minute apart, as SMD's.
        let ts = t.unwrap_or(i as i64 * 60_000);
        // As `Score::anomaly`.
        let anomaly = value > model.threshold();
        s.x.push(traj.push(ts, value / model.threshold(), anomaly));
        // What opens an incident in the engine (its N-of-M on the decision).
        let (opened, open) = deb.push(anomaly);
        if opened {
            s.opens.push(ts);
        }
        s.ts.push(ts);
        s.open.push(open);
    }
    s
}

/// Fit the risk calibration for `model` on its training `rows` (time order).
pub fn calibrate(
    model: &Arc<Model>,
    rows: &[Record],
    cfg: &RiskConfig,
) -> Result<Calibration, String> {
    let mut scorer = Scorer::new(Arc::clone(model));
    let scores: Vec<f64> = rows.iter().map(|r| scorer.score(r).value).collect();
    let stamps: Vec<Option<i64>> = rows.iter().map(|r| r.timestamp_ms).collect();
    calibrate_scored(model, &stamps, &scores, cfg)
}

/// [`calibrate`] with the rows' smoothed `scores` already known (training's own pass
/// over them, [`Model::train_scored`]: a fresh scorer over the same rows).
pub fn calibrate_scored(
    model: &Arc<Model>,
    stamps: &[Option<i64>],
    scores: &[f64],
    cfg: &RiskConfig,
) -> Result<Calibration, String> {
    debug_assert_eq!(stamps.len(), scores.len());
    let s = stream(model, stamps, scores, cfg);
    let h = cfg.horizon.as_millis() as i64;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut next = 0; // first opening after the current row
    for i in 0..s.ts.len() {
        while next < s.opens.len() && s.opens[next] <= s.ts[i] {
            next += 1;
        }
        if s.open[i] {
            continue;
        }
        let y = next < s.opens.len() && s.opens[next] <= s.ts[i] + h;
        xs.push(s.x[i]);
        ys.push(y);
    }
    let positives = ys.iter().filter(|y| **y).count();
    if positives < 3 || positives + 3 > ys.len() {
        return Err(format!(
            "{} incidents in {} training rows: too few to calibrate the fault risk",
            s.opens.len(),
            stamps.len()
        ));
    }
    let (mean, scale) = standardise(&xs);
    let z: Vec<[f64; FEATURES]> = xs
        .iter()
        .map(|x| std::array::from_fn(|j| (x[j] - mean[j]) / scale[j]))
        .collect();
    let (weights, bias) = logistic(&z, &ys, RIDGE);
    Ok(Calibration {
        format: FORMAT.to_string(),
        version: FORMAT_VERSION,
        model_created_ms: model.created_ms(),
        horizon_ms: h,
        debounce_anomalous: cfg.debounce_anomalous,
        debounce_of: cfg.debounce_of,
        mean: mean.to_vec(),
        scale: scale.to_vec(),
        weights: weights.to_vec(),
        bias,
        rows: ys.len(),
        positives,
        incidents: s.opens.len(),
    })
}

fn standardise(xs: &[[f64; FEATURES]]) -> ([f64; FEATURES], [f64; FEATURES]) {
    let n = xs.len().max(1) as f64;
    let mut mean = [0.0; FEATURES];
    let mut var = [0.0; FEATURES];
    for x in xs {
        for j in 0..FEATURES {
            mean[j] += x[j] / n;
        }
    }
    for x in xs {
        for j in 0..FEATURES {
            var[j] += (x[j] - mean[j]).powi(2) / n;
        }
    }
    // A constant feature gets scale 1: its standardised value is 0 and says nothing.
    let scale = var.map(|v| if v.sqrt() > 1e-9 { v.sqrt() } else { 1.0 });
    (mean, scale)
}

/// Ridge logistic regression by Newton's method (IRLS) on standardised features.
fn logistic(z: &[[f64; FEATURES]], y: &[bool], ridge: f64) -> ([f64; FEATURES], f64) {
    const D: usize = FEATURES + 1; // weights, then the intercept
    let mut beta = [0.0; D];
    // Start the intercept at the base rate's log-odds.
    let rate = y.iter().filter(|v| **v).count() as f64 / y.len().max(1) as f64;
    beta[FEATURES] = (rate / (1.0 - rate)).ln();
    // The objective at `beta`: the step accepted last computed it already.
    let mut current = objective(z, y, &beta, ridge);
    for _ in 0..50 {
        let mut grad = [0.0; D];
        let mut hess = [[0.0; D]; D];
        for (x, &yi) in z.iter().zip(y) {
            let mut v = [1.0; D];
            v[..FEATURES].copy_from_slice(x);
            let eta: f64 = v.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = sigmoid(eta);
            let w = (p * (1.0 - p)).max(1e-12);
            let r = if yi { 1.0 } else { 0.0 } - p;
            for a in 0..D {
                grad[a] += v[a] * r;
                for b in 0..D {
                    hess[a][b] += w * v[a] * v[b];
                }
            }
        }
        for a in 0..FEATURES {
            grad[a] -= ridge * beta[a];
            hess[a][a] += ridge;
        }
        let Some(step) = solve(hess, grad) else {
            break;
        };
        // Damped: halve the step until the penalised likelihood does not drop
        // (plain Newton overshoots on nearly separable data).
        let before = current;
        let mut t = 1.0;
        let mut moved = false;
        while t > 1e-6 {
            let trial: [f64; D] = std::array::from_fn(|a| beta[a] + t * step[a]);
            let at_trial = objective(z, y, &trial, ridge);
            if at_trial >= before {
                beta = trial;
                current = at_trial;
                moved = true;
                break;
            }
            t /= 2.0;
        }
        let biggest = step.iter().fold(0.0f64, |m, s| m.max((t * s).abs()));
        if !moved || biggest < 1e-8 {
            break;
        }
    }
    let mut w = [0.0; FEATURES];
    w.copy_from_slice(&beta[..FEATURES]);
    (w, beta[FEATURES])
}

/// Penalised log-likelihood of `beta` (weights, then intercept).
fn objective(z: &[[f64; FEATURES]], y: &[bool], beta: &[f64; FEATURES + 1], ridge: f64) -> f64 {
    // log p = -softplus(-eta), log(1 - p) = -softplus(eta), computed stably.
    let softplus = |x: f64| if x > 30.0 { x } else { x.exp().ln_1p() };
    let mut ll = 0.0;
    for (x, &yi) in z.iter().zip(y) {
        let eta: f64 = x.iter().zip(beta).map(|(a, b)| a * b).sum::<f64>() + beta[FEATURES];
        ll -= if yi { softplus(-eta) } else { softplus(eta) };
    }
    ll - 0.5 * ridge * beta[..FEATURES].iter().map(|w| w * w).sum::<f64>()
}

/// Solve `a x = b` by Gaussian elimination with partial pivoting.
fn solve<const D: usize>(mut a: [[f64; D]; D], mut b: [f64; D]) -> Option<[f64; D]> {
    for col in 0..D {
        let pivot = (col..D).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (top, rest) = a.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for (i, row) in rest.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            for (r, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *r -= f * p;
            }
            b[col + 1 + i] -= f * b[col];
        }
    }
    let mut x = [0.0; D];
    for row in (0..D).rev() {
        let s: f64 = (row + 1..D).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// The fault risk of a live (or replayed) stream.
#[derive(Debug, Clone)]
pub struct RiskTracker {
    cfg: RiskConfig,
    trajectory: Trajectory,
    calibration: Option<Arc<Calibration>>,
    /// When the current warning was raised.
    warning_since: Option<i64>,
}

impl RiskTracker {
    pub fn new(cfg: &RiskConfig) -> RiskTracker {
        RiskTracker {
            cfg: cfg.clone(),
            trajectory: Trajectory::new(cfg.horizon),
            calibration: None,
            warning_since: None,
        }
    }

    pub fn reconfigure(&mut self, cfg: &RiskConfig) {
        if cfg.horizon != self.cfg.horizon {
            self.trajectory = Trajectory::new(cfg.horizon);
        }
        if cfg.horizon != self.cfg.horizon
            || cfg.debounce_anomalous != self.cfg.debounce_anomalous
            || cfg.debounce_of != self.cfg.debounce_of
        {
            // Calibrated for another question; the next training answers this one.
            self.calibration = None;
        }
        self.cfg = cfg.clone();
    }

    pub fn set_calibration(&mut self, c: Option<Calibration>) {
        self.calibration = c.map(Arc::new);
    }

    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_deref()
    }

    /// One sample's risk. `None` while there is no score or no calibration.
    pub fn observe(
        &mut self,
        ts_ms: i64,
        score: Option<(&Score, f64)>,
        min_eta_s: f64,
    ) -> Option<Risk> {
        let (score, threshold) = score?;
        let x = self
            .trajectory
            .push(ts_ms, score.value / threshold, score.anomaly);
        if !self.cfg.enabled {
            return None;
        }
        let c = self.calibration.as_ref()?;
        let h = self.cfg.horizon.as_secs_f64();
        let from_scores = c.probability(&x);
        let from_capacity = ((2.0 * h - min_eta_s) / h).clamp(0.0, 1.0);
        let p = 1.0 - (1.0 - from_scores) * (1.0 - from_capacity);
        // A warning says "an incident within the horizon": it holds for the horizon
        // once raised (a risk dipping and rising again is the same warning), then
        // until the risk falls below 0.8 × the level.
        self.warning_since = match self.warning_since {
            Some(since)
                if ts_ms - since < self.cfg.horizon.as_millis() as i64
                    || p >= CLEAR_SHARE * self.cfg.warning =>
            {
                Some(since)
            }
            _ if p >= self.cfg.warning => Some(ts_ms),
            _ => None,
        };
        Some(Risk {
            probability: p,
            from_scores,
            from_capacity,
            horizon_seconds: h,
            warning: self.warning_since.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debounce_opens_at_k_of_m_and_closes_after_m_normal() {
        let mut d = Debounce::new(3, 5);
        let (t, f) = (true, false);
        let seq = [t, f, t, f, t, f, f, f, f, f, t];
        let got: Vec<(bool, bool)> = seq.iter().map(|a| d.push(*a)).collect();
        assert!(got[..4].iter().all(|g| *g == (false, false)));
        assert_eq!(got[4], (true, true), "3 of the last 5");
        assert!(got[5..9].iter().all(|g| *g == (false, true)), "{got:?}");
        assert_eq!(got[9], (false, false), "5 normal in a row");
        assert_eq!(got[10], (false, false), "1 of 5 does not reopen");
    }

    #[test]
    fn logistic_recovers_a_known_relation() {
        // y = 1 exactly when x0 > 0.5 on a grid: the fit must separate the halves.
        let z: Vec<[f64; FEATURES]> = (0..200)
            .map(|i| [i as f64 / 100.0 - 1.0, 0.0, 0.0, 0.0, 0.0])
            .collect();
        let y: Vec<bool> = z.iter().map(|x| x[0] > 0.5).collect();
        let (w, b) = logistic(&z, &y, 1e-3);
        let p = |x: f64| sigmoid(b + w[0] * x);
        assert!(p(0.9) > 0.9 && p(0.1) < 0.1, "{w:?} {b}");
        assert!(w[1..].iter().all(|v| v.abs() < 1e-6));
    }

    #[test]
    fn solve_small_system() {
        let x = solve([[2.0, 1.0], [1.0, 3.0]], [3.0, 5.0]).expect("regular");
        assert!((x[0] - 0.8).abs() < 1e-12 && (x[1] - 1.4).abs() < 1e-12);
        assert!(solve([[1.0, 2.0], [2.0, 4.0]], [1.0, 2.0]).is_none());
    }

    /// A model of two days of minute rows, and ten minutes of a moderate anomaly after
    /// an hour of normal rows, every `step_ms`: the last trajectory features.
    fn features_after_anomaly(step_ms: i64) -> [f64; FEATURES] {
        let t0 = 1_700_000_000_000i64;
        let mut z = crate::model::tests::Noise::new(5);
        let row = |ts: i64, cpu: f64, mem: f64| Record {
            timestamp_ms: Some(ts),
            values: vec![("cpu".into(), cpu), ("mem".into(), mem)],
        };
        let rows: Vec<Record> = (0..2880)
            .map(|i| {
                row(
                    t0 + i * 60_000,
                    20.0 + 3.0 * z.next(),
                    20.0 + 3.0 * z.next(),
                )
            })
            .collect();
        let spec = crate::model::Spec::default();
        let model = Arc::new(Model::train(&rows, &spec).expect("trains"));
        let mut scorer = Scorer::new(Arc::clone(&model));
        let mut traj = Trajectory::new(Duration::from_secs(1800));
        let mut push = |r: &Record| {
            let s = scorer.score(r);
            let ts = r.timestamp_ms.expect("timed");
            traj.push(ts, s.value / model.threshold(), s.anomaly)
        };
        for r in &rows[2820..] {
            push(r);
        }
        let start = t0 + 2879 * 60_000;
        let mut x = [0.0; FEATURES];
        for k in 1..=(600_000 / step_ms) {
            x = push(&row(start + k * step_ms, 24.0, 20.0));
        }
        x
    }

    #[test]
    fn score_features_agree_at_one_second_and_one_minute() {
        let (s, m) = (features_after_anomaly(1000), features_after_anomaly(60_000));
        // The smoothed score after ten minutes is the same however often it was
        // sampled (per-sample smoothing had the 1 s score at its plateau, about 1.4×
        // higher, within a minute).
        assert!((s[0] - m[0]).abs() <= 1e-6 * m[0], "{s:?} {m:?}");
        assert!(
            m[0] > 1.0 && m[0] < RATIO_CAP,
            "the anomaly crossed the threshold, below the cap: {m:?}"
        );
        assert!((s[2] - m[2]).abs() < 0.15 * m[2], "{s:?} {m:?}");
    }

    #[test]
    fn trajectory_is_in_time_units() {
        // The same minute of data at 1 s and at 1 min steps ends at similar averages.
        let mut a = Trajectory::new(Duration::from_secs(1800));
        let mut b = Trajectory::new(Duration::from_secs(1800));
        let mut xa = [0.0; FEATURES];
        let mut xb = [0.0; FEATURES];
        for s in 0..=600 {
            xa = a.push(s * 1000, if s >= 300 { 2.0 } else { 0.5 }, s >= 300);
        }
        for m in 0..=10 {
            xb = b.push(m * 60_000, if m >= 5 { 2.0 } else { 0.5 }, m >= 5);
        }
        assert!((xa[2] - xb[2]).abs() < 0.15, "{xa:?} {xb:?}");
        assert!((xa[4] - xb[4]).abs() < 0.15, "{xa:?} {xb:?}");
    }
}
