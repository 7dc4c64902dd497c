//! The daemon against the real thing: `promtool check metrics` on its /metrics, and a
//! real Prometheus server (Debian's `prometheus`, installed by tests/run.sh) scraping
//! it until `up == 1`.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, http_get, Daemon};

fn start_daemon(dir: &std::path::Path) -> Daemon {
    let d = Daemon::start(
        dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "200ms",
            "--state-dir",
            "state",
            "--ping-target",
            "127.0.0.1",
            "--ping-target",
            "::1",
        ],
        &[],
    );
    d.wait_for("/metrics", Duration::from_secs(20), |b| {
        b.contains("anomalyd_ping_rtt_seconds_bucket")
    });
    d
}

#[test]
fn promtool_finds_no_problems() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path());
    let (_, body) = d.get("/metrics");
    let report = crate::common::promtool_problems(&body);
    assert!(report.is_empty(), "promtool reported problems:\n{report}");
}

#[test]
fn real_prometheus_scrapes_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path());
    let port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: anomalyd\n    static_configs: [{{targets: ['{}']}}]\n",
            d.addr
        ),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package; tests/run.sh installs it)");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let mut ok = false;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(500));
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            continue;
        }
        let (_, body) = http_get(
            addr,
            "/api/v1/query?query=up%7Bjob%3D%22anomalyd%22%7D",
            None,
        );
        if body.contains("\"value\":[") && body.contains(",\"1\"]") {
            // And a real series made it into the TSDB.
            let (_, q) = http_get(
                addr,
                "/api/v1/query?query=anomalyd_memory_available_bytes",
                None,
            );
            if q.contains("\"value\":[") {
                ok = true;
                break;
            }
        }
        last = body;
    }
    let _ = prom.kill();
    let _ = prom.wait();
    assert!(
        ok,
        "Prometheus never saw up == 1 for anomalyd; last answer: {last}"
    );
}
