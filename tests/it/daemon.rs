//! End to end: the real binary, scraped over real TCP, pinging 127.0.0.1, told about
//! through a real sd_notify socket, reloaded and stopped with real signals.
#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::common;
use crate::common::{metric, Daemon};

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn runs_scrapes_pings_reloads_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(SECS(10))).unwrap();
    let cfg = dir.path().join("anomalyd.yaml");
    std::fs::write(
        &cfg,
        "interval: 200ms\ncollectors:\n  ping:\n    packets: 3\n    packet_interval: 20ms\n    timeout: 500ms\n    round_interval: 1s\n",
    )
    .unwrap();
    let mut d = Daemon::start(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            "state",
            "--ping-target",
            "127.0.0.1",
        ],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    assert_eq!(d.scheme, "http");
    assert!(d.addr.ip().is_loopback());

    // READY=1 comes once the listener is bound and the first sample taken, then a
    // WATCHDOG=1 from every tick.
    let mut buf = [0u8; 512];
    let mut seen = Vec::new();
    let has = |seen: &[String], p: &str| seen.iter().any(|m| m.starts_with(p));
    while !(has(&seen, "WATCHDOG=1") && has(&seen, "READY=1") && has(&seen, "STATUS=")) {
        let n = notify.recv(&mut buf).expect("sd_notify message");
        seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    // The status line says where the model is and when that ends (issue #17).
    let status = seen.iter().find(|m| m.starts_with("STATUS=")).unwrap();
    assert!(status.contains("warming up until "), "{status}");
    assert!(status.contains(" UTC"), "{status}");
    let ready_at = seen.iter().position(|m| m == "READY=1").unwrap();
    assert!(
        seen[..ready_at].iter().any(|m| m == "WATCHDOG=1"),
        "READY before the first sample: {seen:?}"
    );

    let (status, health) = d.get("/healthz");
    assert_eq!((status, health.as_str()), (200, "ok\n"));
    // The longest gap between samples (benches/load.py reads it): there from the
    // first sample, a sampling interval or so once there are two.
    d.wait_for("/metrics", SECS(15), |b| {
        metric(b, "anomalyd_sampling_longest_gap_seconds").is_some_and(|g| g > 0.0)
    });

    let body = d.wait_for("/metrics", SECS(15), |b| {
        b.contains("anomalyd_ping_rtt_median_seconds")
    });
    for name in [
        "anomalyd_cpu_utilization_ratio",
        "anomalyd_memory_available_bytes",
        "anomalyd_load_average",
        "anomalyd_collector_success",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics");
    }
    assert_eq!(
        metric(&body, "anomalyd_ping_loss_ratio"),
        Some(0.0),
        "loopback ping lost packets"
    );
    let rtt = metric(&body, "anomalyd_ping_rtt_median_seconds").unwrap();
    assert!(rtt > 0.0 && rtt < 0.1, "loopback rtt {rtt}");
    for c in ["cpu", "memory", "disk", "network", "ping"] {
        assert_eq!(
            metric(
                &body,
                &format!("anomalyd_collector_success{{collector=\"{c}\"}}")
            ),
            Some(1.0),
            "collector {c}"
        );
    }
    assert!(dir.path().join("state").is_dir(), "state dir not created");

    // Reload with the cpu collector off: its metrics disappear.
    std::fs::write(
        &cfg,
        "interval: 200ms\ncollectors:\n  cpu: {enabled: false}\n",
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log("configuration reloaded", SECS(10));
    d.wait_for("/metrics", SECS(10), |b| {
        !b.contains("anomalyd_cpu_utilization_ratio")
    });

    // A broken config on reload is reported and the running one kept.
    std::fs::write(&cfg, "interval: [oops\n").unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log("reload failed, keeping the running configuration", SECS(10));
    std::thread::sleep(Duration::from_millis(600));
    let (status, body) = d.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains("anomalyd_memory_available_bytes")
            && !body.contains("anomalyd_cpu_utilization_ratio")
    );

    let (exit, took) = d.stop();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(took < SECS(2), "SIGTERM took {took:?}");
}

#[test]
fn runs_without_config_in_a_local_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--interval", "100ms"],
        &[],
    );
    let line = d.wait_log("starting with built-in defaults", SECS(5));
    assert!(
        line.contains("anomalyd-state"),
        "should say where its state is: {line}"
    );
    assert!(dir.path().join("anomalyd-state").is_dir());
    d.wait_for("/metrics", SECS(10), |b| {
        b.contains("anomalyd_memory_available_bytes")
    });
    let (status, _) = d.get("/nope");
    assert_eq!(status, 404);
    assert!(
        !d.lines.iter().any(|l| l.contains("DEBUG")),
        "debug lines at the default level"
    );
    d.signal(libc::SIGINT);
    let (exit, took) = d.stop();
    assert!(exit.success() && took < SECS(2));
}

#[test]
fn bad_config_exits_2_listing_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "interval: fast\ncollectors: {ping: {packets: 0}}\nlisten: nowhere\n",
    )
    .unwrap();
    for args in [
        vec!["check-config", cfg.to_str().unwrap()],
        vec!["run", "--config", cfg.to_str().unwrap()],
    ] {
        let out = std::process::Command::new(common::bin())
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for frag in [
            "3 configuration errors",
            "interval: invalid duration",
            "collectors.ping.packets: 0 is out of range",
            "listen: invalid",
        ] {
            assert!(err.contains(frag), "{args:?}: missing {frag:?} in {err}");
        }
    }
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "interval: 2s\n").unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn collect_once_prints_a_table_and_json() {
    // A state directory without history: no trend can be known yet.
    let dir = tempfile::tempdir().unwrap();
    let text = common::stdout_of(&[
        "collect",
        "--once",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(text.starts_with("METRIC"), "{text}");
    assert!(
        text.contains("memory_available_bytes") && text.contains("collector cpu"),
        "{text}"
    );
    let value_of = |metric: &str| {
        text.lines()
            .find(|l| l.starts_with(metric))
            .and_then(|l| l.rsplit("  ").next())
            .unwrap_or_else(|| panic!("no {metric}: {text}"))
            .trim()
            .to_string()
    };
    assert!(
        value_of("processes_running").parse::<u64>().is_ok(),
        "{text}"
    );
    assert_eq!(
        value_of("memory_seconds_until_exhaustion"),
        "no history yet"
    );
    assert!(!text.contains("never"), "{text}");
    // The model's phase: warming up, ready an hour (the default warm-up) from now.
    assert!(
        text.contains("model_state{state}\n  warming_up") && text.contains("  warming_up  "),
        "{text}"
    );
    assert_eq!(value_of("model_ready_seconds"), "1 h 0 min");
    // ~100 columns: only a label value longer than the table itself overflows it.
    for l in text.lines() {
        let (left, value) = l.trim_end().rsplit_once("  ").unwrap_or((l, ""));
        assert!(
            l.chars().count() <= 100 || left.trim_end().chars().count() + value.len() + 2 > 100,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    let out = std::process::Command::new(common::bin())
        .args(["collect", "--once", "--json", "--ping-target", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let points = v["points"].as_array().unwrap();
    assert!(
        points
            .iter()
            .any(|p| p["name"] == "ping_rtt_median_seconds"),
        "no ping in --json output"
    );
    assert!(points.iter().any(|p| p["name"] == "cpu_utilization_ratio"));
}

fn openssl(args: &[&str], cwd: &std::path::Path) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn curl(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
    (code.to_string(), body.to_string())
}

#[test]
fn tls_and_basic_auth_from_web_config() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
        p,
    );
    let hash = bcrypt::hash("scrape-pass", 4).unwrap();
    std::fs::write(
        p.join("web.yml"),
        format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prometheus: '{hash}'\n"),
    )
    .unwrap();
    std::fs::write(
        p.join("a.yaml"),
        "web_config_file: web.yml\ninterval: 200ms\n",
    )
    .unwrap();
    // web_config_file is relative to the working directory here.
    let d = Daemon::start(
        p,
        &[
            "--config",
            "a.yaml",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            "s",
        ],
        &[],
    );
    assert_eq!(d.scheme, "https");
    let url = format!("https://127.0.0.1:{}/metrics", d.addr.port());
    let ca = p.join("cert.pem");
    let (code, _) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    assert_eq!(code, "401", "no credentials must be refused");
    let (code, _) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "-u",
        "prometheus:wrong",
        &url,
    ]);
    assert_eq!(code, "401");
    let (code, body) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "-u",
        "prometheus:scrape-pass",
        &url,
    ]);
    assert_eq!(code, "200");
    assert!(body.contains("anomalyd_build_info"));
    // Plain HTTP to a TLS port gets nothing useful.
    let (code, _) = curl(&[&format!("http://127.0.0.1:{}/metrics", d.addr.port())]);
    assert_ne!(code, "200");
}

/// The signals `pid` catches (`SigCgt` in `/proc/PID/status`), as a bit set.
fn caught_signals(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .unwrap();
    u64::from_str_radix(mask.trim(), 16).unwrap()
}

#[test]
fn a_stop_sent_as_the_daemon_starts_is_acted_on() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    // A "Prometheus" that takes the connection and never answers holds the daemon in
    // its start-up (reading a first model, `model.bootstrap`) for its 2 s timeout.
    let prometheus = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "model:\n  bootstrap:\n    prometheus: http://{}\n    timeout: 2s\n",
        prometheus.local_addr().unwrap()
    );
    std::fs::write(dir.path().join("a.yaml"), config).unwrap();
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(["run", "--config", "a.yaml", "--listen", "127.0.0.1:0"])
        .args(["--interval", "100ms", "--state-dir", "s"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // Handed down ignored, as some wrappers do: a SIGTERM that comes before the daemon
    // catches it is lost, and `systemctl stop` waits for its timeout and a SIGKILL.
    // SAFETY: signal(2) is async-signal-safe, and it is all the child runs before exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    // Killed on drop: a failed assertion must not leave a daemon running (with its
    // SIGTERM ignored, nothing else would stop it).
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut daemon = Killed(cmd.spawn().unwrap());
    let child = &mut daemon.0;
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    let waiting = lines.by_ref().find(|l| l.contains("no model yet"));
    assert!(waiting.is_some(), "the daemon never said it reads a model");
    // Still starting (waiting for Prometheus), it already catches all three.
    let caught = caught_signals(child.id());
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        assert!(
            caught & (1 << (sig - 1)) != 0,
            "signal {sig} not caught: {caught:x}"
        );
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let rest = std::thread::spawn(move || lines.collect::<Vec<String>>());
    let end = std::time::Instant::now() + SECS(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if std::time::Instant::now() > end {
            panic!(
                "SIGTERM sent during start-up was not acted on: {:?}",
                rest.join()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let rest = rest.join().unwrap();
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM received")),
        "{rest:?}"
    );
    drop(prometheus);
}

/// The daemon's "sampling loop starting" log line (a DEBUG line) under `config`
/// and `env`.
fn sampling_loop_line(config: &str, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), config).unwrap();
    let mut d = Daemon::start(
        dir.path(),
        &[
            "--config",
            "a.yaml",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            "s",
        ],
        env,
    );
    let line = d.wait_log("sampling loop starting", SECS(5));
    // Stopped at once: the stop signals are caught before the daemon logs anything
    // (`a_stop_sent_as_the_daemon_starts_is_acted_on`).
    d.stop();
    line
}

#[test]
fn log_level_from_the_config_is_applied() {
    let line = sampling_loop_line("log_level: debug\ninterval: 100ms\n", &[]);
    assert!(line.contains("DEBUG"), "{line}");
}

#[test]
fn anomalyd_log_directives_win_over_the_config_level() {
    let line = sampling_loop_line(
        "log_level: error\ninterval: 100ms\n",
        &[("ANOMALYD_LOG", "error,anomalyd::daemon=debug")],
    );
    assert!(line.contains("DEBUG"), "{line}");
}

/// glibc's extra malloc arenas are heaps of their own, mapped at a 64 MiB boundary
/// with the unused rest of the 64 MiB reserved (`---p`) right after.
fn malloc_arenas(pid: u32) -> usize {
    const HEAP_MAX: u64 = 64 << 20;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let spans: Vec<(u64, u64, String, bool)> = maps
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (a, b) = f[0].split_once('-')?;
            let a = u64::from_str_radix(a, 16).ok()?;
            let b = u64::from_str_radix(b, 16).ok()?;
            Some((a, b, f[1].to_string(), f.len() < 6))
        })
        .collect();
    spans
        .windows(2)
        .filter(|w| {
            let ((a, b, p, anon), (c, d, q, anon2)) = (&w[0], &w[1]);
            *anon
                && *anon2
                && a % HEAP_MAX == 0
                && p == "rw-p"
                && q == "---p"
                && b == c
                && d - a == HEAP_MAX
        })
        .count()
}

/// The malloc arenas of a daemon run with `env`, once its threads have allocated:
/// the HTTP server, the history writer, the collectors.
fn arenas_of_a_daemon(dir: &std::path::Path, env: &[(&str, &str)]) -> usize {
    let d = Daemon::start(
        dir,
        &[
            "--interval",
            "100ms",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            "s",
        ],
        env,
    );
    for _ in 0..20 {
        d.get("/metrics");
    }
    d.wait_for("/metrics", SECS(10), |b| {
        metric(b, "anomalyd_sampling_longest_gap_seconds").is_some_and(|g| g > 0.0)
    });
    let arenas = malloc_arenas(d.child.id());
    d.stop();
    arenas
}

#[test]
fn the_daemon_allocates_from_one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return common::skip("MALLOC_ARENA_MAX is set for the test run: the daemon keeps it");
    }
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(arenas_of_a_daemon(dir.path(), &[]), 0);
    // The operator's own setting is left alone (and the count above can see arenas).
    assert!(arenas_of_a_daemon(dir.path(), &[("MALLOC_ARENA_MAX", "8")]) > 0);
}
