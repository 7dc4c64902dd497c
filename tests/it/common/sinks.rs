//! Shared by the sink tests: a real HTTP/1.1 server on loopback (std TcpListener, one
//! thread per connection) that records every request and answers through a handler,
//! and helpers to build deliveries, sink configs and check webhook signatures.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use super::{free_port, incident};
use anomalyd::config::reader::Reader;
use anomalyd::tickets::sinks::{parse_sinks, SinkConfig};
use anomalyd::tickets::{Delivery, DeliveryKind};
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// The request carries `X-Anomalyd-Signature: sha256=<hex>`, the HMAC-SHA256 of its
/// body with `secret`, computed here with the `hmac` crate independently of the sink.
pub fn signed(req: &Request, secret: &str) -> bool {
    let Some(sig) = req.header("x-anomalyd-signature") else {
        return false;
    };
    let Some(hex) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(bytes) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(&req.body);
    mac.verify_slice(&bytes).is_ok()
}

/// The distinct `X-Anomalyd-Delivery` ids of `reqs`.
pub fn distinct_ids(reqs: &[Request]) -> BTreeSet<String> {
    reqs.iter()
        .map(|r| r.header("x-anomalyd-delivery").unwrap_or("").to_string())
        .collect()
}

/// Answer: status, body (JSON or text).
pub type Handler = dyn Fn(&Request) -> (u16, String) + Send + Sync;

pub struct Server {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(handler: Box<Handler>) -> Server {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind"), handler)
    }

    /// Listen on a given port (a sink's configured URL points there).
    pub fn start_at(port: u16, handler: Box<Handler>) -> Server {
        let t0 = Instant::now();
        loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => return Self::start_on(l, handler),
                Err(e) if t0.elapsed() < Duration::from_secs(10) => {
                    eprintln!("bind {port}: {e}; retrying");
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot bind port {port}: {e}"),
            }
        }
    }

    fn start_on(listener: TcpListener, handler: Box<Handler>) -> Server {
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::from(handler);
        let (r, s) = (requests.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (r, h) = (r.clone(), handler.clone());
                        thread::spawn(move || serve(conn, &r, &*h));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// Wait until `pred(requests)` holds (or the timeout passes); returns them.
    pub fn wait(&self, timeout: Duration, pred: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let t0 = Instant::now();
        loop {
            let r = self.requests();
            if pred(&r) || t0.elapsed() > timeout {
                return r;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, requests: &Mutex<Vec<Request>>, handler: &Handler) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut rd = BufReader::new(conn);
    // Keep-alive: serve requests until the client closes.
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if rd.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if rd.read_exact(&mut body).is_err() {
            return;
        }
        let req = Request {
            method,
            target,
            headers,
            body,
        };
        let (status, text) = handler(&req);
        requests.lock().expect("lock").push(req);
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

pub fn delivery(id: &str, ticket: &str, fp: &str, kind: DeliveryKind, at_ms: i64) -> Delivery {
    let mut incident = incident(ticket, fp, at_ms);
    if kind == DeliveryKind::Resolve {
        incident.resolved_ms = Some(at_ms);
    }
    Delivery {
        id: id.into(),
        ticket_id: ticket.into(),
        kind,
        incident,
        summary: format!("{kind:?}").to_lowercase(),
        body: format!("## {ticket}\n\n/var fills at 2 GiB/h."),
        at_ms,
    }
}

/// Parse a `tickets:` section's YAML with `parse_sinks` (the real config path).
pub fn sinks_from_yaml(yaml: &str) -> Result<Vec<SinkConfig>, Vec<String>> {
    let v: serde_yaml::Value = serde_yaml::from_str(yaml).expect("yaml");
    let mut r = Reader::default();
    let s = r.section(Some(&v), "tickets", &["sinks"]);
    let out = parse_sinks(&mut r, &s);
    if r.errors.is_empty() {
        Ok(out)
    } else {
        Err(r.errors)
    }
}

/// Open a tickets database with the outbox tables and enqueue `ds` for `sink`, each in
/// its own transaction (as the store does, one per ticket change).
pub fn enqueue(db: &std::path::Path, sink: &str, ds: &[Delivery]) {
    let mut conn = rusqlite::Connection::open(db).expect("open");
    anomalyd::tickets::outbox::init_schema(&conn).expect("schema");
    for d in ds {
        let tx = conn.transaction().expect("tx");
        anomalyd::tickets::outbox::enqueue(&tx, sink, d).expect("enqueue");
        tx.commit().expect("commit");
    }
}

/// Open tickets `(id, fingerprint)` through the real ticket store, queued for
/// `sinks` (what the daemon's desk does for new incidents), one transaction each.
pub fn open_tickets(db: &std::path::Path, sinks: &[&str], tickets: &[(String, String)]) {
    let store = anomalyd::tickets::Store::open(db)
        .expect("open the ticket store")
        .with_sinks(sinks.iter().map(|s| s.to_string()).collect());
    for (id, fp) in tickets {
        let t = anomalyd::sample::now_ms();
        store
            .apply(
                &anomalyd::incident::Change::Opened(incident(id, fp, t)),
                "report",
                None,
                t,
            )
            .expect("apply");
    }
}

/// Open ticket `INC-1` through the real ticket store, queued for `sinks`, then record
/// what remediation reports for it (as the daemon's remediate stage does): a
/// diagnosis naming `gzip` and `/var/log/app` and a run of `clean-app-logs`
/// (exit 0). With `dirs` > 0 the diagnosis lists that many more large directories
/// (long paths): an oversized report.
pub fn ticket_with_evidence(db: &std::path::Path, sinks: &[&str], dirs: usize) {
    let store = anomalyd::tickets::Store::open(db)
        .expect("open the ticket store")
        .with_sinks(sinks.iter().map(|s| s.to_string()).collect());
    let t = 1_700_000_000_000;
    store
        .apply(
            &anomalyd::incident::Change::Opened(incident("INC-1", "fpE", t)),
            "\n## What is anomalous\n\nA capacity forecast fired.",
            None,
            t,
        )
        .expect("apply");
    let mut largest = vec![serde_json::json!({"path": "/var/log/app", "bytes": 5u64 << 30})];
    for i in 0..dirs {
        largest.push(serde_json::json!({
            "path": format!("/var/lib/{}/{i}", "deep/".repeat(20)),
            "bytes": 1u64 << 20,
        }));
    }
    let diagnosis = serde_json::json!({
        "at_ms": t + 1000,
        "top_cpu": [{"pid": 4242, "command": "gzip", "uid": 0, "cpu_percent": 97.0, "rss_bytes": 1u64 << 20}],
        "top_memory": [{"pid": 7, "command": "java", "uid": 1000, "cpu_percent": 1.0, "rss_bytes": 2u64 << 30}],
        "largest_directories": largest,
    });
    store
        .add_event(
            "INC-1",
            t + 1000,
            "diagnose",
            "diagnosis: top CPU gzip (97%); top memory java (2048 MiB); largest directories /var/log/app (5120 MiB)",
            &diagnosis,
        )
        .expect("diagnosis");
    let run = serde_json::json!({
        "id": "run-1", "rule": "clean-app-logs", "ticket_id": "INC-1", "resource": "/var",
        "command": ["/usr/local/bin/clean-app-logs"], "result": "ok",
        "outcome": {"status": "exit 0", "duration_ms": 300}, "started_ms": t + 2000,
        "tripped": false,
    });
    store
        .add_event(
            "INC-1",
            t + 2300,
            "action",
            "remediation \"clean-app-logs\": exit 0 (ok, 0.3 s)",
            &run,
        )
        .expect("run");
}
