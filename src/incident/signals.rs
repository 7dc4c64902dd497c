//! What the incident engine looks at in one tick: the model's verdict, the capacity
//! forecasts firing, the fault risk, the ping targets' losses, and whether the model
//! is still on probation.

use super::{Cause, ForecastLevel, Label};
use crate::model::{Model, Score};
use crate::sample::Record;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// The model's verdict; `None` while there is no model (nothing is learnt then,
    /// and an open anomaly incident neither grows nor resolves).
    pub anomaly: Option<AnomalySignal>,
    /// The capacity forecasts firing now: every tick, all of them. One that is no
    /// longer listed counts as cleared.
    pub forecasts: Vec<ForecastSignal>,
    /// Fault-risk probability, 0..1, when the forecaster computes one. Never an
    /// incident of its own: it raises an open anomaly's severity (`min_risk` in the
    /// severity rules) and is shown in its report.
    pub risk: Option<f64>,
    /// The ping targets pinged in the last round, with their loss.
    pub ping: Vec<PingSignal>,
    /// The model is young (`model.probation`): incidents opened now get muted tickets.
    pub probation: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnomalySignal {
    /// The smoothed score.
    pub score: f64,
    /// The model's threshold (its 0.99 quantile on the training rows).
    pub threshold: f64,
    /// The sample is anomalous on its own (its raw score above the raw threshold).
    /// Only such samples open an incident or keep one open: the smoothed score
    /// carries a spike for many minutes after the host is normal again.
    pub sample_anomalous: bool,
    /// The sample may open an incident: anomalous on its own *and* the feature the
    /// smoothed score is mostly about is still beyond its floor in it. A two-minute
    /// ping RTT spike drags the smoothed score along for minutes; a sample then
    /// anomalous for another reason (a burst of connections) while the RTT is normal
    /// again is not more of that problem, and does not make the spike persist into a
    /// ticket.
    pub sample_opens: bool,
    /// Top contributing features with value and baseline, largest first.
    pub causes: Vec<Cause>,
}

impl AnomalySignal {
    /// The model's verdict on `record` with its `top` causes (those with at least 5%
    /// of the score), each with its value now and the model's expectation for it.
    ///
    /// Causes are only read from samples that could open or keep an incident (smoothed
    /// and raw score both anomalous): the baselines cost a second pass over the model,
    /// and on a normal tick nobody reads them.
    pub fn from_score(model: &Model, score: &Score, record: &Record, top: usize) -> AnomalySignal {
        let mut signal = AnomalySignal {
            score: score.value,
            threshold: model.threshold(),
            sample_anomalous: score.raw_anomaly,
            sample_opens: sample_opens(score),
            causes: Vec::new(),
        };
        if !signal.ongoing() {
            return signal;
        }
        let names = model.schema();
        let expected = model.expected(record);
        // Metrics with a negligible share are noise, not causes (the first always counts).
        let floor = 0.05 * score.value;
        signal.causes = score
            .contributions
            .iter()
            .take(top)
            .enumerate()
            .filter(|(rank, (_, c))| *rank == 0 || *c >= floor)
            .map(|(_, &(i, contribution))| {
                let feature = names[i].clone();
                let value = record
                    .values
                    .iter()
                    .find(|(n, _)| *n == feature)
                    .map_or(f64::NAN, |(_, v)| *v);
                Cause {
                    feature,
                    value,
                    baseline: expected.get(i).copied().unwrap_or(f64::NAN),
                    contribution,
                }
            })
            .collect();
        signal
    }

    /// The smoothed score over the threshold.
    pub fn ratio(&self) -> f64 {
        ratio(self.score, self.threshold)
    }

    /// The smoothed decision alone.
    pub fn anomalous(&self) -> bool {
        self.score > self.threshold
    }

    /// Smoothed and raw score both anomalous: what keeps an open incident going.
    pub fn ongoing(&self) -> bool {
        self.anomalous() && self.sample_anomalous
    }
}

/// Whether `score`'s sample may open an incident (see [`AnomalySignal::sample_opens`]).
/// Features without a floor are never exactly back to normal, so for them (SMD's
/// `m0`…) this is the raw decision alone.
pub fn sample_opens(score: &Score) -> bool {
    let top = score.contributions.first().map(|_| score.top_cause_raw);
    opens(score.raw_anomaly, top)
}

/// [`sample_opens`] from its parts: whether the raw score is anomalous, and the
/// sample's own term of the top cause (`None`: no feature contributes).
pub fn opens(raw_anomaly: bool, top_cause_raw: Option<f64>) -> bool {
    raw_anomaly && top_cause_raw.is_none_or(|t| t > 0.0)
}

/// `score / threshold`. A threshold of 0 (training rows that never left their floors)
/// makes any score above it infinitely far out.
pub fn ratio(score: f64, threshold: f64) -> f64 {
    if threshold > 0.0 {
        score / threshold
    } else if score > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// One firing capacity forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastSignal {
    /// Mount point for `bytes`/`inodes`; `memory` or `swap` for those kinds.
    pub resource: String,
    /// `bytes`, `inodes`, `memory` or `swap`.
    pub kind: String,
    pub level: ForecastLevel,
    /// Time until the resource runs out.
    pub eta_seconds: f64,
    /// Evidence (e.g. the free space now and its trend), shown in the report.
    pub causes: Vec<Cause>,
}

impl ForecastSignal {
    pub(super) fn key(&self) -> String {
        format!("{}/{}", self.kind, self.resource)
    }
    pub(super) fn label(&self) -> Label {
        match self.kind.as_str() {
            "memory" | "swap" => Label::Memory,
            _ => Label::Storage,
        }
    }
    pub(super) fn what(&self) -> &'static str {
        match self.kind.as_str() {
            "bytes" => "full",
            "inodes" => "out of inodes",
            "memory" => "out of memory",
            "swap" => "out of swap",
            _ => "exhausted",
        }
    }
}

/// One ping target's last round.
#[derive(Debug, Clone, PartialEq)]
pub struct PingSignal {
    pub target: String,
    /// Share of the round's packets lost, 0..1.
    pub loss: f64,
}

impl PingSignal {
    /// The targets in `record` (from its `ping_loss_ratio{target=…}` features).
    pub fn from_record(record: &Record) -> Vec<PingSignal> {
        record
            .values
            .iter()
            .filter(|(n, _)| n.starts_with("ping_loss_ratio{"))
            .filter_map(|(n, v)| {
                let target = crate::sample::label_value(n, "target")?;
                Some(PingSignal {
                    target: target.to_string(),
                    loss: *v,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample anomalous for a burst of connections, while the smoothed score is
    /// still about a ping spike whose RTT is back within its floor, does not count
    /// towards opening; one where the RTT is still out does.
    #[test]
    fn a_sample_opens_only_while_what_the_score_is_about_lasts() {
        let score = |top_cause_raw: f64| Score {
            value: 10.0,
            anomaly: true,
            raw: 10.0,
            raw_anomaly: true,
            top_cause_raw,
            contributions: vec![(0, 9.0), (1, 1.0)],
        };
        assert!(!sample_opens(&score(0.0)));
        assert!(sample_opens(&score(4.0)));
        let quiet = Score {
            raw_anomaly: false,
            ..score(4.0)
        };
        assert!(!sample_opens(&quiet));
    }

    #[test]
    fn ping_targets_come_from_the_loss_features() {
        let r = Record {
            timestamp_ms: Some(0),
            values: vec![
                (
                    "ping_loss_ratio{target=\"gw\",address=\"10.0.0.1\"}".into(),
                    1.0,
                ),
                ("ping_rtt_median_seconds{target=\"gw\"}".into(), 0.001),
                ("ping_loss_ratio{target=\"dns\"}".into(), 0.0),
            ],
        };
        let p = PingSignal::from_record(&r);
        assert_eq!(
            p,
            [
                PingSignal {
                    target: "gw".into(),
                    loss: 1.0
                },
                PingSignal {
                    target: "dns".into(),
                    loss: 0.0
                }
            ]
        );
    }
}
