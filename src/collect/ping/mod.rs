//! ping collector: ICMP echo round-trip time, jitter and loss to configured targets.
//!
//! Pinging takes seconds and `collect` runs inside the once-a-second tick, so the two
//! are decoupled: every target gets a worker thread that runs a round (`round.rs`)
//! every `round_interval` and publishes the result into shared state; `collect` only
//! copies out the latest completed round, never touching the network. RTT observations
//! are handed over once (drained on collect), so the exported histogram counts every
//! reply exactly once however rounds and ticks interleave.
//!
//! Problems (unresolvable name, no permission for ICMP sockets, unreachable network,
//! 100% loss) are logged when they start and when they end, not every round; while one
//! lasts it shows as `ping_up 0`, and errors that stop a round from running at all also
//! fail the collector run with a message naming the target.
//!
//! Dropping [`Ping`] tells the workers to stop; they notice within 100 ms
//! (`round::STOP_CHECK`), or when a DNS lookup in progress returns, and exit without
//! being joined, so a config reload never waits on the network.

mod config;
mod packet;
mod round;
mod socket;
#[cfg(test)]
mod tests;

/// Every way a reply is parsed (both families, with and without an IPv4 header), for
/// the fuzz targets (`fuzz/`): a hostile datagram may be ignored, never crash us.
#[doc(hidden)]
pub fn parse_reply_for_fuzzing(datagram: &[u8]) {
    for family in [packet::Family::V4, packet::Family::V6] {
        for header in [false, true] {
            let _ = packet::parse_reply(family, header, datagram);
        }
    }
}

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use super::{CollectError, Collector};
use crate::sample::Sample;
pub use config::{parse_config, PingConfig};
use packet::{stats, Family};
use round::{probe, Round, RoundError};
use socket::{IcmpSocket, Kind, OpenError};

pub use round::resolve;
pub use socket::SocketMode;

const RTT_MIN: &str = "ping_rtt_min_seconds";
const RTT_MIN_HELP: &str = "Smallest ICMP echo round-trip time of the last completed ping round.";
const RTT_MEDIAN: &str = "ping_rtt_median_seconds";
const RTT_MEDIAN_HELP: &str = "Median ICMP echo round-trip time of the last completed ping round.";
const RTT_MAX: &str = "ping_rtt_max_seconds";
const RTT_MAX_HELP: &str = "Largest ICMP echo round-trip time of the last completed ping round.";
const JITTER: &str = "ping_jitter_seconds";
const JITTER_HELP: &str = "Mean absolute difference between consecutive round-trip times of the \
     last ping round (RFC 3550 interarrival jitter without its 1/16 smoothing); absent with \
     fewer than two replies.";
const LOSS: &str = "ping_loss_ratio";
const LOSS_HELP: &str =
    "Fraction of the last ping round's echo requests that got no reply within the timeout.";
const SENT: &str = "ping_packets_sent";
const SENT_HELP: &str = "Echo requests in the last ping round, including any the kernel refused \
     to send (e.g. network unreachable).";
const RECEIVED: &str = "ping_packets_received";
const RECEIVED_HELP: &str = "Echo replies received in time in the last ping round.";
const RTT: &str = "ping_rtt_seconds";
const RTT_HELP: &str = "ICMP echo round-trip times; every reply is observed once.";
const UP: &str = "ping_up";
const UP_HELP: &str = "1 if the last ping round got at least one reply, 0 if it got none or \
     could not run (see anomalyd_collector_success and the log).";
const ANSWERED: &str = "ping_target_answered";
const ANSWERED_HELP: &str = "1 once the target has answered since the daemon started; 0 after \
     rounds without any reply: a configuration problem (wrong name or address, no route, a \
     firewall), and no incident is opened for a target that never answered.";

/// Observations kept for a target when nobody collects (the collector list is built
/// but not run); beyond this the oldest are dropped rather than growing without bound.
const MAX_FRESH: usize = 10_000;

/// Stop request shared by the collector and its workers; a condvar so that a worker
/// sleeping until its next round wakes at once.
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn new() -> Self {
        Stop {
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    fn is_set(&self) -> bool {
        *lock(&self.stopped)
    }

    fn set(&self) {
        *lock(&self.stopped) = true;
        self.wake.notify_all();
    }

    /// Sleeps until `until`; true if stopped first.
    fn sleep_until(&self, until: Instant) -> bool {
        let mut stopped = lock(&self.stopped);
        loop {
            if *stopped {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, until - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// A poisoned lock only means another thread panicked while holding it; the data (plain
/// round results) is still usable, and refusing it would silence the collector forever.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one target's worker has published.
#[derive(Default)]
struct Slot {
    /// The last completed round, or why it could not run; `None` until the first ends.
    latest: Option<Result<Round, String>>,
    /// RTTs of rounds completed since the last collect.
    fresh: Vec<(IpAddr, f64)>,
    /// A round has had a reply since the daemon started.
    answered: bool,
}

struct Shared {
    stop: Stop,
    slots: Mutex<Vec<Slot>>,
    /// Live worker threads; lets tests see that dropping `Ping` ends them.
    workers: Arc<AtomicUsize>,
}

impl Shared {
    fn publish(&self, index: usize, outcome: Result<Round, String>) {
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.get_mut(index) else {
            return;
        };
        if let Ok(round) = &outcome {
            slot.answered |= round.received > 0;
            slot.fresh
                .extend(round.rtts.iter().map(|rtt| (round.address, *rtt)));
            let excess = slot.fresh.len().saturating_sub(MAX_FRESH);
            slot.fresh.drain(..excess);
        }
        slot.latest = Some(outcome);
    }
}

/// The ping collector: owns one background worker per target (see the module docs).
pub struct Ping {
    targets: Vec<String>,
    shared: Arc<Shared>,
}

impl Ping {
    pub fn new(config: PingConfig) -> Self {
        Self::with_socket_mode(config, SocketMode::Auto)
    }

    /// Like [`Ping::new`] but with the ICMP socket kind forced, so the unprivileged
    /// datagram path can be exercised even when running as root.
    pub fn with_socket_mode(config: PingConfig, mode: SocketMode) -> Self {
        let targets = config.targets.clone();
        let shared = Arc::new(Shared {
            stop: Stop::new(),
            slots: Mutex::new(targets.iter().map(|_| Slot::default()).collect()),
            workers: Arc::new(AtomicUsize::new(0)),
        });
        for (index, target) in targets.iter().enumerate() {
            let worker = Worker {
                index,
                target: target.clone(),
                config: config.clone(),
                mode,
                shared: Arc::clone(&shared),
                seq: rand::random(),
                raw_ident: rand::random(),
                fell_back: [false; 2],
                problem: None,
                answered: false,
                _alive: Alive::new(&shared.workers),
            };
            let spawned = thread::Builder::new()
                .name(format!("ping-{index}"))
                .spawn(move || worker.run());
            if let Err(e) = spawned {
                let message = format!("starting ping thread: {e}");
                tracing::warn!("ping {target:?}: {message}");
                shared.publish(index, Err(message));
            }
        }
        Ping { targets, shared }
    }

    #[cfg(test)]
    fn workers(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.shared.workers)
    }
}

impl Drop for Ping {
    fn drop(&mut self) {
        self.shared.stop.set();
    }
}

impl Collector for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let mut errors = Vec::new();
        let mut slots = lock(&self.shared.slots);
        for (target, slot) in self.targets.iter().zip(slots.iter_mut()) {
            if slot.latest.is_some() {
                let answered = if slot.answered { 1.0 } else { 0.0 };
                sample.info(ANSWERED, ANSWERED_HELP, &[("target", target)], answered);
            }
            match &slot.latest {
                None => {}
                Some(Err(e)) => {
                    sample.info(UP, UP_HELP, &[("target", target)], 0.0);
                    errors.push(format!("target {target:?}: {e}"));
                }
                Some(Ok(round)) => emit_round(sample, target, round),
            }
            let mut by_address: BTreeMap<IpAddr, Vec<f64>> = BTreeMap::new();
            for (address, rtt) in slot.fresh.drain(..) {
                by_address.entry(address).or_default().push(rtt);
            }
            for (address, observations) in by_address {
                let address = address.to_string();
                let labels = [("target", target.as_str()), ("address", address.as_str())];
                sample.observe(RTT, RTT_HELP, &labels, observations);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(CollectError::Other(errors.join("; ")))
        }
    }
}

fn emit_round(sample: &mut Sample, target: &str, round: &Round) {
    let address = round.address.to_string();
    let labels = [("target", target), ("address", address.as_str())];
    if let Some(s) = stats(&round.rtts) {
        sample.feature(RTT_MIN, RTT_MIN_HELP, &labels, s.min);
        sample.feature(RTT_MEDIAN, RTT_MEDIAN_HELP, &labels, s.median);
        sample.feature(RTT_MAX, RTT_MAX_HELP, &labels, s.max);
        if let Some(jitter) = s.jitter {
            sample.feature(JITTER, JITTER_HELP, &labels, jitter);
        }
    }
    if round.sent > 0 {
        let lost = round.sent.saturating_sub(round.received);
        sample.feature(
            LOSS,
            LOSS_HELP,
            &labels,
            f64::from(lost) / f64::from(round.sent),
        );
    }
    sample.info(SENT, SENT_HELP, &labels, f64::from(round.sent));
    sample.info(RECEIVED, RECEIVED_HELP, &labels, f64::from(round.received));
    let up = if round.received > 0 { 1.0 } else { 0.0 };
    sample.info(UP, UP_HELP, &[("target", target)], up);
}

/// Counts a worker as alive from creation until it is dropped, whether its thread ran
/// to the end or never started.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Alive(Arc::clone(count))
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One target's background loop.
struct Worker {
    index: usize,
    target: String,
    config: PingConfig,
    mode: SocketMode,
    shared: Arc<Shared>,
    /// Next sequence number; random start so two daemons' rounds differ.
    seq: u16,
    /// Identifier for raw sockets (datagram sockets get theirs from the kernel).
    raw_ident: u16,
    /// Whether the raw-to-datagram fallback was already logged, per family.
    fell_back: [bool; 2],
    /// The problem last logged, so each is logged once rather than every round.
    problem: Option<String>,
    /// A reply has come since the start (the log says when one never did).
    answered: bool,
    _alive: Alive,
}

impl Worker {
    fn run(mut self) {
        let mut next_round = Instant::now();
        loop {
            let Some(outcome) = self.round() else {
                return;
            };
            self.log_transition(&outcome);
            self.shared
                .publish(self.index, outcome.map_err(|e| e.to_string()));
            next_round += self.config.round_interval;
            // A round longer than the interval delays the next one instead of queueing.
            next_round = next_round.max(Instant::now());
            if self.shared.stop.sleep_until(next_round) {
                return;
            }
        }
    }

    /// One round; `None` when stopped.
    fn round(&mut self) -> Option<Result<Round, RoundError>> {
        if self.shared.stop.is_set() {
            return None;
        }
        let dest = match resolve(&self.target) {
            Ok(dest) => dest,
            Err(e) => return Some(Err(e)),
        };
        let socket = match self.open(Family::of(dest.ip())) {
            Ok(socket) => socket,
            Err(e) => return Some(Err(e.into())),
        };
        probe(
            &socket,
            dest,
            &self.config,
            &mut self.seq,
            &self.shared.stop,
        )
        .map(Ok)
    }

    /// A socket per round: a hostname may change family between rounds, and a fresh
    /// socket has no stale replies queued.
    fn open(&mut self, family: Family) -> Result<IcmpSocket, OpenError> {
        let socket = IcmpSocket::open(family, self.mode, self.raw_ident)?;
        let i = usize::from(family == Family::V6);
        if self.mode == SocketMode::Auto && socket.kind() == Kind::Datagram && !self.fell_back[i] {
            self.fell_back[i] = true;
            tracing::info!(
                "ping {:?}: raw {family} ICMP sockets not permitted (no CAP_NET_RAW), \
                 using unprivileged datagram ICMP sockets",
                self.target
            );
        }
        Ok(socket)
    }

    fn log_transition(&mut self, outcome: &Result<Round, RoundError>) {
        let problem = match outcome {
            Err(e) => Some(e.to_string()),
            Ok(round) if round.received == 0 => Some(match &round.error {
                Some(e) => format!("{e}; 100% loss"),
                None => format!(
                    "no echo reply from {} within {:?}; 100% loss",
                    round.address, self.config.timeout
                ),
            }),
            Ok(_) => None,
        };
        if matches!(outcome, Ok(r) if r.received > 0) {
            self.answered = true;
        }
        if problem == self.problem {
            return;
        }
        match (&problem, outcome) {
            (Some(p), _) if !self.answered => tracing::warn!(
                "ping {:?}: {p}; it has not answered since the start: check the target \
                 (a target that never answered opens no incident)",
                self.target
            ),
            (Some(p), _) => tracing::warn!("ping {:?}: {p}", self.target),
            (None, Ok(round)) => tracing::info!(
                "ping {:?}: echo replies from {} again",
                self.target,
                round.address
            ),
            (None, Err(_)) => {}
        }
        self.problem = problem;
    }
}
