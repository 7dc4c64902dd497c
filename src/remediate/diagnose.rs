//! The built-in diagnose action: evidence for every new ticket, no script needed.
//!
//! Reads /proc directly: the top processes by CPU (over a short interval) and by
//! resident memory; for storage incidents also the processes with the most open
//! files and the largest directories under the affected mount point. The directory
//! walk stays on one filesystem, never follows symbolic links, and stops at a time
//! and entry budget (saying so), so a huge tree cannot make a diagnosis hang.
//!
//! It runs in the daemon ([`Scope::Daemon`]), or, with a spool directory, in the
//! root runner unit ([`Scope::Runner`]): the hardened daemon cannot see other
//! users' processes, root can. The runner walks only a directory that is a mount
//! point named by its real path, so a request cannot make root list an arbitrary
//! directory for the daemon.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::incident::{Incident, Label};

/// CPU usage is measured over this interval.
const CPU_INTERVAL: Duration = Duration::from_millis(500);
/// The directory walk stops after this long or this many entries.
const WALK_TIME: Duration = Duration::from_secs(5);
const WALK_ENTRIES: usize = 500_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: i32,
    pub command: String,
    pub uid: u32,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirSize {
    pub path: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub at_ms: i64,
    pub top_cpu: Vec<Proc>,
    pub top_memory: Vec<Proc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_open_files: Vec<Proc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub largest_directories: Vec<DirSize>,
    /// What could not be looked at, and limits that were hit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Diagnosis {
    pub fn summary(&self) -> String {
        let procs = |v: &[Proc], f: &dyn Fn(&Proc) -> String| {
            v.iter()
                .take(3)
                .map(|p| format!("{} ({})", p.command, f(p)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!(
            "diagnosis: top CPU {}; top memory {}",
            procs(&self.top_cpu, &|p| format!("{:.0}%", p.cpu_percent)),
            procs(&self.top_memory, &|p| mib(p.rss_bytes))
        );
        if !self.largest_directories.is_empty() {
            let dirs: Vec<String> = self
                .largest_directories
                .iter()
                .take(3)
                .map(|d| format!("{} ({})", d.path, mib(d.bytes)))
                .collect();
            s.push_str(&format!("; largest directories {}", dirs.join(", ")));
        }
        s
    }
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / 1048576.0)
}

/// Where a diagnosis runs, which decides the directories it may walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In the daemon: the incident's mount point; the daemon's own rights are the limit.
    Daemon,
    /// In the root runner, for a spool request: only a current mount point named by
    /// its canonical path (no symlink, no `..`), so a forged request cannot make root
    /// list the directories under, say, `/root`.
    Runner,
}

/// Look at the host now, for `incident` (in the daemon).
pub fn diagnose(incident: &Incident, top: usize) -> Diagnosis {
    diagnose_at(
        Path::new("/proc"),
        incident.label,
        incident.resource.as_deref(),
        Scope::Daemon,
        top,
        CPU_INTERVAL,
    )
}

/// Look at the host now, in the runner, for a validated spool request.
pub fn diagnose_request(label: Label, resource: Option<&str>, top: usize) -> Diagnosis {
    diagnose_at(
        Path::new("/proc"),
        label,
        resource,
        Scope::Runner,
        top,
        CPU_INTERVAL,
    )
}

pub fn diagnose_at(
    proc_root: &Path,
    label: Label,
    resource: Option<&str>,
    scope: Scope,
    top: usize,
    cpu: Duration,
) -> Diagnosis {
    let mut notes = Vec::new();
    let before = cpu_ticks(proc_root);
    std::thread::sleep(cpu);
    let mut procs = processes(proc_root);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    for p in &mut procs {
        if let (Some(now), Some(then)) = (cpu_ticks_of(proc_root, p.pid), before.get(&p.pid)) {
            p.cpu_percent = (now.saturating_sub(*then)) as f64 / hz / cpu.as_secs_f64() * 100.0;
        }
    }
    if procs.is_empty() {
        notes.push(format!("no processes readable in {}", proc_root.display()));
    }
    let mut by_cpu = procs.clone();
    by_cpu.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
    by_cpu.truncate(top);
    let mut by_mem = procs.clone();
    by_mem.sort_by_key(|p| std::cmp::Reverse(p.rss_bytes));
    by_mem.truncate(top);
    let mut d = Diagnosis {
        at_ms: crate::sample::now_ms(),
        top_cpu: by_cpu,
        top_memory: by_mem,
        top_open_files: Vec::new(),
        largest_directories: Vec::new(),
        notes,
    };
    if label == Label::Storage {
        let mut files: Vec<Proc> = procs
            .into_iter()
            .filter_map(|mut p| {
                p.open_files = count_fds(proc_root, p.pid);
                p.open_files.map(|_| p)
            })
            .collect();
        files.sort_by_key(|p| std::cmp::Reverse(p.open_files));
        files.truncate(top);
        d.top_open_files = files;
        match resource {
            Some(mount) if mount.starts_with('/') => match walk_refused(proc_root, mount, scope) {
                Some(why) => d.notes.push(why),
                None => {
                    let (dirs, note) = largest_dirs(Path::new(mount), top, WALK_TIME, WALK_ENTRIES);
                    d.largest_directories = dirs;
                    d.notes.extend(note);
                }
            },
            _ => d
                .notes
                .push("no mount point in the incident: directory sizes skipped".into()),
        }
    }
    d
}

/// Why the runner will not walk `mount`, if it will not.
fn walk_refused(proc_root: &Path, mount: &str, scope: Scope) -> Option<String> {
    if scope == Scope::Daemon {
        return None;
    }
    let path = Path::new(mount);
    let real = std::fs::canonicalize(path).ok();
    if real.as_deref().and_then(Path::to_str) != Some(mount) {
        return Some(format!(
            "{mount} is not a canonical path (symlink or missing): directory sizes skipped"
        ));
    }
    let mounts = std::fs::read_to_string(proc_root.join("self/mounts")).unwrap_or_default();
    if !crate::collect::disk::mount_points(&mounts)
        .iter()
        .any(|m| m == mount)
    {
        return Some(format!(
            "{mount} is not a mount point: directory sizes skipped (the runner walks mount points only)"
        ));
    }
    None
}

fn pids(proc_root: &Path) -> Vec<i32> {
    std::fs::read_dir(proc_root)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Fields of /proc/PID/stat after the command name (which may hold spaces).
fn stat_fields(proc_root: &Path, pid: i32) -> Option<(String, Vec<String>)> {
    let s = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    Some((
        comm,
        s[close + 1..]
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    ))
}

fn cpu_ticks_of(proc_root: &Path, pid: i32) -> Option<u64> {
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let (_, f) = stat_fields(proc_root, pid)?;
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn cpu_ticks(proc_root: &Path) -> HashMap<i32, u64> {
    pids(proc_root)
        .into_iter()
        .filter_map(|p| Some((p, cpu_ticks_of(proc_root, p)?)))
        .collect()
}

fn processes(proc_root: &Path) -> Vec<Proc> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pids(proc_root)
        .into_iter()
        .filter_map(|pid| {
            let dir = proc_root.join(pid.to_string());
            let (comm, f) = stat_fields(proc_root, pid)?;
            // rss (pages) is field 24 of stat, 21 after the name.
            let rss: u64 = f.get(21)?.parse().ok()?;
            let uid = std::fs::metadata(&dir).map(|m| m.uid()).unwrap_or(0);
            Some(Proc {
                pid,
                command: comm,
                uid,
                cpu_percent: 0.0,
                rss_bytes: rss * page,
                open_files: None,
            })
        })
        .collect()
}

fn count_fds(proc_root: &Path, pid: i32) -> Option<u64> {
    let d = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")).ok()?;
    Some(d.count() as u64)
}

/// Sizes (allocated blocks) of the directories one and two levels below `root`,
/// largest first. Stays on `root`'s filesystem; symlinks are not followed.
pub fn largest_dirs(
    root: &Path,
    top: usize,
    budget: Duration,
    max_entries: usize,
) -> (Vec<DirSize>, Option<String>) {
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return (Vec::new(), Some(format!("cannot read {}", root.display())));
    };
    let dev = meta.dev();
    let start = Instant::now();
    let mut sizes: HashMap<PathBuf, u64> = HashMap::new();
    // (directory, the depth-1 and depth-2 ancestors it counts toward)
    let mut stack: Vec<(PathBuf, Vec<PathBuf>)> = vec![(root.to_path_buf(), Vec::new())];
    let mut entries = 0usize;
    let mut note = None;
    'walk: while let Some((dir, owners)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            entries += 1;
            if entries > max_entries || start.elapsed() > budget {
                note = Some(format!(
                    "directory walk of {} stopped after {entries} entries / {:.1} s: sizes are lower bounds",
                    root.display(),
                    start.elapsed().as_secs_f64()
                ));
                break 'walk;
            }
            let Ok(m) = e.metadata() else { continue };
            let bytes = m.blocks() * 512;
            for o in &owners {
                *sizes.entry(o.clone()).or_default() += bytes;
            }
            if m.is_dir() && m.dev() == dev {
                let path = e.path();
                let mut own = owners.clone();
                if owners.len() < 2 {
                    *sizes.entry(path.clone()).or_default() += bytes;
                    own.push(path.clone());
                }
                stack.push((path, own));
            }
        }
    }
    let mut v: Vec<DirSize> = sizes
        .into_iter()
        .map(|(p, bytes)| DirSize {
            path: p.display().to_string(),
            bytes,
        })
        .collect();
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
    v.truncate(top);
    (v, note)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn largest_dirs_counts_nested_files_and_skips_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("big/inner");
        std::fs::create_dir_all(&big).unwrap();
        std::fs::write(big.join("f"), vec![1u8; 1 << 20]).unwrap();
        std::fs::create_dir(d.path().join("small")).unwrap();
        std::fs::write(d.path().join("small/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/usr", d.path().join("link")).unwrap();
        let (v, note) = largest_dirs(d.path(), 10, Duration::from_secs(5), 1000);
        assert!(note.is_none());
        assert!(
            v[0].path.ends_with("/big") && v[0].bytes >= 1 << 20,
            "{v:?}"
        );
        assert!(v[1].path.ends_with("/big/inner"), "{v:?}");
        assert!(!v.iter().any(|x| x.path.contains("link")));
        let (_, note) = largest_dirs(d.path(), 10, Duration::from_secs(5), 2);
        assert!(note.unwrap().contains("lower bounds"));
    }

    #[test]
    fn the_runner_walks_mount_points_only_and_the_daemon_any_directory() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/f"), vec![1u8; 1 << 16]).unwrap();
        let proc_root = dir.join("proc");
        std::fs::create_dir_all(proc_root.join("self")).unwrap();
        let mount = dir.to_str().unwrap().to_string();
        let run = |scope| {
            diagnose_at(
                &proc_root,
                Label::Storage,
                Some(&mount),
                scope,
                5,
                Duration::ZERO,
            )
        };
        assert!(!run(Scope::Daemon).largest_directories.is_empty());
        let refused = run(Scope::Runner);
        assert!(refused.largest_directories.is_empty());
        assert!(
            refused
                .notes
                .iter()
                .any(|n| n.contains("is not a mount point")),
            "{:?}",
            refused.notes
        );
        std::fs::write(
            proc_root.join("self/mounts"),
            format!("t {mount} tmpfs rw 0 0\n"),
        )
        .unwrap();
        let walked = run(Scope::Runner);
        assert!(
            walked
                .largest_directories
                .iter()
                .any(|x| x.path.ends_with("/sub")),
            "{walked:?}"
        );
        // The same mount point reached through a symlink is refused.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        std::fs::write(
            proc_root.join("self/mounts"),
            format!("t {} tmpfs rw 0 0\n", link.display()),
        )
        .unwrap();
        let via_link = diagnose_at(
            &proc_root,
            Label::Storage,
            link.to_str(),
            Scope::Runner,
            5,
            Duration::ZERO,
        );
        assert!(via_link.largest_directories.is_empty());
        assert!(via_link
            .notes
            .iter()
            .any(|n| n.contains("not a canonical path")));
    }
}
