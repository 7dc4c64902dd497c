//! Jira (REST API v2; Jira Server / Data Center, and Cloud's v2 endpoints).
//!
//! - open: `POST /rest/api/2/issue {fields: {project: {key}, summary, description,
//!   issuetype: {name}, labels}}`; the issue key is the sink's external ref;
//! - update: `POST /rest/api/2/issue/{key}/comment {body}`;
//! - resolve: a comment, then the transition named `resolve_transition` (looked up with
//!   `GET /rest/api/2/issue/{key}/transitions`, applied with `POST .../transitions
//!   {transition: {id}}`); an issue already in a "done" status needs none;
//! - reopen within the window: a comment and, when configured, the transition named
//!   `reopen_transition`.
//!
//! - an update also rewrites the issue's description and labels (`PUT
//!   /rest/api/2/issue/{key} {fields: {description, labels}}`), so the issue shows the
//!   ticket's current report: the diagnosis and the remediation results arrive after
//!   the ticket opened.
//!
//! Labels: the configured ones, the fingerprint's, then `type:<label>`,
//! `severity:<P0..P4>` and `host:<name>`. Descriptions and comments are cut to
//! 32,767 characters (Jira's limit for a text field), with a line saying so.
//!
//! Auth: `user` + token (basic, as Jira Cloud's API tokens) or, without `user`, the
//! token as a bearer (Server / Data Center personal access tokens).
//!
//! Guarantee: exactly-once in effect. Each issue carries the label
//! `anomalyd-<hash of fingerprint>` and each description / comment the line
//! `anomalyd-delivery: <id>`. An attempt in doubt first searches (JQL on that label, or
//! the issue's comments) for its own delivery id and creates nothing if found.

use base64::Engine as _;
use serde_json::{json, Value};

use super::http::Http;
use super::{
    all_labels, cut, fingerprint_tag, has_marker, issue_state, Attempt, Secret, Sink, SinkConfig,
    SinkError, SinkState,
};
use crate::config::reader::{Reader, Section};
use crate::tickets::DeliveryKind;

/// Jira's limit for a text field (description, comment), in characters.
pub const MAX_TEXT: usize = 32_767;

/// `text` and the delivery's marker line, within [`MAX_TEXT`].
fn with_marker(text: &str, mark: &str, ticket_id: &str) -> String {
    let room = MAX_TEXT.saturating_sub(mark.chars().count() + 2);
    format!("{}\n\n{mark}", cut(text, room, ticket_id))
}

pub(crate) const KEYS: &[&str] = &[
    "url",
    "project",
    "issue_type",
    "user",
    "token_file",
    "token_env",
    "labels",
    "resolve_transition",
    "reopen_transition",
];

#[derive(Debug, Clone, PartialEq)]
pub struct JiraConfig {
    pub url: String,
    pub project: String,
    pub issue_type: String,
    /// With a user: basic auth `user:token`; without: `Authorization: Bearer token`.
    pub user: String,
    pub token: Option<Secret>,
    pub labels: Vec<String>,
    pub resolve_transition: String,
    /// Empty: a reopen only comments.
    pub reopen_transition: String,
}

pub(crate) fn parse(r: &mut Reader, s: &Section) -> JiraConfig {
    let project = s.string(r, "project", "");
    if project.is_empty()
        || !project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        r.error(
            &s.path("project"),
            format!("{project:?} is not a Jira project key"),
        );
    }
    let labels = super::issue_labels(r, s);
    for (i, l) in labels.iter().enumerate() {
        if l.contains(char::is_whitespace) {
            r.error(
                &format!("{}[{i}]", s.path("labels")),
                "Jira labels cannot contain spaces",
            );
        }
    }
    JiraConfig {
        url: super::url(r, s, "url", true, ""),
        project,
        issue_type: s.string(r, "issue_type", "Task"),
        user: s.string(r, "user", ""),
        token: super::secret(r, s, "token", true),
        labels,
        resolve_transition: s.string(r, "resolve_transition", "Done"),
        reopen_transition: s.string(r, "reopen_transition", ""),
    }
}

pub struct Jira {
    config: JiraConfig,
    http: Http,
    auth: String,
}

impl Jira {
    pub fn new(c: &SinkConfig, j: JiraConfig) -> Result<Self, String> {
        let token = j.token.as_ref().ok_or("no token")?;
        let auth = if j.user.is_empty() {
            format!("Bearer {}", token.expose())
        } else {
            let raw = format!("{}:{}", j.user, token.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        };
        Ok(Jira {
            auth,
            config: j,
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
        let url = format!("{}/rest/api/2{path}", self.config.url);
        let h = [
            ("Accept", "application/json"),
            ("Authorization", self.auth.as_str()),
        ];
        let reply = self.http.send_json(method, &url, &h, body, what)?;
        // Transitions and some updates answer 204 No Content.
        if reply.body.trim().is_empty() {
            Ok(Value::Null)
        } else {
            reply.json()
        }
    }

    fn comment(
        &self,
        key: &str,
        text: &str,
        mark: &str,
        look: bool,
        ticket_id: &str,
    ) -> Result<(), SinkError> {
        if look {
            let list = self.call(
                "GET",
                &format!("/issue/{key}/comment?maxResults=100&orderBy=-created"),
                None,
                "list comments",
            )?;
            if has_marker(&list["comments"], mark) {
                return Ok(());
            }
        }
        let body = json!({ "body": with_marker(text, mark, ticket_id) });
        self.call(
            "POST",
            &format!("/issue/{key}/comment"),
            Some(&body),
            "comment",
        )
        .map(|_| ())
    }

    /// Apply the transition called `name` (by transition or target status name).
    /// `done_ok`: an issue already in a done status needs nothing.
    fn transition(&self, key: &str, name: &str, done_ok: bool) -> Result<(), SinkError> {
        let list = self.call(
            "GET",
            &format!("/issue/{key}/transitions"),
            None,
            "list transitions",
        )?;
        let ts = list["transitions"].as_array().cloned().unwrap_or_default();
        let wanted = |t: &&Value| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
                || t["to"]["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        };
        if let Some(id) = ts.iter().find(wanted).and_then(|t| t["id"].as_str()) {
            let body = json!({"transition": {"id": id}});
            return self
                .call(
                    "POST",
                    &format!("/issue/{key}/transitions"),
                    Some(&body),
                    "transition",
                )
                .map(|_| ());
        }
        if done_ok {
            let issue = self.call(
                "GET",
                &format!("/issue/{key}?fields=status"),
                None,
                "read status",
            )?;
            if issue["fields"]["status"]["statusCategory"]["key"] == "done" {
                return Ok(());
            }
        }
        let names: Vec<&str> = ts.iter().filter_map(|t| t["name"].as_str()).collect();
        Err(SinkError::rejected(format!(
            "jira {key}: no transition {name:?} (available: {})",
            names.join(", ")
        )))
    }

    fn labels(&self, d: &crate::tickets::Delivery, fp_label: &str) -> Vec<String> {
        let mut configured = self.config.labels.clone();
        configured.push(fp_label.to_string());
        all_labels(&configured, d)
    }

    /// The issue's description and labels as the ticket is now (idempotent).
    fn rewrite(&self, key: &str, a: &Attempt, mark: &str, fp_label: &str) -> Result<(), SinkError> {
        let d = a.delivery;
        let body = json!({"fields": {
            "description": with_marker(&d.body, mark, &d.ticket_id),
            "labels": self.labels(d, fp_label),
        }});
        self.call("PUT", &format!("/issue/{key}"), Some(&body), "update issue")
            .map(|_| ())
    }

    fn create(&self, a: &Attempt, mark: &str, fp_label: &str) -> Result<String, SinkError> {
        let d = a.delivery;
        if a.in_doubt {
            let jql = format!(
                "project = \"{}\" AND labels = \"{fp_label}\" ORDER BY created DESC",
                self.config.project
            );
            let found = self.call(
                "GET",
                &format!(
                    "/search?jql={}&fields=description&maxResults=50",
                    encode(&jql)
                ),
                None,
                "look up issue",
            )?;
            if let Some(key) = found["issues"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| {
                    i["fields"]["description"]
                        .as_str()
                        .is_some_and(|t| t.contains(mark))
                })
                .and_then(|i| i["key"].as_str())
            {
                return Ok(key.to_string());
            }
        }
        let body = json!({"fields": {
            "project": {"key": self.config.project},
            "summary": format!("{} ({})", d.incident.title, d.ticket_id),
            "description": with_marker(&d.body, mark, &d.ticket_id),
            "issuetype": {"name": self.config.issue_type},
            "labels": self.labels(d, fp_label),
        }});
        let created = self.call("POST", "/issue", Some(&body), "create issue")?;
        created["key"]
            .as_str()
            .map(str::to_string)
            // After a 2xx: done, but which issue is unknown; the retry looks first.
            .ok_or_else(|| SinkError::rejected("Jira answered without an issue key").half_done())
    }
}

/// Percent-encode a query parameter value (RFC 3986 unreserved characters kept).
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Sink for Jira {
    fn deliver(&mut self, a: &Attempt) -> Result<Option<SinkState>, SinkError> {
        let d = a.delivery;
        let mark = format!("anomalyd-delivery: {}", d.id);
        let fp_label = format!("anomalyd-{}", fingerprint_tag(&d.incident.fingerprint));
        let existing = a.previous.filter(|p| !p.external_ref.is_empty());
        let (key, first_ticket, open) = match (d.kind, existing) {
            (DeliveryKind::Open, Some(p)) if a.reuse => {
                let key = p.external_ref.clone();
                let text = format!("Reopened as {}: {}\n\n{}", d.ticket_id, d.summary, d.body);
                self.comment(&key, &text, &mark, a.in_doubt, &d.ticket_id)?;
                if !p.open && !self.config.reopen_transition.is_empty() {
                    self.transition(&key, &self.config.reopen_transition, false)
                        .map_err(SinkError::half_done)?;
                }
                (key, p.ticket_id.clone(), true)
            }
            (DeliveryKind::Update, Some(p)) => {
                let key = p.external_ref.clone();
                self.rewrite(&key, a, &mark, &fp_label)?;
                self.comment(&key, &d.summary, &mark, a.in_doubt, &d.ticket_id)
                    .map_err(SinkError::half_done)?;
                (key, p.ticket_id.clone(), p.open)
            }
            (DeliveryKind::Resolve, Some(p)) => {
                let key = p.external_ref.clone();
                self.comment(&key, &d.summary, &mark, a.in_doubt, &d.ticket_id)?;
                self.transition(&key, &self.config.resolve_transition, true)
                    .map_err(SinkError::half_done)?;
                (key, p.ticket_id.clone(), false)
            }
            (DeliveryKind::Resolve, None) => return Ok(None),
            (DeliveryKind::Open | DeliveryKind::Update, _) => {
                (self.create(a, &mark, &fp_label)?, d.ticket_id.clone(), true)
            }
        };
        Ok(Some(issue_state(a, key, first_ticket, open)))
    }
}
