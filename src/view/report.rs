//! The health report: `anomalyd report [--since 24h] [--out FILE] [--format
//! html|md|json]` and `GET /report`.
//!
//! [`build`] reads the state directory ([`Source`]: `history.db`, `tickets.db`,
//! `model.json`; read only, so the daemon may be running or not) and the host as it is
//! now ([`Live`]: host facts and top processes), and gathers a [`Report`]:
//!
//! 1. host facts; the model's state;
//! 2. the weighted health score, each part explained ([`super::health`]);
//! 3. the anomaly timeline with the incidents shaded ([`super::timeline`]);
//! 4. the incidents of the period, and per severity the mean time to acknowledge
//!    (MTTA) and to resolve (MTTR) of those that opened in it (`tickets::summary`);
//! 5. forecasts: each resource's time to exhaustion, from the history's trend;
//! 6. the latency heatmap of each ping target ([`super::heatmap`]);
//! 7. top processes (the built-in diagnosis, `remediate::diagnose`);
//! 8. recommendations from the rules in [`RULES`].
//!
//! Rendered by [`html`] (one self-contained page: inline SVG and CSS, no script, no
//! external URL; built with maud), [`markdown`] (the same text, charts left out) or
//! as JSON (the `Report` itself).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use maud::{html as maud_html, PreEscaped, DOCTYPE};
use serde::Serialize;

use super::charts;
use super::facts::HostFacts;
use super::health::{self, Health};
use super::heatmap::{self, Heatmap};
use super::period::Period;
use super::timeline::{self, Timeline};
use super::HealthConfig;
use crate::forecast::{Eta, ForecastConfig, ForecastEvent, Forecaster, Kind};
use crate::incident::Label;
use crate::model::{Model, ModelConfig, ModelState, Phase};
use crate::remediate::diagnose::{self, Diagnosis, DirSize};
use crate::store::{History, HistoryConfig, HistoryError, StateDir, Tier};
use crate::text::{fmt_duration_ms, fmt_quantity, fmt_time, fmt_value};
use crate::tickets::{summary, Store, Ticket};

/// A resource running out within this is a recommendation.
pub const SOON: Duration = Duration::from_secs(7 * 86_400);
/// A ping target losing more than this share of its echoes over the period, or
/// [`LOSS_BURST`] of them within a stretch of it (a heatmap column), is a
/// recommendation.
pub const LOSS_LIMIT: f64 = 0.01;
pub const LOSS_BURST: f64 = 0.1;
/// A health part under this is a recommendation.
pub const WEAK_PART: f64 = 50.0;
/// Processes listed.
pub const TOP_PROCESSES: usize = 5;

/// The recommendation rules, in the order they are tried (README "Using it" lists
/// them too). Each is `(name, when it fires)`.
pub const RULES: [(&str, &str); 6] = [
    (
        "filesystem-full",
        "a filesystem's space or inodes run out within 7 days: names it, its ETA and the largest directories under it",
    ),
    (
        "memory-full",
        "memory or swap runs out within 7 days: the ETA and the processes using the most memory",
    ),
    (
        "weak-part",
        "a part of the health score is under 50: which metric pulled it down, and the top processes for CPU and memory",
    ),
    (
        "ping-loss",
        "a ping target lost more than 1 % of its echoes over the period, or 10 % within a stretch of it: the loss, when it was worst, and the median RTT",
    ),
    (
        "unacknowledged",
        "an incident is open and nobody acknowledged it: its id, severity and age",
    ),
    (
        "model-not-ready",
        "the model is still warming up or on probation: when it will score (or page)",
    ),
];

/// Where the report reads: the state directory and the configuration it needs.
#[derive(Debug, Clone)]
pub struct Source {
    pub state: StateDir,
    pub history: HistoryConfig,
    pub forecast: ForecastConfig,
    pub model: ModelConfig,
    pub health: HealthConfig,
    /// The sysfs mount (`paths.sysfs`), for link speeds.
    pub sysfs: PathBuf,
}

/// The host now: what the history cannot say.
#[derive(Debug, Clone)]
pub struct Live {
    pub facts: HostFacts,
    /// Top processes (the diagnosis); `None` leaves the section out.
    pub processes: Option<Diagnosis>,
    /// Whether a filesystem recommendation may walk its directories (a few seconds at
    /// most: `remediate::diagnose`'s budget).
    pub walk_directories: bool,
}

impl Live {
    /// This host now: facts, and the top processes by CPU (over half a second) and
    /// by memory, as the built-in diagnosis sees them.
    pub fn gather(sysfs: &Path) -> Live {
        Live {
            facts: HostFacts::gather(sysfs),
            processes: Some(diagnose::diagnose_at(
                Path::new("/proc"),
                Label::Other,
                None,
                diagnose::Scope::Daemon,
                TOP_PROCESSES,
                Duration::from_millis(500),
            )),
            walk_directories: true,
        }
    }
}

/// Why a report could not be made. Each says which file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no state directory at {} (has the daemon run with this state directory? --state-dir or the config's state_dir names it)", .0.display())]
    NoStateDir(PathBuf),
    #[error("no history in {} (the daemon writes history.db there once it has sampled)", .0.display())]
    NoHistory(PathBuf),
    #[error("cannot read the history: {0}")]
    History(#[from] HistoryError),
    #[error("cannot read the ticket store: {0}")]
    Tickets(#[from] crate::tickets::store::StoreError),
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    #[error("cannot render the report: {0}")]
    Render(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub generated_ms: i64,
    pub period: Period,
    pub facts: HostFacts,
    pub model: ModelInfo,
    pub health: Health,
    pub timeline: Timeline,
    pub incidents: Vec<IncidentLine>,
    /// Of the tickets that opened in the period; `None` without a ticket store.
    pub tickets: Option<summary::Report>,
    pub forecasts: Vec<Eta>,
    pub forecast_events: Vec<ForecastEvent>,
    pub heatmaps: Vec<Heatmap>,
    pub processes: Option<Diagnosis>,
    pub recommendations: Vec<Recommendation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// `warming_up`, `probation` or `trained`; `no_saved_model` when the history
    /// holds scores but the state directory no model (a replay's, or one removed).
    pub phase: &'static str,
    /// When it scores (warming up) or pages (probation).
    pub ready_ms: Option<i64>,
    pub trained_ms: Option<i64>,
    pub features: Option<usize>,
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentLine {
    pub id: String,
    pub severity: String,
    pub label: String,
    pub status: String,
    pub title: String,
    pub opened_ms: i64,
    pub resolved_ms: Option<i64>,
    pub duration_seconds: f64,
    pub acknowledged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// One of [`RULES`].
    pub rule: &'static str,
    pub text: String,
}

/// The report of the `since` before `until_ms`. `progress` hears each step (for a
/// progress line).
pub fn build(
    source: &Source,
    since: Duration,
    until_ms: i64,
    live: &Live,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, ReportError> {
    let root = source.state.path();
    if !root.is_dir() {
        return Err(ReportError::NoStateDir(root.to_path_buf()));
    }
    // Opening would create a missing database: only read one that exists.
    let history_path = source.state.history();
    if !history_path.is_file() {
        return Err(ReportError::NoHistory(root.to_path_buf()));
    }
    progress("opening the history");
    let history = History::open(&history_path, &source.history)?;
    let period = Period::ending(&history, since, until_ms)?;

    progress("reading the tickets");
    let tickets_path = source.state.tickets();
    let (tickets, summary) = if tickets_path.is_file() {
        let store = Store::open(&tickets_path)?;
        let mut all = store.list(false, until_ms)?;
        all.retain(|t| t.opened_ms < until_ms);
        let mut opened: Vec<Ticket> = all
            .iter()
            .filter(|t| (period.from_ms..=until_ms).contains(&t.opened_ms))
            .cloned()
            .collect();
        for t in &mut opened {
            t.timeline = store.timeline(&t.id)?;
        }
        let acknowledged: Vec<String> = all
            .iter()
            .filter(|t| t.status != crate::tickets::store::Status::Open)
            .map(|t| t.id.clone())
            .collect();
        let lines = timeline::shades(&all, period.from_ms, period.to_ms)
            .into_iter()
            .filter_map(|s| all.iter().find(|t| t.id == s.id))
            .map(|t| IncidentLine {
                id: t.id.clone(),
                severity: t.severity.clone(),
                label: t.label.clone(),
                status: t.status.as_str().to_string(),
                title: t.title.clone(),
                opened_ms: t.opened_ms,
                resolved_ms: t.resolved_ms,
                duration_seconds: t.duration_seconds,
                acknowledged: acknowledged.contains(&t.id),
            })
            .collect::<Vec<_>>();
        (
            (all, lines),
            Some(summary::build(&opened, period.from_ms, until_ms)),
        )
    } else {
        ((Vec::new(), Vec::new()), None)
    };
    let (all_tickets, incidents) = tickets;

    progress("reading the anomaly score");
    let timeline = timeline::build(&history, &all_tickets, period)?;
    progress("computing the health score");
    let health = health::build(&history, period, &live.facts, &source.health.weights)?;
    progress("reading ping latencies");
    let heatmaps = heatmap::build(&history, period, heatmap::COLUMNS)?;
    progress("forecasting");
    let (forecasts, forecast_events) = forecast(&history, &source.forecast, until_ms)?;
    progress("reading the model");
    let mut model = model_info(&history, source, until_ms)?;
    if model.trained_ms.is_none() && timeline.samples > 0 {
        // Scores without a saved model: a replay's state directory (replay keeps
        // its model in memory), or model.json removed since.
        model.phase = "no_saved_model";
        model.ready_ms = None;
    }

    let mut report = Report {
        generated_ms: until_ms,
        period,
        facts: live.facts.clone(),
        model,
        health,
        timeline,
        incidents,
        tickets: summary,
        forecasts,
        forecast_events,
        heatmaps,
        processes: live.processes.clone(),
        recommendations: Vec::new(),
    };
    progress("recommendations");
    report.recommendations = recommend(&report, live.walk_directories);
    Ok(report)
}

/// Each resource's time to exhaustion at `until_ms`, soonest first, from the trend
/// of the forecast window before it (as the daemon computes it live).
fn forecast(
    history: &History,
    cfg: &ForecastConfig,
    until_ms: i64,
) -> Result<(Vec<Eta>, Vec<ForecastEvent>), HistoryError> {
    if !cfg.enabled {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut f = Forecaster::new(cfg);
    f.seed(history, until_ms)?;
    let last = history
        .range(
            until_ms - 10 * 60_000,
            until_ms.saturating_add(1),
            Tier::Raw,
        )?
        .pop();
    let Some(last) = last else {
        return Ok((Vec::new(), Vec::new()));
    };
    let outlook = f.observe(&last);
    let mut etas = outlook.etas;
    etas.sort_by(|a, b| {
        a.seconds
            .total_cmp(&b.seconds)
            .then_with(|| a.resource.cmp(&b.resource))
            .then_with(|| a.kind.as_str().cmp(b.kind.as_str()))
    });
    Ok((etas, outlook.active))
}

fn model_info(history: &History, source: &Source, now: i64) -> Result<ModelInfo, HistoryError> {
    let path = source.state.model();
    let model = path
        .is_file()
        .then(|| Model::load(&path).ok())
        .flatten()
        .map(Arc::new);
    // The oldest rows of both tiers (`stats` would decode every block's timestamps).
    let first = [Tier::Raw, Tier::Minute]
        .into_iter()
        .map(|t| history.oldest_in(t))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .min();
    let state = model
        .clone()
        .map_or(ModelState::Untrained, ModelState::Trained);
    let ms = |d: Duration| d.as_millis() as i64;
    let phase = Phase::at(
        &state,
        first,
        ms(source.model.warmup),
        ms(source.model.probation),
        now,
    );
    Ok(ModelInfo {
        phase: phase.name(),
        ready_ms: phase.ready_ms(),
        trained_ms: model.as_ref().map(|m| m.created_ms()),
        features: model.as_ref().map(|m| m.schema().len()),
        threshold: model.as_ref().map(|m| m.threshold()),
    })
}

fn eta_text(seconds: f64) -> String {
    fmt_duration_ms((seconds.max(0.0) * 1000.0).min(i64::MAX as f64) as i64)
}

/// The rules of [`RULES`] applied to the report.
fn recommend(r: &Report, walk: bool) -> Vec<Recommendation> {
    let mut out = Vec::new();
    let soon = SOON.as_secs_f64();
    for e in r.forecasts.iter().filter(|e| e.seconds < soon) {
        match e.kind {
            Kind::Bytes | Kind::Inodes => {
                let what = if e.kind == Kind::Inodes {
                    "out of inodes"
                } else {
                    "full"
                };
                let dirs = if walk {
                    let (dirs, _) = diagnose::largest_dirs(
                        Path::new(&e.resource),
                        3,
                        Duration::from_secs(5),
                        500_000,
                    );
                    dirs
                } else {
                    Vec::new()
                };
                let tail = if dirs.is_empty() {
                    format!("see what grows with `du -xh --max-depth 2 {}`", e.resource)
                } else {
                    format!("the largest directories are {}", dir_list(&dirs))
                };
                out.push(Recommendation {
                    rule: "filesystem-full",
                    text: format!(
                        "{} will be {what} in {}: {tail}.",
                        e.resource,
                        eta_text(e.seconds)
                    ),
                });
            }
            Kind::Memory | Kind::Swap => {
                let procs = r
                    .processes
                    .as_ref()
                    .map(|d| {
                        proc_list(&d.top_memory, |p| {
                            fmt_quantity("rss_bytes", p.rss_bytes as f64)
                        })
                    })
                    .filter(|s| !s.is_empty())
                    .map_or_else(String::new, |s| format!(": the largest processes are {s}"));
                out.push(Recommendation {
                    rule: "memory-full",
                    text: format!(
                        "{} will run out in {}{procs}.",
                        if e.kind == Kind::Memory {
                            "Memory"
                        } else {
                            "Swap"
                        },
                        eta_text(e.seconds)
                    ),
                });
            }
        }
    }
    for p in &r.health.parts {
        let Some(score) = p.score.filter(|s| *s < WEAK_PART) else {
            continue;
        };
        let procs = r.processes.as_ref().map(|d| match p.name {
            "cpu" => proc_list(&d.top_cpu, |p| format!("{:.0} % CPU", p.cpu_percent)),
            "memory" => proc_list(&d.top_memory, |p| {
                fmt_quantity("rss_bytes", p.rss_bytes as f64)
            }),
            _ => String::new(),
        });
        let procs = procs
            .filter(|s| !s.is_empty())
            .map_or_else(String::new, |s| format!("; top processes now: {s}"));
        out.push(Recommendation {
            rule: "weak-part",
            text: format!(
                "{} scored {score:.0} of 100: {}{procs}.",
                p.name, p.explanation
            ),
        });
    }
    for h in &r.heatmaps {
        let Some(loss) = h.mean_loss() else {
            continue;
        };
        let worst = h
            .loss
            .iter()
            .enumerate()
            .filter_map(|(c, l)| l.map(|l| (c, l)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let burst = worst.filter(|(_, l)| *l >= LOSS_BURST);
        if loss <= LOSS_LIMIT && burst.is_none() {
            continue;
        }
        let worst = worst.map_or_else(String::new, |(c, l)| {
            format!(
                ", up to {} around {}",
                fmt_quantity("loss_ratio", l),
                fmt_time(h.period.from_ms + c as i64 * h.column_ms)
            )
        });
        let mut medians: Vec<f64> = h.median.iter().flatten().copied().collect();
        medians.sort_by(f64::total_cmp);
        let median = medians
            .get(medians.len() / 2)
            .map_or_else(String::new, |m| {
                format!(" (median RTT {})", fmt_quantity("rtt_seconds", *m))
            });
        out.push(Recommendation {
            rule: "ping-loss",
            text: format!(
                "{} lost {} of its echoes over the period{worst}{median}: check the path to it (the latency heatmap shows when).",
                h.target,
                fmt_quantity("loss_ratio", loss)
            ),
        });
    }
    for i in r
        .incidents
        .iter()
        .filter(|i| i.resolved_ms.is_none() && !i.acknowledged)
    {
        out.push(Recommendation {
            rule: "unacknowledged",
            text: format!(
                "{} ({}, {}) has been open for {} and nobody acknowledged it: `anomalyd tickets show {}`.",
                i.id,
                i.severity,
                i.label,
                fmt_duration_ms(r.generated_ms - i.opened_ms),
                i.id
            ),
        });
    }
    match (r.model.phase, r.model.ready_ms) {
        ("warming_up", ready) => out.push(Recommendation {
            rule: "model-not-ready",
            text: match ready {
                Some(t) => format!(
                    "The model is still warming up: it scores from {} on; until then there is no anomaly score.",
                    fmt_time(t)
                ),
                None => "The model is still warming up: there is no anomaly score yet.".into(),
            },
        }),
        ("probation", Some(t)) => out.push(Recommendation {
            rule: "model-not-ready",
            text: format!(
                "The model is on probation until {}: anomaly tickets open muted (recorded, not sent) until then.",
                fmt_time(t)
            ),
        }),
        _ => {}
    }
    out
}

fn dir_list(dirs: &[DirSize]) -> String {
    dirs.iter()
        .map(|d| format!("{} ({})", d.path, fmt_quantity("x_bytes", d.bytes as f64)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn proc_list(procs: &[diagnose::Proc], what: impl Fn(&diagnose::Proc) -> String) -> String {
    procs
        .iter()
        .take(3)
        .map(|p| format!("{} ({})", p.command, what(p)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "24 h" for the heading.
fn span_text(p: &Period) -> String {
    fmt_duration_ms(p.span_ms())
}

fn score_text(s: Option<f64>) -> String {
    s.map_or_else(|| "not scored".into(), |s| format!("{s:.0}"))
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown: every section of the HTML, charts replaced by their
/// figures.
pub fn markdown(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let f = &r.facts;
    let _ = writeln!(s, "# Health report: {}\n", f.host_name);
    let _ = writeln!(
        s,
        "Period: {} to {} ({}; `{}` history tier).\n",
        fmt_time(r.period.from_ms),
        fmt_time(r.period.to_ms),
        span_text(&r.period),
        if r.period.tier == Tier::Raw {
            "raw"
        } else {
            "minute"
        }
    );

    let _ = writeln!(s, "## Host\n\n| | |\n|---|---|");
    let rows = [
        ("Host", f.host_name.clone()),
        ("OS", f.os.clone()),
        ("Kernel", format!("{} ({})", f.kernel, f.arch)),
        ("vCPUs", f.cores.to_string()),
        ("Memory", fmt_quantity("x_bytes", f.memory_bytes as f64)),
        ("Swap", fmt_quantity("x_bytes", f.swap_bytes as f64)),
        (
            "Uptime",
            fmt_duration_ms(f.uptime_seconds.saturating_mul(1000).min(i64::MAX as u64) as i64),
        ),
        ("Model", model_text(&r.model)),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {} |", md_cell(&v));
    }

    let _ = writeln!(
        s,
        "\n## Health score: {}\n\n{}\n\n| Part | Weight | Score | How |\n|---|---|---|---|",
        score_text(r.health.score),
        r.health.explanation
    );
    for p in &r.health.parts {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            p.name,
            fmt_value(p.weight),
            score_text(p.score),
            md_cell(&p.explanation)
        );
    }

    let t = &r.timeline;
    let _ = writeln!(s, "\n## Anomaly timeline\n");
    if t.samples == 0 {
        let _ = writeln!(s, "No scored samples in the period.");
    } else {
        let peak = t
            .points
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .map(|p| {
                format!(
                    "; the highest score {} at {} (threshold {})",
                    fmt_value(p.score),
                    fmt_time(p.ts_ms),
                    fmt_value(p.threshold)
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{} scored samples, {} above the threshold ({}){peak}.",
            t.samples,
            t.above,
            fmt_quantity("x_ratio", t.above as f64 / t.samples as f64)
        );
    }

    let _ = writeln!(s, "\n## Incidents\n");
    if r.incidents.is_empty() {
        let _ = writeln!(s, "No incident was open in the period.");
    } else {
        let _ = writeln!(s, "| Ticket | Severity | Label | Status | Opened | Duration | Title |\n|---|---|---|---|---|---|---|");
        for i in &r.incidents {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                i.id,
                i.severity,
                i.label,
                i.status,
                fmt_time(i.opened_ms),
                fmt_duration_ms((i.duration_seconds * 1000.0) as i64),
                md_cell(&i.title)
            );
        }
    }
    if let Some(sum) = &r.tickets {
        let _ = writeln!(s, "\n{}", response_md(sum));
    }

    let _ = writeln!(s, "\n## Forecasts\n");
    if r.forecasts.is_empty() {
        let _ = writeln!(s, "No resource has a forecast (no history of them yet).");
    } else {
        let _ = writeln!(
            s,
            "| Resource | Kind | Headroom | Runs out in |\n|---|---|---|---|"
        );
        for e in &r.forecasts {
            let headroom = match e.kind {
                Kind::Inodes => format!("{} inodes", fmt_value(e.headroom)),
                _ => fmt_quantity("x_bytes", e.headroom),
            };
            let eta = if e.seconds.is_finite() {
                eta_text(e.seconds)
            } else {
                "not running out".into()
            };
            let _ = writeln!(
                s,
                "| {} | {} | {headroom} | {eta} |",
                md_cell(&e.resource),
                e.kind.as_str()
            );
        }
    }

    let _ = writeln!(s, "\n## Ping latency\n");
    if r.heatmaps.is_empty() {
        let _ = writeln!(s, "No ping target in the period.");
    } else {
        let _ = writeln!(
            s,
            "| Target | Rounds | Median RTT | Lowest / highest RTT | Loss |\n|---|---|---|---|---|"
        );
        for h in &r.heatmaps {
            let mut m: Vec<f64> = h.median.iter().flatten().copied().collect();
            m.sort_by(f64::total_cmp);
            let q =
                |v: Option<&f64>| v.map_or("-".to_string(), |v| fmt_quantity("rtt_seconds", *v));
            let (lo, hi) = (lowest_rtt(h), highest_rtt(h));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} | {} |",
                md_cell(&h.target),
                h.rounds,
                q(m.get(m.len() / 2)),
                q(lo.as_ref()),
                q(hi.as_ref()),
                h.mean_loss()
                    .map_or("-".into(), |l| fmt_quantity("loss_ratio", l))
            );
        }
    }

    let _ = writeln!(s, "\n## Top processes\n");
    match &r.processes {
        None => {
            let _ = writeln!(s, "Not looked at.");
        }
        Some(d) => {
            let _ = writeln!(
                s,
                "At {}.\n\n| By CPU | CPU | By memory | Resident |\n|---|---|---|---|",
                fmt_time(d.at_ms)
            );
            for i in 0..d.top_cpu.len().max(d.top_memory.len()) {
                let c = d.top_cpu.get(i);
                let m = d.top_memory.get(i);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    c.map_or(String::new(), |p| md_cell(&format!(
                        "{} ({})",
                        p.command, p.pid
                    ))),
                    c.map_or(String::new(), |p| format!("{:.0} %", p.cpu_percent)),
                    m.map_or(String::new(), |p| md_cell(&format!(
                        "{} ({})",
                        p.command, p.pid
                    ))),
                    m.map_or(String::new(), |p| fmt_quantity(
                        "x_bytes",
                        p.rss_bytes as f64
                    )),
                );
            }
        }
    }

    let _ = writeln!(s, "\n## Recommendations\n");
    if r.recommendations.is_empty() {
        let _ = writeln!(s, "Nothing to do: no rule matched.");
    }
    for rec in &r.recommendations {
        let _ = writeln!(s, "- {} (`{}`)", rec.text, rec.rule);
    }
    s
}

fn lowest_rtt(h: &Heatmap) -> Option<f64> {
    let b = (0..h.edges.len() - 1).find(|&b| h.counts.iter().any(|c| c[b] > 0))?;
    Some(h.edges[b])
}

fn highest_rtt(h: &Heatmap) -> Option<f64> {
    let b = (0..h.edges.len() - 1)
        .rev()
        .find(|&b| h.counts.iter().any(|c| c[b] > 0))?;
    Some(h.edges[b + 1])
}

fn model_text(m: &ModelInfo) -> String {
    let trained = m
        .trained_ms
        .map_or(String::new(), |t| format!(", trained {}", fmt_time(t)));
    let until = m
        .ready_ms
        .map_or(String::new(), |t| format!(" until {}", fmt_time(t)));
    let phase = match m.phase {
        "warming_up" => "warming up",
        "no_saved_model" => "no saved model (the history holds the scores it gave)",
        p => p,
    };
    format!("{phase}{until}{trained}")
}

fn response_md(sum: &summary::Report) -> String {
    use std::fmt::Write;
    let mut s = format!(
        "Of the {} tickets that opened in the period, per severity:\n\n| Severity | Tickets | Acknowledged | MTTA | Resolved | MTTR |\n|---|---|---|---|---|---|\n",
        sum.tickets
    );
    let d = |v: Option<f64>| v.map_or("-".to_string(), |x| fmt_duration_ms((x * 1000.0) as i64));
    for (sev, r) in &sum.response {
        let _ = writeln!(
            s,
            "| {sev} | {} | {} | {} | {} | {} |",
            r.tickets,
            r.acknowledged,
            d(r.mtta_seconds),
            r.resolved,
            d(r.mttr_seconds)
        );
    }
    s.trim_end().to_string()
}

const CSS: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}figure{margin:1em 0}figure svg{width:100%;height:auto}.score{font-size:2em;font-weight:bold}\
section{margin-bottom:2em}.muted{color:#666}";

/// The report as one self-contained HTML page: charts inline as SVG, styles inline,
/// no script and no external URL.
pub fn html(r: &Report) -> Result<String, ReportError> {
    let score_svg = charts::score_chart(&r.timeline)?;
    let usage_svg = charts::usage_chart(&r.health, r.period)?;
    let mut heat_svgs = Vec::new();
    for h in &r.heatmaps {
        heat_svgs.push((h, charts::heatmap_chart(h)?));
    }
    let f = &r.facts;
    let page = maud_html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Health report: " (f.host_name) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "Health report: " (f.host_name) }
                p.muted {
                    "Period: " (fmt_time(r.period.from_ms)) " to " (fmt_time(r.period.to_ms))
                    " (" (span_text(&r.period)) "). Made by anomalyd " (env!("CARGO_PKG_VERSION")) "."
                }
                section id="host" {
                    h2 { "Host" }
                    table {
                        tr { th { "Host" } td { (f.host_name) } }
                        tr { th { "OS" } td { (f.os) } }
                        tr { th { "Kernel" } td { (f.kernel) " (" (f.arch) ")" } }
                        tr { th { "vCPUs" } td { (f.cores) } }
                        tr { th { "Memory" } td { (fmt_quantity("x_bytes", f.memory_bytes as f64)) } }
                        tr { th { "Swap" } td { (fmt_quantity("x_bytes", f.swap_bytes as f64)) } }
                        tr { th { "Uptime" } td { (fmt_duration_ms(f.uptime_seconds.saturating_mul(1000).min(i64::MAX as u64) as i64)) } }
                        tr { th { "Model" } td { (model_text(&r.model)) } }
                    }
                }
                section id="health" {
                    h2 { "Health score" }
                    p.score { (score_text(r.health.score)) }
                    p { (r.health.explanation) }
                    table {
                        tr { th { "Part" } th { "Weight" } th { "Score" } th { "How" } }
                        @for p in &r.health.parts {
                            tr { td { (p.name) } td { (fmt_value(p.weight)) } td { (score_text(p.score)) } td { (p.explanation) } }
                        }
                    }
                    figure.chart id="usage-chart" { (PreEscaped(&usage_svg)) figcaption { "Resource use over the period (the highest of each time slice)." } }
                }
                section id="timeline" {
                    h2 { "Anomaly timeline" }
                    figure.chart id="score-chart" { (PreEscaped(&score_svg)) figcaption { "Anomaly score (blue) against its threshold (red); incidents shaded." } }
                    p { (r.timeline.samples) " scored samples, " (r.timeline.above) " above the threshold." }
                }
                section id="incidents" {
                    h2 { "Incidents" }
                    @if r.incidents.is_empty() {
                        p { "No incident was open in the period." }
                    } @else {
                        table {
                            tr { th { "Ticket" } th { "Severity" } th { "Label" } th { "Status" } th { "Opened" } th { "Duration" } th { "Title" } }
                            @for i in &r.incidents {
                                tr.incident { td { (i.id) } td { (i.severity) } td { (i.label) } td { (i.status) } td { (fmt_time(i.opened_ms)) } td { (fmt_duration_ms((i.duration_seconds * 1000.0) as i64)) } td { (i.title) } }
                            }
                        }
                    }
                    @if let Some(sum) = &r.tickets {
                        h3 { "Response times (tickets opened in the period)" }
                        table {
                            tr { th { "Severity" } th { "Tickets" } th { "Acknowledged" } th { "MTTA" } th { "Resolved" } th { "MTTR" } }
                            @for (sev, x) in &sum.response {
                                tr {
                                    td { (sev) } td { (x.tickets) } td { (x.acknowledged) }
                                    td { (x.mtta_seconds.map_or("-".to_string(), |v| fmt_duration_ms((v * 1000.0) as i64))) }
                                    td { (x.resolved) }
                                    td { (x.mttr_seconds.map_or("-".to_string(), |v| fmt_duration_ms((v * 1000.0) as i64))) }
                                }
                            }
                        }
                    }
                }
                section id="forecasts" {
                    h2 { "Forecasts" }
                    @if r.forecasts.is_empty() {
                        p { "No resource has a forecast (no history of them yet)." }
                    } @else {
                        table {
                            tr { th { "Resource" } th { "Kind" } th { "Headroom" } th { "Runs out in" } }
                            @for e in &r.forecasts {
                                tr {
                                    td { (e.resource) } td { (e.kind.as_str()) }
                                    td { @if e.kind == Kind::Inodes { (fmt_value(e.headroom)) " inodes" } @else { (fmt_quantity("x_bytes", e.headroom)) } }
                                    td { @if e.seconds.is_finite() { (eta_text(e.seconds)) } @else { "not running out" } }
                                }
                            }
                        }
                    }
                }
                section id="latency" {
                    h2 { "Ping latency" }
                    @if heat_svgs.is_empty() {
                        p { "No ping target in the period." }
                    }
                    @for (h, svg) in &heat_svgs {
                        figure.chart.heatmap id={ "heatmap-" (crate::text::plain(&h.target)) } {
                            (PreEscaped(svg))
                            figcaption {
                                (h.target) ": " (h.rounds) " rounds, loss "
                                (h.mean_loss().map_or("-".into(), |l| fmt_quantity("loss_ratio", l)))
                                ". Colour: how many RTTs fell in the cell; green: the median; red along the top: loss."
                            }
                        }
                    }
                }
                section id="processes" {
                    h2 { "Top processes" }
                    @match &r.processes {
                        None => p { "Not looked at." },
                        Some(d) => {
                            table {
                                tr { th { "By CPU" } th { "CPU" } th { "By memory" } th { "Resident" } }
                                @for i in 0..d.top_cpu.len().max(d.top_memory.len()) {
                                    tr {
                                        td { (d.top_cpu.get(i).map_or(String::new(), |p| format!("{} ({})", p.command, p.pid))) }
                                        td { (d.top_cpu.get(i).map_or(String::new(), |p| format!("{:.0} %", p.cpu_percent))) }
                                        td { (d.top_memory.get(i).map_or(String::new(), |p| format!("{} ({})", p.command, p.pid))) }
                                        td { (d.top_memory.get(i).map_or(String::new(), |p| fmt_quantity("x_bytes", p.rss_bytes as f64))) }
                                    }
                                }
                            }
                        }
                    }
                }
                section id="recommendations" {
                    h2 { "Recommendations" }
                    @if r.recommendations.is_empty() {
                        p { "Nothing to do: no rule matched." }
                    } @else {
                        ul {
                            @for rec in &r.recommendations {
                                li { (rec.text) " " span.muted { "(" (rec.rule) ")" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page.into_string())
}
