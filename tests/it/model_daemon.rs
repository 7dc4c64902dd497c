//! The model inside the real daemon: it learns from its own history after the
//! warm-up, exports its verdicts, saves the model, reloads it on restart, and rejects
//! a corrupt model file with a clear message and learns afresh. Also the model
//! commands (`train`, `score`, `replay`) on a CSV file.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use crate::common;
use crate::common::{metric, Daemon};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn write_config(dir: &Path) -> String {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/default.json"))
        .unwrap();
    let spec = spec.replace("\"min_rows\": 60", "\"min_rows\": 10");
    assert!(spec.contains("\"min_rows\": 10"));
    std::fs::write(dir.join("spec.json"), spec).unwrap();
    let cfg = dir.join("anomalyd.yaml");
    std::fs::write(
        &cfg,
        format!(
            "interval: 100ms\nstate_dir: {}\nmodel:\n  warmup: 2s\n  retrain_interval: 1h\n  spec_file: {}\n",
            dir.join("state").display(),
            dir.join("spec.json").display()
        ),
    )
    .unwrap();
    cfg.to_str().unwrap().to_string()
}

#[test]
fn learns_exports_saves_reloads_and_rejects_corrupt_models() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let mut d = Daemon::start(
        dir.path(),
        &["--config", &cfg, "--listen", "127.0.0.1:0"],
        &[],
    );
    let body = d.wait_for("/metrics", SECS(5), |b| {
        b.contains("anomalyd_model_trained")
    });
    assert_eq!(
        metric(&body, "anomalyd_model_trained"),
        Some(0.0),
        "trained before the warm-up"
    );
    // Issue #17: the phase and when it ends, on /metrics and in the log.
    assert_eq!(
        metric(&body, "anomalyd_model_state{state=\"warming_up\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        metric(&body, "anomalyd_model_state{state=\"trained\"}"),
        Some(0.0)
    );
    let ready = metric(&body, "anomalyd_model_ready_seconds").unwrap();
    assert!((0.0..=2.0).contains(&ready), "warm-up is 2 s: {ready}");
    let line = d.wait_log("model: warming up; first training at", SECS(5));
    assert!(line.contains("UTC"), "{line}");
    let body = d.wait_for("/metrics", SECS(30), |b| {
        metric(b, "anomalyd_model_trained") == Some(1.0) && b.contains("anomalyd_anomaly_score")
    });
    // Trained on seconds of history: on probation (24 h by default) for about a day.
    assert_eq!(
        metric(&body, "anomalyd_model_state{state=\"probation\"}"),
        Some(1.0),
        "{body}"
    );
    let ready = metric(&body, "anomalyd_model_ready_seconds").unwrap();
    assert!((86_000.0..=86_400.0).contains(&ready), "{ready}");
    let line = d.wait_log("on probation until", SECS(5));
    assert!(line.contains("anomaly tickets open muted"), "{line}");
    assert!(metric(&body, "anomalyd_anomaly_threshold").unwrap() > 0.0);
    assert!(metric(&body, "anomalyd_model_training_rows").unwrap() >= 10.0);
    assert!(metric(&body, "anomalyd_model_features").unwrap() > 5.0);
    assert!(matches!(metric(&body, "anomalyd_anomaly"), Some(v) if v == 0.0 || v == 1.0));
    let model_file = dir.path().join("state/model.json");
    assert!(model_file.exists(), "model not saved");
    let (exit, _) = d.stop();
    assert!(exit.success());

    // Restart: the saved model scores from the first tick.
    let mut d = Daemon::start(
        dir.path(),
        &["--config", &cfg, "--listen", "127.0.0.1:0"],
        &[],
    );
    d.wait_log("loaded saved model", SECS(5));
    let body = d.wait_for("/metrics", SECS(5), |b| {
        b.contains("anomalyd_model_trained")
    });
    assert_eq!(metric(&body, "anomalyd_model_trained"), Some(1.0));
    d.stop();

    // A corrupt model is refused with a clear message, and the daemon learns again.
    std::fs::write(
        &model_file,
        "{\"format\": \"anomalyd-model\", \"version\": 1, garbage",
    )
    .unwrap();
    let mut d = Daemon::start(
        dir.path(),
        &["--config", &cfg, "--listen", "127.0.0.1:0"],
        &[],
    );
    let line = d.wait_log("will learn afresh", SECS(5));
    assert!(
        line.contains("model.json"),
        "message should name the file: {line}"
    );
    d.wait_for("/metrics", SECS(30), |b| {
        metric(b, "anomalyd_model_trained") == Some(1.0)
    });
    d.stop();
}

/// A CSV with a timestamp column, two correlated features and a spike in `disk` late
/// in the series.
fn series(path: &Path, rows: usize, spike_at: usize) {
    let mut s = String::from("timestamp,cpu,disk,net\n");
    for i in 0..rows {
        let t = 1_700_000_000 + i as i64 * 60;
        let phase = (i as f64 / 30.0).sin();
        let noise = ((i * 7919) % 13) as f64 / 130.0;
        let disk = if (spike_at..spike_at.saturating_add(20)).contains(&i) {
            40.0
        } else {
            2.0 + phase + noise
        };
        s.push_str(&format!(
            "{t},{},{disk},{}\n",
            0.5 + 0.2 * phase + noise / 10.0,
            100.0 + 10.0 * phase
        ));
    }
    std::fs::write(path, s).unwrap();
}

fn anomalyd(args: &[&str]) -> (bool, String, String) {
    let out = common::anomalyd(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn train_score_and_replay_commands() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    let test = dir.path().join("test.csv");
    series(&train, 600, usize::MAX);
    series(&test, 400, 300);
    let model = dir.path().join("m.json");
    let (ok, _, err) = anomalyd(&[
        "train",
        "--input",
        train.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // Rows a minute apart: live samples will be weighed against a minute.
    assert!(err.contains("smoothing per 60 s"), "{err}");
    let (ok, out, err) = anomalyd(&[
        "score",
        "--model",
        model.to_str().unwrap(),
        "--input",
        test.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // The input has times: so has the output, first.
    assert_eq!(lines[0], "timestamp,score,anomaly,cause");
    assert_eq!(lines.len(), 401);
    assert_eq!(
        anomalyd::text::parse_timestamp_ms(lines[1].split(',').next().unwrap()),
        Some(1_700_000_000_000),
        "{}",
        lines[1]
    );
    let flagged: Vec<&str> = lines[1..]
        .iter()
        .filter(|l| l.split(',').nth(2) == Some("1"))
        .copied()
        .collect();
    assert!(!flagged.is_empty(), "the spike was not flagged");
    assert!(
        lines[301..321].iter().any(|l| l.ends_with(",1,disk")),
        "spike rows should blame disk"
    );

    // Replay: same file through the daemon's pipeline; warm-up rows are 0,0,
    let cfg = dir.path().join("replay.yaml");
    std::fs::write(
        &cfg,
        "interval: 1m\nmodel:\n  warmup: 3h\n  retrain_interval: 1d\n",
    )
    .unwrap();
    let both = dir.path().join("both.csv");
    let mut text = std::fs::read_to_string(&train).unwrap();
    text.push_str(
        &std::fs::read_to_string(&test)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                // shift the test half after the train half
                let (t, rest) = l.split_once(',').unwrap();
                format!("{},{rest}\n", t.parse::<i64>().unwrap() + 600 * 60)
            })
            .collect::<String>(),
    );
    std::fs::write(&both, text).unwrap();
    let (ok, out, err) = anomalyd(&[
        "replay",
        "--input",
        both.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1001);
    assert_eq!(lines[0], "timestamp,score,anomaly,cause");
    assert!(
        lines[1..170].iter().all(|l| l.ends_with("Z,0,0,")),
        "scored during the 3h warm-up"
    );
    assert!(lines[200..]
        .iter()
        .any(|l| l.split(',').nth(1).unwrap().parse::<f64>().unwrap() > 0.0));
    assert!(
        lines[901..921].iter().any(|l| l.ends_with(",1,disk")),
        "replay missed the spike"
    );
    let (ok, out2, _) = anomalyd(&[
        "replay",
        "--input",
        both.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(ok && out2 == out, "replay is not deterministic");
}

#[test]
fn corrupt_model_file_is_refused_by_score() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.json");
    std::fs::write(&m, "not json").unwrap();
    let input = dir.path().join("x.csv");
    series(&input, 10, usize::MAX);
    let (ok, _, err) = anomalyd(&[
        "score",
        "--model",
        m.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("m.json"), "{err}");
}

/// Issue #17: `train --history` on minutes of history made a model that paged at the
/// next start. It is refused, saying how much history there is and how much is
/// needed, unless `--force`.
#[test]
fn train_from_a_short_history_is_refused_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    // The daemon would wait an hour before training.
    let cfg_text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("warmup: 2s", "warmup: 1h");
    std::fs::write(&cfg, cfg_text).unwrap();
    let d = Daemon::start(
        dir.path(),
        &["--config", &cfg, "--listen", "127.0.0.1:0"],
        &[],
    );
    d.wait_for("/metrics", SECS(10), |b| {
        b.contains("anomalyd_model_trained")
    });
    // A few seconds of 100 ms samples: enough rows for the test spec, far from an hour.
    std::thread::sleep(SECS(3));
    d.stop();
    let (ok, _, err) = anomalyd(&["train", "--history", "--config", &cfg]);
    assert!(!ok, "trained on seconds of history");
    assert!(err.contains("less than model.warmup (1h)"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(!dir.path().join("state/model.json").exists());
    let (ok, _, err) = anomalyd(&["train", "--history", "--force", "--config", &cfg]);
    assert!(ok, "{err}");
    assert!(dir.path().join("state/model.json").exists());
}
