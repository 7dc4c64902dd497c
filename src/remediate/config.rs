//! The `remediation:` section: rules that map incidents to fixed commands, and the
//! guards every run goes through.
//!
//! A rule's command is checked for trust here, when the configuration is read, so a
//! script anyone could edit is refused by `anomalyd check-config` and at start-up,
//! not discovered when an incident fires at 3 a.m.

use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;

use crate::config::reader::{Pattern, Reader, Section};
use crate::incident::{Class, Label, Severity};

use super::trust;

#[derive(Debug, Clone, PartialEq)]
pub struct RemediationConfig {
    /// Run rules and diagnostics at all.
    pub enabled: bool,
    /// Record what would run, run nothing.
    pub dry_run: bool,
    /// Guards for rules that do not set their own.
    pub defaults: Guards,
    pub diagnose: DiagnoseConfig,
    /// Hand runs to the privileged runner unit through this directory instead of
    /// running them inside the daemon (see the README, "Remediation").
    pub spool_dir: Option<PathBuf>,
    pub rules: Vec<Rule>,
}

/// Limits on one rule's runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Guards {
    /// The whole process tree is killed after this long.
    pub timeout: Duration,
    /// Minimum time between two runs of a rule for one resource.
    pub cooldown: Duration,
    /// At most this many runs of a rule per `window` (all resources together).
    pub max_runs: u32,
    pub window: Duration,
    /// Consecutive failures (non-zero exit, signal, timeout) that disable the rule
    /// until an operator runs `anomalyd remediation enable RULE`.
    pub failures_to_trip: u32,
    /// Bytes of stdout+stderr kept per run; the rest is read and dropped.
    pub output_cap: u64,
    /// After a run, the incident must resolve within this time to count as fixed;
    /// otherwise the ticket's severity is raised one step.
    pub verify_window: Duration,
    /// Run the command as this user (the daemon must run as root to switch).
    pub run_as: Option<RunAs>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiagnoseConfig {
    /// Attach top processes (and, for storage, directory sizes and open files) to
    /// every new incident's ticket.
    pub enabled: bool,
    /// How many processes / directories to list.
    pub top: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub matcher: Match,
    /// Absolute path of a trusted executable, then fixed arguments. No shell.
    pub command: Vec<String>,
    /// Fixed extra environment variables (incident data comes as `ANOMALYD_*`).
    pub env: Vec<(String, String)>,
    pub guards: Guards,
    /// Record what would run, run nothing (for this rule only).
    pub dry_run: bool,
}

/// Every set field must match; an empty `Match` matches every incident.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Match {
    pub label: Option<Label>,
    /// The incident is at least this urgent (`P2` matches P0, P1 and P2).
    pub severity: Option<Severity>,
    pub class: Option<Class>,
    /// One of the incident's cause features matches (anchored regex).
    pub cause: Option<Pattern>,
    /// The incident's resource matches (anchored regex); incidents without one don't.
    pub resource: Option<Pattern>,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            timeout: Duration::from_secs(60),
            cooldown: Duration::from_secs(30 * 60),
            max_runs: 3,
            window: Duration::from_secs(3600),
            failures_to_trip: 3,
            output_cap: 64 * 1024,
            verify_window: Duration::from_secs(10 * 60),
            run_as: None,
        }
    }
}

impl Default for RemediationConfig {
    fn default() -> Self {
        RemediationConfig {
            enabled: true,
            dry_run: false,
            defaults: Guards::default(),
            diagnose: DiagnoseConfig {
                enabled: true,
                top: 10,
            },
            spool_dir: None,
            rules: Vec::new(),
        }
    }
}

impl RemediationConfig {
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

const SECS: fn(u64) -> Duration = Duration::from_secs;
const GUARD_KEYS: [&str; 8] = [
    "timeout",
    "cooldown",
    "max_runs",
    "window",
    "failures_to_trip",
    "output_cap",
    "verify_window",
    "run_as",
];

/// Read the `remediation:` section; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> RemediationConfig {
    let d = RemediationConfig::default();
    let s = r.section(
        v,
        path,
        &[
            "enabled",
            "dry_run",
            "defaults",
            "diagnose",
            "spool_dir",
            "rules",
        ],
    );
    let enabled = s.bool(r, "enabled", d.enabled);
    let dry_run = s.bool(r, "dry_run", d.dry_run);
    let spool_dir = s.opt_path(r, "spool_dir");
    if let Some(dir) = &spool_dir {
        if !dir.is_absolute() {
            r.error(&s.path("spool_dir"), "must be an absolute path");
        }
    }
    let ds = r.section(s.get("defaults"), &s.path("defaults"), &GUARD_KEYS);
    let defaults = guards(r, &ds, &d.defaults);
    let g = r.section(s.get("diagnose"), &s.path("diagnose"), &["enabled", "top"]);
    let diagnose = DiagnoseConfig {
        enabled: g.bool(r, "enabled", d.diagnose.enabled),
        top: g.int(r, "top", d.diagnose.top as u64, 1, 100) as usize,
    };
    let mut rules: Vec<Rule> = Vec::new();
    for (at, item) in s.list(r, "rules") {
        if let Some(rule) = parse_rule(r, item, &at, &defaults) {
            if rules.iter().any(|x| x.name == rule.name) {
                r.error(
                    &format!("{at}.name"),
                    format!("duplicate rule name {:?}", rule.name),
                );
            }
            rules.push(rule);
        }
    }
    RemediationConfig {
        enabled,
        dry_run,
        defaults,
        diagnose,
        spool_dir,
        rules,
    }
}

fn guards(r: &mut Reader, s: &Section, d: &Guards) -> Guards {
    let run_as = match s.get("run_as") {
        None => d.run_as.clone(),
        Some(Value::String(name)) => match resolve_user(name) {
            Ok(u) => Some(u),
            Err(e) => {
                r.error(&s.path("run_as"), e);
                None
            }
        },
        Some(v) => {
            r.error(
                &s.path("run_as"),
                format!(
                    "expected a user name or uid, got {}",
                    crate::config::reader::show(v)
                ),
            );
            None
        }
    };
    Guards {
        timeout: s.duration(
            r,
            "timeout",
            d.timeout,
            Duration::from_millis(100),
            SECS(3600),
        ),
        cooldown: s.duration(r, "cooldown", d.cooldown, SECS(0), SECS(30 * 86400)),
        max_runs: s.int(r, "max_runs", d.max_runs as u64, 1, 10_000) as u32,
        window: s.duration(r, "window", d.window, SECS(1), SECS(30 * 86400)),
        failures_to_trip: s.int(r, "failures_to_trip", d.failures_to_trip as u64, 1, 1000) as u32,
        output_cap: s.size(r, "output_cap", d.output_cap, 0, 64 << 20),
        verify_window: s.duration(
            r,
            "verify_window",
            d.verify_window,
            SECS(1),
            SECS(7 * 86400),
        ),
        run_as,
    }
}

fn parse_rule(r: &mut Reader, v: &Value, at: &str, defaults: &Guards) -> Option<Rule> {
    let mut keys = vec!["name", "match", "command", "env", "dry_run"];
    keys.extend_from_slice(&GUARD_KEYS);
    let s = r.section(Some(v), at, &keys);
    let name = s.string(r, "name", "");
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        r.error(
            &s.path("name"),
            format!("a rule needs a name of letters, digits, '-', '_' or '.', got {name:?}"),
        );
    }
    let m = r.section(
        s.get("match"),
        &s.path("match"),
        &["label", "severity", "class", "cause", "resource"],
    );
    let opt = |r: &mut Reader, key: &str, allowed: &[&str]| -> Option<String> {
        m.get(key)?;
        let v = m.one_of(r, key, allowed, "");
        (!v.is_empty()).then_some(v)
    };
    let labels: Vec<&str> = Label::ALL.iter().map(|l| l.as_str()).collect();
    let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let classes: Vec<&str> = Class::ALL.iter().map(|c| c.as_str()).collect();
    let label = opt(r, "label", &labels).and_then(|l| Label::parse(&l));
    let severity = opt(r, "severity", &severities).and_then(|l| Severity::parse(&l));
    let class = opt(r, "class", &classes).and_then(|l| Class::parse(&l));
    let matcher = Match {
        label,
        severity,
        class,
        cause: m.pattern(r, "cause", None),
        resource: m.pattern(r, "resource", None),
    };
    let command = command_of(r, &s);
    if command.is_empty() {
        r.error(
            &s.path("command"),
            "a rule needs a command: [/absolute/path, fixed, arguments]",
        );
    } else if let Err(e) = trust::check_executable(std::path::Path::new(&command[0])) {
        r.error(
            &format!("{}[0]", s.path("command")),
            format!("rule {name:?}: refusing {:?}: {e}", command[0]),
        );
    }
    let env = parse_env(r, &s);
    let guards = guards(r, &s, defaults);
    let dry_run = s.bool(r, "dry_run", false);
    Some(Rule {
        name,
        matcher,
        command,
        env,
        guards,
        dry_run,
    })
}

/// The argv: strings, or numbers written bare (`[..., --max-age-days, 14]`).
fn command_of(r: &mut Reader, s: &Section) -> Vec<String> {
    let at = s.path("command");
    match s.get("command") {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Value::String(x) if !x.is_empty() => Some(x.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => {
                    let shown = crate::config::reader::show(v);
                    r.error(
                        &format!("{at}[{i}]"),
                        format!("expected a non-empty string, got {shown}"),
                    );
                    None
                }
            })
            .collect(),
        Some(v) => {
            let shown = crate::config::reader::show(v);
            r.error(
                &at,
                format!("expected a list [/absolute/path, arguments...], got {shown}"),
            );
            Vec::new()
        }
    }
}

fn parse_env(r: &mut Reader, s: &Section) -> Vec<(String, String)> {
    let at = s.path("env");
    let map = match s.get("env") {
        None => return Vec::new(),
        Some(Value::Mapping(m)) => m,
        Some(v) => {
            r.error(
                &at,
                format!(
                    "expected a mapping of NAME: value, got {}",
                    crate::config::reader::show(v)
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let Some(k) = k.as_str() else {
            r.error(&at, "variable names must be strings");
            continue;
        };
        let path = format!("{at}.{k}");
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                let shown = crate::config::reader::show(other);
                r.error(&path, format!("expected a string, got {shown}"));
                continue;
            }
        };
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            r.error(&path, "not a valid environment variable name");
        } else if k.starts_with("ANOMALYD_") || k.starts_with("LD_") || k == "PATH" {
            r.error(
                &path,
                "reserved (ANOMALYD_* carry the incident; PATH and LD_* are fixed)",
            );
        } else {
            out.push((k.to_string(), value));
        }
    }
    out
}

/// A user name or numeric uid -> uid and primary gid, from the password database.
pub fn resolve_user(name: &str) -> Result<RunAs, String> {
    let name = name.trim();
    let entry = if let Ok(uid) = name.parse::<u32>() {
        passwd_by_uid(uid)
    } else {
        passwd_by_name(name)
    };
    entry.ok_or_else(|| format!("no such user {name:?}"))
}

fn passwd_by_name(name: &str) -> Option<RunAs> {
    let c = std::ffi::CString::new(name).ok()?;
    lookup(&|pw, buf, len, out| {
        // SAFETY: all pointers point to live buffers of the stated sizes.
        unsafe { libc::getpwnam_r(c.as_ptr(), pw, buf, len, out) }
    })
}

fn passwd_by_uid(uid: u32) -> Option<RunAs> {
    lookup(&|pw, buf, len, out| {
        // SAFETY: all pointers point to live buffers of the stated sizes.
        unsafe { libc::getpwuid_r(uid, pw, buf, len, out) }
    })
}

type PwCall<'a> =
    dyn Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> i32 + 'a;

fn lookup(call: &PwCall) -> Option<RunAs> {
    let mut pw = std::mem::MaybeUninit::<libc::passwd>::zeroed();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let rc = call(pw.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut out);
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: getpw*_r returned success and filled `pw`; its strings live in `buf`.
    let pw = unsafe { pw.assume_init() };
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }
        .to_string_lossy()
        .into_owned();
    Some(RunAs {
        name,
        uid: pw.pw_uid,
        gid: pw.pw_gid,
    })
}
