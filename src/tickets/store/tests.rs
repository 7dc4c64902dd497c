use super::*;
use crate::incident::Severity;
use crate::store::StateDir;
use crate::tickets::outbox;

fn incident(id: &str, severity: Severity) -> Incident {
    Incident {
        severity,
        ..crate::incident::testing::storage_anomaly(id, 1_000, 0.97, 12.0)
    }
}

fn store(dir: &Path) -> Store {
    Store::open_in(&StateDir::at(dir))
        .expect("open")
        .with_sinks(vec!["hook".into(), "mail".into()])
}

/// (sink, kind, ticket) of every queued delivery.
fn queued(s: &Store) -> Vec<(String, DeliveryKind, String)> {
    outbox::rows(&s.conn)
        .expect("rows")
        .into_iter()
        .map(|r| (r.sink, r.delivery.kind, r.delivery.ticket_id))
        .collect()
}

fn kinds(s: &Store, id: &str) -> Vec<String> {
    s.timeline(id)
        .expect("timeline")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn add_event_records_actions_in_timeline_body_and_outbox() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(dir.path());
    assert!(matches!(
        s.add_event("INC-1", 5, "action", "x", &serde_json::Value::Null),
        Err(StoreError::NoTicket(_))
    ));
    s.apply(
        &Change::Opened(incident("INC-1", Severity::P3)),
        "# Report",
        None,
        1_000,
    )
    .expect("open");
    s.add_event(
        "INC-1",
        2_000,
        "action",
        "restart nginx: exit 0 in 1.2 s",
        &serde_json::json!({"rule": "nginx", "exit": 0}),
    )
    .expect("event");
    s.add_event(
        "INC-1",
        3_000,
        "note",
        "diagnostics attached",
        &serde_json::Value::Null,
    )
    .expect("event");
    let t = s.get("INC-1", 4_000).expect("get").expect("exists");
    assert_eq!(kinds(&s, "INC-1"), ["opened", "action", "note"]);
    assert_eq!(t.timeline[1].detail["rule"], "nginx");
    assert!(
        t.body
            .starts_with("# INC-1: storage anomaly on web1 (sdb)\n")
            && t.body.contains("\n# Report\n"),
        "{}",
        t.body
    );
    assert!(
        t.body.contains("## Remediation") && t.body.contains("restart nginx: exit 0 in 1.2 s"),
        "{}",
        t.body
    );
    assert!(
        !t.body.contains("diagnostics attached"),
        "only actions go in the body"
    );
    // Open to both sinks, then the action as an update to both; the note goes nowhere.
    let q = queued(&s);
    assert_eq!(q.len(), 4, "{q:?}");
    assert_eq!(
        q.iter().map(|x| x.1).collect::<Vec<_>>(),
        [
            DeliveryKind::Open,
            DeliveryKind::Open,
            DeliveryKind::Update,
            DeliveryKind::Update
        ]
    );
}

#[test]
fn lifecycle_open_update_resolve_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(dir.path());
    assert_eq!(s.next_seq().expect("seq"), 1);
    let mut inc = incident("INC-1", Severity::P3);
    s.apply(&Change::Opened(inc.clone()), "r1", None, 1_000)
        .expect("open");
    assert_eq!(s.next_seq().expect("seq"), 2);
    inc.severity = Severity::P2;
    s.apply(
        &Change::Updated {
            incident: inc.clone(),
            what: "severity P3 -> P2".into(),
        },
        "r2",
        None,
        61_000,
    )
    .expect("update");
    let t = s.get("INC-1", 61_000).expect("get").expect("exists");
    assert_eq!((t.severity.as_str(), t.status), ("P2", Status::Open));
    assert!(
        t.body.contains("\nr2\n") && !t.body.contains("r1"),
        "{}",
        t.body
    );
    assert_eq!(t.duration_seconds, 60.0);
    inc.resolved_ms = Some(721_000);
    s.apply(&Change::Resolved(inc.clone()), "r3", None, 721_000)
        .expect("resolve");
    let t = s.get("INC-1", 999_999).expect("get").expect("exists");
    assert_eq!(t.status, Status::Resolved);
    assert_eq!(t.resolved_ms, Some(721_000));
    assert_eq!(t.duration_seconds, 720.0);
    assert_eq!(
        t.resolution.as_deref(),
        Some("recovered: back to normal after 12 min")
    );
    assert_eq!(
        s.last_resolved(&inc.fingerprint).expect("q"),
        Some(("INC-1".into(), 721_000))
    );
    // The same incident id opened again: the ticket reopens, keeping its first opening.
    inc.resolved_ms = None;
    s.apply(&Change::Opened(inc.clone()), "r4", None, 800_000)
        .expect("reopen");
    let t = s.get("INC-1", 800_000).expect("get").expect("exists");
    assert_eq!(
        (t.status, t.resolved_ms, t.opened_ms),
        (Status::Open, None, 1_000)
    );
    assert_eq!(
        kinds(&s, "INC-1"),
        ["opened", "updated", "resolved", "reopened"]
    );
    let q: Vec<DeliveryKind> = queued(&s).into_iter().map(|x| x.1).step_by(2).collect();
    assert_eq!(
        q,
        [
            DeliveryKind::Open,
            DeliveryKind::Update,
            DeliveryKind::Resolve,
            DeliveryKind::Open
        ]
    );
    assert_eq!(s.list(true, 0).expect("list").len(), 1);
}

#[test]
fn operator_ack_assign_resolve_and_persistence() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let s = store(dir.path());
        s.apply(
            &Change::Opened(incident("INC-1", Severity::P3)),
            "r",
            None,
            1_000,
        )
        .expect("open");
        s.apply(
            &Change::Opened(incident("INC-2", Severity::P1)),
            "r",
            None,
            2_000,
        )
        .expect("open");
        s.ack("INC-1", Some("alice"), 3_000).expect("ack");
        s.assign("INC-1", "bob", None, 4_000).expect("assign");
        s.resolve("INC-1", "disk replaced", None, 5_000)
            .expect("resolve");
        assert!(matches!(
            s.ack("INC-1", None, 6_000),
            Err(StoreError::Resolved { .. })
        ));
        assert!(matches!(
            s.assign("INC-9", "x", None, 6_000),
            Err(StoreError::NoTicket(_))
        ));
    }
    // Reopened from disk: everything is there.
    let s = store(dir.path());
    let t = s.get("INC-1", 9_000).expect("get").expect("exists");
    assert_eq!(t.status, Status::Resolved);
    assert_eq!(t.assignee.as_deref(), Some("bob"));
    assert_eq!(t.resolution.as_deref(), Some("disk replaced"));
    assert_eq!(t.duration_seconds, 4.0);
    assert_eq!(
        t.timeline
            .iter()
            .map(|e| e.summary.as_str())
            .collect::<Vec<_>>(),
        [
            "opened: storage anomaly on web1 (sdb)",
            "acknowledged by alice",
            "assigned to bob",
            "resolved by operator: disk replaced"
        ]
    );
    let open = s.list(true, 9_000).expect("list");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, "INC-2");
    assert!(open[0].timeline.is_empty(), "lists carry no timelines");
    assert_eq!(s.list(false, 9_000).expect("list").len(), 2);
    assert_eq!(s.open_incidents().expect("open").len(), 1);
    // Every operator step went to both sinks too.
    let kinds: Vec<DeliveryKind> = queued(&s)
        .into_iter()
        .filter(|x| x.2 == "INC-1")
        .map(|x| x.1)
        .step_by(2)
        .collect();
    assert_eq!(
        kinds,
        [
            DeliveryKind::Open,
            DeliveryKind::Update,
            DeliveryKind::Update,
            DeliveryKind::Resolve
        ]
    );
    // An engine resolution after the operator's adds nothing.
    s.apply(
        &Change::Resolved(incident("INC-1", Severity::P3)),
        "r",
        None,
        10_000,
    )
    .expect("late resolve");
    assert_eq!(kinds_len(&s, "INC-1"), 4);
}

fn kinds_len(s: &Store, id: &str) -> usize {
    kinds(s, id).len()
}

#[test]
fn muted_tickets_reach_no_sink_until_unmuted() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(dir.path());
    s.apply(
        &Change::Opened(incident("INC-1", Severity::P3)),
        "r",
        Some("S-1"),
        1_000,
    )
    .expect("open");
    assert!(queued(&s).is_empty());
    let t = s.get("INC-1", 1_000).expect("get").expect("exists");
    assert_eq!(t.muted_by.as_deref(), Some("S-1"));
    s.unmute("INC-1", 2_000).expect("unmute");
    let q = queued(&s);
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|x| x.1 == DeliveryKind::Open));
    assert_eq!(kinds(&s, "INC-1"), ["opened", "unmuted"]);
}

#[test]
fn silences_are_stored_listed_and_removed() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(dir.path());
    let m = Matchers {
        label: Some("storage".into()),
        resource: Some(crate::config::reader::Pattern::parse("sd[b-c]").expect("regex")),
        ..Default::default()
    };
    let id = s.add_silence(&m, 0, 10_000, "disk swap", 0).expect("add");
    assert_eq!(id, "S-1");
    let id2 = s
        .add_silence(&Matchers::default(), 0, 500, "old", 0)
        .expect("add");
    let active = s.silences(1_000, false).expect("list");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].matchers, m);
    assert!(active[0].active(1_000) && !active[0].active(10_000));
    assert!(active[0].matchers.matches(&incident("INC-1", Severity::P3)));
    let mut other = incident("INC-1", Severity::P3);
    other.resource = Some("sda".into());
    assert!(!active[0].matchers.matches(&other));
    // The resource is an anchored regular expression, like a rule's.
    other.resource = Some("sdc".into());
    assert!(active[0].matchers.matches(&other));
    other.resource = Some("sdbx".into());
    assert!(!active[0].matchers.matches(&other));
    assert_eq!(s.silences(1_000, true).expect("list").len(), 2);
    s.remove_silence(&id2).expect("remove");
    assert!(matches!(
        s.remove_silence("S-7"),
        Err(StoreError::NoSilence(7))
    ));
    assert_eq!(s.silences(0, true).expect("list").len(), 1);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    drop(store(dir.path()));
    let c = Connection::open(dir.path().join("tickets.db")).expect("open");
    c.execute("UPDATE meta SET value = 99 WHERE key = 'version'", [])
        .expect("bump");
    let e = Store::open_in(&StateDir::at(dir.path())).expect_err("refused");
    assert!(e.to_string().contains("schema version 99"), "{e}");
}

#[test]
fn delivery_ids_differ_between_databases_and_persist_within_one() {
    let ids = |dir: &std::path::Path| {
        let store = Store::open(&dir.join("tickets.db")).expect("store");
        store.instance.clone()
    };
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    let first = ids(a.path());
    assert_eq!(first.len(), 12);
    assert_eq!(ids(a.path()), first, "reopening keeps the instance id");
    assert_ne!(ids(b.path()), first, "a new database draws a new one");
}

#[test]
fn the_timeline_is_in_time_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(dir.path());
    s.apply(
        &Change::Opened(incident("INC-1", Severity::P3)),
        "r",
        None,
        1_000,
    )
    .expect("open");
    // A run's result recorded after the verification dated before it (results come
    // in late), and one at the same instant as the opening.
    for (at, what) in [(9_000, "verified"), (5_000, "ran"), (1_000, "queued")] {
        s.add_event("INC-1", at, "action", what, &serde_json::Value::Null)
            .expect("event");
    }
    let t = s.get("INC-1", 10_000).expect("get").expect("exists");
    let order: Vec<(i64, &str)> = t
        .timeline
        .iter()
        .map(|e| (e.at_ms, e.summary.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (1_000, "opened: storage anomaly on web1 (sdb)"),
            (1_000, "queued"),
            (5_000, "ran"),
            (9_000, "verified")
        ]
    );
    let queued = t.body.find("queued").expect("in body");
    let ran = t.body.find("ran").expect("in body");
    assert!(queued < ran && ran < t.body.find("verified").expect("in body"));
}

#[test]
fn a_second_ack_or_the_same_assignment_adds_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(dir.path());
    s.apply(
        &Change::Opened(incident("INC-1", Severity::P3)),
        "r",
        None,
        1_000,
    )
    .expect("open");
    assert!(s.ack("INC-1", Some("alice"), 2_000).expect("ack"));
    assert!(!s.ack("INC-1", Some("alice"), 3_000).expect("ack"));
    assert!(!s.ack("INC-1", Some("bob"), 3_000).expect("ack"));
    assert!(s.assign("INC-1", "bob", None, 4_000).expect("assign"));
    assert!(!s.assign("INC-1", "bob", None, 5_000).expect("assign"));
    assert_eq!(kinds(&s, "INC-1"), ["opened", "acknowledged", "assigned"]);
    assert_eq!(queued(&s).len(), 6, "one delivery per sink and change");
}

#[test]
fn resolved_tickets_take_an_assignee_but_send_nothing_more() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(dir.path());
    let mut inc = incident("INC-1", Severity::P3);
    s.apply(&Change::Opened(inc.clone()), "r", None, 1_000)
        .expect("open");
    inc.resolved_ms = Some(2_000);
    s.apply(&Change::Resolved(inc), "r", None, 2_000)
        .expect("resolve");
    let sent = queued(&s).len();
    assert!(s
        .assign("INC-1", "carol", Some("alice"), 3_000)
        .expect("assign"));
    s.add_event(
        "INC-1",
        3_500,
        "action",
        "verified",
        &serde_json::Value::Null,
    )
    .expect("event");
    let t = s.get("INC-1", 4_000).expect("get").expect("exists");
    assert_eq!(t.assignee.as_deref(), Some("carol"));
    assert!(t.body.contains("| Assignee | carol |"), "{}", t.body);
    assert!(t.body.contains("verified"), "{}", t.body);
    assert_eq!(
        t.timeline
            .iter()
            .find(|e| e.kind == "assigned")
            .map(|e| e.summary.as_str()),
        Some("assigned to carol by alice")
    );
    // Alertmanager would fire a resolved alert again on an update.
    assert_eq!(queued(&s).len(), sent);
    assert!(matches!(
        s.ack("INC-1", None, 5_000),
        Err(StoreError::Resolved { .. })
    ));
}

#[test]
fn version_1_reports_lose_their_stale_header() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(dir.path());
    let mut inc = incident("INC-1", Severity::P3);
    inc.resolved_ms = Some(2_000);
    s.apply(
        &Change::Opened(incident("INC-1", Severity::P3)),
        "r",
        None,
        1_000,
    )
    .expect("open");
    s.apply(&Change::Resolved(inc), "r", None, 2_000)
        .expect("resolve");
    drop(s);
    // What version 1 stored: its own table (stale once resolved) and "Now:".
    let old =
        "# INC-1: t\n\n| | |\n|---|---|\n| State | open for 0 s |\n\n## What is anomalous\n\n\
               peaked.\n\nNow: score 2.16 (still anomalous).\n\n## Forecast\n\nNone.\n";
    let c = Connection::open(dir.path().join("tickets.db")).expect("open");
    c.execute("UPDATE meta SET value = 1 WHERE key = 'version'", [])
        .expect("v1");
    c.execute("UPDATE tickets SET report = ?1, body = ?1", [old])
        .expect("old report");
    drop(c);
    let s = store(dir.path());
    let t = s.get("INC-1", 3_000).expect("get").expect("exists");
    assert!(!t.body.contains("open for"), "{}", t.body);
    assert!(!t.body.contains("Now: score"), "{}", t.body);
    assert_eq!(t.body.matches("| State |").count(), 1, "{}", t.body);
    assert!(t.body.contains("| State | resolved at "), "{}", t.body);
    assert!(
        t.body.contains("## What is anomalous\n\npeaked."),
        "{}",
        t.body
    );
    let c = Connection::open(dir.path().join("tickets.db")).expect("open");
    let v: i64 = c
        .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
            r.get(0)
        })
        .expect("version");
    assert_eq!(v, SCHEMA_VERSION);
}

/// Issue #18: random bytes in tickets.db turned incidents off for good; now the file
/// is moved aside, as history.db is, and a new store starts.
#[test]
fn an_unusable_file_is_moved_aside_and_a_new_store_started() {
    let dir = tempfile::tempdir().expect("test");
    let path = dir.path().join("tickets.db");
    let junk: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &junk).expect("test");
    let (store, problem) = Store::open_or_reset(&path).expect("test");
    let problem = problem.expect("a reset");
    assert!(
        problem.contains("moved it to") && problem.contains("tickets.db.corrupt-"),
        "{problem}"
    );
    assert_eq!(store.next_seq().expect("test"), 1);
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("test")
        .map(|e| e.expect("test").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tickets.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(dir.path().join(&aside[0])).expect("test"),
        junk
    );
    // A good file is left alone; an environmental failure (a directory) is returned.
    drop(store);
    assert!(Store::open_or_reset(&path).expect("test").1.is_none());
    let d = dir.path().join("dir.db");
    std::fs::create_dir(&d).expect("test");
    assert!(Store::open_or_reset(&d).is_err());
}

/// A new ticket of a known problem lists the earlier one with what is known about
/// it *now*: the note it was resolved with and the rule verified to have fixed it;
/// a diagnosis is in the body and goes to the sinks as an update.
#[test]
fn a_recurrence_shows_the_earlier_ticket_its_note_and_its_verified_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = store(dir.path());
    s.apply(
        &Change::Opened(incident("INC-1", Severity::P3)),
        "",
        None,
        1_000,
    )
    .expect("open");
    s.add_event(
        "INC-1",
        2_000,
        "action",
        "remediation \"clean-app-logs\" verified",
        &serde_json::json!({"verify": "resolved", "rule": "clean-app-logs", "run": "r1"}),
    )
    .expect("verified");
    let mut again = incident("INC-2", Severity::P3);
    again.opened_ms = 3_000;
    s.apply(&Change::Opened(again), "", None, 3_000)
        .expect("open");
    // The note comes after INC-2 opened: INC-2's body shows it from its next change.
    s.resolve("INC-1", "rotated the app logs", Some("alice"), 4_000)
        .expect("resolve");
    s.add_event(
        "INC-2",
        5_000,
        "diagnose",
        "diagnosis: top CPU gzip (97%)",
        &serde_json::json!({"top_cpu": [{"pid": 9, "command": "gzip", "cpu_percent": 97.0, "rss_bytes": 0}]}),
    )
    .expect("diagnosis");
    let t = s.get("INC-2", 6_000).expect("get").expect("INC-2");
    for needle in [
        "## Similar past incidents",
        "Seen 2 times in 30 days on this host; last fixed by `clean-app-logs`, verified.",
        "- **INC-1** ",
        "  - Resolution: rotated the app logs",
        "  - Verified fix: `clean-app-logs`",
        "## Diagnosis",
        "| 9 | `gzip` | 97 % |",
    ] {
        assert!(t.body.contains(needle), "missing {needle:?} in\n{}", t.body);
    }
    assert_eq!(kinds(&s, "INC-2"), ["opened", "similar", "diagnose"]);
    let q = queued(&s);
    let inc2: Vec<&DeliveryKind> = q
        .iter()
        .filter(|(sink, _, id)| sink == "hook" && id == "INC-2")
        .map(|(_, k, _)| k)
        .collect();
    assert_eq!(inc2, [&DeliveryKind::Open, &DeliveryKind::Update]);
}

/// A route decided when the ticket opens: the assignee (round-robin in the team, so
/// the next storage ticket goes to the next member), the `routed` event, and only
/// the route's sinks get the ticket's deliveries; `assign` still overrides it.
#[test]
fn a_new_ticket_takes_its_route() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = store(dir.path());
    let yaml = "teams:\n  - {name: storage, members: [alice, bob], round_robin: true}\n\
                routes:\n  - when: {label: storage}\n    team: storage\n    sinks: [mail]\n";
    let v: serde_yaml::Value = serde_yaml::from_str(yaml).expect("yaml");
    let mut r = crate::config::reader::Reader::default();
    let names = ["hook".to_string(), "mail".to_string()];
    s.set_routing(crate::tickets::route::parse_config(
        &mut r,
        Some(&v),
        "tickets.routing",
        &names,
    ));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    for id in ["INC-1", "INC-2"] {
        s.apply(&Change::Opened(incident(id, Severity::P3)), "", None, 1_000)
            .expect("open");
    }
    let t1 = s.get("INC-1", 2_000).expect("get").expect("ticket");
    let t2 = s.get("INC-2", 2_000).expect("get").expect("ticket");
    assert_eq!(t1.assignee.as_deref(), Some("alice"));
    assert_eq!(t2.assignee.as_deref(), Some("bob"));
    let routed = t1
        .timeline
        .iter()
        .find(|e| e.kind == "routed")
        .expect("routed event");
    assert_eq!(
        routed.summary,
        "routed to alice, team storage, sinks mail (route 1)"
    );
    assert!(t1.body.contains("| Assignee | alice |"), "{}", t1.body);
    assert!(s
        .assign("INC-1", "carol", Some("dave"), 3_000)
        .expect("assign"));
    assert_eq!(
        queued(&s),
        [
            ("mail".into(), DeliveryKind::Open, "INC-1".into()),
            ("mail".into(), DeliveryKind::Open, "INC-2".into()),
            ("mail".into(), DeliveryKind::Update, "INC-1".into()),
        ]
    );
    let t1 = s.get("INC-1", 4_000).expect("get").expect("ticket");
    assert_eq!(t1.assignee.as_deref(), Some("carol"));
}
