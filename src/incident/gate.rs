//! When an anomaly is worth an incident: the opening gate.
//!
//! A per-sample q99 threshold is crossed about 860 times a day at one sample a second;
//! most of those crossings are a metric's own noise (a ping RTT spike, one slow disk
//! write) that the smoothed score carries for minutes after it has gone. On a recorded
//! month of a synthetic host and on the 14 SMD servers, three conditions together took
//! the false tickets from 1–2 a host-day to about one a fortnight
//! (`benches/incidents.md` has the measurements):
//!
//! 1. **Persistence** ([`Persistence`]): samples must be anomalous *on their own* (the
//!    raw, unsmoothed score above its learnt threshold) for `open_for` of the last
//!    `open_window`, counted in time, so that 1 s sampling and minute rows agree. A
//!    spike that the average drags along for ten minutes is one sample. A sample
//!    counts only while the feature the smoothed score is mostly about is still
//!    beyond its floor in it ([`super::signals::sample_opens`]): otherwise a sample
//!    anomalous for another reason would carry that old spike into a ticket.
//! 2. **Standing out from the recent past**: the smoothed score must exceed
//!    `recent_factor` × the 99th percentile of its own last `recent_window` (one value
//!    a minute, minutes inside an open incident left out). A host whose scores have
//!    sat high for hours (a drift the next retraining will absorb, a new normal after
//!    a deploy) does not page for more of the same; a quiet host pages at the model's
//!    threshold. This is the streaming part of SPOT/DSPOT (Siffer et al., KDD 2017):
//!    the level follows the score's recent tail, and alarms do not feed it (so an
//!    incident does not make the host deaf to the next one).
//! 3. **The false-alarm budget**: a multiplier of the threshold, calibrated when the
//!    model is trained so that this gate, replayed over the model's own training rows,
//!    opens at most `false_alarm_budget` incidents per period (see `calibrate.rs`).
//!
//! The gate is pure: the tick's timestamp is its clock.

use std::collections::VecDeque;
use std::time::Duration;

const MINUTE_MS: i64 = 60_000;

/// A sample counts for the time since the one before it, at most this long (a gap in
/// sampling is not evidence either way).
const MAX_SAMPLE_MS: i64 = MINUTE_MS;

/// The opening conditions, from `incidents:`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpeningRule {
    /// How long the condition must have held...
    pub open_for: Duration,
    /// ...within this window.
    pub open_window: Duration,
    /// The score must exceed this many times its own recent 99th percentile; 0: off.
    pub recent_factor: f64,
    /// How far back "recent" goes.
    pub recent_window: Duration,
}

impl Default for OpeningRule {
    fn default() -> Self {
        OpeningRule {
            open_for: Duration::from_secs(180),
            open_window: Duration::from_secs(300),
            recent_factor: 1.5,
            recent_window: Duration::from_secs(6 * 3600),
        }
    }
}

/// How long a condition held within a sliding window of time.
#[derive(Debug, Clone, Default)]
pub struct Persistence {
    /// (timestamp, how long the sample counts for, whether the condition held).
    samples: VecDeque<(i64, i64, bool)>,
    held_ms: i64,
    last_ms: Option<i64>,
}

impl Persistence {
    /// Add a sample; returns how long, within the last `window`, the condition held.
    pub fn observe(&mut self, now_ms: i64, held: bool, window: Duration) -> i64 {
        if self.last_ms.is_some_and(|last| now_ms < last) {
            // The clock was stepped back: the samples kept stand at times still to
            // come, so none would leave the window until the clock caught up with
            // them, and every one would count meanwhile. Start again.
            self.clear();
        }
        let weight = match self.last_ms {
            Some(last) if now_ms > last => (now_ms - last).min(MAX_SAMPLE_MS),
            // The first sample, or one at the time of the last: how long it stood
            // for is unknown.
            _ => 0,
        };
        self.last_ms = Some(now_ms);
        self.samples.push_back((now_ms, weight, held));
        if held {
            self.held_ms += weight;
        }
        let start = now_ms - window.as_millis() as i64;
        while let Some(&(t, w, h)) = self.samples.front() {
            if t > start {
                break;
            }
            if h {
                self.held_ms -= w;
            }
            self.samples.pop_front();
        }
        self.held_ms
    }

    pub fn clear(&mut self) {
        *self = Persistence::default();
    }
}

/// The anomaly slot's opening gate: persistence, the recent level and the budget's
/// multiplier.
#[derive(Debug, Clone)]
pub struct Gate {
    rule: OpeningRule,
    /// From the false-alarm budget (≥ 1), for the model in use.
    multiplier: f64,
    persistence: Persistence,
    /// The score/threshold ratio at the first sample of each minute, newest last.
    minutes: VecDeque<(i64, f64)>,
    /// The same ratios kept sorted, so the 99th percentile is read off at each minute
    /// instead of sorting the window again (calibration replays the gate over every
    /// training row, 17 times).
    sorted: SortedWindow,
    /// `recent_factor` × the 99th percentile of `minutes`, as of the minute's start.
    recent_level: f64,
    last_minute: Option<i64>,
}

/// What the gate made of one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The level (in units of the model's threshold) the score had to exceed.
    pub level: f64,
    /// This sample met every condition but persistence.
    pub active: bool,
    /// Persistence too: an incident should open.
    pub open: bool,
}

impl Gate {
    pub fn new(rule: OpeningRule) -> Gate {
        Gate {
            rule,
            multiplier: 1.0,
            persistence: Persistence::default(),
            minutes: VecDeque::new(),
            sorted: SortedWindow::default(),
            recent_level: 0.0,
            last_minute: None,
        }
    }

    pub fn rule(&self) -> &OpeningRule {
        &self.rule
    }

    pub fn set_rule(&mut self, rule: OpeningRule) {
        self.rule = rule;
    }

    /// A new model: its budget multiplier, and nothing remembered of the old model's
    /// scores (their scale was another model's).
    pub fn reset(&mut self, multiplier: f64) {
        self.multiplier = if multiplier.is_finite() && multiplier >= 1.0 {
            multiplier
        } else {
            1.0
        };
        self.persistence.clear();
        self.minutes.clear();
        self.sorted.clear();
        self.recent_level = 0.0;
        self.last_minute = None;
    }

    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The level a score has to exceed now, in units of the threshold.
    pub fn level(&self) -> f64 {
        self.multiplier.max(self.recent_level)
    }

    /// One sample: its smoothed score over the threshold (`ratio`) and whether it is
    /// anomalous on its own. `remember`: whether it may join the recent history (not
    /// while an incident is open).
    pub fn observe(
        &mut self,
        now_ms: i64,
        ratio: f64,
        sample_anomalous: bool,
        remember: bool,
    ) -> Verdict {
        self.remember_minute(now_ms, ratio, remember);
        let level = self.level();
        let active = sample_anomalous && ratio > level;
        let held = self
            .persistence
            .observe(now_ms, active, self.rule.open_window);
        Verdict {
            level,
            active,
            open: active && held >= self.rule.open_for.as_millis() as i64,
        }
    }

    /// The first sample of each minute joins the recent history; the level is taken
    /// from the minutes before it.
    fn remember_minute(&mut self, now_ms: i64, ratio: f64, remember: bool) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if self.last_minute.is_some_and(|m| m >= minute) {
            return;
        }
        self.last_minute = Some(minute);
        let oldest = minute - (self.rule.recent_window.as_millis() as i64 / MINUTE_MS);
        while let Some(&(m, r)) = self.minutes.front() {
            if m >= oldest {
                break;
            }
            self.minutes.pop_front();
            self.sorted.remove(r);
        }
        self.recent_level = if self.rule.recent_factor > 0.0 {
            let q = self.sorted.quantile(0.99);
            if q.is_finite() {
                self.rule.recent_factor * q
            } else {
                0.0
            }
        } else {
            0.0
        };
        if remember && ratio.is_finite() {
            self.minutes.push_back((minute, ratio));
            self.sorted.insert(ratio);
        }
    }
}

/// Finite values in ascending order ([`f64::total_cmp`]): insert and remove by binary
/// search, and the quantile [`crate::model::threshold::quantile`] would compute over
/// them, to the bit (the same order, the same interpolation).
#[derive(Debug, Clone, Default)]
struct SortedWindow {
    values: Vec<f64>,
}

impl SortedWindow {
    fn insert(&mut self, v: f64) {
        let at = self.values.partition_point(|x| x.total_cmp(&v).is_lt());
        self.values.insert(at, v);
    }

    /// Remove one copy of `v` (a value inserted before).
    fn remove(&mut self, v: f64) {
        let at = self.values.partition_point(|x| x.total_cmp(&v).is_lt());
        if self.values.get(at).is_some_and(|x| x.total_cmp(&v).is_eq()) {
            self.values.remove(at);
        }
    }

    fn clear(&mut self) {
        self.values.clear();
    }

    fn quantile(&self, q: f64) -> f64 {
        let v = &self.values;
        if v.is_empty() {
            return f64::INFINITY;
        }
        let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(v.len() - 1);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;
    const MIN: i64 = 60 * S;

    #[test]
    fn minutes_of_an_open_incident_do_not_raise_the_level() {
        let mut g = Gate::new(rule(2.0));
        for i in 0..60 {
            g.observe(i * MIN, 0.5, false, true);
        }
        // An hour of incident at 10x: not remembered.
        for i in 60..120 {
            g.observe(i * MIN, 10.0, true, false);
        }
        g.observe(120 * MIN, 0.5, false, true);
        assert!((g.level() - 1.0).abs() < 1e-9, "{}", g.level());
    }

    fn rule(recent_factor: f64) -> OpeningRule {
        OpeningRule {
            recent_factor,
            ..OpeningRule::default()
        }
    }

    #[test]
    fn persistence_counts_time_not_samples() {
        let w = Duration::from_secs(300);
        let mut p = Persistence::default();
        // Minute rows: the first counts for nothing, each next one for a minute.
        assert_eq!(p.observe(0, true, w), 0);
        assert_eq!(p.observe(MIN, true, w), MIN);
        assert_eq!(p.observe(2 * MIN, false, w), MIN);
        assert_eq!(p.observe(3 * MIN, true, w), 2 * MIN);
        // A sample after an hour's gap counts for a minute at most; the old ones left
        // the window.
        assert_eq!(p.observe(63 * MIN, true, w), MIN);
        // One-second samples: three minutes of them are three minutes.
        let mut p = Persistence::default();
        let held = (0..=180).map(|i| p.observe(i * S, true, w)).last();
        assert_eq!(held, Some(180 * S));
    }

    #[test]
    fn opens_after_three_anomalous_minutes_of_five_at_any_rate() {
        for step in [S, 10 * S, MIN] {
            let mut g = Gate::new(rule(0.0));
            let mut t = 0;
            let mut opened_at = None;
            while t <= 10 * MIN {
                let v = g.observe(t, 5.0, true, true);
                if v.open && opened_at.is_none() {
                    opened_at = Some(t);
                }
                t += step;
            }
            // Open once three minutes of anomalous samples have been seen.
            assert_eq!(opened_at, Some(3 * MIN), "step {step}");
        }
    }

    #[test]
    fn a_spike_the_average_carries_does_not_open() {
        // The smoothed score stays high for ten minutes after one anomalous sample.
        let mut g = Gate::new(rule(0.0));
        let mut opened = false;
        for i in 0..60 {
            let ratio = if i >= 10 { 3.0 } else { 0.2 };
            opened |= g.observe(i * MIN, ratio, i == 10, true).open;
        }
        assert!(!opened);
    }

    #[test]
    fn the_level_follows_the_recent_scores() {
        let mut g = Gate::new(rule(2.0));
        // Six hours of scores sitting at 1.5x the threshold (a drift).
        for i in 0..360 {
            g.observe(i * MIN, 1.5, true, true);
        }
        assert!((g.level() - 3.0).abs() < 1e-9, "{}", g.level());
        // More of the same does not open; something twice as far out does.
        let mut t = 360 * MIN;
        let mut opened = false;
        for _ in 0..10 {
            opened |= g.observe(t, 2.0, true, true).open;
            t += MIN;
        }
        assert!(!opened);
        for _ in 0..5 {
            opened |= g.observe(t, 8.0, true, true).open;
            t += MIN;
        }
        assert!(opened);
    }

    #[test]
    fn the_sorted_window_gives_the_sorting_quantile() {
        // Ties, minutes left out and minutes leaving the window: the kept order gives
        // the quantile a fresh sort of the remembered minutes gives, to the bit.
        let mut g = Gate::new(OpeningRule {
            recent_window: Duration::from_secs(50 * 60),
            ..rule(1.5)
        });
        let mut x: u64 = 7;
        for i in 0..400 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ratio = ((x >> 40) % 23) as f64 / 7.0;
            g.observe(i * MIN, ratio, false, i % 9 != 0);
            let mut v: Vec<f64> = g.minutes.iter().map(|(_, r)| *r).collect();
            let want = crate::model::threshold::quantile(&mut v, 0.99);
            assert_eq!(g.sorted.values, v, "minute {i}");
            assert_eq!(
                g.sorted.quantile(0.99).to_bits(),
                want.to_bits(),
                "minute {i}"
            );
        }
    }

    #[test]
    fn a_quiet_host_pages_at_the_budget_level() {
        let mut g = Gate::new(rule(2.0));
        g.reset(1.5);
        for i in 0..120 {
            g.observe(i * MIN, 0.1, false, true);
        }
        assert_eq!(g.level(), 1.5);
        let v = g.observe(120 * MIN, 1.4, true, true);
        assert!(!v.active);
        let v = g.observe(121 * MIN, 1.6, true, true);
        assert!(v.active && !v.open);
        // Nonsense multipliers fall back to the threshold itself.
        g.reset(f64::NAN);
        assert_eq!(g.multiplier(), 1.0);
        g.reset(0.5);
        assert_eq!(g.multiplier(), 1.0);
    }
}
