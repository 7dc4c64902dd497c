//! The test command itself (`tests/run.sh`) on a host that has none of the packages
//! it needs, with every outside command stubbed: it must install them with apt-get,
//! numpy included (Debian 12's Python refuses `pip install` into the system), and
//! never call pip.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn stub(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn missing_numpy_is_installed_with_apt_not_pip() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("calls.log");
    let record = |name: &str| format!("echo \"{name} $*\" >> {}", log.display());
    // Root, no numpy, apt-get and cargo that only say they were called; `rm` too, so
    // the stubbed run cannot remove the real suite's list of skipped tests.
    stub(&bin, "id", "echo 0");
    stub(&bin, "python3", &format!("{}\nexit 1", record("python3")));
    stub(&bin, "apt-get", &record("apt-get"));
    stub(&bin, "cargo", &record("cargo"));
    stub(&bin, "rm", &record("rm"));
    for tool in ["dirname", "cat", "wc"] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap();
        std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/run.sh");
    let out = Command::new("/bin/bash")
        .arg(&script)
        .env_clear()
        .env("PATH", &bin)
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\ncalls:\n{calls}",
        String::from_utf8_lossy(&out.stderr)
    );
    let install = calls
        .lines()
        .find(|l| l.starts_with("apt-get") && l.contains(" install "))
        .unwrap_or_else(|| panic!("no apt-get install:\n{calls}"));
    assert!(install.contains("python3-numpy"), "{install}");
    assert!(!calls.contains("pip"), "pip was called:\n{calls}");
    assert!(
        calls.contains("cargo test"),
        "the tests did not run:\n{calls}"
    );
}
