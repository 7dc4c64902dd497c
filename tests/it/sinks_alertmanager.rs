//! The Alertmanager sink against a real Alertmanager (Debian's
//! `prometheus-alertmanager`, installed by tests/run.sh), started here on loopback with
//! clustering disabled: the alert arrives with our labels, is refreshed by re-sends
//! while firing, follows a severity change, and is gone from the active list once
//! resolved.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::sinks::*;
use anomalyd::incident::Severity;
use anomalyd::sample::now_ms;
use anomalyd::tickets::outbox::Deliverer;
use anomalyd::tickets::DeliveryKind;
use serde_json::Value;

const BIN: &str = "/usr/bin/prometheus-alertmanager";

struct Am {
    child: Child,
    url: String,
}

impl Drop for Am {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> Option<String> {
    let mut r = ureq::get(url).call().ok()?;
    r.body_mut().read_to_string().ok()
}

/// Alertmanager on `127.0.0.1:port`, once it answers ready.
fn start_alertmanager(dir: &std::path::Path, port: u16) -> Am {
    let cfg = dir.join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n- name: blackhole\n",
    )
    .expect("write config");
    let child = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-alertmanager (apt-get install prometheus-alertmanager)");
    let am = Am {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let t0 = Instant::now();
    while get(&format!("{}/-/ready", am.url)).is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "alertmanager not ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    am
}

fn alerts(am: &Am) -> Vec<Value> {
    let body = get(&format!("{}/api/v2/alerts", am.url)).expect("GET /api/v2/alerts");
    match serde_json::from_str(&body).expect("JSON") {
        Value::Array(a) => a,
        other => panic!("expected a list, got {other}"),
    }
}

fn ours(am: &Am) -> Vec<Value> {
    alerts(am)
        .into_iter()
        .filter(|a| a["labels"]["fingerprint"] == "web-1/forecast/var")
        .collect()
}

#[test]
fn alert_fires_is_refreshed_and_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let am = start_alertmanager(dir.path(), free_port());
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- name: am\n  type: alertmanager\n  url: {}/\n  resend_interval: 1s\n  labels: {{team: infra}}\n",
        am.url
    ))
    .expect("config");
    let db = dir.path().join("tickets.db");
    let fp = "web-1/forecast/var";
    let t0 = now_ms();
    enqueue(
        &db,
        "am",
        &[delivery("d1", "INC-7", fp, DeliveryKind::Open, t0)],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let rep = d.run_once(now_ms());
    assert_eq!((rep.delivered, rep.pending), (1, 0), "{rep:?}");

    let a = ours(&am);
    assert_eq!(a.len(), 1, "{a:?}");
    let l = &a[0]["labels"];
    assert_eq!(l["alertname"], "anomalyd_forecast");
    assert_eq!(l["host"], "web-1");
    assert_eq!(l["area"], "storage");
    assert_eq!(l["severity"], "P2");
    assert_eq!(l["resource"], "/var");
    assert_eq!(l["team"], "infra");
    assert_eq!(a[0]["status"]["state"], "active");
    assert_eq!(a[0]["annotations"]["ticket"], "INC-7");
    assert_eq!(
        a[0]["annotations"]["summary"],
        "storage: /var full in 3 h 10 min"
    );
    let ends1 = a[0]["endsAt"].as_str().expect("endsAt").to_string();

    // Re-sent while firing: endsAt moves forward.
    std::thread::sleep(Duration::from_millis(1200));
    let rep = d.run_once(now_ms());
    assert_eq!(rep.resent, 1, "{rep:?}");
    let a = ours(&am);
    let ends2 = a[0]["endsAt"].as_str().expect("endsAt").to_string();
    assert!(ends2 > ends1, "{ends2} should be after {ends1}");

    // Severity P2 -> P1 changes the label set: the P2 alert ends, a P1 alert fires.
    let mut up = delivery("d2", "INC-7", fp, DeliveryKind::Update, now_ms());
    up.incident.severity = Severity::P1;
    enqueue(&db, "am", &[up]);
    assert_eq!(d.run_once(now_ms()).delivered, 1);
    let a = ours(&am);
    assert_eq!(a.len(), 1, "only the P1 alert is active: {a:?}");
    assert_eq!(a[0]["labels"]["severity"], "P1");

    // Resolve: endsAt = now, and Alertmanager no longer lists it.
    let mut res = delivery("d3", "INC-7", fp, DeliveryKind::Resolve, now_ms());
    res.incident.severity = Severity::P1;
    enqueue(&db, "am", &[res]);
    assert_eq!(d.run_once(now_ms()).delivered, 1);
    let t = Instant::now();
    while !ours(&am).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ours(&am).is_empty(), "resolved alert still active");
    // And it is not re-sent any more.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(d.run_once(now_ms()).resent, 0);
    assert!(ours(&am).is_empty());
}

#[test]
fn alertmanager_down_then_up_gets_the_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- {{name: am, type: alertmanager, url: 'http://127.0.0.1:{port}', retry_initial: 50ms, retry_max: 100ms}}\n"
    ))
    .expect("config");
    let db = dir.path().join("tickets.db");
    enqueue(
        &db,
        "am",
        &[delivery(
            "d1",
            "INC-1",
            "web-1/forecast/var",
            DeliveryKind::Open,
            now_ms(),
        )],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let rep = d.run_once(now_ms());
    assert_eq!((rep.failed, rep.pending), (1, 1));
    // Now start it, on the configured port.
    let am = start_alertmanager(dir.path(), port);
    let t0 = Instant::now();
    while ours(&am).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "alert never arrived"
        );
        d.run_once(now_ms());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.stats().count("am", "delivered"), 1);
}
