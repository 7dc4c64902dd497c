use std::sync::{Arc, Mutex};

use super::*;
use crate::incident::{Class, Incident, Label, Severity};
use crate::tickets::sinks::{SinkError, SinkKind};
use crate::tickets::DeliveryKind;

pub(crate) fn delivery(ticket: &str, fp: &str, kind: DeliveryKind, at_ms: i64) -> Delivery {
    Delivery {
        id: String::new(),
        ticket_id: ticket.into(),
        kind,
        incident: Incident {
            id: ticket.into(),
            fingerprint: fp.into(),
            host: "h1".into(),
            class: Class::Anomaly,
            label: Label::Cpu,
            severity: Severity::P3,
            resource: None,
            title: format!("cpu: {ticket}"),
            causes: Vec::new(),
            opened_ms: at_ms,
            updated_ms: at_ms,
            resolved_ms: (kind == DeliveryKind::Resolve).then_some(at_ms),
        },
        summary: "opened".into(),
        body: "report".into(),
        at_ms,
    }
}

/// What the fake sink saw: (delivery id, ticket, kind, reuse, in_doubt).
type Seen = Arc<Mutex<Vec<(String, String, DeliveryKind, bool, bool)>>>;

/// A sink that records attempts and fails while `fail` holds an error.
struct Recording {
    seen: Seen,
    fail: Arc<Mutex<Option<SinkError>>>,
    resent: Arc<Mutex<Vec<String>>>,
    resend_every: Option<Duration>,
}

impl Sink for Recording {
    fn deliver(&mut self, a: &Attempt) -> Result<Option<SinkState>, SinkError> {
        let d = a.delivery;
        self.seen.lock().expect("lock").push((
            d.id.clone(),
            d.ticket_id.clone(),
            d.kind,
            a.reuse,
            a.in_doubt,
        ));
        if let Some(e) = self.fail.lock().expect("lock").clone() {
            return Err(e);
        }
        let resolved = d.kind == DeliveryKind::Resolve;
        let external = match (a.previous, a.reuse) {
            (Some(p), true) => p.external_ref.clone(),
            _ => format!("EXT-{}", d.ticket_id),
        };
        Ok(Some(SinkState {
            fingerprint: d.incident.fingerprint.clone(),
            ticket_id: d.ticket_id.clone(),
            external_ref: external,
            open: !resolved,
            resolved_ms: resolved.then_some(d.at_ms),
            last_sent_ms: a.now_ms,
            data: serde_json::json!({"t": d.ticket_id}),
        }))
    }
    fn resend_interval(&self) -> Option<Duration> {
        self.resend_every
    }
    fn resend(&mut self, open: &[SinkState], _now_ms: i64) -> Result<(), SinkError> {
        let mut r = self.resent.lock().expect("lock");
        r.extend(open.iter().map(|s| s.fingerprint.clone()));
        Ok(())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    seen: Seen,
    fail: Arc<Mutex<Option<SinkError>>>,
    resent: Arc<Mutex<Vec<String>>>,
}

fn config(name: &str) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        reopen_window: Duration::from_secs(600),
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(300),
        timeout: Duration::from_secs(1),
        kind: SinkKind::Webhook(crate::tickets::sinks::webhook::WebhookConfig {
            url: "http://127.0.0.1:9".into(),
            secret: None,
            signature_header: "X-Anomalyd-Signature".into(),
        }),
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tickets.db");
    Fixture {
        _dir: dir,
        path,
        seen: Default::default(),
        fail: Default::default(),
        resent: Default::default(),
    }
}

impl Fixture {
    fn deliverer(&self, resend_every: Option<Duration>) -> Deliverer {
        let sink = Recording {
            seen: self.seen.clone(),
            fail: self.fail.clone(),
            resent: self.resent.clone(),
            resend_every,
        };
        Deliverer::with_sinks(&self.path, vec![(config("s1"), Box::new(sink))]).expect("open")
    }
    fn enqueue(&self, ds: &[Delivery]) {
        let mut conn = Connection::open(&self.path).expect("open");
        init_schema(&conn).expect("schema");
        let tx = conn.transaction().expect("tx");
        for d in ds {
            enqueue(&tx, "s1", d).expect("enqueue");
        }
        tx.commit().expect("commit");
    }
    fn rows(&self) -> Vec<Row> {
        rows(&Connection::open(&self.path).expect("open")).expect("rows")
    }
    fn kinds(&self) -> Vec<(String, DeliveryKind)> {
        let s = self.seen.lock().expect("lock");
        s.iter().map(|(_, t, k, _, _)| (t.clone(), *k)).collect()
    }
}

#[test]
fn enqueue_is_part_of_the_callers_transaction() {
    let f = fixture();
    let mut conn = Connection::open(&f.path).expect("open");
    init_schema(&conn).expect("schema");
    init_schema(&conn).expect("schema twice is fine");
    {
        let tx = conn.transaction().expect("tx");
        enqueue(&tx, "s1", &delivery("INC-1", "fp1", DeliveryKind::Open, 10)).expect("enqueue");
        // Dropped without commit: the ticket change failed, so must its delivery.
    }
    assert!(rows(&conn).expect("rows").is_empty());
    let tx = conn.transaction().expect("tx");
    let mut d = delivery("INC-1", "fp1", DeliveryKind::Open, 10);
    d.id = "INC-1-1".into();
    enqueue(&tx, "s1", &d).expect("enqueue");
    enqueue(&tx, "s1", &d).expect("same id again is ignored");
    enqueue(&tx, "s2", &d).expect("same id for another sink is its own row");
    enqueue(&tx, "s1", &delivery("INC-2", "fp2", DeliveryKind::Open, 11)).expect("enqueue");
    tx.commit().expect("commit");
    let r = rows(&conn).expect("rows");
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].delivery, d);
    assert_eq!((r[0].sink.as_str(), r[1].sink.as_str()), ("s1", "s2"));
    assert_eq!(r[2].delivery.id.len(), 32, "an empty id gets a random one");
    assert!(r
        .iter()
        .all(|r| r.delivered_ms.is_none() && r.attempts == 0));
}

#[test]
fn delivers_in_order_and_records_state() {
    let f = fixture();
    f.enqueue(&[
        delivery("INC-1", "fp1", DeliveryKind::Open, 10),
        delivery("INC-2", "fp2", DeliveryKind::Open, 11),
        delivery("INC-1", "fp1", DeliveryKind::Resolve, 12),
    ]);
    let mut d = f.deliverer(None);
    let rep = d.run_once(1000);
    assert_eq!((rep.delivered, rep.failed, rep.pending), (3, 0, 0));
    assert_eq!(
        f.kinds(),
        vec![
            ("INC-1".into(), DeliveryKind::Open),
            ("INC-2".into(), DeliveryKind::Open),
            ("INC-1".into(), DeliveryKind::Resolve)
        ]
    );
    assert!(f
        .rows()
        .iter()
        .all(|r| r.delivered_ms == Some(1000) && !r.in_doubt));
    let conn = Connection::open(&f.path).expect("open");
    let s = sink_state(&conn, "s1", "fp1")
        .expect("state")
        .expect("some");
    assert_eq!(
        (s.open, s.resolved_ms, s.external_ref.as_str()),
        (false, Some(12), "EXT-INC-1")
    );
    // Nothing left: a second run sends nothing.
    assert_eq!(d.run_once(2000).delivered, 0);
    assert_eq!(f.seen.lock().expect("lock").len(), 3);
    assert_eq!(d.stats().count("s1", "delivered"), 3);
}

#[test]
fn failures_back_off_keep_the_row_and_hold_back_the_ticket() {
    let f = fixture();
    f.enqueue(&[
        delivery("INC-1", "fp1", DeliveryKind::Open, 10),
        delivery("INC-1", "fp1", DeliveryKind::Resolve, 11),
        delivery("INC-2", "fp2", DeliveryKind::Open, 12),
    ]);
    let mut d = f.deliverer(None);
    // A rejection of one delivery (4xx) holds back that ticket only.
    *f.fail.lock().expect("lock") = Some(SinkError::rejected("HTTP 422: no"));
    let rep = d.run_once(1000);
    assert_eq!((rep.delivered, rep.failed, rep.pending), (0, 2, 3));
    // INC-1's resolve was not tried after its open failed.
    assert_eq!(
        f.kinds(),
        vec![
            ("INC-1".into(), DeliveryKind::Open),
            ("INC-2".into(), DeliveryKind::Open)
        ]
    );
    let r = f.rows();
    assert_eq!(r[0].attempts, 1);
    assert_eq!(r[0].last_error.as_deref(), Some("HTTP 422: no"));
    assert!(!r[0].in_doubt, "a 4xx was not processed");
    // Backoff: retry_initial 1 s with jitter in its upper half.
    assert!(
        (1500..=2000).contains(&r[0].next_attempt_ms),
        "{}",
        r[0].next_attempt_ms
    );
    // Not due yet: nothing is tried.
    d.run_once(1400);
    assert_eq!(f.seen.lock().expect("lock").len(), 2);
    // The sink recovers: everything goes, in order.
    *f.fail.lock().expect("lock") = None;
    let rep = d.run_once(2001);
    assert_eq!((rep.delivered, rep.pending), (3, 0));
    let k = f.kinds();
    assert_eq!(
        k[2..],
        [
            ("INC-1".into(), DeliveryKind::Open),
            ("INC-1".into(), DeliveryKind::Resolve),
            ("INC-2".into(), DeliveryKind::Open)
        ]
    );
}

#[test]
fn a_sink_that_is_down_is_paused_as_a_whole() {
    let f = fixture();
    f.enqueue(&[
        delivery("INC-1", "fp1", DeliveryKind::Open, 10),
        delivery("INC-2", "fp2", DeliveryKind::Open, 11),
    ]);
    let mut d = f.deliverer(None);
    *f.fail.lock().expect("lock") = Some(SinkError::unreachable("connection refused"));
    let rep = d.run_once(1000);
    assert_eq!(
        (rep.failed, rep.pending),
        (1, 2),
        "one try, then the sink is paused"
    );
    // INC-2's row is due, but the sink is paused.
    d.run_once(1200);
    assert_eq!(f.seen.lock().expect("lock").len(), 1);
    *f.fail.lock().expect("lock") = None;
    assert_eq!(d.run_once(2001).delivered, 2);
}

#[test]
fn an_attempt_that_may_have_arrived_is_retried_in_doubt() {
    let f = fixture();
    f.enqueue(&[delivery("INC-1", "fp1", DeliveryKind::Open, 10)]);
    let mut d = f.deliverer(None);
    *f.fail.lock().expect("lock") = Some(SinkError::in_doubt("timed out reading the answer"));
    d.run_once(1000);
    assert!(f.rows()[0].in_doubt);
    // A later definite failure does not clear the doubt of the earlier attempt.
    *f.fail.lock().expect("lock") = Some(SinkError::unreachable("refused"));
    d.run_once(10_000);
    assert!(f.rows()[0].in_doubt);
    *f.fail.lock().expect("lock") = None;
    d.run_once(100_000);
    let seen = f.seen.lock().expect("lock").clone();
    assert_eq!(
        seen.iter().map(|s| s.4).collect::<Vec<_>>(),
        vec![false, true, true]
    );
    let r = f.rows();
    assert!(!r[0].in_doubt && r[0].delivered_ms.is_some());
    assert_eq!(r[0].attempts, 3);
}

#[test]
fn a_crash_in_flight_leaves_the_row_in_doubt() {
    // What kill -9 between the request and the commit leaves behind: the attempt
    // marker committed, the delivery not.
    let f = fixture();
    f.enqueue(&[delivery("INC-1", "fp1", DeliveryKind::Open, 10)]);
    let conn = Connection::open(&f.path).expect("open");
    conn.execute("UPDATE outbox SET in_doubt = 1, attempts = 1", [])
        .expect("update");
    let mut d = f.deliverer(None);
    d.run_once(1000);
    let seen = f.seen.lock().expect("lock").clone();
    assert!(seen[0].4, "the sink is told to look before creating");
}

#[test]
fn reopen_within_the_window_reuses_the_external_ticket() {
    let f = fixture();
    let min = 60_000;
    f.enqueue(&[
        delivery("INC-1", "fp1", DeliveryKind::Open, 0),
        delivery("INC-1", "fp1", DeliveryKind::Resolve, min),
        // Back 5 min later (window 10 min): same external ticket.
        delivery("INC-2", "fp1", DeliveryKind::Open, 6 * min),
        delivery("INC-2", "fp1", DeliveryKind::Resolve, 7 * min),
        // Back 20 min after that: a new one.
        delivery("INC-3", "fp1", DeliveryKind::Open, 27 * min),
    ]);
    let mut d = f.deliverer(None);
    d.run_once(30 * min);
    let seen = f.seen.lock().expect("lock").clone();
    let reuse: Vec<bool> = seen.iter().map(|s| s.3).collect();
    assert_eq!(reuse, vec![false, true, true, true, false]);
    let conn = Connection::open(&f.path).expect("open");
    let s = sink_state(&conn, "s1", "fp1")
        .expect("state")
        .expect("some");
    assert_eq!(s.external_ref, "EXT-INC-3");
}

#[test]
fn open_tickets_are_resent_until_resolved_across_restarts() {
    let f = fixture();
    f.enqueue(&[
        delivery("INC-1", "fp1", DeliveryKind::Open, 0),
        delivery("INC-2", "fp2", DeliveryKind::Open, 0),
    ]);
    let every = Some(Duration::from_secs(60));
    let mut d = f.deliverer(every);
    d.run_once(1_000);
    assert!(f.resent.lock().expect("lock").is_empty(), "just sent");
    assert_eq!(d.run_once(61_000).resent, 2);
    assert_eq!(d.run_once(62_000).resent, 0, "not due again yet");
    f.enqueue(&[delivery("INC-1", "fp1", DeliveryKind::Resolve, 70_000)]);
    drop(d);
    // A restart keeps re-sending what is still open.
    let mut d = f.deliverer(every);
    d.run_once(125_000);
    let r = f.resent.lock().expect("lock").clone();
    assert_eq!(r, vec!["fp1".to_string(), "fp2".into(), "fp2".into()]);
}

#[test]
fn delivered_rows_are_pruned_after_retention() {
    let f = fixture();
    f.enqueue(&[delivery("INC-1", "fp1", DeliveryKind::Open, 0)]);
    let mut d = f.deliverer(None);
    d.set_retention(Duration::from_secs(3600));
    d.run_once(1_000);
    assert_eq!(f.rows().len(), 1);
    f.enqueue(&[delivery("INC-2", "fp2", DeliveryKind::Open, 0)]);
    *f.fail.lock().expect("lock") = Some(SinkError::rejected("no"));
    d.run_once(2 * 3_600_000 + 10_000);
    let r = f.rows();
    assert_eq!(
        r.len(),
        1,
        "the delivered row is gone, the pending one stays"
    );
    assert_eq!(r[0].delivery.ticket_id, "INC-2");
}

#[test]
fn backoff_doubles_and_is_capped() {
    let c = config("s");
    for (attempts, lo, hi) in [
        (1, 500, 1000),
        (2, 1000, 2000),
        (4, 4000, 8000),
        (30, 150_000, 300_000),
    ] {
        for _ in 0..50 {
            let b = backoff(&c, attempts);
            assert!((lo..=hi).contains(&b), "attempt {attempts}: {b}");
        }
    }
}

#[test]
fn the_thread_delivers_and_stops() {
    let f = fixture();
    f.enqueue(&[delivery("INC-1", "fp1", DeliveryKind::Open, 0)]);
    let h = f
        .deliverer(None)
        .spawn(Duration::from_millis(20))
        .expect("spawn");
    let stats = h.stats();
    let t0 = std::time::Instant::now();
    while stats.count("s1", "delivered") < 1 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(stats.count("s1", "delivered"), 1);
    h.stop(Duration::from_secs(5));
    let mut s = Sample::new(0);
    stats.export(&mut s);
    let names: Vec<String> = s
        .points
        .iter()
        .map(|p| format!("{}{:?}={}", p.name, p.labels, p.value))
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("outbox_pending") && n.ends_with("=0")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("sink_deliveries_total")
            && n.contains("delivered")
            && n.ends_with("=1")),
        "{names:?}"
    );
}
