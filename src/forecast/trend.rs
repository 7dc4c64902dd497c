//! A bounded series of time buckets and a robust trend fitted on it.
//!
//! Samples are averaged into `window / buckets` wide time buckets, so a 6 h window at
//! 1 s costs 240 small structs however fast the daemon samples. The fit runs when a
//! bucket closes, on at most `buckets` points:
//!
//! * **slope**: Theil–Sen, the median of all pairwise slopes. Half the points can be
//!   outliers (a burst written and deleted) before the slope moves.
//! * **consistency**: Mann–Kendall τ over the same pairs: the share of pairs going
//!   down minus the share going up. A steady fill is −1; a sawtooth or a burst is
//!   near 0; a single lasting step is at most −0.5 (only pairs across the step
//!   count), so `min_consistency` above 0.5 refuses one-off jumps.
//! * **noise**: the robust spread (1.4826 × MAD) of the residuals around the line;
//!   the decline over the window must stand out of it.

use std::collections::VecDeque;

/// One time bucket: running sums of the samples that fell in it.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    index: i64,
    /// Sum of (ts - bucket start) in ms, to average the time.
    offset_sum: f64,
    value_sum: f64,
    n: u32,
}

/// The recent past of one resource, bucketed.
#[derive(Debug, Clone)]
pub struct Buckets {
    width_ms: i64,
    keep: usize,
    list: VecDeque<Bucket>,
}

impl Buckets {
    /// `window_ms` of history in `count` buckets (each at least 1 ms wide).
    pub fn new(window_ms: i64, count: usize) -> Buckets {
        let count = count.max(2);
        Buckets {
            width_ms: (window_ms / count as i64).max(1),
            keep: count,
            list: VecDeque::with_capacity(count + 1),
        }
    }

    /// Whether a sample at `ts_ms` starts the series again ([`Buckets::push`]): it is
    /// more than a whole window older than the open bucket (a clock stepped back).
    pub fn restarts_at(&self, ts_ms: i64) -> bool {
        let index = ts_ms.div_euclid(self.width_ms);
        self.list
            .back()
            .is_some_and(|b| b.index - index > self.keep as i64)
    }

    /// Add a sample; true when it opened a new bucket (the previous one closed).
    /// A sample older than the open bucket (clock stepped back) is dropped, unless it
    /// is more than a whole window older: then the series starts again.
    pub fn push(&mut self, ts_ms: i64, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        let index = ts_ms.div_euclid(self.width_ms);
        let offset = (ts_ms - index * self.width_ms) as f64;
        match self.list.back_mut() {
            Some(b) if b.index == index => {
                b.offset_sum += offset;
                b.value_sum += value;
                b.n += 1;
                return false;
            }
            Some(b) if b.index > index => {
                if !self.restarts_at(ts_ms) {
                    return false;
                }
                self.list.clear();
            }
            _ => {}
        }
        let closed = !self.list.is_empty();
        self.list.push_back(Bucket {
            index,
            offset_sum: offset,
            value_sum: value,
            n: 1,
        });
        // Drop buckets that fell out of the window (gaps make some indices empty).
        while let Some(f) = self.list.front() {
            if index - f.index >= self.keep as i64 {
                self.list.pop_front();
            } else {
                break;
            }
        }
        closed
    }

    /// Closed buckets as (time in seconds relative to `origin_ms`, mean value).
    pub fn closed_points(&self, origin_ms: i64, out: &mut Vec<(f64, f64)>) {
        out.clear();
        let n = self.list.len().saturating_sub(1);
        for b in self.list.iter().take(n) {
            let t = (b.index * self.width_ms - origin_ms) as f64 + b.offset_sum / f64::from(b.n);
            out.push((t / 1000.0, b.value_sum / f64::from(b.n)));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// A fitted trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Change per second (Theil–Sen).
    pub slope: f64,
    /// Mann–Kendall τ in [-1, 1] (negative: declining).
    pub tau: f64,
    /// Time covered by the points, seconds.
    pub span: f64,
    pub points: usize,
    /// Robust spread of the residuals around the line.
    pub noise: f64,
}

/// What a fit must show before its decline is believed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Criteria {
    pub min_points: usize,
    pub min_span_seconds: f64,
    pub min_consistency: f64,
    /// The decline over the span must exceed this many noise spreads.
    pub min_signal_to_noise: f64,
}

impl Fit {
    /// Whether this is a consistent decline (not a burst, a sawtooth or noise).
    pub fn confident_decline(&self, c: &Criteria) -> bool {
        self.points >= c.min_points
            && self.span >= c.min_span_seconds
            && self.slope < 0.0
            && -self.tau >= c.min_consistency
            && -self.slope * self.span > c.min_signal_to_noise * self.noise
    }
}

/// Theil–Sen slope, Mann–Kendall τ and residual noise of `points` (time ascending).
/// `scratch` is reused between calls. `None` with fewer than 3 points.
pub fn fit(points: &[(f64, f64)], scratch: &mut Vec<f64>) -> Option<Fit> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    scratch.clear();
    let mut s: i64 = 0;
    for (i, &(ti, yi)) in points.iter().enumerate() {
        for &(tj, yj) in &points[i + 1..] {
            let dy = yj - yi;
            s += match dy.partial_cmp(&0.0) {
                Some(std::cmp::Ordering::Greater) => 1,
                Some(std::cmp::Ordering::Less) => -1,
                _ => 0,
            };
            let dt = tj - ti;
            if dt > 0.0 {
                scratch.push(dy / dt);
            }
        }
    }
    let pairs = (n * (n - 1) / 2) as f64;
    let slope = median(scratch)?;
    // Residuals around the line through the median intercept.
    scratch.clear();
    scratch.extend(points.iter().map(|&(t, y)| y - slope * t));
    let intercept = median(scratch)?;
    scratch.clear();
    scratch.extend(
        points
            .iter()
            .map(|&(t, y)| (y - slope * t - intercept).abs()),
    );
    let mad = median(scratch)?;
    Some(Fit {
        slope,
        tau: s as f64 / pairs,
        span: points[n - 1].0 - points[0].0,
        points: n,
        noise: 1.4826 * mad,
    })
}

/// Median (average of the middle two for an even count); reorders `v`.
pub fn median(v: &mut [f64]) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let (_, &mut hi, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(hi);
    }
    let lo = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo + hi) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Criteria = Criteria {
        min_points: 8,
        min_span_seconds: 60.0,
        min_consistency: 0.6,
        min_signal_to_noise: 3.0,
    };

    /// Deterministic noise in [-1, 1) (a small LCG; no test-time randomness).
    fn noise(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn bucketed(series: impl Iterator<Item = (i64, f64)>) -> Vec<(f64, f64)> {
        let mut b = Buckets::new(600_000, 60);
        for (t, v) in series {
            b.push(t, v);
        }
        let mut out = Vec::new();
        b.closed_points(0, &mut out);
        out
    }

    fn fitted(p: &[(f64, f64)]) -> Fit {
        fit(p, &mut Vec::new()).expect("enough points")
    }

    #[test]
    fn linear_decline_is_exact_and_confident() {
        // 1000 units, falling 2 per second, sampled every second for 10 minutes.
        let p = bucketed((0..600).map(|s| (s * 1000, 1000.0 - 2.0 * s as f64)));
        let f = fitted(&p);
        assert!((f.slope + 2.0).abs() < 1e-9, "{f:?}");
        assert!((f.tau + 1.0).abs() < 1e-12);
        assert!(f.confident_decline(&C));
    }

    #[test]
    fn noisy_decline_is_close_and_confident() {
        let mut seed = 7;
        let p = bucketed(
            (0..600).map(|s| (s * 1000, 5000.0 - 2.0 * s as f64 + 100.0 * noise(&mut seed))),
        );
        let f = fitted(&p);
        assert!((f.slope + 2.0).abs() < 0.2, "{f:?}");
        assert!(f.confident_decline(&C), "{f:?}");
    }

    #[test]
    fn burst_then_delete_is_not_a_trend() {
        // Constant, a 10-second dip (a big file written and deleted), constant again.
        let p = bucketed((0..600).map(|s| {
            let v = if (300..310).contains(&s) {
                100.0
            } else {
                1000.0
            };
            (s * 1000, v)
        }));
        let f = fitted(&p);
        assert_eq!(f.slope, 0.0);
        assert!(!f.confident_decline(&C), "{f:?}");
    }

    #[test]
    fn sawtooth_is_not_a_trend() {
        // A cache filled over 2 minutes and emptied, five times.
        let p = bucketed((0..600).map(|s| (s * 1000, 1000.0 - 5.0 * (s % 120) as f64)));
        let f = fitted(&p);
        assert!(!f.confident_decline(&C), "{f:?}");
    }

    #[test]
    fn one_lasting_step_is_not_a_trend() {
        let p = bucketed((0..600).map(|s| (s * 1000, if s < 300 { 1000.0 } else { 500.0 })));
        let f = fitted(&p);
        assert!(f.tau >= -0.55, "{f:?}");
        assert!(!f.confident_decline(&C), "{f:?}");
    }

    #[test]
    fn constant_and_rising_are_not_declines() {
        let f = fitted(&bucketed((0..600).map(|s| (s * 1000, 42.0))));
        assert_eq!(f.slope, 0.0);
        assert!(!f.confident_decline(&C));
        let f = fitted(&bucketed((0..600).map(|s| (s * 1000, s as f64))));
        assert!(f.slope > 0.0 && !f.confident_decline(&C));
    }

    #[test]
    fn gaps_and_missing_values_keep_the_slope() {
        // Samples missing for two minutes and a few NaNs: same line.
        let p = bucketed((0..600).filter(|s| !(200..320).contains(s)).map(|s| {
            let v = if s % 97 == 0 {
                f64::NAN
            } else {
                1000.0 - s as f64
            };
            (s * 1000, v)
        }));
        let f = fitted(&p);
        assert!((f.slope + 1.0).abs() < 1e-9, "{f:?}");
        assert!(f.confident_decline(&C));
    }

    #[test]
    fn too_short_a_span_is_not_confident() {
        let f = fitted(&bucketed((0..50).map(|s| (s * 1000, 1000.0 - s as f64))));
        assert!(f.span < 60.0 && !f.confident_decline(&C), "{f:?}");
    }

    #[test]
    fn window_is_bounded_and_old_buckets_drop() {
        let mut b = Buckets::new(60_000, 10);
        for s in 0..3600 {
            b.push(s * 1000, s as f64);
        }
        let mut out = Vec::new();
        b.closed_points(0, &mut out);
        assert!(out.len() <= 10);
        assert!(out[0].0 >= 3600.0 - 61.0, "{out:?}");
        // A clock step back by more than the window starts afresh.
        b.push(0, 1.0);
        b.closed_points(0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
