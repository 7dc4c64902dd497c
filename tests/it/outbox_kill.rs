//! Fault test with a real daemon: 100 distinct tickets are opened through the real
//! ticket store in `DIR/tickets.db` while nothing delivers them; then `anomalyd run
//! --state-dir DIR` starts delivering to a slow webhook receiver (20 ms per request),
//! gets SIGKILL after ~30 deliveries, is restarted, and finishes.
//!
//! Asserted: the receiver ends with exactly 100 distinct "open" delivery ids for the
//! 100 tickets INC-1..INC-100, all correctly signed; raw "open" requests are 100, plus
//! at most one repeat (the request in flight when the kill came: sent again with the
//! same delivery id, which is the webhook's documented at-least-once + idempotency-key
//! contract), and at most one repeated request of any kind; per ticket the open
//! arrives before its resolve (the restarted daemon's desk resolves the tickets whose
//! incidents it no longer tracks); every outbox row ends delivered, one distinct id
//! per row; the secret appears nowhere in the daemon's logs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::sinks::*;
use crate::common::Daemon;
use anomalyd::tickets::outbox;

const SECRET: &str = "kill-test-secret-5d0e";

#[test]
fn kill_9_mid_delivery_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let rx = Server::start(Box::new(|req| {
        std::thread::sleep(Duration::from_millis(20));
        if req.method == "POST" && req.path() == "/t" && signed(req, SECRET) {
            (200, "{}".into())
        } else {
            (401, "{}".into())
        }
    }));
    let cfg = dir.path().join("anomalyd.yaml");
    std::fs::write(
        &cfg,
        format!(
            "interval: 200ms\ncollectors:\n  ping:\n    enabled: false\nmodel:\n  enabled: false\n\
             tickets:\n  sinks:\n  - name: hook\n    type: webhook\n    url: {}/t\n    secret_env: HOOK_SECRET\n    retry_initial: 50ms\n    retry_max: 500ms\n",
            rx.url()
        ),
    )
    .unwrap();

    // 100 tickets through the real store path (one transaction each, deliveries queued
    // in it), before any daemon runs.
    let tickets: Vec<(String, String)> = (1..=100)
        .map(|i| (format!("INC-{i}"), format!("web-1/anomaly/fp{i}")))
        .collect();
    open_tickets(&state.join("tickets.db"), &["hook"], &tickets);

    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let env = [("HOOK_SECRET", SECRET)];
    let mut d = Daemon::start(dir.path(), &args, &env);
    d.wait_log("ticket delivery started", Duration::from_secs(20));
    let before = rx.wait(Duration::from_secs(30), |r| r.len() >= 30);
    assert!(before.len() >= 30, "only {} deliveries", before.len());
    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    let at_kill = rx.requests().len();
    eprintln!("killed after {at_kill} requests");
    assert!(at_kill < 100, "the kill came too late to test anything");
    let mut logs = d.lines.clone();
    while let Ok(l) = d.log.try_recv() {
        logs.push(l);
    }
    drop(d);

    let d = Daemon::start(dir.path(), &args, &env);
    // Done when the 100 opens have arrived and the daemon's outbox is empty (the
    // restarted daemon's ticket desk may also resolve the 100 tickets, whose engine
    // state it no longer has: those resolves are delivered too).
    let t0 = Instant::now();
    let settled = || {
        let conn = rusqlite::Connection::open(state.join("tickets.db")).unwrap();
        let rows = outbox::rows(&conn).unwrap();
        let reqs = rx.requests();
        distinct_ids(&events(&reqs, "open")).len() >= 100
            && rows.iter().all(|r| r.delivered_ms.is_some())
            && distinct_ids(&reqs).len() == rows.len()
    };
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "not all delivered: {} requests",
            rx.requests().len()
        );
        if settled() {
            // A duplicate, or a late resolve, would come within a poll or two.
            std::thread::sleep(Duration::from_millis(1500));
            if settled() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, metrics) = d.get("/metrics");
    assert!(metrics.contains("anomalyd_outbox_pending{sink=\"hook\"} 0"));
    assert!(
        metrics.contains("anomalyd_sink_deliveries_total{"),
        "{metrics}"
    );
    while let Ok(l) = d.log.try_recv() {
        logs.push(l);
    }
    logs.extend(d.lines.clone());
    let (exit, _) = d.stop();
    assert!(exit.success());
    let reqs = rx.requests();
    let opens = events(&reqs, "open");
    let resolves = events(&reqs, "resolve");
    eprintln!(
        "raw requests: {} ({} open, {} resolve), distinct ids: {}",
        reqs.len(),
        opens.len(),
        resolves.len(),
        distinct_ids(&reqs).len()
    );

    assert!(
        reqs.iter().all(|r| signed(r, SECRET)),
        "every request signed"
    );
    assert_eq!(
        distinct_ids(&opens).len(),
        100,
        "distinct open delivery ids"
    );
    let tickets: BTreeSet<String> = opens.iter().map(ticket).collect();
    let want: BTreeSet<String> = (1..=100).map(|i| format!("INC-{i}")).collect();
    assert_eq!(tickets, want, "distinct tickets opened");
    assert!(
        (100..=101).contains(&opens.len()),
        "raw open requests {} (100, plus at most the one in flight at the kill)",
        opens.len()
    );
    assert!(
        reqs.len() - distinct_ids(&reqs).len() <= 1,
        "at most one request repeated (the one in flight at the kill)"
    );
    // Per ticket, the open arrives before its resolve.
    for (i, r) in reqs.iter().enumerate() {
        if r.json()["event"] == "resolve" {
            let t = ticket(r);
            assert!(
                reqs[..i]
                    .iter()
                    .any(|o| o.json()["event"] == "open" && ticket(o) == t),
                "{t}: resolve before open"
            );
        }
    }
    let conn = rusqlite::Connection::open(state.join("tickets.db")).unwrap();
    let rows = outbox::rows(&conn).unwrap();
    assert_eq!(rows.len(), distinct_ids(&reqs).len(), "one request per row");
    assert!(rows.iter().all(|r| r.delivered_ms.is_some() && !r.in_doubt));
    assert!(
        logs.iter().all(|l| !l.contains(SECRET)),
        "secret in the daemon's log"
    );
}

fn events(reqs: &[Request], event: &str) -> Vec<Request> {
    reqs.iter()
        .filter(|r| r.json()["event"] == event)
        .cloned()
        .collect()
}

fn ticket(r: &Request) -> String {
    r.json()["ticket_id"].as_str().unwrap_or("").to_string()
}
