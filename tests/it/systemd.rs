//! The shipped unit passes `systemd-analyze verify` and stays hardened:
//! `systemd-analyze security --offline=true` must rate it 2.0 or better.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// The text of the shipped unit `systemd/<name>`.
fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!("{}/systemd/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A copy of the shipped unit `name` in `dir`. verify checks that ExecStart exists:
/// the copy points it at the binary under test.
fn copy_unit(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let text = shipped(name).replace("/usr/bin/anomalyd", env!("CARGO_BIN_EXE_anomalyd"));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn unit_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_unit(dir.path(), "anomalyd.service");
    (dir, path)
}

fn analyze(args: &[&str]) -> Option<(bool, String)> {
    let out = Command::new("systemd-analyze").args(args).output().ok()?;
    Some((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// `systemd-analyze security`'s overall exposure score of `unit`, and its line.
fn exposure(unit: &std::path::Path) -> (f64, String) {
    let (_, out) = analyze(&[
        "security",
        "--offline=true",
        "--no-pager",
        unit.to_str().unwrap(),
    ])
    .expect("systemd-analyze");
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score in:\n{out}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (score, line.to_string())
}

#[test]
fn unit_verifies() {
    let (_dir, path) = unit_copy();
    let (ok, out) =
        analyze(&["verify", path.to_str().unwrap()]).expect("systemd-analyze (package systemd)");
    assert!(
        ok && !out.contains("anomalyd.service:"),
        "systemd-analyze verify:\n{out}"
    );
}

#[test]
fn unit_exposure_is_at_most_2() {
    let (_dir, path) = unit_copy();
    let (score, line) = exposure(&path);
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{line}");
}

#[test]
fn unit_grants_only_cap_net_raw() {
    let text = shipped("anomalyd.service");
    let caps: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("AmbientCapabilities=") || l.starts_with("CapabilityBoundingSet=")
        })
        .collect();
    assert_eq!(
        caps,
        [
            "AmbientCapabilities=CAP_NET_RAW",
            "CapabilityBoundingSet=CAP_NET_RAW"
        ]
    );
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "ExecStartPre=/usr/bin/anomalyd check-config",
        "ExecReload=",
        "StateDirectory=anomalyd",
        "DynamicUser=yes",
        "LimitNOFILE=4096",
    ] {
        assert!(text.lines().any(|l| l.starts_with(key)), "unit lacks {key}");
    }
}

/// The remediation runner units (anomalyd-remediate.{service,path}) in a temp dir,
/// with ExecStart pointed at the binary under test.
fn remediate_units() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let service = copy_unit(dir.path(), "anomalyd-remediate.service");
    let path = copy_unit(dir.path(), "anomalyd-remediate.path");
    (dir, service, path)
}

#[test]
fn remediation_units_verify() {
    let (_dir, service, path) = remediate_units();
    let (ok, out) = analyze(&["verify", service.to_str().unwrap(), path.to_str().unwrap()])
        .expect("systemd-analyze");
    assert!(
        ok && !out.contains("anomalyd-remediate."),
        "systemd-analyze verify:\n{out}"
    );
}

#[test]
fn remediation_runner_is_root_but_fenced_and_the_daemon_only_queues() {
    // The runner must be root (fixes need it) but not wide open: measured 5.9 with
    // the shipped settings; an unhardened root service rates 9.6.
    let (_dir, service, _) = remediate_units();
    let (score, line) = exposure(&service);
    assert!(score <= 6.0, "runner exposure {score}:\n{line}");
    let text = std::fs::read_to_string(service).unwrap();
    assert!(text.contains("ExecStart=") && text.contains(" remediation serve "));
    assert!(
        !text.lines().any(|l| l.starts_with("User=")),
        "fixes need root"
    );
    // The daemon's side: a runtime directory for the spool, nothing more.
    let daemon = shipped("anomalyd.service");
    assert!(daemon.lines().any(|l| l == "RuntimeDirectory=anomalyd"));
    let path = shipped("anomalyd-remediate.path");
    assert!(path
        .lines()
        .any(|l| l == "DirectoryNotEmpty=/run/anomalyd/remediate/requests"));
}
