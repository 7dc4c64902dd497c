//! Generic webhook: one JSON POST per ticket change, signed with HMAC-SHA256.
//!
//! Request: `POST <url>` with `Content-Type: application/json` and
//! - `X-Anomalyd-Delivery: <id>` and `Idempotency-Key: <id>`: unique per delivery, the
//!   same on every retry of it;
//! - `<signature_header>: sha256=<hex HMAC-SHA256 of the raw body with the secret>`
//!   (when a secret is configured);
//!
//! Body: `{"delivery_id", "event": "open"|"reopen"|"update"|"resolve", "ticket"
//! (the external ticket: the id of the first ticket of this problem within the reopen
//! window), "ticket_id", "fingerprint", "summary", "body", "at_ms", "incident"}`.
//!
//! Guarantee: at-least-once. A 2xx answer is recorded as delivered in the same step;
//! if the daemon dies between the answer and that commit, or the answer is lost, the
//! delivery is sent again with the same id: a receiver that drops ids it has seen gets
//! every ticket change exactly once.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::http::Http;
use super::{Attempt, Secret, Sink, SinkConfig, SinkError, SinkState};
use crate::config::reader::{Reader, Section};
use crate::tickets::DeliveryKind;

pub(crate) const KEYS: &[&str] = &["url", "secret_file", "secret_env", "signature_header"];

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    /// HMAC key; without one the body is not signed.
    pub secret: Option<Secret>,
    /// Header carrying `sha256=<hex>`.
    pub signature_header: String,
}

pub(crate) fn parse(r: &mut Reader, s: &Section) -> WebhookConfig {
    let header = s.string(r, "signature_header", "X-Anomalyd-Signature");
    if header.is_empty()
        || !header
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        r.error(
            &s.path("signature_header"),
            format!("{header:?} is not a valid header name"),
        );
    }
    WebhookConfig {
        url: super::url(r, s, "url", true, ""),
        secret: super::secret(r, s, "secret", false),
        signature_header: header,
    }
}

/// `sha256=<hex>` of `body` keyed with `secret`: what receivers recompute.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

pub struct Webhook {
    config: WebhookConfig,
    http: Http,
}

impl Webhook {
    pub fn new(c: &SinkConfig, w: WebhookConfig) -> Result<Self, String> {
        Ok(Webhook {
            config: w,
            http: Http::new(c.timeout),
        })
    }
}

impl Sink for Webhook {
    fn deliver(&mut self, a: &Attempt) -> Result<Option<SinkState>, SinkError> {
        let d = a.delivery;
        let (event, external) = match (d.kind, a.previous) {
            (DeliveryKind::Open, Some(p)) if a.reuse => ("reopen", p.external_ref.clone()),
            (DeliveryKind::Open, _) => ("open", d.ticket_id.clone()),
            (DeliveryKind::Update, Some(p)) => ("update", p.external_ref.clone()),
            (DeliveryKind::Update, None) => ("update", d.ticket_id.clone()),
            (DeliveryKind::Resolve, Some(p)) => ("resolve", p.external_ref.clone()),
            (DeliveryKind::Resolve, None) => ("resolve", d.ticket_id.clone()),
        };
        let body = json!({
            "delivery_id": d.id,
            "event": event,
            "ticket": external,
            "ticket_id": d.ticket_id,
            "fingerprint": d.incident.fingerprint,
            "summary": d.summary,
            "body": d.body,
            "at_ms": d.at_ms,
            "incident": d.incident,
        });
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| SinkError::rejected(format!("cannot encode: {e}")))?;
        let sig = self
            .config
            .secret
            .as_ref()
            .map(|s| signature(s.expose().as_bytes(), &bytes));
        let mut headers: Vec<(&str, &str)> = vec![
            ("Content-Type", "application/json"),
            ("X-Anomalyd-Delivery", &d.id),
            ("Idempotency-Key", &d.id),
        ];
        if let Some(sig) = &sig {
            headers.push((&self.config.signature_header, sig));
        }
        self.http.send(
            "POST",
            &self.config.url,
            &headers,
            Some(&bytes),
            &format!("webhook {event} {}", d.ticket_id),
        )?;
        let resolved = d.kind == DeliveryKind::Resolve;
        Ok(Some(SinkState {
            fingerprint: d.incident.fingerprint.clone(),
            ticket_id: external.clone(),
            external_ref: external,
            open: !resolved,
            resolved_ms: resolved.then_some(d.at_ms),
            last_sent_ms: a.now_ms,
            data: serde_json::Value::Null,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
