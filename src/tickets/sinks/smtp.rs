//! Email over SMTP (lettre; STARTTLS, implicit TLS, or plain for loopback relays).
//!
//! One mail per ticket change, to every `to` address. Subject:
//! `[anomalyd] <ticket> opened|reopened|updated|resolved: <title>`; body: the summary
//! line and the ticket's report (cut to [`MAX_BODY`] characters). Every mail has `Message-ID: <delivery-id@anomalyd>`,
//! and mails after the first of a problem carry `In-Reply-To`/`References` to it, so
//! mail clients thread a problem's mails (across a reopen within the window).
//!
//! Guarantee: at-least-once. A mail accepted by the server (250 after DATA) is marked
//! delivered at once; a `kill -9` between that 250 and the commit, or a connection lost
//! while waiting for it, sends the mail again with the same Message-ID, which mail
//! stores that dedup by Message-ID (and every threading client) show once.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::json;

use super::{Attempt, Secret, Sink, SinkConfig, SinkError, SinkState};
use crate::config::reader::{Reader, Section};
use crate::tickets::DeliveryKind;

pub(crate) const KEYS: &[&str] = &[
    "host",
    "port",
    "tls",
    "from",
    "to",
    "user",
    "password_file",
    "password_env",
    "ca_file",
];

#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `starttls` (required, the default), `tls` (implicit, port 465) or `none`
    /// (plain text: only for a relay on loopback).
    pub tls: String,
    pub from: String,
    pub to: Vec<String>,
    pub user: String,
    pub password: Option<Secret>,
    /// PEM certificates trusted for this server besides the public roots: a relay
    /// with a certificate from a private CA (or self-signed) needs it.
    pub ca: Option<Vec<u8>>,
}

pub(crate) fn parse(r: &mut Reader, s: &Section) -> SmtpConfig {
    let host = s.string(r, "host", "");
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        r.error(&s.path("host"), format!("{host:?} is not a host name"));
    }
    let tls = s.one_of(r, "tls", &["starttls", "tls", "none"], "starttls");
    let default_port = if tls == "tls" { 465 } else { 587 };
    let port = s.int(r, "port", default_port, 1, 65535) as u16;
    let from = s.string(r, "from", "");
    if from.parse::<Mailbox>().is_err() {
        r.error(&s.path("from"), format!("{from:?} is not an email address"));
    }
    let to = s.strings(r, "to");
    if to.is_empty() {
        r.error(&s.path("to"), "missing: at least one address");
    }
    for (i, a) in to.iter().enumerate() {
        if a.parse::<Mailbox>().is_err() {
            r.error(
                &format!("{}[{i}]", s.path("to")),
                format!("{a:?} is not an email address"),
            );
        }
    }
    let user = s.string(r, "user", "");
    let password = super::secret(r, s, "password", !user.is_empty());
    if user.is_empty() && password.is_some() {
        r.error(&s.path("user"), "a password needs a user");
    }
    // Read at load, like the secrets: a missing file is a config error with its path,
    // and a reload picks up a renewed certificate.
    let ca = s.opt_path(r, "ca_file").and_then(|p| {
        match crate::config::file::read_bytes(&p, crate::config::file::SMALL) {
            Ok(_) if tls == "none" => {
                r.error(&s.path("ca_file"), "needs tls: starttls or tls");
                None
            }
            Ok(pem) => Some(pem),
            Err(e) => {
                r.error(
                    &s.path("ca_file"),
                    format!("cannot read {}: {e}", p.display()),
                );
                None
            }
        }
    });
    SmtpConfig {
        host,
        port,
        tls,
        from,
        to,
        user,
        password,
        ca,
    }
}

pub struct Smtp {
    config: SmtpConfig,
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Smtp {
    pub fn new(c: &SinkConfig, s: SmtpConfig) -> Result<Self, String> {
        let tls = match s.tls.as_str() {
            "none" => Tls::None,
            mode => {
                let mut b = TlsParameters::builder(s.host.clone());
                if let Some(pem) = &s.ca {
                    let cert = Certificate::from_pem(pem).map_err(|e| format!("ca_file: {e}"))?;
                    b = b.add_root_certificate(cert);
                }
                let p = b.build_rustls().map_err(|e| format!("TLS: {e}"))?;
                if mode == "tls" {
                    Tls::Wrapper(p)
                } else {
                    Tls::Required(p)
                }
            }
        };
        let mut b = SmtpTransport::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(c.timeout));
        if let Some(p) = &s.password {
            b = b.credentials(Credentials::new(s.user.clone(), p.expose().to_string()));
        }
        let from = s.from.parse().map_err(|e| format!("from: {e}"))?;
        let to =
            s.to.iter()
                .map(|a| a.parse().map_err(|e| format!("to {a:?}: {e}")))
                .collect::<Result<_, String>>()?;
        Ok(Smtp {
            transport: b.build(),
            config: s,
            from,
            to,
        })
    }
}

/// A mail's report is cut to this many characters (with a line saying so): far
/// under the usual relay limits (10 MB and more), and still every section of a
/// normal report.
pub const MAX_BODY: usize = 1_000_000;

/// `<id@anomalyd>` from a delivery id (kept to characters valid in a Message-ID).
fn message_id(id: &str) -> String {
    format!("<{}@anomalyd>", crate::text::plain(id))
}

impl Sink for Smtp {
    fn deliver(&mut self, a: &Attempt) -> Result<Option<SinkState>, SinkError> {
        let d = a.delivery;
        let (verb, thread) = match (d.kind, a.previous) {
            (DeliveryKind::Open, Some(p)) if a.reuse => ("reopened", Some(p)),
            (DeliveryKind::Open, _) => ("opened", None),
            (DeliveryKind::Update, p) => ("updated", p),
            (DeliveryKind::Resolve, p) => ("resolved", p),
        };
        let mid = message_id(&d.id);
        // The first mail of the problem, which later ones reply to.
        let root = thread
            .map(|p| p.external_ref.clone())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| mid.clone());
        let ticket = match thread {
            Some(p) if a.reuse && p.ticket_id != d.ticket_id => {
                format!("{} ({})", p.ticket_id, d.ticket_id)
            }
            _ => d.ticket_id.clone(),
        };
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(format!("[anomalyd] {ticket} {verb}: {}", d.incident.title))
            .message_id(Some(mid.clone()))
            .header(lettre::message::header::ContentType::TEXT_PLAIN);
        for t in &self.to {
            b = b.to(t.clone());
        }
        if root != mid {
            b = b.in_reply_to(root.clone()).references(root.clone());
        }
        let msg = b
            .body(format!(
                "{}\n\n{}\n",
                d.summary,
                super::cut(&d.body, MAX_BODY, &d.ticket_id)
            ))
            .map_err(|e| SinkError::rejected(format!("cannot build the mail: {e}")))?;
        self.transport.send(&msg).map_err(|e| {
            let text = format!(
                "smtp {}:{} {verb} {}: {e}",
                self.config.host, self.config.port, d.ticket_id
            );
            if e.is_transient() || e.is_tls() || e.to_string().starts_with("Connection error") {
                SinkError::unreachable(text)
            } else if e.is_permanent() {
                SinkError::rejected(text)
            } else {
                SinkError::in_doubt(text)
            }
        })?;
        let resolved = d.kind == DeliveryKind::Resolve;
        let first_ticket = thread
            .map(|p| p.ticket_id.clone())
            .unwrap_or_else(|| d.ticket_id.clone());
        Ok(Some(SinkState {
            fingerprint: d.incident.fingerprint.clone(),
            ticket_id: first_ticket,
            external_ref: root,
            open: !resolved,
            resolved_ms: resolved.then_some(d.at_ms),
            last_sent_ms: a.now_ms,
            data: json!(null),
        }))
    }
}
