use std::time::Duration;

use super::*;
use crate::incident::{
    Conditions, ForecastLevel, ForecastSignal, OpeningRule, PingSignal, Severity, SeverityRule,
};

const MIN: i64 = 60_000;

/// Minute ticks: open after 3 anomalous minutes of 5, resolve after 4 quiet ones; no
/// recent-level rule unless a test turns it on.
fn config() -> IncidentConfig {
    IncidentConfig {
        opening: OpeningRule {
            recent_factor: 0.0,
            ..OpeningRule::default()
        },
        resolve_for: Duration::from_secs(240),
        reopen_window: Duration::from_secs(600),
        flap_max_opens: 0,
        ..Default::default()
    }
}

fn engine(c: IncidentConfig) -> Engine {
    let mut e = Engine::new(c, "web1".into(), 1);
    // The first sample counts for no time (how long it stood for is unknown).
    e.tick(0, &anomaly(false));
    e
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
            sample_anomalous: anomalous,
            sample_opens: anomalous,
            causes: if anomalous {
                features
                    .iter()
                    .enumerate()
                    .map(|(i, f)| cause(f, 10.0 - i as f64))
                    .collect()
            } else {
                Vec::new()
            },
        }),
        ..Default::default()
    }
}

fn kind(c: &Change) -> &'static str {
    match c {
        Change::Opened(_) => "opened",
        Change::Updated { .. } => "updated",
        Change::Resolved(_) => "resolved",
        Change::Superseded { .. } => "superseded",
    }
}

/// Feed `pattern` ('x' anomalous, '.' normal), one tick a minute from `*t`; returns
/// the changes as `(tick index, kind, id)`.
fn feed(e: &mut Engine, t: &mut i64, pattern: &str) -> Vec<(usize, &'static str, String)> {
    let mut out = Vec::new();
    for (i, ch) in pattern.chars().enumerate() {
        *t += MIN;
        for c in e.tick(*t, &anomaly(ch == 'x')) {
            out.push((i, kind(&c), c.incident().id.clone()));
        }
    }
    out
}

#[test]
fn opens_after_three_anomalous_minutes_within_five() {
    let mut e = engine(config());
    let mut t = 0;
    // Two minutes in five never opens; isolated spikes are noise.
    assert!(feed(&mut e, &mut t, "x..x..x..x.").is_empty());
    // The third anomalous minute within five opens.
    let c = feed(&mut e, &mut t, "....x.x.x");
    assert_eq!(c, [(8, "opened", "INC-1".to_string())]);
    assert_eq!(e.open().count(), 1);
}

#[test]
fn one_second_samples_open_after_the_same_three_minutes() {
    let mut e = engine(config());
    let mut opened = None;
    for i in 1..=600 {
        let t = i * 1000;
        if !e.tick(t, &anomaly(true)).is_empty() && opened.is_none() {
            opened = Some(t);
        }
    }
    assert_eq!(opened, Some(180_000));
}

#[test]
fn resolves_after_resolve_for_without_evidence_only() {
    let mut e = engine(config());
    let mut t = 0;
    feed(&mut e, &mut t, "xxx");
    // Three normal minutes then an anomalous one: still the same incident.
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
    let c = feed(&mut e, &mut t, "xxx.....xxx.....xxx.....");
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
    let c = feed(&mut e, &mut t, "xxx.....xxx.....xxx.....");
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
    // Values in their unit.
    assert_eq!(
        i.title,
        "storage anomaly on web1 (sdb): disk_busy_ratio{device=\"sdb\"} 90.0 % (normal 20.0 %)"
    );
    assert_eq!(i.causes.len(), 2);

    // Two cpu causes outweigh a larger network one: the label is cpu, and so is the
    // cause the title names (issue #17: "storage" over a load_average cause).
    let mut e = engine(config());
    let f = [
        "tcp_connections_established",
        "cpu_utilization_ratio{mode=\"user\"}",
        "load_average{period=\"1m\"}",
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
    assert_eq!(i.label, Label::Cpu);
    assert!(
        i.title
            .starts_with("cpu anomaly on web1: cpu_utilization_ratio{mode=\"user\"}"),
        "{}",
        i.title
    );
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
    // A high fault risk: P2, and the update says why.
    t += MIN;
    let mut s = anomaly(true);
    s.risk = Some(0.9);
    let c = e.tick(t, &s);
    assert!(
        matches!(&c[..], [Change::Updated { what, incident }] if what == "severity P3 -> P2 (fault risk 90 %)" && incident.severity == Severity::P2),
        "{c:?}"
    );
    // It never gets better while open.
    t += MIN;
    assert!(e.tick(t, &anomaly(true)).is_empty());
    assert_eq!(e.open().next().map(|i| i.severity), Some(Severity::P2));
}

#[test]
fn lost_ping_targets_do_not_make_an_anomaly_urgent() {
    let mut e = engine(config());
    let mut t = 0;
    let lost = |a| {
        let mut s = anomaly(a);
        s.ping = vec![PingSignal {
            target: "gw".into(),
            loss: 1.0,
        }];
        s
    };
    for _ in 0..5 {
        t += MIN;
        e.tick(t, &lost(true));
    }
    let severities: Vec<(Class, Severity)> = e.open().map(|i| (i.class, i.severity)).collect();
    // A target that never answered opens nothing and raises nothing.
    assert_eq!(severities, [(Class::Anomaly, Severity::P3)]);
}

#[test]
fn a_target_that_stops_answering_opens_its_own_incident() {
    let mut e = engine(config());
    let ping = |gw: f64, dns: f64| Signals {
        ping: vec![
            PingSignal {
                target: "gw".into(),
                loss: gw,
            },
            PingSignal {
                target: "dns".into(),
                loss: dns,
            },
        ],
        ..Default::default()
    };
    let mut t = 0;
    let mut changes = Vec::new();
    for (gw, dns) in [
        (0.0, 0.0),
        (0.0, 0.0),
        (1.0, 0.0),
        (1.0, 0.0),
        (1.0, 0.0),
        (1.0, 0.0),
    ] {
        t += MIN;
        changes.extend(e.tick(t, &ping(gw, dns)));
    }
    let [Change::Opened(i)] = &changes[..] else {
        panic!("{changes:?}")
    };
    assert_eq!(i.class, Class::Ping);
    assert_eq!(i.label, Label::Network);
    assert_eq!(i.fingerprint, "web1/ping/gw");
    assert_eq!(i.severity, Severity::P2, "one of two targets lost");
    assert_eq!(i.title, "network: ping target gw stopped answering on web1");
    // The other one goes too: P1.
    let mut changes = Vec::new();
    for _ in 0..4 {
        t += MIN;
        changes.extend(e.tick(t, &ping(1.0, 1.0)));
    }
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::Updated { incident, .. } if incident.id == "INC-1" && incident.severity == Severity::P1)),
        "{changes:?}"
    );
    // Both answer again: resolved after resolve_for.
    let mut changes = Vec::new();
    for _ in 0..5 {
        t += MIN;
        changes.extend(e.tick(t, &ping(0.0, 0.0)));
    }
    let resolved: Vec<&str> = changes
        .iter()
        .filter(|c| matches!(c, Change::Resolved(_)))
        .map(|c| c.incident().fingerprint.as_str())
        .collect();
    assert_eq!(resolved, ["web1/ping/gw", "web1/ping/dns"]);
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
    // No `//` in a fingerprint, whatever the resource looks like.
    assert_eq!(i.fingerprint, "web1/forecast/bytes/var");
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
    // A restart picks the open forecast up under the same slot.
    let mut e2 = engine(config());
    let mut inc = i.clone();
    inc.fingerprint = "web1/forecast/bytes//var".into(); // written by an older version
    e2.restore(inc, 7 * MIN);
    let c = e2.tick(8 * MIN, &fc(ForecastLevel::Warning, 7000.0));
    assert!(
        c.iter().all(|c| !matches!(c, Change::Opened(_))),
        "no duplicate: {c:?}"
    );
    assert_eq!(e2.open().count(), 1);
}

#[test]
fn an_anomaly_on_a_forecast_resource_is_news_on_that_incident() {
    let mut e = engine(config());
    let fill = Signals {
        forecasts: vec![ForecastSignal {
            resource: "/var".into(),
            kind: "bytes".into(),
            level: ForecastLevel::Warning,
            eta_seconds: 7200.0,
            causes: vec![],
        }],
        ..Default::default()
    };
    let mut t = 0;
    let mut changes = Vec::new();
    for i in 0..5 {
        t += MIN;
        let mut s = fill.clone();
        if i > 0 {
            s.anomaly = anomaly_with(true, &["filesystem_used_ratio{mountpoint=\"/var\"}"]).anomaly;
        }
        changes.extend(e.tick(t, &s));
    }
    let kinds: Vec<(&str, Class)> = changes
        .iter()
        .map(|c| (kind(c), c.incident().class))
        .collect();
    assert_eq!(
        kinds,
        [("opened", Class::Forecast), ("updated", Class::Forecast)],
        "{changes:?}"
    );
    assert_eq!(e.open().count(), 1);
}

#[test]
fn a_memory_forecast_during_a_memory_anomaly_is_news_on_it() {
    let mut e = engine(config());
    let mut t = 0;
    let mut changes = Vec::new();
    for i in 0..8 {
        t += MIN;
        let mut s = anomaly_with(true, &["memory_used_ratio"]);
        if i > 4 {
            s.forecasts = vec![ForecastSignal {
                resource: "memory".into(),
                kind: "memory".into(),
                level: ForecastLevel::Warning,
                eta_seconds: 80_000.0,
                causes: vec![],
            }];
        }
        changes.extend(e.tick(t, &s));
    }
    let seen: Vec<(&str, Class)> = changes
        .iter()
        .map(|c| (kind(c), c.incident().class))
        .collect();
    assert_eq!(
        seen,
        [("opened", Class::Anomaly), ("updated", Class::Anomaly)],
        "{changes:?}"
    );
    assert!(
        matches!(&changes[1], Change::Updated { what, incident } if what.starts_with("same episode: memory: memory out of memory in") && incident.severity == Severity::P2),
        "{changes:?}"
    );
    assert_eq!(e.open().count(), 1);
}

#[test]
fn a_lost_target_during_its_latency_anomaly_is_one_incident() {
    let mut e = engine(config());
    let mut t = 0;
    let answering = |loss: f64| PingSignal {
        target: "gw".into(),
        loss,
    };
    let mut s = anomaly(false);
    s.ping = vec![answering(0.0)];
    t += MIN;
    e.tick(t, &s);
    let mut changes = Vec::new();
    for _ in 0..8 {
        t += MIN;
        let mut s = anomaly_with(true, &["ping_loss_ratio{target=\"gw\"}"]);
        s.ping = vec![answering(1.0)];
        changes.extend(e.tick(t, &s));
    }
    let seen: Vec<(&str, Class)> = changes
        .iter()
        .map(|c| (kind(c), c.incident().class))
        .collect();
    assert_eq!(
        seen,
        [("opened", Class::Anomaly), ("updated", Class::Anomaly)],
        "{changes:?}"
    );
    // Its only target lost while the host is anomalous: as urgent as a ping incident
    // would have been with an anomaly open, P0 (cut off, and something is wrong).
    assert!(
        matches!(&changes[1], Change::Updated { what, incident } if what.contains("stopped answering") && incident.severity == Severity::P0),
        "{changes:?}"
    );
    assert_eq!(e.open().count(), 1);
}

#[test]
fn the_fault_risk_is_evidence_never_its_own_incident() {
    let mut e = engine(config());
    let r = |p| Signals {
        risk: Some(p),
        ..Default::default()
    };
    for i in 1..20 {
        assert!(e.tick(i * MIN, &r(0.99)).is_empty());
    }
    assert_eq!(e.open().count(), 0);
}

/// A ping spike the smoothed score still carries, during a memory incident whose
/// samples stay anomalous, is not a problem that moved: samples where the RTT is
/// back within its floor (`sample_opens` false) neither supersede nor open.
#[test]
fn a_spike_the_average_still_carries_neither_opens_nor_supersedes() {
    let mut e = engine(config());
    let mut t = 0;
    let mut changes = Vec::new();
    for _ in 0..4 {
        t += MIN;
        changes.extend(e.tick(t, &anomaly_with(true, &["memory_used_ratio"])));
    }
    let ping = [
        "ping_rtt_median_seconds{target=\"gw\"}",
        "memory_used_ratio",
    ];
    for _ in 0..8 {
        t += MIN;
        let mut s = anomaly_with(true, &ping);
        if let Some(a) = s.anomaly.as_mut() {
            a.sample_opens = false;
        }
        changes.extend(e.tick(t, &s));
    }
    // (An update names the new top cause; the incident stays the memory one.)
    let kinds: Vec<&str> = changes
        .iter()
        .map(kind)
        .filter(|k| *k != "updated")
        .collect();
    assert_eq!(kinds, ["opened"], "{changes:?}");
    // Nor does it open an incident on a quiet host.
    let mut e = engine(config());
    for _ in 0..8 {
        t += MIN;
        let mut s = anomaly_with(true, &ping);
        if let Some(a) = s.anomaly.as_mut() {
            a.sample_opens = false;
        }
        assert!(e.tick(t, &s).is_empty());
    }
}

#[test]
fn a_problem_that_moves_elsewhere_gets_its_own_incident() {
    let mut e = engine(config());
    let mut t = 0;
    let net = ["network_receive_bytes_per_second{interface=\"eth0\"}"];
    let disk = [
        "disk_write_latency_seconds{device=\"sdb\"}",
        "network_receive_bytes_per_second{interface=\"eth0\"}",
    ];
    let mut changes = Vec::new();
    for _ in 0..4 {
        t += MIN;
        changes.extend(e.tick(t, &anomaly_with(true, &net)));
    }
    // The disk takes over; after it has for as long as an opening needs, INC-1 is
    // superseded by INC-2 about the disk.
    for _ in 0..4 {
        t += MIN;
        changes.extend(e.tick(t, &anomaly_with(true, &disk)));
    }
    let seen: Vec<(&str, String, Label)> = changes
        .iter()
        .map(|c| (kind(c), c.incident().id.clone(), c.incident().label))
        .collect();
    assert_eq!(
        seen,
        [
            ("opened", "INC-1".into(), Label::Network),
            ("updated", "INC-1".into(), Label::Network),
            ("superseded", "INC-1".into(), Label::Network),
            ("opened", "INC-2".into(), Label::Storage),
        ],
        "{changes:?}"
    );
    let Some(Change::Superseded { by, incident }) = changes.get(2) else {
        panic!()
    };
    assert_eq!(by, "INC-2: the problem moved to storage (sdb)");
    assert!(incident.resolved_ms.is_some());
    let open: Vec<&str> = e.open().map(|i| i.fingerprint.as_str()).collect();
    assert_eq!(open, ["web1/anomaly/storage/sdb"]);
}

#[test]
fn a_drifted_host_does_not_page_for_more_of_the_same() {
    let mut e = engine(IncidentConfig {
        opening: OpeningRule::default(),
        ..config()
    });
    let at = |ratio: f64, own: bool| Signals {
        anomaly: Some(AnomalySignal {
            score: ratio * 10.0,
            threshold: 10.0,
            sample_anomalous: own,
            sample_opens: own,
            causes: vec![cause("memory_used_ratio", 1.0)],
        }),
        ..Default::default()
    };
    // The model's view of the last six hours: a score sitting at 1.5x its threshold.
    let recent: Vec<(i64, f64)> = (0..360).map(|i| (i * MIN, 1.5)).collect();
    e.new_model(1.0);
    e.prime(&recent);
    assert!((e.opening_level() - 2.25).abs() < 1e-9);
    let mut t = 360 * MIN;
    for _ in 0..10 {
        t += MIN;
        assert!(e.tick(t, &at(2.0, true)).is_empty());
    }
    // Twice as far out as usual opens.
    let mut opened = false;
    for _ in 0..4 {
        t += MIN;
        opened |= !e.tick(t, &at(8.0, true)).is_empty();
    }
    assert!(opened);
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
    // (within the reopen window) after it has persisted again.
    let mut e3 = engine(config());
    e3.restore(inc.clone(), t);
    e3.forget(&inc.id, t);
    assert_eq!(e3.open().count(), 0);
    let c = feed(&mut e3, &mut t, "xxxx");
    assert_eq!(c, [(3, "opened", inc.id.clone())]);
}

/// A replay resumed on a state directory restores before its first row (at 0):
/// the open incident goes on from its last update, it is not resolved at once.
#[test]
fn restored_before_the_first_row_counts_from_its_last_update() {
    let mut e = engine(config());
    let mut t = 0;
    feed(&mut e, &mut t, "xxx");
    let inc = e.open().next().cloned().expect("open");
    let mut e2 = engine(config());
    e2.restore(inc.clone(), 0);
    // One quiet row: resolve_for (4 min) has not passed since its last update.
    assert!(feed(&mut e2, &mut t, ".").is_empty(), "still open");
    assert_eq!(e2.open().count(), 1);
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

/// One tick of a spike's aftermath: the smoothed score (threshold 10) and whether the
/// sample is anomalous itself.
fn after(score: f64, own: bool) -> Signals {
    let mut s = anomaly(own);
    if let Some(a) = &mut s.anomaly {
        a.score = score;
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
    // incident resolves after `resolve_for` (4 min) of such samples...
    let mut changes = Vec::new();
    for _ in 0..4 {
        changes.extend(tick(&mut e, &after(15.0, false)));
    }
    assert!(matches!(&changes[..], [Change::Resolved(_)]), "{changes:?}");
    // ...and the average, oscillating around the threshold as it decays, opens
    // nothing: only samples anomalous on their own do.
    for score in [
        12.0, 9.0, 11.0, 8.0, 10.5, 10.5, 10.5, 7.0, 20.0, 20.0, 20.0,
    ] {
        assert!(tick(&mut e, &after(score, false)).is_empty());
    }
    let mut again = Vec::new();
    for _ in 0..3 {
        again.extend(tick(&mut e, &after(11.0, true)));
    }
    assert!(matches!(&again[..], [Change::Opened(_)]), "{again:?}");
}

/// NTP steps the clock back an hour: an open incident still resolves after
/// `resolve_for` of quiet on the new clock (not an hour later), and the anomalous
/// minutes seen before the step do not count towards opening after it.
#[test]
fn a_clock_stepped_back_neither_holds_an_incident_open_nor_opens_one() {
    let mut e = engine(config());
    let mut t = 0;
    assert_eq!(feed(&mut e, &mut t, "xxx").len(), 1);
    t -= 60 * MIN;
    let c = feed(&mut e, &mut t, "......");
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!((c[0].1, c[0].2.as_str()), ("resolved", "INC-1"));
    assert!(
        c[0].0 <= 4,
        "resolved {} minutes after the step",
        c[0].0 + 1
    );

    let mut e = engine(config());
    let mut t = 0;
    assert!(feed(&mut e, &mut t, "xx").is_empty());
    t -= 60 * MIN;
    // Two more anomalous minutes: two in all since the step, not four.
    assert!(feed(&mut e, &mut t, "xx").is_empty());
}

/// The model turned off (a reload) or learning afresh while an anomaly incident is
/// open: no score is no evidence, so the incident resolves after `resolve_for`; it
/// used to stay open for ever.
#[test]
fn an_anomaly_incident_resolves_when_no_model_scores() {
    let mut e = engine(config());
    let mut t = 0;
    assert_eq!(feed(&mut e, &mut t, "xxx").len(), 1);
    let mut resolved = None;
    for i in 0..30 {
        t += MIN;
        for c in e.tick(t, &Signals::default()) {
            assert_eq!(kind(&c), "resolved");
            resolved = Some(i);
        }
    }
    let quiet = feed(&mut e, &mut t, "xxx");
    assert!(resolved.is_some_and(|i| i < 10), "{resolved:?}");
    // Scored again and anomalous again: it opens again (the same ticket, reopened).
    assert_eq!(quiet.len(), 1, "{quiet:?}");
    assert_eq!(e.open().count(), 1);
}
