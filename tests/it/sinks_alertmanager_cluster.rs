//! The Alertmanager sink against a real two-instance Alertmanager cluster (Debian's
//! `prometheus-alertmanager`, gossip on loopback ports), configured with `urls:` as
//! Alertmanager's high-availability contract asks: every alert to every instance. One
//! instance is killed mid-incident; the alert still fires and resolves, and the
//! receiver (a local webhook) gets one notification per state change, not one per
//! instance.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::sinks::*;
use anomalyd::sample::now_ms;
use anomalyd::tickets::outbox::Deliverer;
use anomalyd::tickets::DeliveryKind;
use serde_json::Value;

const BIN: &str = "/usr/bin/prometheus-alertmanager";
const FP: &str = "web-1/forecast/var";

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

/// One cluster member: web on `web`, gossip on `gossip`, `peer` the other's gossip
/// port. Short peer timeout (the wait between instances before the next one sends)
/// and settle time, so the test takes seconds, not minutes.
fn start_member(
    dir: &std::path::Path,
    name: &str,
    web: u16,
    gossip: u16,
    peer: u16,
    hook: &str,
) -> Am {
    let cfg = dir.join(format!("{name}.yml"));
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: [fingerprint]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: {hook}/\n    send_resolved: true\n"
        ),
    )
    .expect("write config");
    let child = Command::new(BIN)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join(name).display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .arg(format!("--cluster.listen-address=127.0.0.1:{gossip}"))
        .arg(format!("--cluster.advertise-address=127.0.0.1:{gossip}"))
        .arg(format!("--cluster.peer=127.0.0.1:{peer}"))
        .arg("--cluster.peer-timeout=2s")
        .arg("--cluster.settle-timeout=3s")
        .arg("--cluster.pushpull-interval=2s")
        .arg("--cluster.reconnect-interval=1s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-alertmanager (apt-get install prometheus-alertmanager)");
    Am {
        child,
        url: format!("http://127.0.0.1:{web}"),
    }
}

/// Both members ready and each seeing two peers.
fn wait_clustered(ams: &[&Am]) {
    let t0 = Instant::now();
    loop {
        let peers: Vec<usize> = ams
            .iter()
            .map(|am| {
                get(&format!("{}/api/v2/status", am.url))
                    .and_then(|b| serde_json::from_str::<Value>(&b).ok())
                    .and_then(|v| v["cluster"]["peers"].as_array().map(Vec::len))
                    .unwrap_or(0)
            })
            .collect();
        if peers.iter().all(|&n| n == 2) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "cluster never formed: peers seen {peers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn active(am: &Am) -> usize {
    let body = get(&format!("{}/api/v2/alerts", am.url)).unwrap_or_default();
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|a| a["labels"]["fingerprint"] == FP && a["status"]["state"] == "active")
        .count()
}

/// The webhook notifications about our alert, by status (`firing`, `resolved`).
fn notifications(hook: &Server, status: &str) -> usize {
    hook.requests()
        .iter()
        .map(Request::json)
        .filter(|n| n["status"] == status)
        .filter(|n| {
            n["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["labels"]["fingerprint"] == FP))
        })
        .count()
}

/// Keep the outbox running (re-sends included) for `d`, or until `until` holds.
fn run_for(d: &mut Deliverer, dur: Duration, until: impl Fn() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < dur {
        d.run_once(now_ms());
        if until() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    until()
}

#[test]
fn cluster_of_two_one_killed_mid_incident_notifies_once_per_state_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hook = Server::start(Box::new(|_| (200, String::new())));
    let (web_a, web_b, gossip_a, gossip_b) = (free_port(), free_port(), free_port(), free_port());
    let a = start_member(dir.path(), "a", web_a, gossip_a, gossip_b, &hook.url());
    let b = start_member(dir.path(), "b", web_b, gossip_b, gossip_a, &hook.url());
    wait_clustered(&[&a, &b]);

    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- name: am\n  type: alertmanager\n  urls: ['{}', '{}']\n  resend_interval: 2s\n  retry_initial: 100ms\n  retry_max: 200ms\n",
        a.url, b.url
    ))
    .expect("config");
    let db = dir.path().join("tickets.db");
    enqueue(
        &db,
        "am",
        &[delivery("d1", "INC-7", FP, DeliveryKind::Open, now_ms())],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let rep = d.run_once(now_ms());
    assert_eq!((rep.delivered, rep.pending), (1, 0), "{rep:?}");
    // Sent to each: both instances hold the alert.
    assert_eq!((active(&a), active(&b)), (1, 1));

    // Firing: one notification, although both instances have the alert. Wait past
    // the second instance's turn (peer timeout 2 s after group_wait) to be sure.
    assert!(
        run_for(&mut d, Duration::from_secs(30), || notifications(
            &hook, "firing"
        ) >= 1),
        "no firing notification"
    );
    run_for(&mut d, Duration::from_secs(6), || false);
    assert_eq!(notifications(&hook, "firing"), 1, "{:?}", hook.requests());

    // One instance dies mid-incident. Re-sends go on (to the survivor), so the alert
    // keeps firing there past the endsAt of the last POST the dead one got.
    drop(a);
    run_for(&mut d, Duration::from_secs(10), || false);
    assert_eq!(active(&b), 1, "the alert must still fire on the survivor");
    assert_eq!(d.stats().count("am", "delivered"), 1);

    // Resolve: delivered (the survivor took it), one resolved notification.
    enqueue(
        &db,
        "am",
        &[delivery("d2", "INC-7", FP, DeliveryKind::Resolve, now_ms())],
    );
    let rep = d.run_once(now_ms());
    assert_eq!((rep.delivered, rep.pending), (1, 0), "{rep:?}");
    assert!(
        run_for(&mut d, Duration::from_secs(30), || notifications(
            &hook, "resolved"
        ) >= 1),
        "no resolved notification"
    );
    run_for(&mut d, Duration::from_secs(6), || false);
    assert_eq!(
        (
            notifications(&hook, "firing"),
            notifications(&hook, "resolved")
        ),
        (1, 1),
        "one notification per state change: {:?}",
        hook.requests()
            .iter()
            .map(|r| r.json()["status"].clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(active(&b), 0);
}
