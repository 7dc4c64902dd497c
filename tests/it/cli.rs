//! What every command does the same way, with the real binary: an error says its OS
//! cause once; a reader that goes away (`| head -1`) ends the command quietly; a
//! replayed series must be in time order, and the output has the input's times.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{self, bursts};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = common::anomalyd(args);
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn os_errors_are_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("x.csv");
    let missing = missing.to_str().unwrap();
    let model = dir.path().join("m.json");
    let model = model.to_str().unwrap();
    for args in [
        vec!["score", "--model", model, "--input", missing],
        vec!["replay", "--input", missing],
        vec!["train", "--input", missing, "--out", model],
        vec!["check-config", missing],
        vec!["tickets", "list", "--config", missing],
    ] {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?}");
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{args:?}: {err}"
        );
        assert!(err.contains("x.csv"), "{args:?}: {err}");
    }
}

/// Run `anomalyd ARGS` with its standard output closed before it writes anything.
fn into_closed_pipe(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(common::bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, cfg) = bursts::write(dir.path(), 1, "");
    let state = dir.path().join("state");
    let (csv, cfg, state) = (
        csv.to_str().unwrap(),
        cfg.to_str().unwrap(),
        state.to_str().unwrap(),
    );
    let model = dir.path().join("m.json");
    let model = model.to_str().unwrap();
    let (ok, _, err) = run(&["train", "--input", csv, "--out", model]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&[
        "replay",
        "--input",
        csv,
        "--config",
        cfg,
        "--state-dir",
        state,
    ]);
    assert!(ok, "{err}");
    for args in [
        vec!["score", "--model", model, "--input", csv],
        vec!["replay", "--input", csv, "--config", cfg],
        vec!["tickets", "list", "--state-dir", state],
        vec!["tickets", "show", "INC-1", "--state-dir", state],
        vec!["collect", "--once", "--state-dir", state],
    ] {
        let out = into_closed_pipe(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("error"), "{args:?}: {err}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_replayed_series_is_in_time_order_and_its_output_says_when() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.yaml", "interval: 1m\n");
    let unsorted = write(
        dir.path(),
        "u.csv",
        "timestamp,cpu\n1700000000,1\n1700000060,2\n1700000030,3\n",
    );
    let (ok, out, err) = run(&["replay", "--input", &unsorted, "--config", &cfg]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("u.csv:4: timestamp"), "{err}");
    assert!(err.contains("is before the one on line 3"), "{err}");
    let repeated = write(
        dir.path(),
        "r.csv",
        "timestamp,cpu\n1700000000,1\n1700000000,2\n",
    );
    let (ok, _, err) = run(&["replay", "--input", &repeated, "--config", &cfg]);
    assert!(!ok);
    assert!(err.contains("r.csv:3: timestamp"), "{err}");
    assert!(err.contains("repeats the one on line 2"), "{err}");
    // In order: the first column is the row's time.
    let sorted = write(
        dir.path(),
        "s.csv",
        "timestamp,cpu\n1700000000,1\n2023-11-14T22:14:20Z,2\n",
    );
    let (ok, out, err) = run(&["replay", "--input", &sorted, "--config", &cfg]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "timestamp,score,anomaly,cause\n2023-11-14T22:13:20Z,0,0,\n2023-11-14T22:14:20Z,0,0,\n"
    );
    // Without times, no time column (rows are one interval apart).
    let plain = write(dir.path(), "p.csv", "cpu\n1\n2\n");
    let (ok, out, _) = run(&["replay", "--input", &plain, "--config", &cfg]);
    assert!(ok);
    assert_eq!(out, "score,anomaly,cause\n0,0,\n0,0,\n");
}
