//! Socket-level tests of the ping collector: real echo requests to loopback, and to
//! unreachable or silent addresses only inside a network namespace the test creates, so
//! no packet ever leaves the host. They need root (raw sockets, `ip netns`); where the
//! environment lacks a piece (IPv6, iproute2) the test prints why and skips.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::sample::{Kind as PointKind, Point};

fn config(targets: &[&str]) -> PingConfig {
    PingConfig {
        enabled: true,
        targets: targets.iter().map(|t| t.to_string()).collect(),
        packets: 3,
        packet_interval: Duration::from_millis(20),
        timeout: Duration::from_secs(1),
        // Long, so a test sees exactly one round.
        round_interval: Duration::from_secs(600),
        payload_size: 56,
    }
}

impl Ping {
    /// True once every target has published a round (without draining anything).
    fn all_reported(&self) -> bool {
        lock(&self.shared.slots).iter().all(|s| s.latest.is_some())
    }
}

fn wait_for_rounds(ping: &Ping) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ping.all_reported() {
        assert!(Instant::now() < deadline, "no round completed in 15 s");
        thread::sleep(Duration::from_millis(10));
    }
}

fn collect(ping: &mut Ping) -> (Sample, Result<(), CollectError>) {
    let mut sample = Sample::new(0);
    let result = ping.collect(&mut sample);
    (sample, result)
}

fn label<'a>(p: &'a Point, name: &str) -> Option<&'a str> {
    p.labels
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

fn points<'a>(s: &'a Sample, name: &str, target: &str) -> Vec<&'a Point> {
    s.points
        .iter()
        .filter(|p| p.name == name && label(p, "target") == Some(target))
        .collect()
}

fn gauge(s: &Sample, name: &str, target: &str) -> Option<f64> {
    s.get(name, &[("target", target)])
}

fn observations(s: &Sample, target: &str) -> Vec<f64> {
    points(s, RTT, target)
        .iter()
        .filter(|p| p.kind == PointKind::Histogram)
        .flat_map(|p| p.observations.iter().copied())
        .collect()
}

/// Asserts a healthy round of `packets` replies for `target` and returns its address.
fn assert_all_replied(s: &Sample, target: &str, packets: u32) -> String {
    assert_eq!(gauge(s, UP, target), Some(1.0), "{target}: {:#?}", s.points);
    assert_eq!(gauge(s, LOSS, target), Some(0.0));
    assert_eq!(gauge(s, SENT, target), Some(f64::from(packets)));
    assert_eq!(gauge(s, RECEIVED, target), Some(f64::from(packets)));
    let min = gauge(s, RTT_MIN, target).expect("min");
    let median = gauge(s, RTT_MEDIAN, target).expect("median");
    let max = gauge(s, RTT_MAX, target).expect("max");
    assert!(
        0.0 < min && min <= median && median <= max && max < 1.0,
        "{min} {median} {max}"
    );
    assert!(gauge(s, JITTER, target).expect("jitter") >= 0.0);
    for name in [RTT_MIN, RTT_MEDIAN, RTT_MAX, JITTER, LOSS] {
        let p = points(s, name, target);
        assert_eq!(p.len(), 1, "{name}");
        assert!(p[0].feature, "{name} is a feature");
    }
    assert!(!points(s, UP, target)[0].feature);
    let address = label(points(s, LOSS, target)[0], "address").expect("address label");
    assert_eq!(observations(s, target).len(), packets as usize);
    address.to_string()
}

/// Whether `lo` has ::1, in the given namespace or the test's own (`ip -6 addr show lo`).
fn has_ipv6_loopback(ns: Option<&Netns>) -> bool {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", &ns.name]);
    }
    match cmd.args(["-6", "addr", "show", "lo"]).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).contains("inet6 ::1/128"),
        Err(_) => std::fs::read_to_string("/proc/net/if_inet6")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with(&"0".repeat(31)))),
    }
}

/// A network namespace of our own, removed on drop. Pings created inside
/// [`Netns::enter`] spawn their workers from a thread that is in the namespace, and
/// threads inherit it, so their packets cannot leave it.
struct Netns {
    name: String,
}

impl Netns {
    fn create(tag: &str) -> Option<Netns> {
        let name = format!("anomalyd-test-{}-{tag}", std::process::id());
        match Command::new("ip").args(["netns", "add", &name]).status() {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("skipping: `ip netns add {name}` failed ({s}); needs root");
                return None;
            }
            Err(e) => {
                eprintln!("skipping: cannot run `ip` ({e}); apt-get install -y iproute2");
                return None;
            }
        }
        let ns = Netns { name };
        assert!(ns.ip(&["link", "set", "lo", "up"]), "lo up in {}", ns.name);
        Some(ns)
    }

    fn ip(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Like [`Netns::ip`] for attempts whose failure is expected somewhere.
    fn try_ip(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Writes a sysctl of this namespace (net.* sysctls are per namespace).
    fn sysctl(&self, path: &str, value: &str) {
        let ok = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "sh",
                "-c",
                "echo \"$1\" > \"$2\"",
            ])
            .args(["sh", value, path])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "setting {path} to {value:?} in {}", self.name);
    }

    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(format!("/run/netns/{}", self.name)).expect("open netns");
                // SAFETY: plain syscall on a valid fd; it only changes this thread's
                // network namespace.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("netns thread")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn loopback_v4_and_histogram_counts_each_reply_once() {
    let mut ping = Ping::new(config(&["127.0.0.1"]));
    wait_for_rounds(&ping);
    let (s, result) = collect(&mut ping);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(assert_all_replied(&s, "127.0.0.1", 3), "127.0.0.1");
    let hist = points(&s, RTT, "127.0.0.1");
    assert_eq!(label(hist[0], "address"), Some("127.0.0.1"));

    // Same round again: the gauges stay, the observations were already handed out.
    let (again, _) = collect(&mut ping);
    assert_eq!(gauge(&again, UP, "127.0.0.1"), Some(1.0));
    assert_eq!(
        gauge(&again, RTT_MIN, "127.0.0.1"),
        gauge(&s, RTT_MIN, "127.0.0.1")
    );
    assert!(observations(&again, "127.0.0.1").is_empty());
    assert!(points(&again, RTT, "127.0.0.1").is_empty());
}

#[test]
fn loopback_v6() {
    if !has_ipv6_loopback(None) {
        eprintln!("skipping: no ::1 on lo (IPv6 disabled in this kernel or namespace)");
        return;
    }
    let mut ping = Ping::new(config(&["::1"]));
    wait_for_rounds(&ping);
    let (s, result) = collect(&mut ping);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(assert_all_replied(&s, "::1", 3), "::1");
}

#[test]
fn hostname_is_resolved_and_labelled_with_its_address() {
    let mut ping = Ping::new(config(&["localhost"]));
    wait_for_rounds(&ping);
    let (s, result) = collect(&mut ping);
    assert!(result.is_ok(), "{result:?}");
    let address = assert_all_replied(&s, "localhost", 3);
    let ip: IpAddr = address.parse().expect("address label is an IP");
    assert!(ip.is_loopback(), "{ip}");
}

#[test]
fn several_targets_ping_concurrently_without_stealing_replies() {
    // Raw sockets see each other's replies; identifier, sequence and source keep them apart.
    let targets = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let mut cfg = config(&targets);
    cfg.packets = 5;
    cfg.packet_interval = Duration::from_millis(5);
    let mut ping = Ping::new(cfg);
    wait_for_rounds(&ping);
    let (s, result) = collect(&mut ping);
    assert!(result.is_ok(), "{result:?}");
    for t in targets {
        assert_eq!(assert_all_replied(&s, t, 5), t);
    }
}

#[test]
fn unreachable_targets_lose_everything_and_never_block_collect() {
    let Some(ns) = Netns::create("unreach") else {
        return;
    };
    // 192.0.2.2 is on a link where nobody answers; 198.51.100.1 has no route at all
    // (the send fails with ENETUNREACH). Both only exist inside the namespace.
    let link = ns.try_ip(&["link", "add", "d0", "type", "dummy"])
        || (ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
            && ns.ip(&["link", "set", "d1", "up"]));
    assert!(link, "neither dummy nor veth links can be created");
    assert!(ns.ip(&["link", "set", "d0", "up"]));
    assert!(ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "d0"]));

    let silent = "192.0.2.2";
    let no_route = "198.51.100.1";
    let mut cfg = config(&[silent, no_route]);
    cfg.packets = 2;
    cfg.timeout = Duration::from_millis(700);
    let mut ping = ns.enter(|| Ping::new(cfg));

    // While the rounds wait for replies, collect returns at once with nothing.
    let started = Instant::now();
    while !ping.all_reported() {
        let t = Instant::now();
        let (_, result) = collect(&mut ping);
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(50),
            "collect blocked for {took:?}"
        );
        assert!(result.is_ok());
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "rounds never completed"
        );
        thread::sleep(Duration::from_millis(20));
    }

    let (s, result) = collect(&mut ping);
    assert!(
        result.is_ok(),
        "loss is a measurement, not a collector failure: {result:?}"
    );
    for t in [silent, no_route] {
        assert_eq!(gauge(&s, UP, t), Some(0.0), "{t}");
        assert_eq!(gauge(&s, LOSS, t), Some(1.0), "{t}");
        assert_eq!(gauge(&s, SENT, t), Some(2.0), "{t}");
        assert_eq!(gauge(&s, RECEIVED, t), Some(0.0), "{t}");
        for name in [RTT_MIN, RTT_MEDIAN, RTT_MAX, JITTER, RTT] {
            assert!(points(&s, name, t).is_empty(), "{t}: {name} with 100% loss");
        }
        let loss = &points(&s, LOSS, t)[0];
        assert_eq!(label(loss, "address"), Some(t));
    }
    let slots = lock(&ping.shared.slots);
    let Some(Ok(round)) = &slots[1].latest else {
        panic!("no round for {no_route}");
    };
    let error = round.error.as_deref().unwrap_or_default();
    assert!(error.contains("unreachable"), "{error}");
}

#[test]
fn unresolvable_target_is_a_collector_error() {
    // Inside an empty namespace so the failing DNS lookup cannot reach a real resolver.
    let Some(ns) = Netns::create("resolve") else {
        return;
    };
    let mut ping = ns.enter(|| Ping::new(config(&["anomalyd-test.invalid", "127.0.0.1"])));
    wait_for_rounds(&ping);
    let (s, result) = collect(&mut ping);
    let error = result.expect_err("resolution failure").to_string();
    assert!(error.contains("anomalyd-test.invalid"), "{error}");
    assert!(!error.contains("127.0.0.1"), "{error}");
    assert_eq!(gauge(&s, UP, "anomalyd-test.invalid"), Some(0.0));
    assert!(points(&s, LOSS, "anomalyd-test.invalid").is_empty());
    assert_eq!(gauge(&s, UP, "127.0.0.1"), Some(1.0));
}

#[test]
fn datagram_sockets_work_when_the_group_is_allowed() {
    let Some(ns) = Netns::create("dgram") else {
        return;
    };
    ns.sysctl("/proc/sys/net/ipv4/ping_group_range", "0 2147483647");
    let mut targets = vec!["127.0.0.1"];
    if has_ipv6_loopback(Some(&ns)) {
        targets.push("::1");
    } else {
        eprintln!("not testing IPv6 datagram sockets: no ::1 in the namespace");
    }
    let mut ping = ns.enter(|| Ping::with_socket_mode(config(&targets), SocketMode::Datagram));
    wait_for_rounds(&ping);
    let (s, result) = collect(&mut ping);
    assert!(result.is_ok(), "{result:?}");
    for t in targets {
        assert_eq!(assert_all_replied(&s, t, 3), t);
    }
}

#[test]
fn datagram_sockets_denied_is_a_clear_error() {
    let Some(ns) = Netns::create("denied") else {
        return;
    };
    // The kernel default: no group may open ping sockets.
    ns.sysctl("/proc/sys/net/ipv4/ping_group_range", "1 0");
    let mut ping =
        ns.enter(|| Ping::with_socket_mode(config(&["127.0.0.1"]), SocketMode::Datagram));
    wait_for_rounds(&ping);
    for _ in 0..2 {
        let (s, result) = collect(&mut ping);
        let error = result.expect_err("socket not permitted").to_string();
        assert!(error.contains("not permitted"), "{error}");
        assert!(error.contains("ping_group_range"), "{error}");
        assert_eq!(gauge(&s, UP, "127.0.0.1"), Some(0.0));
        assert!(points(&s, LOSS, "127.0.0.1").is_empty());
    }
}

/// Removes CAP_NET_RAW from the calling thread (capabilities are per thread on Linux,
/// and threads it spawns inherit the reduced set), so a root test can see what an
/// unprivileged daemon sees. False if the kernel refuses.
fn drop_net_raw() -> bool {
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and the two data words v3 requires.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) != 0 {
            return false;
        }
        data[0].effective &= !(1 << CAP_NET_RAW);
        data[0].permitted &= !(1 << CAP_NET_RAW);
        data[0].inheritable &= !(1 << CAP_NET_RAW);
        libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) == 0
    }
}

#[test]
fn without_cap_net_raw_auto_falls_back_to_datagram_sockets() {
    let Some(ns) = Netns::create("fallback") else {
        return;
    };
    ns.sysctl("/proc/sys/net/ipv4/ping_group_range", "0 2147483647");
    let ping = ns.enter(|| {
        if !drop_net_raw() {
            return None;
        }
        // Proves the capability is really gone for this thread.
        let raw = IcmpSocket::open(Family::V4, SocketMode::Raw, 1);
        assert!(
            matches!(raw, Err(OpenError::NotPermitted { .. })),
            "{raw:?}"
        );
        Some(Ping::new(config(&["127.0.0.1"])))
    });
    let Some(mut ping) = ping else {
        eprintln!("skipping: capset refused dropping CAP_NET_RAW");
        return;
    };
    wait_for_rounds(&ping);
    let (s, result) = collect(&mut ping);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(assert_all_replied(&s, "127.0.0.1", 3), "127.0.0.1");
}

#[test]
fn without_cap_net_raw_or_ping_group_the_error_names_both() {
    let Some(ns) = Netns::create("noperm") else {
        return;
    };
    ns.sysctl("/proc/sys/net/ipv4/ping_group_range", "1 0");
    let ping = ns.enter(|| drop_net_raw().then(|| Ping::new(config(&["127.0.0.1"]))));
    let Some(mut ping) = ping else {
        eprintln!("skipping: capset refused dropping CAP_NET_RAW");
        return;
    };
    wait_for_rounds(&ping);
    let (s, result) = collect(&mut ping);
    let error = result.expect_err("no ICMP socket").to_string();
    assert!(error.contains("CAP_NET_RAW"), "{error}");
    assert!(error.contains("ping_group_range"), "{error}");
    assert_eq!(gauge(&s, UP, "127.0.0.1"), Some(0.0));
}

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_lasting_problem_is_logged_once_and_its_end_once() {
    let shared = Arc::new(Shared {
        stop: Stop::new(),
        slots: Mutex::new(vec![Slot::default()]),
        workers: Arc::new(AtomicUsize::new(0)),
    });
    let mut worker = Worker {
        index: 0,
        target: "192.0.2.2".to_string(),
        config: config(&["192.0.2.2"]),
        mode: SocketMode::Auto,
        shared: Arc::clone(&shared),
        seq: 0,
        raw_ident: 0,
        fell_back: [false; 2],
        problem: None,
        answered: false,
        _alive: Alive::new(&shared.workers),
    };
    let lost = Round {
        address: "192.0.2.2".parse().expect("ip"),
        sent: 5,
        received: 0,
        rtts: Vec::new(),
        error: None,
    };
    let fine = Round {
        received: 5,
        rtts: vec![0.001; 5],
        ..lost.clone()
    };
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            worker.log_transition(&Ok(lost.clone()));
        }
        worker.log_transition(&Ok(fine.clone()));
        worker.log_transition(&Ok(fine.clone()));
    });
    let text = String::from_utf8(lock(&log.0).clone()).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    // Never answered yet: the warning says it is a configuration problem.
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains("100% loss")
            && lines[0].contains("has not answered since the start"),
        "{text}"
    );
    assert!(
        lines[1].contains("INFO") && lines[1].contains("again"),
        "{text}"
    );
    // Once it has answered, losing it again is an ordinary warning.
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        worker.log_transition(&Ok(lost.clone()));
    });
    let text = String::from_utf8(lock(&log.0).clone()).expect("utf8");
    assert!(
        text.contains("100% loss") && !text.contains("since the start"),
        "{text}"
    );
}

#[test]
fn a_target_that_never_answered_is_exported_as_such() {
    let p = Ping::new(config(&["192.0.2.9", "127.0.0.1"]));
    let round = |received| Round {
        address: "192.0.2.9".parse().expect("ip"),
        sent: 3,
        received,
        rtts: vec![0.001; received as usize],
        error: None,
    };
    p.shared.publish(0, Ok(round(0)));
    p.shared.publish(1, Ok(round(3)));
    let mut s = Sample::new(0);
    let mut ping = p;
    let _ = ping.collect(&mut s);
    assert_eq!(
        s.get("ping_target_answered", &[("target", "192.0.2.9")]),
        Some(0.0)
    );
    assert_eq!(
        s.get("ping_target_answered", &[("target", "127.0.0.1")]),
        Some(1.0)
    );
}

#[test]
fn dropping_ping_stops_its_threads() {
    // One worker sleeping between rounds, one in the middle of a long round.
    let sleeping = Ping::new(config(&["127.0.0.1"]));
    let mut cfg = config(&["127.0.0.1"]);
    cfg.packets = 10_000;
    cfg.packet_interval = Duration::from_millis(10);
    let busy = Ping::new(cfg);
    wait_for_rounds(&sleeping);
    thread::sleep(Duration::from_millis(50));

    let counts = [sleeping.workers(), busy.workers()];
    assert_eq!(counts[0].load(Ordering::SeqCst), 1);
    assert_eq!(counts[1].load(Ordering::SeqCst), 1);
    let dropped = Instant::now();
    drop(sleeping);
    drop(busy);
    while counts.iter().any(|c| c.load(Ordering::SeqCst) > 0) {
        assert!(
            dropped.elapsed() < Duration::from_secs(2),
            "workers still running after drop"
        );
        thread::sleep(Duration::from_millis(5));
    }
}
