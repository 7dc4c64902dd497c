//! The dashboard's query strings and form bodies, checked before anything is read:
//! a bad one is the client's mistake (a 4xx with what was wrong), never a 500, and
//! nothing a client sends makes a page read more than [`MAX_RANGE`] of history.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::reader::parse_duration_in;

/// Longer query strings or form bodies are refused (414 / 413) before they are parsed.
pub const MAX_QUERY: usize = 2048;
/// The ranges a chart can show: one hour to the seven days the minute tier is read for.
pub const MIN_RANGE: Duration = Duration::from_secs(3600);
pub const MAX_RANGE: Duration = Duration::from_secs(7 * 86_400);

/// Why a request was refused: the status and a one-line reason for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

pub fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// The decoded parameters of a query string or form body, each allowed name at most
/// once; an unknown name is refused (a typo must not silently show something else).
pub fn params(text: Option<&str>, allowed: &[&str]) -> Result<BTreeMap<String, String>, Refusal> {
    let text = text.unwrap_or("");
    if text.len() > MAX_QUERY {
        return Err(refuse(
            414,
            format!("query of {} bytes (at most {MAX_QUERY})", text.len()),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(text.as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(refuse(
                400,
                format!(
                    "unknown parameter {k:?} (expected one of: {})",
                    allowed.join(", ")
                ),
            ));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(refuse(400, format!("parameter {k:?} given twice")));
        }
    }
    Ok(out)
}

/// `since=1h|24h|7d|90m...`: how far back a chart reaches, within
/// [`MIN_RANGE`]..=[`MAX_RANGE`]; `default` when absent.
pub fn range(params: &BTreeMap<String, String>, default: Duration) -> Result<Duration, Refusal> {
    match params.get("since") {
        None => Ok(default),
        Some(s) => parse_duration_in(s, MIN_RANGE, MAX_RANGE).map_err(|e| {
            refuse(
                400,
                format!("since={s:?}: {e} (a range from 1h to 7d, e.g. since=24h)"),
            )
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn absurd_ranges_and_unknown_or_huge_queries_are_refused() {
        let p = params(Some("since=24h"), &["since"]).unwrap();
        assert_eq!(range(&p, MIN_RANGE).unwrap(), Duration::from_secs(86_400));
        assert_eq!(range(&BTreeMap::new(), MIN_RANGE).unwrap(), MIN_RANGE);
        for bad in ["-5", "99999d", "1s", "5", "", "1e400d", "8d"] {
            let p = params(Some(&format!("since={bad}")), &["since"]).unwrap();
            let e = range(&p, MIN_RANGE).unwrap_err();
            assert_eq!(e.status, 400, "{bad}: {e:?}");
            assert!(e.reason.starts_with("since="), "{bad}: {e:?}");
            assert!(
                e.reason
                    .ends_with("(a range from 1h to 7d, e.g. since=24h)"),
                "{e:?}"
            );
        }
        let e = params(Some("sinse=1h"), &["since"]).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.reason.contains("\"sinse\""), "{e:?}");
        assert_eq!(
            params(Some("since=1h&since=2h"), &["since"])
                .unwrap_err()
                .status,
            400
        );
        let huge = "since=".to_string() + &"1".repeat(MAX_QUERY);
        assert_eq!(params(Some(&huge), &["since"]).unwrap_err().status, 414);
        let p = params(Some("note=disk+full%21"), &["note"]).unwrap();
        assert_eq!(p["note"], "disk full!");
    }
}
