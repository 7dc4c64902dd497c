//! Severity P0–P4 from configurable rules: the first rule whose conditions all hold
//! wins; no rule matching gives P4.

use serde_yaml::Value;

use super::types::ForecastLevel;
use super::{Class, Label, Severity};
use crate::config::reader::show;
use crate::config::reader::Reader;

/// Conditions of one rule; unset ones are not checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conditions {
    pub class: Option<Class>,
    pub label: Option<Label>,
    /// The forecast behind the incident is at this level.
    pub forecast_severity: Option<ForecastLevel>,
    /// Every ping target lost every packet of its last round (or, with `false`, not).
    pub ping_loss_all: Option<bool>,
    /// The anomaly score is at least this many times the threshold.
    pub min_score_ratio: Option<f64>,
    /// The fault risk (the probability that an incident opens within the risk
    /// horizon) is at least this.
    pub min_risk: Option<f64>,
    /// An anomaly incident is open on the host at the same time (or, with `false`,
    /// none is); an anomaly incident itself always has one.
    pub with_anomaly: Option<bool>,
    /// The forecast behind the incident says the resource runs out within this many
    /// seconds (a bound tighter than the critical horizon, for P0).
    pub max_eta_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeverityRule {
    pub when: Conditions,
    pub severity: Severity,
}

/// What the rules look at for one incident at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub class: Class,
    pub label: Label,
    pub forecast: Option<ForecastLevel>,
    pub ping_loss_all: bool,
    /// score / threshold, for anomalies.
    pub score_ratio: Option<f64>,
    /// The fault risk now, when it is computed.
    pub risk: Option<f64>,
    /// An anomaly incident is open (this one, or the host's).
    pub anomaly_open: bool,
    /// Seconds to exhaustion, for forecasts.
    pub eta_seconds: Option<f64>,
}

impl Conditions {
    pub fn holds(&self, f: &Facts) -> bool {
        self.class.is_none_or(|c| c == f.class)
            && self.label.is_none_or(|l| l == f.label)
            && self.forecast_severity.is_none_or(|s| Some(s) == f.forecast)
            && self.ping_loss_all.is_none_or(|p| p == f.ping_loss_all)
            && self
                .min_score_ratio
                .is_none_or(|m| f.score_ratio.is_some_and(|r| r >= m))
            && self.min_risk.is_none_or(|m| f.risk.is_some_and(|r| r >= m))
            && self.with_anomaly.is_none_or(|a| a == f.anomaly_open)
            && self
                .max_eta_seconds
                .is_none_or(|m| f.eta_seconds.is_some_and(|e| e <= m))
    }
}

/// The severity of the first matching rule, P4 if none.
pub fn evaluate(rules: &[SeverityRule], facts: &Facts) -> Severity {
    rules
        .iter()
        .find(|r| r.when.holds(facts))
        .map_or(Severity::P4, |r| r.severity)
}

/// Every ping target that used to answer lost while the host is anomalous (cut off,
/// and something is wrong on it): P0; a resource running out within the critical
/// horizon, or every ping target that used to answer lost: P1; a warning forecast, one lost target, or an anomaly with a
/// fault risk of 80 % or more: P2; an anomaly: P3. Each condition is about the
/// incident's own evidence (a lost target does not make a CPU anomaly urgent).
pub fn default_rules() -> Vec<SeverityRule> {
    let rule = |when, severity| SeverityRule { when, severity };
    vec![
        rule(
            Conditions {
                class: Some(Class::Ping),
                ping_loss_all: Some(true),
                with_anomaly: Some(true),
                ..Default::default()
            },
            Severity::P0,
        ),
        rule(
            Conditions {
                forecast_severity: Some(ForecastLevel::Critical),
                ..Default::default()
            },
            Severity::P1,
        ),
        rule(
            Conditions {
                class: Some(Class::Ping),
                ping_loss_all: Some(true),
                ..Default::default()
            },
            Severity::P1,
        ),
        rule(
            Conditions {
                forecast_severity: Some(ForecastLevel::Warning),
                ..Default::default()
            },
            Severity::P2,
        ),
        rule(
            Conditions {
                class: Some(Class::Ping),
                ..Default::default()
            },
            Severity::P2,
        ),
        rule(
            Conditions {
                class: Some(Class::Anomaly),
                min_risk: Some(0.8),
                ..Default::default()
            },
            Severity::P2,
        ),
        rule(
            Conditions {
                class: Some(Class::Anomaly),
                ..Default::default()
            },
            Severity::P3,
        ),
    ]
}

pub(crate) fn parse_rule(r: &mut Reader, v: &Value, path: &str) -> Option<SeverityRule> {
    let s = r.section(Some(v), path, &["when", "severity"]);
    let before = r.errors.len();
    let w = r.section(
        s.get("when"),
        &s.path("when"),
        &[
            "class",
            "label",
            "forecast_severity",
            "ping_loss_all",
            "min_score_ratio",
            "min_risk",
            "with_anomaly",
            "max_eta",
        ],
    );
    let named = |r: &mut Reader, key: &str, allowed: &[&str]| -> Option<String> {
        w.get(key)?;
        let v = w.one_of(r, key, allowed, "");
        (!v.is_empty()).then_some(v)
    };
    let labels: Vec<&str> = Label::ALL.iter().map(|l| l.as_str()).collect();
    let when = Conditions {
        class: named(r, "class", &["anomaly", "forecast", "ping"]).and_then(|c| Class::parse(&c)),
        label: named(r, "label", &labels).and_then(|l| Label::parse(&l)),
        forecast_severity: named(r, "forecast_severity", &["warning", "critical"]).map(|s| match s
            .as_str()
        {
            "critical" => ForecastLevel::Critical,
            _ => ForecastLevel::Warning,
        }),
        ping_loss_all: w
            .get("ping_loss_all")
            .map(|_| w.bool(r, "ping_loss_all", false)),
        min_score_ratio: w
            .get("min_score_ratio")
            .map(|_| w.float(r, "min_score_ratio", 1.0, 0.0, 1e6)),
        min_risk: w
            .get("min_risk")
            .map(|_| w.float(r, "min_risk", 0.8, 0.0, 1.0)),
        with_anomaly: w
            .get("with_anomaly")
            .map(|_| w.bool(r, "with_anomaly", false)),
        max_eta_seconds: w.get("max_eta").map(|_| {
            w.duration(
                r,
                "max_eta",
                std::time::Duration::from_secs(1800),
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(365 * 86_400),
            )
            .as_secs_f64()
        }),
    };
    let severity = match s.get("severity") {
        Some(Value::String(x)) if Severity::parse(x).is_some() => Severity::parse(x),
        Some(other) => {
            r.error(
                &s.path("severity"),
                format!("expected one of P0, P1, P2, P3, P4, got {}", show(other)),
            );
            None
        }
        None => {
            r.error(&s.path("severity"), "missing (P0, P1, P2, P3 or P4)");
            None
        }
    };
    match severity {
        Some(severity) if r.errors.len() == before => Some(SeverityRule { when, severity }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(class: Class) -> Facts {
        Facts {
            class,
            label: Label::Cpu,
            forecast: None,
            ping_loss_all: false,
            score_ratio: Some(1.5),
            risk: None,
            anomaly_open: false,
            eta_seconds: None,
        }
    }

    #[test]
    fn default_rules_follow_the_documented_order() {
        let rules = default_rules();
        assert_eq!(evaluate(&rules, &facts(Class::Anomaly)), Severity::P3);
        let mut f = facts(Class::Forecast);
        f.forecast = Some(ForecastLevel::Warning);
        assert_eq!(evaluate(&rules, &f), Severity::P2);
        f.forecast = Some(ForecastLevel::Critical);
        assert_eq!(evaluate(&rules, &f), Severity::P1);
        // Lost ping targets make a ping incident urgent, not an unrelated anomaly.
        let mut f = facts(Class::Anomaly);
        f.ping_loss_all = true;
        assert_eq!(evaluate(&rules, &f), Severity::P3);
        let mut f = facts(Class::Ping);
        assert_eq!(evaluate(&rules, &f), Severity::P2);
        f.ping_loss_all = true;
        assert_eq!(evaluate(&rules, &f), Severity::P1);
        // Cut off while the host is anomalous: P0.
        f.anomaly_open = true;
        assert_eq!(evaluate(&rules, &f), Severity::P0);
        // A high fault risk raises an anomaly.
        let mut f = facts(Class::Anomaly);
        f.risk = Some(0.79);
        assert_eq!(evaluate(&rules, &f), Severity::P3);
        f.risk = Some(0.8);
        assert_eq!(evaluate(&rules, &f), Severity::P2);
    }

    #[test]
    fn first_matching_rule_wins_and_score_ratio_counts() {
        let rules = vec![
            SeverityRule {
                when: Conditions {
                    label: Some(Label::Storage),
                    ..Default::default()
                },
                severity: Severity::P1,
            },
            SeverityRule {
                when: Conditions {
                    class: Some(Class::Anomaly),
                    min_score_ratio: Some(3.0),
                    ..Default::default()
                },
                severity: Severity::P2,
            },
        ];
        let mut f = facts(Class::Anomaly);
        assert_eq!(evaluate(&rules, &f), Severity::P4, "no rule matches");
        f.score_ratio = Some(3.0);
        assert_eq!(evaluate(&rules, &f), Severity::P2);
        f.label = Label::Storage;
        assert_eq!(evaluate(&rules, &f), Severity::P1);
    }

    #[test]
    fn rules_parse_with_errors_at_their_path() {
        let yaml = "- when: {label: storage, min_score_ratio: 2}\n  severity: P2\n\
                    - when: {label: disk}\n  severity: P9\n";
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        let mut r = Reader::default();
        let Value::Sequence(items) = v else {
            panic!("not a list")
        };
        let ok = parse_rule(&mut r, &items[0], "incidents.severity_rules[0]").expect("valid");
        assert_eq!(ok.severity, Severity::P2);
        assert_eq!(ok.when.label, Some(Label::Storage));
        assert_eq!(ok.when.min_score_ratio, Some(2.0));
        assert!(parse_rule(&mut r, &items[1], "incidents.severity_rules[1]").is_none());
        let all = r.errors.join("\n");
        assert!(
            all.contains("incidents.severity_rules[1].when.label: \"disk\" is not one of"),
            "{all}"
        );
        assert!(
            all.contains("incidents.severity_rules[1].severity: expected one of P0, P1"),
            "{all}"
        );
    }

    #[test]
    fn a_forecast_eta_bound_gives_p0() {
        let yaml = "- when: {forecast_severity: critical, max_eta: 30m}\n  severity: P0\n\
                    - when: {max_eta: 0s}\n  severity: P0\n";
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        let Value::Sequence(items) = v else {
            panic!("not a list")
        };
        let mut r = Reader::default();
        let p0 = parse_rule(&mut r, &items[0], "incidents.severity_rules[0]").expect("valid");
        assert_eq!(p0.severity, Severity::P0);
        let mut rules = vec![p0];
        rules.extend(default_rules());
        let mut f = facts(Class::Forecast);
        f.forecast = Some(ForecastLevel::Critical);
        f.eta_seconds = Some(1801.0);
        assert_eq!(evaluate(&rules, &f), Severity::P1);
        f.eta_seconds = Some(1800.0);
        assert_eq!(evaluate(&rules, &f), Severity::P0);
        // Out of range is an error at its path, not clamped.
        assert!(parse_rule(&mut r, &items[1], "incidents.severity_rules[1]").is_none());
        let all = r.errors.join("\n");
        assert!(
            all.contains("incidents.severity_rules[1].when.max_eta: \"0s\" is out of range"),
            "{all}"
        );
    }
}
