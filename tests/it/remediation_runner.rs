//! The remediation runner with real processes: timeouts kill whole trees, endless
//! output is capped, double-forked grandchildren are cleaned up, the environment is
//! exactly what we pass, and the user switch works.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anomalyd::remediate::runner::{Job, Status, SAFE_PATH};

use crate::common::runner;

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_str().unwrap().to_string()
}

fn job(argv: &[&str], timeout: Duration) -> Job {
    Job {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        timeout,
        output_cap: 64 * 1024,
        run_as: None,
    }
}

fn alive(pid: i32) -> bool {
    // A zombie still "exists" for kill(0); check its state too.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    match stat {
        Err(_) => false,
        Ok(s) => {
            let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z'
        }
    }
}

fn pids(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Wait until the script has written `n` pids (it starts them in the background).
fn wait_pids(file: &Path, n: usize) -> Vec<i32> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let p = pids(file);
        if p.len() >= n || Instant::now() > end {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_script_that_sleeps_forever_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let s = script(
        dir.path(),
        "hang",
        &format!(
            "sleep 1000 & echo $! >> {p}\nsleep 1000 & echo $! >> {p}\necho $$ >> {p}\n\
             trap '' TERM\nwait",
            p = pidfile.display()
        ),
    );
    let start = Instant::now();
    let out = runner().run(&job(&[&s], Duration::from_secs(1)));
    let took = start.elapsed();
    assert_eq!(out.status, Status::TimedOut, "{out:?}");
    let p = wait_pids(&pidfile, 3);
    assert_eq!(p.len(), 3, "the script should have recorded 3 pids");
    for pid in p {
        assert!(!alive(pid), "pid {pid} survived the timeout");
    }
    // 1 s timeout + 0.5 s grace (the script ignores TERM) + slack for a loaded machine.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(out.duration_ms >= 1000, "{out:?}");
}

#[test]
fn endless_output_is_capped_and_the_run_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(
        dir.path(),
        "chatty",
        "while :; do echo 0123456789abcdef; done",
    );
    let mut j = job(&[&s], Duration::from_secs(1));
    j.output_cap = 4096;
    let out = runner().run(&j);
    assert_eq!(out.status, Status::TimedOut);
    assert!(out.truncated);
    assert_eq!(out.output.len(), 4096);
    assert!(out.output.starts_with("0123456789abcdef\n"));
    assert!(out.output_bytes > 4096, "{}", out.output_bytes);
}

#[test]
fn large_output_is_drained_so_the_command_finishes() {
    // 8 MB through a capped pipe: if we stopped reading at the cap, the writer would
    // block forever on a full pipe and this would time out instead of exiting 0.
    let dir = tempfile::tempdir().unwrap();
    let s = script(
        dir.path(),
        "big",
        "head -c 8000000 /dev/zero; echo done >&2; exit 3",
    );
    let mut j = job(&[&s], Duration::from_secs(30));
    j.output_cap = 1000;
    let out = runner().run(&j);
    assert_eq!(out.status, Status::Exited { code: 3 });
    assert_eq!(out.output_bytes, 8_000_005);
    assert!(out.truncated);
    assert_eq!(out.output.len(), 1000);
}

#[test]
fn double_forked_grandchildren_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    // The inner shell starts a new session (out of the process group), records the
    // pid and exits, so the sleeper is orphaned: only the subreaper can find it.
    let s = script(
        dir.path(),
        "escape",
        &format!(
            "sh -c 'setsid sleep 1000 & echo $! > {p}' &\nwait\necho left it running",
            p = pidfile.display()
        ),
    );
    let out = runner().run(&job(&[&s], Duration::from_secs(20)));
    assert_eq!(out.status, Status::Exited { code: 0 }, "{out:?}");
    assert!(out.output.contains("left it running"));
    let p = wait_pids(&pidfile, 1);
    assert_eq!(p.len(), 1);
    // The grandchild really did leave the group: it has its own session.
    assert!(!alive(p[0]), "escaped grandchild {} still running", p[0]);
    assert!(out.duration_ms < 10_000, "{out:?}");
}

#[test]
fn the_environment_is_exactly_path_and_what_we_pass() {
    let nasty = "; rm -rf / $(touch /tmp/anomalyd-pwned) `id` \"'\n";
    let mut j = job(&["/usr/bin/env", "-0"], Duration::from_secs(10));
    j.env = vec![
        ("ANOMALYD_RESOURCE".into(), nasty.into()),
        ("ANOMALYD_LABEL".into(), "storage".into()),
    ];
    let out = runner().run(&j);
    assert_eq!(out.status, Status::Exited { code: 0 });
    let mut vars: Vec<&str> = out.output.split('\0').filter(|s| !s.is_empty()).collect();
    vars.sort();
    let want_resource = format!("ANOMALYD_RESOURCE={nasty}");
    let want_path = format!("PATH={SAFE_PATH}");
    assert_eq!(
        vars,
        [
            "ANOMALYD_LABEL=storage",
            want_resource.as_str(),
            want_path.as_str()
        ]
    );
    assert!(!Path::new("/tmp/anomalyd-pwned").exists());
}

#[test]
fn exit_codes_signals_and_missing_programs() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "fail", "echo oops >&2; exit 7");
    let out = runner().run(&job(&[&s], Duration::from_secs(10)));
    assert_eq!(out.status, Status::Exited { code: 7 });
    assert_eq!(out.output, "oops\n");
    let s = script(dir.path(), "die", "kill -SEGV $$");
    let out = runner().run(&job(&[&s], Duration::from_secs(10)));
    assert_eq!(out.status, Status::Signaled { signal: 11 });
    let out = runner().run(&job(&["/nonexistent/fix"], Duration::from_secs(10)));
    assert_eq!(out.status, Status::SpawnFailed);
    assert!(out.output.contains("/nonexistent/fix"), "{}", out.output);
}

#[test]
fn run_as_switches_user_and_drops_groups() {
    if !crate::common::needs_root("switching users needs root") {
        return;
    }
    let nobody = anomalyd::remediate::resolve_user("nobody").unwrap();
    let mut j = job(&["/usr/bin/id"], Duration::from_secs(10));
    j.run_as = Some(nobody.clone());
    let out = runner().run(&j);
    assert_eq!(out.status, Status::Exited { code: 0 }, "{out:?}");
    assert!(
        out.output
            .starts_with(&format!("uid={}(nobody) gid={}", nobody.uid, nobody.gid)),
        "{}",
        out.output
    );
    assert!(!out.output.contains("(root)"), "{}", out.output);
}
