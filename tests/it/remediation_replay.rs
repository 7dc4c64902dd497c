//! End to end with the real binary: a replayed series raises a storage incident, the
//! shipped `clean-old-logs` example removes the old files from a test directory, the
//! incident clears, and the ticket's timeline shows the run and its verified outcome.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common;
use crate::common::bursts;

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
    let out = Command::new(common::bin())
        .args(["replay", "--input"])
        .arg(&csv)
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");

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
