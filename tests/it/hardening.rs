//! Issue #18's reproductions, as an attacker or bad luck would try them on the real
//! binary: oversized values, hostile files, hostile clients. Each test failed before
//! the fix it names.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use crate::common::{anomalyd, Daemon};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `check-config`, `run --interval` and `silence add --duration` with a duration past
/// any range: exit 2 with the key or flag named, never a panic (exit 101).
#[test]
fn oversized_durations_exit_2_with_the_key_or_flag_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.yaml", "interval: 99999999999999999999999s\n");
    let out = anomalyd(&["check-config", &cfg]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("interval: invalid duration"),
        "{}",
        stderr(&out)
    );

    let state = dir.path().join("st").display().to_string();
    let out = anomalyd(&[
        "run",
        "--state-dir",
        &state,
        "--interval",
        "99999999999999999999999s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--interval"), "{}", stderr(&out));
    let out = anomalyd(&["run", "--state-dir", &state, "--interval", "2h"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("between 10ms and 1h"),
        "{}",
        stderr(&out)
    );

    for d in ["99999999999999999999999s", "9223372036854775s"] {
        let out = anomalyd(&[
            "silence",
            "add",
            "--state-dir",
            &state,
            "--label",
            "cpu",
            "--duration",
            d,
            "--comment",
            "x",
        ]);
        assert_eq!(out.status.code(), Some(2), "{d}: {}", stderr(&out));
        assert!(stderr(&out).contains("--duration"), "{}", stderr(&out));
    }
}

/// SIGHUP with an oversized duration in the file: logged, the old config kept, the
/// daemon still sampling.
#[test]
fn a_bad_file_on_sighup_is_logged_and_the_daemon_keeps_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "c.yaml",
        "interval: 100ms\nlisten: 127.0.0.1:0\n",
    );
    let mut d = Daemon::start(dir.path(), &["--config", &cfg], &[]);
    d.wait_log("first sample taken", Duration::from_secs(20));
    write(
        dir.path(),
        "c.yaml",
        "interval: 99999999999999999999999s\nlisten: 127.0.0.1:0\n",
    );
    d.signal(libc::SIGHUP);
    d.wait_log("reload failed", Duration::from_secs(10));
    // 100,000 nested brackets took 44 s to parse, on the tick's thread.
    let deep = format!("interval: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    write(dir.path(), "c.yaml", &deep);
    d.signal(libc::SIGHUP);
    d.wait_log("nested too deeply", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon died");
    assert_eq!(d.get("/healthz").0, 200);
    let (status, _) = d.stop();
    assert!(status.success());
}

/// A corrupt tickets.db is moved aside and incidents stay on; a ticket store that
/// cannot be opened at all (a directory in its place) makes /healthz degraded and
/// `component_up{component="incidents"} 0`, instead of a silent 200.
#[test]
fn a_corrupt_ticket_store_is_replaced_and_an_unusable_one_degrades_health() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("st");
    std::fs::create_dir(&state).unwrap();
    let junk: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(state.join("tickets.db"), junk).unwrap();
    let st = state.display().to_string();
    let args = [
        "--state-dir",
        &st,
        "--listen",
        "127.0.0.1:0",
        "--interval",
        "100ms",
    ];
    let mut d = Daemon::start(dir.path(), &args, &[]);
    d.wait_log("started a new ticket store", Duration::from_secs(20));
    d.wait_log("first sample taken", Duration::from_secs(20));
    assert_eq!(d.get("/healthz").0, 200);
    let body = d.wait_for("/metrics", Duration::from_secs(10), |b| {
        b.contains("anomalyd_component_up")
    });
    assert!(
        body.contains("anomalyd_component_up{component=\"incidents\"} 1"),
        "{body}"
    );
    d.stop();

    std::fs::remove_file(state.join("tickets.db")).unwrap();
    std::fs::create_dir(state.join("tickets.db")).unwrap();
    let mut d = Daemon::start(dir.path(), &args, &[]);
    d.wait_log("first sample taken", Duration::from_secs(20));
    let (status, body) = d.get("/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("degraded: incidents off"), "{body}");
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.contains("anomalyd_component_up{component=\"incidents\"} 0"),
        "{metrics}"
    );
    d.stop();
}

fn raw_request(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Unknown methods on known paths are 405 with `Allow`, not 404; `?open=maybe` is a
/// 400, not every ticket.
#[test]
fn unknown_methods_get_405_and_bad_queries_400() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("st").display().to_string();
    let mut d = Daemon::start(
        dir.path(),
        &["--state-dir", &st, "--listen", "127.0.0.1:0"],
        &[],
    );
    d.wait_log("first sample taken", Duration::from_secs(20));
    for req in [
        "FOO /metrics HTTP/1.1",
        "POST /healthz HTTP/1.1",
        "DELETE /api/v1/tickets/INC-1 HTTP/1.1",
    ] {
        let (status, text) = raw_request(
            d.addr,
            &format!("{req}\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 405, "{req}: {text}");
        assert!(
            text.contains("allow: GET, HEAD") || text.contains("Allow: GET, HEAD"),
            "{text}"
        );
    }
    assert_eq!(d.get("/nope").0, 404);
    let (status, body) = d.get("/api/v1/tickets?open=maybe");
    assert_eq!(status, 400, "{body}");
    assert_eq!(d.get("/api/v1/tickets?open=true").0, 200);
    d.stop();
}

/// Issue #18, slowloris: a connection that sends nothing, or half a header, is closed
/// after `header_timeout`; a keep-alive connection idle for less than `idle_timeout`
/// is kept (and more than that, closed); with `max_connections` held, the next client
/// waits in the backlog until a slot frees instead of costing a descriptor.
#[test]
fn slow_idle_and_excess_connections_are_bounded() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "c.yaml",
        "listen: 127.0.0.1:0\ninterval: 100ms\nhttp:\n  max_connections: 3\n  header_timeout: 1500ms\n  idle_timeout: 3s\n",
    );
    let st = dir.path().join("st").display().to_string();
    let mut d = Daemon::start(dir.path(), &["--config", &cfg, "--state-dir", &st], &[]);
    d.wait_log("first sample taken", Duration::from_secs(20));
    let closed_within = |s: &mut std::net::TcpStream, limit: Duration| {
        s.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    };
    // Half a header: closed after the header timeout, not held.
    let mut half = std::net::TcpStream::connect(d.addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(5)),
        "partial header held"
    );
    // Keep-alive: a second request after an idle pause longer than the header timeout
    // is still served on the same connection; the connection then goes after 3 s idle.
    let mut ka = std::net::TcpStream::connect(d.addr).unwrap();
    let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    ka.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    ka.write_all(get).unwrap();
    assert!(ka.read(&mut buf).unwrap() > 0);
    std::thread::sleep(Duration::from_millis(2000));
    ka.write_all(get).unwrap();
    let n = ka.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "keep-alive dropped"
    );
    assert!(
        closed_within(&mut ka, Duration::from_secs(6)),
        "idle connection held"
    );
    // Three silent connections fill the cap: a fourth client is answered only once
    // the header timeout has freed a slot.
    let holders: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(d.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    let (status, _) = d.get("/healthz");
    assert_eq!(status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "the cap did not hold: {:?}",
        t.elapsed()
    );
    drop(holders);
    d.stop();
}

/// Issue #18: 1,100 slowloris connections against a daemon with 1,024 descriptors
/// made every collector fail to open /proc. The cap keeps the descriptors for the
/// collectors, and a cap that does not fit the limit is refused at start.
#[test]
fn connections_never_take_the_collectors_descriptors() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("st").display().to_string();
    let limit = |n: u64| {
        move || {
            let l = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit between fork and exec.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
    };
    let cfg = write(
        dir.path(),
        "big.yaml",
        "listen: 127.0.0.1:0\nhttp:\n  max_connections: 2000\n",
    );
    let mut cmd = std::process::Command::new(crate::common::bin());
    cmd.args(["run", "--config", &cfg, "--state-dir", &st]);
    // SAFETY: the closure only calls setrlimit.
    unsafe { cmd.pre_exec(limit(1024)) };
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("http.max_connections: 2000 connections need 2256"),
        "{}",
        stderr(&out)
    );

    let cfg = write(
        dir.path(),
        "c.yaml",
        "listen: 127.0.0.1:0\ninterval: 100ms\nhttp:\n  header_timeout: 1s\n",
    );
    let mut cmd = std::process::Command::new(crate::common::bin());
    cmd.args(["run", "--config", &cfg, "--state-dir", &st])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: as above.
    unsafe { cmd.pre_exec(limit(1024)) };
    let mut d = Daemon::from_command(cmd);
    d.wait_log("first sample taken", Duration::from_secs(20));
    // This process needs more than 1,100 descriptors itself.
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut own);
        own.rlim_cur = own.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &own);
    }
    let mut held = Vec::new();
    for _ in 0..1100 {
        match std::net::TcpStream::connect_timeout(&d.addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    // Scrape through the churn (the header timeout frees a slot every second).
    let body = d.wait_for("/metrics", Duration::from_secs(30), |b| {
        b.contains("collector_success")
    });
    for c in ["cpu", "memory", "disk", "network"] {
        let v = crate::common::metric(
            &body,
            &format!("anomalyd_collector_success{{collector=\"{c}\"}}"),
        );
        assert_eq!(
            v,
            Some(1.0),
            "{c} failed while {} connections were open",
            held.len()
        );
    }
    let accept_lines = d
        .lines
        .iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(
        accept_lines <= 1,
        "accept failures logged {accept_lines} times"
    );
    drop(held);
    d.stop();
}

/// Issue #18: wrong passwords cost a bcrypt each, on the thread that ran the ticks.
/// Now a peer that keeps failing is refused (429) without one, and a scraper with the
/// right (cached) password is still served.
#[test]
fn wrong_passwords_are_rate_limited_and_valid_scrapes_served() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 10).unwrap();
    write(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  prom: '{hash}'\n"),
    );
    let cfg = write(
        dir.path(),
        "c.yaml",
        "listen: 127.0.0.1:0\ninterval: 100ms\nweb_config_file: web.yml\n",
    );
    let st = dir.path().join("st").display().to_string();
    let mut d = Daemon::start(dir.path(), &["--config", &cfg, "--state-dir", &st], &[]);
    d.wait_log("first sample taken", Duration::from_secs(20));
    let basic = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    let good = basic("prom:s3cret");
    assert_eq!(
        crate::common::http_get(d.addr, "/metrics", Some(&good)).0,
        200
    );
    let codes: Vec<u16> = (0..12)
        .map(|i| crate::common::http_get(d.addr, "/metrics", Some(&basic(&format!("prom:x{i}")))).0)
        .collect();
    assert!(codes[..5].iter().all(|c| *c == 401), "{codes:?}");
    assert!(codes[5..].iter().all(|c| *c == 429), "{codes:?}");
    assert_eq!(
        crate::common::http_get(d.addr, "/metrics", Some(&good)).0,
        200
    );
    d.stop();
}

/// Issue #18, messages: a web config's problems make `check-config` exit 2 with each
/// YAML path; a CSV that is not UTF-8 says so once (not "…UTF-8: …UTF-8"), exit 2; a
/// web config or secret that is a device is refused, not read until memory runs out.
#[test]
fn bad_input_exits_2_with_paths_and_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let web = write(
        dir.path(),
        "web.yml",
        "basic_auth_users:\n  prom: plaintext\ntls_server_config:\n  cipher_suites: [x]\n",
    );
    let cfg = write(dir.path(), "c.yaml", &format!("web_config_file: {web}\n"));
    let out = anomalyd(&["check-config", &cfg]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for frag in [
        "basic_auth_users.prom: not a bcrypt hash",
        "tls_server_config.cipher_suites: unknown key",
    ] {
        assert!(stderr(&out).contains(frag), "{frag}: {}", stderr(&out));
    }
    let cfg = write(dir.path(), "d.yaml", "web_config_file: /dev/zero\n");
    let out = anomalyd(&["check-config", &cfg]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );

    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, b"a,b\n1,\xff\xfe\n").unwrap();
    let model = dir.path().join("m.json").display().to_string();
    let out = anomalyd(&[
        "train",
        "--input",
        &csv.display().to_string(),
        "--out",
        &model,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("valid UTF-8").count(),
        1,
        "{}",
        stderr(&out)
    );
}
