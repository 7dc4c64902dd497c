//! The shipped example scripts (config/remediation/) are safe by default: dry run
//! unless --apply, refusals for `/`, relative paths, directories outside the
//! allow-list and unknown units; symlinks are never followed.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn script(name: &str) -> String {
    format!("{}/config/remediation/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(script(name))
        .args(args)
        .env_clear()
        .env("PATH", anomalyd::remediate::runner::SAFE_PATH)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn old_file(p: &Path) {
    std::fs::write(p, b"old").unwrap();
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(20 * 86400);
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn clean_old_logs_is_a_dry_run_by_default_and_never_follows_symlinks() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    old_file(&logs.join("a.log.1"));
    std::fs::write(logs.join("b.log.1"), b"new").unwrap();
    // An old file elsewhere, reachable only through a symlink.
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    old_file(&outside.join("victim.log.1"));
    std::os::unix::fs::symlink(&outside, logs.join("link")).unwrap();
    let l = logs.to_str().unwrap();

    let o = run(
        "clean-old-logs",
        &["--dir", l, "--max-age-days", "7", "--allow", l],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("would delete 1 files"), "{}", text(&o));
    assert!(logs.join("a.log.1").exists());

    // anomalyd's dry run wins over --apply.
    let o = run(
        "clean-old-logs",
        &["--dir", l, "--max-age-days", "7", "--allow", l, "--apply"],
        &[("ANOMALYD_DRY_RUN", "1")],
    );
    assert!(o.status.success());
    assert!(logs.join("a.log.1").exists());

    let o = run(
        "clean-old-logs",
        &["--dir", l, "--max-age-days", "7", "--allow", l, "--apply"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("deleted 1 files"), "{}", text(&o));
    assert!(!logs.join("a.log.1").exists());
    assert!(logs.join("b.log.1").exists(), "new file deleted");
    assert!(outside.join("victim.log.1").exists(), "followed a symlink");
}

#[test]
fn clean_old_logs_refuses_root_relative_and_outside_the_allow_list() {
    let d = tempfile::tempdir().unwrap();
    let l = d.path().to_str().unwrap();
    for (args, expect) in [
        (vec!["--dir", "/", "--allow", "/"], "refusing to clean /"),
        (vec!["--dir", "logs", "--allow", l], "not an absolute path"),
        (
            vec!["--dir", l],
            "outside the allowed directories (/var/log)",
        ),
        (
            vec!["--dir", l, "--allow", l, "--max-age-days", "0"],
            "at least 1",
        ),
        (
            vec!["--dir", l, "--allow", l, "--max-age-days", "x;rm"],
            "whole number",
        ),
        (vec!["--dir", l, "--bogus"], "unknown argument"),
    ] {
        let o = run("clean-old-logs", &args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(expect), "{args:?}: {}", text(&o));
    }
    // `..` cannot climb out of the allow-list: the path is resolved first.
    let sub = d.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let up = format!("{}/..", sub.display());
    let o = run(
        "clean-old-logs",
        &["--dir", &up, "--allow", sub.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("outside the allowed"), "{}", text(&o));
}

#[test]
fn restart_service_refuses_odd_names_and_units_not_allowed() {
    for (args, expect) in [
        (vec![], "no unit given"),
        (
            vec!["foo;reboot.service", "--allow", "foo;reboot.service"],
            "not a plain unit name",
        ),
        (
            vec!["sshd.socket", "--allow", "sshd.socket"],
            "not a service unit",
        ),
        (vec!["cron.service"], "not in the allow-list"),
        (
            vec!["cron.service", "--allow", "other.service"],
            "not in the allow-list",
        ),
        (
            vec![
                "no-such-unit-here.service",
                "--allow",
                "no-such-unit-here.service",
                "--apply",
            ],
            "systemd does not know no-such-unit-here.service",
        ),
    ] {
        let o = run("restart-service", &args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(expect), "{args:?}: {}", text(&o));
    }
}
