//! Time to exhaustion of every filesystem (bytes, inodes), memory and swap, and the
//! forecast events it turns into.
//!
//! The input is a [`Record`] (named features), so a live sample, a history row and a
//! replayed CSV row with the same columns all forecast. The headroom of each resource:
//!
//! | kind   | feature                                  | headroom           |
//! |--------|------------------------------------------|--------------------|
//! | bytes  | `filesystem_available_bytes{mountpoint,device,fstype}` | the value |
//! | inodes | `filesystem_inodes_free{...}`            | the value          |
//! | memory | `memory_available_bytes`                 | the value          |
//! | swap   | `swap_used_bytes`, `swap_used_ratio`     | used / ratio − used |
//!
//! ETA = headroom now / −slope, when the fitted decline is confident ([`trend`]);
//! +inf otherwise. An event fires when the ETA is under a horizon and clears when it
//! rises above horizon × `clear_factor` or the trend goes away, so an ETA wobbling
//! around the horizon does not flap.

use std::collections::HashMap;

use super::trend::{self, Buckets, Criteria, Fit};
use super::{Eta, ForecastConfig, ForecastEvent, Kind, Outlook, Severity, State};
use crate::sample::{label_value, Record};
use crate::store::History;

const FS_BYTES: &str = "filesystem_available_bytes";
const FS_INODES: &str = "filesystem_inodes_free";
const MEMORY: &str = "memory_available_bytes";
const SWAP_USED: &str = "swap_used_bytes";
const SWAP_RATIO: &str = "swap_used_ratio";

/// The decline must exceed this many noise spreads of the residuals.
const MIN_SIGNAL_TO_NOISE: f64 = 3.0;
/// Fewer buckets than this say too little about a trend.
const MIN_POINTS: usize = 6;

/// Where a feature's resource is and what kind it is, from its name.
fn classify(name: &str) -> Option<(Kind, &str)> {
    let (base, labels) = match name.find('{') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, ""),
    };
    let kind = match base {
        FS_BYTES => Kind::Bytes,
        FS_INODES => Kind::Inodes,
        MEMORY => Kind::Memory,
        _ => return None,
    };
    Some((kind, labels))
}

struct Track {
    kind: Kind,
    resource: String,
    device: String,
    fstype: String,
    buckets: Buckets,
    last_ms: i64,
    headroom: f64,
    fit: Option<Fit>,
    severity: Option<(Severity, i64)>,
}

impl Track {
    fn new(kind: Kind, labels: &str, cfg: &ForecastConfig) -> Track {
        let (resource, device, fstype) = match kind {
            Kind::Bytes | Kind::Inodes => (
                label_value(labels, "mountpoint").unwrap_or("").to_string(),
                label_value(labels, "device").unwrap_or("").to_string(),
                label_value(labels, "fstype").unwrap_or("").to_string(),
            ),
            Kind::Memory => ("memory".to_string(), String::new(), String::new()),
            Kind::Swap => ("swap".to_string(), String::new(), String::new()),
        };
        Track {
            kind,
            resource,
            device,
            fstype,
            buckets: Buckets::new(cfg.window.as_millis() as i64, cfg.buckets),
            last_ms: i64::MIN,
            headroom: f64::NAN,
            fit: None,
            severity: None,
        }
    }

    fn eta(&self, c: &Criteria) -> f64 {
        match &self.fit {
            Some(f) if f.confident_decline(c) => (self.headroom.max(0.0)) / -f.slope,
            _ => f64::INFINITY,
        }
    }

    fn event(&self, severity: Severity, eta: f64, state: State, since_ms: i64) -> ForecastEvent {
        ForecastEvent {
            kind: self.kind,
            resource: self.resource.clone(),
            device: self.device.clone(),
            severity,
            eta_seconds: eta,
            state,
            since_ms,
        }
    }
}

/// Tracks every resource seen in the records; one per host.
pub struct Forecaster {
    cfg: ForecastConfig,
    criteria: Criteria,
    /// By feature name (swap under its own key).
    tracks: HashMap<String, Track>,
    /// Swap total, remembered from the last sample where it could be derived (with no
    /// swap in use the ratio is 0 and says nothing about the total).
    swap_total: Option<f64>,
    points: Vec<(f64, f64)>,
    scratch: Vec<f64>,
}

impl Forecaster {
    pub fn new(cfg: &ForecastConfig) -> Forecaster {
        Forecaster {
            criteria: Criteria {
                min_points: MIN_POINTS,
                min_span_seconds: cfg.min_span.as_secs_f64(),
                min_consistency: cfg.min_consistency,
                min_signal_to_noise: MIN_SIGNAL_TO_NOISE,
            },
            cfg: cfg.clone(),
            tracks: HashMap::new(),
            swap_total: None,
            points: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// New settings; the collected series are kept unless the window or its
    /// bucketing changed (then they no longer fit and start afresh).
    pub fn reconfigure(&mut self, cfg: &ForecastConfig) {
        if cfg.window != self.cfg.window || cfg.buckets != self.cfg.buckets {
            self.tracks.clear();
        }
        *self = Forecaster {
            tracks: std::mem::take(&mut self.tracks),
            swap_total: self.swap_total,
            ..Forecaster::new(cfg)
        };
    }

    /// Feed the last `window` of the history so a restart does not forget the trend.
    /// Returns how many resources were seeded.
    pub fn seed(
        &mut self,
        history: &History,
        now_ms: i64,
    ) -> Result<usize, crate::store::HistoryError> {
        let from = now_ms - self.cfg.window.as_millis() as i64;
        // The names come from the newest rows; a resource that vanished since does
        // not need a forecast.
        let recent = history.range(
            now_ms - 10 * 60_000,
            now_ms.saturating_add(1),
            crate::store::Tier::Raw,
        )?;
        let Some(last) = recent.last() else {
            return Ok(0);
        };
        let mut names: Vec<&str> = last
            .values
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| classify(n).is_some() || *n == SWAP_USED || *n == SWAP_RATIO)
            .collect();
        names.sort_unstable();
        let mut by_ts: std::collections::BTreeMap<i64, Vec<(String, f64)>> = Default::default();
        for name in &names {
            for (ts, v) in history.series(name, from, now_ms.saturating_add(1))? {
                by_ts.entry(ts).or_default().push(((*name).to_string(), v));
            }
        }
        for (ts, values) in by_ts {
            self.observe(&Record {
                timestamp_ms: Some(ts),
                values,
            });
        }
        Ok(self.tracks.len())
    }

    /// Take one record; the ETAs and events after it.
    pub fn observe(&mut self, record: &Record) -> Outlook {
        let mut out = Outlook::default();
        let Some(now) = record.timestamp_ms else {
            return out;
        };
        let mut swap = (None, None);
        for (name, value) in &record.values {
            if name == SWAP_USED {
                swap.0 = Some(*value);
                continue;
            }
            if name == SWAP_RATIO {
                swap.1 = Some(*value);
                continue;
            }
            let Some((kind, labels)) = classify(name) else {
                continue;
            };
            let track = match self.tracks.get_mut(name.as_str()) {
                Some(t) => t,
                None => self
                    .tracks
                    .entry(name.clone())
                    .or_insert_with(|| Track::new(kind, labels, &self.cfg)),
            };
            update(track, now, *value, &mut self.points, &mut self.scratch);
        }
        if let (Some(used), Some(ratio)) = swap {
            if ratio > 0.0 && ratio.is_finite() {
                self.swap_total = Some(used / ratio);
            }
            if let Some(total) = self.swap_total {
                let cfg = &self.cfg;
                let track = self
                    .tracks
                    .entry(SWAP_USED.to_string())
                    .or_insert_with(|| Track::new(Kind::Swap, "", cfg));
                update(
                    track,
                    now,
                    total - used,
                    &mut self.points,
                    &mut self.scratch,
                );
            }
        }
        // Resources not seen for a whole window are gone (unmounted, swap off).
        let window_ms = self.cfg.window.as_millis() as i64;
        self.tracks
            .retain(|_, t| now.saturating_sub(t.last_ms) <= window_ms);
        let mut keys: Vec<&String> = self.tracks.keys().collect();
        keys.sort();
        let keys: Vec<String> = keys.into_iter().cloned().collect();
        for key in keys {
            let Some(t) = self.tracks.get_mut(&key) else {
                continue;
            };
            let eta = t.eta(&self.criteria);
            step_event(t, eta, now, &self.cfg, &mut out);
            out.etas.push(Eta {
                kind: t.kind,
                resource: t.resource.clone(),
                device: t.device.clone(),
                fstype: t.fstype.clone(),
                seconds: eta,
                headroom: t.headroom,
                rate: t.fit.map_or(f64::NAN, |f| f.slope),
            });
        }
        out
    }
}

fn update(
    t: &mut Track,
    now: i64,
    headroom: f64,
    points: &mut Vec<(f64, f64)>,
    scratch: &mut Vec<f64>,
) {
    if !headroom.is_finite() {
        return;
    }
    if now < t.last_ms {
        // A clock stepped back: a sample within the window is dropped (its bucket
        // is gone); one more than a window back starts the series, and so the trend,
        // again. Dropping those too froze the forecast until the clock caught up.
        if !t.buckets.restarts_at(now) {
            return;
        }
        t.fit = None;
    }
    t.last_ms = now;
    t.headroom = headroom;
    if t.buckets.push(now, headroom) {
        // A bucket closed: re-fit on the closed ones (at most `buckets` points).
        t.buckets.closed_points(now, points);
        t.fit = trend::fit(points, scratch);
    }
}

/// Hysteresis: the severity an ETA deserves, given the one firing now.
fn severity_for(eta: f64, current: Option<Severity>, cfg: &ForecastConfig) -> Option<Severity> {
    let (w, c) = (cfg.warning.as_secs_f64(), cfg.critical.as_secs_f64());
    let k = cfg.clear_factor;
    if !eta.is_finite() {
        return None;
    }
    match current {
        _ if eta < c => Some(Severity::Critical),
        Some(Severity::Critical) if eta <= c * k => Some(Severity::Critical),
        _ if eta < w => Some(Severity::Warning),
        Some(_) if eta <= w * k => Some(Severity::Warning),
        _ => None,
    }
}

fn step_event(t: &mut Track, eta: f64, now: i64, cfg: &ForecastConfig, out: &mut Outlook) {
    let current = t.severity.map(|(s, _)| s);
    let next = severity_for(eta, current, cfg);
    if next != current {
        if let Some((s, since)) = t.severity {
            out.changes.push(t.event(s, eta, State::Cleared, since));
        }
        t.severity = next.map(|s| (s, now));
        if let Some(s) = next {
            out.changes.push(t.event(s, eta, State::Firing, now));
        }
    }
    if let Some((s, since)) = t.severity {
        out.active.push(t.event(s, eta, State::Firing, since));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> ForecastConfig {
        ForecastConfig {
            window: Duration::from_secs(600),
            buckets: 60,
            min_span: Duration::from_secs(60),
            warning: Duration::from_secs(3600),
            critical: Duration::from_secs(600),
            ..ForecastConfig::default()
        }
    }

    const ROOT: &str =
        r#"filesystem_available_bytes{mountpoint="/",device="/dev/sda1",fstype="ext4"}"#;

    fn rec(ts_s: i64, values: &[(&str, f64)]) -> Record {
        Record {
            timestamp_ms: Some(ts_s * 1000),
            values: values.iter().map(|(n, v)| ((*n).to_string(), *v)).collect(),
        }
    }

    #[test]
    fn labels_parse() {
        let (k, l) = classify(ROOT).expect("filesystem");
        assert_eq!(k, Kind::Bytes);
        assert_eq!(label_value(l, "mountpoint").unwrap_or(""), "/");
        assert_eq!(label_value(l, "device").unwrap_or(""), "/dev/sda1");
        assert_eq!(label_value(l, "fstype").unwrap_or(""), "ext4");
        assert_eq!(
            label_value(r#"{device="x",mountpoint="/a,b"}"#, "mountpoint").unwrap_or(""),
            "/a,b"
        );
        assert!(classify("memory_used_bytes").is_none());
    }

    #[test]
    fn steady_fill_gives_eta_and_events_that_clear() {
        let mut f = Forecaster::new(&cfg());
        // 2000 s of headroom at -1/s, sampled every second.
        let mut fired = None;
        let mut last = Outlook::default();
        for s in 0..1500 {
            last = f.observe(&rec(
                s,
                &[(ROOT, 2000.0 - s as f64), ("memory_available_bytes", 5e9)],
            ));
            if fired.is_none() && last.changes.iter().any(|e| e.state == State::Firing) {
                fired = Some(s);
            }
        }
        let eta = last
            .etas
            .iter()
            .find(|e| e.kind == Kind::Bytes)
            .expect("eta");
        assert!((eta.seconds - 500.0).abs() < 5.0, "{eta:?}");
        let mem = last
            .etas
            .iter()
            .find(|e| e.kind == Kind::Memory)
            .expect("memory eta");
        assert!(mem.seconds.is_infinite());
        // Warning once the span is covered (ETA ≈ 1930 s < 1 h), critical under 600 s.
        assert!(fired.is_some_and(|s| s <= 75), "{fired:?}");
        assert_eq!(last.active.len(), 1);
        assert_eq!(last.active[0].severity, Severity::Critical);
        assert_eq!(last.active[0].resource, "/");
        // The fill stops: the trend goes away and the event clears.
        let mut cleared = false;
        for s in 1500..2500 {
            let o = f.observe(&rec(s, &[(ROOT, 500.0)]));
            cleared |= o
                .changes
                .iter()
                .any(|e| e.state == State::Cleared && e.severity == Severity::Critical);
            last = o;
        }
        assert!(cleared);
        assert!(last.active.is_empty(), "{:?}", last.active);
    }

    /// The clock stepped back eight hours while a fill was forecast and the fill then
    /// stopped: the series starts again on the new clock and the event clears (it
    /// used to stay firing, frozen, until the clock caught up).
    #[test]
    fn a_clock_stepped_back_starts_the_trend_again() {
        let mut f = Forecaster::new(&cfg());
        let t0 = 100_000;
        let mut last = Outlook::default();
        for s in 0..600 {
            last = f.observe(&rec(t0 + s, &[(ROOT, 2000.0 - s as f64)]));
        }
        assert_eq!(last.active.len(), 1, "{:?}", last.active);
        let back = t0 + 600 - 8 * 3600;
        let mut cleared = false;
        for s in 0..1200 {
            let o = f.observe(&rec(back + s, &[(ROOT, 1400.0)]));
            cleared |= o.changes.iter().any(|e| e.state == State::Cleared);
            last = o;
        }
        assert!(cleared);
        assert!(last.active.is_empty(), "{:?}", last.active);
        let eta = last.etas.iter().find(|e| e.kind == Kind::Bytes);
        assert!(eta.is_some_and(|e| e.seconds.is_infinite()), "{eta:?}");
    }

    #[test]
    fn burst_gives_no_event() {
        let mut f = Forecaster::new(&cfg());
        for s in 0..1200 {
            let v = if (600..603).contains(&s) { 10.0 } else { 1e9 };
            let o = f.observe(&rec(s, &[(ROOT, v)]));
            assert!(o.changes.is_empty() && o.active.is_empty(), "at {s}: {o:?}");
        }
    }

    #[test]
    fn swap_headroom_from_used_and_ratio() {
        let mut f = Forecaster::new(&cfg());
        let mut last = Outlook::default();
        for s in 0..300 {
            let used = 1000.0 + s as f64; // of 4000 total
            last = f.observe(&rec(
                s,
                &[
                    ("swap_used_bytes", used),
                    ("swap_used_ratio", used / 4000.0),
                ],
            ));
        }
        let e = last
            .etas
            .iter()
            .find(|e| e.kind == Kind::Swap)
            .expect("swap");
        assert!((e.headroom - 2701.0).abs() < 1e-6, "{e:?}");
        assert!((e.seconds - 2701.0).abs() < 10.0, "{e:?}");
    }

    #[test]
    fn new_device_starts_fresh_and_vanished_ones_go() {
        let mut f = Forecaster::new(&cfg());
        let other =
            r#"filesystem_available_bytes{mountpoint="/srv",device="/dev/sdb",fstype="xfs"}"#;
        for s in 0..300 {
            f.observe(&rec(s, &[(ROOT, 1e6 - s as f64)]));
        }
        let mut o = Outlook::default();
        for s in 300..330 {
            o = f.observe(&rec(
                s,
                &[(ROOT, 1e6 - s as f64), (other, 1e6 - 100.0 * s as f64)],
            ));
        }
        let srv = o
            .etas
            .iter()
            .find(|e| e.resource == "/srv")
            .expect("new device");
        assert!(srv.seconds.is_infinite(), "not enough span yet: {srv:?}");
        let root = o.etas.iter().find(|e| e.resource == "/").expect("root");
        assert!(root.seconds.is_finite());
        for s in 330..1000 {
            o = f.observe(&rec(s, &[(other, 1e9)]));
        }
        assert!(o.etas.iter().all(|e| e.resource == "/srv"), "{:?}", o.etas);
    }

    #[test]
    fn hysteresis() {
        let c = cfg();
        assert_eq!(severity_for(3000.0, None, &c), Some(Severity::Warning));
        assert_eq!(severity_for(4000.0, None, &c), None);
        assert_eq!(
            severity_for(4000.0, Some(Severity::Warning), &c),
            Some(Severity::Warning)
        );
        assert_eq!(severity_for(6000.0, Some(Severity::Warning), &c), None);
        assert_eq!(
            severity_for(700.0, Some(Severity::Critical), &c),
            Some(Severity::Critical)
        );
        assert_eq!(
            severity_for(1000.0, Some(Severity::Critical), &c),
            Some(Severity::Warning)
        );
        assert_eq!(
            severity_for(f64::INFINITY, Some(Severity::Critical), &c),
            None
        );
    }
}
