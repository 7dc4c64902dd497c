//! SIGHUP reloads `tickets.sinks` in a running daemon: a new sink starts receiving,
//! a rotated secret (a new secret file) signs from then on, and a reload with a
//! missing secret file is refused while the running sinks keep delivering. The
//! secrets never reach the logs.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use crate::common::sinks::*;
use crate::common::Daemon;

const OLD: &str = "old-secret-3f9a1c";
const NEW: &str = "new-secret-b27e40";
const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A receiver that accepts every POST and records it (signatures are checked by
/// the test, so a wrongly signed request is seen rather than retried forever).
fn receiver() -> Server {
    Server::start(Box::new(|req| {
        if req.method == "POST" {
            (200, "{}".into())
        } else {
            (405, "{}".into())
        }
    }))
}

fn sink(name: &str, url: &str, secret_file: &Path) -> String {
    format!(
        "  - name: {name}\n    type: webhook\n    url: {url}/t\n    secret_file: {}\n    retry_initial: 50ms\n    retry_max: 200ms\n",
        secret_file.display()
    )
}

fn write_config(path: &Path, sinks: &str) {
    std::fs::write(
        path,
        format!(
            "interval: 200ms\ncollectors:\n  ping:\n    enabled: false\nmodel:\n  enabled: false\n\
             tickets:\n  sinks:\n{sinks}"
        ),
    )
    .unwrap();
}

fn open_ticket(db: &Path, id: &str, sinks: &[&str]) {
    open_tickets(
        db,
        sinks,
        &[(id.into(), format!("web-1/forecast/bytes/{id}"))],
    );
}

fn opens_of(rx: &Server, ticket: &str) -> Vec<Request> {
    rx.requests()
        .into_iter()
        .filter(|r| r.json()["ticket_id"] == ticket && r.json()["event"] == "open")
        .collect()
}

#[test]
fn sighup_reloads_sinks_and_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let db = state.join("tickets.db");
    let (old_secret, new_secret) = (dir.path().join("old"), dir.path().join("new"));
    std::fs::write(&old_secret, OLD).unwrap();
    std::fs::write(&new_secret, NEW).unwrap();
    let (hook, audit) = (receiver(), receiver());
    let cfg = dir.path().join("anomalyd.yaml");
    write_config(&cfg, &sink("hook", &hook.url(), &old_secret));

    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let mut d = Daemon::start(dir.path(), &args, &[]);
    d.wait_log("ticket delivery started", SECS(20));
    open_ticket(&db, "INC-1", &["hook"]);
    hook.wait(SECS(20), |_| !opens_of(&hook, "INC-1").is_empty());
    assert!(opens_of(&hook, "INC-1").iter().all(|r| signed(r, OLD)));

    // Reload: the hook's secret rotated (a new file), and a second sink added.
    write_config(
        &cfg,
        &(sink("hook", &hook.url(), &new_secret) + &sink("audit", &audit.url(), &new_secret)),
    );
    d.signal(libc::SIGHUP);
    d.wait_log("ticket sinks reloaded", SECS(10));
    open_ticket(&db, "INC-2", &["hook", "audit"]);
    for rx in [&hook, &audit] {
        rx.wait(SECS(20), |_| !opens_of(rx, "INC-2").is_empty());
        let got = opens_of(rx, "INC-2");
        assert!(
            got.iter().all(|r| signed(r, NEW)),
            "INC-2 not signed with the new secret"
        );
    }

    // A reload whose secret cannot be read is refused as a whole (the config loader
    // reads secret files); the running sinks keep going.
    write_config(
        &cfg,
        &sink("hook", &hook.url(), &dir.path().join("no-such-secret")),
    );
    d.signal(libc::SIGHUP);
    d.wait_log("reload failed, keeping the running configuration", SECS(10));
    d.wait_log("no-such-secret", SECS(10));
    open_ticket(&db, "INC-3", &["hook", "audit"]);
    for rx in [&hook, &audit] {
        rx.wait(SECS(20), |_| !opens_of(rx, "INC-3").is_empty());
        assert!(opens_of(rx, "INC-3").iter().all(|r| signed(r, NEW)));
    }
    // INC-1 went to the hook only, before the audit sink existed.
    assert!(opens_of(&audit, "INC-1").is_empty());

    let mut logs = d.lines.clone();
    while let Ok(l) = d.log.try_recv() {
        logs.push(l);
    }
    let (exit, _) = d.stop();
    assert!(exit.success());
    for l in &logs {
        assert!(
            !l.contains(OLD) && !l.contains(NEW),
            "secret in the log: {l}"
        );
    }
}
