//! Sample -> Prometheus text, once per tick.
//!
//! The exporter keeps one `GaugeVec`/`HistogramVec` per metric name in a custom registry
//! with the `anomalyd_` prefix. After each tick it resets the gauges (so a vanished disk
//! or interface disappears instead of freezing at its last value), sets them from the
//! sample, and encodes the whole registry into a byte buffer. Scrapes hand out that
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
    /// The last tick's series (name and label values, in the order the points came)
    /// and each one's child metric. A tick with the same series, nearly every tick,
    /// sets these directly instead of resetting every vec and finding or creating
    /// each child again by its labels, which was most of a tick's CPU time.
    series: Vec<(&'static str, Vec<String>)>,
    children: Vec<Child>,
    pub rendered: Rendered,
}

/// One series' metric, as `apply` found or created it.
enum Child {
    Gauge(Gauge),
    Counter(Counter),
    Histogram(Histogram),
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
            series: Vec::new(),
            children: Vec::new(),
            rendered: Rendered::default(),
        })
    }

    /// Publish a completed sample: update every metric and re-render the body.
    /// A point that cannot be exported (inconsistent labels) is skipped and reported;
    /// the rest of the sample is still published.
    pub fn publish(&mut self, sample: &Sample) -> Vec<ExportError> {
        let mut errors = Vec::new();
        self.collector_success.reset();
        self.collector_duration.reset();
        for run in &sample.runs {
            self.collector_success
                .with_label_values(&[run.collector])
                .set(if run.success { 1.0 } else { 0.0 });
            self.collector_duration
                .with_label_values(&[run.collector])
                .set(run.duration_seconds);
        }
        if self.same_series(&sample.points) {
            for (p, child) in sample.points.iter().zip(&self.children) {
                child.update(p);
            }
        } else {
            // Series came or went: start from empty vecs, so a vanished one is not
            // rendered with its last value.
            for (vec, _) in self.gauges.values() {
                vec.reset();
            }
            for (vec, _) in self.counters.values() {
                vec.reset();
            }
            self.series.clear();
            self.children.clear();
            for p in &sample.points {
                match self.apply(p) {
                    Ok(child) => self.children.push(child),
                    Err(e) => errors.push(e),
                }
            }
            // Kept only when every point found its child: a point in error takes the
            // slow path (and reports its error) at every tick.
            if errors.is_empty() {
                self.series = sample
                    .points
                    .iter()
                    .map(|p| (p.name, p.labels.iter().map(|(_, v)| v.clone()).collect()))
                    .collect();
            } else {
                self.children.clear();
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

    /// Whether `points` are the series of the last tick, in the same order.
    fn same_series(&self, points: &[Point]) -> bool {
        self.series.len() == points.len()
            && self.children.len() == points.len()
            && self.series.iter().zip(points).all(|((name, values), p)| {
                *name == p.name
                    && values.len() == p.labels.len()
                    && values.iter().zip(&p.labels).all(|(v, (_, w))| v == w)
            })
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
    fn inconsistent_labels_are_reported_not_fatal() {
        let mut e = Exporter::new(false).unwrap();
        let mut s = Sample::new(0);
        s.feature("x_ratio", "X", &[("a", "1")], 1.0);
        s.feature("x_ratio", "X", &[("b", "1")], 1.0);
        s.feature("y_ratio", "Y", &[], 2.0);
        let errs = e.publish(&s);
        assert_eq!(errs.len(), 1);
        assert!(body(&e).contains("anomalyd_y_ratio 2"));
    }
}
