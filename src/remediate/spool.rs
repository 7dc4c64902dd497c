//! The spool directory between the hardened daemon and the privileged runner unit.
//!
//! The daemon (unprivileged, `DynamicUser=`) writes one JSON request per run into
//! `<spool>/requests/`; systemd's `anomalyd-remediate.path` sees the directory is
//! not empty and starts `anomalyd-remediate.service` (root), which runs
//! `anomalyd remediation serve`: it executes each request with its own copy of the
//! configuration and its own guard state, writes the record to `<spool>/results/`
//! and deletes the request. The daemon picks results up on its next tick.
//!
//! A request is one of two [`Kind`]s. A *run* names a rule and carries `ANOMALYD_*`
//! values: commands come from the runner's own configuration. A *diagnose* request
//! asks for the built-in diagnosis of a new incident (root sees every process, the
//! hardened daemon only its own); it carries the ticket id, the incident's label and,
//! for storage, its mount point, all validated, and the runner takes nothing else
//! from it (how many processes to list comes from its own configuration). Files
//! without a `kind` come from daemons older than diagnose requests: runs.
//!
//! Files are opened without following symbolic links, requests are size-limited,
//! results are created exclusively and renamed into place (a planted symlink is
//! replaced, never written through), and a malformed request is dropped without
//! echoing its content.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::diagnose::{self, Diagnosis};
use super::executor::{Executor, Request, RunRecord};
use crate::incident::Label;

/// Largest request (or result) file read.
const MAX_REQUEST: u64 = 256 * 1024;
/// Longest ticket or request id a diagnose request may carry.
const MAX_ID: usize = 200;
/// Longest mount point a diagnose request may carry.
const MAX_PATH: usize = 4096;

/// What a spool file is about; absent (files from older daemons) means a rule run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Run,
    Diagnose,
}

/// Ask the runner for the built-in diagnosis of a new incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnoseRequest {
    /// Unique per request (also the spool file name).
    pub id: String,
    pub ticket_id: String,
    pub label: Label,
    /// The mount point of a storage incident; nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub requested_ms: i64,
}

impl DiagnoseRequest {
    /// What the runner accepts; the reason never quotes the request.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !plain_id(&self.id) {
            return Err("bad request id");
        }
        if !plain_id(&self.ticket_id) {
            return Err("bad ticket id");
        }
        let Some(r) = &self.resource else {
            return Ok(());
        };
        if self.label != Label::Storage {
            return Err("a resource is only taken for storage incidents");
        }
        if !r.starts_with('/') {
            return Err("the resource is not an absolute path");
        }
        if r.len() > MAX_PATH || r.chars().any(char::is_control) {
            return Err("the resource is too long or holds control characters");
        }
        // Only the canonical spelling: no `.`, `..`, `//` or trailing slash.
        let p = Path::new(r);
        let rebuilt: PathBuf = p.components().collect();
        if p.components().any(|c| c == Component::ParentDir) || rebuilt.as_os_str() != p.as_os_str()
        {
            return Err("the resource is not a plain absolute path");
        }
        Ok(())
    }
}

/// The runner's answer to a [`DiagnoseRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnoseResult {
    pub id: String,
    pub ticket_id: String,
    pub diagnosis: Diagnosis,
}

/// One result file, as the daemon reads it back.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    Run(RunRecord),
    Diagnosis(DiagnoseResult),
}

impl Finished {
    fn at_ms(&self) -> i64 {
        match self {
            Finished::Run(r) => r.started_ms,
            Finished::Diagnosis(d) => d.diagnosis.at_ms,
        }
    }
}

/// A request file, read and parsed.
enum Queued {
    Run(Request),
    Diagnose(DiagnoseRequest),
}

/// A spool file: its kind next to its own fields.
#[derive(Serialize)]
struct Tagged<'a, T> {
    kind: Kind,
    #[serde(flatten)]
    body: &'a T,
}

/// Only the kind, read first to choose the type to parse the rest as.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    kind: Kind,
}

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

    /// Queue a rule run for the runner.
    pub fn submit(&self, req: &Request) -> std::io::Result<()> {
        self.queue(&req.id, Kind::Run, req)
    }

    /// Queue a diagnosis for the runner.
    pub fn submit_diagnose(&self, req: &DiagnoseRequest) -> std::io::Result<()> {
        self.queue(&req.id, Kind::Diagnose, req)
    }

    fn queue<T: Serialize>(&self, id: &str, kind: Kind, body: &T) -> std::io::Result<()> {
        let text = serde_json::to_vec(&Tagged { kind, body }).map_err(std::io::Error::other)?;
        write_new(&self.requests, &file_name(id), &text, 0o600)
    }

    /// Take back a request the runner has not started yet; false if it is gone.
    pub fn withdraw(&self, id: &str) -> bool {
        std::fs::remove_file(self.requests.join(file_name(id))).is_ok()
    }

    /// What the runner has finished since the last call (each returned once), oldest
    /// first.
    pub fn results(&self) -> Vec<Finished> {
        let mut out = Vec::new();
        for path in json_files(&self.results) {
            match read_limited(&path).and_then(|b| parse_result(&b)) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!("remediation result {}: {e}", path.display()),
            }
            let _ = std::fs::remove_file(&path);
        }
        out.sort_by_key(Finished::at_ms);
        out
    }

    /// The runner's side: handle every queued request, oldest first (at one instant,
    /// diagnoses before runs, so the evidence shows the state a fix is about to
    /// change); returns how many were handled. Called until the directory is empty.
    pub fn serve(&self, exec: &Executor) -> usize {
        let mut handled = 0;
        loop {
            let mut batch: Vec<(i64, u8, PathBuf, Result<Queued, &str>)> =
                json_files(&self.requests)
                    .into_iter()
                    .map(|p| {
                        let req = read_limited(&p)
                            .map_err(|_| "unreadable, not a regular file, or too large")
                            .and_then(|b| parse_request(&b));
                        let (at, rank) = match &req {
                            Ok(Queued::Diagnose(d)) => (d.requested_ms, 0),
                            Ok(Queued::Run(r)) => (r.requested_ms, 1),
                            Err(_) => (0, 0),
                        };
                        (at, rank, p, req)
                    })
                    .collect();
            if batch.is_empty() {
                return handled;
            }
            batch.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
            for (_, _, path, req) in batch {
                // Remove first: a request that crashes the runner is not retried forever.
                let _ = std::fs::remove_file(&path);
                handled += 1;
                match req {
                    Err(why) => tracing::warn!(
                        "dropped malformed remediation request {}: {why}",
                        crate::text::plain(&path.file_name().unwrap_or_default().to_string_lossy())
                    ),
                    Ok(Queued::Run(req)) => {
                        let rec = fit_run(exec.execute(&req, crate::sample::now_ms()));
                        self.answer(&rec.id, Kind::Run, &rec);
                    }
                    Ok(Queued::Diagnose(req)) => {
                        let config = &exec.config().diagnose;
                        if !config.enabled {
                            tracing::warn!(
                                ticket = %req.ticket_id,
                                "dropped diagnose request: remediation.diagnose.enabled is \
                                 false in the runner's configuration"
                            );
                            continue;
                        }
                        let d = diagnose::diagnose_request(
                            req.label,
                            req.resource.as_deref(),
                            config.top,
                        );
                        let res = DiagnoseResult {
                            id: req.id,
                            ticket_id: req.ticket_id,
                            diagnosis: fit(d),
                        };
                        self.answer(&res.id, Kind::Diagnose, &res);
                    }
                }
            }
        }
    }

    fn answer<T: Serialize>(&self, id: &str, kind: Kind, body: &T) {
        let text = serde_json::to_vec(&Tagged { kind, body }).unwrap_or_default();
        if let Err(e) = write_new(&self.results, &file_name(id), &text, 0o600) {
            tracing::warn!("cannot write remediation result: {e}");
        }
    }
}

/// A request file's content. The reason for refusing one never quotes it (serde's
/// messages would).
fn parse_request(bytes: &[u8]) -> Result<Queued, &'static str> {
    let head = serde_json::from_slice::<Head>(bytes).map_err(|_| "not JSON, or an unknown kind")?;
    match head.kind {
        Kind::Run => serde_json::from_slice(bytes)
            .map(Queued::Run)
            .map_err(|_| "not a run request"),
        Kind::Diagnose => {
            let req: DiagnoseRequest = serde_json::from_slice(bytes)
                .map_err(|_| "not a diagnose request (missing field or unknown label)")?;
            req.validate()?;
            Ok(Queued::Diagnose(req))
        }
    }
}

fn parse_result(bytes: &[u8]) -> std::io::Result<Finished> {
    let kind = serde_json::from_slice::<Head>(bytes)?.kind;
    Ok(match kind {
        Kind::Run => Finished::Run(serde_json::from_slice(bytes)?),
        Kind::Diagnose => Finished::Diagnosis(serde_json::from_slice(bytes)?),
    })
}

/// Keep a run record within what the daemon reads back: `output_cap` may be far
/// larger than a result file, so the kept output is cut (its end kept: the last
/// lines say how a script ended) and marked truncated; the byte count stays true.
fn fit_run(mut rec: RunRecord) -> RunRecord {
    let Some(full) = rec.outcome.as_ref().map(|o| o.output.clone()) else {
        return rec;
    };
    let mut cut = 0;
    // JSON escaping makes some bytes longer, so cut by the excess until it fits.
    loop {
        let over = excess(&rec);
        if over == 0 || cut >= full.len() {
            return rec;
        }
        cut = (cut + over + 64).min(full.len());
        while !full.is_char_boundary(cut) {
            cut += 1;
        }
        if let Some(o) = &mut rec.outcome {
            o.output = format!(
                "[... {cut} bytes cut to fit the spool ...]\n{}",
                &full[cut..]
            );
            o.truncated = true;
        }
    }
}

/// Keep a diagnosis within what the daemon reads back: directory names are the
/// only unbounded part (up to 4 KiB each), so drop the smallest until it fits.
fn fit(mut d: Diagnosis) -> Diagnosis {
    if excess(&d) > 0 {
        while excess(&d) > 0 && d.largest_directories.pop().is_some() {}
        d.notes
            .push("directory list shortened to fit the result size limit".into());
    }
    d
}

/// How many bytes `v`'s JSON is over what the daemon reads back as a result (with
/// room for the kind tag); 0 when it fits.
fn excess<T: Serialize>(v: &T) -> usize {
    let len = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    len.saturating_sub((MAX_REQUEST - 1024) as usize)
}

/// Ids become file names and log fields: letters, digits, `-`, `_`, `.`, not
/// starting with a dot.
fn plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
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
    // Owner-only, and owned by whoever owns the directory: results carry root's view
    // of processes and directories, for the daemon's user alone to read.
    let owner = std::fs::metadata(dir).map_err(|e| with_path(e, dir))?;
    if owner.uid() != f.metadata()?.uid()
        && std::os::unix::fs::fchown(&f, Some(owner.uid()), Some(owner.gid())).is_err()
    {
        // Without CAP_CHOWN the reader could not open an owner-only file: a result
        // it can read beats one that is lost.
        f.set_permissions(std::fs::Permissions::from_mode(mode | 0o044))?;
    }
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name)).map_err(|e| with_path(e, dir))
}

fn with_path(e: std::io::Error, p: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::remediate::executor::RunResult;

    fn diag(resource: Option<&str>) -> DiagnoseRequest {
        DiagnoseRequest {
            id: "INC-3-diagnosis-1000-1".into(),
            ticket_id: "INC-3".into(),
            label: Label::Storage,
            resource: resource.map(str::to_string),
            requested_ms: 1000,
        }
    }

    fn tagged<T: Serialize>(kind: Kind, body: &T) -> Vec<u8> {
        serde_json::to_vec(&Tagged { kind, body }).unwrap()
    }

    #[test]
    fn requests_without_a_kind_are_rule_runs() {
        let req = Request {
            id: "INC-1-fix-1000-1".into(),
            rule: "fix".into(),
            ticket_id: "INC-1".into(),
            resource: "/var".into(),
            env: vec![("ANOMALYD_LABEL".into(), "storage".into())],
            requested_ms: 1000,
        };
        // As a daemon before diagnose requests wrote it.
        let old = serde_json::to_vec(&req).unwrap();
        assert!(!String::from_utf8_lossy(&old).contains("kind"));
        assert!(matches!(parse_request(&old), Ok(Queued::Run(r)) if r == req));
        let new = tagged(Kind::Run, &req);
        assert!(String::from_utf8_lossy(&new).contains(r#""kind":"run""#));
        assert!(matches!(parse_request(&new), Ok(Queued::Run(r)) if r == req));
        let mut v: serde_json::Value = serde_json::from_slice(&new).unwrap();
        v["kind"] = "format-disk".into();
        let err = parse_request(v.to_string().as_bytes()).err().unwrap();
        assert!(!err.contains("format-disk"), "{err}");
    }

    #[test]
    fn a_diagnose_request_is_not_a_run_and_round_trips() {
        let req = diag(Some("/var/lib"));
        let bytes = tagged(Kind::Diagnose, &req);
        assert!(matches!(parse_request(&bytes), Ok(Queued::Diagnose(d)) if d == req));
        // Without its kind it is read as a run, and it is not one: dropped.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v.as_object_mut().unwrap().remove("kind");
        assert!(parse_request(v.to_string().as_bytes()).is_err());
    }

    #[test]
    fn diagnose_requests_are_validated_without_echoing_them() {
        assert_eq!(diag(None).validate(), Ok(()));
        assert_eq!(diag(Some("/")).validate(), Ok(()));
        assert_eq!(diag(Some("/mnt/my disk")).validate(), Ok(()));
        for bad in [
            "var/lib",
            "",
            "/var/../root",
            "/var/./lib",
            "/var//lib",
            "/var/lib/",
            "/var/lib\nINJECTED",
        ] {
            let err = diag(Some(bad)).validate().err();
            assert!(err.is_some(), "{bad:?} accepted");
            assert!(!err.unwrap().contains("var"), "{err:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH));
        assert!(diag(Some(&long)).validate().is_err());
        let mut cpu = diag(Some("/var"));
        cpu.label = Label::Cpu;
        assert!(cpu.validate().is_err());
        cpu.resource = None;
        assert_eq!(cpu.validate(), Ok(()));
        for bad in [
            "",
            "../../etc/passwd",
            "INC-1\nforged log line",
            ".hidden",
            "INC 1",
        ] {
            let mut r = diag(None);
            r.ticket_id = bad.into();
            assert!(r.validate().is_err(), "{bad:?} accepted");
            let mut r = diag(None);
            r.id = bad.into();
            assert!(r.validate().is_err(), "{bad:?} accepted");
        }
        // An unknown label is not a diagnose request; the reason does not quote it.
        let mut v = serde_json::to_value(diag(None)).unwrap();
        v["kind"] = "diagnose".into();
        v["label"] = "SECRET-LABEL".into();
        let err = parse_request(v.to_string().as_bytes()).err().unwrap();
        assert!(!err.contains("SECRET"), "{err}");
        // Validation applies when the file is parsed.
        let bytes = tagged(Kind::Diagnose, &diag(Some("relative")));
        assert!(parse_request(&bytes).is_err());
    }

    fn record(outcome: Option<crate::remediate::runner::Outcome>) -> RunRecord {
        RunRecord {
            id: "INC-1-fix-1000-1".into(),
            rule: "fix".into(),
            ticket_id: "INC-1".into(),
            resource: String::new(),
            command: vec!["/bin/true".into()],
            result: RunResult::Ok,
            reason: None,
            outcome,
            started_ms: 2000,
            tripped: false,
        }
    }

    #[test]
    fn results_of_old_runners_are_run_records_and_diagnoses_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let rec = record(None);
        // Written as a runner before diagnose requests did: no kind.
        std::fs::write(
            dir.path().join("results/old.json"),
            serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
        let d = Diagnosis {
            at_ms: 1500,
            top_cpu: Vec::new(),
            top_memory: Vec::new(),
            top_open_files: Vec::new(),
            largest_directories: Vec::new(),
            notes: vec!["a note".into()],
        };
        let res = DiagnoseResult {
            id: "INC-1-diagnosis-1000-2".into(),
            ticket_id: "INC-1".into(),
            diagnosis: d,
        };
        spool.answer(&res.id, Kind::Diagnose, &res);
        std::fs::write(dir.path().join("results/junk.json"), "{").unwrap();
        let got = spool.results();
        assert_eq!(got, vec![Finished::Diagnosis(res), Finished::Run(rec)]);
        assert_eq!(
            std::fs::read_dir(dir.path().join("results"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_huge_directory_list_is_shortened_to_fit() {
        let dir = |i: usize| diagnose::DirSize {
            path: format!("/{}{i}", "x".repeat(4000)),
            bytes: 1,
        };
        let d = Diagnosis {
            at_ms: 0,
            top_cpu: Vec::new(),
            top_memory: Vec::new(),
            top_open_files: Vec::new(),
            largest_directories: (0..100).map(dir).collect(),
            notes: Vec::new(),
        };
        let f = fit(d);
        assert!(serde_json::to_vec(&f).unwrap().len() as u64 <= MAX_REQUEST - 1024);
        assert!(f.largest_directories.len() > 10 && f.largest_directories.len() < 100);
        assert!(f.notes[0].contains("shortened"));
        assert_eq!(f.largest_directories[0], dir(0));
    }

    #[test]
    fn a_large_output_is_cut_to_fit_and_keeps_its_end() {
        let mut output = "x".repeat(1 << 20);
        output.push_str("\"quoted\" é last line\n");
        let rec = record(Some(crate::remediate::runner::Outcome {
            status: crate::remediate::runner::Status::Exited { code: 0 },
            duration_ms: 5,
            output,
            output_bytes: (1 << 20) + 24,
            truncated: false,
        }));
        let fitted = fit_run(rec);
        assert!(serde_json::to_vec(&fitted).unwrap().len() as u64 <= MAX_REQUEST - 1024);
        let o = fitted.outcome.clone().unwrap();
        assert!(o.truncated);
        assert_eq!(o.output_bytes, (1 << 20) + 24);
        assert!(o.output.starts_with("[... "), "{}", &o.output[..40]);
        assert!(o.output.ends_with("\"quoted\" é last line\n"));
        // And a result that size is read back by the daemon.
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        spool.answer(&fitted.id, Kind::Run, &fitted);
        assert!(
            matches!(spool.results().as_slice(), [Finished::Run(r)] if r.id == "INC-1-fix-1000-1")
        );
    }

    #[test]
    fn results_are_owner_only_and_owned_by_the_directorys_owner() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let results = dir.path().join("results");
        let as_root = unsafe { libc::geteuid() } == 0;
        if as_root {
            // The daemon's user owns the spool; the runner is root.
            std::os::unix::fs::chown(&results, Some(65534), Some(65534)).unwrap();
        }
        write_new(&results, "r.json", b"{}", 0o600).unwrap();
        let meta = std::fs::metadata(results.join("r.json")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        if as_root {
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        }
        drop(spool);
    }
}
