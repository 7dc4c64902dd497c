//! Cross-site request forgery protection for the dashboard's actions.
//!
//! A browser sends basic-auth credentials with every request to the site, also one
//! a foreign page makes it send (a form posted from elsewhere). So every POST must
//! carry a token that only our own pages hold: `HMAC-SHA256(secret, identity)`, where
//! `secret` is drawn at random when the daemon starts (never stored or logged) and
//! `identity` is who the request comes as (`user:NAME` with basic auth, `loopback`
//! without). The pages put the token in a hidden form field; a POST without it, or
//! with another identity's, is refused with 403. A restart draws a new secret, so an
//! old page must be reloaded before it can act again.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct Csrf {
    secret: [u8; 32],
}

impl Csrf {
    /// A new per-process secret.
    pub fn new() -> Csrf {
        Csrf {
            secret: rand::random(),
        }
    }

    fn mac(&self, identity: &str) -> Hmac<Sha256> {
        // An HMAC takes a key of any length: this cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(identity.as_bytes());
        mac
    }

    /// The token the pages shown to `identity` carry.
    pub fn token(&self, identity: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.mac(identity).finalize().into_bytes())
    }

    /// Whether `presented` is `identity`'s token (compared in constant time).
    pub fn check(&self, identity: &str, presented: &str) -> bool {
        let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(presented) else {
            return false;
        };
        self.mac(identity).verify_slice(&bytes).is_ok()
    }
}

impl Default for Csrf {
    fn default() -> Self {
        Csrf::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_identity_and_its_process() {
        let csrf = Csrf::new();
        let t = csrf.token("user:alice");
        assert!(csrf.check("user:alice", &t));
        assert!(!csrf.check("user:bob", &t), "another user's token");
        assert!(!csrf.check("user:alice", ""), "no token");
        assert!(!csrf.check("user:alice", "not base64!"));
        assert!(
            !Csrf::new().check("user:alice", &t),
            "a token from before a restart"
        );
    }
}
