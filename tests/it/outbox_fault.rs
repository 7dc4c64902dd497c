//! Fault test of the outbox, in-process: the webhook sink is down (nothing listens on
//! its port) while 100 distinct incidents are opened through the real ticket store
//! (`Store::apply`, which enqueues in the ticket's transaction); then the receiver
//! comes up. Asserted: exactly 100 requests arrive, with 100 distinct delivery ids,
//! for 100 distinct tickets INC-1..INC-100, each correctly signed; no request twice;
//! every outbox row ends delivered. (The same with a `kill -9` of a real daemon is in
//! tests/outbox_kill.rs.)

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::sinks::*;
use anomalyd::incident::Change;
use anomalyd::sample::now_ms;
use anomalyd::tickets::outbox::{self, Deliverer};
use anomalyd::tickets::Store;

const SECRET: &str = "fault-test-secret-93b2";

#[test]
fn webhook_down_then_up_gets_100_tickets_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).expect("write");
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- {{name: hook, type: webhook, url: 'http://127.0.0.1:{port}/t', secret_file: '{}', retry_initial: 50ms, retry_max: 400ms}}\n",
        secret.display()
    ))
    .expect("config");
    let db = dir.path().join("tickets.db");
    let store = Store::open(&db)
        .expect("store")
        .with_sinks(vec!["hook".into()]);
    let handle = Deliverer::open(&db, &sinks)
        .expect("deliverer")
        .spawn(Duration::from_millis(20))
        .expect("spawn");
    let stats = handle.stats();

    for i in 1..=100 {
        let t = now_ms();
        let inc = incident(&format!("INC-{i}"), &format!("web-1/anomaly/fp{i}"), t);
        store
            .apply(&Change::Opened(inc), "report", None, t)
            .expect("apply");
        handle.wake();
    }
    // The sink is down: attempts fail, nothing is lost.
    let t0 = Instant::now();
    while (stats.pending("hook") < 100 || stats.count("hook", "failed") < 3)
        && t0.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stats.pending("hook"), 100);
    assert!(stats.count("hook", "failed") >= 3);
    assert_eq!(stats.count("hook", "delivered"), 0);

    let rx = Server::start_at(
        port,
        Box::new(|req| {
            if req.method == "POST" && req.path() == "/t" && signed(req, SECRET) {
                (200, "{}".into())
            } else {
                (401, "{}".into())
            }
        }),
    );
    let reqs = rx.wait(Duration::from_secs(60), |r| r.len() >= 100);
    // Anything sent twice would arrive within a few polls.
    std::thread::sleep(Duration::from_millis(500));
    handle.stop(Duration::from_secs(5));
    let reqs = if rx.requests().len() > reqs.len() {
        rx.requests()
    } else {
        reqs
    };

    assert_eq!(reqs.len(), 100, "raw requests");
    assert!(
        reqs.iter().all(|r| signed(r, SECRET)),
        "every request signed"
    );
    assert_eq!(distinct_ids(&reqs).len(), 100, "distinct delivery ids");
    let tickets: BTreeSet<String> = reqs
        .iter()
        .map(|r| r.json()["ticket_id"].as_str().unwrap_or("").to_string())
        .collect();
    let want: BTreeSet<String> = (1..=100).map(|i| format!("INC-{i}")).collect();
    assert_eq!(tickets, want, "distinct tickets");
    assert!(reqs.iter().all(|r| r.json()["event"] == "open"));

    let conn = rusqlite::Connection::open(&db).expect("open");
    let rows = outbox::rows(&conn).expect("rows");
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r.delivered_ms.is_some() && !r.in_doubt));
    assert_eq!(stats.count("hook", "delivered"), 100);
}
