//! Run one remediation command and report what happened.
//!
//! No shell: the rule's argv goes to `execve` as written, and incident data reaches
//! the command only as `ANOMALYD_*` environment variables, in an environment that
//! is otherwise empty but for a fixed PATH. The command runs under the supervisor
//! (`supervise.rs`, our own binary re-executed), which owns the timeout and the
//! clean-up of every descendant; this side reads stdout and stderr through pipes
//! up to the output cap (and keeps draining past it, so the command never blocks on
//! a full pipe), and kills the supervisor if it ever overstays.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::supervise::{SPAWN_EXIT, TIMEOUT_EXIT};
use super::RunAs;

/// The only PATH a command sees.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Time between SIGTERM and SIGKILL for what is left of a run.
pub const GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Job {
    /// Absolute path, then fixed arguments.
    pub argv: Vec<String>,
    /// The whole environment besides PATH.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub output_cap: u64,
    pub run_as: Option<RunAs>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Exited {
        code: i32,
    },
    Signaled {
        signal: i32,
    },
    TimedOut,
    /// The command could not be started (missing, not executable, user switch refused).
    SpawnFailed,
}

impl Status {
    pub fn success(&self) -> bool {
        matches!(self, Status::Exited { code: 0 })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Status::Exited { code } => write!(f, "exit {code}"),
            Status::Signaled { signal } => write!(f, "killed by signal {signal}"),
            Status::TimedOut => write!(f, "timed out"),
            Status::SpawnFailed => write!(f, "could not start"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    pub duration_ms: u64,
    /// stdout and stderr interleaved as they arrived, up to the cap (lossy UTF-8).
    pub output: String,
    /// Total bytes the command wrote (kept or not).
    pub output_bytes: u64,
    pub truncated: bool,
}

/// Starts commands under the supervisor binary.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The anomalyd binary (`remediation supervise`); the daemon's own executable.
    pub supervisor: PathBuf,
    pub grace: Duration,
}

impl Runner {
    /// The running executable as supervisor.
    pub fn current() -> std::io::Result<Runner> {
        Ok(Runner {
            supervisor: std::env::current_exe()?,
            grace: GRACE,
        })
    }

    pub fn run(&self, job: &Job) -> Outcome {
        let start = Instant::now();
        let mut cmd = Command::new(&self.supervisor);
        cmd.args(["remediation", "supervise"])
            .arg(format!("--timeout-ms={}", job.timeout.as_millis()))
            .arg(format!("--grace-ms={}", self.grace.as_millis()));
        if let Some(u) = &job.run_as {
            cmd.arg(format!("--uid={}", u.uid))
                .arg(format!("--gid={}", u.gid));
        }
        cmd.arg("--")
            .args(&job.argv)
            .env_clear()
            .env("PATH", SAFE_PATH)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The supervisor leads its own group, away from the daemon's terminal signals.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Outcome {
                    status: Status::SpawnFailed,
                    duration_ms: start.elapsed().as_millis() as u64,
                    output: format!("cannot start the supervisor {:?}: {e}", self.supervisor),
                    output_bytes: 0,
                    truncated: false,
                }
            }
        };
        let buf = Arc::new(Mutex::new(Capture::new(job.output_cap)));
        let (done_tx, done_rx) = mpsc::channel();
        let mut readers = 0;
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as _),
            child.stderr.take().map(|s| Box::new(s) as _),
        ];
        for stream in streams.into_iter().flatten() {
            let buf = buf.clone();
            let tx = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name("remediate-out".into())
                .spawn(move || {
                    drain(stream, &buf);
                    let _ = tx.send(());
                });
            if spawned.is_ok() {
                readers += 1;
            }
        }
        // The supervisor enforces the timeout; this is the backstop if it cannot.
        let backstop = job.timeout + self.grace + Duration::from_secs(10);
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if start.elapsed() > backstop => {
                    let _ = child.kill();
                    // The command's own group is unknown here; the supervisor's is ours.
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe {
                        libc::kill(-(child.id() as i32), libc::SIGKILL);
                    }
                    break child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break None,
            }
        };
        let elapsed = start.elapsed();
        // Once the supervisor is gone nothing should hold the pipes; don't wait
        // forever if something escaped it anyway.
        for _ in 0..readers {
            if done_rx.recv_timeout(Duration::from_secs(2)).is_err() {
                break;
            }
        }
        let status = match status {
            None => Status::SpawnFailed,
            Some(st) => {
                use std::os::unix::process::ExitStatusExt;
                match (st.code(), st.signal()) {
                    (Some(TIMEOUT_EXIT), _) if elapsed >= job.timeout => Status::TimedOut,
                    (Some(SPAWN_EXIT), _) => Status::SpawnFailed,
                    (Some(code), _) => Status::Exited { code },
                    (None, Some(_)) if elapsed > backstop => Status::TimedOut,
                    (None, Some(signal)) => Status::Signaled { signal },
                    (None, None) => Status::SpawnFailed,
                }
            }
        };
        let cap = match buf.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        Outcome {
            status,
            duration_ms: elapsed.as_millis() as u64,
            output: String::from_utf8_lossy(&cap.kept).into_owned(),
            output_bytes: cap.total,
            truncated: cap.total > cap.kept.len() as u64,
        }
    }
}

#[derive(Debug, Clone)]
struct Capture {
    cap: u64,
    kept: Vec<u8>,
    total: u64,
}

impl Capture {
    fn new(cap: u64) -> Capture {
        Capture {
            cap,
            kept: Vec::new(),
            total: 0,
        }
    }
}

fn drain(mut stream: Box<dyn Read + Send>, buf: &Mutex<Capture>) {
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let mut g = match buf.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.total += n as u64;
        let room = g.cap.saturating_sub(g.kept.len() as u64) as usize;
        let take = room.min(n);
        g.kept.extend_from_slice(&chunk[..take]);
    }
}
