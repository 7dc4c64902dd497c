//! `GET /report`: the health report (`view::report`) on the daemon's listener, behind
//! the same TLS and basic auth as `/metrics`. `?since=24h` (as `anomalyd report
//! --since`) and `?format=html|md|json` (default html); anything else is a 400 that
//! says what is accepted.
//!
//! A report reads the history and looks at the host's processes (half a second), so
//! it runs on the blocking pool, one at a time: a second request while one is being
//! built gets 503 with `Retry-After`, never a queue. It does not walk directories
//! (`anomalyd report` does), so a request's time stays bounded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::sample::now_ms;
use crate::view::period::parse_since;
use crate::view::report::{self, Live, Source};

/// The longest query string taken.
const MAX_QUERY: usize = 256;

/// What `/report` needs, shared by the server's tasks.
#[derive(Clone)]
pub struct ReportRoute {
    source: Arc<Source>,
    one_at_a_time: Arc<Semaphore>,
}

impl ReportRoute {
    pub fn new(source: Source) -> ReportRoute {
        ReportRoute {
            source: Arc::new(source),
            one_at_a_time: Arc::new(Semaphore::new(1)),
        }
    }
}

/// An answer: status, content type, body.
pub type Answer = (u16, &'static str, String);

const PLAIN: &str = "text/plain; charset=utf-8";

fn bad(why: impl Into<String>) -> Answer {
    (400, PLAIN, why.into() + "\n")
}

/// `(since, format)` from the query string, or why not.
fn parse_query(query: Option<&str>) -> Result<(Duration, &'static str), Answer> {
    let mut since = Duration::from_secs(86_400);
    let mut format = "html";
    let q = query.unwrap_or("");
    if q.len() > MAX_QUERY {
        return Err(bad(format!(
            "query string longer than {MAX_QUERY} characters"
        )));
    }
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "since" => since = parse_since(v).map_err(|e| bad(format!("since: {e}")))?,
            "format" => {
                format = match v {
                    "html" => "html",
                    "md" => "md",
                    "json" => "json",
                    _ => return Err(bad("format: html, md or json")),
                }
            }
            _ => return Err(bad("unknown parameter (expected since, format)")),
        }
    }
    Ok((since, format))
}

/// The answer to `GET /report?<query>`.
pub async fn serve(route: Option<ReportRoute>, query: Option<&str>) -> Answer {
    let Some(route) = route else {
        return (404, PLAIN, "not found\n".into());
    };
    let (since, format) = match parse_query(query) {
        Ok(q) => q,
        Err(a) => return a,
    };
    let Ok(permit) = route.one_at_a_time.clone().try_acquire_owned() else {
        return (503, PLAIN, "a report is being made; try again\n".into());
    };
    let source = route.source.clone();
    let built = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut live = Live::gather(&source.sysfs);
        live.walk_directories = false;
        let r = report::build(&source, since, now_ms(), &live, &mut |_| {})?;
        match format {
            "json" => serde_json::to_string_pretty(&r)
                .map(|s| (s + "\n", "application/json"))
                .map_err(|e| report::ReportError::Render(e.to_string())),
            "md" => Ok((report::markdown(&r), "text/markdown; charset=utf-8")),
            _ => report::html(&r).map(|h| (h, "text/html; charset=utf-8")),
        }
    })
    .await;
    match built {
        Ok(Ok((body, content_type))) => (200, content_type, body),
        Ok(Err(e)) => {
            // The reason may name files of the state directory: logged, not answered.
            tracing::warn!("GET /report: {}", crate::text::error_chain(&e));
            (
                503,
                PLAIN,
                "the report cannot be made now; the daemon log says why\n".into(),
            )
        }
        Err(_) => (500, PLAIN, "the report failed\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_takes_since_and_format_and_refuses_the_rest() {
        assert_eq!(
            parse_query(Some("since=7d&format=md")).ok(),
            Some((Duration::from_secs(7 * 86_400), "md"))
        );
        assert_eq!(
            parse_query(None).ok(),
            Some((Duration::from_secs(86_400), "html"))
        );
        for q in [
            "since=-5",
            "since=99999d",
            "format=pdf",
            "x=1",
            &"a".repeat(300),
        ] {
            let e = parse_query(Some(q)).expect_err(q);
            assert_eq!(e.0, 400, "{q}");
        }
    }
}
