//! Response levels and routing end to end: replays (deadlines measured on the replayed
//! time) whose tickets breach, are acknowledged, are routed; the breach counter and
//! the response-time histograms in the /metrics text, checked by promtool.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use crate::common::sinks::Server;
use crate::common::{self, bursts};

fn ok(args: &[&str]) -> String {
    let out = common::anomalyd(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "anomalyd {args:?} failed:\n{text}");
    String::from_utf8(out.stdout).unwrap()
}

fn replay(csv: &Path, cfg: &Path, state: &Path) {
    ok(&[
        "replay",
        "--input",
        csv.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
}

fn show(state: &Path, id: &str) -> serde_json::Value {
    let text = ok(&[
        "tickets",
        "show",
        id,
        "--json",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    serde_json::from_str(&text).unwrap()
}

/// (deadline, stage, at_ms) of a ticket's deadline events.
fn deadline_events(t: &serde_json::Value) -> Vec<(String, String, i64)> {
    t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deadline")
        .map(|e| {
            (
                e["detail"]["deadline"].as_str().unwrap().to_string(),
                e["detail"]["stage"].as_str().unwrap().to_string(),
                e["at_ms"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The bursts' anomalies as P1 (appended to the bursts config's `incidents:`).
const P1_RULE: &str = "  severity_rules:\n    - when: {class: anomaly}\n      severity: P1\n";

/// One burst replayed as a P1 nobody acknowledges: it stays open for longer than
/// its 5 minutes to acknowledge, on the replayed (2023) clock. The warning at 4 min
/// and the breach at 5 min are on its timeline once each (not once per tick while it
/// stays open), reach the webhook as updates, and `tickets report` counts the breach.
#[test]
fn an_unacknowledged_p1_breaches_its_deadline_once_in_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Server::start(Box::new(|_| (200, "{}".into())));
    let extra = format!(
        "{P1_RULE}tickets:\n  sinks:\n  - name: hook\n    type: webhook\n    url: {}/hook\n",
        hook.url()
    );
    let (csv, cfg) = bursts::write(dir.path(), 1, &extra);
    let state = dir.path().join("state");
    replay(&csv, &cfg, &state);
    let t = show(&state, "INC-1");
    assert_eq!(t["severity"], "P1", "{t:#}");
    assert_eq!(t["status"], "resolved", "{t:#}");
    let opened = t["opened_ms"].as_i64().unwrap();
    let resolved = t["resolved_ms"].as_i64().unwrap();
    assert!(resolved - opened > 6 * 60_000, "open long enough to breach");
    let events = deadline_events(&t);
    let min = 60_000;
    assert_eq!(
        events,
        [
            ("acknowledge".into(), "warning".into(), opened + 4 * min),
            ("acknowledge".into(), "breach".into(), opened + 5 * min),
        ],
        "{t:#}"
    );
    // Delivered like any update: the hook got each once.
    let reqs = hook.wait(Duration::from_secs(10), |r| {
        r.iter()
            .any(|q| String::from_utf8_lossy(&q.body).contains("deadline (P1, 5 min) passed"))
    });
    let said = |what: &str| {
        reqs.iter()
            .filter(|q| String::from_utf8_lossy(&q.body).contains(what))
            .count()
    };
    assert_eq!(said("acknowledge deadline (P1, 5 min) passed"), 1);
    assert_eq!(said("acknowledge deadline (P1, 5 min) in 1 min"), 1);
    let until = anomalyd::text::fmt_rfc3339(resolved + 3_600_000);
    let report = ok(&[
        "tickets",
        "report",
        "--since",
        "30d",
        "--until",
        &until,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(
        report.contains("## SLA breaches\n\n| Severity | Acknowledge | Resolve |\n|---|---|---|\n| P1 | 1 | 0 |"),
        "{report}"
    );
}

/// Rows of a filling disk (10 GB free at `start`, 1 MB/s written) from `from` to
/// `to` seconds after `start`, every 10 s.
fn fill_rows(from: i64, to: i64) -> String {
    let col = r#""filesystem_available_bytes{mountpoint=""/data"",device=""/dev/sdb1"",fstype=""ext4""}""#;
    let start = 1_700_000_000i64;
    let mut csv = format!("timestamp,{col}\n");
    for s in (from..to).step_by(10) {
        let wobble = if (s / 10) % 2 == 0 { 2e6 } else { -2e6 };
        csv.push_str(&format!(
            "{},{}\n",
            start + s,
            10e9 - 1e6 * s as f64 + wobble
        ));
    }
    csv
}

/// A P1 (a disk that fills within the critical horizon) acknowledged while it is
/// open: the replay stops 2 minutes after the ticket opened, the operator runs
/// `tickets ack`, and the replay goes on with the next rows on the same state. No
/// acknowledgement deadline events come, while the resolution clock runs on (its
/// warning and breach, 24 and 30 min after the opening, on the replayed time).
#[test]
fn acknowledging_stops_the_acknowledgement_clock_in_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("fill.yaml");
    std::fs::write(
        &cfg,
        "interval: 10s\nmodel:\n  enabled: false\nincidents:\n  host: test-host\n\
         forecast:\n  window: 20m\n  min_span: 5m\n  warning: 4h\n  critical: 3h\n\
         tickets:\n  response:\n    levels:\n      P1: {acknowledge: 5m, resolve: 30m}\n",
    )
    .unwrap();
    let csv = dir.path().join("fill.csv");
    let state = dir.path().join("state");
    std::fs::write(&csv, fill_rows(0, 420)).unwrap();
    replay(&csv, &cfg, &state);
    let t = show(&state, "INC-1");
    assert_eq!(
        (&t["status"], &t["severity"]),
        (&"open".into(), &"P1".into()),
        "{t:#}"
    );
    let opened = t["opened_ms"].as_i64().unwrap();
    let end = 1_700_000_000_000 + 410_000;
    assert!(
        end - opened < 4 * 60_000,
        "before the warning: opened {opened}"
    );
    assert_eq!(deadline_events(&t), [], "{t:#}");
    ok(&[
        "tickets",
        "ack",
        "INC-1",
        "--by",
        "alice",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    std::fs::write(&csv, fill_rows(420, 2700)).unwrap();
    replay(&csv, &cfg, &state);
    let t = show(&state, "INC-1");
    assert_eq!(t["status"], "acknowledged", "{t:#}");
    // Seen on the next row (every 10 s) after each point.
    let next = |at: i64| at + (10_000 - (at - 1_700_000_000_000) % 10_000) % 10_000;
    assert_eq!(
        deadline_events(&t),
        [
            (
                "resolve".into(),
                "warning".into(),
                next(opened + 24 * 60_000)
            ),
            (
                "resolve".into(),
                "breach".into(),
                next(opened + 30 * 60_000)
            ),
        ],
        "{t:#}"
    );
}

/// Routing end to end: the bursts' storage tickets open at 01:34 and 03:18 UTC, day
/// time at +10:00; a route for storage during the day gives them to the team's
/// members in turn; the night route and the CPU one do not match.
#[test]
fn a_replayed_ticket_gets_its_routed_assignee() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "tickets:\n  routing:\n    utc_offset: '+10:00'\n    teams:\n      \
                 - {name: storage, members: [alice, bob], round_robin: true}\n    routes:\n      \
                 - when: {hours: '22:00-06:00'}\n        assignee: night\n      \
                 - when: {label: cpu}\n        assignee: carol\n      \
                 - when: {label: storage, resource: 'sd[a-z]', host: 'test-.*', hours: '08:00-20:00'}\n        \
                 team: storage\n";
    let (csv, cfg) = bursts::write(dir.path(), 2, extra);
    let state = dir.path().join("state");
    replay(&csv, &cfg, &state);
    let t1 = show(&state, "INC-1");
    let t2 = show(&state, "INC-2");
    let hour = |t: &serde_json::Value| (t["opened_ms"].as_i64().unwrap() / 3_600_000 + 10) % 24;
    assert!(
        (8..20).contains(&hour(&t1)),
        "opened at {} +10:00",
        hour(&t1)
    );
    assert_eq!(t1["assignee"], "alice", "{t1:#}");
    assert_eq!(t2["assignee"], "bob", "{t2:#}");
    let routed: Vec<&str> = t1["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "routed")
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(routed, ["routed to alice, team storage (route 3)"]);
}

/// The breach counter and the response-time histograms as /metrics renders them
/// (the daemon's exporter, fed by the tick path's own incident stages), clean for
/// `promtool check metrics`.
#[test]
fn breaches_and_response_times_are_on_metrics_and_promtool_clean() {
    use anomalyd::incident::{ForecastLevel, ForecastSignal, Signals};
    use anomalyd::sample::{Record, Sample};
    let dir = tempfile::tempdir().unwrap();
    let config = anomalyd::settings::parse("incidents:\n  host: vm\n").unwrap();
    let state = anomalyd::store::StateDir::at(dir.path());
    let mut stages = anomalyd::pipeline::Incidents::open(&config, &state, 0).unwrap();
    let fill = Signals {
        forecasts: vec![ForecastSignal {
            resource: "/data".into(),
            kind: "bytes".into(),
            level: ForecastLevel::Critical,
            eta_seconds: 600.0,
            causes: Vec::new(),
        }],
        ..Signals::default()
    };
    let record = Record {
        timestamp_ms: Some(0),
        values: Vec::new(),
    };
    let mut exporter = anomalyd::export::metrics::Exporter::new(false).unwrap();
    let mut publish = |stages: &anomalyd::pipeline::Incidents, t: i64| {
        let mut s = Sample::new(t);
        stages.export(&mut s);
        assert!(exporter.publish(&s).is_empty());
        String::from_utf8(exporter.rendered.get().to_vec()).unwrap()
    };
    // A P1 fill (opened on the first tick, at 1 min) acknowledged from another
    // process, as `tickets ack` does, at 7 min: after its 5 min deadline.
    let mut t = 0;
    for _ in 0..8 {
        t += 60_000;
        stages.tick(t, &record, &fill);
        if t == 7 * 60_000 {
            let other = anomalyd::tickets::Store::open(&dir.path().join("tickets.db")).unwrap();
            assert!(other.ack("INC-1", Some("alice"), t).unwrap());
        }
    }
    let _ = publish(&stages, t);
    // Quiet: it resolves after resolve_for (10 min).
    for _ in 0..12 {
        t += 60_000;
        stages.tick(t, &record, &Signals::default());
    }
    let body = publish(&stages, t);
    for want in [
        "anomalyd_sla_breaches_total{deadline=\"acknowledge\",severity=\"P1\"} 1",
        "anomalyd_sla_breaches_total{deadline=\"resolve\",severity=\"P1\"} 0",
        "anomalyd_ticket_time_to_resolve_seconds_count{severity=\"P1\"} 1",
        "anomalyd_ticket_time_to_resolve_seconds_bucket{severity=\"P1\",le=\"1800\"} 1",
        "anomalyd_ticket_time_to_resolve_seconds_bucket{severity=\"P1\",le=\"900\"} 0",
        "anomalyd_ticket_time_to_acknowledge_seconds_count{severity=\"P0\"} 0",
        // 6 min after it opened.
        "anomalyd_ticket_time_to_acknowledge_seconds_sum{severity=\"P1\"} 360",
        "anomalyd_ticket_time_to_acknowledge_seconds_bucket{severity=\"P1\",le=\"300\"} 0",
        "anomalyd_ticket_time_to_acknowledge_seconds_bucket{severity=\"P1\",le=\"900\"} 1",
    ] {
        assert!(body.contains(want), "{want} not in\n{body}");
    }
    // Exported once: a later tick does not count the same resolution again.
    let body = publish(&stages, t + 60_000);
    assert!(body.contains("anomalyd_ticket_time_to_resolve_seconds_count{severity=\"P1\"} 1"));
    let report = common::promtool_problems(&body);
    assert!(report.is_empty(), "promtool: {report}");
}
