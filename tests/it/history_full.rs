//! The state directory on a tmpfs that fills up: the daemon goes on sampling and
//! serving /metrics, one log line says that history is not being written, and once
//! there is room again the samples that waited in memory are written and writing goes
//! on: the stored history has no gap.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::Duration;

use anomalyd::store::{History, HistoryConfig, Tier, HISTORY_FILE};

use crate::common;
use crate::common::{Daemon, Tmpfs};

#[test]
fn a_full_disk_stops_history_not_sampling_and_writing_resumes() {
    if !common::needs_root("mounting tmpfs needs root") {
        return;
    }
    let fs = Tmpfs::mount("8m,mode=0755");
    let state = fs.path().join("state");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("anomalyd.yaml");
    std::fs::write(
        &cfg,
        format!(
            "interval: 200ms\nstate_dir: {}\nmodel:\n  enabled: false\ncollectors:\n  network:\n    enabled: false\n  ping:\n    enabled: false\nhistory:\n  flush_interval: 1s\n",
            state.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[],
    );
    // A few blocks written while there is room.
    std::thread::sleep(Duration::from_secs(3));

    // Fill the filesystem to the last byte.
    let filler = fs.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let mut small = [0x5a_u8; 512];
    while f.write(&small[..]).is_ok_and(|n| n > 0) {
        small[0] ^= 1;
    }
    drop(f);

    let line = d.wait_log("history is not being written", Duration::from_secs(15));
    assert!(line.contains("sampling and /metrics go on"), "{line}");
    // Full for a few flush intervals (fewer than the 10 the samples wait in memory).
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(1));
        let (status, body) = d.get("/metrics");
        assert_eq!(status, 200);
        assert!(body.contains("anomalyd_build_info"), "{body}");
    }

    std::fs::remove_file(&filler).unwrap();
    d.wait_log("history is being written again", Duration::from_secs(15));
    let said = d
        .lines
        .iter()
        .filter(|l| l.contains("history is not being written"))
        .count();
    assert_eq!(said, 1, "said once, not at every retry");
    std::thread::sleep(Duration::from_secs(2));
    let (status, _) = d.stop();
    assert!(status.success(), "{status}");

    // Every sample since the start, the ones taken while the disk was full included:
    // no two stored samples further apart than a few sampling intervals.
    let h = History::open(state.join(HISTORY_FILE), &HistoryConfig::default()).unwrap();
    let rows = h.range(i64::MIN, i64::MAX, Tier::Raw).unwrap();
    let ts: Vec<i64> = rows.iter().map(|r| r.timestamp_ms.unwrap()).collect();
    assert!(ts.len() > 20, "{} rows", ts.len());
    let widest = ts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        widest < 1_000,
        "a {widest} ms gap in the stored samples ({} rows)",
        ts.len()
    );
}
