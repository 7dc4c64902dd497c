//! `history:`: how long samples are kept, how large the database may grow and how often
//! it is written.

use std::time::Duration;

use serde_yaml::Value;

use crate::config::reader::Reader;

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryConfig {
    /// One sample per minute is kept this long (what training reads).
    pub retention: Duration,
    /// Every sample is kept this long (recent detail for reports and forecasts).
    pub raw_retention: Duration,
    /// Upper bound of the history database on disk, in bytes; oldest samples go first.
    pub max_size_bytes: u64,
    /// Samples are kept in memory and written as one compressed block this often: the
    /// most a `kill -9` or a power cut can lose.
    pub flush_interval: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention: Duration::from_secs(30 * 24 * 3600),
            raw_retention: Duration::from_secs(2 * 24 * 3600),
            max_size_bytes: 1 << 30,
            flush_interval: Duration::from_secs(60),
        }
    }
}

/// Read the `history:` section; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> HistoryConfig {
    const SECS: fn(u64) -> Duration = Duration::from_secs;
    const DAY: u64 = 86_400;
    let d = HistoryConfig::default();
    let h = r.section(
        v,
        path,
        &["retention", "raw_retention", "max_size", "flush_interval"],
    );
    HistoryConfig {
        retention: h.duration(r, "retention", d.retention, SECS(3600), SECS(3650 * DAY)),
        raw_retention: h.duration(
            r,
            "raw_retention",
            d.raw_retention,
            SECS(60),
            SECS(365 * DAY),
        ),
        max_size_bytes: h.size(r, "max_size", d.max_size_bytes, 1 << 20, 1 << 50),
        flush_interval: h.duration(r, "flush_interval", d.flush_interval, SECS(1), SECS(3600)),
    }
}
