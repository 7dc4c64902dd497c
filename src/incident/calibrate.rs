//! The false-alarm budget: how many anomaly incidents per period the operator is
//! willing to get from data like the host's own history, and the threshold multiplier
//! that keeps the opening gate within it.
//!
//! When a model is trained, its own training rows are scored and replayed through the
//! real [`Engine`] (gate, persistence, recent level, resolve and reopen rules) with
//! multipliers 1, 1.1, 1.25, … of the threshold; the smallest whose openings fit the
//! budget over the rows' time span is used until the next training. A young model
//! (a day of history) is therefore held to a fraction of an incident: it opens for
//! nothing its own history already did.
//!
//! The training history may hold real incidents as well as noise, so the budget
//! counts both: set it above the number of real problems a month you expect. Counting
//! openings through the engine (rather than raw threshold crossings) is what makes the
//! figure mean "tickets".

use std::time::Duration;

use super::engine::Engine;
use super::signals::{AnomalySignal, Signals};
use super::{Change, IncidentConfig};

/// `N per D`: at most N anomaly incidents per period D.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub incidents: u32,
    pub per: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            incidents: 10,
            per: Duration::from_secs(30 * 86_400),
        }
    }
}

impl Budget {
    /// Parse `10 per 30d` (the count, `per`, a duration).
    pub fn parse(s: &str) -> Result<Budget, String> {
        let (n, d) = s.split_once(" per ").ok_or_else(|| {
            format!("expected `<count> per <duration>` (e.g. `10 per 30d`), got {s:?}")
        })?;
        let incidents: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not a whole number of incidents", n.trim()))?;
        if incidents > 100_000 {
            return Err(format!("{incidents} incidents is more than 100000"));
        }
        let per = crate::config::reader::parse_duration(d.trim())?;
        if per < Duration::from_secs(3600) || per > Duration::from_secs(366 * 86_400) {
            return Err(format!(
                "the period {:?} is not between 1h and 366d",
                d.trim()
            ));
        }
        Ok(Budget { incidents, per })
    }

    /// Incidents allowed over `span_ms`.
    pub fn allowed(&self, span_ms: i64) -> f64 {
        self.incidents as f64 * span_ms.max(0) as f64 / self.per.as_millis() as f64
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} per {}",
            self.incidents,
            crate::text::fmt_duration(self.per)
        )
    }
}

/// One training row as the gate sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub timestamp_ms: i64,
    /// Smoothed score over the threshold.
    pub ratio: f64,
    /// The raw score is above the raw threshold.
    pub sample_anomalous: bool,
    /// ...and about the same label as the smoothed score ([`super::signals::sample_opens`]).
    pub sample_opens: bool,
}

/// The outcome: the multiplier, and what it was chosen from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// Of the model's threshold; the gate's floor until the next training.
    pub multiplier: f64,
    /// Incidents the replay opened at that multiplier, and at 1 (the bare threshold).
    pub openings: usize,
    pub openings_at_threshold: usize,
    /// What the budget allows over the rows' span.
    pub allowed: f64,
    pub span_ms: i64,
    /// The budget it was calibrated for, as written (`10 per 30d`).
    pub budget: String,
}

/// `opening.json`: the calibration, and the model it belongs to.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    model_created_ms: i64,
    calibration: Calibration,
}

impl Calibration {
    /// Write it beside the model it was calibrated for ([`crate::store::write_atomic`]).
    pub fn save(&self, path: &std::path::Path, model_created_ms: i64) -> std::io::Result<()> {
        let saved = Saved {
            model_created_ms,
            calibration: self.clone(),
        };
        let json = serde_json::to_vec_pretty(&saved).map_err(std::io::Error::other)?;
        // Never through a link: a new temporary file, then a rename.
        crate::store::write_atomic(path, &json)
    }

    /// The saved calibration, if it is the model's and for `budget`; otherwise why not.
    pub fn load(
        path: &std::path::Path,
        model_created_ms: i64,
        budget: &Budget,
    ) -> Result<Calibration, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let saved: Saved = serde_json::from_slice(&text)
            .map_err(|e| format!("{}: not a calibration: {e}", path.display()))?;
        if saved.model_created_ms != model_created_ms {
            return Err(format!("{}: calibrated for another model", path.display()));
        }
        if saved.calibration.budget != budget.to_string() {
            return Err(format!(
                "{}: calibrated for a budget of {}, the config says {budget}",
                path.display(),
                saved.calibration.budget
            ));
        }
        if !(saved.calibration.multiplier.is_finite() && saved.calibration.multiplier >= 1.0) {
            return Err(format!("{}: multiplier out of range", path.display()));
        }
        Ok(saved.calibration)
    }
}

/// The multipliers tried, in order: the first within the budget is taken.
const LADDER: [f64; 17] = [
    1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0,
];

/// How many new anomaly incidents (not reopens) `config`'s engine opens over `rows`
/// with the gate's floor at `multiplier`.
pub fn openings(config: &IncidentConfig, rows: &[Row], multiplier: f64) -> usize {
    let mut e = Engine::new(config.clone(), "calibration".into(), 1);
    e.new_model(multiplier);
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        let s = Signals {
            anomaly: Some(AnomalySignal {
                score: r.ratio,
                threshold: 1.0,
                sample_anomalous: r.sample_anomalous,
                sample_opens: r.sample_opens,
                causes: Vec::new(),
            }),
            ..Signals::default()
        };
        for c in e.tick(r.timestamp_ms, &s) {
            if let Change::Opened(i) = c {
                seen.insert(i.id);
            }
        }
    }
    seen.len()
}

/// Choose the multiplier for `rows` (the model's training rows, in time order).
pub fn calibrate(config: &IncidentConfig, rows: &[Row]) -> Calibration {
    let span_ms = match (rows.first(), rows.last()) {
        (Some(a), Some(b)) => b.timestamp_ms - a.timestamp_ms,
        _ => 0,
    };
    let budget = config.false_alarm_budget;
    let allowed = budget.allowed(span_ms);
    let at_threshold = openings(config, rows, 1.0);
    let mut chosen = (LADDER[LADDER.len() - 1], 0);
    for (i, &m) in LADDER.iter().enumerate() {
        let n = if i == 0 {
            at_threshold
        } else {
            openings(config, rows, m)
        };
        if n as f64 <= allowed {
            chosen = (m, n);
            break;
        }
        chosen.1 = n;
    }
    Calibration {
        multiplier: chosen.0,
        openings: chosen.1,
        openings_at_threshold: at_threshold,
        allowed,
        span_ms,
        budget: budget.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn budgets_parse_and_reject_nonsense() {
        let b = Budget::parse("10 per 30d").expect("valid");
        assert_eq!(b.incidents, 10);
        assert_eq!(b.per, Duration::from_secs(30 * 86_400));
        assert_eq!(b.to_string(), "10 per 30d");
        assert!((b.allowed(3 * 86_400_000) - 1.0).abs() < 1e-9);
        for bad in [
            "10",
            "ten per 30d",
            "10 per soon",
            "10 per 1m",
            "-1 per 30d",
        ] {
            assert!(Budget::parse(bad).is_err(), "{bad}");
        }
    }

    /// A day of minute rows with `bursts` anomalies of `height` × the threshold, each
    /// 10 minutes long, spread evenly.
    fn day(bursts: usize, height: f64) -> Vec<Row> {
        (0..1440)
            .map(|i| {
                let burst = bursts > 0 && ((i + 180) % (1440 / bursts)) < 10;
                Row {
                    timestamp_ms: i as i64 * MIN,
                    ratio: if burst { height } else { 0.2 },
                    sample_anomalous: burst,
                    sample_opens: burst,
                }
            })
            .collect()
    }

    #[test]
    fn the_multiplier_rises_until_the_budget_holds() {
        // The budget alone (the recent-level rule would also hold back repeats).
        let config = IncidentConfig {
            false_alarm_budget: Budget::parse("30 per 30d").expect("valid"),
            opening: crate::incident::OpeningRule {
                recent_factor: 0.0,
                ..Default::default()
            },
            ..IncidentConfig::default()
        };
        // A quiet day: the threshold itself is within budget.
        let c = calibrate(&config, &day(0, 0.0));
        assert_eq!((c.multiplier, c.openings), (1.0, 0));
        // Four bursts at 3x the threshold in a day, one allowed: above them.
        let c = calibrate(&config, &day(4, 3.0));
        assert_eq!(c.openings_at_threshold, 4);
        assert_eq!(c.multiplier, 3.0, "{c:?}");
        assert_eq!(c.openings, 0);
        assert!((c.allowed - 1.0).abs() < 0.01);
    }
}
