//! External ticket sinks: where a ticket goes besides the local store.
//!
//! Each configured sink (any number at once) gets every ticket change as a
//! [`Delivery`] through the outbox (`tickets/outbox.rs`), which retries with backoff and
//! keeps, per (sink, fingerprint), the sink's [`SinkState`]: the external reference of
//! the ticket it made (GitHub issue number, Jira key, Alertmanager labels, ...) and when
//! it was resolved. That state is how a problem that comes back within the sink's
//! `reopen_window` reopens (or comments on) the same external ticket instead of opening
//! a new one.
//!
//! One file per sink; the list of sink types is [`SinkKind`] and [`build`], nothing else.
//!
//! Delivery guarantees are at-least-once on the wire, made exactly-once in effect by
//! idempotency keys and look-ups; each sink's file says precisely what it gets.

pub mod alertmanager;
pub mod github;
mod http;
pub mod jira;
pub mod smtp;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde_yaml::Value;

use crate::config::reader::{show, Reader, Section};
use crate::tickets::Delivery;

/// A password or token read from a file or an environment variable at config load.
/// Its `Debug` never shows the value, so neither logs nor error messages can leak it.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One entry of `tickets.sinks`.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// Unique; used as the outbox key and the `sink` label of metrics.
    pub name: String,
    /// A problem that comes back (same fingerprint) within this time after its
    /// external ticket was resolved reopens or comments on that ticket.
    pub reopen_window: Duration,
    /// First retry delay after a failed delivery; doubles per attempt (with jitter)...
    pub retry_initial: Duration,
    /// ...up to this.
    pub retry_max: Duration,
    /// Whole-request timeout (connect has its own, shorter one).
    pub timeout: Duration,
    pub kind: SinkKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    Webhook(webhook::WebhookConfig),
    Alertmanager(alertmanager::AlertmanagerConfig),
    Github(github::GithubConfig),
    Jira(jira::JiraConfig),
    Smtp(smtp::SmtpConfig),
}

impl SinkKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Webhook(_) => "webhook",
            SinkKind::Alertmanager(_) => "alertmanager",
            SinkKind::Github(_) => "github",
            SinkKind::Jira(_) => "jira",
            SinkKind::Smtp(_) => "smtp",
        }
    }
}

/// What a sink remembers about one problem (fingerprint), kept in the outbox database.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SinkState {
    pub fingerprint: String,
    /// Our ticket that created the external one.
    pub ticket_id: String,
    /// The sink's reference: GitHub issue number, Jira key, webhook ticket id, ...
    pub external_ref: String,
    /// The external ticket is open (for Alertmanager: the alert is firing and is
    /// re-sent every `resend_interval`).
    pub open: bool,
    pub resolved_ms: Option<i64>,
    /// When the sink last sent something for it (Alertmanager re-sends from this).
    pub last_sent_ms: i64,
    /// Sink-specific data, e.g. the Alertmanager alert to re-send.
    pub data: serde_json::Value,
}

/// One delivery attempt as a sink sees it.
pub struct Attempt<'a> {
    pub delivery: &'a Delivery,
    /// The sink's state for this fingerprint, if it has delivered anything for it.
    pub previous: Option<&'a SinkState>,
    /// `previous` names an external ticket that is open, or was resolved within the
    /// reopen window: reuse it (reopen / comment) rather than create a new one.
    pub reuse: bool,
    /// An earlier attempt of this very delivery may have reached the sink (the daemon
    /// died, or the connection broke, after the request was sent). Sinks that create
    /// things look them up by the delivery id before creating them again.
    pub in_doubt: bool,
    pub now_ms: i64,
}

/// Why a delivery failed, and what the outbox should do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkError {
    /// Never contains a secret.
    pub message: String,
    /// The sink as a whole is unavailable (connection refused, 5xx, 429): hold back
    /// all of its deliveries, not just this one.
    pub sink_down: bool,
    /// The request may have been processed (sent, then the connection broke or a 5xx
    /// came back): the next attempt is "in doubt" and must look before creating.
    pub maybe_delivered: bool,
}

impl SinkError {
    /// The sink did not get the request.
    pub fn unreachable(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            sink_down: true,
            maybe_delivered: false,
        }
    }
    /// The sink refused this delivery (4xx): retry it later on its own.
    pub fn rejected(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            sink_down: false,
            maybe_delivered: false,
        }
    }
    /// The outcome is unknown.
    pub fn in_doubt(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            sink_down: true,
            maybe_delivered: true,
        }
    }
    /// After a first step succeeded, a failure of the next one leaves the delivery half
    /// done: the retry must look before repeating the first step.
    pub fn half_done(mut self) -> Self {
        self.maybe_delivered = true;
        self
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A configured sink, ready to deliver. Calls are blocking: they run on the outbox's
/// own thread, never on the sampling path.
pub trait Sink: Send {
    /// Deliver one ticket change. `Ok(Some(state))` replaces the sink's state for the
    /// fingerprint; `Ok(None)` leaves it as it is (nothing to do, e.g. a resolve for a
    /// ticket this sink never had).
    fn deliver(&mut self, a: &Attempt) -> Result<Option<SinkState>, SinkError>;

    /// How often open tickets must be sent again (Alertmanager: alerts without a
    /// fresh POST are resolved by its `resolve_timeout`). `None`: never.
    fn resend_interval(&self) -> Option<Duration> {
        None
    }

    /// Send `open` again (each is a state with `open == true` whose `last_sent_ms` is
    /// older than the resend interval).
    fn resend(&mut self, _open: &[SinkState], _now_ms: i64) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Build the sink for a config.
pub fn build(c: &SinkConfig) -> Result<Box<dyn Sink>, String> {
    Ok(match &c.kind {
        SinkKind::Webhook(w) => Box::new(webhook::Webhook::new(c, w.clone())?),
        SinkKind::Alertmanager(a) => Box::new(alertmanager::Alertmanager::new(c, a.clone())?),
        SinkKind::Github(g) => Box::new(github::Github::new(c, g.clone())?),
        SinkKind::Jira(j) => Box::new(jira::Jira::new(c, j.clone())?),
        SinkKind::Smtp(s) => Box::new(smtp::Smtp::new(c, s.clone())?),
    })
}

const COMMON_KEYS: &[&str] = &[
    "name",
    "type",
    "reopen_window",
    "retry_initial",
    "retry_max",
    "timeout",
];

/// Read the `sinks:` list of the `tickets:` section (`section` is that section; the
/// ticket store's `tickets::parse_config` calls this). Every problem goes to `r` with
/// its YAML path (`tickets.sinks[1].url: ...`). Secrets are read here, at load: a
/// missing file or variable is a config error naming the file or variable, never the
/// value. No `sinks` key means no external sinks.
pub fn parse_sinks(r: &mut Reader, section: &Section) -> Vec<SinkConfig> {
    let mut out: Vec<SinkConfig> = Vec::new();
    // All names, also of sinks with errors, so a duplicate is reported either way.
    let mut names: Vec<String> = Vec::new();
    for (path, v) in section.list(r, "sinks") {
        let ty = match v.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(other) => {
                r.error(
                    &format!("{path}.type"),
                    format!("expected a sink type, got {}", show(other)),
                );
                continue;
            }
            None => {
                r.error(
                    &path,
                    "missing \"type\" (webhook, alertmanager, github, jira or smtp)",
                );
                continue;
            }
        };
        let specific: &[&str] = match ty.as_str() {
            "webhook" => webhook::KEYS,
            "alertmanager" => alertmanager::KEYS,
            "github" => github::KEYS,
            "jira" => jira::KEYS,
            "smtp" => smtp::KEYS,
            _ => {
                r.error(
                    &format!("{path}.type"),
                    format!("{ty:?} is not one of: webhook, alertmanager, github, jira, smtp"),
                );
                continue;
            }
        };
        let allowed: Vec<&str> = COMMON_KEYS.iter().chain(specific).copied().collect();
        let s = r.section(Some(v), &path, &allowed);
        let errors_before = r.errors.len();
        let name = s.string(r, "name", "");
        if name.is_empty() {
            r.error(&s.path("name"), "missing: every sink needs a unique name");
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || name.len() > 64
        {
            r.error(
                &s.path("name"),
                format!("{name:?}: use letters, digits, '_' and '-' (at most 64)"),
            );
        } else if names.contains(&name) {
            r.error(&s.path("name"), format!("{name:?} is used by another sink"));
        }
        names.push(name.clone());
        let reopen_window = s.duration(
            r,
            "reopen_window",
            Duration::from_secs(3600),
            Duration::ZERO,
            Duration::from_secs(365 * 86400),
        );
        let retry_initial = s.duration(
            r,
            "retry_initial",
            Duration::from_secs(1),
            Duration::from_millis(10),
            Duration::from_secs(3600),
        );
        let retry_max = s.duration(
            r,
            "retry_max",
            Duration::from_secs(300),
            Duration::from_millis(10),
            Duration::from_secs(86400),
        );
        if retry_max < retry_initial {
            r.error(
                &s.path("retry_max"),
                "must be at least retry_initial".to_string(),
            );
        }
        let timeout = s.duration(
            r,
            "timeout",
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_secs(300),
        );
        let kind = match ty.as_str() {
            "webhook" => SinkKind::Webhook(webhook::parse(r, &s)),
            "alertmanager" => SinkKind::Alertmanager(alertmanager::parse(r, &s)),
            "github" => SinkKind::Github(github::parse(r, &s)),
            "jira" => SinkKind::Jira(jira::parse(r, &s)),
            _ => SinkKind::Smtp(smtp::parse(r, &s)),
        };
        if r.errors.len() == errors_before {
            out.push(SinkConfig {
                name,
                reopen_window,
                retry_initial,
                retry_max,
                timeout,
                kind,
            });
        }
    }
    out
}

/// An `http://` or `https://` URL with a host and no credentials in it (those come
/// from files or the environment), without a trailing `/`.
pub(crate) fn url(r: &mut Reader, s: &Section, key: &str, required: bool, default: &str) -> String {
    let u = s.string(r, key, default);
    if u.is_empty() {
        if required {
            r.error(&s.path(key), "missing: an http:// or https:// URL");
        }
        return u;
    }
    if let Err(e) = check_url(&u) {
        r.error(&s.path(key), format!("{u:?}: {e}"));
    }
    u.trim_end_matches('/').to_string()
}

pub(crate) fn check_url(u: &str) -> Result<(), &'static str> {
    let uri: ureq::http::Uri = u.parse().map_err(|_| "not a valid URL")?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err("the scheme must be http or https"),
    }
    let auth = uri.authority().ok_or("no host")?;
    if auth.as_str().contains('@') {
        return Err("credentials in the URL are not allowed (use the *_file or *_env keys)");
    }
    if auth.host().is_empty() {
        return Err("no host");
    }
    if uri.query().is_some() {
        return Err("a query string is not allowed here");
    }
    Ok(())
}

/// A secret from `<prefix>_file` or `<prefix>_env` (exactly one when `required`).
pub(crate) fn secret(r: &mut Reader, s: &Section, prefix: &str, required: bool) -> Option<Secret> {
    let file_key = format!("{prefix}_file");
    let env_key = format!("{prefix}_env");
    let file = s.opt_path(r, &file_key);
    let env = s.string(r, &env_key, "");
    match (file, env.is_empty()) {
        (Some(_), false) => {
            r.error(
                &s.path(&file_key),
                format!("set either {file_key} or {env_key}, not both"),
            );
            None
        }
        (Some(p), true) => read_secret_file(&p)
            .map_err(|e| r.error(&s.path(&file_key), e))
            .ok(),
        (None, false) => match std::env::var(&env) {
            Ok(v) if !v.trim().is_empty() => Some(Secret(v.trim().to_string())),
            Ok(_) => {
                r.error(
                    &s.path(&env_key),
                    format!("environment variable {env} is empty"),
                );
                None
            }
            Err(_) => {
                r.error(
                    &s.path(&env_key),
                    format!("environment variable {env} is not set"),
                );
                None
            }
        },
        (None, true) => {
            if required {
                r.error(
                    &s.path(&file_key),
                    format!(
                        "missing: set {file_key} (a file holding it) or {env_key} (a variable)"
                    ),
                );
            }
            None
        }
    }
}

fn read_secret_file(p: &Path) -> Result<Secret, String> {
    // The error names the file, never its content.
    let text = crate::config::file::read_text(p, crate::config::file::SMALL)
        .map_err(|e| format!("cannot read secret file {}: {e}", p.display()))?;
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("secret file {} is empty", p.display()));
    }
    Ok(Secret(t.to_string()))
}

/// A mapping of label names to string values (`labels: {team: infra}`).
pub(crate) fn string_map(r: &mut Reader, s: &Section, key: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match s.get(key) {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    (Some(k), Value::String(v)) => {
                        out.insert(k.to_string(), v.clone());
                    }
                    (Some(k), other) => r.error(
                        &format!("{}.{k}", s.path(key)),
                        format!("expected a string, got {}", show(other)),
                    ),
                    (None, _) => r.error(&s.path(key), "keys must be strings"),
                }
            }
        }
        Some(v) => r.error(
            &s.path(key),
            format!("expected a mapping of names to strings, got {}", show(v)),
        ),
    }
    out
}

/// The body of a ticket as sinks show it: the report plus a hidden marker carrying
/// the delivery id and fingerprint, which the in-doubt look-ups search for.
pub(crate) fn marker(d: &Delivery) -> String {
    format!(
        "<!-- anomalyd delivery={} fingerprint={} -->",
        d.id, d.incident.fingerprint
    )
}

/// One of the items of the JSON list `list` (issues, comments) has `mark` in its body.
pub(crate) fn has_marker(list: &serde_json::Value, mark: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .any(|c| c["body"].as_str().is_some_and(|b| b.contains(mark)))
}

/// The `labels` of an issue tracker sink (GitHub, Jira); `[anomalyd]` when not set.
pub(crate) fn issue_labels(r: &mut Reader, s: &Section) -> Vec<String> {
    if s.get("labels").is_some() {
        s.strings(r, "labels")
    } else {
        vec!["anomalyd".to_string()]
    }
}

/// What an issue tracker sink (GitHub, Jira) remembers after delivering `a`: the
/// issue `external_ref`, made for `first_ticket`, is now `open` or closed.
pub(crate) fn issue_state(
    a: &Attempt,
    external_ref: String,
    first_ticket: String,
    open: bool,
) -> SinkState {
    let d = a.delivery;
    SinkState {
        fingerprint: d.incident.fingerprint.clone(),
        ticket_id: first_ticket,
        external_ref,
        open,
        resolved_ms: (!open).then_some(d.at_ms),
        last_sent_ms: a.now_ms,
        data: serde_json::Value::Null,
    }
}

/// Short stable hash of a fingerprint, for labels that must be short and plain.
pub(crate) fn fingerprint_tag(fp: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(fp.as_bytes());
    h.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The labels an issue tracker (GitHub, Jira) gets besides its configured ones: the
/// ticket's type, severity and host, as `type:storage`, `severity:P2`,
/// `host:web1`, so a tracker's board can be filtered by them. Kept to what both
/// take: no white space or commas, at most 50 characters (GitHub's limit).
pub(crate) fn evidence_labels(d: &Delivery) -> Vec<String> {
    let i = &d.incident;
    [
        ("type", i.label.as_str().to_string()),
        ("severity", i.severity.as_str().to_string()),
        ("host", i.host.clone()),
    ]
    .into_iter()
    .map(|(k, v)| {
        let v: String = v
            .chars()
            .map(|c| {
                if c.is_whitespace() || c == ',' {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        format!("{k}:{v}").chars().take(50).collect()
    })
    .collect()
}

/// `configured` followed by the delivery's [`evidence_labels`] it does not have yet.
pub(crate) fn all_labels(configured: &[String], d: &Delivery) -> Vec<String> {
    let mut out = configured.to_vec();
    for l in evidence_labels(d) {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// `text` cut to at most `max` characters (Unicode scalar values, as GitHub and Jira
/// count), at a line break when one is near, with a line saying so and where the
/// whole report is: a delivery is never refused for being too long.
pub(crate) fn cut(text: &str, max: usize, ticket_id: &str) -> String {
    let total = text.chars().count();
    if total <= max {
        return text.to_string();
    }
    let note = format!(
        "\n\n[... cut: the report has {total} characters, more than this tracker takes; \
         the whole report: `anomalyd tickets show {}`]",
        crate::text::plain(ticket_id)
    );
    let keep = max.saturating_sub(note.chars().count());
    let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    let head = &text[..end];
    // Back to the last line break if it is within the last tenth: no half a line.
    let head = match head.rfind('\n') {
        Some(i) if i >= end - end / 10 => &head[..i],
        _ => head,
    };
    format!("{head}{note}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_marks_long_text_within_the_limit() {
        assert_eq!(cut("short", 10, "INC-1"), "short");
        let long = "é line of text\n".repeat(10_000);
        let c = cut(&long, 65_536, "INC-7");
        assert!(c.chars().count() <= 65_536, "{}", c.chars().count());
        assert!(c.chars().count() > 60_000);
        assert!(c.ends_with(
            "[... cut: the report has 150000 characters, more than this tracker takes; \
             the whole report: `anomalyd tickets show INC-7`]"
        ));
        // Cut at a line break: the last kept line is whole.
        let head = c.split("\n\n[... cut").next().unwrap_or("");
        assert!(
            head.ends_with("é line of text"),
            "{:?}",
            &head[head.len() - 20..]
        );
    }
}
