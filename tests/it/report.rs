//! `anomalyd report` and `GET /report`, on a replayed history in a temp state dir.
//!
//! The fixture ([`replayed`]): 7 hours of minute rows of a host with a CPU, a memory,
//! a disk `sdb` (two 4-minute saturations, each an incident), a network interface, a
//! filesystem `/data` that fills at 40 MiB a minute for the last hour and a half, and
//! a ping target `gw` whose RTT rises and
//! which loses echoes for ten minutes near the end. Replayed through the daemon's own
//! pipeline (`anomalyd replay`), so the history holds the scores and thresholds the
//! model gave, and `tickets.db` the incidents.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{anomalyd, skip, stdout_of, Daemon};

/// The first row's time (2023-11-14 22:13:20 UTC) and the number of minute rows.
const T0: i64 = 1_700_000_000;
const ROWS: i64 = 420;
/// The end of the fixture's period, as `--until` takes it: the last row's minute.
const UNTIL: &str = "2023-11-15T05:13:00Z";

const PATTERN: [f64; 10] = [0.0, 0.3, 0.7, 1.0, 0.8, 0.4, 0.1, 0.5, 0.9, 0.6];

fn csv() -> String {
    let mut s = String::from(
        "timestamp,\"cpu_utilization_ratio{mode=\"\"idle\"\"}\",memory_used_ratio,\
         \"disk_busy_ratio{device=\"\"sdb\"\"}\",\
         \"network_receive_bytes_per_second{interface=\"\"eth0\"\"}\",\
         \"filesystem_available_bytes{mountpoint=\"\"/data\"\",device=\"\"sdc\"\",fstype=\"\"ext4\"\"}\",\
         \"ping_rtt_min_seconds{target=\"\"gw\"\",address=\"\"127.0.0.1\"\"}\",\
         \"ping_rtt_median_seconds{target=\"\"gw\"\",address=\"\"127.0.0.1\"\"}\",\
         \"ping_rtt_max_seconds{target=\"\"gw\"\",address=\"\"127.0.0.1\"\"}\",\
         \"ping_loss_ratio{target=\"\"gw\"\",address=\"\"127.0.0.1\"\"}\"\n",
    );
    // A fixed pseudo-random noise (an LCG), so the model learns a real spread.
    let mut seed: u64 = 12_345;
    let mut noise = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    };
    for i in 0..ROWS {
        let p = PATTERN[(i % 10) as usize] + 0.3 * noise();
        let q = PATTERN[((i * 3) % 10) as usize] + 0.3 * noise();
        let burst = (200..204).contains(&i) || (304..308).contains(&i);
        let disk = if burst { 0.98 } else { 0.1 + 0.02 * q };
        // 0.40 ms, rising to 0.70 ms over the last two hours; 20 % lost for 10 minutes.
        let rtt = 0.0004
            + if i > 300 {
                0.0003 * (i - 300) as f64 / 120.0
            } else {
                0.0
            };
        let loss = if (380..390).contains(&i) { 0.2 } else { 0.0 };
        writeln!(
            s,
            "{},{:.4},{:.4},{disk:.4},{:.1},{:.0},{:.6},{:.6},{:.6},{loss}",
            T0 + i * 60,
            0.7 - 0.05 * p,
            0.5 + 0.02 * q,
            1e6 * (1.0 + 0.1 * p),
            50e9 - 40.0 * 1048576.0 * (i - 330).max(0) as f64,
            rtt * 0.95,
            rtt,
            rtt * (1.1 + 0.1 * q),
        )
        .unwrap();
    }
    s
}

/// The fixture, replayed into `dir/state`; returns (state dir, config).
fn replayed(dir: &Path) -> (PathBuf, PathBuf) {
    let input = dir.join("host.csv");
    std::fs::write(&input, csv()).unwrap();
    let cfg = dir.join("host.yaml");
    std::fs::write(
        &cfg,
        "interval: 1m\nmodel:\n  warmup: 2h\n  probation: 0s\n  retrain_interval: 365d\n\
         incidents:\n  host: test-host\n  open_for: 2m\n  open_window: 3m\n  resolve_for: 5m\n  \
         recent_factor: 0\n  reopen_window: 0s\n  flap_max_opens: 0\nforecast:\n  window: 2h\n",
    )
    .unwrap();
    let state = dir.join("state");
    stdout_of(&[
        "replay",
        "--input",
        input.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    (state, cfg)
}

fn until_ms() -> i64 {
    anomalyd::text::parse_timestamp_ms(UNTIL).unwrap()
}

/// The host as the golden file has it: fixed facts, no process table.
fn fixed_live() -> anomalyd::view::report::Live {
    anomalyd::view::report::Live {
        facts: anomalyd::view::facts::HostFacts {
            host_name: "test-host".into(),
            os: "Debian GNU/Linux 13 (trixie)".into(),
            kernel: "6.12.0".into(),
            arch: "x86_64".into(),
            cores: 4,
            memory_bytes: 8 << 30,
            swap_bytes: 1 << 30,
            uptime_seconds: 3 * 86_400 + 3600,
            links: vec![anomalyd::view::facts::Link {
                interface: "eth0".into(),
                bits_per_second: 100_000_000,
            }],
        },
        processes: None,
        walk_directories: false,
    }
}

fn source(state: &Path, cfg: &Path) -> anomalyd::view::report::Source {
    let config = anomalyd::settings::load(cfg).unwrap();
    config.report_source(&anomalyd::store::StateDir::at(state))
}

/// The history keeps each sample's score and threshold beside the features, and a
/// model trained from that history has neither among its features.
#[test]
fn the_history_keeps_the_score_and_training_never_reads_it() {
    use anomalyd::store::derived::{ANOMALY_SCORE, ANOMALY_THRESHOLD};
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = replayed(dir.path());
    let h = anomalyd::store::History::open(
        state.join("history.db"),
        &anomalyd::store::HistoryConfig::default(),
    )
    .unwrap();
    let tier = anomalyd::store::Tier::Minute;
    let scores = h.tier_series(ANOMALY_SCORE, 0, i64::MAX, tier).unwrap();
    let thresholds = h.tier_series(ANOMALY_THRESHOLD, 0, i64::MAX, tier).unwrap();
    // Scored from the first training (after the 2 h warm-up) on: 420 - 120 rows.
    assert!(
        (295..=301).contains(&scores.len()),
        "{} scored rows",
        scores.len()
    );
    assert_eq!(scores.len(), thresholds.len());
    assert!(
        scores.iter().any(|(_, s)| *s > thresholds[0].1),
        "the bursts score high"
    );
    let rows = h.training_rows(0, 100_000).unwrap();
    assert!(rows
        .iter()
        .any(|r| r.values.iter().any(|(n, _)| n == ANOMALY_SCORE)));
    let model = anomalyd::model::Model::train(&rows, &anomalyd::model::Spec::default()).unwrap();
    assert!(
        model
            .schema()
            .iter()
            .all(|n| !anomalyd::store::derived::is_derived(n)),
        "{:?}",
        model.schema()
    );
    assert!(model.schema().iter().any(|n| n == "memory_used_ratio"));
}

/// The Markdown report of the replayed history (fixed clock, fixed host facts) is the
/// checked-in golden file. `UPDATE_GOLDEN=1` rewrites it.
#[test]
fn the_markdown_report_of_a_replayed_history_matches_its_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let (state, cfg) = replayed(dir.path());
    let r = anomalyd::view::report::build(
        &source(&state, &cfg),
        Duration::from_secs(8 * 3600),
        until_ms(),
        &fixed_live(),
        &mut |_| {},
    )
    .unwrap();
    let got = anomalyd::view::report::markdown(&r);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.md");
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want =
        std::fs::read_to_string(&golden).expect("golden file (create it with UPDATE_GOLDEN=1)");
    assert_eq!(got, want, "report differs from {}", golden.display());
}

/// Checks an HTML document with python3's own parser (tests/it/report_html.py):
/// well formed, the sections and charts, no external URL. Returns its summary line.
fn check_html(html: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/report_html.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(html)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `anomalyd report --format html --out FILE`: the page parses, has every section, an
/// SVG per chart (score, resource use, a heatmap per ping target) and no external URL.
#[test]
fn the_html_report_parses_has_every_section_and_chart_and_no_external_url() {
    let dir = tempfile::tempdir().unwrap();
    let (state, cfg) = replayed(dir.path());
    let out = dir.path().join("report.html");
    stdout_of(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--since",
        "8h",
        "--until",
        UNTIL,
        "--out",
        out.to_str().unwrap(),
    ]);
    let summary = check_html(&out);
    assert!(summary.contains("svg=3"), "{summary}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<td>INC-1</td>"), "the incidents are listed");
}

/// `--format json` is the report as JSON, with every part.
#[test]
fn the_json_report_parses_with_every_part() {
    let dir = tempfile::tempdir().unwrap();
    let (state, cfg) = replayed(dir.path());
    let text = stdout_of(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--since",
        "8h",
        "--until",
        UNTIL,
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "facts",
        "model",
        "health",
        "timeline",
        "incidents",
        "tickets",
        "forecasts",
        "heatmaps",
        "recommendations",
    ] {
        assert!(v.get(key).is_some(), "{key} missing");
    }
    assert_eq!(v["heatmaps"][0]["target"], "gw");
    assert_eq!(v["health"]["parts"].as_array().unwrap().len(), 4);
    assert!(v["timeline"]["samples"].as_u64().unwrap() > 200);
    let rules: Vec<&str> = v["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"filesystem-full"), "{rules:?}");
    assert!(rules.contains(&"ping-loss"), "{rules:?}");
}

/// Bad `--since` values are refused with a sentence saying what is accepted.
#[test]
fn bad_since_values_are_refused_clearly() {
    for bad in ["-5", "99999d", "0s", "soon", "5"] {
        let out = anomalyd(&["report", "--since", bad, "--state-dir", "/nonexistent"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--since") && err.contains("such as 1h, 24h or 7d"),
            "{bad}: {err}"
        );
    }
}

/// A state directory that is missing, has no history, or a corrupt one: one clear
/// line, exit 1, and nothing created or moved.
#[test]
fn a_missing_or_corrupt_state_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = anomalyd(&["report", "--state-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no state directory at"), "{err}");
    assert!(!missing.exists());

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = anomalyd(&["report", "--state-dir", empty.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no history in"), "{err}");
    assert!(!empty.join("history.db").exists());

    std::fs::write(empty.join("history.db"), vec![0x42u8; 8192]).unwrap();
    let out = anomalyd(&["report", "--state-dir", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read the history"), "{err}");
    assert_eq!(std::fs::read(empty.join("history.db")).unwrap().len(), 8192);
}

/// `GET /report` answers behind the same basic auth as /metrics: 401 without the
/// credentials, the page with them; a bad `since` is a 400.
#[test]
fn get_report_needs_the_credentials_when_basic_auth_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = replayed(dir.path());
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(
        dir.path().join("web.yml"),
        format!("basic_auth_users:\n  alice: '{hash}'\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "web_config_file: web.yml\ninterval: 1s\nmodel:\n  enabled: false\n",
    )
    .unwrap();
    let d = Daemon::start(
        dir.path(),
        &[
            "--config",
            "a.yaml",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:s3cret")
    );
    let (status, _) = crate::common::http_get(d.addr, "/report", None);
    assert_eq!(status, 401);
    let (status, body) = crate::common::http_get(d.addr, "/report?since=7d", Some(&auth));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("<!DOCTYPE html>") && body.contains("id=\"score-chart\""));
    let (status, body) = crate::common::http_get(d.addr, "/report?format=md", Some(&auth));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("# Health report"), "{body}");
    for bad in [
        "/report?since=-5",
        "/report?since=99999d",
        "/report?format=pdf",
    ] {
        let (status, body) = crate::common::http_get(d.addr, bad, Some(&auth));
        assert_eq!(status, 400, "{bad}: {body}");
    }
    d.stop();
}

/// The page as a person sees it: headless Chromium (Debian's `chromium`) loads the
/// HTML report, the DOM it rendered has every section and an SVG per chart, and a
/// screenshot is kept in `target/screenshots/report.png`.
#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"].iter().find(|c| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        skip("no chromium (tests/run.sh installs Debian's chromium as root)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (state, cfg) = replayed(dir.path());
    let html = dir.path().join("report.html");
    stdout_of(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--since",
        "8h",
        "--until",
        UNTIL,
        "--out",
        html.to_str().unwrap(),
    ]);
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let url = format!("file://{}", html.display());
    let profile = dir.path().join("profile");
    let base = |extra: &[&str]| {
        let mut c = Command::new(chromium);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url);
        c
    };
    let dom = base(&["--dump-dom"]).output().unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let rendered = dir.path().join("rendered.html");
    std::fs::write(&rendered, &dom.stdout).unwrap();
    let summary = check_html(&rendered);
    assert!(summary.contains("svg=3"), "{summary}");
    let shot = shots.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let out = base(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1000,3000",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
