//! Incidents and tickets end to end, with the real binary: a recorded series replayed
//! into a state directory becomes the tickets it would have produced; the `tickets`
//! and `silence` commands work on them; the daemon serves them on /api/v1/tickets.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common;
use crate::common::{bursts, Daemon};

fn anomalyd(args: &[&str]) -> Output {
    let out = common::anomalyd(args);
    eprintln!(
        "$ anomalyd {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(args: &[&str]) -> String {
    let out = anomalyd(args);
    assert!(out.status.success(), "anomalyd {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

/// Replay `n` bursts into `dir/state`; returns the state dir as a string.
fn replay(dir: &Path, n: usize, extra: &str) -> (String, String) {
    let (csv, cfg) = bursts::write(dir, n, extra);
    let state = dir.join("state");
    let out = anomalyd(&[
        "replay",
        "--input",
        csv.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    (
        state.to_str().unwrap().to_string(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn replay_of_100_bursts_gives_exactly_100_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let (state, log) = replay(dir.path(), 100, "");
    assert!(log.contains("replay: 100 tickets"), "{log}");
    let list = json(&["tickets", "list", "--json", "--state-dir", &state]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 100);
    let mut ids: Vec<&str> = list.iter().map(|t| t["id"].as_str().unwrap()).collect();
    ids.sort_by_key(|id| id[4..].parse::<u32>().unwrap());
    let want: Vec<String> = (1..=100).map(|i| format!("INC-{i}")).collect();
    assert_eq!(ids, want);
    for t in list {
        assert_eq!(t["status"], "resolved", "{t}");
        assert_eq!(t["label"], "storage");
        assert_eq!(t["severity"], "P3");
        assert_eq!(t["fingerprint"], "test-host/anomaly/storage/sdb");
        assert!(t["resolution"]
            .as_str()
            .unwrap()
            .starts_with("recovered: back to normal after"));
        // A 4 min burst opens on its 2nd minute and resolves after 5 normal samples:
        // 7 min. The ticket ends when the host is normal again, not when the
        // smoothed score has decayed (that took over an hour).
        let d = t["duration_seconds"].as_f64().unwrap();
        assert!((4.0 * 60.0..=10.0 * 60.0).contains(&d), "{d}");
    }
    assert!(ok(&["tickets", "list", "--open", "--state-dir", &state])
        .lines()
        .nth(1)
        .is_none());
    // Bursts i and i+1 are 104 min apart, as the tickets' opening times.
    let first = json(&["tickets", "show", "INC-1", "--json", "--state-dir", &state]);
    let second = json(&["tickets", "show", "2", "--json", "--state-dir", &state]);
    assert_eq!(
        second["opened_ms"].as_i64().unwrap() - first["opened_ms"].as_i64().unwrap(),
        104 * 60_000
    );
    let kinds: Vec<&str> = first["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "resolved"]);
    let body = first["body"].as_str().unwrap();
    for section in [
        "# INC-1: storage anomaly on test-host (sdb): disk_busy_ratio{device=\"sdb\"} 98.0 %",
        "## What is anomalous",
        "## Top contributing metrics (at the worst moment)",
        "| `disk_busy_ratio{device=\"sdb\"}` | 98.0 % |",
        "## Affected metrics: the 1 h 00 min before, and since it started",
        "## Forecast",
        "## Remediation",
    ] {
        assert!(body.contains(section), "missing {section:?}:\n{body}");
    }
}

#[test]
fn operators_ack_assign_resolve_and_silence() {
    let dir = tempfile::tempdir().unwrap();
    // Three bursts; the third is silenced by the config (its time window).
    let third_ms = (bursts::T0 + (bursts::NORMAL_ROWS + 2 * 104) as i64 * 60) * 1000;
    let extra = format!(
        "  silences:\n    - matchers: {{label: storage, resource: sdb}}\n      starts: \"{}\"\n      ends: \"{}\"\n      comment: disk swap\n",
        third_ms / 1000 - 60,
        third_ms / 1000 + 3600
    );
    let (state, _) = replay(dir.path(), 3, &extra);
    let list = json(&["tickets", "list", "--json", "--state-dir", &state]);
    let muted: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap(),
                t["muted_by"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    // A resolved ticket keeps no mute (it is over); the silenced one was recorded and
    // its timeline says by which silence.
    assert_eq!(muted.len(), 3);
    let third = json(&["tickets", "show", "INC-3", "--json", "--state-dir", &state]);
    assert_eq!(
        third["timeline"][0]["detail"]["muted_by"], "config[0]",
        "{third}"
    );
    let first = json(&["tickets", "show", "INC-1", "--json", "--state-dir", &state]);
    assert!(first["timeline"][0]["detail"]["muted_by"].is_null());

    // Operator actions need an open ticket: replay one more burst without resolving
    // it (the series ends inside the burst).
    let csv = dir.path().join("bursts.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    let last_ts: i64 = text
        .lines()
        .last()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for k in 1..=4 {
        text.push_str(&format!("{},0.3,0.5,0.98,1000000.0\n", last_ts + k * 60));
    }
    let tail = dir.path().join("tail.csv");
    std::fs::write(&tail, text).unwrap();
    let fresh = dir.path().join("fresh");
    let cfg = dir.path().join("bursts.yaml");
    let out = anomalyd(&[
        "replay",
        "--input",
        tail.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        fresh.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let fresh = fresh.to_str().unwrap();
    let open = json(&["tickets", "list", "--open", "--json", "--state-dir", fresh]);
    let open = open.as_array().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    let id = open[0]["id"].as_str().unwrap().to_string();
    assert_eq!(id, "INC-4");

    assert_eq!(
        ok(&["tickets", "ack", &id, "--by", "alice", "--state-dir", fresh]),
        "INC-4: acknowledged\n"
    );
    ok(&[
        "tickets",
        "assign",
        &id,
        "bob",
        "--by",
        "alice",
        "--state-dir",
        fresh,
    ]);
    let table = ok(&["tickets", "list", "--open", "--state-dir", fresh]);
    assert!(
        table.contains("acknowledged") && table.contains("bob"),
        "{table}"
    );
    ok(&[
        "tickets",
        "resolve",
        &id,
        "--note",
        "replaced sdb",
        "--by",
        "alice",
        "--state-dir",
        fresh,
    ]);
    let t = json(&["tickets", "show", &id, "--json", "--state-dir", fresh]);
    assert_eq!(t["status"], "resolved");
    assert_eq!(t["assignee"], "bob");
    assert_eq!(t["resolution"], "replaced sdb");
    let summaries: Vec<&str> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        &summaries[1..],
        [
            // The three earlier bursts of this replay are the same problem.
            "similar past incidents: INC-3, INC-2, INC-1",
            "acknowledged by alice",
            "assigned to bob by alice",
            "resolved by alice: replaced sdb"
        ]
    );
    let text = ok(&["tickets", "show", &id, "--state-dir", fresh]);
    assert!(
        text.contains("resolution: replaced sdb") && text.contains("## Timeline"),
        "{text}"
    );

    // Clear errors, non-zero exits.
    let out = anomalyd(&["tickets", "ack", &id, "--state-dir", fresh]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INC-4 is resolved"));
    let out = anomalyd(&["tickets", "show", "INC-99", "--state-dir", fresh]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ticket INC-99"));
    let empty = dir.path().join("empty");
    let out = anomalyd(&["tickets", "list", "--state-dir", empty.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ticket store at"));

    // Silences from the shell.
    let added = ok(&[
        "silence",
        "add",
        "--label",
        "storage",
        "--resource",
        "/var",
        "--duration",
        "2h",
        "--comment",
        "migration",
        "--state-dir",
        fresh,
    ]);
    assert!(
        added.starts_with("S-1: silencing label=storage,resource=/var from "),
        "{added}"
    );
    let listed = json(&["silence", "list", "--json", "--state-dir", fresh]);
    assert_eq!(listed[0]["matchers"]["resource"], "/var");
    assert_eq!(
        listed[0]["ends_ms"].as_i64().unwrap() - listed[0]["starts_ms"].as_i64().unwrap(),
        7_200_000
    );
    let out = anomalyd(&[
        "silence",
        "add",
        "--label",
        "disk",
        "--duration",
        "1h",
        "--comment",
        "x",
        "--state-dir",
        fresh,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--label \"disk\" is not one of"));
    ok(&["silence", "remove", "S-1", "--state-dir", fresh]);
    assert_eq!(
        json(&["silence", "list", "--json", "--state-dir", fresh]),
        serde_json::json!([])
    );
}

#[test]
fn daemon_serves_tickets_api() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = replay(dir.path(), 2, "");
    let cfg = dir.path().join("daemon.yaml");
    std::fs::write(&cfg, "interval: 200ms\nmodel:\n  warmup: 1h\n").unwrap();
    let d = Daemon::start(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--state-dir",
            &state,
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let body = d.wait_for("/api/v1/tickets", Duration::from_secs(10), |_| true);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["INC-2", "INC-1"]);
    let (code, body) = d.get("/api/v1/tickets?open=true");
    assert_eq!((code, body.trim()), (200, "[]"));
    let (code, body) = d.get("/api/v1/tickets/INC-1");
    assert_eq!(code, 200);
    let one: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(one["timeline"][0]["kind"], "opened");
    assert_eq!(one["timeline"][1]["kind"], "resolved");
    let (code, body) = d.get("/api/v1/tickets/INC-9");
    assert_eq!(code, 404);
    assert!(body.contains("no ticket INC-9"));
    // The incident metrics are on /metrics, every label x severity, zero now.
    let m = d.wait_for("/metrics", Duration::from_secs(10), |b| {
        b.contains("anomalyd_incidents_open")
    });
    assert_eq!(
        common::metric(
            &m,
            "anomalyd_incidents_open{label=\"storage\",severity=\"P1\"}"
        ),
        Some(0.0)
    );
    // Counters since this daemon started: the replayed incidents are not its own.
    assert!(m.contains("# TYPE anomalyd_incidents_opened_total counter"));
    assert_eq!(
        common::metric(&m, "anomalyd_incidents_opened_total{label=\"storage\"}"),
        Some(0.0)
    );
    d.stop();
}

/// A filesystem filling steadily, then cleaned up: the forecast opens one storage
/// ticket for the mount point, escalates it from the warning to the critical horizon,
/// and resolves it once the trend is gone.
#[test]
fn replayed_fill_opens_one_forecast_ticket_and_escalates() {
    let dir = tempfile::tempdir().unwrap();
    let col = r#""filesystem_available_bytes{mountpoint=""/data"",device=""/dev/sdb1"",fstype=""ext4""}""#;
    let mut csv = format!("timestamp,{col}\n");
    let start = 1_700_000_000i64;
    let mut t = start;
    // 10 GB free, 1 MB/s written (ETA 2 h 47 min at the start), for 2 h 30 min...
    let mut free = 10e9;
    while t < start + 9000 {
        let wobble = if (t / 10) % 2 == 0 { 2e6 } else { -2e6 };
        csv.push_str(&format!("{t},{}\n", free + wobble));
        free -= 10e6;
        t += 10;
    }
    // ...then cleaned up: back to 10 GB free, flat, for an hour.
    while t < start + 12600 {
        csv.push_str(&format!("{t},10000000000\n"));
        t += 10;
    }
    let input = dir.path().join("fill.csv");
    std::fs::write(&input, csv).unwrap();
    let cfg = dir.path().join("fill.yaml");
    std::fs::write(
        &cfg,
        "interval: 10s\nmodel:\n  enabled: false\nincidents:\n  host: test-host\n\
         forecast:\n  window: 20m\n  min_span: 5m\n  warning: 2h\n  critical: 30m\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = anomalyd(&[
        "replay",
        "--input",
        input.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let state = state.to_str().unwrap();
    let list = json(&["tickets", "list", "--json", "--state-dir", state]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:#?}");
    let id = list[0]["id"].as_str().unwrap().to_string();
    let t = json(&["tickets", "show", &id, "--json", "--state-dir", state]);
    let text = t.to_string();
    assert_eq!(t["label"], "storage", "{text}");
    assert_eq!(t["class"], "forecast", "{text}");
    assert_eq!(t["incident"]["resource"], "/data", "{text}");
    assert_eq!(t["severity"], "P1", "critical forecast is P1: {text}");
    assert_eq!(t["status"], "resolved", "{text}");
    // Opened at the warning horizon (P2), then made worse, not opened twice.
    assert!(text.contains("P2"), "{text}");
    let opened = t["opened_ms"].as_i64().unwrap() / 1000 - start;
    // True ETA at the 2 h horizon: 10 GB / 1 MB/s - 2 h = 2800 s after the start
    // (plus the 5 min the trend needs): it must not open long before or after.
    assert!(
        (2500..=3700).contains(&opened),
        "opened {opened} s in: {text}"
    );
}

/// The ticket's fields as its body's table shows them, in order.
fn body_fields(body: &str) -> Vec<(String, String)> {
    body.lines()
        .skip_while(|l| *l != "|---|---|")
        .skip(1)
        .take_while(|l| l.starts_with("| "))
        .map(|l| {
            let (k, v) = l
                .trim_start_matches("| ")
                .trim_end_matches(" |")
                .split_once(" | ")
                .unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Every field of `t`'s body against the ticket's own fields; and what sinks got last.
fn assert_body_agrees(t: &anomalyd::tickets::Ticket, step: &str, db: &Path) {
    use anomalyd::text::{fmt_duration_ms, fmt_time};
    let body = &t.body;
    assert!(
        body.starts_with(&format!("# {}: {}\n", t.id, t.title)),
        "{step}: title\n{body}"
    );
    let mut want = vec![
        ("Severity", t.severity.clone()),
        ("Label", t.label.clone()),
        ("Class", t.class.clone()),
        ("Host", t.incident.host.clone()),
        (
            "Resource",
            t.incident.resource.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Opened", fmt_time(t.opened_ms)),
    ];
    if t.incident.opened_ms > t.opened_ms {
        want.push(("Reopened", fmt_time(t.incident.opened_ms)));
    }
    let state = match t.resolved_ms {
        Some(r) => format!(
            "resolved at {} after {}",
            fmt_time(r),
            fmt_duration_ms(r - t.opened_ms)
        ),
        None => t.status.as_str().to_string(),
    };
    want.push(("State", state));
    want.push(("Assignee", t.assignee.clone().unwrap_or_else(|| "-".into())));
    if let Some(r) = &t.resolution {
        want.push(("Resolution", r.clone()));
    }
    want.push(("Fingerprint", format!("`{}`", t.fingerprint)));
    if let Some(m) = &t.muted_by {
        want.push(("Silenced by", format!("{m} (not sent to the sinks)")));
    }
    let want: Vec<(String, String)> = want
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.replace('|', "\\|")))
        .collect();
    assert_eq!(body_fields(body), want, "{step}:\n{body}");
    // What the body says about "now" is for open tickets only.
    let resolved = t.status == anomalyd::tickets::Status::Resolved;
    assert_eq!(
        body.contains("Latest score: "),
        !resolved,
        "{step}: latest score on a {:?} ticket:\n{body}",
        t.status
    );
    assert!(
        !body.contains("still anomalous") || !resolved,
        "{step}:\n{body}"
    );
    // The sinks got this very body with the change.
    let conn = rusqlite::Connection::open(db).unwrap();
    let rows = anomalyd::tickets::outbox::rows(&conn).unwrap();
    let last = rows
        .iter()
        .rev()
        .find(|r| r.delivery.ticket_id == t.id)
        .unwrap_or_else(|| panic!("{step}: nothing queued"));
    assert_eq!(last.delivery.body, *body, "{step}: the sinks' body");
}

/// Open, update, ack, assign, operator resolve, reopen, automatic resolve: after each,
/// every field of the body (the report the sinks receive) is the ticket's.
#[test]
fn the_body_says_what_the_ticket_says_after_every_change() {
    use anomalyd::incident::{AnomalySignal, Cause, Signals};
    use anomalyd::pipeline::Incidents;
    use anomalyd::sample::Record;
    use anomalyd::store::StateDir;
    use anomalyd::tickets::{Status, Store};

    let dir = tempfile::tempdir().unwrap();
    // No recent-level rule: a fresh engine has no recent past to stand out from.
    let config = anomalyd::settings::parse(
        "incidents:\n  host: web1\n  recent_factor: 0\ntickets:\n  sinks:\n  - name: hook\n    \
         type: webhook\n    url: http://127.0.0.1:9/t\n",
    )
    .unwrap();
    let state = StateDir::at(dir.path());
    let mut stages = Incidents::open(&config, &state, 0).unwrap();
    let db = dir.path().join("tickets.db");
    // The operator's side: another connection, as `anomalyd tickets ...` has.
    let cli = || Store::open(&db).unwrap().with_sinks(vec!["hook".into()]);
    let busy = "disk_busy_ratio{device=\"sdb\"}";
    let latency = "disk_write_latency_seconds{device=\"sdb\"}";
    let cause = |feature: &str, value: f64, contribution: f64| Cause {
        feature: feature.into(),
        value,
        baseline: 0.1,
        contribution,
    };
    let signal = |score: f64, sample_anomalous: bool, causes: Vec<Cause>| Signals {
        anomaly: Some(AnomalySignal {
            score,
            threshold: 1.0,
            sample_anomalous,
            sample_opens: sample_anomalous,
            causes,
        }),
        ..Signals::default()
    };
    let busy_disk = || signal(12.0, true, vec![cause(busy, 0.9, 10.0)]);
    let slow_too = || {
        signal(
            20.0,
            true,
            vec![cause(busy, 0.95, 11.0), cause(latency, 0.3, 8.0)],
        )
    };
    let normal = signal(0.2, false, Vec::new());
    // One tick a minute.
    let mut t = 1_700_000_000_000i64;
    let mut tick = |stages: &mut Incidents, signals: &Signals| {
        t += 60_000;
        let record = Record {
            timestamp_ms: Some(t),
            values: vec![(busy.to_string(), 0.9), (latency.to_string(), 0.05)],
        };
        stages.tick(t, &record, signals);
        t
    };
    let ticket = || cli().get("INC-1", i64::MAX).unwrap();
    let show = |step: &str| {
        let t = ticket().unwrap_or_else(|| panic!("{step}: no ticket"));
        assert_body_agrees(&t, step, &db);
        t
    };
    // Tick with `signals` until `done` says the ticket got there (the engine decides
    // how many ticks that takes: persistence, slow recovery).
    let mut until = |stages: &mut Incidents,
                     signals: &Signals,
                     done: &dyn Fn(&anomalyd::tickets::Ticket) -> bool| {
        for _ in 0..30 {
            let now = tick(stages, signals);
            if ticket().is_some_and(|t| done(&t)) {
                return now;
            }
        }
        panic!("never got there: {:?}", ticket());
    };

    let now = until(&mut stages, &busy_disk(), &|_| true);
    assert_eq!(show("open").status, Status::Open);
    until(&mut stages, &slow_too(), &|t| {
        t.timeline.last().is_some_and(|e| e.kind == "updated")
    });
    show("update");
    assert!(cli().ack("INC-1", Some("alice"), now).unwrap());
    assert_eq!(show("ack").assignee.as_deref(), Some("alice"));
    assert!(cli()
        .assign("INC-1", "bob", Some("alice"), now + 1)
        .unwrap());
    show("assign");
    cli()
        .resolve("INC-1", "replaced sdb", Some("alice"), now + 2)
        .unwrap();
    assert_eq!(
        show("operator resolve").resolution.as_deref(),
        Some("replaced sdb")
    );
    // The problem goes on: the engine notices the resolution, then reopens.
    until(&mut stages, &busy_disk(), &|t| t.status == Status::Open);
    let reopened = show("reopen");
    assert_eq!(reopened.timeline.last().unwrap().kind, "reopened");
    until(&mut stages, &normal, &|t| t.status == Status::Resolved);
    let resolved = show("automatic resolve");
    assert!(
        resolved
            .resolution
            .as_deref()
            .unwrap()
            .starts_with("recovered"),
        "{resolved:?}"
    );
    // A post-mortem owner for the resolved ticket: the body follows (and the sinks,
    // whose last word was the resolution, get nothing more).
    let queued = |db: &Path| {
        let conn = rusqlite::Connection::open(db).unwrap();
        anomalyd::tickets::outbox::rows(&conn).unwrap().len()
    };
    let before = queued(&db);
    assert!(cli().assign("INC-1", "carol", None, now + 60_000).unwrap());
    let t = ticket().unwrap();
    assert_eq!(t.assignee.as_deref(), Some("carol"));
    assert!(t.body.contains("| Assignee | carol |"), "{}", t.body);
    assert_eq!(queued(&db), before);
}

/// A state directory with INC-1 resolved and INC-2 still open (the series ends inside
/// the second burst).
fn one_resolved_one_open(dir: &Path) -> String {
    let (csv, cfg) = bursts::write(dir, 1, "");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    let last: i64 = text.lines().last().unwrap()[..10].parse().unwrap();
    for k in 1..=4 {
        text.push_str(&format!("{},0.3,0.5,0.98,1000000.0\n", last + k * 60));
    }
    std::fs::write(&csv, text).unwrap();
    let state = dir.join("state");
    ok(&[
        "replay",
        "--input",
        csv.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    state.to_str().unwrap().to_string()
}

fn summaries(state: &str, id: &str) -> Vec<String> {
    json(&["tickets", "show", id, "--json", "--state-dir", state])["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ack_once_by_a_named_user_assign_resolved_tickets_silence_by_regex() {
    let dir = tempfile::tempdir().unwrap();
    let state = one_resolved_one_open(dir.path());
    let state = state.as_str();
    // No $USER (cron, `env -i`): the uid's name is recorded.
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(me.stdout).unwrap().trim().to_string();
    let out = std::process::Command::new(common::bin())
        .args(["tickets", "ack", "INC-2", "--state-dir", state])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "INC-2: acknowledged\n"
    );
    assert_eq!(
        summaries(state, "INC-2").last().unwrap(),
        &format!("acknowledged by {me}")
    );
    // A second ack adds nothing.
    let before = summaries(state, "INC-2").len();
    assert_eq!(
        ok(&[
            "tickets",
            "ack",
            "INC-2",
            "--by",
            "alice",
            "--state-dir",
            state
        ]),
        "INC-2: already acknowledged\n"
    );
    assert_eq!(summaries(state, "INC-2").len(), before);
    // A post-mortem owner for a resolved ticket; who assigned it is recorded, as
    // who resolves one is.
    let as_nobody_in_particular = |args: &[&str]| {
        let out = std::process::Command::new(common::bin())
            .args(args)
            .env_remove("USER")
            .env_remove("LOGNAME")
            .env_remove("SUDO_USER")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        as_nobody_in_particular(&["tickets", "assign", "INC-1", "carol", "--state-dir", state]),
        "INC-1: assigned to carol\n"
    );
    assert_eq!(
        summaries(state, "INC-1").last().unwrap(),
        &format!("assigned to carol by {me}")
    );
    as_nobody_in_particular(&[
        "tickets",
        "resolve",
        "INC-2",
        "--note",
        "fixed",
        "--state-dir",
        state,
    ]);
    assert_eq!(
        summaries(state, "INC-2").last().unwrap(),
        &format!("resolved by {me}: fixed")
    );
    let t = json(&["tickets", "show", "INC-1", "--json", "--state-dir", state]);
    assert_eq!(
        (t["status"].as_str(), t["assignee"].as_str()),
        (Some("resolved"), Some("carol"))
    );
    assert!(t["body"].as_str().unwrap().contains("| Assignee | carol |"));
    // `--resource` is a regular expression, like a rule's; a broken one is refused.
    let out = anomalyd(&[
        "silence",
        "add",
        "--resource",
        "([",
        "--duration",
        "1h",
        "--comment",
        "x",
        "--state-dir",
        state,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--resource: invalid regular expression \"([\": non-empty character class has no closing bracket"),
        "{err}"
    );
    ok(&[
        "silence",
        "add",
        "--resource",
        "sd[a-c]",
        "--duration",
        "1h",
        "--comment",
        "swap",
        "--state-dir",
        state,
    ]);
    let listed = json(&["silence", "list", "--json", "--state-dir", state]);
    assert_eq!(listed[0]["matchers"]["resource"], "sd[a-c]");
}

/// The knowledge base, replayed: a disk problem that comes back three times and a CPU
/// problem between them. The series is replayed in pieces so that an operator can
/// resolve the first two disk tickets with a note in between, as on a live host; each
/// piece starts with its own normal stretch in a fresh state directory that gets the
/// tickets database of the one before (a replay trains on its state's history, and a
/// model trained on a burst would not see the next one). The third disk ticket lists
/// the first two, with their notes, and not the CPU one.
#[test]
fn a_recurring_disk_problem_finds_its_past_tickets_and_their_notes() {
    use bursts::Part::{Cpu, Disk, Normal};
    let dir = tempfile::tempdir().unwrap();
    let (_, cfg) = bursts::write(dir.path(), 0, "");
    let csv = dir.path().join("part.csv");
    let state = |n: usize| dir.path().join(format!("state{n}"));
    let replay = |n: usize, first: usize, parts: &[bursts::Part]| {
        let next = bursts::write_parts(&csv, first, parts);
        std::fs::create_dir_all(state(n)).unwrap();
        if n > 0 {
            std::fs::copy(state(n - 1).join("tickets.db"), state(n).join("tickets.db")).unwrap();
        }
        ok(&[
            "replay",
            "--input",
            csv.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--state-dir",
            state(n).to_str().unwrap(),
        ]);
        next
    };
    let resolve = |n: usize, id: &str, note: &str| {
        let st = state(n);
        ok(&[
            "tickets",
            "resolve",
            id,
            "--note",
            note,
            "--state-dir",
            st.to_str().unwrap(),
        ]);
    };
    // Each disk burst ends with its ticket still open (too few normal rows to
    // resolve it): the operator resolves it.
    let warm = bursts::NORMAL_ROWS;
    let next = replay(0, 0, &[Normal(warm), Disk(4), Normal(1)]);
    resolve(0, "INC-1", "rotated the app logs");
    let next = replay(1, next, &[Normal(warm), Disk(4), Normal(1)]);
    resolve(1, "INC-2", "app logs again; cron job added");
    replay(
        2,
        next,
        &[Normal(warm), Cpu(4), Normal(100), Disk(4), Normal(100)],
    );
    let st = state(2);
    let state = st.to_str().unwrap();
    let list = json(&["tickets", "list", "--json", "--state-dir", state]);
    let label = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .map(|t| t["label"].as_str().unwrap().to_string())
    };
    assert_eq!(label("INC-3").as_deref(), Some("cpu"), "{list}");
    assert_eq!(label("INC-4").as_deref(), Some("storage"), "{list}");
    let t = json(&["tickets", "show", "INC-4", "--json", "--state-dir", state]);
    let body = t["body"].as_str().unwrap();
    let section = body
        .split("## Similar past incidents")
        .nth(1)
        .unwrap_or_else(|| panic!("no similar incidents in\n{body}"))
        .split("\n## ")
        .next()
        .unwrap();
    assert!(
        section.contains("Seen 3 times in 30 days on this host."),
        "{section}"
    );
    let items: Vec<&str> = section.lines().filter(|l| l.starts_with("- **")).collect();
    assert_eq!(items.len(), 2, "{section}");
    assert!(
        items[0].starts_with("- **INC-2** ") && items[0].contains("same problem"),
        "{section}"
    );
    assert!(items[1].starts_with("- **INC-1** "), "{section}");
    assert!(
        section.contains("  - Resolution: app logs again; cron job added"),
        "{section}"
    );
    assert!(
        section.contains("  - Resolution: rotated the app logs"),
        "{section}"
    );
    assert!(!section.contains("INC-3"), "{section}");
    // The CPU ticket found no disk ticket (its causes are another metric).
    let cpu = json(&["tickets", "show", "INC-3", "--json", "--state-dir", state]);
    assert!(!cpu["body"]
        .as_str()
        .unwrap()
        .contains("## Similar past incidents"));
}

/// `tickets report` on a replayed month, compared with a checked-in golden file
/// (`UPDATE_GOLDEN=1 cargo test --profile ci --test it tickets_report` rewrites it;
/// review the diff). The month: 200 quiet minutes, then a 4-minute burst every 104
/// minutes, every 4th on the CPU and the others on the disk, each its own ticket.
/// An operator's month is then written through the store as `tickets ack` and the
/// remediation stage record it, back-dated: every 3rd ticket acknowledged 1 to 5
/// minutes after it opened, a run of `clean-app-logs` on every 5th, verified on two
/// of three of those that succeeded. The replay runs with tight P3 response levels
/// (5 min to acknowledge, 6 min to resolve) and nobody acknowledges during it (the
/// acknowledgements are written afterwards): the tickets open that long breach.
#[test]
fn tickets_report_of_a_replayed_month_matches_its_golden_file() {
    use bursts::Part::{Cpu, Disk, Normal};
    let dir = tempfile::tempdir().unwrap();
    let (_, cfg) = bursts::write(
        dir.path(),
        0,
        "tickets:\n  response:\n    levels:\n      P3: {acknowledge: 5m, resolve: 6m}\n",
    );
    let csv = dir.path().join("month.csv");
    let mut parts = vec![Normal(bursts::NORMAL_ROWS)];
    let bursts_n = (30 * 1440 - bursts::NORMAL_ROWS) / 104;
    for i in 0..bursts_n {
        parts.push(if i % 4 == 3 { Cpu(4) } else { Disk(4) });
        parts.push(Normal(100));
    }
    let rows = bursts::write_parts(&csv, 0, &parts);
    let state = dir.path().join("state");
    ok(&[
        "replay",
        "--input",
        csv.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let store = anomalyd::tickets::Store::open(&state.join("tickets.db")).unwrap();
    let min = 60_000;
    for t in store.list(false, 0).unwrap() {
        let seq: i64 = t.id[4..].parse().unwrap();
        if seq % 3 == 0 {
            let at = t.opened_ms + (seq % 5 + 1) * min;
            store
                .add_event(
                    &t.id,
                    at,
                    "acknowledged",
                    "acknowledged by alice",
                    &serde_json::Value::Null,
                )
                .unwrap();
        }
        if seq % 5 == 0 {
            let ok_run = seq % 10 != 5 || seq % 15 == 0;
            let run = format!("run-{seq}");
            store
                .add_event(
                    &t.id,
                    t.opened_ms + min,
                    "action",
                    "remediation \"clean-app-logs\"",
                    &serde_json::json!({"id": run, "rule": "clean-app-logs", "result": if ok_run { "ok" } else { "failed" }}),
                )
                .unwrap();
            if ok_run {
                let verify = if seq % 3 == 0 {
                    "not_verified"
                } else {
                    "resolved"
                };
                store
                    .add_event(
                        &t.id,
                        t.opened_ms + 5 * min,
                        "action",
                        "remediation \"clean-app-logs\" checked",
                        &serde_json::json!({"verify": verify, "rule": "clean-app-logs", "run": run}),
                    )
                    .unwrap();
            }
        }
    }
    let until = anomalyd::text::fmt_rfc3339((bursts::T0 + (rows as i64 - 1) * 60) * 1000);
    let got = ok(&[
        "tickets",
        "report",
        "--since",
        "30d",
        "--until",
        &until,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tickets_report.md");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want =
        std::fs::read_to_string(&golden).expect("golden file (create it with UPDATE_GOLDEN=1)");
    assert_eq!(
        got,
        want,
        "tickets report differs from {}",
        golden.display()
    );
    // The JSON form has the same figures.
    let v = json(&[
        "tickets",
        "report",
        "--since",
        "30d",
        "--until",
        &until,
        "--format",
        "json",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(v["tickets"].as_u64().unwrap() as usize, bursts_n);
    assert_eq!(
        v["response"]["P3"]["resolved"].as_u64().unwrap() as usize,
        bursts_n
    );
    // Bad input is a clear error.
    for (args, says) in [
        (
            ["--until", "yesterday"],
            "--until \"yesterday\" is not a time (RFC 3339",
        ),
        (["--since", "10s"], "--since"),
        (["--format", "pdf"], "--format"),
    ] {
        let mut a = vec!["tickets", "report", "--state-dir", state.to_str().unwrap()];
        a.extend(args);
        let out = anomalyd(&a);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
}
