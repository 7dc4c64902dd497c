//! The supervisor: a small process between the daemon and a remediation command
//! that makes sure nothing the command started outlives it.
//!
//! Killing a process group is not enough: a script can `setsid` or double-fork and
//! leave the group. The supervisor marks itself a *child subreaper*
//! (`PR_SET_CHILD_SUBREAPER`), so every descendant whose parent dies is re-parented
//! to it instead of to init. When the command exits (or its time is up) the
//! supervisor signals the command's process group and every child it has, waits a
//! grace period, then SIGKILLs and reaps in a loop until it has no children left:
//! each round kills a generation and the next is re-parented to it. When it exits,
//! nothing of the run remains, and the pipes the daemon reads reach end-of-file.
//!
//! It runs as `anomalyd remediation supervise` (a fresh exec of our own binary,
//! not a fork of the multi-threaded daemon). Its exit status is the command's:
//! the same code, or death by the same signal; a timeout exits with 124, as
//! coreutils' `timeout` does.
//!
//! Limit: a process that forks faster than one kill round per 10 ms for 5 s, or
//! that a PID namespace / `clone(CLONE_PARENT)` trick moves elsewhere, can escape;
//! the runner unit's cgroup (`KillMode=control-group`) is the last line for those.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Exit code for "the command ran out of time".
pub const TIMEOUT_EXIT: i32 = 124;
/// Exit code for "the command could not be started".
pub const SPAWN_EXIT: i32 = 127;

pub struct Supervise {
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub grace: Duration,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Run the command; returns the exit code to exit with (after re-raising a fatal
/// signal of the command, which does not return).
pub fn supervise(s: &Supervise) -> i32 {
    let Some((program, args)) = s.argv.split_first() else {
        eprintln!("anomalyd supervise: no command");
        return SPAWN_EXIT;
    };
    // SAFETY: plain syscalls on our own process with valid arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        // If the daemon dies, clean up as on a timeout.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
    }
    let signals = blocked_signals();
    let mut cmd = Command::new(program);
    cmd.args(args);
    // A group of its own, so one kill reaches everything that stayed in it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Some(gid) = s.gid {
        std::os::unix::process::CommandExt::gid(&mut cmd, gid);
    }
    if let Some(uid) = s.uid {
        // std drops supplementary groups (setgroups(0)) when root switches uid.
        std::os::unix::process::CommandExt::uid(&mut cmd, uid);
    }
    // The signal mask survives exec: without this the command would start with
    // SIGCHLD and SIGTERM blocked (a shell's `wait` would then hang forever).
    // SAFETY: sigemptyset and sigprocmask are async-signal-safe, as pre_exec requires.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("anomalyd supervise: cannot run {program}: {e}");
            return SPAWN_EXIT;
        }
    };
    let main_pid = child.id() as i32;
    let deadline = Instant::now() + s.timeout;
    let mut main_status: Option<i32> = None;
    let mut timed_out = false;
    while main_status.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        match wait_signal(&signals, left.min(Duration::from_millis(100))) {
            Some(libc::SIGTERM) | Some(libc::SIGINT) | Some(libc::SIGHUP) => {
                timed_out = true;
                break;
            }
            _ => main_status = reap(main_pid).or(main_status),
        }
    }
    // Whatever is left of the run goes now: politely, then not.
    signal_all(main_pid, libc::SIGTERM);
    let grace_end = Instant::now() + s.grace;
    while Instant::now() < grace_end {
        if let Some(st) = reap(main_pid) {
            main_status = Some(st);
        }
        if no_children() {
            break;
        }
        wait_signal(&signals, Duration::from_millis(20));
    }
    let kill_end = Instant::now() + Duration::from_secs(5);
    while !no_children() && Instant::now() < kill_end {
        signal_all(main_pid, libc::SIGKILL);
        if let Some(st) = reap(main_pid) {
            main_status = Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if timed_out {
        return TIMEOUT_EXIT;
    }
    match main_status {
        Some(st) if libc::WIFEXITED(st) => libc::WEXITSTATUS(st),
        Some(st) if libc::WIFSIGNALED(st) => reraise(libc::WTERMSIG(st)),
        _ => SPAWN_EXIT,
    }
}

/// Block the signals we wait for, so they queue for `sigtimedwait`.
fn blocked_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid pointers; a null siginfo pointer is allowed.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Reap every exited child; returns the main child's wait status if it was one.
fn reap(main_pid: i32) -> Option<i32> {
    let mut main = None;
    loop {
        let mut st = 0;
        // SAFETY: valid pointer to a local.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if pid <= 0 {
            return main;
        }
        if pid == main_pid {
            main = Some(st);
        }
    }
}

/// True when we have no children at all, running or zombie.
fn no_children() -> bool {
    // SAFETY: siginfo_t is plain data; WNOWAIT leaves any zombie for `reap`.
    let rc = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

/// Signal the command's process group and every direct child (descendants that
/// left the group were re-parented to us when their parents died).
fn signal_all(main_pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-main_pid, sig);
    }
    // SAFETY: as above.
    let me = unsafe { libc::getpid() };
    for pid in children_of(me) {
        // SAFETY: as above. Signal the child and any group it leads.
        unsafe {
            libc::kill(pid, sig);
            libc::kill(-pid, sig);
        }
    }
}

/// Pids whose parent is `parent`, from /proc/*/stat.
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| ppid_of(*pid) == Some(parent))
        .collect()
}

pub fn ppid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/stat"))).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Die of the command's signal so our parent sees exactly what happened to it.
fn reraise(sig: i32) -> i32 {
    // SAFETY: plain syscalls on our own process.
    unsafe {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
    }
    // Signals that do not kill by default (SIGCHLD...) cannot reach here as a cause
    // of death; if one does, report it the shell's way.
    128 + sig
}
