//! The frame every dashboard page shares (head, navigation, footer) and the small
//! formatting helpers the pages use, so a value reads the same on each of them.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::text::{fmt_duration_ms, fmt_quantity, fmt_time};

/// Which entry of the navigation is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Latency,
    Tickets,
}

/// A whole page. `poll` is the JSON the page's script polls for live updates (its
/// `data-poll`), `None` for a page without live parts.
pub fn page(title: &str, nav: Nav, poll: Option<&str>, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, text: &str| {
        html! { a href=(href) class=[(n == nav).then_some("current")] { (text) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · anomalyd" }
                // No favicon request (a 404 in every browser console).
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/assets/dash.css";
                script src="/assets/dash.js" defer {}
            }
            body data-poll=[poll] {
                header {
                    span.brand { "anomalyd" }
                    nav {
                        (item(Nav::Overview, "/", "Overview"))
                        (item(Nav::Latency, "/latency", "Latency"))
                        (item(Nav::Tickets, "/tickets", "Tickets"))
                        a href="/report" { "Report" }
                        a href="/metrics" { "Metrics" }
                        a href="/healthz" { "Health" }
                    }
                    @if poll.is_some() { span.updated { "updated " span #updated { "-" } } }
                }
                main { (body) }
            }
        }
    }
}

/// A value in the unit its metric name carries (`1.50 GiB`, `98 %`, `0.42 ms`).
pub fn quantity(series: &str, v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| fmt_quantity(series, v))
}

pub fn time(ms: i64) -> String {
    fmt_time(ms)
}

pub fn duration_s(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) if s.is_finite() => fmt_duration_ms((s * 1000.0) as i64),
        _ => "-".into(),
    }
}

/// A page that says what went wrong, in the frame, for a person's browser.
pub fn problem(title: &str, nav: Nav, reason: &str) -> Markup {
    page(
        title,
        nav,
        None,
        html! {
            h1 { (title) }
            p.problem { (reason) }
        },
    )
}

/// Markup already escaped by its producer (an SVG chart, rendered Markdown).
pub fn trusted(s: String) -> Markup {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_page_that_polls_shows_when_it_was_updated() {
        let polled = page("Overview", Nav::Overview, Some("/api/v1/live"), html! {}).into_string();
        assert!(polled.contains("id=\"updated\""), "{polled}");
        let still = page("Latency", Nav::Latency, None, html! {}).into_string();
        assert!(!still.contains("updated"), "{still}");
    }
}
