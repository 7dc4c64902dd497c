//! The remediation engine with real scripts: guards under a burst of incidents,
//! the breaker surviving a restart and the CLI re-enabling it, dry runs, incident
//! data reaching scripts only as environment values, verification and escalation;
//! the spool to the privileged runner, for runs and for diagnoses (the runner, as
//! root, sees other users' processes; the hardened daemon would not).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anomalyd::incident::{Cause, Change, Incident, Severity};
use anomalyd::pipeline::{remediate_stage, Mode};
use anomalyd::remediate::executor::RunResult;
use anomalyd::remediate::{Engine, Event};
use anomalyd::store::StateDir;
use anomalyd::tickets::{Desk, Store};

const BIN: &str = env!("CARGO_BIN_EXE_anomalyd");

use crate::common::{self, runner};

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        Setup { dir }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn script(&self, name: &str, body: &str) -> String {
        let p = self.path("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_str().unwrap().to_string()
    }
    /// Write `anomalyd.yaml` with this `remediation:` section (state_dir inside).
    fn config(&self, remediation: &str) -> anomalyd::settings::Config {
        let text = format!(
            "state_dir: {}\nremediation:\n{remediation}",
            self.path("state").display()
        );
        let file = self.path("anomalyd.yaml");
        std::fs::write(&file, text).unwrap();
        anomalyd::settings::load(&file).unwrap_or_else(|e| panic!("{e}"))
    }
    fn engine(&self, c: &anomalyd::settings::Config, mode: Mode) -> Engine {
        let state = StateDir::at(&c.state_dir);
        Engine::open(&c.remediation, &state, mode)
            .unwrap()
            .unwrap()
            .with_runner(runner(), &state)
    }
}

fn incident(n: usize, resource: &str) -> Incident {
    let id = format!("INC-{n}");
    Incident {
        host: "testhost".into(),
        resource: Some(resource.to_string()),
        title: format!("storage: {resource} full soon"),
        causes: vec![Cause {
            feature: format!("filesystem_used_ratio{{mountpoint=\"{resource}\"}}"),
            value: 0.97,
            baseline: 0.5,
            contribution: 1.0,
        }],
        ..common::incident(&id, &format!("host/forecast/{resource}"), 1_000_000)
    }
}

fn count(e: &Engine, rule: &str, r: RunResult) -> u64 {
    e.counts().get(&(rule.to_string(), r)).copied().unwrap_or(0)
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn cooldown_and_max_runs_hold_under_a_burst() {
    let s = Setup::new();
    let log = s.path("runs.log");
    let fix = s.script(
        "fix",
        &format!("echo \"$ANOMALYD_RESOURCE\" >> {}", log.display()),
    );
    let c = s.config(&format!(
        "  rules:\n    - name: fix\n      command: [{fix}]\n      cooldown: 30m\n      \
         max_runs: 3\n      window: 1h\n"
    ));
    let mut e = s.engine(&c, Mode::Replay);
    let t = 1_000_000;
    // 25 incidents on one mount, then 25 on distinct mounts, all in one instant.
    for n in 0..50 {
        let r = if n < 25 {
            "/var".to_string()
        } else {
            format!("/m{n}")
        };
        e.on_change(&Change::Opened(incident(n, &r)), t);
    }
    let events = e.poll(t);
    assert_eq!(events.len(), 50, "one record per incident");
    assert_eq!(lines(&log), 3, "max_runs: 3 per window");
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        ran, "/var\n/m25\n/m26\n",
        "/var once (cooldown), then new mounts"
    );
    assert_eq!(count(&e, "fix", RunResult::Ok), 3);
    assert_eq!(count(&e, "fix", RunResult::Skipped), 47);
    let cooldown = events
        .iter()
        .filter(|ev| ev.summary.contains("in cooldown"))
        .count();
    assert_eq!(cooldown, 24);
    // An hour later the window is free again, and /var's cooldown is over.
    e.on_change(&Change::Opened(incident(99, "/var")), t + 3_600_001);
    e.poll(t + 3_600_001);
    assert_eq!(lines(&log), 4);
}

#[test]
fn circuit_breaker_holds_under_a_burst_survives_restart_and_cli_reenables() {
    let s = Setup::new();
    let log = s.path("runs.log");
    let flag = s.path("healthy");
    let fix = s.script(
        "fix",
        &format!(
            "echo run >> {log}\n[ -e {flag} ] && exit 0\necho broken >&2\nexit 1",
            log = log.display(),
            flag = flag.display()
        ),
    );
    let c = s.config(&format!(
        "  diagnose: {{enabled: false}}\n  rules:\n    - name: fix\n      command: [{fix}]\n      \
         cooldown: 0s\n      max_runs: 1000\n      failures_to_trip: 3\n"
    ));
    // Live mode: runs go to the worker thread, which re-checks the breaker per run.
    let mut e = s.engine(&c, Mode::Live);
    let t = anomalyd::sample::now_ms();
    for n in 0..50 {
        e.on_change(&Change::Opened(incident(n, &format!("/m{n}"))), t);
    }
    let events = e.drain(Duration::from_secs(120), t);
    assert_eq!(events.len(), 50);
    assert_eq!(lines(&log), 3, "the breaker trips after 3 failures");
    assert_eq!(count(&e, "fix", RunResult::Failed), 3);
    assert_eq!(count(&e, "fix", RunResult::Refused), 47);
    assert!(events
        .iter()
        .any(|ev| ev.summary.contains("disabled by its circuit breaker")));
    let failed = events
        .iter()
        .find(|ev| ev.detail["result"] == "failed")
        .unwrap();
    assert_eq!(failed.detail["outcome"]["status"]["code"], 1);
    assert_eq!(failed.detail["outcome"]["output"], "broken\n");

    // A restart does not reset it.
    drop(e);
    std::fs::write(&flag, "").unwrap();
    let mut e = s.engine(&c, Mode::Replay);
    e.on_change(&Change::Opened(incident(60, "/x")), t);
    let ev = e.poll(t);
    assert_eq!(ev[0].detail["result"], "refused");
    assert!(ev[0].summary.contains("anomalyd remediation enable"));

    let status = Command::new(BIN)
        .args(["remediation", "status", "--config"])
        .arg(s.path("anomalyd.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("TRIPPED"), "{text}");
    let out = Command::new(BIN)
        .args(["remediation", "enable", "fix", "--config"])
        .arg(s.path("anomalyd.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fix: re-enabled\n");
    e.on_change(&Change::Opened(incident(61, "/y")), t);
    let ev = e.poll(t);
    assert_eq!(ev[0].detail["result"], "ok", "{:?}", ev[0]);
    assert_eq!(lines(&log), 4);
    // Unknown rules are an error, not a silent no-op.
    let out = Command::new(BIN)
        .args(["remediation", "enable", "nope", "--config"])
        .arg(s.path("anomalyd.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn dry_run_runs_nothing_and_says_what_it_would_run() {
    let s = Setup::new();
    let marker = s.path("ran");
    let fix = s.script("fix", &format!("touch {}", marker.display()));
    let c = s.config(&format!(
        "  dry_run: true\n  rules:\n    - name: fix\n      command: [{fix}, --apply]\n      \
         env: {{CLEAN_DIR: /var/log/app, API_TOKEN: hunter2}}\n"
    ));
    let mut e = s.engine(&c, Mode::Replay);
    e.on_change(&Change::Opened(incident(1, "/var")), 1000);
    let ev = e.poll(1000);
    assert_eq!(ev.len(), 1);
    assert!(!marker.exists(), "dry run executed the script");
    assert_eq!(ev[0].detail["result"], "dry_run");
    assert!(
        ev[0].summary.contains(&format!("would run: {fix} --apply")),
        "{}",
        ev[0].summary
    );
    let reason = ev[0].detail["reason"].as_str().unwrap();
    // Issue #18: the names of the variables, never their values (a token in a rule's
    // env reached the ticket timeline and the API).
    for key in [
        "CLEAN_DIR",
        "API_TOKEN",
        "ANOMALYD_RESOURCE",
        "ANOMALYD_DRY_RUN",
    ] {
        assert!(reason.contains(key), "{reason}");
    }
    assert!(
        !reason.contains("hunter2") && !reason.contains("/var/log/app"),
        "{reason}"
    );
    assert_eq!(count(&e, "fix", RunResult::DryRun), 1);
}

#[test]
fn incident_data_reaches_the_script_only_as_verbatim_environment_values() {
    let s = Setup::new();
    let pwned = s.path("pwned");
    let nasty = format!(
        "/data; rm -rf / $(touch {p}) `touch {p}` \"'",
        p = pwned.display()
    );
    let c = s.config(
        "  rules:\n    - name: show\n      command: [/usr/bin/env, \"-0\"]\n      env: {FIXED: yes}\n",
    );
    let mut e = s.engine(&c, Mode::Replay);
    e.on_change(&Change::Opened(incident(1, &nasty)), 1000);
    let ev = e.poll(1000);
    let out = ev[0].detail["outcome"]["output"].as_str().unwrap();
    let vars: Vec<&str> = out.split('\0').filter(|v| !v.is_empty()).collect();
    assert!(
        vars.contains(&format!("ANOMALYD_RESOURCE={nasty}").as_str()),
        "{vars:?}"
    );
    assert!(vars.contains(&"ANOMALYD_LABEL=storage"));
    assert!(vars.contains(&"ANOMALYD_SEVERITY=P2"));
    assert!(vars.contains(&"ANOMALYD_CLASS=forecast"));
    assert!(vars.contains(&"ANOMALYD_INCIDENT_ID=INC-1"));
    assert!(vars.contains(&"ANOMALYD_CAUSE_VALUE=0.97"));
    assert!(vars.contains(&"FIXED=yes"));
    let mut names: Vec<&str> = vars.iter().map(|v| v.split('=').next().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ANOMALYD_CAUSE",
            "ANOMALYD_CAUSE_BASELINE",
            "ANOMALYD_CAUSE_VALUE",
            "ANOMALYD_CLASS",
            "ANOMALYD_DRY_RUN",
            "ANOMALYD_FINGERPRINT",
            "ANOMALYD_HOST",
            "ANOMALYD_INCIDENT_ID",
            "ANOMALYD_LABEL",
            "ANOMALYD_OPENED_MS",
            "ANOMALYD_RESOURCE",
            "ANOMALYD_SEVERITY",
            "ANOMALYD_TICKET_ID",
            "ANOMALYD_TITLE",
            "FIXED",
            "PATH",
        ]
    );
    assert!(!pwned.exists());
    // The command line is the rule's, untouched.
    assert_eq!(
        ev[0].detail["command"],
        serde_json::json!(["/usr/bin/env", "-0"])
    );
}

#[test]
fn a_run_is_verified_when_the_incident_clears_and_escalates_when_not() {
    let s = Setup::new();
    let fix = s.script("fix", "exit 0");
    let c = s.config(&format!(
        "  rules:\n    - name: fix\n      match: {{label: storage, severity: P3}}\n      \
         command: [{fix}]\n      verify_window: 10m\n      cooldown: 0s\n"
    ));
    let mut e = s.engine(&c, Mode::Replay);
    let t = 10_000_000;
    let a = incident(1, "/a");
    let b = incident(2, "/b");
    e.on_change(&Change::Opened(a.clone()), t);
    e.on_change(&Change::Opened(b.clone()), t);
    assert_eq!(e.poll(t).len(), 2);
    // A clears after 2 minutes; B never does.
    e.on_change(&Change::Resolved(a), t + 120_000);
    let ev: Vec<Event> = e.poll(t + 120_000);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].ticket_id, "INC-1");
    assert_eq!(ev[0].detail["verify"], "resolved");
    assert!(ev[0].summary.contains("verified"), "{}", ev[0].summary);
    assert!(ev[0].escalate.is_none());
    assert!(e.poll(t + 550_000).is_empty(), "B's window is not over yet");
    let ev = e.poll(t + 11 * 60_000);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].ticket_id, "INC-2");
    assert_eq!(ev[0].detail["verify"], "not_verified");
    assert!(ev[0].escalate.is_some());
    // A P4 incident does not match `severity: P3` (at least P3).
    let mut low = incident(3, "/c");
    low.severity = Severity::P4;
    e.on_change(&Change::Opened(low.clone()), t);
    assert!(e.poll(t).is_empty());
    // ... until it is escalated to P3: the rule runs once.
    low.severity = Severity::P3;
    let up = Change::Updated {
        incident: low,
        what: "severity P4 -> P3".into(),
    };
    e.on_change(&up, t + 1);
    e.on_change(&up, t + 2);
    assert_eq!(e.poll(t + 2).len(), 1);
}

#[test]
fn check_config_refuses_untrusted_commands() {
    let s = Setup::new();
    let check = |cmd: &str| {
        let file = s.path("check.yaml");
        std::fs::write(
            &file,
            format!("remediation:\n  rules:\n    - name: fix\n      command: [{cmd}]\n"),
        )
        .unwrap();
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let good = s.script("good", "exit 0");
    assert_eq!(check(&good).0, Some(0));

    let ww = s.script("world-writable", "exit 0");
    std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, err) = check(&ww);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "remediation.rules[0].command[0]: rule \"fix\": refusing \"{ww}\": {ww} is writable by others"
        )),
        "{err}"
    );

    let (code, err) = check("usr/bin/true");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("refusing \"usr/bin/true\": not an absolute path"),
        "{err}"
    );

    let open = s.path("bin/open");
    std::fs::create_dir(&open).unwrap();
    let inside = open.join("fix");
    std::fs::copy(&good, &inside).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o775)).unwrap();
    let (code, err) = check(inside.to_str().unwrap());
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!("{} is writable by its group", open.display())),
        "{err}"
    );

    if unsafe { libc::geteuid() } == 0 {
        let foreign = s.script("foreign", "exit 0");
        std::os::unix::fs::chown(&foreign, Some(65534), None).unwrap();
        let (code, err) = check(&foreign);
        assert_eq!(code, Some(2));
        assert!(err.contains("is owned by uid 65534"), "{err}");
    }
}

#[test]
fn spool_requests_name_rules_and_the_runner_trusts_nothing_else() {
    let s = Setup::new();
    let spool = s.path("spool");
    let fix = s.script("fix", "/usr/bin/env");
    let c = s.config(&format!(
        "  spool_dir: {}\n  diagnose: {{enabled: false}}\n  rules:\n    - name: fix\n      \
         command: [{fix}]\n      cooldown: 0s\n",
        spool.display()
    ));
    let mut e = s.engine(&c, Mode::Live);
    e.on_change(&Change::Opened(incident(1, "/var")), 1000);
    let requests: Vec<PathBuf> = std::fs::read_dir(spool.join("requests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(requests.len(), 1);
    let text = std::fs::read_to_string(&requests[0]).unwrap();
    assert!(
        !text.contains(&fix),
        "a request must not carry the command: {text}"
    );
    // A compromised daemon plants a symlink where the result will go, and forges a
    // request with an unknown rule and a hostile environment.
    let victim = s.path("victim");
    std::fs::write(&victim, "precious").unwrap();
    let name = requests[0].file_name().unwrap();
    std::os::unix::fs::symlink(&victim, spool.join("results").join(name)).unwrap();
    let mut forged: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(forged["kind"], "run", "{text}");
    // As a daemon from before diagnose requests wrote it: no kind, still a run.
    forged.as_object_mut().unwrap().remove("kind");
    forged["id"] = "forged".into();
    forged["env"] = serde_json::json!([["LD_PRELOAD", "/tmp/evil.so"], ["ANOMALYD_LABEL", "cpu"]]);
    std::fs::write(spool.join("requests/forged.json"), forged.to_string()).unwrap();
    forged["id"] = "unknown".into();
    forged["rule"] = "rm-everything".into();
    std::fs::write(spool.join("requests/unknown.json"), forged.to_string()).unwrap();
    std::fs::write(spool.join("requests/garbage.json"), "{not json").unwrap();

    let out = Command::new(BIN)
        .args(["remediation", "serve", "--config"])
        .arg(s.path("anomalyd.yaml"))
        .arg("--state-dir")
        .arg(s.path("runner-state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_dir(spool.join("requests")).unwrap().count(),
        0
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(s.path("runner-state/remediation.json").exists());

    let ev = e.poll(2000);
    let by_id = |id: &str| {
        ev.iter()
            .find(|e| e.detail["id"].as_str().is_some_and(|x| x.starts_with(id)))
            .unwrap_or_else(|| panic!("no {id} in {ev:?}"))
    };
    let real = by_id("INC-1-fix");
    assert_eq!(real.detail["result"], "ok");
    let env = real.detail["outcome"]["output"].as_str().unwrap();
    assert!(env.contains("ANOMALYD_RESOURCE=/var\n"), "{env}");
    let forged = by_id("forged");
    let env = forged.detail["outcome"]["output"].as_str().unwrap();
    assert!(!env.contains("LD_PRELOAD"), "{env}");
    assert!(env.contains("ANOMALYD_LABEL=cpu"), "{env}");
    let unknown = by_id("unknown");
    assert_eq!(unknown.detail["result"], "refused");
    assert!(unknown.summary.contains("no rule named \"rm-everything\""));
}

#[test]
fn every_new_incident_gets_a_diagnosis_from_proc() {
    let s = Setup::new();
    // A busy process of our own, and a big directory under the "mount point".
    let mut busy = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let mount = s.path("mnt");
    std::fs::create_dir_all(mount.join("big/deeper")).unwrap();
    std::fs::write(mount.join("big/deeper/blob"), vec![7u8; 4 << 20]).unwrap();
    let c = s.config("  diagnose: {enabled: true, top: 5}\n");
    let mut e = s.engine(&c, Mode::Live);
    e.on_change(&Change::Opened(incident(1, mount.to_str().unwrap())), 1000);
    let mut ev = Vec::new();
    for _ in 0..200 {
        ev.extend(e.poll(1000));
        if !ev.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = busy.kill();
    let _ = busy.wait();
    assert_eq!(ev.len(), 1, "{ev:?}");
    let d = &ev[0];
    assert_eq!(d.kind, "diagnose");
    assert_eq!(d.ticket_id, "INC-1");
    let top_cpu = d.detail["top_cpu"].as_array().unwrap();
    assert_eq!(top_cpu.len(), 5);
    let busy_pid = busy.id() as i64;
    let mine = top_cpu
        .iter()
        .find(|p| p["pid"] == busy_pid)
        .unwrap_or_else(|| panic!("the busy loop is not among the top CPU users: {top_cpu:?}"));
    assert!(mine["cpu_percent"].as_f64().unwrap() > 20.0, "{mine}");
    assert!(!d.detail["top_memory"].as_array().unwrap().is_empty());
    assert!(!d.detail["top_open_files"].as_array().unwrap().is_empty());
    let dirs = d.detail["largest_directories"].as_array().unwrap();
    assert!(
        dirs[0]["path"].as_str().unwrap().ends_with("/mnt/big"),
        "{dirs:?}"
    );
    assert!(dirs[0]["bytes"].as_u64().unwrap() >= 4 << 20);
    assert!(d.summary.starts_with("diagnosis: top CPU"), "{}", d.summary);
}

fn spool_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn serve(s: &Setup, config: &str) -> std::process::Output {
    let out = Command::new(BIN)
        .args(["remediation", "serve", "--config"])
        .arg(s.path(config))
        .arg("--state-dir")
        .arg(s.path("runner-state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out
}

/// A storage incident on `/dev/shm` (a tmpfs mount point on Debian and in
/// containers), where the test puts a directory big enough to top the list.
struct Shm(PathBuf);

impl Shm {
    fn new() -> Shm {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            mounts
                .lines()
                .any(|l| l.split(' ').nth(4) == Some("/dev/shm")),
            "this test needs /dev/shm to be a mount point"
        );
        let dir = PathBuf::from(format!("/dev/shm/anomalyd-diag-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("deeper")).unwrap();
        std::fs::write(dir.join("deeper/blob"), vec![7u8; 8 << 20]).unwrap();
        Shm(dir)
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CPU-bound process owned by `nobody`: another user's process, which the
/// hardened daemon (`ProtectProc=invisible`) cannot see.
struct Foreign(std::process::Child);

impl Foreign {
    fn start() -> Foreign {
        let nobody = anomalyd::remediate::resolve_user("nobody").unwrap();
        let child = Command::new("/bin/sh")
            .args(["-c", "while :; do :; done"])
            .uid(nobody.uid)
            .gid(nobody.gid)
            .spawn()
            .unwrap();
        Foreign(child)
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn with_a_spool_the_root_runner_diagnoses_and_the_ticket_timeline_gets_it() {
    if !crate::common::needs_root("starting another user's process and serving as root need root") {
        return;
    }
    let s = Setup::new();
    let spool = s.path("spool");
    let shm = Shm::new();
    let foreign = Foreign::start();
    let foreign_pid = foreign.0.id() as i64;
    let nobody = anomalyd::remediate::resolve_user("nobody").unwrap();
    let c = s.config(&format!(
        "  spool_dir: {}\n  diagnose: {{enabled: true, top: 100}}\n",
        spool.display()
    ));
    // The ticket exists (the desk opened it); the desk picks it up as the daemon
    // does after a restart, and remediation's events reach it through the
    // pipeline's remediate stage.
    let inc = incident(1, "/dev/shm");
    let state = StateDir::at(&c.state_dir);
    let store = Store::open_in(&state).unwrap();
    store
        .apply(&Change::Opened(inc.clone()), "report", None, 1000)
        .unwrap();
    let (desk, _) = Desk::open(&c.incidents, &c.tickets, &state).unwrap();
    let mut e = s.engine(&c, Mode::Live);
    remediate_stage(&mut e, &desk, &[Change::Opened(inc)], 1000);

    // The daemon asked instead of looking: one diagnose request, no diagnosis of
    // its own even after longer than an in-process one takes.
    let requests = spool_files(&spool.join("requests"));
    assert_eq!(requests.len(), 1, "{requests:?}");
    let req: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&requests[0]).unwrap()).unwrap();
    assert_eq!(req["kind"], "diagnose", "{req}");
    assert_eq!(req["ticket_id"], "INC-1");
    assert_eq!(req["label"], "storage");
    assert_eq!(req["resource"], "/dev/shm");
    assert!(
        req.get("rule").is_none() && req.get("env").is_none(),
        "{req}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    remediate_stage(&mut e, &desk, &[], 1500);
    let kinds = |store: &Store| -> Vec<String> {
        store
            .timeline("INC-1")
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    };
    assert!(!kinds(&store).contains(&"diagnose".to_string()));

    // The runner unit, as root.
    serve(&s, "anomalyd.yaml");
    assert!(spool_files(&spool.join("requests")).is_empty());
    assert_eq!(spool_files(&spool.join("results")).len(), 1);
    remediate_stage(&mut e, &desk, &[], 2000);
    drop(foreign);

    let timeline = store.timeline("INC-1").unwrap();
    let d: Vec<_> = timeline.iter().filter(|e| e.kind == "diagnose").collect();
    assert_eq!(d.len(), 1, "{timeline:?}");
    let d = d[0];
    assert!(d.summary.starts_with("diagnosis: top CPU"), "{}", d.summary);
    assert!(
        d.summary.contains("; largest directories "),
        "{}",
        d.summary
    );
    let top_cpu = d.detail["top_cpu"].as_array().unwrap();
    let theirs = top_cpu
        .iter()
        .find(|p| p["pid"] == foreign_pid)
        .unwrap_or_else(|| panic!("nobody's busy loop is not in the diagnosis: {top_cpu:?}"));
    assert_eq!(theirs["uid"], nobody.uid as i64, "{theirs}");
    assert!(theirs["cpu_percent"].as_f64().unwrap() > 20.0, "{theirs}");
    assert!(!d.detail["top_open_files"].as_array().unwrap().is_empty());
    let dirs = d.detail["largest_directories"].as_array().unwrap();
    let ours = shm.0.to_str().unwrap();
    let big = dirs
        .iter()
        .find(|x| x["path"] == ours)
        .unwrap_or_else(|| panic!("{ours} not among the largest directories: {dirs:?}"));
    assert!(big["bytes"].as_u64().unwrap() >= 8 << 20, "{big}");
    // Picked up once: the result file is gone and nothing more arrives.
    assert!(spool_files(&spool.join("results")).is_empty());
    assert!(e.poll(3000).is_empty());
}

#[test]
fn malformed_or_unanswered_diagnose_requests_lose_nothing_else() {
    let s = Setup::new();
    let spool = s.path("spool");
    let c = s.config(&format!(
        "  spool_dir: {}\n  diagnose: {{enabled: true, top: 5}}\n",
        spool.display()
    ));
    let mut e = s.engine(&c, Mode::Live);
    // No runner: the engine does not wait, and after the wait gives the request up.
    e.on_change(&Change::Opened(incident(1, "/var")), 1000);
    assert_eq!(spool_files(&spool.join("requests")).len(), 1);
    assert!(e.poll(1000).is_empty());
    let wait = anomalyd::remediate::engine::DIAGNOSE_WAIT_MS;
    assert!(e.poll(1000 + wait).is_empty());
    assert_eq!(spool_files(&spool.join("requests")).len(), 1);
    assert!(e.poll(1001 + wait).is_empty());
    assert!(
        spool_files(&spool.join("requests")).is_empty(),
        "a diagnosis nobody took is withdrawn"
    );

    // Forged diagnose requests: they name the kind but break the rules.
    let plain = s.path("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("f"), vec![1u8; 1 << 20]).unwrap();
    let req = |id: &str, label: &str, resource: serde_json::Value| {
        serde_json::json!({
            "kind": "diagnose", "id": id, "ticket_id": "INC-7", "label": label,
            "resource": resource, "requested_ms": 5,
        })
    };
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(spool.join("requests").join(name), v.to_string()).unwrap()
    };
    write("relative.json", &req("r1", "storage", "SECRET-etc".into()));
    write(
        "dotdot.json",
        &req("r2", "storage", "/var/../SECRET".into()),
    );
    write(
        "label.json",
        &req("r3", "SECRET-label", serde_json::Value::Null),
    );
    write("cpu.json", &req("r4", "cpu", "/SECRET-not-storage".into()));
    let mut bad_ticket = req("r5", "cpu", serde_json::Value::Null);
    bad_ticket["ticket_id"] = "INC-1\nSECRET forged log line".into();
    write("ticket.json", &bad_ticket);
    // Well formed, but the directory is not a mount point: processes only.
    let canonical = plain.canonicalize().unwrap();
    write(
        "plain.json",
        &req("r6", "storage", canonical.to_str().unwrap().into()),
    );
    let out = serve(&s, "anomalyd.yaml");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        log.matches("dropped malformed remediation request").count(),
        5,
        "{log}"
    );
    assert!(!log.contains("SECRET"), "the log echoes a request: {log}");
    assert!(spool_files(&spool.join("requests")).is_empty());
    let results = spool_files(&spool.join("results"));
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results[0].ends_with("r6.json"), "{results:?}");
    let ev = e.poll(2000);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].kind, ev[0].ticket_id.as_str()),
        ("diagnose", "INC-7")
    );
    assert!(!ev[0].detail["top_cpu"].as_array().unwrap().is_empty());
    assert!(
        ev[0].detail.get("largest_directories").is_none(),
        "{:?}",
        ev[0]
    );
    let notes = ev[0].detail["notes"].to_string();
    assert!(notes.contains("is not a mount point"), "{notes}");

    // A runner whose own configuration disables diagnoses says so and answers nothing.
    std::fs::write(
        s.path("runner-off.yaml"),
        format!(
            "state_dir: {}\nremediation:\n  spool_dir: {}\n  diagnose: {{enabled: false}}\n",
            s.path("state").display(),
            spool.display()
        ),
    )
    .unwrap();
    write("off.json", &req("r7", "cpu", serde_json::Value::Null));
    let out = serve(&s, "runner-off.yaml");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("diagnose.enabled is false"), "{log}");
    assert!(spool_files(&spool.join("requests")).is_empty());
    assert!(spool_files(&spool.join("results")).is_empty());
}

#[test]
fn the_runner_diagnoses_before_it_runs_a_fix_queued_with_it() {
    // The evidence must show the state the fix is about to change.
    let s = Setup::new();
    let spool = s.path("spool");
    let fix = s.script("fix", "exit 0");
    let c = s.config(&format!(
        "  spool_dir: {}\n  diagnose: {{enabled: true, top: 3}}\n  rules:\n    - name: clear\n      \
         command: [{fix}]\n",
        spool.display()
    ));
    let mut e = s.engine(&c, Mode::Live);
    // The run's file name sorts first ("INC-1-clear-..." < "INC-1-diagnosis-..."),
    // so the order must come from the kind.
    e.on_change(&Change::Opened(incident(1, "/var")), 1000);
    let names: Vec<String> = spool_files(&spool.join("requests"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    serve(&s, "anomalyd.yaml");
    let ev = e.poll(2000);
    let diag = ev.iter().find(|e| e.kind == "diagnose").unwrap();
    let run = ev.iter().find(|e| e.kind == "action").unwrap();
    assert_eq!(run.detail["result"], "ok", "{run:?}");
    let started = run.detail["started_ms"].as_i64().unwrap();
    assert!(
        diag.at_ms <= started,
        "diagnosed at {} after the fix started at {started}",
        diag.at_ms
    );
}

#[test]
fn a_run_request_the_runner_never_takes_is_withdrawn_and_recorded_as_skipped() {
    let s = Setup::new();
    let spool = s.path("spool");
    let fix = s.script("fix", "exit 0");
    let c = s.config(&format!(
        "  spool_dir: {}\n  diagnose: {{enabled: false}}\n  rules:\n    - name: fix\n      \
         match: {{label: storage}}\n      command: [{fix}]\n",
        spool.display()
    ));
    let mut e = s.engine(&c, Mode::Live);
    e.on_change(&Change::Opened(incident(1, "/var")), 1000);
    assert_eq!(spool_files(&spool.join("requests")).len(), 1);
    let wait = anomalyd::remediate::engine::RUN_WAIT_MS;
    // The engine never waits on the runner; within the wait nothing is said.
    assert!(e.poll(1000).is_empty());
    assert!(e.poll(1000 + wait).is_empty());
    assert_eq!(spool_files(&spool.join("requests")).len(), 1);
    // After it, the request is taken back and the ticket says why nothing ran.
    let ev = e.poll(1001 + wait);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].ticket_id, "INC-1");
    assert!(ev[0].summary.contains("skipped"), "{}", ev[0].summary);
    assert!(
        ev[0].summary.contains("did not take the request"),
        "{}",
        ev[0].summary
    );
    assert!(spool_files(&spool.join("requests")).is_empty());
    assert_eq!(count(&e, "fix", RunResult::Skipped), 1);
    // Said once.
    assert!(e.poll(2001 + wait).is_empty());
}

/// A failed run is never verified, even when the incident then resolves.
#[test]
fn a_failed_run_is_never_verified() {
    let s = Setup::new();
    let fix = s.script("fix", "exit 2");
    let c = s.config(&format!(
        "  rules:\n    - name: fix\n      command: [{fix}]\n      verify_window: 10m\n"
    ));
    let mut e = s.engine(&c, Mode::Replay);
    let t = 10_000_000;
    let a = incident(1, "/a");
    e.on_change(&Change::Opened(a.clone()), t);
    let ev = e.poll(t);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].detail["result"], "failed", "{:?}", ev[0]);
    e.on_change(&Change::Resolved(a), t + 60_000);
    assert!(
        e.poll(t + 60_000).is_empty(),
        "no verification of a failure"
    );
    assert!(
        e.poll(t + 20 * 60_000).is_empty(),
        "nor a late 'not verified'"
    );
}

/// Issue #17: when the problem moves to another label or resource, the incident is
/// superseded by a new one. A run on the old one is not verified by it (it did not
/// resolve), and says so once; the new incident is the rules' own to match.
#[test]
fn a_superseded_incident_never_verifies_its_run() {
    let s = Setup::new();
    let fix = s.script("fix", "exit 0");
    let c = s.config(&format!(
        "  rules:\n    - name: fix\n      match: {{label: storage}}\n      command: [{fix}]\n      \
         verify_window: 10m\n"
    ));
    let mut e = s.engine(&c, Mode::Replay);
    let t = 10_000_000;
    let a = incident(1, "/a");
    e.on_change(&Change::Opened(a.clone()), t);
    let ev = e.poll(t);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].detail["result"], "ok");
    e.on_change(
        &Change::Superseded {
            incident: a,
            by: "INC-2".into(),
        },
        t + 60_000,
    );
    let ev = e.poll(t + 60_000);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].detail["verify"], "superseded", "{:?}", ev[0]);
    assert!(
        ev[0]
            .summary
            .contains("not verified: the incident was superseded by INC-2"),
        "{}",
        ev[0].summary
    );
    assert!(e.poll(t + 20 * 60_000).is_empty(), "said once");
}

/// An incident that resolved, then reopened at a severity a rule matches: the rule's
/// run comes after that resolution, which is not credited to it; the next one is.
#[test]
fn a_resolution_before_the_run_is_not_credited_to_it() {
    let s = Setup::new();
    let fix = s.script("fix", "exit 0");
    let c = s.config(&format!(
        "  rules:\n    - name: fix\n      match: {{severity: P3}}\n      command: [{fix}]\n      \
         verify_window: 10m\n"
    ));
    let mut e = s.engine(&c, Mode::Replay);
    let t = 10_000_000;
    let mut low = incident(1, "/a");
    low.severity = Severity::P4;
    e.on_change(&Change::Opened(low.clone()), t);
    e.on_change(&Change::Resolved(low.clone()), t + 60_000);
    assert!(e.poll(t + 60_000).is_empty(), "P4: nothing ran");
    let mut again = low;
    again.severity = Severity::P3;
    e.on_change(&Change::Opened(again.clone()), t + 120_000);
    let ev = e.poll(t + 120_000);
    assert_eq!(ev.len(), 1, "only the run: {ev:?}");
    assert_eq!(ev[0].detail["result"], "ok");
    e.on_change(&Change::Resolved(again), t + 180_000);
    let ev = e.poll(t + 180_000);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].detail["verify"], "resolved");
    assert_eq!(ev[0].at_ms, t + 180_000);
    assert!(
        ev[0].summary.contains("resolved 1 min after the run"),
        "{}",
        ev[0].summary
    );
}

/// A rule runs at most once per incident: not again when it reopens, nor after a
/// restart (the stage recalls what the ticket's timeline says ran).
#[test]
fn a_rule_runs_once_per_incident_across_reopens_and_restarts() {
    let s = Setup::new();
    let log = s.path("runs.log");
    let fix = s.script("fix", &format!("echo ran >> {}", log.display()));
    let c = s.config(&format!(
        "  rules:\n    - name: fix\n      command: [{fix}]\n      cooldown: 0s\n      \
         max_runs: 100\n"
    ));
    let state = StateDir::at(&c.state_dir);
    let (desk, _) = Desk::open(&c.incidents, &c.tickets, &state).unwrap();
    let a = incident(1, "/a");
    let t = 10_000_000;
    let mut resolved = a.clone();
    resolved.resolved_ms = Some(t + 60_000);
    let store = Store::open_in(&state).unwrap();
    let mut e = s.engine(&c, Mode::Replay);
    for (k, change) in [
        Change::Opened(a.clone()),
        Change::Resolved(resolved.clone()),
        Change::Opened(a.clone()),
        Change::Resolved(resolved),
        Change::Opened(a.clone()),
    ]
    .into_iter()
    .enumerate()
    {
        let now = t + k as i64 * 60_000;
        store.apply(&change, "r", None, now).unwrap();
        remediate_stage(&mut e, &desk, &[change], now);
    }
    assert_eq!(lines(&log), 1, "ran once over two reopens");
    // A restart: a new engine, the incident still open and updated.
    let mut e = s.engine(&c, Mode::Replay);
    let up = Change::Updated {
        incident: a,
        what: "severity P2 -> P1".into(),
    };
    remediate_stage(&mut e, &desk, &[up], t + 600_000);
    assert_eq!(lines(&log), 1, "not again after a restart");
    let runs = store
        .timeline("INC-1")
        .unwrap()
        .into_iter()
        .filter(|e| e.detail["rule"] == "fix" && e.detail["result"].is_string())
        .count();
    assert_eq!(runs, 1);
}

#[test]
fn status_says_when_there_are_no_rules() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["remediation", "status", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no remediation rules configured (remediation.rules in the built-in defaults)\n"
    );
}
