//! The GitHub Issues sink against a local HTTP server that keeps issues and comments
//! and checks every request against GitHub's documented REST API (method, path,
//! auth/Accept/API-version headers, exact JSON body keys); anything else gets a 4xx,
//! which fails the delivery and so the test.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::common::sinks::*;
use anomalyd::tickets::outbox::Deliverer;
use anomalyd::tickets::DeliveryKind;
use serde_json::{json, Value};

const TOKEN: &str = "ghp_testtoken0123456789";

#[derive(Default)]
struct Repo {
    issues: Vec<Issue>,
    /// Answer the next issue creation with 502 after creating it.
    fail_next_create: bool,
}

#[derive(Clone)]
struct Issue {
    number: u64,
    title: String,
    body: String,
    labels: Vec<String>,
    state: String,
    state_reason: Option<String>,
    comments: Vec<String>,
    /// Closed at some point.
    was_closed: bool,
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// GitHub refuses a body or comment over 65,536 characters (422).
fn too_long(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.chars().count() > 65_536)
}

fn handle(repo: &Mutex<Repo>, req: &Request) -> (u16, String) {
    let bad = |m: &str| (422, json!({ "message": m }).to_string());
    if req.header("authorization") != Some(&format!("Bearer {TOKEN}"))
        || req.header("accept") != Some("application/vnd.github+json")
        || req.header("x-github-api-version") != Some("2022-11-28")
        || req.header("user-agent").is_none()
    {
        return (401, r#"{"message":"Bad credentials"}"#.into());
    }
    let has_body = !req.body.is_empty();
    if has_body && req.header("content-type") != Some("application/json") {
        return (415, "{}".into());
    }
    let mut r = repo.lock().expect("lock");
    let segs: Vec<&str> = req.path().trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["repos", "acme", "infra", "issues"]) => {
            let b = req.json();
            let ok_keys: BTreeSet<String> = ["title", "body", "labels"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if keys(&b) != ok_keys
                || b["title"].as_str().is_none_or(str::is_empty)
                || !b["body"].is_string()
                || too_long(&b["body"])
                || !b["labels"]
                    .as_array()
                    .is_some_and(|l| l.iter().all(Value::is_string))
            {
                return bad("invalid issue");
            }
            let number = r.issues.len() as u64 + 1;
            r.issues.push(Issue {
                number,
                title: b["title"].as_str().unwrap_or("").into(),
                body: b["body"].as_str().unwrap_or("").into(),
                labels: b["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .collect(),
                state: "open".into(),
                state_reason: None,
                comments: Vec::new(),
                was_closed: false,
            });
            if std::mem::take(&mut r.fail_next_create) {
                return (502, "upstream timed out".into());
            }
            (201, json!({"number": number, "state": "open"}).to_string())
        }
        ("GET", ["repos", "acme", "infra", "issues"]) => {
            // ?state=all&labels=...: newest first.
            let label = req
                .target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("labels="))
                .map(str::to_string);
            let list: Vec<Value> = r
                .issues
                .iter()
                .rev()
                .filter(|i| label.as_ref().is_none_or(|l| i.labels.contains(l)))
                .map(|i| json!({"number": i.number, "body": i.body, "state": i.state}))
                .collect();
            (200, Value::Array(list).to_string())
        }
        (m, ["repos", "acme", "infra", "issues", n, rest @ ..]) => {
            let Some(i) = n
                .parse::<u64>()
                .ok()
                .and_then(|n| r.issues.iter_mut().find(|i| i.number == n))
            else {
                return (404, r#"{"message":"Not Found"}"#.into());
            };
            match (m, rest) {
                ("POST", ["comments"]) => {
                    let b = req.json();
                    if keys(&b) != BTreeSet::from(["body".to_string()])
                        || !b["body"].is_string()
                        || too_long(&b["body"])
                    {
                        return bad("invalid comment");
                    }
                    i.comments.push(b["body"].as_str().unwrap_or("").into());
                    (201, json!({"id": i.comments.len()}).to_string())
                }
                ("GET", ["comments"]) => {
                    let list: Vec<Value> = i.comments.iter().map(|c| json!({"body": c})).collect();
                    (200, Value::Array(list).to_string())
                }
                ("PATCH", []) => {
                    let b = req.json();
                    let allowed = ["state", "state_reason", "body", "labels"];
                    if keys(&b).iter().any(|k| !allowed.contains(&k.as_str())) {
                        return bad("unexpected field");
                    }
                    if let Some(body) = b.get("body") {
                        if !body.is_string() || too_long(body) {
                            return bad("body is too long (maximum is 65536 characters)");
                        }
                        i.body = body.as_str().unwrap_or("").into();
                    }
                    if let Some(l) = b.get("labels") {
                        i.labels = l
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|l| l.as_str().map(str::to_string))
                            .collect();
                    }
                    match b["state"].as_str() {
                        None if b.get("state").is_none() => {}
                        Some(s @ ("open" | "closed")) => {
                            i.was_closed |= s == "closed";
                            i.state = s.into()
                        }
                        _ => return bad("invalid state"),
                    }
                    match &b["state_reason"] {
                        Value::Null => {}
                        Value::String(s)
                            if ["completed", "not_planned", "reopened"].contains(&s.as_str()) =>
                        {
                            i.state_reason = Some(s.clone())
                        }
                        _ => return bad("invalid state_reason"),
                    }
                    (
                        200,
                        json!({"number": i.number, "state": i.state}).to_string(),
                    )
                }
                _ => (404, r#"{"message":"Not Found"}"#.into()),
            }
        }
        _ => (404, r#"{"message":"Not Found"}"#.into()),
    }
}

#[test]
fn issues_are_created_commented_closed_reopened_and_never_doubled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Mutex::new(Repo::default()));
    let r2 = repo.clone();
    let srv = Server::start(Box::new(move |req| handle(&r2, req)));
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("write");
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- name: gh\n  type: github\n  api_url: {}\n  repo: acme/infra\n  token_file: {}\n  labels: [anomalyd, ops]\n  reopen_window: 1h\n  retry_initial: 10ms\n  retry_max: 10ms\n",
        srv.url(),
        token.display()
    ))
    .expect("config");
    let db = dir.path().join("tickets.db");
    let min = 60_000;
    enqueue(
        &db,
        "gh",
        &[
            delivery("a1", "INC-1", "fpA", DeliveryKind::Open, 0),
            delivery("a2", "INC-1", "fpA", DeliveryKind::Update, min),
            delivery("a3", "INC-1", "fpA", DeliveryKind::Resolve, 2 * min),
            delivery("a4", "INC-2", "fpA", DeliveryKind::Open, 10 * min),
            delivery("b1", "INC-3", "fpB", DeliveryKind::Open, 11 * min),
        ],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let rep = d.run_once(20 * min);
    assert_eq!((rep.delivered, rep.failed), (5, 0), "{rep:?}");
    {
        let r = repo.lock().expect("lock");
        assert_eq!(r.issues.len(), 2, "the reopen reused issue #1");
        let one = &r.issues[0];
        assert!(one.title.contains("/var full") && one.title.contains("INC-1"));
        // The update rewrote the body (with its own marker).
        assert!(one.body.contains("/var fills") && one.body.contains("delivery=a2"));
        assert_eq!(
            one.labels,
            vec![
                "anomalyd",
                "ops",
                "type:storage",
                "severity:P2",
                "host:web-1"
            ]
        );
        assert_eq!(one.comments.len(), 3, "update, resolve, reopen");
        assert!(one.comments[2].contains("Reopened as INC-2"));
        assert_eq!(one.state, "open");
        assert!(one.was_closed, "closed before the reopen");
        assert_eq!(one.state_reason.as_deref(), Some("reopened"));
        assert_eq!(r.issues[1].state, "open");
    }

    // A create whose answer is lost (502 after the issue was made): the retry looks
    // the issue up by its marker instead of creating a second one.
    repo.lock().expect("lock").fail_next_create = true;
    enqueue(
        &db,
        "gh",
        &[
            delivery("c1", "INC-4", "fpC", DeliveryKind::Open, 30 * min),
            delivery("c2", "INC-4", "fpC", DeliveryKind::Resolve, 31 * min),
        ],
    );
    let rep = d.run_once(40 * min);
    assert_eq!(rep.failed, 1);
    let rep = d.run_once(41 * min);
    assert_eq!((rep.delivered, rep.pending), (2, 0), "{rep:?}");
    let r = repo.lock().expect("lock");
    let c: Vec<&Issue> = r
        .issues
        .iter()
        .filter(|i| i.body.contains("fingerprint=fpC"))
        .collect();
    assert_eq!(c.len(), 1, "exactly one issue for fpC");
    assert_eq!(c[0].state, "closed", "the resolve went to the issue found");
    assert_eq!(r.issues.len(), 3);
}

#[test]
fn a_wrong_token_is_an_error_that_never_shows_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Arc::new(Mutex::new(Repo::default()));
    let r2 = repo.clone();
    let srv = Server::start(Box::new(move |req| handle(&r2, req)));
    std::env::set_var("ANOMALYD_TEST_GH_TOKEN", "ghp_wrong_token_abcdef");
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- {{name: gh, type: github, api_url: '{}', repo: acme/infra, token_env: ANOMALYD_TEST_GH_TOKEN}}\n",
        srv.url()
    ))
    .expect("config");
    assert!(!format!("{sinks:?}").contains("ghp_wrong_token_abcdef"));
    let db = dir.path().join("tickets.db");
    enqueue(
        &db,
        "gh",
        &[delivery("a1", "INC-1", "fpA", DeliveryKind::Open, 0)],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    assert_eq!(d.run_once(1000).failed, 1);
    let conn = rusqlite::Connection::open(&db).expect("open");
    let rows = anomalyd::tickets::outbox::rows(&conn).expect("rows");
    let err = rows[0].last_error.clone().unwrap_or_default();
    assert!(
        err.contains("401") && err.contains("Bad credentials"),
        "{err}"
    );
    assert!(!err.contains("ghp_wrong_token_abcdef"));
    assert!(repo.lock().expect("lock").issues.is_empty());
}

/// The diagnosis and the remediation run reach the issue (its body is rewritten on
/// each update) and its comments; the labels carry type, severity and host; an
/// oversized diagnosis is cut to GitHub's limit, with a line saying so, not refused.
#[test]
fn the_issue_carries_the_diagnosis_and_the_run_and_a_huge_report_is_cut() {
    for (dirs, huge) in [(0, false), (2000, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Arc::new(Mutex::new(Repo::default()));
        let r2 = repo.clone();
        let srv = Server::start(Box::new(move |req| handle(&r2, req)));
        let token = dir.path().join("token");
        std::fs::write(&token, TOKEN).expect("write");
        let sinks = sinks_from_yaml(&format!(
            "sinks:\n- {{name: gh, type: github, api_url: '{}', repo: acme/infra, token_file: '{}', retry_initial: 10ms, retry_max: 10ms}}\n",
            srv.url(),
            token.display()
        ))
        .expect("config");
        let db = dir.path().join("tickets.db");
        ticket_with_evidence(&db, &["gh"], dirs);
        let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
        let rep = d.run_once(anomalyd::sample::now_ms());
        assert_eq!((rep.delivered, rep.failed), (3, 0), "{rep:?}");
        let r = repo.lock().expect("lock");
        assert_eq!(r.issues.len(), 1);
        let i = &r.issues[0];
        assert_eq!(
            i.labels,
            ["anomalyd", "type:storage", "severity:P2", "host:web-1"]
        );
        for needle in [
            "## Diagnosis",
            "| 4242 | `gzip` | 97 % |",
            "| `/var/log/app` | 5.00 GiB |",
            "## Remediation",
            "remediation \"clean-app-logs\": exit 0 (ok, 0.3 s) (verification pending",
        ] {
            assert!(
                i.body.contains(needle),
                "missing {needle:?} in the issue body"
            );
        }
        assert!(i.comments[0].starts_with("diagnosis: top CPU gzip (97%)"));
        assert!(i.comments[1].starts_with("remediation \"clean-app-logs\": exit 0"));
        let n = i.body.chars().count();
        assert!(n <= 65_536, "{n}");
        assert_eq!(
            i.body.contains("[... cut: the report has"),
            huge,
            "{n} characters"
        );
        if huge {
            assert!(n > 60_000, "{n}");
            // The marker that in-doubt retries look for survives the cut.
            assert!(i.body.contains("<!-- anomalyd delivery="));
        }
    }
}
