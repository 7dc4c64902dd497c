//! Forecasts against real filesystems and real memory pressure: the daemon watches a
//! tmpfs the test mounts and fills at a steady rate (the ETA must be right early and
//! the event must fire in time), a second tmpfs where big files are written and
//! deleted at once (no event), and a process that allocates memory steadily. Also
//! `replay --forecast` on a recorded series, and `collect --once` reading the trend
//! from the state directory's history.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{metric, Daemon, Tmpfs};

fn config(dir: &Path, mounts: &[&Path], extra: &str) -> PathBuf {
    let include = mounts
        .iter()
        .map(|m| regex_lite::escape(m.to_str().unwrap()))
        .collect::<Vec<_>>()
        .join("|");
    let cfg = dir.join("anomalyd.yaml");
    std::fs::write(
        &cfg,
        format!(
            "interval: 200ms\nstate_dir: {}\nmodel:\n  enabled: false\ncollectors:\n  network:\n    enabled: false\n  ping:\n    enabled: false\n  disk:\n    mount_points:\n      include: '{include}'\n      exclude: ''\nhistory:\n  flush_interval: 1s\nforecast:\n  window: 20s\n  buckets: 40\n  min_span: 4s\n{extra}",
            dir.join("state").display()
        ),
    )
    .unwrap();
    cfg
}

/// The value of `name{...}` whose labels contain `needle`.
fn labelled(body: &str, name: &str, needle: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(needle))
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

/// `anomalyd replay --input INPUT --config CFG [extra]`'s output; it must succeed.
fn replay(input: &Path, cfg: &Path, extra: &[&str]) -> String {
    let mut args = vec!["replay"];
    args.extend(extra);
    args.extend(["--input", input.to_str().unwrap()]);
    args.extend(["--config", cfg.to_str().unwrap()]);
    common::stdout_of(&args)
}

/// A memory forecast event is exported.
fn memory_event(body: &str) -> bool {
    body.lines()
        .any(|l| l.starts_with("anomalyd_forecast_event{") && l.contains("kind=\"memory\""))
}

#[test]
fn tmpfs_fill_is_forecast_in_time_and_a_burst_is_not() {
    if !common::needs_root("mounting tmpfs needs root") {
        return;
    }
    let fill = Tmpfs::mount("64m");
    let burst = Tmpfs::mount("64m");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &[fill.path(), burst.path()],
        "  warning: 1m\n  critical: 15s\n",
    );
    let d = Daemon::start(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[],
    );
    let fill_mp = format!("mountpoint=\"{}\"", fill.path().display());
    let burst_mp = format!("mountpoint=\"{}\"", burst.path().display());
    // Baseline: both filesystems exported, nothing running out.
    let body = d.wait_for("/metrics", Duration::from_secs(10), |b| {
        labelled(b, "anomalyd_filesystem_seconds_until_exhaustion", &fill_mp).is_some()
    });
    assert_eq!(
        labelled(
            &body,
            "anomalyd_filesystem_seconds_until_exhaustion",
            &fill_mp
        ),
        Some(f64::INFINITY)
    );

    // The writer: 256 KiB every 187.5 ms, i.e. 64 MiB in 48 s, paced on the clock.
    let chunk = 256 * 1024;
    let step = Duration::from_micros(187_500);
    let fill_time = 48.0;
    let file = fill.path().join("data");
    let avail0 = fill.available();
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::File::create(&file).unwrap();
        let buf = vec![0x5au8; chunk];
        for k in 1.. {
            let due = t0 + step * k;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if f.write_all(&buf).is_err() {
                break; // full
            }
        }
    });
    // The burster: 40 MiB written and deleted at once, every 3 s.
    let burst_file = burst.path().join("burst");
    let stop_burst = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = stop_burst.clone();
    let burster = std::thread::spawn(move || {
        let buf = vec![1u8; 40 << 20];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::fs::write(&burst_file, &buf).unwrap();
            std::fs::remove_file(&burst_file).unwrap();
            std::thread::sleep(Duration::from_secs(3));
        }
    });

    let mut warning_at = None;
    let mut critical_at = None;
    let mut checked_quarter = false;
    let mut burst_etas = Vec::new();
    while t0.elapsed().as_secs_f64() < fill_time - 2.0 {
        let (status, body) = d.get("/metrics");
        assert_eq!(status, 200);
        let t = t0.elapsed().as_secs_f64();
        let event = |sev: &str| {
            body.lines().any(|l| {
                l.starts_with("anomalyd_forecast_event{")
                    && l.contains(&format!("resource=\"{}\"", fill.path().display()))
                    && l.contains(&format!("severity=\"{sev}\""))
                    && l.contains("kind=\"bytes\"")
            })
        };
        if warning_at.is_none() && event("warning") {
            warning_at = Some(t);
        }
        if critical_at.is_none() && event("critical") {
            critical_at = Some(t);
        }
        assert!(
            !body
                .lines()
                .any(|l| l.starts_with("anomalyd_forecast_event{")
                    && l.contains(&format!("resource=\"{}\"", burst.path().display()))),
            "a burst written and deleted at once raised a forecast event at {t:.1}s"
        );
        burst_etas.push(labelled(
            &body,
            "anomalyd_filesystem_seconds_until_exhaustion",
            &burst_mp,
        ));
        if !checked_quarter && t >= fill_time / 4.0 {
            checked_quarter = true;
            let avail = fill.available();
            let rate = (avail0 - avail) / t;
            let truth = avail / rate;
            let eta = labelled(
                &body,
                "anomalyd_filesystem_seconds_until_exhaustion",
                &fill_mp,
            )
            .unwrap();
            eprintln!("at {t:.1}s: ETA {eta:.1}s, true {truth:.1}s (rate {rate:.0} B/s)");
            assert!(
                (eta - truth).abs() <= 0.1 * truth,
                "ETA {eta:.1}s is not within 10 % of the true {truth:.1}s at a quarter of the fill"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // `collect --once` reads the trend from the history the daemon is writing (a block
    // a second: `history.flush_interval` in `config`).
    let out = Command::new(common::bin())
        .args([
            "collect",
            "--once",
            "--json",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let once_eta = json["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["name"] == "filesystem_seconds_until_exhaustion"
                && p["labels"][0][1] == fill.path().to_str().unwrap()
        })
        .map(|p| p["value"].as_f64());
    let truth = fill.available() / ((avail0 - fill.available()) / t0.elapsed().as_secs_f64());
    stop_burst.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    burster.join().unwrap();
    d.stop();

    assert!(checked_quarter);
    let warning_at = warning_at.expect("no warning forecast event during the fill");
    eprintln!("warning at {warning_at:.1}s, critical at {critical_at:?} of a {fill_time}s fill");
    assert!(
        warning_at <= fill_time / 2.0,
        "the warning fired at {warning_at:.1}s, with less than half the fill time left"
    );
    let critical_at = critical_at.expect("no critical event before the filesystem was full");
    assert!(critical_at > warning_at);
    let finite_bursts = burst_etas
        .iter()
        .filter(|e| e.is_some_and(f64::is_finite))
        .count();
    assert!(
        finite_bursts * 10 <= burst_etas.len(),
        "the burst filesystem had a finite ETA in {finite_bursts} of {} scrapes",
        burst_etas.len()
    );
    let once_eta = once_eta
        .flatten()
        .expect("collect --once shows a finite ETA");
    assert!(
        (once_eta - truth).abs() <= 0.25 * truth + 1.0,
        "collect --once ETA {once_eta:.1}s vs true {truth:.1}s"
    );
}

#[test]
fn steady_allocation_is_forecast_and_clears_when_freed() {
    if !common::needs_root("this test runs with the suite's root privileges only") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &[Path::new("/nonexistent")],
        "  warning: 2h\n  critical: 5s\n",
    );
    let d = Daemon::start(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[],
    );
    d.wait_for("/metrics", Duration::from_secs(10), |b| {
        metric(b, "anomalyd_memory_seconds_until_exhaustion").is_some()
    });
    // 3 GiB in 48 MiB steps every 0.625 s (≈ 77 MiB/s for 40 s), every page touched,
    // then held for 10 s and freed by exiting.
    let rate = 48.0 * 1024.0 * 1024.0 / 0.625;
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import time\nb=[]\nt0=time.time()\nfor k in range(64):\n    b.append(b'\\x01'*(48<<20))\n    time.sleep(max(0.0, t0+(k+1)*0.625-time.time()))\ntime.sleep(10)\n",
        ])
        .spawn()
        .expect("python3");
    let t0 = Instant::now();
    let mut fired_at = None;
    let mut ratios = Vec::new();
    while t0.elapsed() < Duration::from_secs(40) {
        let (_, body) = d.get("/metrics");
        let t = t0.elapsed().as_secs_f64();
        if fired_at.is_none() && memory_event(&body) {
            fired_at = Some(t);
        }
        let eta = metric(&body, "anomalyd_memory_seconds_until_exhaustion").unwrap();
        let avail = metric(&body, "anomalyd_memory_available_bytes").unwrap();
        if t > 15.0 && eta.is_finite() {
            // What the ETA should be if our child were the only thing allocating.
            ratios.push(eta / (avail / rate));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let fired_at = fired_at.expect("no memory forecast event during a steady allocation");
    eprintln!("memory event at {fired_at:.1}s; ETA / expected ratios {ratios:?}");
    // Other processes (compilers, other tests) allocate and free meanwhile, so the
    // ETA is judged by its median over the second half and within a factor of 2:
    // a wrong sign, unit or rate would be off by far more.
    let mut r = ratios.clone();
    r.sort_by(f64::total_cmp);
    assert!(
        r.len() >= 10,
        "the ETA was finite in only {} scrapes",
        r.len()
    );
    let median = r[r.len() / 2];
    assert!(
        (0.5..=2.0).contains(&median),
        "median ETA/expected {median:.2}"
    );
    child.wait().unwrap();
    // Freed: the trend is gone and the event clears within the window.
    d.wait_for("/metrics", Duration::from_secs(30), |b| !memory_event(b));
    d.stop();
}

#[test]
fn replay_forecasts_a_recorded_series() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rec.csv");
    // (The CSV reader splits on every comma, so the column carries one label.)
    let mut text =
        "timestamp,filesystem_available_bytes{mountpoint=\"/var\"},memory_available_bytes\n"
            .to_string();
    // One row a minute for 12 h; /var loses 100 MiB an hour from hour 4, from 10 GiB.
    for m in 0..720i64 {
        let used = if m >= 240 {
            (m - 240) as f64 / 60.0 * 100.0 * 1048576.0
        } else {
            0.0
        };
        let noise = ((m * 7919) % 13) as f64 * 1e5;
        let t = 1_700_000_000_000 + m * 60_000;
        text.push_str(&format!(
            "{t},{},{}\n",
            10.0 * 1073741824.0 - used + noise,
            8e9 + noise
        ));
    }
    std::fs::write(&input, text).unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "interval: 1m\nmodel:\n  enabled: false\nforecast:\n  window: 2h\n  min_span: 30m\n  warning: 7d\n  critical: 1d\n",
    )
    .unwrap();
    let text = replay(&input, &cfg, &["--forecast"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "timestamp,score,anomaly,cause,fault_risk,min_eta_seconds,forecast_events"
    );
    assert_eq!(lines.len(), 721);
    let eta = |l: &str| l.split(',').nth(5).unwrap().parse::<f64>().unwrap();
    // Flat for 4 hours: nothing runs out.
    assert!(lines[1..240].iter().all(|l| eta(l).is_infinite()));
    // At the end: 10 GiB - 800 MiB left at 100 MiB/h -> about 94 h.
    let last = lines[720];
    let want = (10.0 * 1024.0 - 800.0) / 100.0 * 3600.0;
    assert!((eta(last) - want).abs() < 0.1 * want, "{last} vs {want}");
    assert!(last.ends_with("bytes:/var:warning"), "{last}");
    // Without --forecast the output is the time and the plain three columns.
    let plain = replay(&input, &cfg, &[]);
    assert!(
        plain.starts_with("timestamp,score,anomaly,cause\n"),
        "{plain}"
    );
    assert!(plain.lines().nth(1).unwrap().ends_with("Z,0,0,"), "{plain}");
}

#[test]
fn replay_calibrates_the_fault_risk_and_it_rises_before_incidents() {
    // Two quiet features a minute apart for 3 days; every 5 hours (not a divisor of a
    // day, so the time-of-day baseline cannot learn it) `load` creeps up for 20
    // minutes and then jumps for 15: an incident with a precursor.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rec.csv");
    let mut text = "timestamp,load,latency\n".to_string();
    let noise = |m: i64, k: i64| (((m * 7919 + k * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 0.2;
    let phase = |m: i64| (m % 300) - 250; // 0 at the jump, negative before
    for m in 0..3 * 1440i64 {
        let p = phase(m);
        let load = match p {
            -20..=-1 => 1.0 + (p + 21) as f64 * 0.04,
            0..=14 => 4.0,
            _ => 1.0,
        };
        let t = 1_700_000_000_000 + m * 60_000;
        text.push_str(&format!(
            "{t},{},{}\n",
            load + noise(m, 1),
            5.0 + noise(m, 2)
        ));
    }
    std::fs::write(&input, text).unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "interval: 1m\nmodel:\n  warmup: 2d\n  retrain_interval: 30d\n",
    )
    .unwrap();
    let text = replay(&input, &cfg, &["--forecast"]);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let risk = |m: usize| rows[m][4].parse::<f64>().ok();
    assert!(
        risk(2 * 1440 - 10).is_none(),
        "risk before the model exists"
    );
    // Day 3: risk in the 10 minutes before each jump vs far from any incident.
    let (mut before, mut quiet) = (Vec::new(), Vec::new());
    for m in 2 * 1440 + 60..3 * 1440 {
        let r = risk(m).expect("a calibrated risk once the model is trained");
        assert!((0.0..=1.0).contains(&r));
        match phase(m as i64) {
            -10..=-1 => before.push(r),
            -200..=-60 => quiet.push(r),
            _ => {}
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "risk before incidents {:.3}, quiet {:.3}",
        mean(&before),
        mean(&quiet)
    );
    assert!(!before.is_empty() && !quiet.is_empty());
    assert!(
        mean(&before) > 0.3 && mean(&quiet) < 0.1,
        "risk before incidents {:.3}, quiet {:.3}",
        mean(&before),
        mean(&quiet)
    );
}
