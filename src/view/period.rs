//! The time range of a view and which history tier answers it.
//!
//! A short range reads the `raw` tier (every sample), a long one the `minute` tier
//! (the first sample of each minute): a week of 1 s samples is 604,800 rows, of
//! minute rows 10,080, and a chart is a few hundred pixels wide either way. A range
//! the raw tier no longer covers (older than `history.raw_retention`) reads the
//! minute tier too.

use std::time::Duration;

use serde::Serialize;

use crate::store::{History, HistoryError, Tier};

/// The longest range read from the raw tier.
pub const RAW_MAX: Duration = Duration::from_secs(6 * 3600);
/// The shortest and longest `--since`: a minute to a year (the minute tier keeps 30
/// days by default, up to ten years).
pub const SINCE_MIN: Duration = Duration::from_secs(60);
pub const SINCE_MAX: Duration = Duration::from_secs(366 * 86_400);

/// `[from_ms, to_ms)` and the tier read for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
    #[serde(serialize_with = "tier_name")]
    pub tier: Tier,
}

fn tier_name<S: serde::Serializer>(t: &Tier, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match t {
        Tier::Raw => "raw",
        Tier::Minute => "minute",
    })
}

impl Period {
    /// The `since` before `to_ms`, with the tier `history` answers it from.
    pub fn ending(history: &History, since: Duration, to_ms: i64) -> Result<Period, HistoryError> {
        let from_ms = to_ms.saturating_sub(since.as_millis() as i64);
        let raw_covers = history
            .oldest_in(Tier::Raw)?
            .is_some_and(|oldest| oldest <= from_ms.saturating_add(60_000));
        let tier = if since <= RAW_MAX && raw_covers {
            Tier::Raw
        } else {
            Tier::Minute
        };
        Ok(Period {
            from_ms,
            to_ms,
            tier,
        })
    }

    pub fn span_ms(&self) -> i64 {
        self.to_ms - self.from_ms
    }
}

/// A `--since` (or `?since=`) value: a duration such as `90m`, `24h` or `7d`, from
/// [`SINCE_MIN`] to [`SINCE_MAX`]. Anything else is refused with a sentence saying
/// what is accepted.
pub fn parse_since(s: &str) -> Result<Duration, String> {
    if s.len() > 32 {
        return Err("a period is a duration such as 1h, 24h or 7d".into());
    }
    crate::config::reader::parse_duration_in(s.trim(), SINCE_MIN, SINCE_MAX)
        .map_err(|e| format!("{e} (a period such as 1h, 24h or 7d)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_in_range_and_refuses_the_rest() {
        assert_eq!(parse_since("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_since("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["-5", "99999d", "0s", "abc", "", "5", "1s", &"9".repeat(100)] {
            let e = parse_since(bad).expect_err(bad);
            assert!(e.contains("such as 1h"), "{bad}: {e}");
        }
    }
}
