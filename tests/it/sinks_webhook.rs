//! The webhook sink against a real HTTP server on loopback that checks the HMAC
//! signature (computed here with the `hmac` crate, independently of the sink's code)
//! and answers 401 to anything unsigned or wrongly signed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::common::sinks::*;
use anomalyd::tickets::outbox::{self, Deliverer};
use anomalyd::tickets::DeliveryKind;

const SECRET: &str = "s3cr3t-webhook-key-7f1c";

fn checking_receiver() -> Server {
    Server::start(Box::new(|req| {
        if req.method != "POST"
            || req.path() != "/hook"
            || req.header("content-type") != Some("application/json")
            || req.header("x-anomalyd-delivery").is_none()
            || req.header("idempotency-key") != req.header("x-anomalyd-delivery")
        {
            return (400, r#"{"error":"bad request shape"}"#.into());
        }
        if !signed(req, SECRET) {
            return (401, r#"{"error":"bad signature"}"#.into());
        }
        (200, "{}".into())
    }))
}

#[test]
fn signed_deliveries_for_the_whole_lifecycle_and_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("hook.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
    let rx = checking_receiver();
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- name: hook\n  type: webhook\n  url: {}/hook\n  secret_file: {}\n  reopen_window: 10m\n",
        rx.url(),
        secret_file.display()
    ))
    .expect("config");
    let db = dir.path().join("tickets.db");
    let min = 60_000;
    enqueue(
        &db,
        "hook",
        &[
            delivery("d1", "INC-1", "fpA", DeliveryKind::Open, 0),
            delivery("d2", "INC-1", "fpA", DeliveryKind::Update, min),
            delivery("d3", "INC-1", "fpA", DeliveryKind::Resolve, 2 * min),
            // Back within the 10 min window: the receiver is told to reopen INC-1.
            delivery("d4", "INC-2", "fpA", DeliveryKind::Open, 5 * min),
            // A different problem: its own ticket.
            delivery("d5", "INC-3", "fpB", DeliveryKind::Open, 5 * min),
        ],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let rep = d.run_once(10 * min);
    assert_eq!(
        (rep.delivered, rep.failed, rep.pending),
        (5, 0, 0),
        "{rep:?}"
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 5);
    let seen: Vec<(String, String, String, String)> = reqs
        .iter()
        .map(|r| {
            let j = r.json();
            assert_eq!(r.header("x-anomalyd-delivery"), j["delivery_id"].as_str());
            assert_eq!(j["incident"]["host"], "web-1");
            assert!(j["body"].as_str().expect("body").contains("/var fills"));
            (
                j["delivery_id"].as_str().expect("id").to_string(),
                j["event"].as_str().expect("event").to_string(),
                j["ticket"].as_str().expect("ticket").to_string(),
                j["ticket_id"].as_str().expect("ticket_id").to_string(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert_eq!(
        seen,
        vec![
            s("d1", "open", "INC-1", "INC-1"),
            s("d2", "update", "INC-1", "INC-1"),
            s("d3", "resolve", "INC-1", "INC-1"),
            s("d4", "reopen", "INC-1", "INC-2"),
            s("d5", "open", "INC-3", "INC-3"),
        ]
    );
}

#[test]
fn a_wrong_secret_is_refused_and_retried_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = checking_receiver();
    std::env::set_var("ANOMALYD_TEST_WRONG_SECRET", "not-the-secret");
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- {{name: hook, type: webhook, url: '{}/hook', secret_env: ANOMALYD_TEST_WRONG_SECRET}}\n",
        rx.url()
    ))
    .expect("config");
    let db = dir.path().join("tickets.db");
    enqueue(
        &db,
        "hook",
        &[delivery("d1", "INC-1", "fpA", DeliveryKind::Open, 0)],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let rep = d.run_once(1000);
    assert_eq!((rep.delivered, rep.failed, rep.pending), (0, 1, 1));
    let conn = rusqlite::Connection::open(&db).expect("open");
    let rows = outbox::rows(&conn).expect("rows");
    let err = rows[0].last_error.clone().unwrap_or_default();
    assert!(
        err.contains("HTTP 401") && err.contains("bad signature"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret"));
    assert_eq!(rx.requests().len(), 1);
}

#[test]
fn a_server_error_is_retried_with_the_same_delivery_id_in_doubt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    // Fails the first two requests with 502 (as a proxy in front of a slow receiver
    // would, possibly after the receiver processed them), then accepts.
    let rx = Server::start(Box::new(move |_req| {
        if c.fetch_add(1, Ordering::SeqCst) < 2 {
            (502, "bad gateway".into())
        } else {
            (200, "{}".into())
        }
    }));
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- {{name: hook, type: webhook, url: '{}', retry_initial: 100ms, retry_max: 200ms}}\n",
        rx.url()
    ))
    .expect("config");
    let db = dir.path().join("tickets.db");
    enqueue(
        &db,
        "hook",
        &[delivery("", "INC-1", "fpA", DeliveryKind::Open, 0)],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let mut now = 1000;
    for _ in 0..10 {
        d.run_once(now);
        now += 250;
    }
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3, "two 502s, then delivered once");
    let ids: BTreeSet<&str> = reqs
        .iter()
        .filter_map(|r| r.header("idempotency-key"))
        .collect();
    assert_eq!(ids.len(), 1, "every retry carries the same key: {ids:?}");
    assert!(reqs
        .iter()
        .all(|r| r.header("x-anomalyd-signature").is_none()));
    let conn = rusqlite::Connection::open(&db).expect("open");
    let rows = outbox::rows(&conn).expect("rows");
    assert_eq!(rows[0].attempts, 3);
    assert!(rows[0].delivered_ms.is_some() && !rows[0].in_doubt);
    assert_eq!(d.stats().count("hook", "failed"), 2);
    assert_eq!(d.stats().count("hook", "delivered"), 1);
}
