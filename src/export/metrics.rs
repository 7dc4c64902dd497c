//! Sample -> Prometheus text, once per tick.
//!
//! The exporter keeps one `GaugeVec`/`HistogramVec` per metric name in a custom registry
//! with the `anomalyd_` prefix. A tick with the last tick's series sets their values; one
//! where series came or went resets the gauges first (so a vanished disk or interface
//! disappears instead of freezing at its last value). Then it encodes the whole registry
//! into a byte buffer. Scrapes hand out that
//! buffer by reference count: a scrape never touches /proc and copies nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hyper::body::Bytes;
use prometheus::{
    Counter, CounterVec, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, Opts,
    Registry, TextEncoder,
};

use crate::sample::{Kind, Point, Sample};

/// Histogram buckets for round-trip times: 50 µs to ~3.3 s, doubling.
fn rtt_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.00005, 2.0, 17).unwrap_or_default()
}

/// Histogram buckets for ticket response times (`ticket_time_to_*`): 1 min to 7 d,
/// at the steps response levels are written in.
fn response_buckets() -> Vec<f64> {
    [1, 5, 15, 30, 60, 120, 240, 480, 1440, 4320, 10_080]
        .iter()
        .map(|m| f64::from(*m) * 60.0)
        .collect()
}

/// The last rendered /metrics body, shared with the HTTP server.
#[derive(Clone, Default)]
pub struct Rendered(Arc<RwLock<Bytes>>);

impl Rendered {
    pub fn get(&self) -> Bytes {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
    fn set(&self, body: Bytes) {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = body;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("metric {name}: {source}")]
    Metric {
        name: String,
        #[source]
        source: prometheus::Error,
    },
    #[error("metric {name}: labels {got:?} differ from the first point's {want:?}")]
    Labels {
        name: String,
        want: Vec<&'static str>,
        got: Vec<&'static str>,
    },
}

pub struct Exporter {
    registry: Registry,
    gauges: HashMap<&'static str, (GaugeVec, Vec<&'static str>)>,
    histograms: HashMap<&'static str, (HistogramVec, Vec<&'static str>)>,
    counters: HashMap<&'static str, (CounterVec, Vec<&'static str>)>,
    collector_success: GaugeVec,
    collector_duration: GaugeVec,
    /// The collectors of the last tick, in order.
    collectors: Vec<&'static str>,
    /// The last tick's series (name and label values, in the order the points came)
    /// and each one's child metric. A point at its series' place of the last tick, all
    /// but a few each tick, sets its child directly instead of finding it again by
    /// its labels, which was most of a tick's CPU time.
    /// Histogram points are not among them: a target's round-trip times come only in
    /// the ticks its replies arrived in, and counting them in would send every such
    /// tick down the slow path. Each histogram series' child is kept in `histograms_seen`.
    series: Vec<(&'static str, Vec<String>)>,
    children: Vec<Child>,
    histograms_seen: Vec<(&'static str, Vec<String>, Histogram)>,
    /// Points that had to find their child by label (tests check the fast path holds).
    #[cfg(test)]
    found_by_label: u64,
    pub rendered: Rendered,
}

/// One series' metric, as `apply` found or created it.
enum Child {
    Gauge(Gauge),
    Counter(Counter),
    Histogram(Histogram),
    /// `apply` failed (the error was reported).
    Failed,
}

impl Child {
    fn update(&self, p: &Point) {
        match self {
            Child::Gauge(g) => g.set(p.value),
            // The point carries the running total (see `apply`).
            Child::Counter(c) => {
                c.reset();
                c.inc_by(p.value.max(0.0));
            }
            Child::Histogram(h) => {
                for &o in &p.observations {
                    h.observe(o);
                }
            }
            Child::Failed => {}
        }
    }
}

impl Exporter {
    /// `process_metrics` adds process CPU/RSS/FDs (off in golden-file tests, where they vary).
    pub fn new(process_metrics: bool) -> Result<Self, ExportError> {
        let wrap = |name: &str| {
            let name = name.to_string();
            move |source| ExportError::Metric { name, source }
        };
        let registry =
            Registry::new_custom(Some("anomalyd".to_string()), None).map_err(wrap("registry"))?;
        let collector_success = GaugeVec::new(
            Opts::new(
                "collector_success",
                "Whether the collector succeeded in the last tick (1) or failed (0)",
            ),
            &["collector"],
        )
        .map_err(wrap("collector_success"))?;
        let collector_duration = GaugeVec::new(
            Opts::new(
                "collector_duration_seconds",
                "How long the collector took in the last tick",
            ),
            &["collector"],
        )
        .map_err(wrap("collector_duration_seconds"))?;
        registry
            .register(Box::new(collector_success.clone()))
            .map_err(wrap("collector_success"))?;
        registry
            .register(Box::new(collector_duration.clone()))
            .map_err(wrap("collector_duration_seconds"))?;
        let build = GaugeVec::new(
            Opts::new("build_info", "Version of anomalyd, always 1"),
            &["version"],
        )
        .map_err(wrap("build_info"))?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        registry
            .register(Box::new(build))
            .map_err(wrap("build_info"))?;
        if process_metrics {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            registry.register(Box::new(pc)).map_err(wrap("process"))?;
        }
        Ok(Exporter {
            registry,
            gauges: HashMap::new(),
            histograms: HashMap::new(),
            counters: HashMap::new(),
            collector_success,
            collector_duration,
            collectors: Vec::new(),
            series: Vec::new(),
            children: Vec::new(),
            histograms_seen: Vec::new(),
            #[cfg(test)]
            found_by_label: 0,
            rendered: Rendered::default(),
        })
    }

    /// Publish a completed sample: update every metric and re-render the body.
    /// A point that cannot be exported (inconsistent labels) is skipped and reported;
    /// the rest of the sample is still published.
    pub fn publish(&mut self, sample: &Sample) -> Vec<ExportError> {
        let mut errors = Vec::new();
        // Reset only when the collectors change (a reload): resetting drops the
        // children, and creating them again at every tick was a tenth of its time.
        let names = || sample.runs.iter().map(|r| r.collector);
        if !names().eq(self.collectors.iter().copied()) {
            self.collector_success.reset();
            self.collector_duration.reset();
            self.collectors = names().collect();
        }
        for run in &sample.runs {
            self.collector_success
                .with_label_values(&[run.collector])
                .set(if run.success { 1.0 } else { 0.0 });
            self.collector_duration
                .with_label_values(&[run.collector])
                .set(run.duration_seconds);
        }
        self.update_plain(sample, &mut errors);
        for p in sample.points.iter().filter(|p| p.kind == Kind::Histogram) {
            if let Err(e) = self.observe(p) {
                errors.push(e);
            }
        }
        let mut body = Vec::with_capacity(self.rendered.get().len() + 1024);
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut body) {
            errors.push(ExportError::Metric {
                name: "encode".into(),
                source: e,
            });
        }
        self.rendered.set(Bytes::from(body));
        errors
    }

    /// Set the gauges and counters from `sample`. A point in the place its series had
    /// last tick sets the child kept from then; any other point (a new series, or one
    /// that moved: the top causes change from tick to tick) finds or creates its child
    /// by its labels, and a series of the last tick that is gone is removed, so it is
    /// not rendered with its last value.
    fn update_plain(&mut self, sample: &Sample, errors: &mut Vec<ExportError>) {
        let mut old_series = std::mem::take(&mut self.series);
        let mut old_children = std::mem::take(&mut self.children);
        // Places of the last tick whose series is not at its place any more.
        let mut moved: Vec<usize> = Vec::new();
        for (i, p) in sample
            .points
            .iter()
            .filter(|p| p.kind != Kind::Histogram)
            .enumerate()
        {
            let in_place = match (old_series.get(i), old_children.get(i)) {
                (Some((name, values)), Some(child)) => {
                    *name == p.name && same_values(values, p) && !matches!(child, Child::Failed)
                }
                _ => false,
            };
            if in_place {
                let child = std::mem::replace(&mut old_children[i], Child::Failed);
                child.update(p);
                self.series.push(std::mem::take(&mut old_series[i]));
                self.children.push(child);
                continue;
            }
            #[cfg(test)]
            {
                self.found_by_label += 1;
            }
            if i < old_series.len() {
                moved.push(i);
            }
            // A point in error is tried (and reported) again at every tick.
            let child = self.apply(p).unwrap_or_else(|e| {
                errors.push(e);
                Child::Failed
            });
            self.series.push((p.name, label_values(p)));
            self.children.push(child);
        }
        let n = self.series.len();
        moved.extend(n..old_series.len());
        for i in moved {
            let (name, values) = &old_series[i];
            let still_here = self.series.iter().any(|(m, v)| m == name && v == values);
            if !still_here {
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                // Not found means it was never created (it failed): nothing to drop.
                if let Some((vec, _)) = self.gauges.get(name) {
                    let _ = vec.remove_label_values(&values);
                } else if let Some((vec, _)) = self.counters.get(name) {
                    let _ = vec.remove_label_values(&values);
                }
            }
        }
    }

    /// Add a histogram point's observations to its series, found among the ones seen
    /// before or created.
    fn observe(&mut self, p: &Point) -> Result<(), ExportError> {
        let seen = self
            .histograms_seen
            .iter()
            .find(|(name, values, _)| *name == p.name && same_values(values, p));
        if let Some((_, _, h)) = seen {
            for &o in &p.observations {
                h.observe(o);
            }
            return Ok(());
        }
        if let Child::Histogram(h) = self.apply(p)? {
            self.histograms_seen.push((p.name, label_values(p), h));
        }
        Ok(())
    }

    /// Find or create `p`'s child metric (its vec on first sight) and set it.
    fn apply(&mut self, p: &Point) -> Result<Child, ExportError> {
        let names: Vec<&'static str> = p.labels.iter().map(|(k, _)| *k).collect();
        let values: Vec<&str> = p.labels.iter().map(|(_, v)| v.as_str()).collect();
        let err = |source| ExportError::Metric {
            name: p.name.to_string(),
            source,
        };
        match p.kind {
            Kind::Gauge => {
                if !self.gauges.contains_key(p.name) {
                    let vec = GaugeVec::new(Opts::new(p.name, p.help), &names).map_err(err)?;
                    self.registry.register(Box::new(vec.clone())).map_err(err)?;
                    self.gauges.insert(p.name, (vec, names.clone()));
                }
                let (vec, want) = &self.gauges[p.name];
                check_labels(p.name, want, &names)?;
                let child = Child::Gauge(vec.get_metric_with_label_values(&values).map_err(err)?);
                child.update(p);
                Ok(child)
            }
            Kind::Counter => {
                if !self.counters.contains_key(p.name) {
                    let vec = CounterVec::new(Opts::new(p.name, p.help), &names).map_err(err)?;
                    self.registry.register(Box::new(vec.clone())).map_err(err)?;
                    self.counters.insert(p.name, (vec, names.clone()));
                }
                let (vec, want) = &self.counters[p.name];
                check_labels(p.name, want, &names)?;
                // The point carries the running total: the child is reset and set to it
                // (rendering happens after, on this thread: no scrape sees 0).
                let child = Child::Counter(vec.get_metric_with_label_values(&values).map_err(err)?);
                child.update(p);
                Ok(child)
            }
            Kind::Histogram => {
                if !self.histograms.contains_key(p.name) {
                    let buckets = match p.name.starts_with("ticket_time_to_") {
                        true => response_buckets(),
                        false => rtt_buckets(),
                    };
                    let opts = HistogramOpts::new(p.name, p.help).buckets(buckets);
                    let vec = HistogramVec::new(opts, &names).map_err(err)?;
                    self.registry.register(Box::new(vec.clone())).map_err(err)?;
                    self.histograms.insert(p.name, (vec, names.clone()));
                }
                let (vec, want) = &self.histograms[p.name];
                check_labels(p.name, want, &names)?;
                let child =
                    Child::Histogram(vec.get_metric_with_label_values(&values).map_err(err)?);
                child.update(p);
                Ok(child)
            }
        }
    }
}

fn label_values(p: &Point) -> Vec<String> {
    p.labels.iter().map(|(_, v)| v.clone()).collect()
}

fn same_values(values: &[String], p: &Point) -> bool {
    values.len() == p.labels.len() && values.iter().zip(&p.labels).all(|(v, (_, w))| v == w)
}

fn check_labels(
    name: &str,
    want: &[&'static str],
    got: &[&'static str],
) -> Result<(), ExportError> {
    if want == got {
        Ok(())
    } else {
        Err(ExportError::Labels {
            name: name.to_string(),
            want: want.to_vec(),
            got: got.to_vec(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sample::CollectorRun;

    fn body(e: &Exporter) -> String {
        String::from_utf8(e.rendered.get().to_vec()).unwrap()
    }

    #[test]
    fn a_tick_with_the_last_ticks_series_sets_their_values() {
        let mut e = Exporter::new(false).unwrap();
        let tick = |busy: f64, bytes: f64| {
            let mut s = Sample::new(0);
            s.feature("disk_busy_ratio", "Busy", &[("device", "sda")], busy);
            s.feature("disk_busy_ratio", "Busy", &[("device", "sdb")], busy / 2.0);
            s.counter(
                "network_transmit_bytes_total",
                "Sent",
                &[("device", "eth0")],
                bytes,
            );
            s
        };
        for (busy, bytes) in [(0.5, 100.0), (0.75, 250.0), (0.25, 300.0)] {
            assert!(e.publish(&tick(busy, bytes)).is_empty());
            let b = body(&e);
            assert!(
                b.contains(&format!(
                    "anomalyd_disk_busy_ratio{{device=\"sda\"}} {busy}"
                )),
                "{b}"
            );
            assert!(
                b.contains(&format!(
                    "anomalyd_disk_busy_ratio{{device=\"sdb\"}} {}",
                    busy / 2.0
                )),
                "{b}"
            );
            // The running total as it is, never added to the last tick's.
            assert!(
                b.contains(&format!(
                    "anomalyd_network_transmit_bytes_total{{device=\"eth0\"}} {bytes}"
                )),
                "{b}"
            );
        }
        // Then a device goes: it is not rendered with its last value.
        let mut s = tick(0.5, 400.0);
        s.points
            .retain(|p| !p.labels.iter().any(|(_, v)| v == "sdb"));
        e.publish(&s);
        let b = body(&e);
        assert!(!b.contains("sdb"), "{b}");
        assert!(b.contains("anomalyd_network_transmit_bytes_total{device=\"eth0\"} 400"));
    }

    #[test]
    fn renders_and_forgets_vanished_series() {
        let mut e = Exporter::new(false).unwrap();
        let mut s = Sample::new(0);
        s.feature("disk_busy_ratio", "Busy", &[("device", "sda")], 0.5);
        s.feature("disk_busy_ratio", "Busy", &[("device", "sdb")], 0.25);
        s.runs.push(CollectorRun {
            collector: "disk",
            success: true,
            duration_seconds: 0.001,
            error: None,
        });
        assert!(e.publish(&s).is_empty());
        let b = body(&e);
        assert!(
            b.contains("anomalyd_disk_busy_ratio{device=\"sdb\"} 0.25"),
            "{b}"
        );
        assert!(b.contains("anomalyd_collector_success{collector=\"disk\"} 1"));
        let mut s2 = Sample::new(1000);
        s2.feature("disk_busy_ratio", "Busy", &[("device", "sda")], 0.75);
        e.publish(&s2);
        let b = body(&e);
        assert!(!b.contains("sdb"), "vanished device still exported: {b}");
        // So is a collector that no longer runs (disabled by a reload).
        assert!(!b.contains("collector=\"disk\""), "{b}");
        assert!(b.contains("anomalyd_disk_busy_ratio{device=\"sda\"} 0.75"));
    }

    #[test]
    fn counters_render_as_counters_with_their_total() {
        let mut e = Exporter::new(false).expect("exporter");
        for total in [3.0, 5.0] {
            let mut s = Sample::new(0);
            s.counter("runs_total", "Runs", &[("rule", "a")], total);
            assert!(e.publish(&s).is_empty());
        }
        let b = body(&e);
        assert!(b.contains("# TYPE anomalyd_runs_total counter"), "{b}");
        assert!(b.contains("anomalyd_runs_total{rule=\"a\"} 5"), "{b}");
    }

    #[test]
    fn histogram_accumulates() {
        let mut e = Exporter::new(false).unwrap();
        for _ in 0..2 {
            let mut s = Sample::new(0);
            s.observe(
                "ping_rtt_seconds",
                "RTT",
                &[("target", "x")],
                vec![0.0001, 0.0002],
            );
            e.publish(&s);
        }
        assert!(body(&e).contains("anomalyd_ping_rtt_seconds_count{target=\"x\"} 4"));
    }

    #[test]
    fn round_trip_times_coming_and_going_keep_the_fast_path() {
        let mut e = Exporter::new(false).unwrap();
        for tick in 0..6 {
            let mut s = Sample::new(0);
            s.feature("disk_busy_ratio", "Busy", &[("device", "sda")], 0.5);
            // Replies arrive in every other tick, from one of two addresses in turn.
            if tick % 2 == 0 {
                let address = if tick % 4 == 0 { "127.0.0.1" } else { "::1" };
                s.observe(
                    "ping_rtt_seconds",
                    "RTT",
                    &[("target", "localhost"), ("address", address)],
                    vec![0.0001],
                );
            }
            assert!(e.publish(&s).is_empty());
        }
        assert_eq!(e.found_by_label, 1, "only the first tick builds its series");
        let b = body(&e);
        assert!(
            b.contains(
                "anomalyd_ping_rtt_seconds_count{address=\"127.0.0.1\",target=\"localhost\"} 2"
            ),
            "{b}"
        );
        assert!(
            b.contains("anomalyd_ping_rtt_seconds_count{address=\"::1\",target=\"localhost\"} 1"),
            "{b}"
        );
    }

    #[test]
    fn causes_that_change_from_tick_to_tick_replace_the_last_ones() {
        let mut e = Exporter::new(false).unwrap();
        let tick = |causes: [&str; 2], score: f64| {
            let mut s = Sample::new(0);
            s.info("anomaly_score", "Score", &[], score);
            for (rank, feature) in causes.iter().enumerate() {
                let rank = (rank + 1).to_string();
                s.info(
                    "anomaly_cause_contribution",
                    "Causes",
                    &[("rank", &rank), ("feature", feature)],
                    score / 2.0,
                );
            }
            s.info("model_trained", "Trained", &[], 1.0);
            s
        };
        assert!(e.publish(&tick(["a", "b"], 4.0)).is_empty());
        assert!(e.publish(&tick(["b", "c"], 6.0)).is_empty());
        let b = body(&e);
        let causes: Vec<&str> = b
            .lines()
            .filter(|l| l.starts_with("anomalyd_anomaly_cause_contribution{"))
            .collect();
        assert_eq!(
            causes,
            [
                "anomalyd_anomaly_cause_contribution{feature=\"b\",rank=\"1\"} 3",
                "anomalyd_anomaly_cause_contribution{feature=\"c\",rank=\"2\"} 3",
            ],
            "{b}"
        );
        assert!(b.contains("anomalyd_anomaly_score 6\n"), "{b}");
        assert!(b.contains("anomalyd_model_trained 1\n"), "{b}");
        // Four series built at the first tick, the two causes that moved at the second.
        assert_eq!(e.found_by_label, 6);
        // The same causes again: every point at its place.
        assert!(e.publish(&tick(["b", "c"], 8.0)).is_empty());
        assert_eq!(e.found_by_label, 6);
        assert!(body(&e).contains("anomalyd_anomaly_score 8\n"));
    }

    #[test]
    fn inconsistent_labels_are_reported_not_fatal() {
        let mut e = Exporter::new(false).unwrap();
        let mut s = Sample::new(0);
        s.feature("x_ratio", "X", &[("a", "1")], 1.0);
        s.feature("x_ratio", "X", &[("b", "1")], 1.0);
        s.feature("y_ratio", "Y", &[], 2.0);
        // Reported at every tick, not only the first.
        for _ in 0..2 {
            let errs = e.publish(&s);
            assert_eq!(errs.len(), 1);
            assert!(body(&e).contains("anomalyd_y_ratio 2"));
        }
    }
}
