//! The /metrics text of a fixture host, compared with a checked-in golden file
//! (node_exporter's end-to-end idea). Two fixture snapshots one second apart give the
//! rates. After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test it metrics_golden` and review the diff.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use anomalyd::collect::disk::{Disk, FsStat};
use anomalyd::collect::{self, cpu::Cpu, memory::Memory, network::Network, Collector, Paths};
use anomalyd::export::metrics::Exporter;
use anomalyd::settings::Config;

fn fixture_statfs(mount: &Path) -> std::io::Result<FsStat> {
    // Sizes derived from the mount point so each filesystem differs, deterministically.
    let n = mount.to_string_lossy().len() as u64;
    Ok(FsStat {
        size_bytes: 100 << 30,
        free_bytes: (40 + n) << 30,
        avail_bytes: (35 + n) << 30,
        inodes: 6_553_600,
        inodes_free: 6_000_000 - n * 1000,
    })
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn fixture_host_metrics_match_golden_file() {
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("proc");
    let point_at = |host: &str| {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(root().join("tests/fixtures").join(host).join("proc"), &link)
            .unwrap();
    };
    point_at("host");
    let paths = Paths {
        procfs: link.clone(),
        sysfs: tmp.path().join("sys"),
        rootfs: tmp.path().to_path_buf(),
    };
    let c = Config::default().collectors;
    let mut collectors: Vec<Box<dyn Collector>> = vec![
        Box::new(Cpu::new(paths.clone())),
        Box::new(Memory::new(paths.clone())),
        Box::new(Disk::with_statfs(
            paths.clone(),
            c.disk.clone(),
            fixture_statfs,
        )),
        Box::new(Network::new(paths.clone(), c.network.clone())),
    ];
    collect::run_all(&mut collectors, 1_700_000_000_000);
    point_at("host2");
    let mut sample = collect::run_all(&mut collectors, 1_700_000_001_000);
    for r in &mut sample.runs {
        r.duration_seconds = 0.0; // the one value that is not deterministic
    }
    assert!(sample.runs.iter().all(|r| r.success), "{:?}", sample.runs);
    let mut exporter = Exporter::new(false).unwrap();
    assert!(exporter.publish(&sample).is_empty());
    let got = String::from_utf8(exporter.rendered.get().to_vec()).unwrap();
    let golden = root().join("tests/golden/fixture_host.metrics");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want =
        std::fs::read_to_string(&golden).expect("golden file (create it with UPDATE_GOLDEN=1)");
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "/metrics differs from {} ({} vs {} lines):\n{}",
            golden.display(),
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}
