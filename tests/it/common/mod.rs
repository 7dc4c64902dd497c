//! Helpers shared by the integration tests: start the real binary, find its port,
//! speak enough HTTP/1.1 to scrape it, build incidents, skip visibly.
#![allow(dead_code, clippy::unwrap_used)]

pub mod bursts;
pub mod sinks;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anomalyd::incident::{Class, Incident, Label, Severity};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_anomalyd"))
}

/// A running `anomalyd run`, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub scheme: String,
    pub log: mpsc::Receiver<String>,
    pub lines: Vec<String>,
}

impl Daemon {
    /// Start with `args` after `run`, in `cwd`; waits for the "listening on" line.
    pub fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::from_command(cmd)
    }

    /// Start `cmd` (an `anomalyd run` whose stderr is piped); waits for the "listening
    /// on" line.
    pub fn from_command(mut cmd: Command) -> Daemon {
        let mut child = cmd.spawn().expect("spawn anomalyd");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[anomalyd] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            scheme: String::new(),
            log: rx,
            lines: Vec::new(),
        };
        let line = d.wait_log("listening on ", Duration::from_secs(20));
        let url = line.split("listening on ").nth(1).unwrap().trim();
        let (scheme, rest) = url.split_once("://").unwrap();
        d.scheme = scheme.to_string();
        d.addr = rest.trim_end_matches("/metrics").parse().unwrap();
        d
    }

    /// Wait for a log line containing `needle`, returning it.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(l) = self.lines.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(l) = self.log.recv_timeout(Duration::from_millis(100)) {
                self.lines.push(l.clone());
                if l.contains(needle) {
                    return l;
                }
            }
        }
        panic!(
            "no log line containing {needle:?} within {timeout:?}; saw:\n{}",
            self.lines.join("\n")
        );
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path, None)
    }

    /// Poll `path` until the body satisfies `pred`.
    pub fn wait_for(&self, path: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < end {
            let (status, body) = self.get(path);
            if status == 200 && pred(&body) {
                return body;
            }
            last = body;
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{path} never satisfied the condition; last body:\n{last}");
    }

    /// SIGTERM and wait; returns (exit status, time it took).
    pub fn stop(mut self) -> (std::process::ExitStatus, Duration) {
        let t = Instant::now();
        self.signal(libc::SIGTERM);
        let end = t + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s, t.elapsed());
            }
            assert!(
                Instant::now() < end,
                "daemon did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmpfs mounted on a fresh directory, unmounted on drop (also on panic).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", dir.path().display());
        Tmpfs { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn available(&self) -> f64 {
        let c = std::ffi::CString::new(self.path().to_str().unwrap()).unwrap();
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
        s.f_bavail as f64 * s.f_frsize as f64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(self.path()).status();
        if !ok.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// Plain HTTP/1.1 GET with `Connection: close`; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let (status, _, body) = split_response(&raw);
    (status, body)
}

/// A raw HTTP/1.1 response as (status, head, body); status 0 when there is none.
pub fn split_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Value of the first sample line starting with `prefix` (`name{labels}` or `name`).
pub fn metric(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        // `name` matches `name 1` and `name{...} 1`; `name{labels}` matches exactly.
        .find(|l| {
            l.strip_prefix(prefix).is_some_and(|rest| {
                rest.starts_with(' ') || (!prefix.ends_with('}') && rest.starts_with('{'))
            })
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// What `promtool check metrics` says of an exposition body: empty when it is clean
/// (and promtool exited 0), else its complaints.
pub fn promtool_problems(body: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tests/run.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && report.trim().is_empty() {
        String::new()
    } else {
        format!("exit {}: {report}", out.status)
    }
}

/// The incident the integration tests start from: a P2 storage forecast for `/var` on
/// web-1 (change what a test needs with `..`).
pub fn incident(id: &str, fp: &str, at_ms: i64) -> Incident {
    Incident {
        id: id.into(),
        fingerprint: fp.into(),
        host: "web-1".into(),
        class: Class::Forecast,
        label: Label::Storage,
        severity: Severity::P2,
        resource: Some("/var".into()),
        title: "storage: /var full in 3 h 10 min".into(),
        causes: Vec::new(),
        opened_ms: at_ms,
        updated_ms: at_ms,
        resolved_ms: None,
    }
}

/// A loopback port nobody listens on right now (for "the sink is down", or a port to
/// hand to a server the test starts).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Run `anomalyd ARGS` to completion.
pub fn anomalyd(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

/// The standard output of `anomalyd ARGS`, which must succeed (its stderr says why not).
pub fn stdout_of(args: &[&str]) -> String {
    let out = anomalyd(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The runner with our own binary as its supervisor, as the daemon builds it.
pub fn runner() -> anomalyd::remediate::runner::Runner {
    anomalyd::remediate::runner::Runner {
        supervisor: bin(),
        grace: Duration::from_millis(500),
    }
}

/// Whether CI is running us (`CI=true`): there a test may not skip, it fails.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when running as root. Otherwise the test is skipped, visibly (see [`skip`]).
pub fn needs_root(why: &str) -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(why);
    false
}

/// Say that the calling test is skipped, and why. The line is written to stderr
/// directly, past libtest's output capture (which only takes `print!`/`eprint!`), and
/// appended to `target/tmp/skipped-tests`, which `tests/run.sh` counts. In CI
/// (`CI=true`) nothing may be skipped: it panics instead.
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    assert!(!in_ci(), "{test}: cannot be skipped in CI: {why}");
    let line = format!("SKIPPED {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}
