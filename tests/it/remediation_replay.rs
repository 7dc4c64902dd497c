//! End to end with the real binary: a replayed series raises a storage incident, the
//! shipped `clean-old-logs` example removes the old files from a test directory, the
//! incident clears, and the ticket's timeline shows the run and its verified outcome.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common;
use crate::common::bursts;

/// `anomalyd replay` of `csv` with `cfg` into `state`; its log, once it succeeded.
fn replay(csv: &Path, cfg: &Path, state: &Path) -> String {
    let out = Command::new(common::bin())
        .args(["replay", "--input"])
        .arg(csv)
        .arg("--config")
        .arg(cfg)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

#[test]
fn replayed_storage_incident_runs_the_cleanup_and_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    // The example script, copied to a directory only we can write (the checkout's
    // own ownership and modes are not ours to rely on).
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("clean-old-logs");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/remediation/clean-old-logs"
        ),
        &script,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("app")).unwrap();
    let old = ["app.log.1", "app.log.2", "app/worker.log.3"];
    let new = ["app.log", "app.log.0", "app/worker.log.1"];
    for f in old.iter().chain(&new) {
        std::fs::write(logs.join(f), vec![b'x'; 4096]).unwrap();
    }
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86400);
    for f in old {
        std::fs::File::options()
            .write(true)
            .open(logs.join(f))
            .unwrap()
            .set_modified(month_ago)
            .unwrap();
    }

    let extra = format!(
        "remediation:\n  rules:\n    - name: clean-logs\n      match: {{label: storage}}\n      \
         command: [{s}, --dir, {l}, --max-age-days, 7, --pattern, \"*.log.*\", --allow, {l}, --apply]\n      \
         verify_window: 3h\n",
        s = script.display(),
        l = logs.display()
    );
    let (csv, cfg) = bursts::write(dir.path(), 1, &extra);
    let state = dir.path().join("state");
    let check = Command::new(common::bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    replay(&csv, &cfg, &state);

    for f in old {
        assert!(!logs.join(f).exists(), "{f} should have been deleted");
    }
    for f in new {
        assert!(logs.join(f).exists(), "{f} should have been kept");
    }

    let show = Command::new(common::bin())
        .args(["tickets", "show", "INC-1", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(show.status.success(), "{show:?}");
    let t: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(t["status"], "resolved", "{t:#}");
    let timeline = t["timeline"].as_array().unwrap_or_else(|| panic!("{t:#}"));
    let run = timeline
        .iter()
        .find(|e| {
            e["kind"] == "action"
                && e["detail"]["rule"] == "clean-logs"
                && e["detail"]["result"].is_string()
        })
        .unwrap_or_else(|| panic!("no run on the timeline: {t:#}"));
    assert_eq!(run["detail"]["result"], "ok", "{run:#}");
    assert_eq!(run["detail"]["outcome"]["status"]["code"], 0);
    assert_eq!(run["detail"]["command"][0], script.to_str().unwrap());
    let output = run["detail"]["outcome"]["output"].as_str().unwrap();
    assert!(
        output.contains("deleted 3 files older than 7 days"),
        "{output}"
    );
    let verified = timeline
        .iter()
        .find(|e| e["detail"]["verify"].is_string())
        .unwrap_or_else(|| panic!("no verification on the timeline: {t:#}"));
    assert_eq!(verified["detail"]["verify"], "resolved", "{verified:#}");
    assert!(verified["summary"].as_str().unwrap().contains("verified"));
    // The run comes after the ticket opened, the verification when it resolved.
    let at = |e: &serde_json::Value| e["at_ms"].as_i64().unwrap();
    assert!(at(run) <= at(verified));
}

/// A replay with a fix that fails (exit 2) and a problem that comes back twice within
/// the reopen window: one ticket, reopened twice; the rule ran once (at most once per
/// incident), its failure is never "verified", and the timeline is in time order, in
/// the JSON and in `tickets show`.
#[test]
fn a_failing_fix_on_a_reopened_incident_runs_once_and_is_never_verified() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("mem-fix");
    std::fs::write(&script, "#!/bin/sh\nexit 2\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let extra = format!(
        "remediation:\n  rules:\n    - name: mem-fix\n      command: [{}]\n      cooldown: 0s\n",
        script.display()
    );
    let (csv, cfg) = bursts::write(dir.path(), 3, &extra);
    // Bursts 104 min apart come back within a 3 h reopen window.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("reopen_window: 0s", "reopen_window: 3h")).unwrap();
    let state = dir.path().join("state");
    replay(&csv, &cfg, &state);
    let show = |json: bool| {
        let mut cmd = Command::new(common::bin());
        cmd.args(["tickets", "show", "INC-1", "--state-dir"])
            .arg(&state);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let t: serde_json::Value = serde_json::from_str(&show(true)).unwrap();
    let timeline = t["timeline"].as_array().unwrap();
    let kinds: Vec<&str> = timeline
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "reopened").count(),
        2,
        "{t:#}"
    );
    let runs: Vec<&serde_json::Value> = timeline
        .iter()
        .filter(|e| e["detail"]["rule"] == "mem-fix" && e["detail"]["result"].is_string())
        .collect();
    assert_eq!(runs.len(), 1, "{t:#}");
    assert_eq!(runs[0]["detail"]["result"], "failed");
    assert!(
        timeline.iter().all(|e| e["detail"]["verify"].is_null()),
        "a failed run is never verified: {t:#}"
    );
    let at: Vec<i64> = timeline
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
    // The text shows the same order.
    let text = show(false);
    let times: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "## Timeline")
        .filter_map(|l| l.strip_prefix("- "))
        .map(|l| &l[..23])
        .collect();
    assert_eq!(times.len(), timeline.len(), "{text}");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{text}");
    assert!(!text.contains("verified"), "{text}");
}

/// Issue #11: a young model observes and does not page. With the history short of
/// `model.probation`, the burst still gets its ticket, muted `probation`, and the rule
/// that matches it never runs.
#[test]
fn a_model_on_probation_opens_muted_tickets_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let extra = format!(
        "remediation:\n  rules:\n    - name: touch\n      match: {{label: storage}}\n      \
         command: [/usr/bin/touch, {}]\n",
        marker.display()
    );
    let (csv, cfg) = bursts::write(dir.path(), 1, &extra);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("probation: 0s"));
    std::fs::write(&cfg, text.replace("probation: 0s", "probation: 30d")).unwrap();
    let state = dir.path().join("state");
    let log = replay(&csv, &cfg, &state);
    assert!(log.contains("on probation until"), "{log}");
    let list = Command::new(common::bin())
        .args(["tickets", "list", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let tickets: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let tickets = tickets.as_array().unwrap();
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    assert_eq!(tickets[0]["label"], "storage");
    assert_eq!(tickets[0]["muted_by"], "probation", "{:#}", tickets[0]);
    assert!(
        !marker.exists(),
        "the rule ran for a muted probation ticket"
    );
}
