//! The Jira sink against a local HTTP server that keeps issues, comments and a
//! two-status workflow (To Do <-> Done) and checks every request against Jira's REST
//! API v2 (basic auth, Accept, exact body shapes of create / comment / transition);
//! anything else gets a 4xx, which fails the delivery and so the test.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::common::sinks::*;
use anomalyd::tickets::outbox::Deliverer;
use anomalyd::tickets::DeliveryKind;
use base64::Engine as _;
use serde_json::{json, Value};

const USER: &str = "bot@example.com";
const TOKEN: &str = "jira-api-token-77aa";

#[derive(Default)]
struct Jira {
    issues: Vec<Issue>,
    fail_next_create: bool,
}

struct Issue {
    key: String,
    summary: String,
    description: String,
    labels: Vec<String>,
    issue_type: String,
    done: bool,
    comments: Vec<String>,
    transitions: Vec<String>,
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(k: &[&str]) -> BTreeSet<String> {
    k.iter().map(|s| s.to_string()).collect()
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            let h = std::str::from_utf8(&b[i + 1..(i + 3).min(b.len())]).unwrap_or("");
            out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Jira refuses a text field over 32,767 characters (400).
fn too_long(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.chars().count() > 32_767)
}

/// Labels are strings without spaces.
fn labels_ok(v: &Value) -> bool {
    v.as_array().is_some_and(|l| {
        l.iter()
            .all(|x| x.as_str().is_some_and(|x| !x.contains(' ')))
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect()
}

fn handle(j: &Mutex<Jira>, req: &Request) -> (u16, String) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{TOKEN}"));
    if req.header("authorization") != Some(&format!("Basic {basic}"))
        || req.header("accept") != Some("application/json")
    {
        return (401, "{}".into());
    }
    if !req.body.is_empty() && req.header("content-type") != Some("application/json") {
        return (415, "{}".into());
    }
    let bad = |m: &str| (400, json!({"errorMessages": [m]}).to_string());
    let mut s = j.lock().expect("lock");
    let segs: Vec<&str> = req.path().trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["rest", "api", "2", "issue"]) => {
            let b = req.json();
            let f = &b["fields"];
            if keys(&b) != set(&["fields"])
                || keys(f) != set(&["project", "summary", "description", "issuetype", "labels"])
                || keys(&f["project"]) != set(&["key"])
                || f["project"]["key"] != "OPS"
                || keys(&f["issuetype"]) != set(&["name"])
                || f["summary"].as_str().is_none_or(str::is_empty)
                || !f["description"].is_string()
                || too_long(&f["description"])
                || !labels_ok(&f["labels"])
            {
                return bad("invalid create");
            }
            let key = format!("OPS-{}", s.issues.len() + 1);
            s.issues.push(Issue {
                key: key.clone(),
                summary: f["summary"].as_str().unwrap_or("").into(),
                description: f["description"].as_str().unwrap_or("").into(),
                labels: strings(&f["labels"]),
                issue_type: f["issuetype"]["name"].as_str().unwrap_or("").into(),
                done: false,
                comments: Vec::new(),
                transitions: Vec::new(),
            });
            if std::mem::take(&mut s.fail_next_create) {
                return (504, "gateway timeout".into());
            }
            (201, json!({"id": "10001", "key": key}).to_string())
        }
        ("GET", ["rest", "api", "2", "search"]) => {
            let jql = req
                .target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("jql="))
                .map(decode)
                .unwrap_or_default();
            // project = "OPS" AND labels = "X" ORDER BY created DESC
            let label = jql
                .split("labels = \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string();
            if !jql.starts_with("project = \"OPS\"") || label.is_empty() {
                return bad("unsupported JQL");
            }
            let issues: Vec<Value> = s
                .issues
                .iter()
                .rev()
                .filter(|i| i.labels.contains(&label))
                .map(|i| json!({"key": i.key, "fields": {"description": i.description}}))
                .collect();
            (
                200,
                json!({"total": issues.len(), "issues": issues}).to_string(),
            )
        }
        (m, ["rest", "api", "2", "issue", key, rest @ ..]) => {
            let Some(i) = s.issues.iter_mut().find(|i| i.key == *key) else {
                return (
                    404,
                    json!({"errorMessages": ["Issue does not exist"]}).to_string(),
                );
            };
            match (m, rest) {
                ("POST", ["comment"]) => {
                    let b = req.json();
                    if keys(&b) != set(&["body"]) || !b["body"].is_string() || too_long(&b["body"])
                    {
                        return bad("invalid comment");
                    }
                    i.comments.push(b["body"].as_str().unwrap_or("").into());
                    (201, json!({"id": "1"}).to_string())
                }
                ("PUT", []) => {
                    let b = req.json();
                    let f = &b["fields"];
                    if keys(&b) != set(&["fields"])
                        || keys(f) != set(&["description", "labels"])
                        || !f["description"].is_string()
                        || too_long(&f["description"])
                        || !labels_ok(&f["labels"])
                    {
                        return bad("invalid edit");
                    }
                    i.description = f["description"].as_str().unwrap_or("").into();
                    i.labels = strings(&f["labels"]);
                    (204, String::new())
                }
                ("GET", ["comment"]) => {
                    let c: Vec<Value> = i.comments.iter().map(|b| json!({"body": b})).collect();
                    (200, json!({"comments": c, "total": c.len()}).to_string())
                }
                ("GET", ["transitions"]) => {
                    let t = if i.done {
                        json!([{"id": "11", "name": "Reopen", "to": {"name": "To Do"}}])
                    } else {
                        json!([{"id": "31", "name": "Done", "to": {"name": "Done"}}])
                    };
                    (200, json!({"transitions": t}).to_string())
                }
                ("POST", ["transitions"]) => {
                    let b = req.json();
                    if keys(&b) != set(&["transition"]) || keys(&b["transition"]) != set(&["id"]) {
                        return bad("invalid transition body");
                    }
                    match (b["transition"]["id"].as_str(), i.done) {
                        (Some("31"), false) => i.done = true,
                        (Some("11"), true) => i.done = false,
                        _ => return bad("transition not available"),
                    }
                    i.transitions
                        .push(b["transition"]["id"].as_str().unwrap_or("").into());
                    (204, String::new())
                }
                ("GET", []) => {
                    let cat = if i.done { "done" } else { "new" };
                    (
                        200,
                        json!({"key": i.key, "fields": {"status": {"statusCategory": {"key": cat}}}})
                            .to_string(),
                    )
                }
                _ => (404, "{}".into()),
            }
        }
        _ => (404, "{}".into()),
    }
}

#[test]
fn issues_are_created_commented_transitioned_and_never_doubled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = Arc::new(Mutex::new(Jira::default()));
    let s2 = state.clone();
    let srv = Server::start(Box::new(move |req| handle(&s2, req)));
    std::env::set_var("ANOMALYD_TEST_JIRA_TOKEN", TOKEN);
    let sinks = sinks_from_yaml(&format!(
        "sinks:\n- name: jira\n  type: jira\n  url: {}\n  project: OPS\n  issue_type: Incident\n  user: {USER}\n  token_env: ANOMALYD_TEST_JIRA_TOKEN\n  resolve_transition: Done\n  reopen_transition: Reopen\n  retry_initial: 10ms\n  retry_max: 10ms\n",
        srv.url()
    ))
    .expect("config");
    assert!(!format!("{sinks:?}").contains(TOKEN));
    let db = dir.path().join("tickets.db");
    let min = 60_000;
    enqueue(
        &db,
        "jira",
        &[
            delivery("a1", "INC-1", "fpA", DeliveryKind::Open, 0),
            delivery("a2", "INC-1", "fpA", DeliveryKind::Update, min),
            delivery("a3", "INC-1", "fpA", DeliveryKind::Resolve, 2 * min),
            delivery("a4", "INC-2", "fpA", DeliveryKind::Open, 10 * min),
            delivery("a5", "INC-2", "fpA", DeliveryKind::Resolve, 12 * min),
        ],
    );
    let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
    let rep = d.run_once(20 * min);
    assert_eq!((rep.delivered, rep.failed), (5, 0), "{rep:?}");
    {
        let s = state.lock().expect("lock");
        assert_eq!(s.issues.len(), 1, "the reopen reused OPS-1");
        let i = &s.issues[0];
        assert_eq!(i.issue_type, "Incident");
        assert!(i.summary.contains("INC-1"));
        // The update rewrote the description (with its own marker).
        assert!(i.description.contains("anomalyd-delivery: a2"));
        assert!(i.labels.contains(&"anomalyd".to_string()));
        assert!(i.labels.iter().any(|l| l.starts_with("anomalyd-")));
        assert_eq!(i.comments.len(), 4, "update, resolve, reopen, resolve");
        assert_eq!(i.transitions, vec!["31", "11", "31"]);
        assert!(i.done);
    }

    // The create's answer is lost after the issue was made: the retry finds it by JQL.
    state.lock().expect("lock").fail_next_create = true;
    enqueue(
        &db,
        "jira",
        &[
            delivery("b1", "INC-3", "fpB", DeliveryKind::Open, 30 * min),
            delivery("b2", "INC-3", "fpB", DeliveryKind::Update, 31 * min),
        ],
    );
    assert_eq!(d.run_once(40 * min).failed, 1);
    let rep = d.run_once(41 * min);
    assert_eq!((rep.delivered, rep.pending), (2, 0), "{rep:?}");
    let s = state.lock().expect("lock");
    assert_eq!(s.issues.len(), 2, "no second issue for fpB");
    assert_eq!(s.issues[1].comments.len(), 1);
}

/// The diagnosis and the remediation run reach the issue (its description is
/// rewritten on each update) and its comments; the labels carry type, severity and
/// host; an oversized diagnosis is cut to Jira's field limit, not refused.
#[test]
fn the_issue_carries_the_diagnosis_and_the_run_and_a_huge_report_is_cut() {
    for (dirs, huge) in [(0, false), (2000, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = Arc::new(Mutex::new(Jira::default()));
        let s2 = state.clone();
        let srv = Server::start(Box::new(move |req| handle(&s2, req)));
        let token = dir.path().join("token");
        std::fs::write(&token, TOKEN).expect("write");
        let sinks = sinks_from_yaml(&format!(
            "sinks:\n- {{name: jira, type: jira, url: '{}', project: OPS, user: {USER}, token_file: '{}', retry_initial: 10ms, retry_max: 10ms}}\n",
            srv.url(),
            token.display()
        ))
        .expect("config");
        let db = dir.path().join("tickets.db");
        ticket_with_evidence(&db, &["jira"], dirs);
        let mut d = Deliverer::open(&db, &sinks).expect("deliverer");
        let rep = d.run_once(anomalyd::sample::now_ms());
        assert_eq!((rep.delivered, rep.failed), (3, 0), "{rep:?}");
        let s = state.lock().expect("lock");
        assert_eq!(s.issues.len(), 1);
        let i = &s.issues[0];
        for l in ["anomalyd", "type:storage", "severity:P2", "host:web-1"] {
            assert!(
                i.labels.contains(&l.to_string()),
                "{l} not in {:?}",
                i.labels
            );
        }
        for needle in [
            "## Diagnosis",
            "| 4242 | `gzip` | 97 % |",
            "| `/var/log/app` | 5.00 GiB |",
            "remediation \"clean-app-logs\": exit 0 (ok, 0.3 s) (verification pending",
        ] {
            assert!(i.description.contains(needle), "missing {needle:?}");
        }
        assert!(i.comments[0].starts_with("diagnosis: top CPU gzip (97%)"));
        assert!(i.comments[1].starts_with("remediation \"clean-app-logs\": exit 0"));
        let n = i.description.chars().count();
        assert!(n <= 32_767, "{n}");
        assert_eq!(
            i.description.contains("[... cut: the report has"),
            huge,
            "{n}"
        );
        assert!(i.description.contains("anomalyd-delivery: "));
    }
}
