//! The spool directory between the hardened daemon and the privileged runner unit.
//!
//! The daemon (unprivileged, `DynamicUser=`) writes one JSON request per run into
//! `<spool>/requests/`; systemd's `anomalyd-remediate.path` sees the directory is
//! not empty and starts `anomalyd-remediate.service` (root), which runs
//! `anomalyd remediation serve`: it executes each request with its own copy of the
//! configuration and its own guard state, writes the record to `<spool>/results/`
//! and deletes the request. The daemon picks results up on its next tick.
//!
//! The runner trusts nothing in a request but a rule *name* and `ANOMALYD_*` values:
//! commands come from its own configuration. Files are opened without following
//! symbolic links, requests are size-limited, results are created exclusively and
//! renamed into place (a planted symlink is replaced, never written through), and
//! a malformed request is dropped without echoing its content.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::executor::{Executor, Request, RunRecord};

/// Largest request file the runner reads.
const MAX_REQUEST: u64 = 256 * 1024;

pub struct Spool {
    requests: PathBuf,
    results: PathBuf,
}

impl Spool {
    /// The daemon's side: create the two directories if needed.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        let s = Spool::at(dir);
        for d in [&s.requests, &s.results] {
            std::fs::create_dir_all(d).map_err(|e| with_path(e, d))?;
        }
        Ok(s)
    }

    pub fn at(dir: &Path) -> Spool {
        Spool {
            requests: dir.join("requests"),
            results: dir.join("results"),
        }
    }

    /// Queue a request for the runner.
    pub fn submit(&self, req: &Request) -> std::io::Result<()> {
        let text = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        write_new(&self.requests, &file_name(&req.id), &text, 0o600)
    }

    /// Records the runner has finished since the last call (each returned once).
    pub fn results(&self) -> Vec<RunRecord> {
        let mut out = Vec::new();
        for path in json_files(&self.results) {
            match read_limited(&path) {
                Ok(bytes) => match serde_json::from_slice::<RunRecord>(&bytes) {
                    Ok(r) => out.push(r),
                    Err(e) => tracing::warn!("remediation result {}: {e}", path.display()),
                },
                Err(e) => tracing::warn!("remediation result {}: {e}", path.display()),
            }
            let _ = std::fs::remove_file(&path);
        }
        out.sort_by_key(|r| r.started_ms);
        out
    }

    /// The runner's side: execute every queued request, oldest first; returns how
    /// many were handled. Called until the directory is empty.
    pub fn serve(&self, exec: &Executor) -> usize {
        let mut handled = 0;
        loop {
            let mut batch: Vec<(i64, PathBuf, Option<Request>)> = json_files(&self.requests)
                .into_iter()
                .map(|p| {
                    let req = read_limited(&p)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Request>(&b).ok());
                    (req.as_ref().map_or(0, |r| r.requested_ms), p, req)
                })
                .collect();
            if batch.is_empty() {
                return handled;
            }
            batch.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            for (_, path, req) in batch {
                // Remove first: a request that crashes the runner is not retried forever.
                let _ = std::fs::remove_file(&path);
                handled += 1;
                let Some(req) = req else {
                    tracing::warn!("dropped malformed remediation request {}", path.display());
                    continue;
                };
                let rec = exec.execute(&req, crate::sample::now_ms());
                let text = serde_json::to_vec(&rec).unwrap_or_default();
                if let Err(e) = write_new(&self.results, &file_name(&rec.id), &text, 0o644) {
                    tracing::warn!("cannot write remediation result: {e}");
                }
            }
        }
    }
}

fn file_name(id: &str) -> String {
    format!("{}.json", crate::text::plain(id).trim_start_matches('.'))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Open without following a symlink, refuse anything but a small regular file.
fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() > MAX_REQUEST {
        return Err(std::io::Error::other("not a small regular file"));
    }
    let mut buf = Vec::new();
    f.take(MAX_REQUEST).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Create `dir/.name.tmp` exclusively, fill it, rename it to `dir/name`.
fn write_new(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| with_path(e, &tmp))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name)).map_err(|e| with_path(e, dir))
}

fn with_path(e: std::io::Error, p: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}
