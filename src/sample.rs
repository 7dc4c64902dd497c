//! What one tick of sampling produces: a timestamped list of metric points.
//!
//! Collectors fill a [`Sample`]; the exporter renders it for Prometheus, the feature
//! function turns it into a model input, `collect --once` prints it. Keeping the point
//! self-describing (name, help, labels) is what lets all three work from one value.

use std::time::{SystemTime, UNIX_EPOCH};

/// How Prometheus should treat a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A value that goes up and down; also how we export per-second rates.
    Gauge,
    /// Individual observations (e.g. ping round-trip times) for a cumulative histogram.
    Histogram,
    /// A cumulative total (`..._total`) that only goes up while the process lives; the
    /// point carries the total so far, not an increment.
    Counter,
}

/// One metric point. `name` is without the `anomalyd_` prefix.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Point {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Label pairs; the label *names* of a given metric must be the same in every point.
    pub labels: Vec<(&'static str, String)>,
    /// The value for gauges; NaN is never emitted (leave the point out instead).
    pub value: f64,
    /// Observations for histograms (seconds), empty for gauges.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<f64>,
    /// Whether the point is a model feature (rates, ratios, latencies) rather than a
    /// static fact (sizes, totals) or a daemon self-metric.
    #[serde(skip)]
    pub feature: bool,
}

/// Outcome of one collector in one tick: exported as
/// `anomalyd_collector_success` / `anomalyd_collector_duration_seconds`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CollectorRun {
    pub collector: &'static str,
    pub success: bool,
    pub duration_seconds: f64,
    /// Human-readable error when `success` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything one tick saw.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Unix time in milliseconds when the tick started.
    pub timestamp_ms: i64,
    pub points: Vec<Point>,
    pub runs: Vec<CollectorRun>,
}

impl Sample {
    pub fn new(timestamp_ms: i64) -> Self {
        Sample {
            timestamp_ms,
            points: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// A gauge that the model should learn from.
    pub fn feature(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.push(name, help, labels, value, true);
    }

    /// A gauge for Prometheus only (sizes, totals, configuration facts).
    pub fn info(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.push(name, help, labels, value, false);
    }

    fn push(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
        feature: bool,
    ) {
        // A NaN or infinite value means "unknown": leave the point out so nothing
        // downstream mistakes it for a measurement.
        if !value.is_finite() {
            return;
        }
        self.points.push(Point {
            name,
            help,
            kind: Kind::Gauge,
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            value,
            observations: Vec::new(),
            feature,
        });
    }

    /// A cumulative count (name ending in `_total`), for Prometheus only. The value is
    /// the total so far; it must never go down while the daemon runs.
    pub fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        total: f64,
    ) {
        if !total.is_finite() {
            return;
        }
        self.points.push(Point {
            name,
            help,
            kind: Kind::Counter,
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            value: total,
            observations: Vec::new(),
            feature: false,
        });
    }

    /// Observations for a histogram metric (not a model feature).
    pub fn observe(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        observations: Vec<f64>,
    ) {
        self.points.push(Point {
            name,
            help,
            kind: Kind::Histogram,
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            value: 0.0,
            observations,
            feature: false,
        });
    }

    /// First gauge or counter value with this name whose labels contain all of `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.points
            .iter()
            .find(|p| {
                p.name == name
                    && p.kind != Kind::Histogram
                    && labels
                        .iter()
                        .all(|(k, v)| p.labels.iter().any(|(pk, pv)| pk == k && pv == v))
            })
            .map(|p| p.value)
    }
}

/// Feature name of a point: `name` or `name{a="x",b="y"}`, the same string the model
/// schema stores and Prometheus would show.
pub fn feature_name(p: &Point) -> String {
    series_name(p.name, p.labels.iter().map(|(k, v)| (*k, v.as_str())))
}

/// `name` or `name{a="x",b="y"}` from a name and its label pairs: how every series
/// is named outside the exporter (features, forecasts, ticket causes).
pub fn series_name<'a>(name: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut labels = labels.into_iter().peekable();
    if labels.peek().is_none() {
        return name.to_string();
    }
    let mut s = String::with_capacity(name.len() + 24);
    s.push_str(name);
    s.push('{');
    for (i, (k, v)) in labels.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        s.push_str(v);
        s.push('"');
    }
    s.push('}');
    s
}

/// The value of label `key` in a name written by [`series_name`] (or in its
/// `{...}` part alone); `None` when the name has no such label.
pub fn label_value<'a>(series: &'a str, key: &str) -> Option<&'a str> {
    let labels = &series[series.find('{')?..];
    let pat = format!("{key}=\"");
    let mut rest = labels;
    while let Some(i) = rest.find(&pat) {
        // Only at the start of a pair, not inside another label's value.
        let before = rest[..i].chars().last();
        let start = i + pat.len();
        if matches!(before, Some('{') | Some(',')) {
            let v = &rest[start..];
            let end = v
                .find("\",")
                .into_iter()
                .chain(v.rfind("\"}"))
                .min()
                .unwrap_or(v.len());
            return Some(&v[..end]);
        }
        rest = &rest[start..];
    }
    None
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The model's view of a sample: a timestamp and named feature values. Live samples,
/// history rows and replayed CSV rows all become a `Record`, so everything after this
/// point runs the same code whatever the source.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Unix milliseconds; `None` when the source has no time (a CSV without timestamps).
    pub timestamp_ms: Option<i64>,
    pub values: Vec<(String, f64)>,
}

impl Record {
    /// Make the `k`-th value `(name, value)`, dropping the values from `k` on when the
    /// name there differs. A record refilled row after row (a CSV being streamed, the
    /// replay's row with its score) keeps its names instead of allocating one per
    /// value per row: a name compared costs less than a name made. Values past the
    /// last one set are the caller's to [`Vec::truncate`].
    pub fn set_at(&mut self, k: usize, name: &str, value: f64) {
        match self.values.get_mut(k) {
            Some((n, v)) if n == name => *v = value,
            _ => {
                self.values.truncate(k);
                self.values.push((name.to_string(), value));
            }
        }
    }
}

impl Sample {
    /// The feature points of this sample as a [`Record`].
    pub fn record(&self) -> Record {
        Record {
            timestamp_ms: Some(self.timestamp_ms),
            values: self
                .points
                .iter()
                .filter(|p| p.feature && p.kind == Kind::Gauge)
                .map(|p| (feature_name(p), p.value))
                .collect(),
        }
    }
}

/// Training rows as one matrix: the feature names once, each row's time, and the
/// values row by row (NaN where a row lacks the feature or its value is not finite).
///
/// Training reads tens of thousands of rows at each retraining. As [`Record`]s each
/// value carries its own copy of its name (43,200 rows × 40 features are 1.7 million
/// small allocations, about 80 MB) and is found in the schema by comparing names
/// again. The history reads its rows straight into this shape
/// (`store::History::training_frame`); `model::frame::from_records` builds the same
/// frame from records (a CSV for `anomalyd train`).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    names: Vec<String>,
    ts: Vec<Option<i64>>,
    values: Vec<f64>,
}

impl Frame {
    /// `values` holds `ts.len()` rows of `names.len()` values each.
    pub fn new(names: Vec<String>, ts: Vec<Option<i64>>, values: Vec<f64>) -> Frame {
        assert_eq!(
            values.len(),
            ts.len() * names.len(),
            "a frame is rows × names"
        );
        Frame { names, ts, values }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn timestamps(&self) -> &[Option<i64>] {
        &self.ts
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Row `i`'s values, in [`Frame::names`] order.
    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.names.len();
        &self.values[i * d..(i + 1) * d]
    }

    /// The rows, in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f64]> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }
}

#[cfg(test)]
mod tests {
    use super::Record;

    /// A refilled record keeps its names where they match and ends up exactly the row
    /// set, whatever it held before.
    #[test]
    fn set_at_refills_a_record_in_place() {
        let mut r = Record::default();
        for row in [
            &[("a", 1.0), ("b", 2.0), ("c", 3.0)][..],
            &[("a", 4.0), ("c", 5.0)],
            &[("a", 6.0), ("c", 7.0), ("d", 8.0)],
            &[],
        ] {
            for (k, (n, v)) in row.iter().enumerate() {
                r.set_at(k, n, *v);
            }
            r.values.truncate(row.len());
            let want: Vec<(String, f64)> = row.iter().map(|(n, v)| (n.to_string(), *v)).collect();
            assert_eq!(r.values, want);
        }
    }
}
