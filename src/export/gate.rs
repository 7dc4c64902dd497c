//! Who gets in: basic auth without letting wrong passwords become a denial of service.
//!
//! bcrypt costs tens of milliseconds of CPU on purpose. Checked inline, 50 clients
//! sending wrong passwords kept every core busy and starved everything else. So:
//! - credentials verified once are cached ([`super::webconfig::BasicAuth`]), so a
//!   scraper pays bcrypt once, not every scrape;
//! - the check runs on the blocking pool of the HTTP server's own runtime, at most
//!   [`BCRYPT_SLOTS`] at a time, at a lower CPU priority; a request that cannot get a slot within
//!   [`BCRYPT_WAIT`] is refused at once with 503 instead of queueing;
//! - a peer address with [`FAILURES_ALLOWED`] failed checks within
//!   [`FAILURE_WINDOW`] gets 429 without any bcrypt until the window has passed, and
//!   only after [`TARPIT`]: a client hammering wrong passwords then gets one answer a
//!   second per connection, whatever its speed, at the cost of a timer here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::webconfig::{BasicAuth, Presented};

/// bcrypt verifications running at once: one, so a burst of them never takes more
/// than one core (their threads also run at a lower priority).
pub const BCRYPT_SLOTS: usize = 1;
/// How long a request waits for a bcrypt slot before it is refused.
pub const BCRYPT_WAIT: Duration = Duration::from_millis(250);
/// Failed checks a peer may make per window before it is refused without a check.
pub const FAILURES_ALLOWED: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(10);
/// How long a peer that is refused for failing too often waits for its 429.
pub const TARPIT: Duration = Duration::from_secs(1);
/// Peers remembered at once; expired entries are dropped when it is reached.
const MAX_PEERS: usize = 4096;

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 401: no or wrong credentials.
    Deny,
    /// 429: this peer failed too often recently.
    TooMany,
    /// 503: every bcrypt slot is taken.
    Busy,
}

#[derive(Clone)]
pub struct Gate {
    auth: Option<BasicAuth>,
    slots: Arc<Semaphore>,
    failures: Arc<Mutex<HashMap<IpAddr, (u32, Instant)>>>,
}

impl Gate {
    pub fn new(auth: Option<BasicAuth>) -> Gate {
        Gate {
            auth,
            slots: Arc::new(Semaphore::new(BCRYPT_SLOTS)),
            failures: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Decide on a request from `peer` with this `Authorization` header.
    pub async fn admit(&self, peer: IpAddr, header: Option<&str>) -> Decision {
        let Some(auth) = &self.auth else {
            return Decision::Allow;
        };
        let creds = match auth.present(header) {
            Presented::Cached => return Decision::Allow,
            // A first request without credentials is how browsers ask: no bcrypt, not
            // counted.
            Presented::Malformed => return Decision::Deny,
            Presented::Unverified(c) => c,
        };
        // Counted as a failure before the check: 50 concurrent wrong passwords
        // would otherwise all start a bcrypt before the first one failed.
        if !self.attempt(peer) {
            tokio::time::sleep(TARPIT).await;
            return Decision::TooMany;
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout(BCRYPT_WAIT, self.slots.clone().acquire_owned()).await
        else {
            // Not checked, so not a failure either.
            self.succeeded(peer);
            return Decision::Busy;
        };
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            creds.verify()
        })
        .await
        .unwrap_or(false);
        if ok {
            self.succeeded(peer);
            Decision::Allow
        } else {
            Decision::Deny
        }
    }

    /// A successful check is not a failure after all.
    fn succeeded(&self, peer: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            if let Some((n, _)) = map.get_mut(&peer) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Count an attempt from `peer` as a failure until it succeeds; false when the
    /// peer has used up its attempts for this window.
    fn attempt(&self, peer: IpAddr) -> bool {
        let Ok(mut map) = self.failures.lock() else {
            return true;
        };
        if map.len() >= MAX_PEERS && !map.contains_key(&peer) {
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
            if map.len() >= MAX_PEERS {
                // Flooded from many addresses: forget the oldest half rather than grow.
                let mut ages: Vec<Instant> = map.values().map(|(_, s)| *s).collect();
                ages.sort();
                let cut = ages[ages.len() / 2];
                map.retain(|_, (_, since)| *since > cut);
            }
        }
        let entry = map.entry(peer).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        if entry.0 >= FAILURES_ALLOWED {
            return false;
        }
        entry.0 += 1;
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine;

    fn header(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    fn gate() -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        std::fs::write(&p, format!("basic_auth_users:\n  prom: '{hash}'\n")).unwrap();
        Gate::new(super::super::webconfig::load(&p).unwrap().auth)
    }

    /// Issue #18: repeated wrong passwords from one peer stop costing a bcrypt each;
    /// another peer, and cached good credentials from the same peer, still get in.
    #[tokio::test]
    async fn repeated_failures_from_one_peer_are_refused_without_bcrypt() {
        let g = gate();
        let (bad, other): (IpAddr, IpAddr) =
            ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let good = header("prom:s3cret");
        assert_eq!(g.admit(bad, Some(&good)).await, Decision::Allow);
        for _ in 0..FAILURES_ALLOWED {
            assert_eq!(
                g.admit(bad, Some(&header("prom:nope"))).await,
                Decision::Deny
            );
        }
        // With every bcrypt slot held, an attempt that wanted one would be Busy.
        let held: Vec<_> = (0..BCRYPT_SLOTS)
            .map(|_| g.slots.clone().try_acquire_owned().unwrap())
            .collect();
        let t = Instant::now();
        assert_eq!(
            g.admit(bad, Some(&header("prom:nope"))).await,
            Decision::TooMany
        );
        assert!(t.elapsed() >= TARPIT, "answered before the tarpit");
        drop(held);
        assert_eq!(
            g.admit(bad, Some(&good)).await,
            Decision::Allow,
            "cached credentials"
        );
        assert_eq!(
            g.admit(other, Some(&header("prom:nope"))).await,
            Decision::Deny
        );
        assert_eq!(g.admit(bad, None).await, Decision::Deny);
    }

    /// With every bcrypt slot taken, the next unverified request is refused after
    /// [`BCRYPT_WAIT`], not queued behind them.
    #[tokio::test]
    async fn excess_bcrypt_work_is_refused_quickly() {
        let g = gate();
        let held: Vec<_> = (0..BCRYPT_SLOTS)
            .map(|_| g.slots.clone().try_acquire_owned().unwrap())
            .collect();
        let peer: IpAddr = "127.0.0.4".parse().unwrap();
        assert_eq!(
            g.admit(peer, Some(&header("prom:s3cret"))).await,
            Decision::Busy
        );
        drop(held);
        assert_eq!(
            g.admit(peer, Some(&header("prom:s3cret"))).await,
            Decision::Allow
        );
    }
}
