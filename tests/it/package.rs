//! The Debian package, installed for real with `dpkg -i` (root; systemd need not be
//! PID 1): its files, modes and owners, the maintainer scripts (enable without
//! starting, daemon-reload, stop on remove, state deleted on purge only), the installed
//! configuration through `check-config` (remediation trust checks included), the
//! installed units through `systemd-analyze verify`, and nothing left behind after
//! `dpkg -r` and `dpkg -P`.
//!
//! `tests/run.sh` builds the package first (`cargo deb --profile ci`): cargo holds
//! the build lock while tests run, so a test cannot build it itself.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{in_ci, needs_root, skip};

/// The newest `anomalyd_*.deb` cargo-deb wrote.
fn package() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("anomalyd_") && n.ends_with(".deb"))
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn installed() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", "anomalyd"])
        .1
        .contains("install ok installed")
}

/// Every path under the places a package could leave something (dpkg's own
/// database and logs aside), symlinks not followed.
fn snapshot() -> BTreeSet<PathBuf> {
    fn walk(p: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(meta) = p.symlink_metadata() else {
            return;
        };
        out.insert(p.to_path_buf());
        if meta.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let path = e.path();
                if path == Path::new("/var/lib/dpkg") || path == Path::new("/var/lib/apt") {
                    continue;
                }
                walk(&path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for root in [
        "/etc",
        "/var/lib",
        "/usr/bin",
        "/usr/lib/anomalyd",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
        "/usr/share/anomalyd",
        "/usr/share/doc/anomalyd",
    ] {
        walk(Path::new(root), &mut out);
    }
    out
}

/// `path` is a regular file owned by root with this mode.
fn root_file(path: &str, mode: u32) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(m.is_file(), "{path} is not a regular file");
    assert_eq!((m.uid(), m.gid()), (0, 0), "{path} owner");
    assert_eq!(
        m.mode() & 0o7777,
        mode,
        "{path} mode {:o}",
        m.mode() & 0o7777
    );
}

/// Where the package put the units (`dpkg -L`: /lib or /usr/lib, as cargo-deb chose).
fn unit_dir() -> String {
    let (_, list) = run("dpkg", &["-L", "anomalyd"]);
    let unit = list
        .lines()
        .find(|l| l.ends_with("/anomalyd.service"))
        .unwrap_or_else(|| panic!("no anomalyd.service in the package:\n{list}"));
    unit.trim_end_matches("/anomalyd.service").to_string()
}

#[test]
fn deb_installs_checks_and_removes_cleanly() {
    if !needs_root("dpkg -i needs root") {
        return;
    }
    let Some(deb) = package() else {
        assert!(
            !in_ci(),
            "no target/debian/anomalyd_*.deb: tests/run.sh builds it with cargo deb --profile ci"
        );
        skip("no target/debian/anomalyd_*.deb (build it: cargo deb --profile ci)");
        return;
    };
    if installed() {
        // Never touch a real installation on someone's machine.
        skip("anomalyd is installed on this machine; this test would remove it");
        return;
    }
    let before = snapshot();

    let (ok, out) = run("dpkg", &["-i", deb.to_str().unwrap()]);
    assert!(ok, "dpkg -i:\n{out}");

    // Files, modes, owners.
    root_file("/usr/bin/anomalyd", 0o755);
    root_file("/etc/anomalyd/anomalyd.yaml", 0o644);
    root_file("/usr/lib/anomalyd/remediation/clean-old-logs", 0o755);
    root_file("/usr/lib/anomalyd/remediation/restart-service", 0o755);
    root_file("/usr/share/doc/anomalyd/README.md", 0o644);
    root_file("/usr/share/anomalyd/prometheus/anomalyd.rules.yml", 0o644);
    root_file("/usr/share/anomalyd/grafana/anomalyd-fleet.json", 0o644);
    let units = unit_dir();
    for u in [
        "anomalyd.service",
        "anomalyd-remediate.service",
        "anomalyd-remediate.path",
    ] {
        root_file(&format!("{units}/{u}"), 0o644);
    }
    let dir = std::fs::metadata("/usr/lib/anomalyd/remediation").unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o022), (0, 0), "script directory");
    let (_, conffiles) = run("dpkg-query", &["-W", "-f=${Conffiles}", "anomalyd"]);
    assert!(
        conffiles.contains("/etc/anomalyd/anomalyd.yaml"),
        "{conffiles}"
    );

    // Maintainer scripts: enabled, not started; reloads systemd; stops on remove.
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants");
    assert!(
        wants.join("anomalyd.service").is_symlink(),
        "anomalyd.service not enabled"
    );
    assert!(
        !wants.join("anomalyd-remediate.path").exists(),
        "the root runner is opt-in"
    );
    let script =
        |s: &str| std::fs::read_to_string(format!("/var/lib/dpkg/info/anomalyd.{s}")).unwrap();
    let postinst = script("postinst");
    assert!(
        postinst.contains("deb-systemd-helper enable anomalyd.service"),
        "{postinst}"
    );
    assert!(
        postinst.contains("systemctl --system daemon-reload"),
        "{postinst}"
    );
    assert!(
        !postinst.contains("deb-systemd-invoke start"),
        "starts on install:\n{postinst}"
    );
    let prerm = script("prerm");
    assert!(
        prerm.contains("deb-systemd-invoke stop") && prerm.contains("anomalyd.service"),
        "{prerm}"
    );
    assert!(script("postrm").contains("rm -rf /var/lib/anomalyd "));

    // The installed configuration passes check-config, remediation trust included:
    // a rule running an installed script is accepted as it is.
    let (ok, out) = run(
        "/usr/bin/anomalyd",
        &["check-config", "/etc/anomalyd/anomalyd.yaml"],
    );
    assert!(ok, "check-config:\n{out}");
    let tmp = tempfile::tempdir().unwrap();
    let rule = tmp.path().join("rule.yaml");
    std::fs::write(
        &rule,
        "remediation:\n  rules:\n  - name: logs\n    match: {label: storage}\n    command: [/usr/lib/anomalyd/remediation/clean-old-logs, --dir, /var/log/app]\n",
    )
    .unwrap();
    let (ok, out) = run(
        "/usr/bin/anomalyd",
        &["check-config", rule.to_str().unwrap()],
    );
    assert!(ok, "trust checks on the installed scripts:\n{out}");

    // The installed units pass systemd-analyze verify.
    let paths: Vec<String> = [
        "anomalyd.service",
        "anomalyd-remediate.service",
        "anomalyd-remediate.path",
    ]
    .iter()
    .map(|u| format!("{units}/{u}"))
    .collect();
    let args: Vec<&str> = std::iter::once("verify")
        .chain(paths.iter().map(String::as_str))
        .collect();
    let (ok, out) = run("systemd-analyze", &args);
    assert!(
        ok && !out.contains("anomalyd"),
        "systemd-analyze verify:\n{out}"
    );

    // State the daemon would have written, and remove: the configuration and state
    // stay (a reinstall carries on), the rest goes.
    std::fs::create_dir_all("/var/lib/private/anomalyd").unwrap();
    std::fs::write("/var/lib/private/anomalyd/history.db", b"x").unwrap();
    std::os::unix::fs::symlink("private/anomalyd", "/var/lib/anomalyd").unwrap();
    let (ok, out) = run("dpkg", &["-r", "anomalyd"]);
    assert!(ok, "dpkg -r:\n{out}");
    for gone in [
        "/usr/bin/anomalyd",
        "/usr/lib/anomalyd",
        "/usr/share/anomalyd",
        "/usr/share/doc/anomalyd",
        &format!("{units}/anomalyd.service"),
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after dpkg -r");
    }
    assert!(
        Path::new("/etc/anomalyd/anomalyd.yaml").is_file(),
        "conffile kept on remove"
    );
    assert!(
        Path::new("/var/lib/anomalyd/history.db").is_file(),
        "state kept on remove"
    );

    // Purge: nothing at all is left (but systemd's /var/lib/private, if this test
    // made it).
    let (ok, out) = run("dpkg", &["-P", "anomalyd"]);
    assert!(ok, "dpkg -P:\n{out}");
    if !before.contains(Path::new("/var/lib/private")) {
        let _ = std::fs::remove_dir("/var/lib/private");
    }
    let after = snapshot();
    let left: Vec<&PathBuf> = after.difference(&before).collect();
    assert!(left.is_empty(), "left behind after dpkg -P: {left:#?}");
    assert!(!installed());
}
