//! A model on day one, from the history the fleet's Prometheus already holds.
//!
//! `anomalyd train --prometheus URL --instance HOST:9100` and the `model.bootstrap`
//! config section (run at start when the state directory has no model yet) read a
//! host's node_exporter history, or anomalyd's own series for re-training a host's
//! model centrally, through `query_range` ([`client`]), turn it into rows of
//! anomalyd's features ([`mapping`]) and train the usual model on them. Features
//! Prometheus has no equivalent for are left out and learnt by the daemon itself at
//! its first retraining.
//!
//! The model records the span it was trained on (its training window), and that span
//! counts as history the host has been observed for ([`covered_history`]): the rule
//! for shortening a young model's probation, in `docs/bootstrap.md`.

pub mod client;
pub mod mapping;

use std::time::{Duration, Instant};

use serde_yaml::Value;

pub use client::{Auth, Endpoint, Tls, MAX_POINTS};
pub use mapping::Source;

use crate::collect::Collectors;
use crate::config::reader::Reader;
use crate::sample::Record;
use mapping::{alternation, escape, Rows, Vars, FAMILIES};

/// Why a model could not be had from Prometheus. Each names the server and what to
/// check; none carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot reach Prometheus at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error(
        "Prometheus at {url} did not answer in time (raise the timeout, or shorten the range)"
    )]
    Timeout { url: String },
    #[error("TLS with {url} failed: {message} (ca_file names the CA that signed its certificate)")]
    Tls { url: String, message: String },
    #[error("Prometheus at {url} refused the credentials (HTTP {status}): check username and password_file, or bearer_token_file")]
    Auth { url: String, status: u16 },
    #[error("{url} does not answer like Prometheus' HTTP API: {message}")]
    NotPrometheus { url: String, message: String },
    #[error("Prometheus at {url} refused a query: {message}")]
    Query { url: String, message: String },
    #[error("Prometheus at {url} knows no instance {instance:?}; it knows {known}")]
    UnknownInstance {
        url: String,
        instance: String,
        known: String,
    },
    #[error("Prometheus at {url} has no {what}")]
    Empty { url: String, what: String },
    #[error("{message}")]
    Config { message: String },
}

/// Which series to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceChoice {
    /// anomalyd's own series when the instance has them, else node_exporter's.
    #[default]
    Auto,
    Node,
    Anomalyd,
}

impl SourceChoice {
    pub fn parse(s: &str) -> Result<SourceChoice, String> {
        match s {
            "auto" => Ok(SourceChoice::Auto),
            "node" => Ok(SourceChoice::Node),
            "anomalyd" => Ok(SourceChoice::Anomalyd),
            other => Err(format!("{other:?} is not one of: auto, node, anomalyd")),
        }
    }
}

/// `model.bootstrap`, and what `anomalyd train --prometheus` takes from the command
/// line over it.
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapConfig {
    pub endpoint: Endpoint,
    /// The `instance` label of the host's series; `None`: `<host name>:9100`.
    pub instance: Option<String>,
    pub source: SourceChoice,
    /// How much history to read, ending now.
    pub range: Duration,
    /// Resolution of the rows (the `query_range` step).
    pub step: Duration,
    /// Window of the `rate()`s; `None`: twice the step, at least a minute.
    pub rate_window: Option<Duration>,
    /// Label matchers of the blackbox_exporter ICMP probes whose `instance` is one of
    /// the configured ping targets; `None`: no ping features from Prometheus.
    pub blackbox: Option<String>,
    /// The whole read may take this long (each request at most 30 s of it).
    pub timeout: Duration,
}

pub const DEFAULT_BLACKBOX: &str = "job=\"blackbox\"";

impl BootstrapConfig {
    /// The defaults, for a server at `url`.
    pub fn new(url: &str) -> BootstrapConfig {
        BootstrapConfig {
            endpoint: Endpoint {
                url: url.trim_end_matches('/').to_string(),
                ..Endpoint::default()
            },
            instance: None,
            source: SourceChoice::Auto,
            range: Duration::from_secs(14 * 86_400),
            step: Duration::from_secs(60),
            rate_window: None,
            blackbox: Some(DEFAULT_BLACKBOX.to_string()),
            timeout: Duration::from_secs(60),
        }
    }

    /// The rate window in force.
    pub fn rate_window(&self) -> Duration {
        self.rate_window
            .unwrap_or_else(|| (self.step * 2).max(Duration::from_secs(60)))
    }

    /// Everything that does not depend on the config reader: the URL, the step within
    /// the range, auth and TLS files. Each problem as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(e) = check_url(&self.endpoint.url) {
            out.push(("prometheus", format!("{:?}: {e}", self.endpoint.url)));
        }
        if self.step >= self.range {
            out.push(("step", "must be shorter than range".to_string()));
        }
        if let Some(w) = self.rate_window {
            if w < self.step {
                out.push(("rate_window", "must be at least the step".to_string()));
            }
        }
        if let Some(b) = &self.blackbox {
            if b.contains(['{', '}']) {
                out.push((
                    "blackbox",
                    format!("{b:?}: label matchers without braces, e.g. job=\"blackbox\""),
                ));
            }
        }
        match &self.endpoint.auth {
            Auth::None => {}
            Auth::Basic {
                username,
                password_file,
            } => {
                if username.is_empty() {
                    out.push(("username", "must not be empty".to_string()));
                }
                if let Err(e) = readable(password_file) {
                    out.push(("password_file", e));
                }
            }
            Auth::Bearer { token_file } => {
                if let Err(e) = readable(token_file) {
                    out.push(("bearer_token_file", e));
                }
            }
        }
        let tls = &self.endpoint.tls;
        for (key, file) in [
            ("ca_file", &tls.ca_file),
            ("cert_file", &tls.cert_file),
            ("key_file", &tls.key_file),
        ] {
            if let Some(p) = file {
                if let Err(e) = readable(p) {
                    out.push((key, e));
                }
            }
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            out.push((
                "cert_file",
                "a client certificate needs both cert_file and key_file".to_string(),
            ));
        }
        out
    }
}

fn readable(p: &std::path::Path) -> Result<(), String> {
    // Opened, not read: the error must never show what a secret file holds.
    std::fs::File::open(p)
        .map(|_| ())
        .map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// An `http://` or `https://` URL with a host, without credentials (they come from
/// files) or a query.
pub fn check_url(u: &str) -> Result<(), &'static str> {
    let uri: ureq::http::Uri = u.parse().map_err(|_| "not a valid URL")?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err("the scheme must be http or https");
    }
    let auth = uri.authority().ok_or("no host")?;
    if auth.as_str().contains('@') {
        return Err("credentials in the URL are not allowed (use username and password_file, or bearer_token_file)");
    }
    if auth.host().is_empty() {
        return Err("no host");
    }
    if uri.query().is_some() {
        return Err("a query string is not allowed here");
    }
    Ok(())
}

const KEYS: &[&str] = &[
    "prometheus",
    "instance",
    "source",
    "range",
    "step",
    "rate_window",
    "blackbox",
    "username",
    "password_file",
    "bearer_token_file",
    "ca_file",
    "cert_file",
    "key_file",
    "insecure_skip_verify",
    "timeout",
];

/// Read `model.bootstrap`; `None` when it is absent or `prometheus` is not set.
/// Problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> Option<BootstrapConfig> {
    const SECS: fn(u64) -> Duration = Duration::from_secs;
    let s = r.section(v, path, KEYS);
    let url = s.string(r, "prometheus", "");
    let d = BootstrapConfig::new(&url);
    let instance = s.string(r, "instance", "");
    let source = s.one_of(r, "source", &["auto", "node", "anomalyd"], "auto");
    let range = s.duration(r, "range", d.range, SECS(60), SECS(3650 * 86_400));
    let step = s.duration(r, "step", d.step, Duration::from_millis(10), SECS(86_400));
    let rate_window = s.get("rate_window").map(|_| {
        s.duration(
            r,
            "rate_window",
            d.rate_window(),
            Duration::from_millis(10),
            SECS(86_400),
        )
    });
    let blackbox = s.string(r, "blackbox", DEFAULT_BLACKBOX);
    let username = s.string(r, "username", "");
    let password_file = s.opt_path(r, "password_file");
    let token_file = s.opt_path(r, "bearer_token_file");
    let auth = match (username.is_empty(), password_file, token_file) {
        (true, None, None) => Auth::None,
        (false, Some(password_file), None) => Auth::Basic {
            username,
            password_file,
        },
        (true, None, Some(token_file)) => Auth::Bearer { token_file },
        (_, _, Some(_)) => {
            r.error(
                &s.path("bearer_token_file"),
                "set either username and password_file, or bearer_token_file, not both",
            );
            Auth::None
        }
        (false, None, None) => {
            r.error(
                &s.path("password_file"),
                "missing: username needs a password_file",
            );
            Auth::None
        }
        (true, Some(_), None) => {
            r.error(
                &s.path("username"),
                "missing: password_file needs a username",
            );
            Auth::None
        }
    };
    let tls = Tls {
        ca_file: s.opt_path(r, "ca_file"),
        cert_file: s.opt_path(r, "cert_file"),
        key_file: s.opt_path(r, "key_file"),
        insecure_skip_verify: s.bool(r, "insecure_skip_verify", false),
    };
    let timeout = s.duration(r, "timeout", d.timeout, SECS(1), SECS(3600));
    // Off unless a URL is given (the shipped file lists every key with prometheus
    // null).
    if url.is_empty() {
        return None;
    }
    let b = BootstrapConfig {
        endpoint: Endpoint {
            url: url.trim_end_matches('/').to_string(),
            auth,
            tls,
        },
        instance: (!instance.is_empty()).then_some(instance),
        source: SourceChoice::parse(&source).unwrap_or_default(),
        range,
        step,
        rate_window,
        blackbox: (!blackbox.is_empty()).then_some(blackbox),
        timeout,
    };
    for (key, message) in b.problems() {
        r.error(&s.path(key), message);
    }
    Some(b)
}

/// What was read: the rows, where they came from, and what could not be mapped.
#[derive(Debug)]
pub struct Fetched {
    pub rows: Vec<Record>,
    pub source: Source,
    /// Feature families with data, and those without (learnt locally later).
    pub mapped: Vec<&'static str>,
    pub unmapped: Vec<&'static str>,
    /// HTTP requests made (pages included).
    pub requests: usize,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Read `instance`'s history from the `range` before `end_ms` and map it to
/// anomalyd's features, with the collectors' filters and ping targets.
pub fn fetch(
    b: &BootstrapConfig,
    instance: &str,
    end_ms: i64,
    collectors: &Collectors,
) -> Result<Fetched, BootstrapError> {
    let deadline = Instant::now() + b.timeout;
    let mut client = client::Client::new(
        &b.endpoint,
        b.timeout.min(Duration::from_secs(30)),
        Some(deadline),
    )?;
    let step_ms = (b.step.as_millis() as i64).max(1);
    // On the step's grid, so pages and retries ask for the same timestamps.
    let end_ms = end_ms - end_ms.rem_euclid(step_ms);
    let start_ms = end_ms - b.range.as_millis() as i64;
    let matcher = format!("instance=\"{}\"", escape(instance));
    let source = detect(&mut client, b, instance, &matcher, start_ms, end_ms)?;
    let vars = Vars {
        instance: matcher,
        window: format!("{}ms", b.rate_window().as_millis()),
        blackbox: b.blackbox.clone(),
        targets: (!collectors.ping.targets.is_empty())
            .then(|| alternation(&collectors.ping.targets)),
    };
    let resolve = |target: &str| {
        crate::collect::ping::resolve(target)
            .ok()
            .map(|a| a.ip().to_string())
    };
    let mut rows = Rows::default();
    let mut unmapped = Vec::new();
    for family in FAMILIES {
        let Some(query) = family.query(source, &vars) else {
            unmapped.push(family.name);
            continue;
        };
        let series = client.query_range(&query, start_ms, end_ms, b.step)?;
        let before = rows.mapped.len();
        rows.add(family, source, &series, collectors, &resolve);
        if rows.mapped.len() == before {
            unmapped.push(family.name);
        }
    }
    let mapped = rows.mapped.clone();
    let records = rows.records();
    if records.is_empty() {
        return Err(BootstrapError::Empty {
            url: b.endpoint.url.clone(),
            what: format!(
                "{} feature series for instance {instance:?} {} (every series was filtered out by the collectors' settings)",
                source.name(),
                between(start_ms, end_ms)
            ),
        });
    }
    Ok(Fetched {
        rows: records,
        source,
        mapped,
        unmapped,
        requests: client.requests,
        start_ms,
        end_ms,
    })
}

/// Which exporter the instance's series come from (anomalyd's own first), or a
/// clear error: an instance Prometheus does not know, or no usable series in range.
fn detect(
    client: &mut client::Client,
    b: &BootstrapConfig,
    instance: &str,
    matcher: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Source, BootstrapError> {
    let probe = format!(
        "{{__name__=~\"anomalyd_build_info|node_uname_info|node_load1|node_memory_MemTotal_bytes\",{matcher}}}"
    );
    let names: Vec<String> = client
        .series(&probe, start_ms, end_ms)?
        .into_iter()
        .filter_map(|l| l.get("__name__").cloned())
        .collect();
    let has = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
    let found = match b.source {
        SourceChoice::Auto if has("anomalyd_") => Some(Source::Anomalyd),
        SourceChoice::Auto | SourceChoice::Node if has("node_") => Some(Source::Node),
        SourceChoice::Anomalyd if has("anomalyd_") => Some(Source::Anomalyd),
        _ => None,
    };
    if let Some(s) = found {
        return Ok(s);
    }
    let url = b.endpoint.url.clone();
    let known = client.label_values("instance")?;
    if !known.iter().any(|k| k == instance) {
        return Err(BootstrapError::UnknownInstance {
            url,
            instance: instance.to_string(),
            known: listing(&known),
        });
    }
    let wanted = match b.source {
        SourceChoice::Auto => "node_exporter or anomalyd",
        SourceChoice::Node => "node_exporter",
        SourceChoice::Anomalyd => "anomalyd",
    };
    let hint = if names.is_empty() {
        // Known at some time, but nothing in range, or only other exporters' series.
        let any = client.series(&format!("{{{matcher}}}"), start_ms, end_ms)?;
        if any.is_empty() {
            " (it has series, but none in this range)".to_string()
        } else {
            let mut jobs: Vec<String> = any.iter().filter_map(|l| l.get("job").cloned()).collect();
            jobs.sort();
            jobs.dedup();
            format!(" (its series in range are of job {})", listing(&jobs))
        }
    } else {
        format!(" (it has {})", listing(&names))
    };
    Err(BootstrapError::Empty {
        url,
        what: format!(
            "{wanted} series for instance {instance:?} {}{hint}",
            between(start_ms, end_ms)
        ),
    })
}

fn between(start_ms: i64, end_ms: i64) -> String {
    format!(
        "between {} and {}",
        crate::text::fmt_time(start_ms),
        crate::text::fmt_time(end_ms)
    )
}

/// At most ten names, quoted, and how many more.
fn listing(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let mut sorted = names.to_vec();
    sorted.sort();
    let shown: Vec<String> = sorted.iter().take(10).map(|n| format!("{n:?}")).collect();
    let more = sorted.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Every `n`-th row so that at most `max` remain, spread over the whole range (as the
/// history's `training_rows` does).
pub fn spread(rows: Vec<Record>, max: usize) -> Vec<Record> {
    let n = rows.len();
    if n <= max || max == 0 {
        return rows;
    }
    let keep: std::collections::HashSet<usize> = (0..max).map(|i| i * n / max).collect();
    rows.into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, r)| r)
        .collect()
}

/// How much history a model stands for: the span of its training rows (0 without
/// timestamps). The rule for a young model's probation: the history the host has been
/// observed for is the longer of its own stored history and this span, so a model
/// bootstrapped from 14 days of Prometheus history has served a 24 h probation at
/// once, and one trained on 6 h of it shortens the probation by those 6 h.
pub fn covered_history(window: &super::TrainingWindow) -> Duration {
    match (window.first_ms, window.last_ms) {
        (Some(a), Some(b)) if b > a => Duration::from_millis((b - a) as u64),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TrainingWindow;

    fn parse(yaml: &str) -> (Option<BootstrapConfig>, Vec<String>) {
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        let mut r = Reader::default();
        let b = parse_config(&mut r, Some(&v), "model.bootstrap");
        (b, r.errors)
    }

    #[test]
    fn off_unless_a_url_is_given() {
        assert_eq!(parse("prometheus: null\nrange: 14d\n"), (None, vec![]));
        assert_eq!(parse("{}").0, None);
        let (b, e) = parse("prometheus: http://127.0.0.1:9090/\n");
        assert!(e.is_empty(), "{e:?}");
        let b = b.expect("on");
        assert_eq!(b, BootstrapConfig::new("http://127.0.0.1:9090"));
        assert_eq!(b.rate_window(), Duration::from_secs(120));
    }

    #[test]
    fn every_problem_with_its_path() {
        let (_, e) = parse(
            "prometheus: \"http://user:pw@prom:9090\"\nstep: 12h\nrange: 6h\nusername: bob\n\
             bearer_token_file: /nonexistent/token\ncert_file: /nonexistent/cert\n\
             blackbox: '{job=\"x\"}'\nsource: thanos\n",
        );
        let want = [
            "model.bootstrap.source: \"thanos\" is not one of: auto, node, anomalyd",
            "model.bootstrap.bearer_token_file: set either username and password_file, or bearer_token_file, not both",
            "model.bootstrap.prometheus: \"http://user:pw@prom:9090\": credentials in the URL are not allowed",
            "model.bootstrap.step: must be shorter than range",
            "model.bootstrap.blackbox: \"{job=\\\"x\\\"}\": label matchers without braces",
            "model.bootstrap.cert_file: cannot read /nonexistent/cert",
            "model.bootstrap.cert_file: a client certificate needs both cert_file and key_file",
        ];
        for w in want {
            assert!(
                e.iter().any(|x| x.starts_with(w)),
                "missing {w:?} in {e:#?}"
            );
        }
        let (_, e) = parse("prometheus: http://p:9090\nusername: bob\n");
        assert_eq!(
            e,
            ["model.bootstrap.password_file: missing: username needs a password_file"]
        );
        let (_, e) = parse("prometheus: http://p:9090\nstep: 1m\nrate_window: 30s\n");
        assert_eq!(
            e,
            ["model.bootstrap.rate_window: must be at least the step"]
        );
    }

    #[test]
    fn spread_keeps_the_whole_range() {
        let rows: Vec<Record> = (0..10)
            .map(|i| Record {
                timestamp_ms: Some(i),
                values: vec![],
            })
            .collect();
        let kept: Vec<i64> = spread(rows.clone(), 4)
            .iter()
            .filter_map(|r| r.timestamp_ms)
            .collect();
        assert_eq!(kept, [0, 2, 5, 7]);
        assert_eq!(spread(rows, 20).len(), 10);
    }

    #[test]
    fn covered_history_is_the_training_span() {
        let w = |a, b| TrainingWindow {
            first_ms: a,
            last_ms: b,
            rows: 10,
        };
        assert_eq!(
            covered_history(&w(Some(0), Some(14 * 86_400_000))),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(covered_history(&w(None, None)), Duration::ZERO);
        assert_eq!(covered_history(&w(Some(5), Some(5))), Duration::ZERO);
    }

    #[test]
    fn listing_is_short() {
        let many: Vec<String> = (0..12).map(|i| format!("h{i:02}:9100")).collect();
        assert_eq!(listing(&many[..2]), "\"h00:9100\", \"h01:9100\"");
        assert!(listing(&many).ends_with("\"h09:9100\" and 2 more"));
        assert_eq!(listing(&[]), "none");
    }
}
