//! The ticket body: a report in Markdown that a person can act on. The ticket's own
//! fields (severity, state, assignee, resolution...), what was anomalous and since
//! when, the top contributing metrics against the learned baseline, the affected
//! metrics over the recent history, the forecasts, and what remediation did.
//!
//! It is put together in two parts, so that it never contradicts the ticket:
//! - the *evidence* ([`render`]) comes from the tick's signals, which only the daemon
//!   has: the desk renders it when the incident engine changes the incident, and the
//!   store keeps it;
//! - the *body* ([`body`]) is the ticket's fields as a table, that evidence, the
//!   similar past incidents, the remediation runs and the latest diagnosis, rebuilt
//!   by the store from the stored row and timeline on every change of the ticket, the
//!   operator's (`tickets ack`, `assign`, `resolve`) included. What the evidence says
//!   about "now" ([`LATEST`]) is left out once the ticket is resolved. Every sink gets
//!   this body.

use std::collections::VecDeque;
use std::fmt::Write;

use super::similar::{self, Similar};
use super::store::Event;
use crate::incident::{Class, ForecastLevel, Incident, Signals};
use crate::sample::Record;
use crate::text::{fmt_duration_ms, fmt_quantity, fmt_time, fmt_value};

/// Recent values of every feature, for the report's history summary. Live and
/// replay alike (no history database query on the tick path): at most `MAX_ROWS`
/// rows spread over the window, so memory stays bounded whatever the sampling
/// interval. Kept as f32 (7 significant digits, for a summary shown with 3 or 4):
/// 0.55 MB for a host's 190 features once the hour is full, not 1.1 MB.
#[derive(Debug, Default)]
pub struct Recent {
    window_ms: i64,
    names: Vec<String>,
    rows: VecDeque<(i64, Vec<f32>)>,
}

const MAX_ROWS: i64 = 720;

/// min, median, max and the number of points of one feature over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub points: usize,
}

impl Recent {
    pub fn new(window_ms: i64) -> Recent {
        Recent {
            window_ms: window_ms.max(1),
            ..Default::default()
        }
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    pub fn push(&mut self, record: &Record) {
        let Some(ts) = record.timestamp_ms else {
            return;
        };
        let gap = self.window_ms / MAX_ROWS;
        if self.rows.back().is_some_and(|(t, _)| ts - t < gap) {
            return;
        }
        let same = self.names.len() == record.values.len()
            && self
                .names
                .iter()
                .zip(&record.values)
                .all(|(a, (b, _))| a == b);
        if !same {
            // Features came or went (a disk, a ping target): start over with the new set.
            self.rows.clear();
            self.names = record.values.iter().map(|(n, _)| n.clone()).collect();
        }
        self.rows
            .push_back((ts, record.values.iter().map(|(_, v)| *v as f32).collect()));
        while self
            .rows
            .front()
            .is_some_and(|(t, _)| ts - t > self.window_ms)
        {
            self.rows.pop_front();
        }
    }

    pub fn summary(&self, feature: &str) -> Option<Summary> {
        self.summary_before(feature, i64::MAX)
    }

    /// Like [`summary`](Self::summary), from the rows before `before_ms` only (the
    /// samples that opened an incident are not its "before").
    pub fn summary_before(&self, feature: &str, before_ms: i64) -> Option<Summary> {
        let j = self.names.iter().position(|n| n == feature)?;
        summarize(
            self.rows
                .iter()
                .filter(|(t, _)| *t < before_ms)
                .map(|(_, r)| f64::from(r[j]))
                .filter(|x| !x.is_nan())
                .collect(),
        )
    }
}

/// Values of one metric since an incident opened, decimated to at most
/// `MAX_VALUES` (every 2nd, then every 4th... value kept) so a long incident stays
/// bounded.
#[derive(Debug, Default, Clone)]
pub struct Series {
    values: Vec<f64>,
    stride: usize,
    seen: usize,
}

const MAX_VALUES: usize = 1024;

impl Series {
    pub fn push(&mut self, v: f64) {
        if self.stride == 0 {
            self.stride = 1;
        }
        self.seen += 1;
        if v.is_nan() || (self.seen - 1) % self.stride != 0 {
            return;
        }
        self.values.push(v);
        if self.values.len() >= MAX_VALUES {
            let kept: Vec<f64> = self.values.iter().step_by(2).copied().collect();
            self.values = kept;
            self.stride *= 2;
        }
    }

    pub fn summary(&self) -> Option<Summary> {
        summarize(self.values.clone())
    }
}

fn summarize(mut v: Vec<f64>) -> Option<Summary> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Summary {
        min: v[0],
        median: v[v.len() / 2],
        max: v[v.len() - 1],
        points: v.len(),
    })
}

/// What the report knows about one open incident beyond the incident itself: its
/// metrics before and during, and its worst moment. Kept by the desk in memory (after
/// a restart it starts afresh: the "before" column is then empty).
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// Each cause's metric over the report window before it became a cause.
    pub before: Vec<(String, Summary)>,
    /// Each cause's metric since it became a cause.
    pub during: Vec<(String, Series)>,
    /// Highest anomaly score while open, its threshold and when.
    pub peak: Option<(f64, f64, i64)>,
}

impl Context {
    /// Follow the metrics of `inc`'s causes in this tick's `record`. `opening_ms`: how
    /// long before it opened the incident's samples were already anomalous (they are
    /// not its "before").
    pub fn observe(
        &mut self,
        inc: &Incident,
        record: &Record,
        recent: &Recent,
        signals: &Signals,
        opening_ms: i64,
    ) {
        for c in &inc.causes {
            if !self.during.iter().any(|(f, _)| *f == c.feature) {
                if let Some(b) = recent.summary_before(&c.feature, inc.opened_ms - opening_ms) {
                    self.before.push((c.feature.clone(), b));
                }
                self.during.push((c.feature.clone(), Series::default()));
            }
        }
        for (f, series) in &mut self.during {
            if let Some((_, v)) = record.values.iter().find(|(n, _)| n == f) {
                series.push(*v);
            }
        }
        if let (Class::Anomaly, Some(a)) = (inc.class, &signals.anomaly) {
            if self.peak.is_none_or(|(p, _, _)| a.score > p) {
                self.peak = Some((a.score, a.threshold, record.timestamp_ms.unwrap_or(0)));
            }
        }
    }
}

/// How the evidence's paragraph about the latest score begins; [`body`] leaves it out
/// of a resolved ticket (the problem is over, whatever the score was then).
pub const LATEST: &str = "Latest score: ";

/// Render the evidence for `inc` at `now_ms` from this tick's signals: everything
/// after the table of the ticket's fields (see [`body`]).
pub fn render(
    inc: &Incident,
    signals: &Signals,
    ctx: &Context,
    window_ms: i64,
    flapping: bool,
    now_ms: i64,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## What is anomalous\n");
    match inc.class {
        Class::Anomaly => {
            if let Some((peak, threshold, at)) = ctx.peak {
                let _ = writeln!(
                    s,
                    "The host's anomaly score peaked at {} at {}, {}× its learned threshold \
                     of {}; anomalous since {}.",
                    fmt_value(peak),
                    fmt_time(at),
                    fmt_value(peak / threshold),
                    fmt_value(threshold),
                    fmt_time(inc.opened_ms)
                );
            }
            match (&signals.anomaly, inc.resolved_ms) {
                (Some(a), Some(r)) => {
                    // Why it ended (recovered, superseded, an operator) is the
                    // ticket's resolution; this only says where the score was.
                    // The smoothed score decays for minutes after the samples are
                    // normal again; say so, or "above the threshold" on a resolved
                    // ticket reads as a contradiction.
                    let why = match (a.anomalous(), a.sample_anomalous) {
                        (false, _) => "under the threshold",
                        (true, false) => {
                            "the smoothed score, still decaying; the samples themselves \
                             were normal"
                        }
                        (true, true) => "above the threshold",
                    };
                    let _ = writeln!(
                        s,
                        "\nScore when it ended ({}): {} ({why}).",
                        fmt_time(r),
                        fmt_value(a.score),
                    );
                }
                (Some(a), None) => {
                    let _ = writeln!(
                        s,
                        "\n{LATEST}{} at {} ({}).",
                        fmt_value(a.score),
                        fmt_time(now_ms),
                        if a.anomalous() {
                            "still anomalous"
                        } else {
                            "under the threshold"
                        }
                    );
                }
                (None, _) => {}
            }
        }
        Class::Forecast => {
            let _ = writeln!(
                s,
                "A capacity forecast fired at {}: {}.",
                fmt_time(inc.opened_ms),
                inc.title
            );
        }
        Class::Ping => {
            let _ = writeln!(
                s,
                "The ping target {} answered before and has lost every packet since {}.",
                inc.resource.as_deref().unwrap_or("?"),
                fmt_time(inc.opened_ms)
            );
        }
        Class::Risk => {
            let p = signals
                .risk
                .map_or("unknown".to_string(), |p| format!("{:.0}%", p * 100.0));
            let _ = writeln!(
                s,
                "The fault-risk estimate crossed its trigger level at {} (now {p}).",
                fmt_time(inc.opened_ms)
            );
        }
    }
    if flapping && inc.resolved_ms.is_none() {
        let _ = writeln!(
            s,
            "\nThe problem is flapping: the ticket is held open until it has been quiet \
             for a whole flap window."
        );
    }
    if let (Some(r), Class::Anomaly) = (signals.risk, inc.class) {
        let _ = writeln!(
            s,
            "\nFault risk now: {:.0} % (the chance that an incident opens within the risk horizon, from the score's recent course).",
            r * 100.0
        );
    }

    if !inc.causes.is_empty() {
        let total: f64 = match (ctx.peak, inc.class) {
            (Some((p, _, _)), Class::Anomaly) if p > 0.0 => p,
            _ => inc.causes.iter().map(|c| c.contribution.max(0.0)).sum(),
        };
        // A forecast has no learned normal: its second column is where the trend
        // takes the resource in an hour.
        let second = if inc.class == Class::Forecast {
            "In 1 h at this trend"
        } else {
            "Baseline"
        };
        let _ = writeln!(
            s,
            "\n## Top contributing metrics (at the worst moment)\n\n| Metric | Value | {second} | Share of score |\n|---|---|---|---|"
        );
        for c in &inc.causes {
            let share = if total > 0.0 {
                format!("{:.0}%", (100.0 * c.contribution / total).min(100.0))
            } else {
                "-".into()
            };
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {share} |",
                c.feature,
                fmt_quantity(&c.feature, c.value),
                fmt_quantity(&c.feature, c.baseline)
            );
        }
        let _ = writeln!(
            s,
            "\n## Affected metrics: the {} before, and since it started\n\n\
             | Metric | Before: min / median / max | Since: min / median / max | Points since |\n|---|---|---|---|",
            fmt_duration_ms(window_ms)
        );
        let three = |feature: &str, h: Option<Summary>| match h {
            Some(h) => format!(
                "{} / {} / {}",
                fmt_quantity(feature, h.min),
                fmt_quantity(feature, h.median),
                fmt_quantity(feature, h.max)
            ),
            None => "-".to_string(),
        };
        for c in &inc.causes {
            let before = ctx
                .before
                .iter()
                .find(|(f, _)| *f == c.feature)
                .map(|(_, h)| *h);
            let during = ctx
                .during
                .iter()
                .find(|(f, _)| *f == c.feature)
                .and_then(|(_, x)| x.summary());
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} |",
                c.feature,
                three(&c.feature, before),
                three(&c.feature, during),
                during.map_or(0, |h| h.points)
            );
        }
    }

    let _ = writeln!(s, "\n## Forecast\n");
    if signals.forecasts.is_empty() {
        let _ = writeln!(s, "No capacity forecast is firing.");
    }
    for f in &signals.forecasts {
        let level = match f.level {
            ForecastLevel::Warning => "warning",
            ForecastLevel::Critical => "critical",
        };
        let _ = writeln!(
            s,
            "- {} `{}`: runs out in {} ({level})",
            f.kind,
            f.resource,
            fmt_duration_ms((f.eta_seconds * 1000.0) as i64)
        );
    }
    if let Some(p) = signals.risk {
        let _ = writeln!(s, "\nFault risk: {:.0}%.", p * 100.0);
    }
    s
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// A ticket's own fields, as the store has them now: what the body's table shows.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub severity: &'a str,
    pub label: &'a str,
    pub class: &'a str,
    pub fingerprint: &'a str,
    /// `open`, `acknowledged` or `resolved`.
    pub status: &'a str,
    pub assignee: Option<&'a str>,
    pub muted_by: Option<&'a str>,
    /// The ticket's first opening.
    pub opened_ms: i64,
    pub resolved_ms: Option<i64>,
    pub resolution: Option<&'a str>,
    /// The incident as last recorded (host, resource, its latest opening).
    pub incident: &'a Incident,
}

/// What the store adds to a ticket's body besides its fields and evidence: the
/// timeline events that are evidence too, and the similar past incidents found when
/// it opened.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extras<'a> {
    /// The ticket's timeline (any order is fine; the body picks what it needs).
    pub events: &'a [Event],
    /// Earlier tickets of this host most like this one, best first (see `similar`).
    pub similar: &'a [Similar],
    /// How often this problem opened on this host in the recurrence window before.
    pub earlier: usize,
}

/// The whole body: the ticket's fields, the stored `evidence` (see [`render`]), the
/// similar past incidents, what remediation did (timeline events of kind `action`,
/// in time order) and the latest diagnosis.
pub fn body(f: &Fields, evidence: &str, extras: Extras) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}: {}\n", f.id, f.title);
    let state = match f.resolved_ms {
        Some(r) => format!(
            "resolved at {} after {}",
            fmt_time(r),
            fmt_duration_ms(r - f.opened_ms)
        ),
        None => f.status.to_string(),
    };
    let reopened = f.incident.opened_ms > f.opened_ms;
    let mut rows = vec![
        ("Severity", f.severity.to_string()),
        ("Label", f.label.to_string()),
        ("Class", f.class.to_string()),
        ("Host", f.incident.host.clone()),
        (
            "Resource",
            f.incident.resource.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Opened", fmt_time(f.opened_ms)),
    ];
    if reopened {
        rows.push(("Reopened", fmt_time(f.incident.opened_ms)));
    }
    rows.push(("State", state));
    rows.push(("Assignee", f.assignee.unwrap_or("-").to_string()));
    if let Some(r) = f.resolution {
        rows.push(("Resolution", r.to_string()));
    }
    rows.push(("Fingerprint", format!("`{}`", f.fingerprint)));
    if let Some(m) = f.muted_by {
        rows.push(("Silenced by", format!("{m} (not sent to the sinks)")));
    }
    let _ = writeln!(s, "| | |\n|---|---|");
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {} |", escape(&v));
    }
    let resolved = f.resolved_ms.is_some();
    for paragraph in evidence.trim().split("\n\n") {
        if resolved && paragraph.starts_with(LATEST) {
            continue;
        }
        let _ = write!(s, "\n{}\n", paragraph.trim_end());
    }
    if !extras.similar.is_empty() || extras.earlier > 0 {
        s.push_str(&similar::render(extras.similar, extras.earlier));
    }
    let mut s = with_remediation(&s, extras.events);
    // The latest diagnosis (a reopened ticket is diagnosed again), last: it is the
    // longest part, and a sink that must cut the body cuts it first.
    if let Some(d) = extras
        .events
        .iter()
        .filter(|e| e.kind == "diagnose")
        .max_by_key(|e| e.at_ms)
    {
        s.push_str(&diagnosis(d));
    }
    s
}

/// The built-in diagnosis, from its timeline event's detail (the remediate layer's
/// `Diagnosis` as JSON; read field by field, so an older or partial record still
/// shows what it has).
fn diagnosis(e: &Event) -> String {
    let d = &e.detail;
    let mut s = format!("\n## Diagnosis ({})\n", fmt_time(e.at_ms));
    let procs = |s: &mut String, key: &str, title: &str| {
        let Some(list) = d[key].as_array().filter(|l| !l.is_empty()) else {
            return;
        };
        let _ = writeln!(
            s,
            "\n{title}\n\n| PID | Command | CPU | Memory | Open files |\n|---|---|---|---|---|"
        );
        for p in list {
            let _ = writeln!(
                s,
                "| {} | `{}` | {:.0} % | {} | {} |",
                p["pid"].as_i64().unwrap_or(0),
                escape(&code(p["command"].as_str().unwrap_or("?"))),
                p["cpu_percent"].as_f64().unwrap_or(0.0),
                fmt_quantity("rss_bytes", p["rss_bytes"].as_f64().unwrap_or(0.0)),
                p["open_files"]
                    .as_u64()
                    .map_or("-".to_string(), |n| n.to_string()),
            );
        }
    };
    procs(&mut s, "top_cpu", "Top processes by CPU:");
    procs(&mut s, "top_memory", "Top processes by memory:");
    procs(&mut s, "top_open_files", "Top processes by open files:");
    if let Some(dirs) = d["largest_directories"]
        .as_array()
        .filter(|l| !l.is_empty())
    {
        let _ = writeln!(
            s,
            "\nLargest directories:\n\n| Directory | Size |\n|---|---|"
        );
        for x in dirs {
            let _ = writeln!(
                s,
                "| `{}` | {} |",
                escape(&code(x["path"].as_str().unwrap_or("?"))),
                fmt_quantity("dir_bytes", x["bytes"].as_f64().unwrap_or(0.0))
            );
        }
    }
    for n in d["notes"].as_array().into_iter().flatten() {
        if let Some(n) = n.as_str() {
            let _ = writeln!(s, "\nNote: {n}");
        }
    }
    s
}

/// Text shown between backticks: a backtick or a line break in a process name or
/// a path would end the code span (or the table row) early.
fn code(s: &str) -> String {
    s.chars()
        .map(|c| if c == '`' || c.is_control() { '?' } else { c })
        .collect()
}

/// The report followed by what remediation did (timeline events of kind `action`).
/// A run that succeeded and has no verification yet says so: the mail sent right
/// after the run then tells its reader that the fix is not proven yet.
fn with_remediation(report: &str, events: &[Event]) -> String {
    let mut s = report.trim_end().to_string();
    s.push_str("\n\n## Remediation\n\n");
    let mut actions: Vec<&Event> = events.iter().filter(|e| e.kind == "action").collect();
    actions.sort_by_key(|e| e.at_ms);
    for a in &actions {
        let _ = write!(s, "- {} — {}", fmt_time(a.at_ms), a.summary);
        let run = a.detail["id"].as_str();
        let ok = a.detail["result"].as_str() == Some("ok");
        if let (Some(run), true) = (run, ok) {
            let checked = actions
                .iter()
                .any(|v| v.detail["run"].as_str() == Some(run) && v.detail["verify"].is_string());
            if !checked {
                s.push_str(" (verification pending: it counts as a fix once the incident resolves within the rule's verify window)");
            }
        }
        s.push('\n');
    }
    if actions.is_empty() {
        s.push_str("No action run.\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::AnomalySignal;

    fn rec(ts: i64, v: f64) -> Record {
        Record {
            timestamp_ms: Some(ts),
            values: vec![("disk_busy_ratio{device=\"sdb\"}".into(), v)],
        }
    }

    fn event(at_ms: i64, kind: &str, summary: &str, detail: serde_json::Value) -> Event {
        Event {
            at_ms,
            kind: kind.into(),
            summary: summary.into(),
            detail,
        }
    }

    fn plain_fields(inc: &Incident) -> Fields<'_> {
        Fields {
            id: &inc.id,
            title: &inc.title,
            severity: "P2",
            label: "storage",
            class: "anomaly",
            fingerprint: &inc.fingerprint,
            status: "open",
            assignee: None,
            muted_by: None,
            opened_ms: inc.opened_ms,
            resolved_ms: None,
            resolution: None,
            incident: inc,
        }
    }

    #[test]
    fn the_body_has_the_diagnosis_and_says_a_run_is_not_verified_yet() {
        let inc = crate::incident::testing::storage_anomaly("INC-7", 3_600_000, 0.69, 15.0);
        let diag = serde_json::json!({
            "at_ms": 3_660_000,
            "top_cpu": [{"pid": 42, "command": "gzip`x", "uid": 0, "cpu_percent": 97.4, "rss_bytes": 1048576}],
            "top_memory": [{"pid": 7, "command": "java", "uid": 1000, "cpu_percent": 1.0, "rss_bytes": 2147483648u64}],
            "largest_directories": [{"path": "/data/app|logs", "bytes": 5368709120u64}],
            "notes": ["the walk stopped after 5 s"],
        });
        let run = serde_json::json!({"id": "r1", "rule": "clean-app-logs", "result": "ok"});
        let mut events = vec![
            event(3_660_000, "diagnose", "diagnosis: ...", diag),
            event(
                3_700_000,
                "action",
                "remediation \"clean-app-logs\": exit 0 (ok, 0.2 s)",
                run,
            ),
        ];
        let r = body(
            &plain_fields(&inc),
            "",
            Extras {
                events: &events,
                ..Default::default()
            },
        );
        for needle in [
            "## Diagnosis (1970-01-01 01:01:00 UTC)",
            "| 42 | `gzip?x` | 97 % | 1.00 MiB | - |",
            "| 7 | `java` | 1 % | 2.00 GiB | - |",
            "| `/data/app\\|logs` | 5.00 GiB |",
            "Note: the walk stopped after 5 s",
            "exit 0 (ok, 0.2 s) (verification pending",
        ] {
            assert!(r.contains(needle), "missing {needle:?} in\n{r}");
        }
        assert!(r.find("## Remediation") < r.find("## Diagnosis"), "{r}");
        // Once verified, no longer pending.
        events.push(event(
            3_800_000,
            "action",
            "remediation \"clean-app-logs\" verified",
            serde_json::json!({"verify": "resolved", "rule": "clean-app-logs", "run": "r1"}),
        ));
        let r = body(
            &plain_fields(&inc),
            "",
            Extras {
                events: &events,
                ..Default::default()
            },
        );
        assert!(!r.contains("verification pending"), "{r}");
        assert!(r.contains("remediation \"clean-app-logs\" verified"), "{r}");
    }

    #[test]
    fn recent_keeps_a_bounded_window() {
        let mut r = Recent::new(3_600_000);
        for i in 0..10_000i64 {
            r.push(&rec(i * 1000, (i % 100) as f64));
        }
        let s = r
            .summary("disk_busy_ratio{device=\"sdb\"}")
            .expect("summary");
        assert!(s.points <= 721, "{s:?}");
        assert!(s.points >= 700, "{s:?}");
        assert_eq!((s.min, s.max), (0.0, 95.0));
        assert!(r.summary("nope").is_none());
    }

    #[test]
    fn series_stays_bounded() {
        let mut x = Series::default();
        for i in 0..100_000 {
            x.push(i as f64);
        }
        let h = x.summary().expect("summary");
        assert!(h.points < MAX_VALUES, "{h:?}");
        assert_eq!(h.min, 0.0);
        assert!(
            h.max > 99_000.0 && (h.median - 50_000.0).abs() < 1000.0,
            "{h:?}"
        );
    }

    #[test]
    fn report_has_every_section() {
        let mut recent = Recent::new(3_600_000);
        for i in 0..60 {
            recent.push(&rec(i * 60_000, 0.1 + (i % 3) as f64 / 100.0));
        }
        let inc = crate::incident::testing::storage_anomaly("INC-7", 3_600_000, 0.69, 15.0);
        let signals = |score: f64| Signals {
            anomaly: Some(AnomalySignal {
                score,
                threshold: 8.0,
                sample_anomalous: score > 8.0,
                sample_opens: score > 8.0,
                causes: inc.causes.clone(),
            }),
            ..Default::default()
        };
        let mut ctx = Context::default();
        for (k, (v, score)) in [(0.69, 20.0), (0.9, 12.0), (0.5, 4.0)].iter().enumerate() {
            ctx.observe(
                &inc,
                &rec(3_600_000 + k as i64 * 60_000, *v),
                &recent,
                &signals(*score),
                0,
            );
        }
        let evidence = render(&inc, &signals(4.0), &ctx, 3_600_000, false, 4_200_000);
        let fields = |status, resolved_ms, resolution| Fields {
            id: &inc.id,
            title: &inc.title,
            severity: "P3",
            label: "storage",
            class: "anomaly",
            fingerprint: &inc.fingerprint,
            status,
            assignee: None,
            muted_by: None,
            opened_ms: inc.opened_ms,
            resolved_ms,
            resolution,
            incident: &inc,
        };
        let r = body(&fields("open", None, None), &evidence, Extras::default());
        for needle in [
            "# INC-7: storage anomaly on web1 (sdb)",
            "| Severity | P3 |",
            "| State | open |",
            "| Assignee | - |",
            "anomaly score peaked at 20 at 1970-01-01 01:00:00 UTC, 2.50× its learned threshold of 8",
            "Latest score: 4 at 1970-01-01 01:10:00 UTC (under the threshold).",
            "| `disk_busy_ratio{device=\"sdb\"}` | 69.0 % | 10.0 % | 75% |",
            "## Affected metrics: the 1 h 00 min before, and since it started",
            "| `disk_busy_ratio{device=\"sdb\"}` | 10.0 % / 11.0 % / 12.0 % | 50.0 % / 69.0 % / 90.0 % | 3 |",
            "No capacity forecast is firing.",
        ] {
            assert!(r.contains(needle), "missing {needle:?} in\n{r}");
        }
        assert!(r.ends_with("## Remediation\n\nNo action run.\n"), "{r}");
        // Resolved by an operator later: the table says so, and the latest score
        // (from while it was open) is left out.
        let ran = [event(
            4_500_000,
            "action",
            "remediation \"fix\": exit 0",
            serde_json::Value::Null,
        )];
        let r = body(
            &fields("resolved", Some(4_800_000), Some("disk replaced")),
            &evidence,
            Extras {
                events: &ran,
                ..Default::default()
            },
        );
        assert!(
            r.contains("| State | resolved at 1970-01-01 01:20:00 UTC after 20 min |"),
            "{r}"
        );
        assert!(r.contains("| Resolution | disk replaced |"), "{r}");
        assert!(!r.contains(LATEST), "{r}");
        assert!(r.contains("No capacity forecast is firing."), "{r}");
        assert!(
            r.contains("- 1970-01-01 01:15:00 UTC — remediation \"fix\": exit 0"),
            "{r}"
        );
        // Recovered while the smoothed score still decays: said as such, not as a
        // resolved ticket "above the threshold".
        let mut ended = inc.clone();
        ended.resolved_ms = Some(4_200_000);
        let mut decaying = signals(12.0);
        if let Some(a) = decaying.anomaly.as_mut() {
            a.sample_anomalous = false;
        }
        let text = render(&ended, &decaying, &ctx, 3_600_000, false, 4_200_000);
        assert!(
            text.contains(
                "Score when it ended (1970-01-01 01:10:00 UTC): 12 (the smoothed score, still \
                 decaying; the samples themselves were normal)."
            ),
            "{text}"
        );
    }
}
