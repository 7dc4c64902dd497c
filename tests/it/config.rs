//! Config fixtures: every valid file parses; every invalid file fails with each of
//! the fragments its `# expect:` lines name, so error messages cannot silently rot.

use std::path::Path;

use anomalyd::settings::{self as config, Config};

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {dir}");
    v
}

#[test]
fn valid_configs_parse() {
    for f in files("tests/configs/valid") {
        config::load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn invalid_configs_fail_with_their_message() {
    for f in files("tests/configs/invalid") {
        let text = std::fs::read_to_string(&f).expect("read");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no '# expect:' line",
            f.display()
        );
        let err = match config::load(&f) {
            Ok(_) => panic!("{} should not parse", f.display()),
            Err(e) => e.to_string(),
        };
        for frag in expected {
            assert!(
                err.contains(frag),
                "{}: error\n{err}\ndoes not contain {frag:?}",
                f.display()
            );
        }
        assert!(
            err.contains(&f.display().to_string()),
            "error should name the file: {err}"
        );
    }
}

fn shipped() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/anomalyd.yaml")
}

/// Every key of the shipped file is the built-in default, but one: `state_dir` is the
/// systemd unit's state directory there, and relative (for `cargo run`) built in.
#[test]
fn documented_example_equals_the_defaults() {
    let mut documented = config::load(&shipped()).expect("example parses");
    let defaults = Config::default();
    assert_eq!(documented.state_dir, Path::new("/var/lib/anomalyd"));
    assert_eq!(defaults.state_dir, Path::new("anomalyd-state"));
    documented.state_dir = defaults.state_dir.clone();
    assert_eq!(
        documented, defaults,
        "config/anomalyd.yaml drifted from Config::default()"
    );
}

/// On a packaged host the CLI with the shipped file reads the daemon's state
/// directory; without a file it reads ./anomalyd-state.
#[test]
fn the_cli_finds_the_state_the_shipped_config_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let list = |config: Option<&Path>| {
        let mut cmd = std::process::Command::new(crate::common::bin());
        cmd.args(["tickets", "list"]).current_dir(dir.path());
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.output().expect("run")
    };
    let db = Path::new("/var/lib/anomalyd/tickets.db");
    let out = list(Some(&shipped()));
    if db.exists() {
        // A host where the daemon runs: the list is its tickets.
        assert!(out.status.success(), "{out:?}");
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no ticket store at /var/lib/anomalyd/tickets.db"),
            "{err}"
        );
    }
    let out = list(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no ticket store at anomalyd-state/tickets.db"),
        "{err}"
    );
}

#[test]
fn full_example_sets_every_field() {
    let c =
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/valid/full.yaml"))
            .expect("parses");
    assert_eq!(c.interval, std::time::Duration::from_millis(500));
    assert_eq!(c.listen.to_string(), "[::1]:9999");
    assert!(!c.collectors.cpu.enabled);
    assert_eq!(c.collectors.ping.targets, ["127.0.0.1", "::1", "localhost"]);
    assert!(c.collectors.disk.mount_points.keeps("/var"));
    assert!(!c.collectors.disk.mount_points.keeps("/srv"));
    assert!(c.collectors.disk.mount_points.exclude.is_none());
    assert!(c.collectors.network.interfaces.keeps("eth0"));
    assert!(
        !c.collectors.network.interfaces.keeps("lo"),
        "include pattern must still apply"
    );
    assert_eq!(c.history.max_size_bytes, 256 << 20);
    assert_eq!(c.history.flush_interval, std::time::Duration::from_secs(10));
}

#[test]
fn default_patterns_compile_and_filter() {
    let c = Config::default();
    let d = &c.collectors.disk;
    assert!(d.mount_points.keeps("/"));
    assert!(!d.mount_points.keeps("/proc"));
    assert!(!d.mount_points.keeps("/sys/fs/cgroup"));
    assert!(
        d.fs_types.keeps("tmpfs"),
        "tmpfs is a real, fillable filesystem"
    );
    assert!(!d.fs_types.keeps("proc"));
    assert!(d.devices.keeps("sda") && d.devices.keeps("nvme0n1"));
    assert!(!d.devices.keeps("sda1") && !d.devices.keeps("nvme0n1p2") && !d.devices.keeps("dm-0"));
    assert!(!c.collectors.network.interfaces.keeps("lo"));
    assert!(
        c.listen.ip().is_loopback(),
        "the default listen address must be loopback"
    );
}
