//! GitHub Issues (REST API, `X-GitHub-Api-Version: 2022-11-28`).
//!
//! - open: `POST /repos/{owner}/{repo}/issues {title, body, labels}`; the issue number
//!   is the sink's external ref for the fingerprint;
//! - reopen within the window: `PATCH /repos/{owner}/{repo}/issues/{n} {state: open,
//!   state_reason: reopened}`
//!   and a comment; update: `POST .../issues/{n}/comments {body}`;
//! - resolve: a comment, then `PATCH .../issues/{n} {state: closed, state_reason: completed}`;
//! - an update also rewrites the issue's body and labels (`PATCH .../issues/{n} {body,
//!   labels}`), so the issue shows the ticket's current report: the diagnosis and the
//!   remediation results arrive after the ticket opened.
//!
//! Labels: the configured ones, then `type:<label>`, `severity:<P0..P4>` and
//! `host:<name>`. Bodies and comments are cut to GitHub's 65,536 characters, with a
//! line saying so (see `sinks::cut`).
//!
//! Every body ends with a hidden marker `<!-- anomalyd delivery=<id> fingerprint=<fp> -->`.
//! Guarantee: exactly-once in effect. When an attempt is in doubt (an earlier one may
//! have reached GitHub: `kill -9` or a lost answer), the sink first lists the repo's
//! issues (newest first, by the configured label) or the issue's comments and looks for
//! the marker of this delivery; it creates only if none is found. State changes
//! (PATCH) are idempotent. Limit: the look-up reads the newest 100 issues / comments.

use serde_json::{json, Value};

use super::http::Http;
use super::{
    all_labels, cut, has_marker, issue_state, marker, Attempt, Secret, Sink, SinkConfig, SinkError,
    SinkState,
};
use crate::config::reader::{Reader, Section};
use crate::tickets::DeliveryKind;

/// GitHub's limit for an issue's body and a comment, in characters.
pub const MAX_BODY: usize = 65_536;

/// `text` and the delivery's marker, within [`MAX_BODY`].
fn with_marker(text: &str, mark: &str, ticket_id: &str) -> String {
    let room = MAX_BODY.saturating_sub(mark.chars().count() + 2);
    format!("{}\n\n{mark}", cut(text, room, ticket_id))
}

pub(crate) const KEYS: &[&str] = &["api_url", "repo", "token_file", "token_env", "labels"];

#[derive(Debug, Clone, PartialEq)]
pub struct GithubConfig {
    pub api_url: String,
    /// `owner/name`.
    pub repo: String,
    pub token: Option<Secret>,
    pub labels: Vec<String>,
}

pub(crate) fn parse(r: &mut Reader, s: &Section) -> GithubConfig {
    let repo = s.string(r, "repo", "");
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match repo.split_once('/') {
        Some((o, n)) if ok(o) && ok(n) => {}
        _ => r.error(&s.path("repo"), format!("{repo:?} is not \"owner/name\"")),
    }
    let labels = super::issue_labels(r, s);
    GithubConfig {
        api_url: super::url(r, s, "api_url", true, "https://api.github.com"),
        repo,
        token: super::secret(r, s, "token", true),
        labels,
    }
}

pub struct Github {
    config: GithubConfig,
    http: Http,
    auth: String,
}

impl Github {
    pub fn new(c: &SinkConfig, g: GithubConfig) -> Result<Self, String> {
        let token = g.token.as_ref().ok_or("no token")?;
        Ok(Github {
            auth: format!("Bearer {}", token.expose()),
            config: g,
            http: Http::new(c.timeout),
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, SinkError> {
        let url = format!("{}/repos/{}{path}", self.config.api_url, self.config.repo);
        let h = [
            ("Accept", "application/vnd.github+json"),
            ("Authorization", self.auth.as_str()),
            ("X-GitHub-Api-Version", "2022-11-28"),
        ];
        self.http.send_json(method, &url, &h, body, what)?.json()
    }

    fn comment(
        &self,
        n: &str,
        text: &str,
        mark: &str,
        look: bool,
        ticket_id: &str,
    ) -> Result<(), SinkError> {
        if look {
            let list = self.call(
                "GET",
                &format!("/issues/{n}/comments?per_page=100"),
                None,
                "list comments",
            )?;
            if has_marker(&list, mark) {
                return Ok(());
            }
        }
        let body = json!({ "body": with_marker(text, mark, ticket_id) });
        self.call(
            "POST",
            &format!("/issues/{n}/comments"),
            Some(&body),
            "comment",
        )
        .map(|_| ())
    }

    fn set_state(&self, n: &str, open: bool) -> Result<(), SinkError> {
        let body = if open {
            json!({"state": "open", "state_reason": "reopened"})
        } else {
            json!({"state": "closed", "state_reason": "completed"})
        };
        let what = if open { "reopen issue" } else { "close issue" };
        self.call("PATCH", &format!("/issues/{n}"), Some(&body), what)
            .map(|_| ())
    }

    /// The issue's body and labels as the ticket is now (idempotent).
    fn rewrite(&self, n: &str, a: &Attempt, mark: &str) -> Result<(), SinkError> {
        let d = a.delivery;
        let body = json!({
            "body": with_marker(&d.body, mark, &d.ticket_id),
            "labels": all_labels(&self.config.labels, d),
        });
        self.call(
            "PATCH",
            &format!("/issues/{n}"),
            Some(&body),
            "update issue",
        )
        .map(|_| ())
    }

    fn create(&self, a: &Attempt, mark: &str) -> Result<String, SinkError> {
        let d = a.delivery;
        if a.in_doubt {
            let mut q = "/issues?state=all&sort=created&direction=desc&per_page=100".to_string();
            if let Some(l) = self.config.labels.first() {
                q.push_str(&format!("&labels={}", super::jira::encode(l)));
            }
            let list = self.call("GET", &q, None, "look up issue")?;
            if let Some(i) = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["body"].as_str().is_some_and(|b| b.contains(mark)))
            {
                return number(i);
            }
        }
        let body = json!({
            "title": format!("{} ({})", d.incident.title, d.ticket_id),
            "body": with_marker(&d.body, mark, &d.ticket_id),
            "labels": all_labels(&self.config.labels, d),
        });
        let created = self.call("POST", "/issues", Some(&body), "create issue")?;
        number(&created)
    }
}

fn number(i: &Value) -> Result<String, SinkError> {
    i["number"]
        .as_u64()
        .map(|n| n.to_string())
        // After a 2xx: done, but which issue is unknown; the retry looks first.
        .ok_or_else(|| SinkError::rejected("GitHub answered without an issue number").half_done())
}

impl Sink for Github {
    fn deliver(&mut self, a: &Attempt) -> Result<Option<SinkState>, SinkError> {
        let d = a.delivery;
        let mark = marker(d);
        let existing = a.previous.filter(|p| !p.external_ref.is_empty());
        let (n, first_ticket, open) = match (d.kind, existing) {
            (DeliveryKind::Open, Some(p)) if a.reuse => {
                let n = p.external_ref.clone();
                if !p.open {
                    self.set_state(&n, true)?;
                }
                let text = format!("Reopened as {}: {}\n\n{}", d.ticket_id, d.summary, d.body);
                self.comment(&n, &text, &mark, a.in_doubt, &d.ticket_id)
                    .map_err(SinkError::half_done)?;
                (n, p.ticket_id.clone(), true)
            }
            (DeliveryKind::Update, Some(p)) => {
                let n = p.external_ref.clone();
                self.rewrite(&n, a, &mark)?;
                self.comment(&n, &d.summary, &mark, a.in_doubt, &d.ticket_id)
                    .map_err(SinkError::half_done)?;
                (n, p.ticket_id.clone(), p.open)
            }
            (DeliveryKind::Resolve, Some(p)) => {
                let n = p.external_ref.clone();
                self.comment(&n, &d.summary, &mark, a.in_doubt, &d.ticket_id)?;
                self.set_state(&n, false).map_err(SinkError::half_done)?;
                (n, p.ticket_id.clone(), false)
            }
            (DeliveryKind::Resolve, None) => return Ok(None),
            (DeliveryKind::Open | DeliveryKind::Update, _) => {
                (self.create(a, &mark)?, d.ticket_id.clone(), true)
            }
        };
        Ok(Some(issue_state(a, n, first_ticket, open)))
    }
}
