//! The fleet's side, against the real thing: a real Prometheus (Debian's package)
//! scraping a real node_exporter and a real anomalyd every second for a few
//! minutes, with `prometheus/anomalyd.rules.yml` and the dashboard's queries loaded
//! as rules. Then:
//! - `anomalyd train --prometheus` reads the node_exporter history (paged: the step
//!   is small enough that Prometheus refuses the range in one request) into a model
//!   whose feature names are the live daemon's, and a daemon started with it scores
//!   from its first tick; the same from anomalyd's own series, and through
//!   `model.bootstrap` at start;
//! - an unknown instance, one without node_exporter series, and a server that is not
//!   there each give a clear error;
//! - every panel query of `grafana/anomalyd-fleet.json` passes `promtool check rules`
//!   and returns series, and every rule of the rules file evaluates cleanly.
//!
//! The rules' own unit tests (`promtool test rules`) are here too.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{anomalyd, free_port, metric, Daemon};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, what: &str) -> Proc {
    Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} (tests/run.sh installs it): {e}")),
    )
}

fn get_json(url: &str) -> Option<Value> {
    let mut r = ureq::get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .ok()?;
    serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
}

/// An instant query's result list.
fn query(prom: &str, q: &str) -> Vec<Value> {
    let url = format!("{prom}/api/v1/query?query={}", encode(q));
    let v = get_json(&url).unwrap_or(Value::Null);
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every feature name a model file knows (scored and constant-skipped).
fn features(model: &Path) -> BTreeSet<String> {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(model).unwrap()).unwrap();
    ["schema", "skipped_constant"]
        .iter()
        .flat_map(|k| m[k].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The `N requests` of `train --prometheus`'s summary line.
fn requests(summary: &str) -> usize {
    let i = summary
        .find(" requests)")
        .unwrap_or_else(|| panic!("{summary}"));
    summary[..i].rsplit(' ').next().unwrap().parse().unwrap()
}

/// Every `expr` of the dashboard's panels, with Grafana's variables filled in as a
/// user who selected every host would see them.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = root().join("grafana/anomalyd-fleet.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".+");
            let name = format!(
                "dashboard:panel_{}_{}",
                p["id"],
                t["refId"].as_str().unwrap()
            );
            out.push((name, expr));
        }
    }
    out
}

/// The dashboard is provisionable as it is: a uid, no import-time `__inputs`, the data
/// source and the host as template variables, every panel on `${datasource}`.
#[test]
fn dashboard_is_provisionable_with_a_host_variable() {
    let path = root().join("grafana/anomalyd-fleet.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(d["uid"], "anomalyd-fleet");
    assert!(d.get("__inputs").is_none() && d["id"].is_null());
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |n: &str| vars.iter().find(|v| v["name"] == n).unwrap();
    assert_eq!(var("datasource")["type"], "datasource");
    let host = var("instance");
    assert_eq!(
        host["query"]["query"],
        "label_values(anomalyd_build_info, instance)"
    );
    assert_eq!(
        (host["multi"].as_bool(), host["includeAll"].as_bool()),
        (Some(true), Some(true))
    );
    let panels = d["panels"].as_array().unwrap();
    let ids: BTreeSet<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Anomaly score against threshold, per host",
        "Anomaly score / threshold across hosts",
        "Open incidents by label and severity",
        "Time to filesystem exhaustion, lowest first",
        "Ping latency per target",
        "Daemon CPU",
        "Daemon memory",
    ] {
        assert!(titles.contains(&want), "no panel {want:?} in {titles:?}");
    }
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert!(
                t["expr"]
                    .as_str()
                    .unwrap()
                    .contains("instance=~\"$instance\""),
                "{t}"
            );
        }
    }
    assert_eq!(
        panels
            .iter()
            .find(|p| p["title"] == "Anomaly score / threshold across hosts")
            .unwrap()["type"],
        "heatmap"
    );
}

#[test]
fn rules_pass_promtool_check_and_their_unit_tests() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(root().join("prometheus/anomalyd.rules.yml"))
        .output()
        .expect("promtool (Debian package prometheus)");
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("SUCCESS: 17 rules found"),
        "{t}"
    );
    assert!(!t.to_lowercase().contains("warning"), "{t}");
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(root().join("tests/prometheus/anomalyd.rules.test.yml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn prometheus_history_trains_a_model_the_daemon_scores_with_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t0 = Instant::now();

    // The host: node_exporter, and anomalyd with a short warm-up (its model's
    // feature names are "the live daemon's"), pinging loopback.
    let node_port = free_port();
    let _node = spawn(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}")),
        "prometheus-node-exporter",
    );
    let node = format!("127.0.0.1:{node_port}");
    std::fs::write(
        d.join("live.yaml"),
        "model: {warmup: 30s, retrain_interval: 1h}\n",
    )
    .unwrap();
    let mut live = Daemon::start(
        d,
        &[
            "--config",
            "live.yaml",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "250ms",
            "--state-dir",
            "live",
            "--ping-target",
            "127.0.0.1",
        ],
        &[],
    );
    let live_addr = live.addr.to_string();

    // Prometheus, scraping both and itself every second, with the rules file and the
    // dashboard's queries as rules (which promtool checks first).
    let dash_rules = d.join("dashboard.rules.yml");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (name, expr) in dashboard_queries() {
        rules += &format!(
            "      - record: {name}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        );
    }
    std::fs::write(&dash_rules, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&dash_rules)
        .output()
        .unwrap();
    assert!(out.status.success(), "dashboard queries:\n{}", text(&out));
    let prom_port = free_port();
    let prom = format!("http://127.0.0.1:{prom_port}");
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}', '{}']\n\
             scrape_configs:\n\
             - {{job_name: node, static_configs: [{{targets: ['{node}']}}]}}\n\
             - {{job_name: anomalyd, static_configs: [{{targets: ['{live_addr}']}}]}}\n\
             - {{job_name: prometheus, static_configs: [{{targets: ['127.0.0.1:{prom_port}']}}]}}\n",
            root().join("prometheus/anomalyd.rules.yml").display(),
            dash_rules.display(),
        ),
    )
    .unwrap();
    let _prom = spawn(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
        "prometheus",
    );

    // Nobody there: a clear error, no model.
    let gone = format!("http://127.0.0.1:{}", free_port());
    let out = anomalyd(&[
        "train",
        "--prometheus",
        &gone,
        "--instance",
        &node,
        "--out",
        d.join("x.json").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("cannot reach Prometheus at {gone}: ")),
        "{}",
        text(&out)
    );
    assert!(!d.join("x.json").exists());

    // A few minutes of history, scraped every second.
    let history = Duration::from_secs(150);
    while t0.elapsed() < history {
        std::thread::sleep(Duration::from_secs(1));
    }
    let n = query(
        &prom,
        &format!("count_over_time(node_load1{{instance=\"{node}\"}}[5m])"),
    );
    let points: f64 = n[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(points >= 120.0, "only {points} node_exporter scrapes");

    // 2 minutes at 10 ms is 12,001 points a series: Prometheus refuses it in one go...
    let end = (now_s() - 1.0).floor();
    let v = get_json(&format!(
        "{prom}/api/v1/query_range?query=node_load1&start={}&end={end}&step=0.01",
        end - 120.0
    ))
    .unwrap();
    assert!(
        v["error"].as_str().unwrap_or("").contains("11,000 points"),
        "Prometheus took it: {v}"
    );
    // ...so train pages: twice the requests of a 1 s step over the same range.
    let train = |step: &str, out: &Path| {
        let o = anomalyd(&[
            "train",
            "--prometheus",
            &prom,
            "--instance",
            &node,
            "--range",
            "2m",
            "--step",
            step,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let coarse = train("1s", &d.join("coarse.json"));
    let paged = train("10ms", &d.join("model.json"));
    eprintln!("{coarse}{paged}");
    assert!(paged.contains("node_exporter history"), "{paged}");
    let (one, two) = (requests(&coarse), requests(&paged));
    // One look-up (the instance's exporter), then one query per family: one page
    // each, or two.
    assert_eq!(two - 1, 2 * (one - 1), "{coarse}{paged}");

    // The live daemon's own model, trained on its warm-up: its feature names.
    let live_model = d.join("live/model.json");
    live.wait_log("model trained", Duration::from_secs(60));
    let live_features = features(&live_model);
    let boot = features(&d.join("model.json"));
    // Mounts come and go (other tests mount a tmpfs for seconds): a filesystem the
    // daemon did not have when it trained says nothing about the names.
    let mount = |f: &str| anomalyd::sample::label_value(f, "mountpoint").map(str::to_string);
    let live_mounts: BTreeSet<String> = live_features.iter().filter_map(|f| mount(f)).collect();
    let invented: Vec<&String> = boot
        .difference(&live_features)
        .filter(|f| mount(f).is_none_or(|m| live_mounts.contains(&m)))
        .collect();
    assert!(
        invented.is_empty(),
        "names the daemon does not produce: {invented:?}"
    );
    assert!(
        boot.iter()
            .any(|f| f.starts_with("filesystem_") && live_features.contains(f)),
        "no filesystem feature in common: {boot:?}"
    );
    // What the daemon has and node_exporter has not: no equivalent by default, ping
    // (no blackbox here), and mounts node_exporter does not see (it reads PID 1's).
    let node_mounts: BTreeSet<String> = query(
        &prom,
        &format!("node_filesystem_size_bytes{{instance=\"{node}\"}}"),
    )
    .iter()
    .filter_map(|s| s["metric"]["mountpoint"].as_str().map(str::to_string))
    .collect();
    let explained = |f: &str| {
        f.starts_with("ping_")
            || f.starts_with("tcp_attempt_fails")
            || f.starts_with("tcp_established_resets")
            || (f.starts_with("filesystem_")
                && anomalyd::sample::label_value(f, "mountpoint")
                    .is_some_and(|m| !node_mounts.contains(m)))
    };
    let missing: Vec<&String> = live_features
        .difference(&boot)
        .filter(|f| !explained(f))
        .collect();
    assert!(
        missing.is_empty(),
        "live features not bootstrapped: {missing:?}"
    );
    assert!(boot.len() >= 25, "{boot:?}");

    // A daemon with that model scores from its first tick.
    std::fs::create_dir_all(d.join("b")).unwrap();
    std::fs::copy(d.join("model.json"), d.join("b/model.json")).unwrap();
    let b = Daemon::start(
        d,
        &[
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "250ms",
            "--state-dir",
            "b",
        ],
        &[],
    );
    let first = b.wait_for("/metrics", Duration::from_secs(10), |m| {
        m.contains("anomalyd_model_trained")
    });
    assert_eq!(
        metric(&first, "anomalyd_model_trained"),
        Some(1.0),
        "{first}"
    );
    assert!(
        metric(&first, "anomalyd_anomaly_score").is_some(),
        "{first}"
    );
    drop(b);

    // Against anomalyd's own series (auto-detected): re-training a host centrally.
    let own = d.join("own.json");
    let o = anomalyd(&[
        "train",
        "--prometheus",
        &prom,
        "--instance",
        &live_addr,
        "--range",
        "2m",
        "--step",
        "1s",
        "--out",
        own.to_str().unwrap(),
    ]);
    assert!(
        o.status.success() && text(&o).contains("anomalyd history"),
        "{}",
        text(&o)
    );
    let own = features(&own);
    let foreign: Vec<&String> = own
        .difference(&live_features)
        .filter(|f| mount(f).is_none_or(|m| live_mounts.contains(&m)))
        .collect();
    assert!(foreign.is_empty(), "{foreign:?}");
    assert!(
        own.iter()
            .any(|f| f.starts_with("ping_rtt_median_seconds{target=\"127.0.0.1\"")),
        "{own:?}"
    );

    // An instance Prometheus does not know, and one without node_exporter series.
    let o = anomalyd(&[
        "train",
        "--prometheus",
        &prom,
        "--instance",
        "web-9:9100",
        "--out",
        "/dev/null",
    ]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("knows no instance \"web-9:9100\"") && t.contains(&node),
        "{t}"
    );
    let selfscrape = format!("127.0.0.1:{prom_port}");
    let o = anomalyd(&[
        "train",
        "--prometheus",
        &prom,
        "--instance",
        &selfscrape,
        "--range",
        "2m",
        "--out",
        "/dev/null",
    ]);
    let t = text(&o);
    assert!(
        !o.status.success()
            && t.contains("has no node_exporter or anomalyd series for instance")
            && t.contains("job \"prometheus\""),
        "{t}"
    );

    // model.bootstrap: a daemon started without a model reads it from Prometheus first.
    std::fs::write(
        d.join("boot.yaml"),
        format!("model:\n  bootstrap:\n    prometheus: {prom}\n    instance: '{node}'\n    range: 2m\n    step: 1s\n"),
    )
    .unwrap();
    let out = anomalyd(&["check-config", d.join("boot.yaml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let mut c = Daemon::start(
        d,
        &[
            "--config",
            "boot.yaml",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "250ms",
            "--state-dir",
            "c",
        ],
        &[],
    );
    c.wait_log("model bootstrapped", Duration::from_secs(1));
    let first = c.wait_for("/metrics", Duration::from_secs(10), |m| {
        m.contains("anomalyd_model_trained")
    });
    assert_eq!(
        metric(&first, "anomalyd_model_trained"),
        Some(1.0),
        "{first}"
    );
    assert!(d.join("c/model.json").exists());
    drop(c);

    // The dashboard's queries return series, and every rule evaluates cleanly.
    for (name, expr) in dashboard_queries() {
        let r = query(&prom, &expr);
        assert!(!r.is_empty(), "{name}: {expr} returned no series");
    }
    let rules = get_json(&format!("{prom}/api/v1/rules")).unwrap();
    let mut n = 0;
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            n += 1;
            assert_eq!(r["health"], "ok", "{r}");
        }
    }
    assert_eq!(n, 17 + dashboard_queries().len());
    let hosts = query(&prom, "fleet:anomalyd_hosts:count");
    assert_eq!(hosts[0]["value"][1], "1", "{hosts:?}");
    drop(live);
}

fn now_s() -> f64 {
    anomalyd::sample::now_ms() as f64 / 1000.0
}
