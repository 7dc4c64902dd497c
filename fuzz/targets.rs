//! Fuzz targets: each takes arbitrary bytes and hands them to one of the parsers that
//! meet outside input. None may panic, take over a second or allocate over 64 MiB,
//! whatever the bytes.
//!
//! Each target is a plain `fn(&[u8])` (libFuzzer's and cargo-fuzz's shape), driven two
//! ways on stable Rust: a short pass in the test suite (`tests/it/fuzz.rs`) and the
//! long run, `cargo run --profile ci --example fuzz` (`fuzz/run.rs`). Inputs are
//! the seeds below, mutated by [`mutate`] (no coverage guidance: structure comes from
//! the seeds and the dictionary of each target).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anomalyd::export::config::HttpConfig;
use anomalyd::export::http::{self, Health};
use anomalyd::export::metrics::Exporter;
use anomalyd::export::webconfig::{self, WebConfig};
use anomalyd::model::{Model, Scorer, Spec};
use anomalyd::sample::Record;

/// One target: its name, the function, its seeds and its dictionary.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    pub seeds: fn() -> Vec<Vec<u8>>,
    pub dict: &'static [&'static [u8]],
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "config",
        run: config,
        seeds: config_seeds,
        dict: YAML_DICT,
    },
    Target {
        name: "model",
        run: model,
        seeds: model_seeds,
        dict: JSON_DICT,
    },
    Target {
        name: "csv",
        run: csv,
        seeds: csv_seeds,
        dict: CSV_DICT,
    },
    Target {
        name: "proc",
        run: proc_files,
        seeds: proc_seeds,
        dict: PROC_DICT,
    },
    Target {
        name: "icmp",
        run: icmp,
        seeds: icmp_seeds,
        dict: &[],
    },
    Target {
        name: "http",
        run: http_request,
        seeds: http_seeds,
        dict: HTTP_DICT,
    },
];

// ---- the targets ----

/// The daemon's config and the web config, as text.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = anomalyd::settings::parse(&text);
    let _ = webconfig::parse(&text, Path::new("/nonexistent-fuzz-base"));
}

/// A model file, and scoring with it when it loads (a model that loads must score).
pub fn model(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = Model::from_json(&text, Path::new("fuzz.json")) {
        let record = Record {
            timestamp_ms: Some(1_700_000_000_000),
            values: m.schema().iter().map(|n| (n.clone(), 1.0)).collect(),
        };
        let mut scorer = Scorer::new(Arc::new(m));
        let _ = scorer.score(&record);
        let _ = scorer.score(&Record {
            timestamp_ms: None,
            values: Vec::new(),
        });
    }
}

pub fn csv(data: &[u8]) {
    let _ = anomalyd::model::csv::read_table_from(data, Path::new("fuzz.csv"));
}

/// Every /proc parser (stat, loadavg, meminfo, vmstat, net/dev, net/snmp, diskstats,
/// mounts) on the same text.
pub fn proc_files(data: &[u8]) {
    anomalyd::collect::parse_proc_for_fuzzing(&String::from_utf8_lossy(data));
}

pub fn icmp(data: &[u8]) {
    anomalyd::collect::ping::parse_reply_for_fuzzing(data);
}

/// The bytes as one client's whole connection to the HTTP server (routing, auth, the
/// ticket API), through memory; the answer is read to the end.
pub fn http_request(data: &[u8]) {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
    }
    let (plain, auth) = http_states();
    // Every other input goes to the server with basic auth.
    let state = if data.first().is_some_and(|b| b & 1 == 1) {
        auth
    } else {
        plain
    };
    let data = data.to_vec();
    RT.with(|rt| {
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let peer: SocketAddr = "127.0.0.9:40000".parse().unwrap();
            let config = HttpConfig::default();
            let served = tokio::spawn(async move {
                http::serve_stream(server, peer, state, &config).await;
            });
            let talk = async {
                let _ = client.write_all(&data).await;
                let _ = client.shutdown().await;
                let mut answer = Vec::new();
                let _ = client.read_to_end(&mut answer).await;
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), talk).await;
            drop(client);
            if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), served).await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        })
    });
}

/// The servers' state, built once: one without auth, one with a user (cost-4 bcrypt,
/// so wrong passwords stay cheap here), both with the ticket API on an empty store.
fn http_states() -> (http::State, http::State) {
    static STATES: OnceLock<(http::State, http::State)> = OnceLock::new();
    STATES
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("anomalyd-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let exporter = Exporter::new(false).unwrap();
            let health = Arc::new(Health::default());
            health.tick(anomalyd::sample::now_ms());
            let base = |web: WebConfig| {
                let tickets =
                    anomalyd::tickets::api::TicketsApi::new(dir.join("tickets.db"), Vec::new());
                let dashboard = anomalyd::export::web::Dashboard::new(
                    Default::default(),
                    Some(tickets.clone()),
                    Some(anomalyd::export::web::views::Views::new(
                        anomalyd::store::StateDir::at(&dir),
                        Default::default(),
                        "/sys".into(),
                        anomalyd::view::HealthConfig::default().weights,
                    )),
                    web.auth.is_some(),
                    true,
                );
                http::State {
                    rendered: exporter.rendered.clone(),
                    health: health.clone(),
                    web,
                    tickets: Some(tickets),
                    dashboard,
                    // A report takes half a second to look at the host: not fuzzed here
                    // (its query parsing has its own test in export/report.rs).
                    report: None,
                }
            };
            let hash = bcrypt::hash("s3cret", 4).unwrap();
            let web = webconfig::parse(
                &format!("basic_auth_users:\n  prom: '{hash}'\n"),
                Path::new("."),
            )
            .unwrap();
            (base(WebConfig::plain()), base(web))
        })
        .clone()
}

// ---- seeds and dictionaries ----

/// Small seeds, one per section, outnumber the two whole files (whose mutants cost a
/// millisecond each, mostly compiling their regular expressions), so a run spends its
/// inputs across every section.
fn config_seeds() -> Vec<Vec<u8>> {
    [
        include_str!("../config/anomalyd.yaml"),
        include_str!("../tests/configs/valid/full.yaml"),
        include_str!("../tests/configs/valid/minimal.yaml"),
        "interval: 1s\nhttp: {max_connections: 10, header_timeout: 2s, idle_timeout: 1m}\n",
        "basic_auth_users:\n  prom: $2y$04$abcdefghijklmnopqrstuu5Y0M0B0Q2m0t1S1Z0a3pWQ2a6u1qZ6\n\
         http_server_config:\n  headers: {X-A: b}\ntls_server_config: {min_version: TLS13}\n",
        "interval: [[[[1]]]]\nlisten: ':9187'\nhistory: {max_size: 1GiB, retention: 30d}\n",
        "collectors:\n  disk: {mount_points: {include: '/|/var', exclude: ''}}\n  ping: {targets: [127.0.0.1, '::1'], packets: 3}\n",
        "model: {warmup: 1h, retrain_interval: 6h}\nforecast: {window: 6h, risk: {horizon: 30m}}\n",
        "incidents:\n  open_after: 3\n  open_window: 5\n  silences:\n    - {label: cpu, starts: '2025-01-01T00:00:00Z', ends: '2025-01-02T00:00:00Z'}\n",
        "tickets:\n  sinks:\n    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h', secret_env: X}\n",
        "remediation:\n  enabled: true\n  rules:\n    - {name: fix, command: [/bin/true], match: {label: storage}, env: {A: b}}\n",
        "log_level: debug\npaths: {procfs: /proc}\nweb_config_file: web.yml\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

const YAML_DICT: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b": ",
    b"\n  ",
    b"- ",
    b"&a ",
    b"*a",
    b"!!str ",
    b"'",
    b"\"",
    b"#",
    b"|\n",
    b">\n",
    b"99999999999999999999999s",
    b"1e400",
    b"-1",
    b"0ms",
    b"NaN",
    b"9223372036854775807",
    b"18446744073709551616",
    b"1.5TiB",
    b"<<: *a",
    b"---\n",
    b"\xef\xbb\xbf",
];

fn model_seeds() -> Vec<Vec<u8>> {
    static SEED: OnceLock<String> = OnceLock::new();
    let json = SEED.get_or_init(|| {
        // A small model trained on a synthetic day with timestamps (time of day on).
        let records: Vec<Record> = (0..4 * 1440)
            .map(|i| {
                let t = i as f64;
                Record {
                    timestamp_ms: Some(1_700_000_000_000 + i * 60_000),
                    values: vec![
                        (
                            "cpu".into(),
                            0.3 + 0.1 * (t / 100.0).sin() + 0.01 * (t * 7.3).sin(),
                        ),
                        ("mem".into(), 0.5 + 0.05 * (t / 37.0).cos()),
                        ("net".into(), 100.0 + 10.0 * (t / 11.0).sin()),
                    ],
                }
            })
            .collect();
        Model::train(&records, &Spec::default()).unwrap().to_json()
    });
    vec![json.as_bytes().to_vec()]
}

const JSON_DICT: &[&[u8]] = &[
    b"558992244657865201",
    b"-1e308",
    b"1e308",
    b"0",
    b"-0",
    b"null",
    b"[]",
    b"{}",
    b"[1.0]",
    b"\"bins\": ",
    b"\"threshold\": ",
    b"18446744073709551615",
    b"9007199254740993",
    b",",
];

fn csv_seeds() -> Vec<Vec<u8>> {
    [
        "timestamp,cpu,\"disk{x=\"\"a,b\"\"}\"\n2024-05-01T02:00:00Z,1.5,\n1714528860,2,3\n",
        "\u{feff}timestamp,a\n1714528800,1\n1714528860,nan\n",
        "1,2,3\n4,5,6\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

const CSV_DICT: &[&[u8]] = &[
    b",",
    b"\"",
    b"\"\"",
    b"\n",
    b"\r\n",
    b"nan",
    b"timestamp",
    b"1e400",
    b"\xef\xbb\xbf",
];

fn proc_seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host/proc");
    [
        "stat",
        "loadavg",
        "meminfo",
        "vmstat",
        "net/dev",
        "net/snmp",
        "diskstats",
        "self/mounts",
    ]
    .iter()
    .filter_map(|f| std::fs::read(dir.join(f)).ok())
    .chain(std::iter::once(
        b"/dev/sda1 /mnt\\040x ext4 rw 0 0\n".to_vec(),
    ))
    .collect()
}

const PROC_DICT: &[&[u8]] = &[
    b" ",
    b"\n",
    b":",
    b"cpu",
    b"cpu0 ",
    b"Tcp:",
    b"|",
    b"\\040",
    b"18446744073709551616",
    b"-1",
];

fn icmp_seeds() -> Vec<Vec<u8>> {
    let echo = |kind: u8| {
        let mut m = vec![kind, 0, 0, 0, 0x12, 0x34, 0, 1];
        m.extend_from_slice(b"anomalyd0123456789abcdef");
        m
    };
    let mut v4 = vec![
        0x45, 0, 0, 52, 0, 0, 0x40, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
    ];
    v4.extend(echo(0));
    vec![echo(0), echo(129), echo(8), v4, vec![0x4f; 60]]
}

fn http_seeds() -> Vec<Vec<u8>> {
    [
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        "\x01GET /api/v1/tickets?open=true HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cHJvbTpzM2NyZXQ=\r\n\r\n",
        "GET /api/v1/tickets/INC-1 HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "GET /api/v1/tickets?open=maybe HTTP/1.0\r\n\r\n",
        // The dashboard: pages with ranges, a chart, an action with a form body.
        "GET /latency?since=7d&target=gw HTTP/1.1\r\nHost: x\r\n\r\nGET /?since=1h HTTP/1.1\r\n\r\n",
        "GET /charts/score.svg?since=24h HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /tickets/INC-1/assign HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 16\r\n\r\ncsrf=x&who=alice",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

const HTTP_DICT: &[&[u8]] = &[
    b"\r\n",
    b": ",
    b"GET ",
    b"HEAD ",
    b"/api/v1/tickets/",
    b"?open=",
    b"?since=",
    b"&target=",
    b"/tickets/",
    b"/ack",
    b"csrf=",
    b"POST ",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Authorization: Basic ",
    b"HTTP/1.1",
    b"%00",
    b"\x01",
];

// ---- mutation ----

/// xorshift64*: small, seedable, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Largest input made (a few inputs near it probe the size limits).
pub const MAX_INPUT: usize = 256 << 10;

/// A mutant of `seed`: one to eight edits (bit flips, random bytes, insertions and
/// deletions, dictionary tokens, repeated chunks, truncation, splices of `other`).
pub fn mutate(seed: &[u8], other: &[u8], dict: &[&[u8]], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(9) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            3 if !v.is_empty() => {
                let end = (at + 1 + rng.below(32)).min(v.len());
                v.drain(at.min(end)..end);
            }
            4 if !dict.is_empty() => {
                let t = dict[rng.below(dict.len())];
                v.splice(at..at, t.iter().copied());
            }
            5 if !v.is_empty() => {
                // A chunk repeated: deep nesting, long lines, many columns.
                let start = rng.below(v.len());
                let end = (start + 1 + rng.below(8)).min(v.len());
                let chunk = v[start..end].to_vec();
                let most = if rng.below(50) == 0 { 20_000 } else { 64 };
                let times = 1 + rng.below(most);
                let rep: Vec<u8> = chunk
                    .iter()
                    .copied()
                    .cycle()
                    .take(chunk.len() * times)
                    .collect();
                v.splice(start..start, rep);
            }
            6 => v.truncate(at),
            7 if !other.is_empty() => {
                let s = rng.below(other.len());
                let e = (s + 1 + rng.below(256)).min(other.len());
                v.splice(at..at, other[s..e].iter().copied());
            }
            _ => {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] = b"0123456789-.,:[]{}\n \"'"[rng.below(22)];
                }
            }
        }
        v.truncate(MAX_INPUT);
    }
    v
}

/// The `i`-th input of a run of `target` seeded with `seed`: the seeds themselves
/// first, then mutants (one in 64 pure random bytes).
pub fn input(target: &Target, seeds: &[Vec<u8>], rng: &mut Rng, i: usize) -> Vec<u8> {
    if i < seeds.len() {
        return seeds[i].clone();
    }
    if rng.below(64) == 0 {
        let n = rng.below(512);
        return (0..n).map(|_| rng.next() as u8).collect();
    }
    let a = &seeds[rng.below(seeds.len())];
    let b = &seeds[rng.below(seeds.len())];
    mutate(a, b, target.dict, rng)
}
