//! The dashboard as a person uses it: headless Chromium loads every page of a daemon
//! running on a replayed history, finds the charts and the ticket rows, sees no
//! console error, acknowledges a ticket with a real click, which
//! `anomalyd tickets show` then shows, and sees another client's change appear on the
//! open page without a reload. Screenshots go to `target/screenshots/`.
//! Also: credentials on every page and API, the CSRF token on every POST, and a clear
//! 4xx for bad input.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{self, http_get, stdout_of, Daemon};

/// `anomalyd eval generate --faults` over a day, shifted to end a minute ago and cut
/// ten minutes into its last fault (every ping to `gw` lost), replayed into `state`:
/// a day of history, seven resolved tickets and one still open (INC-7), which the
/// daemon keeps open for `resolve_for` (10 min) at least.
fn replayed_state(dir: &Path) -> PathBuf {
    let csv = dir.join("day.csv");
    stdout_of(&[
        "eval",
        "generate",
        "--days",
        "1",
        "--faults",
        "--out",
        csv.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    // The last column is the fault label: the answer, not a measurement, which the
    // replay would learn as a feature. Cut from every line.
    let mut lines = text.lines().map(|l| l.rsplit_once(',').unwrap().0);
    let header = lines.next().unwrap();
    assert!(text.lines().next().unwrap().ends_with(",label"), "{header}");
    // The last fault starts at 90 % of the span (row 1296 of 1440).
    let rows: Vec<&str> = lines.take(1296 + 10).collect();
    let parse = |l: &str| anomalyd::text::parse_timestamp_ms(l.split(',').next().unwrap()).unwrap();
    let shift = anomalyd::sample::now_ms() - 60_000 - parse(rows[rows.len() - 1]);
    let mut out = format!("{header}\n");
    for l in rows {
        let (_, rest) = l.split_once(',').unwrap();
        out.push_str(&format!("{},{rest}\n", (parse(l) + shift) / 1000));
    }
    let shifted = dir.join("shifted.csv");
    std::fs::write(&shifted, out).unwrap();
    let state = dir.join("state");
    stdout_of(&[
        "replay",
        "--input",
        shifted.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    state
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("anomalyd.yaml");
    std::fs::write(&cfg, format!("interval: 1s\n{extra}")).unwrap();
    cfg
}

fn start(dir: &Path, state: &Path, cfg: &Path, extra: &[&str]) -> Daemon {
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let d = Daemon::start(dir, &args, &[]);
    d.wait_for("/api/v1/live", Duration::from_secs(20), |b| {
        b.contains("\"phase\":\"") && !b.contains("\"phase\":\"\"")
    });
    d
}

/// One HTTP/1.1 request; (status, headers, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    common::split_response(&raw)
}

/// The CSRF token in a ticket page's forms.
fn token(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("no action form") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

fn chromium() -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium || command -v chromium-browser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        common::skip("chromium is not installed (tests/run.sh installs it)");
    }
    found
}

fn browse(addr: SocketAddr, auth: Option<&str>, steps: serde_json::Value) -> serde_json::Value {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let plan = serde_json::json!({
        "base": format!("http://{addr}"),
        "auth": auth,
        "shots": shots,
        "steps": steps,
    });
    let mut child = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/cdp.py"))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(plan.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the browser driver failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn count(step: &serde_json::Value, sel: &str) -> u64 {
    step["count"][sel].as_u64().unwrap()
}

fn text<'a>(step: &'a serde_json::Value, sel: &str) -> &'a str {
    step["text"][sel].as_str().unwrap_or("")
}

/// The score chart's width over its card's inner width, and whether the health table's
/// right edge stays within its card.
const LAYOUT: &str =
    "(() => { const b = (s) => document.querySelector(s).getBoundingClientRect(); \
    const card = document.querySelector('#score-chart'); \
    return {chart: b('#score-chart svg').width / card.clientWidth, \
            health_fits: b('#health-parts').right <= b('#health').right}; })()";

/// The `gw` heatmap's width over its card's inner width.
const HEATMAP_WIDTH: &str =
    "document.querySelector('#heatmap-gw svg').getBoundingClientRect().width \
    / document.querySelector('#heatmap-gw').clientWidth";

#[test]
fn a_person_reads_every_page_and_acknowledges_a_ticket_with_a_click() {
    if !chromium() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = replayed_state(dir.path());
    let cfg = config(dir.path(), "http:\n  dashboard_loopback_writes: true\n");
    let d = start(dir.path(), &state, &cfg, &["--ping-target", "127.0.0.1"]);
    let r = browse(
        d.addr,
        None,
        serde_json::json!([
            {"open": "/", "count": ["tr.ticket-row", "#resources tbody tr.memory",
                                    "#resources tbody tr.filesystem", "#score-chart svg",
                                    "#health-parts tbody tr", "#facts dd"],
             "text": ["#phase", "#causes"], "shot": "overview.png", "js": LAYOUT},
            {"open": "/latency", "count": [".target", "#heatmap-gw svg rect", "#updated"],
             "shot": "latency.png", "js": HEATMAP_WIDTH},
            {"click": ".target[data-target=gw] h2 a", "count": [".target"]},
            {"open": "/tickets", "count": ["tr.ticket-row"], "shot": "tickets.png"},
            {"open": "/tickets/INC-7", "count": ["#ack", "#timeline tr.event"],
             "text": ["#status", "#body h1, #body h2"], "shot": "ticket.png"},
            {"click": "#ack", "text": ["#status", "#assignee", "#timeline"]},
            // Live updates: someone else assigns the ticket (a request of its own, not
            // this page's navigation); the open page shows it without a reload.
            {"js": "window.stillHere = 1; fetch('/tickets/INC-7/assign', {method: 'POST', \
                    body: new URLSearchParams({csrf: document.querySelector('input[name=csrf]').value, \
                    who: 'bob'})}).then(r => r.ok)"},
            {"wait": 7, "js": "window.stillHere === 1", "text": ["#assignee", "#timeline"]},
        ]),
    );
    let steps = r["steps"].as_array().unwrap();
    let (overview, latency, zoomed, tickets, ticket, clicked, later) = (
        &steps[0], &steps[1], &steps[2], &steps[3], &steps[4], &steps[5], &steps[7],
    );
    assert_eq!(
        count(overview, "#score-chart svg"),
        1,
        "the score chart: {overview}"
    );
    assert_eq!(count(overview, "#health-parts tbody tr"), 4, "{overview}");
    // The charts take their card's width; the health table stays inside its card.
    let layout = &overview["js"];
    assert!(layout["chart"].as_f64().unwrap() > 0.95, "{overview}");
    assert_eq!(layout["health_fits"], true, "{overview}");
    assert!(latency["js"].as_f64().unwrap() > 0.95, "{latency}");
    // The generated label column is not replayed, so it is never a cause.
    assert!(!text(overview, "#causes").contains("label"), "{overview}");
    // The Latency page does not poll, so it shows no "updated" clock.
    assert_eq!(count(latency, "#updated"), 0, "{latency}");
    assert!(count(overview, "#facts dd") >= 5, "host facts: {overview}");
    // The replayed target and the live one.
    assert!(count(latency, ".target") >= 1, "{latency}");
    assert!(
        count(latency, "#heatmap-gw svg rect") > 20,
        "heatmap cells: {latency}"
    );
    assert_eq!(zoomed["url"], "/latency?since=1h&target=gw", "{zoomed}");
    assert_eq!(count(zoomed, ".target"), 1, "{zoomed}");
    assert!(count(overview, "tr.ticket-row") >= 1, "{overview}");
    assert_eq!(
        count(overview, "#resources tbody tr.memory"),
        1,
        "{overview}"
    );
    assert!(
        count(overview, "#resources tbody tr.filesystem") >= 1,
        "{overview}"
    );
    assert!(
        ["warming up", "probation", "trained"]
            .iter()
            .any(|p| text(overview, "#phase").starts_with(p)),
        "{overview}"
    );
    assert_eq!(count(tickets, "tr.ticket-row"), 7, "{tickets}");
    assert_eq!(count(ticket, "#ack"), 1, "{ticket}");
    assert!(count(ticket, "#timeline tr.event") >= 1, "{ticket}");
    assert_eq!(text(ticket, "#status"), "open", "{ticket}");
    assert!(
        !text(ticket, "#body h1, #body h2").is_empty(),
        "the body as Markdown: {ticket}"
    );
    assert_eq!(clicked["url"], "/tickets/INC-7", "{clicked}");
    assert_eq!(text(clicked, "#status"), "acknowledged", "{clicked}");
    assert_eq!(text(clicked, "#assignee"), "dashboard", "{clicked}");
    assert!(
        text(clicked, "#timeline").contains("acknowledged by dashboard"),
        "{clicked}"
    );
    assert_eq!(steps[6]["js"], true, "the assign request: {}", steps[6]);
    assert_eq!(later["js"], true, "the page was reloaded: {later}");
    assert_eq!(text(later, "#assignee"), "bob", "not updated live: {later}");
    assert!(
        text(later, "#timeline").contains("assigned to bob"),
        "{later}"
    );
    let errors = r["errors"].as_array().unwrap();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let shown = stdout_of(&[
        "tickets",
        "show",
        "INC-7",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(shown.contains("acknowledged by dashboard"), "{shown}");
    for shot in ["overview", "latency", "tickets", "ticket"] {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/screenshots/{shot}.png"));
        assert!(
            std::fs::metadata(&p).unwrap().len() > 10_000,
            "{}",
            p.display()
        );
    }
}

const PAGES: &[&str] = &[
    "/",
    "/latency",
    "/tickets",
    "/tickets/INC-7",
    "/api/v1/live",
    "/api/v1/timeline?since=24h",
    "/api/v1/heatmap",
    "/api/v1/health",
    "/charts/score.svg",
    "/charts/latency.svg?target=gw",
    "/api/v1/tickets",
    "/assets/dash.js",
    "/assets/dash.css",
];

#[test]
fn with_basic_auth_every_page_needs_credentials_and_a_post_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let state = replayed_state(dir.path());
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = dir.path().join("web.yaml");
    std::fs::write(&web, format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
    let cfg = config(dir.path(), &format!("web_config_file: {}\n", web.display()));
    let d = Daemon::start(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    use base64::Engine;
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
    );
    let bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:wrong")
    );
    for (i, p) in PAGES.iter().enumerate() {
        assert_eq!(http_get(d.addr, p, None).0, 401, "{p} without credentials");
        // Five wrong passwords in 10 s and the gate answers 429 for a while.
        if i < 3 {
            assert_eq!(
                http_get(d.addr, p, Some(&bad)).0,
                401,
                "{p} with a wrong password"
            );
        }
        assert_eq!(http_get(d.addr, p, Some(&good)).0, 200, "{p}");
    }
    // What the JSON API and the chart URLs give.
    let get_json = |p: &str| -> serde_json::Value {
        let (status, body) = http_get(d.addr, p, Some(&good));
        assert_eq!(status, 200, "{p}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let timeline = get_json("/api/v1/timeline?since=24h");
    assert!(
        timeline["points"].as_array().unwrap().len() > 100,
        "{timeline}"
    );
    assert_eq!(timeline["incidents"].as_array().unwrap().len(), 7);
    let heat = get_json("/api/v1/heatmap?target=gw");
    assert_eq!(heat[0]["target"], "gw", "{heat}");
    assert!(heat[0]["counts"].as_array().unwrap().len() >= 60, "{heat}");
    let health = get_json("/api/v1/health");
    assert_eq!(
        health["health"]["parts"].as_array().unwrap().len(),
        4,
        "{health}"
    );
    assert!(health["facts"]["cores"].as_u64().unwrap() >= 1, "{health}");
    let live = get_json("/api/v1/live");
    assert_eq!(live["tickets_open"][0]["id"], "INC-7", "{live}");
    let (_, svg) = http_get(d.addr, "/charts/score.svg", Some(&good));
    assert!(svg.trim_start().starts_with("<svg"), "{svg:.200}");

    let auth = [("Authorization", good.as_str())];
    let ack = "/tickets/INC-7/ack";
    assert_eq!(request(d.addr, "POST", ack, &[], "").0, 401);
    let (_, _, page) = request(d.addr, "GET", "/tickets/INC-7", &auth, "");
    let t = token(&page);
    // No token, someone else's, a forged one: refused, and nothing recorded.
    assert_eq!(request(d.addr, "POST", ack, &auth, "").0, 403);
    assert_eq!(request(d.addr, "POST", ack, &auth, "csrf=AAAA").0, 403);
    let show = || {
        stdout_of(&[
            "tickets",
            "show",
            "INC-7",
            "--state-dir",
            state.to_str().unwrap(),
        ])
    };
    assert!(!show().contains("acknowledged by"), "{}", show());
    let (status, head, _) = request(d.addr, "POST", ack, &auth, &format!("csrf={t}"));
    assert_eq!(status, 303, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("location: /tickets/inc-7"),
        "{head}"
    );
    let (status, _, _) = request(
        d.addr,
        "POST",
        "/tickets/INC-7/assign",
        &auth,
        &format!("csrf={t}&who=bob"),
    );
    assert_eq!(status, 303);
    let shown = show();
    assert!(shown.contains("acknowledged by alice"), "{shown}");
    assert!(shown.contains("assigned to bob by alice"), "{shown}");
    // A resolved ticket cannot be acknowledged: 409, said in words.
    let (status, _, _) = request(
        d.addr,
        "POST",
        "/tickets/INC-7/resolve",
        &auth,
        &format!("csrf={t}&note=gateway+rebooted"),
    );
    assert_eq!(status, 303);
    let (status, _, body) = request(d.addr, "POST", ack, &auth, &format!("csrf={t}"));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("resolved"), "{body}");
}

#[test]
fn without_auth_the_dashboard_is_read_only_unless_loopback_writes_are_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = replayed_state(dir.path());
    let cfg = config(dir.path(), "");
    let d = start(dir.path(), &state, &cfg, &[]);
    let (status, _, page) = request(d.addr, "GET", "/tickets/INC-7", &[], "");
    assert_eq!(status, 200);
    assert!(
        !page.contains("name=\"csrf\""),
        "no action forms when read-only"
    );
    assert!(page.contains("Read-only"), "{page}");
    let (status, _, body) = request(d.addr, "POST", "/tickets/INC-7/ack", &[], "csrf=x");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("dashboard_loopback_writes"), "{body}");
}

#[test]
fn bad_input_gets_a_clear_4xx_never_a_500_or_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let state = replayed_state(dir.path());
    let cfg = config(dir.path(), "http:\n  dashboard_loopback_writes: true\n");
    let d = start(dir.path(), &state, &cfg, &[]);
    let huge = "x".repeat(5000);
    let long_query = format!("/latency?since={}", "9".repeat(3000));
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("GET", "/tickets/INC-404", "", 404, "no ticket INC-404"),
        ("GET", "/tickets/..%2F..%2Fetc", "", 404, "no such ticket"),
        ("GET", "/?since=-5", "", 400, "since=&quot;-5&quot;"),
        (
            "GET",
            "/latency?since=99999d",
            "",
            400,
            "since=&quot;99999d&quot;: too long",
        ),
        (
            "GET",
            "/api/v1/timeline?since=99999d",
            "",
            400,
            "a range from 1h to 7d",
        ),
        ("GET", "/charts/latency.svg", "", 400, "target= is required"),
        (
            "GET",
            "/api/v1/heatmap?target=nowhere",
            "",
            404,
            "no ping target",
        ),
        ("GET", "/latency?since=1e400d", "", 400, "since="),
        ("GET", "/latency?zoom=1", "", 400, "unknown parameter"),
        ("GET", &long_query, "", 414, "at most"),
        (
            "GET",
            "/tickets?open=maybe",
            "",
            400,
            "open=&quot;maybe&quot;",
        ),
        ("GET", "/api/v1/live?x=1", "", 400, "unknown parameter"),
        ("POST", "/tickets/INC-7/ack", &huge, 413, "over"),
        ("POST", "/tickets/INC-7/assign", "", 403, "CSRF"),
        ("POST", "/tickets/INC-7/delete", "", 403, "CSRF"),
        ("DELETE", "/tickets/INC-7", "", 405, ""),
        ("POST", "/", "", 405, ""),
    ];
    for (method, path, body, want, says) in cases {
        let t = Instant::now();
        let (status, _, text) = request(d.addr, method, path, &[], body);
        assert_eq!(
            status,
            *want,
            "{method} {}: {text}",
            &path[..path.len().min(60)]
        );
        assert!(text.contains(says), "{method} {path:.60}: {text}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{method} {path:.60} took {:?}",
            t.elapsed()
        );
    }
    // With the token: a missing field, an unknown action.
    let (_, _, page) = request(d.addr, "GET", "/tickets/INC-7", &[], "");
    let t = token(&page);
    let form = format!("csrf={t}");
    assert_eq!(
        request(d.addr, "POST", "/tickets/INC-7/assign", &[], &form).0,
        400
    );
    assert_eq!(
        request(d.addr, "POST", "/tickets/INC-7/delete", &[], &form).0,
        404
    );
    assert_eq!(
        request(d.addr, "POST", "/tickets/INC-404/ack", &[], &form).0,
        404
    );
    // The daemon is still sampling.
    assert_eq!(http_get(d.addr, "/healthz", None).0, 200);
}

/// A ticket resolved on the dashboard is resolved in the ticket system too: the
/// action queues its delivery for the configured sinks, as the daemon's own changes
/// do (it used to be recorded in the store only, so the sink's issue stayed open).
#[test]
fn a_ticket_resolved_on_the_dashboard_is_delivered_to_the_sinks() {
    use crate::common::sinks::Server;
    let dir = tempfile::tempdir().unwrap();
    let state = replayed_state(dir.path());
    let hook = Server::start(Box::new(|_| (200, "{}".into())));
    let cfg = config(
        dir.path(),
        &format!(
            "http:\n  dashboard_loopback_writes: true\ntickets:\n  sinks:\n  - name: hook\n    \
             type: webhook\n    url: {}/t\n    retry_initial: 50ms\n    retry_max: 200ms\n",
            hook.url()
        ),
    );
    let d = start(dir.path(), &state, &cfg, &[]);
    let resolves = |rs: &[crate::common::sinks::Request]| {
        rs.iter()
            .filter(|r| r.json()["ticket_id"] == "INC-7" && r.json()["event"] == "resolve")
            .count()
    };
    let (_, _, page) = request(d.addr, "GET", "/tickets/INC-7", &[], "");
    let t = token(&page);
    assert_eq!(resolves(&hook.requests()), 0, "INC-7 is open");
    let (status, head, _) = request(
        d.addr,
        "POST",
        "/tickets/INC-7/resolve",
        &[],
        &format!("csrf={t}&note=gateway+rebooted"),
    );
    assert_eq!(status, 303, "{head}");
    let seen = hook.wait(Duration::from_secs(20), |rs| resolves(rs) > 0);
    assert_eq!(resolves(&seen), 1, "{} requests", seen.len());
}
