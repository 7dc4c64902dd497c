//! The Overview and Latency pages, their charts alone (`/charts/...`, which the pages'
//! script redraws every minute) and the same data as JSON for scripts
//! (`/api/v1/timeline`, `/api/v1/heatmap`, `/api/v1/health`).
//!
//! The live parts (model state, causes, resources, open incidents) come from the
//! tick's snapshot; the charts and the health score from the history, through
//! [`super::views::Views`], on the blocking pool. Each page is built by a plain
//! function of its data ([`overview_page`], [`latency_page`]), which the benchmark
//! (`benches/dashboard.rs`) times.

use std::time::Duration;

use maud::{html, Markup};

use super::live::Snapshot;
use super::page::{duration_s, page, quantity, time, trusted, Nav};
use super::query::{params, range, refuse, Refusal};
use super::views::{OverviewData, Views};
use super::{blocking, html, json, json_refusal, list, page_refusal, tickets, Dashboard, Resp};
use crate::sample::now_ms;
use crate::text::{fmt_quantity, fmt_value};
use crate::tickets::store::{Status, Ticket};
use crate::view::charts;
use crate::view::heatmap::{Heatmap, COLUMNS};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
/// The ranges offered as links (any other in 1 h..7 d works as `?since=`).
const OVERVIEW_RANGES: &[&str] = &["1h", "24h", "7d"];
const LATENCY_RANGES: &[&str] = &["1h", "6h", "24h", "7d"];
/// A zoomed target gets twice the columns.
const ZOOM_COLUMNS: usize = COLUMNS * 2;

fn since_text(since: Duration) -> String {
    crate::text::fmt_duration(since)
}

fn ranges(base: &str, current: Duration, offered: &[&str], extra: &str) -> Markup {
    let cur = since_text(current);
    html! {
        p.ranges {
            "Range: "
            @for r in offered {
                a href={ (base) "?since=" (r) (extra) } class=[(cur == *r).then_some("current")] { (r) }
            }
        }
    }
}

/// An SVG chart, or a line saying why there is none.
fn chart(id: &str, refresh: &str, drawn: Result<String, charts::ChartError>) -> Markup {
    match drawn {
        Ok(svg) => html! { div.chart id=(id) data-chart=(refresh) { (trusted(svg)) } },
        Err(e) => {
            tracing::warn!("dashboard: {e}");
            html! { div.chart id=(id) { p.problem { "The chart could not be drawn." } } }
        }
    }
}

fn views(d: &Dashboard) -> Result<Views, Refusal> {
    d.views
        .clone()
        .ok_or_else(|| refuse(404, "no history here (the daemon keeps none)"))
}

/// Every ticket (for the shading of incidents) and the open ones.
async fn tickets_all(d: &Dashboard) -> Result<Vec<Ticket>, Refusal> {
    list(d, false).await
}

/// `GET /[?since=24h]`.
pub async fn serve(d: &Dashboard, query: Option<String>) -> Resp {
    let since = match params(query.as_deref(), &["since"]).and_then(|p| range(&p, DAY)) {
        Ok(s) => s,
        Err(r) => return page_refusal(&r, Nav::Overview),
    };
    let all = match tickets_all(d).await {
        Ok(t) => t,
        Err(r) => return page_refusal(&r, Nav::Overview),
    };
    let snapshot = d.live.get();
    let views = d.views.clone();
    let built = blocking(move || {
        let now = now_ms();
        let data = views.map(|v| v.overview(&all, since, now));
        overview_page(&snapshot, &all, data, since).into_string()
    })
    .await;
    match built {
        Ok(body) => html(200, trusted(body)),
        Err(r) => page_refusal(&r, Nav::Overview),
    }
}

fn facts_card(data: &OverviewData) -> Markup {
    let f = &data.facts;
    html! {
        div.card #facts {
            h2 { "Host" }
            dl.fields {
                dt { "Name" } dd { (f.host_name) }
                dt { "OS" } dd { (f.os) }
                dt { "Kernel" } dd { (f.kernel) " (" (f.arch) ")" }
                dt { "Cores" } dd { (f.cores) }
                dt { "Memory" } dd { (fmt_quantity("memory_bytes", f.memory_bytes as f64)) }
                dt { "Swap" } dd { (fmt_quantity("swap_bytes", f.swap_bytes as f64)) }
                dt { "Uptime" } dd { (duration_s(Some(f.uptime_seconds as f64))) }
            }
        }
    }
}

fn health_card(data: &OverviewData) -> Markup {
    let h = &data.health;
    html! {
        div.card #health {
            h2 { "Health over " (since_text(Duration::from_millis(data.period.span_ms() as u64))) }
            p.big #health-score { (h.score.map_or("-".into(), |s| format!("{s:.0} / 100"))) }
            p.note { (h.explanation) }
            table #health-parts {
                thead { tr { th { "Part" } th { "Weight" } th { "Score" } th { "How" } } }
                tbody {
                    @for p in &h.parts {
                        tr {
                            td { (p.name) }
                            td { (fmt_value(p.weight)) }
                            td { (p.score.map_or("-".into(), |s| format!("{s:.0}"))) }
                            td { (p.explanation) }
                        }
                    }
                }
            }
        }
    }
}

fn phase_text(s: &Snapshot) -> String {
    let m = &s.model;
    match m.phase.as_str() {
        "" => "starting (no sample yet)".into(),
        "warming_up" => format!("warming up: scores in {}", duration_s(m.ready_seconds)),
        "probation" => format!(
            "probation: model {} old, pages in {}",
            duration_s(m.age_seconds),
            duration_s(m.ready_seconds)
        ),
        "trained" => format!("trained, model {} old", duration_s(m.age_seconds)),
        other => other.to_string(),
    }
}

/// The Overview page. `data`: the history's part (`None`: no history; `Err`: it
/// could not be read, said on the page, the live parts shown all the same).
pub fn overview_page(
    s: &Snapshot,
    tickets: &[Ticket],
    data: Option<Result<OverviewData, Refusal>>,
    since: Duration,
) -> Markup {
    let open: Vec<Ticket> = tickets
        .iter()
        .filter(|t| t.status != Status::Resolved)
        .cloned()
        .collect();
    let since_s = since_text(since);
    page(
        "Overview",
        Nav::Overview,
        Some("/api/v1/live"),
        html! {
            h1 { "Overview" }
            section.cards {
                @if let Some(Ok(d)) = &data { (facts_card(d)) }
                div.card #model {
                    h2 { "Model" }
                    p #phase data-phase=(s.model.phase) { (phase_text(s)) }
                    @if s.model.training { p.note { "training now" } }
                    h2 { "Anomaly score now" }
                    p.big {
                        span #score { (s.score.map_or("-".into(), fmt_value)) }
                        " / threshold "
                        span #threshold { (s.threshold.map_or("-".into(), fmt_value)) }
                    }
                    p #anomaly class=[s.anomaly.then_some("alarm")] {
                        @if s.anomaly { "anomalous" } @else { "normal" }
                    }
                    @if let Some(r) = s.fault_risk {
                        p { "fault risk " span #risk { (quantity("risk_ratio", Some(r))) } }
                    }
                }
                @if let Some(Ok(d)) = &data { (health_card(d)) }
            }
            h2 { "Anomaly score against its threshold, incidents shaded" }
            (ranges("/", since, OVERVIEW_RANGES, ""))
            @match &data {
                Some(Ok(d)) => {
                    (chart("score-chart", &format!("/charts/score.svg?since={since_s}"),
                        charts::score_chart(&d.timeline)))
                    p.note { (d.timeline.samples) " scored samples, " (d.timeline.above)
                        " above the threshold, " (d.timeline.incidents.len()) " incidents" }
                }
                Some(Err(r)) => p.problem { (r.reason) },
                None => p.problem { "No history is kept here." },
            }
            section #causes-now {
                h2 { "Top causes now" }
                table #causes {
                    thead { tr { th { "Feature" } th { "Contribution" } } }
                    tbody {
                        @for c in &s.causes {
                            tr { td { (c.feature) } td { (fmt_value(c.contribution)) } }
                        }
                    }
                }
            }
            section {
                h2 { "Filesystems, memory and swap" }
                table #resources {
                    thead { tr {
                        th { "Resource" } th { "Used" } th { "Size" } th { "Available" }
                        th { "Runs out in" }
                    } }
                    tbody {
                        @for r in &s.resources {
                            tr class={ "resource " (r.kind) } {
                                td { (r.name) }
                                td { (quantity("used_ratio", r.used_ratio)) }
                                td { (quantity("size_bytes", r.size_bytes)) }
                                td { (quantity("available_bytes", r.available_bytes)) }
                                td { (r.seconds_until_exhaustion.map_or("not at this trend".into(), |s| duration_s(Some(s)))) }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Open incidents" }
                (tickets::table(&open))
            }
            p.foot { "Sample of " span #at { (if s.at_ms > 0 { time(s.at_ms) } else { "-".into() }) } }
        },
    )
}

fn target_param(p: &std::collections::BTreeMap<String, String>) -> Option<String> {
    p.get("target").cloned()
}

/// `GET /latency[?since=1h][&target=gw]`.
pub async fn latency(d: &Dashboard, query: Option<String>) -> Resp {
    let parsed = params(query.as_deref(), &["since", "target"])
        .and_then(|p| Ok((range(&p, HOUR)?, target_param(&p))));
    let (since, target) = match parsed {
        Ok(x) => x,
        Err(r) => return page_refusal(&r, Nav::Latency),
    };
    let views = match views(d) {
        Ok(v) => v,
        Err(r) => return page_refusal(&r, Nav::Latency),
    };
    let built = blocking(move || {
        let columns = if target.is_some() {
            ZOOM_COLUMNS
        } else {
            COLUMNS
        };
        views
            .heatmaps(since, now_ms(), columns, target.as_deref())
            .map(|maps| latency_page(&maps, since, target.as_deref()).into_string())
    })
    .await;
    match built {
        Ok(Ok(body)) => html(200, trusted(body)),
        Ok(Err(r)) | Err(r) => page_refusal(&r, Nav::Latency),
    }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The Latency page: one heatmap per target, stacked; `zoom` shows one alone.
pub fn latency_page(maps: &[Heatmap], since: Duration, zoom: Option<&str>) -> Markup {
    let since_s = since_text(since);
    let extra = zoom
        .map(|t| format!("&target={}", encode(t)))
        .unwrap_or_default();
    page(
        "Latency",
        Nav::Latency,
        None,
        html! {
            h1 { "Latency" @if let Some(t) = zoom { ": " (t) } }
            (ranges("/latency", since, LATENCY_RANGES, &extra))
            @if zoom.is_some() {
                p { a href={ "/latency?since=" (since_s) } { "← all targets" } }
            }
            p.note { "Time along, round-trip time up; darker cells: more echoes at that RTT. "
                "The line is the median; red along the top marks lost echoes." }
            @if maps.is_empty() {
                p.problem #no-targets { "No ping target in the history of this period (configure "
                    code { "collectors.ping.targets" } ")." }
            }
            @for m in maps {
                section.target data-target=(m.target) {
                    h2 {
                        a href={ "/latency?since=" (since_s) "&target=" (encode(&m.target)) } { (m.target) }
                        span.note {
                            " · loss " (quantity("loss_ratio", m.mean_loss()))
                            " · median " (quantity("rtt_seconds", median_of(m)))
                            " · " (m.rounds) " rounds"
                        }
                    }
                    (chart(&format!("heatmap-{}", encode(&m.target)),
                        &format!("/charts/latency.svg?since={since_s}&target={}", encode(&m.target)),
                        charts::heatmap_chart(m)))
                }
            }
        },
    )
}

/// The median of the columns' medians.
fn median_of(m: &Heatmap) -> Option<f64> {
    let mut v: Vec<f64> = m.median.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn svg(body: String) -> Resp {
    let mut r = super::respond(200, "image/svg+xml", body);
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    // Opened on its own, an SVG is a document that could run script: it may not.
    r.headers_mut().insert(
        "content-security-policy",
        hyper::header::HeaderValue::from_static(super::CSP),
    );
    r
}

/// `GET /charts/score.svg` and `/charts/latency.svg`, `GET /api/v1/timeline`,
/// `/api/v1/heatmap` and `/api/v1/health`: one chart, or its data as JSON.
pub async fn data(d: &Dashboard, path: &str, query: Option<String>) -> Resp {
    let is_svg = path.starts_with("/charts/");
    let answer = data_answer(d, path, query).await;
    match answer {
        Ok(Answer::Svg(s)) => svg(s),
        Ok(Answer::Json(v)) => json(200, &v),
        Err(r) if is_svg => super::respond(
            r.status,
            "text/plain; charset=utf-8",
            format!("{}\n", r.reason),
        ),
        Err(r) => json_refusal(&r),
    }
}

enum Answer {
    Svg(String),
    Json(serde_json::Value),
}

async fn data_answer(d: &Dashboard, path: &str, query: Option<String>) -> Result<Answer, Refusal> {
    let heat = matches!(path, "/charts/latency.svg" | "/api/v1/heatmap");
    let allowed: &[&str] = if heat {
        &["since", "target"]
    } else {
        &["since"]
    };
    let p = params(query.as_deref(), allowed)?;
    let since = range(&p, if heat { HOUR } else { DAY })?;
    let target = target_param(&p);
    let views = views(d)?;
    let tickets = if heat {
        Vec::new()
    } else {
        tickets_all(d).await?
    };
    let path = path.to_string();
    let to_json = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map(Answer::Json)
            .map_err(|_| refuse(503, "cannot encode"))
    };
    blocking(move || {
        let now = now_ms();
        match path.as_str() {
            "/charts/score.svg" => {
                let t = views.timeline(&tickets, since, now)?;
                charts::score_chart(&t)
                    .map(Answer::Svg)
                    .map_err(|e| refuse(503, e.to_string()))
            }
            "/charts/latency.svg" => {
                let Some(target) = target else {
                    return Err(refuse(400, "target= is required: the ping target to draw"));
                };
                let maps = views.heatmaps(since, now, COLUMNS, Some(&target))?;
                charts::heatmap_chart(&maps[0])
                    .map(Answer::Svg)
                    .map_err(|e| refuse(503, e.to_string()))
            }
            "/api/v1/timeline" => {
                to_json(serde_json::to_value(views.timeline(&tickets, since, now)?))
            }
            "/api/v1/heatmap" => {
                let maps = views.heatmaps(since, now, COLUMNS, target.as_deref())?;
                to_json(serde_json::to_value(maps))
            }
            _ => {
                let o = views.overview(&tickets, since, now)?;
                to_json(serde_json::to_value(serde_json::json!({
                    "period": o.period, "facts": o.facts, "health": o.health,
                })))
            }
        }
    })
    .await?
}
