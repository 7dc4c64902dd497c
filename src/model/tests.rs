//! Behaviour of the model as a whole: training/scoring equivalence, missing values,
//! scales, attribution, time of day, persistence.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::sample::Record;

/// Deterministic noise in [-1, 1) (xorshift), so tests need no RNG crate.
pub(crate) struct Noise(u64);
impl Noise {
    pub(crate) fn new(seed: u64) -> Noise {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn rec(ts: Option<i64>, vals: &[(&str, f64)]) -> Record {
    Record {
        timestamp_ms: ts,
        values: vals.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
    }
}

/// A host with two metrics on wildly different scales, a correlated pair and a
/// constant; `n` rows one minute apart.
pub(crate) fn history(n: usize, seed: u64) -> Vec<Record> {
    let mut z = Noise::new(seed);
    (0..n)
        .map(|i| {
            let load = 0.5 + 0.3 * ((i as f64) / 200.0).sin() + 0.05 * z.next();
            rec(
                Some(1_700_000_000_000 + i as i64 * 60_000),
                &[
                    ("net_bytes", 1e9 * (1.0 + 0.2 * load + 0.02 * z.next())),
                    ("ratio", 1e-3 * (1.0 + 0.1 * z.next())),
                    ("cpu", load),
                    ("load1", 4.0 * load + 0.1 * z.next()),
                    ("const", 7.0),
                ],
            )
        })
        .collect()
}

fn trained(n: usize) -> (Vec<Record>, Arc<Model>) {
    let h = history(n, 1);
    let m = Model::train(&h, &Spec::default()).expect("trains");
    (h, Arc::new(m))
}

#[test]
fn training_and_scoring_see_identical_vectors() {
    let (h, model) = trained(2000);
    // Training path: every name discovered, then the model's columns picked by name.
    let all = Schema::discover(&h);
    for r in h.iter().take(50).chain(std::iter::once(&rec(
        None,
        &[("cpu", f64::NAN), ("x", 1.0)],
    ))) {
        let full = all.vector(r);
        let train_view: Vec<f64> = model
            .schema()
            .iter()
            .map(|n| full[all.position(n).expect("known")])
            .collect();
        let score_view = model.schema.vector(r);
        assert_eq!(train_view.len(), score_view.len());
        for (a, b) in train_view.iter().zip(&score_view) {
            assert!(a == b || (a.is_nan() && b.is_nan()), "{a} vs {b}");
        }
    }
    // And end to end: rescoring the history reproduces the training threshold.
    let mut s = model.scorer();
    let mut scores: Vec<f64> = h.iter().map(|r| s.score(r).value).collect();
    let q = threshold::quantile(&mut scores, model.spec().threshold_quantile);
    assert_eq!(q, model.threshold());
}

#[test]
fn constant_features_are_skipped_and_schema_is_ordered() {
    let (_, model) = trained(500);
    assert_eq!(model.schema(), ["net_bytes", "ratio", "cpu", "load1"]);
    assert_eq!(model.skipped(), ["const"]);
    assert_eq!(model.window().rows, 500);
    assert_eq!(model.window().first_ms, Some(1_700_000_000_000));
}

#[test]
fn missing_values_are_never_anomalous_and_unknown_names_ignored() {
    let (h, model) = trained(2000);
    let mut s = model.scorer();
    let empty = s.score(&rec(None, &[("brand_new", 1e12)]));
    assert_eq!(empty.value, 0.0);
    assert!(!empty.anomaly && empty.contributions.is_empty());
    // A normal row with one feature missing stays normal.
    let mut s = model.scorer();
    for r in &h[..200] {
        let mut r = r.clone();
        r.values.retain(|(n, _)| n != "ratio");
        r.values.push(("brand_new".into(), 1e12));
        let sc = s.score(&r);
        assert!(sc
            .contributions
            .iter()
            .all(|(j, _)| model.schema()[*j] != "ratio"));
    }
}

#[test]
fn anomaly_on_a_tiny_scale_feature_is_found_and_attributed() {
    let (h, model) = trained(3000);
    let mut s = model.scorer();
    for r in &h[2000..2100] {
        s.score(r);
    }
    let mut last = None;
    for r in &h[2100..2120] {
        let mut r = r.clone();
        for (n, v) in r.values.iter_mut() {
            if n == "ratio" {
                *v *= 3.0; // 1e-3 -> 3e-3, next to a 1e9 feature
            }
        }
        last = Some(s.score(&r));
    }
    let sc = last.expect("scored");
    assert!(sc.anomaly, "{sc:?} threshold {}", model.threshold());
    assert_eq!(model.schema()[sc.top_cause().expect("cause")], "ratio");
    let sum: f64 = sc.contributions.iter().map(|(_, c)| c).sum();
    assert_eq!(sum, sc.value, "attributions add up to the score");
    assert!(sc.contributions.windows(2).all(|w| w[0].1 >= w[1].1));
}

/// Issue #17: a model trained on a quiet disk paged for `filesystem_inodes_free
/// 16.36M (baseline 16.36M)`: a feature that barely varied in training had a tiny
/// scale, so one file more was many standard deviations. Its floor (1 % of its
/// level) is the least change that counts.
#[test]
fn a_feature_that_barely_varied_in_training_does_not_page_for_a_tiny_change() {
    let mut z = Noise::new(3);
    let rows: Vec<Record> = (0..1500)
        .map(|i| {
            rec(
                Some(1_700_000_000_000 + i as i64 * 60_000),
                &[
                    ("cpu_utilization_ratio", 0.3 + 0.05 * z.next()),
                    ("filesystem_inodes_free", 16_360_000.0 + (i % 3) as f64),
                ],
            )
        })
        .collect();
    let changed = |r: &Record| {
        let mut r = r.clone();
        for (n, v) in r.values.iter_mut() {
            if n == "filesystem_inodes_free" {
                *v -= 1000.0; // 1,000 files created: 0.006 % of the free inodes
            }
        }
        r
    };
    // Whether the changed feature ever made a sample anomalous (was its top cause).
    let verdict = |spec: &Spec| {
        let model = Arc::new(Model::train(&rows[..1200], spec).expect("trains"));
        let inodes = model
            .schema()
            .iter()
            .position(|n| n == "filesystem_inodes_free")
            .expect("in the schema");
        let mut s = model.scorer();
        for r in &rows[1100..1200] {
            s.score(r);
        }
        rows[1200..].iter().map(changed).any(|r| {
            let sc = s.score(&r);
            sc.anomaly && sc.top_cause() == Some(inodes)
        })
    };
    assert!(!verdict(&Spec::default()), "paged for 1,000 inodes of 16 M");
    // Without floors the same change pages: the floor is what holds it.
    let bare = Spec {
        floors: Vec::new(),
        ..Spec::default()
    };
    assert!(verdict(&bare));
}

#[test]
fn normal_history_is_mostly_quiet() {
    let (_, model) = trained(3000);
    let fresh = history(2000, 99);
    let mut s = model.scorer();
    let flagged = fresh.iter().filter(|r| s.score(r).anomaly).count();
    assert!(flagged < 100, "{flagged} of 2000 normal rows flagged");
}

/// Six days of a quiet host whose disk is busy 02:00–02:30 UTC every night.
fn backup_host(days: usize, with_time: bool) -> Vec<Record> {
    let mut z = Noise::new(7);
    let day0 = 1_714_521_600_000i64; // 2024-05-01T00:00:00Z
    (0..days * 1440)
        .map(|i| {
            let ts = day0 + i as i64 * 60_000;
            let minute = i % 1440;
            let backup = (120..150).contains(&minute);
            let disk = if backup { 500.0 } else { 10.0 } + 2.0 * z.next();
            rec(
                with_time.then_some(ts),
                &[
                    ("disk_write", disk),
                    ("cpu", 20.0 + 3.0 * z.next()),
                    ("mem", 60.0 + z.next()),
                ],
            )
        })
        .collect()
}

fn max_score_of(model: &Arc<Model>, warm: &[Record], rows: &[Record]) -> (bool, Score) {
    let mut s = model.scorer();
    for r in warm {
        s.score(r);
    }
    let mut any = false;
    let mut last = None;
    for r in rows {
        let sc = s.score(r);
        any |= sc.anomaly;
        last = Some(sc);
    }
    (any, last.expect("rows"))
}

#[test]
fn time_of_day_makes_the_nightly_backup_normal() {
    let h = backup_host(6, true);
    let model = Arc::new(Model::train(&h, &Spec::default()).expect("trains"));
    assert!(model.uses_time_of_day());
    let day6 = backup_host(7, true).split_off(6 * 1440);
    // The backup at its usual time: quiet.
    let (any, _) = max_score_of(&model, &day6[60..120], &day6[120..150]);
    assert!(!any, "nightly backup flagged");
    // The same burst at 14:00: an anomaly, blamed on the disk.
    let mut noon: Vec<Record> = day6[840..870].to_vec();
    for r in &mut noon {
        r.values[0].1 = 500.0;
    }
    let (any, last) = max_score_of(&model, &day6[780..840], &noon);
    assert!(any, "daytime burst not flagged: {last:?}");
    assert_eq!(
        model.schema()[last.top_cause().expect("cause")],
        "disk_write"
    );
}

#[test]
fn time_of_day_needs_timestamps_and_enough_days() {
    let m = Model::train(&backup_host(2, true), &Spec::default()).expect("trains");
    assert!(!m.uses_time_of_day(), "2 days < min_days");
    let m = Model::train(&backup_host(6, false), &Spec::default()).expect("trains");
    assert!(!m.uses_time_of_day(), "no timestamps");
}

#[test]
fn save_load_round_trip_scores_identically() {
    let (h, model) = trained(1500);
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("model.json");
    model.save(&p).expect("save");
    let back = Arc::new(Model::load(&p).expect("load"));
    assert_eq!(back.schema(), model.schema());
    assert_eq!(back.threshold(), model.threshold());
    assert_eq!(back.spec(), model.spec());
    assert_eq!(back.window(), model.window());
    assert_eq!(back.created_ms(), model.created_ms());
    // serde_json (without its `float_roundtrip` feature) may read a float back one
    // ulp off, so scores agree to ~1e-12 rather than bit for bit.
    let (mut a, mut b) = (model.scorer(), back.scorer());
    for r in &h[..300] {
        let (x, y) = (a.score(r), b.score(r));
        assert!(
            (x.value - y.value).abs() <= 1e-9 * x.value.max(1.0),
            "{x:?} {y:?}"
        );
        assert_eq!(x.anomaly, y.anomaly);
        assert_eq!(x.top_cause(), y.top_cause());
    }
    let text = std::fs::read_to_string(&p).expect("read");
    for key in [
        "\"format\": \"anomalyd-model\"",
        "\"version\": 1",
        "\"training_window\"",
        "\"threshold\"",
        "\"spec\"",
        "\"created_unix_ms\"",
    ] {
        assert!(text.contains(key), "{key} missing from the file");
    }
}

fn json_of(model: &Model) -> serde_json::Value {
    serde_json::from_str(&model.to_json()).expect("json")
}

fn load_text(text: &str) -> Result<Model, LoadError> {
    Model::from_json(text, Path::new("m.json"))
}

#[test]
fn corrupt_files_are_rejected() {
    let (_, model) = trained(500);
    assert!(matches!(
        load_text("{not json"),
        Err(LoadError::Corrupt { .. })
    ));
    let full = model.to_json();
    assert!(matches!(
        load_text(&full[..full.len() / 2]),
        Err(LoadError::Corrupt { .. })
    ));
    assert!(matches!(
        load_text(r#"{"hello": 1}"#),
        Err(LoadError::Corrupt { .. })
    ));
    let mut v = json_of(&model);
    v["params"]["center"] = serde_json::json!([1.0]);
    let e = load_text(&v.to_string()).expect_err("wrong length");
    assert!(e.to_string().contains("center/scale length"), "{e}");
    let mut v = json_of(&model);
    v["params"]["scale"][0] = serde_json::json!(0.0);
    assert!(matches!(
        load_text(&v.to_string()),
        Err(LoadError::Corrupt { .. })
    ));
    let mut v = json_of(&model);
    v["spec"]["smoothing_alpha"] = serde_json::json!(7.0);
    assert!(matches!(
        load_text(&v.to_string()),
        Err(LoadError::Corrupt { .. })
    ));
    let dir = tempfile::tempdir().expect("tmp");
    assert!(matches!(
        Model::load(&dir.path().join("absent.json")),
        Err(LoadError::Io { .. })
    ));
}

/// Issue #18: with 33 features, `bins` 558992244657865201 times 33 wraps around to
/// 17, the baseline's length; the model loaded and scoring panicked. A threshold of
/// -1e308 was accepted and flagged every row.
#[test]
fn crafted_sizes_and_thresholds_are_rejected() {
    let (_, model) = trained(500);
    let d = model.schema().len();
    let mut v = json_of(&model);
    // A bins value whose product with d wraps to a small number modulo 2^64.
    let wrap = (u64::MAX / d as u64) + 1;
    let cells = wrap.wrapping_mul(d as u64) as usize;
    v["params"]["time_of_day"] = serde_json::json!({
        "bins": wrap,
        "baseline": vec![0.0; cells],
    });
    let e = load_text(&v.to_string()).expect_err("wrapped size");
    assert!(matches!(e, LoadError::Corrupt { .. }), "{e}");
    for (key, t) in [
        ("threshold", -1e308),
        ("threshold", 0.0),
        ("raw_threshold", -1.0),
    ] {
        let mut v = json_of(&model);
        v[key] = serde_json::json!(t);
        let e = load_text(&v.to_string()).expect_err("bad threshold");
        assert!(e.to_string().contains(&format!("{key}: {t}")), "{t}: {e}");
    }
}

/// The model file is refused through a FIFO or a device, and a model saved over a
/// link at `model.json.tmp` (the old temporary name) leaves the link's target alone.
#[test]
fn model_files_are_never_read_or_written_through_surprises() {
    let (_, model) = trained(200);
    let dir = tempfile::tempdir().expect("tmp");
    assert!(matches!(
        Model::load(Path::new("/dev/zero")),
        Err(LoadError::Io { .. })
    ));
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").expect("write");
    std::os::unix::fs::symlink(&victim, dir.path().join("model.json.tmp")).expect("link");
    model.save(&dir.path().join("model.json")).expect("save");
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
    Model::load(&dir.path().join("model.json")).expect("load");
}

#[test]
fn other_versions_are_rejected() {
    let (_, model) = trained(500);
    let mut v = json_of(&model);
    v["version"] = serde_json::json!(2);
    let e = load_text(&v.to_string()).expect_err("version");
    assert!(matches!(
        e,
        LoadError::Version {
            found: 2,
            expected: 1,
            ..
        }
    ));
    assert!(e.to_string().contains("format version 2"), "{e}");
}

#[test]
fn schema_mismatch_is_rejected() {
    let (_, model) = trained(500);
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("m.json");
    model.save(&p).expect("save");
    let mut now: Vec<String> = model.schema().to_vec();
    now.push("a_new_disk".into());
    assert!(Model::load_for(&p, &now).is_ok(), "extra features are fine");
    now.retain(|n| n != "cpu");
    let e = Model::load_for(&p, &now).expect_err("mismatch");
    assert!(matches!(&e, LoadError::SchemaMismatch { missing, .. } if missing == &["cpu"]));
    assert!(e.to_string().contains("missing: cpu"), "{e}");
}

#[test]
fn model_state_lifecycle() {
    let mut state = ModelState::default();
    assert!(state.model().is_none());
    let (_, model) = trained(300);
    state = ModelState::Trained(model);
    assert!(state.model().is_some());
}

#[test]
fn expected_values_are_near_normal_and_in_feature_units() {
    let (h, model) = trained(2000);
    let names = model.schema().to_vec();
    let r = &h[1500];
    let exp = model.expected(r);
    assert_eq!(exp.len(), names.len());
    for (j, name) in names.iter().enumerate() {
        let actual = r.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let actual = actual.expect("feature present");
        // Normal data: the expectation is within a few scales of the value.
        let rel = (exp[j] - actual).abs() / actual.abs().max(1e-12);
        assert!(rel < 0.5, "{name}: expected {} vs actual {actual}", exp[j]);
    }
    // An outlier does not drag its own expectation along.
    let mut odd = r.clone();
    for (n, v) in &mut odd.values {
        if n == "cpu" {
            *v = 50.0;
        }
    }
    let j = names.iter().position(|n| n == "cpu").expect("cpu");
    assert!(model.expected(&odd)[j] < 2.0);
}

#[test]
fn raw_threshold_is_learnt_and_old_files_without_it_still_load() {
    let (h, model) = trained(2000);
    assert!(model.raw_threshold().is_finite() && model.raw_threshold() > 0.0);
    // A spike is anomalous on its own; its smoothed tail later is not.
    let mut scorer = model.scorer();
    for r in &h[..100] {
        scorer.score(r);
    }
    let mut spike = h[100].clone();
    for (_, v) in &mut spike.values {
        *v *= 50.0;
    }
    let s = scorer.score(&spike);
    assert!(s.counts_for_incident(), "{s:?}");
    let tail = scorer.score(&h[101]);
    assert!(tail.anomaly && !tail.counts_for_incident(), "{tail:?}");
    // A file written before the field existed: raw threshold 0, so the smoothed
    // decision alone counts, as it did then.
    let json = model.to_json();
    let old = regex_lite::Regex::new(r#""raw_threshold":\s*[^,]+,\s*"#)
        .expect("regex")
        .replace(&json, "")
        .to_string();
    assert!(!old.contains("raw_threshold"));
    let loaded = Model::from_json(&old, std::path::Path::new("old.json")).expect("loads");
    assert_eq!(loaded.raw_threshold(), 0.0);
}

#[test]
fn row_interval_and_clock_persist_and_old_files_smooth_per_sample_in_utc() {
    let h = backup_host(4, true);
    let model = Arc::new(Model::train(&h, &Spec::default()).expect("trains"));
    assert_eq!(model.row_interval_ms(), Some(60_000.0));
    assert_eq!(model.time_of_day_clock(), Some(Clock::Local));
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("model.json");
    model.save(&p).expect("save");
    let back = Model::load(&p).expect("load");
    assert_eq!(back.row_interval_ms(), Some(60_000.0));
    assert_eq!(back.time_of_day_clock(), Some(Clock::Local));
    let text = std::fs::read_to_string(&p).expect("read");
    assert!(text.contains("\"row_interval_ms\": 60000.0"), "{text:.400}");
    assert!(text.contains("\"clock\": \"local\""));

    // A file from before either field: per-sample smoothing, UTC bins.
    let old_text = regex_lite::Regex::new(r#"\s*"(row_interval_ms|clock)":\s*[^,]+,"#)
        .expect("regex")
        .replace_all(&text, "")
        .to_string();
    assert!(!old_text.contains("row_interval_ms") && !old_text.contains("clock"));
    let old = Arc::new(Model::from_json(&old_text, Path::new("old.json")).expect("loads"));
    assert_eq!(old.row_interval_ms(), None);
    assert_eq!(old.time_of_day_clock(), Some(Clock::Utc));
    let mut expected = (*model).clone();
    expected.row_interval_ms = None;
    if let Some(t) = &mut expected.time_of_day {
        t.clock = Clock::Utc;
    }
    let expected = Arc::new(expected);
    // One-second samples (the live interval) score exactly as per-sample did.
    let (mut a, mut b) = (old.scorer(), expected.scorer());
    let mut c = model.scorer();
    let mut differs = false;
    for (i, r) in h[3000..3300].iter().enumerate() {
        let mut r = r.clone();
        r.timestamp_ms = Some(h[3000].timestamp_ms.expect("timed") + i as i64 * 1000);
        let (x, y) = (a.score(&r), b.score(&r));
        assert!(
            (x.value - y.value).abs() <= 1e-9 * x.value.max(1.0),
            "{x:?} {y:?}"
        );
        differs |= (c.score(&r).value - x.value).abs() > 1e-6 * x.value.max(1.0);
    }
    assert!(
        differs,
        "time-based smoothing changes 1 s scores of a minute model"
    );

    // Out-of-range values are refused.
    for bad in ["0.0", "-60000.0"] {
        let t = text.replace(
            "\"row_interval_ms\": 60000.0",
            &format!("\"row_interval_ms\": {bad}"),
        );
        let e = load_text(&t).expect_err("bad interval");
        assert!(e.to_string().contains("row_interval_ms"), "{e}");
    }
    let t = text.replace("\"clock\": \"local\"", "\"clock\": \"gmt\"");
    assert!(matches!(load_text(&t), Err(LoadError::Corrupt { .. })));
}
