use std::time::Duration;

use super::*;
use crate::incident::{Conditions, SeverityRule};

const MIN: i64 = 60_000;

fn config() -> IncidentConfig {
    IncidentConfig {
        open_after: 3,
        open_window: 5,
        resolve_after: 4,
        reopen_window: Duration::from_secs(600),
        flap_max_opens: 0,
        ..Default::default()
    }
}

fn engine(c: IncidentConfig) -> Engine {
    Engine::new(c, "web1".into(), 1)
}

fn cause(feature: &str, contribution: f64) -> Cause {
    Cause {
        feature: feature.into(),
        value: 0.9,
        baseline: 0.2,
        contribution,
    }
}

fn anomaly(anomalous: bool) -> Signals {
    anomaly_with(anomalous, &["cpu_utilization_ratio{mode=\"user\"}"])
}

fn anomaly_with(anomalous: bool, features: &[&str]) -> Signals {
    Signals {
        anomaly: Some(AnomalySignal {
            score: if anomalous { 20.0 } else { 1.0 },
            threshold: 10.0,
            anomalous,
            ongoing: anomalous,
            causes: features
                .iter()
                .enumerate()
                .map(|(i, f)| cause(f, 10.0 - i as f64))
                .collect(),
        }),
        ..Default::default()
    }
}

/// Feed `pattern` ('x' anomalous, '.' normal), one tick a minute from `*t`; returns
/// the changes as `(tick index, kind, id)`.
fn feed(e: &mut Engine, t: &mut i64, pattern: &str) -> Vec<(usize, &'static str, String)> {
    let mut out = Vec::new();
    for (i, ch) in pattern.chars().enumerate() {
        *t += MIN;
        for c in e.tick(*t, &anomaly(ch == 'x')) {
            let kind = match &c {
                Change::Opened(_) => "opened",
                Change::Updated { .. } => "updated",
                Change::Resolved(_) => "resolved",
            };
            out.push((i, kind, c.incident().id.clone()));
        }
    }
    out
}

#[test]
fn debounce_opens_after_n_of_m() {
    let mut e = engine(config());
    let mut t = 0;
    // 2 of 5 never opens; isolated spikes are noise.
    assert!(feed(&mut e, &mut t, "x..x..x..x.").is_empty());
    // The third anomalous sample within five opens.
    let c = feed(&mut e, &mut t, "....x.x.x");
    assert_eq!(c, [(8, "opened", "INC-1".to_string())]);
    assert_eq!(e.open().count(), 1);
}

#[test]
fn hysteresis_resolves_after_k_normal_samples_only() {
    let mut e = engine(config());
    let mut t = 0;
    feed(&mut e, &mut t, "xxx");
    // Three normal samples then an anomalous one: still the same incident.
    assert!(feed(&mut e, &mut t, "...x...").is_empty());
    let c = feed(&mut e, &mut t, ".");
    assert_eq!(c, [(0, "resolved", "INC-1".to_string())]);
    assert_eq!(e.open().count(), 0);
}

#[test]
fn one_incident_per_fingerprint_and_reopen_within_window() {
    let mut e = engine(config());
    let mut t = 0;
    let c = feed(&mut e, &mut t, "xxxxxxxxxx");
    assert_eq!(c.len(), 1, "a long anomaly is one incident: {c:?}");
    feed(&mut e, &mut t, "....");
    // Back within the 10 min reopen window: the same incident (and ticket).
    let c = feed(&mut e, &mut t, "xxx");
    assert_eq!(c, [(2, "opened", "INC-1".to_string())]);
    feed(&mut e, &mut t, "....");
    // Back after the window: a new one.
    feed(&mut e, &mut t, "...........");
    let c = feed(&mut e, &mut t, "xxx");
    assert_eq!(c, [(2, "opened", "INC-2".to_string())]);
}

#[test]
fn zero_reopen_window_opens_a_new_incident_each_time() {
    let mut e = engine(IncidentConfig {
        reopen_window: Duration::ZERO,
        ..config()
    });
    let mut t = 0;
    let c = feed(&mut e, &mut t, "xxx....xxx....xxx....");
    let opened: Vec<&str> = c
        .iter()
        .filter(|c| c.1 == "opened")
        .map(|c| c.2.as_str())
        .collect();
    assert_eq!(opened, ["INC-1", "INC-2", "INC-3"]);
}

#[test]
fn flapping_incident_is_held_open() {
    let mut e = engine(IncidentConfig {
        flap_max_opens: 3,
        flap_window: Duration::from_secs(3600),
        ..config()
    });
    let mut t = 0;
    let c = feed(&mut e, &mut t, "xxx....xxx....xxx....");
    let kinds: Vec<&str> = c.iter().map(|c| c.1).collect();
    // Third open within the hour: instead of resolving it is marked flapping.
    assert_eq!(
        kinds,
        ["opened", "resolved", "opened", "resolved", "opened", "updated"]
    );
    assert!(e.is_flapping("INC-1"));
    // Coming and going while flapping changes nothing.
    assert!(feed(&mut e, &mut t, "xxx....xxx....").is_empty());
    // Quiet for the whole flap window: resolved at last.
    let c = feed(&mut e, &mut t, &".".repeat(60));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].1, "resolved");
}

#[test]
fn labels_and_fingerprints_follow_the_causes() {
    let mut e = engine(config());
    let mut t = 0;
    let f = [
        "disk_busy_ratio{device=\"sdb\"}",
        "cpu_utilization_ratio{mode=\"user\"}",
    ];
    let mut opened = None;
    for _ in 0..3 {
        t += MIN;
        for c in e.tick(t, &anomaly_with(true, &f)) {
            opened = Some(c);
        }
    }
    let Some(Change::Opened(i)) = opened else {
        panic!("not opened: {opened:?}")
    };
    assert_eq!(i.label, Label::Storage);
    assert_eq!(i.resource.as_deref(), Some("sdb"));
    assert_eq!(i.fingerprint, "web1/anomaly/storage/sdb");
    assert_eq!(i.severity, Severity::P3);
    assert!(
        i.title
            .starts_with("storage anomaly on web1 (sdb): disk_busy_ratio"),
        "{}",
        i.title
    );
    assert_eq!(i.causes.len(), 2);
}

#[test]
fn updates_report_new_causes_and_worse_severity_only() {
    let mut e = engine(config());
    let mut t = 0;
    feed(&mut e, &mut t, "xxx");
    // Same causes: nothing to say.
    assert!(feed(&mut e, &mut t, "xx").is_empty());
    t += MIN;
    let c = e.tick(
        t,
        &anomaly_with(
            true,
            &[
                "cpu_utilization_ratio{mode=\"user\"}",
                "load_average{period=\"1m\"}",
            ],
        ),
    );
    assert!(
        matches!(&c[..], [Change::Updated { what, .. }] if what.contains("new top causes: load_average")),
        "{c:?}"
    );
    // Ping loss to every target: P1.
    t += MIN;
    let mut s = anomaly(true);
    s.ping_loss_all = true;
    let c = e.tick(t, &s);
    assert!(
        matches!(&c[..], [Change::Updated { what, incident }] if what == "severity P3 -> P1" && incident.severity == Severity::P1),
        "{c:?}"
    );
    // It never gets better while open.
    t += MIN;
    assert!(e.tick(t, &anomaly(true)).is_empty());
    assert_eq!(e.open().next().map(|i| i.severity), Some(Severity::P1));
}

#[test]
fn forecasts_open_at_once_and_resolve_when_cleared() {
    let rules = vec![SeverityRule {
        when: Conditions {
            forecast_severity: Some(ForecastLevel::Critical),
            ..Default::default()
        },
        severity: Severity::P1,
    }];
    let mut e = engine(IncidentConfig {
        severity_rules: rules,
        ..config()
    });
    let fc = |level, eta| Signals {
        forecasts: vec![ForecastSignal {
            resource: "/var".into(),
            kind: "bytes".into(),
            level,
            eta_seconds: eta,
            causes: vec![],
        }],
        ..Default::default()
    };
    let c = e.tick(MIN, &fc(ForecastLevel::Warning, 7200.0));
    let [Change::Opened(i)] = &c[..] else {
        panic!("{c:?}")
    };
    assert_eq!(i.fingerprint, "web1/forecast/bytes//var");
    assert_eq!(i.label, Label::Storage);
    assert_eq!(i.severity, Severity::P4, "no rule for warnings here");
    assert_eq!(i.title, "storage: /var full in 2 h 00 min on web1");
    let c = e.tick(2 * MIN, &fc(ForecastLevel::Critical, 3000.0));
    assert!(
        matches!(&c[..], [Change::Updated { what, .. }] if what.contains("severity P4 -> P1") && what.contains("ETA now 50 min")),
        "{c:?}"
    );
    for k in 0..3 {
        assert!(e.tick((3 + k) * MIN, &Signals::default()).is_empty());
    }
    let c = e.tick(6 * MIN, &Signals::default());
    assert!(
        matches!(&c[..], [Change::Resolved(i)] if i.resolved_ms == Some(6 * MIN)),
        "{c:?}"
    );
}

#[test]
fn risk_is_debounced_against_its_threshold() {
    let mut e = engine(config());
    let r = |p| Signals {
        risk: Some(p),
        ..Default::default()
    };
    assert!(e.tick(MIN, &r(0.9)).is_empty());
    assert!(e.tick(2 * MIN, &r(0.5)).is_empty());
    assert!(e.tick(3 * MIN, &r(0.85)).is_empty());
    let c = e.tick(4 * MIN, &r(0.95));
    assert!(
        matches!(&c[..], [Change::Opened(i)] if i.class == Class::Risk && i.severity == Severity::P4 && i.fingerprint == "web1/risk"),
        "{c:?}"
    );
}

#[test]
fn restore_continues_and_forget_starts_over() {
    let mut e = engine(config());
    let mut t = 0;
    feed(&mut e, &mut t, "xxx");
    let inc = e.open().next().cloned().expect("open");
    // A new engine (a restart) given the open incident goes on with it.
    let mut e2 = engine(config());
    e2.restore(inc.clone(), t);
    assert!(
        feed(&mut e2, &mut t, "xxxx").is_empty(),
        "no duplicate after restart"
    );
    let c = feed(&mut e2, &mut t, "....");
    assert_eq!(c, [(3, "resolved", inc.id.clone())]);
    // An operator resolution: forgotten; the problem going on reopens the same one
    // (within the reopen window) after a fresh debounce.
    let mut e3 = engine(config());
    e3.restore(inc.clone(), t);
    e3.forget(&inc.id, t);
    assert_eq!(e3.open().count(), 0);
    let c = feed(&mut e3, &mut t, "xxx");
    assert_eq!(c, [(2, "opened", inc.id.clone())]);
}

#[test]
fn escalate_raises_one_step() {
    let mut e = engine(config());
    let mut t = 0;
    feed(&mut e, &mut t, "xxx");
    let c = e.escalate("INC-1", "remediation failed", t);
    assert!(
        matches!(&c, Some(Change::Updated { what, incident }) if what == "severity P3 -> P2: remediation failed" && incident.severity == Severity::P2),
        "{c:?}"
    );
    assert!(e.escalate("INC-9", "x", t).is_none());
}

#[test]
fn disabled_engine_is_silent() {
    let mut e = engine(IncidentConfig {
        enabled: false,
        ..config()
    });
    let mut t = 0;
    assert!(feed(&mut e, &mut t, "xxxxxx").is_empty());
}

/// One tick of a spike's aftermath: the smoothed decision (`anomalous`, score 20 over
/// a threshold of 10, or `score` given) and whether the sample is anomalous itself.
fn after(score: f64, ongoing: bool) -> Signals {
    let mut s = anomaly(score > 10.0);
    if let Some(a) = &mut s.anomaly {
        a.score = score;
        a.ongoing = ongoing;
    }
    s
}

#[test]
fn an_incident_ends_with_its_samples_not_with_the_decaying_average() {
    let mut e = engine(config());
    let mut t = 0;
    let mut tick = |e: &mut Engine, s: &Signals| {
        t += MIN;
        e.tick(t, s)
    };
    for _ in 0..3 {
        tick(&mut e, &after(20.0, true));
    }
    assert_eq!(e.open().count(), 1);
    // The host is normal again, the smoothed score still above the threshold: the
    // incident resolves after `resolve_after` (4) such samples...
    let mut changes = Vec::new();
    for _ in 0..4 {
        changes.extend(tick(&mut e, &after(15.0, false)));
    }
    assert!(matches!(&changes[..], [Change::Resolved(_)]), "{changes:?}");
    // ...and the average, oscillating around the threshold as it decays, does not
    // reopen it.
    for score in [12.0, 9.0, 11.0, 8.0, 10.5, 10.5, 10.5, 7.0] {
        assert!(tick(&mut e, &after(score, false)).is_empty());
    }
    // A real recurrence (samples anomalous themselves) opens again within the tail.
    let mut again = Vec::new();
    for _ in 0..3 {
        again.extend(tick(&mut e, &after(11.0, true)));
    }
    assert!(matches!(&again[..], [Change::Opened(_)]), "{again:?}");
    // Once the tail is over (score under half the threshold), the smoothed decision
    // alone opens, as before.
    for _ in 0..6 {
        tick(&mut e, &after(1.0, false));
    }
    assert_eq!(e.open().count(), 0);
    let mut third = Vec::new();
    for _ in 0..3 {
        third.extend(tick(&mut e, &after(20.0, false)));
    }
    assert!(matches!(&third[..], [Change::Opened(_)]), "{third:?}");
}
