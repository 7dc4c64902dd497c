//! What the Overview and Latency pages read from the state directory, through the
//! `view` data layer (the report's): the host facts, the health score, the score
//! timeline and the latency heatmaps, each over a period of history.
//!
//! One history connection is opened on first use and kept (SQLite readers beside the
//! daemon's writer, WAL). The daemon writes its samples in blocks every
//! `history.flush_interval` (1 min), so the charts lag the live parts of a page by up
//! to that; the live parts come from the tick's snapshot instead.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::{History, HistoryConfig, HistoryError, StateDir, Tier};
use crate::tickets::store::Ticket;
use crate::view::facts::HostFacts;
use crate::view::health::{self, Health};
use crate::view::heatmap::{self, Heatmap};
use crate::view::period::{Period, RAW_MAX};
use crate::view::timeline::{self, Timeline};
use crate::view::Weights;

use super::query::{refuse, Refusal};

/// Where the views read, and how the health score is weighed.
#[derive(Clone)]
pub struct Views {
    state: StateDir,
    config: HistoryConfig,
    sysfs: PathBuf,
    weights: Weights,
    history: Arc<Mutex<Option<History>>>,
    oldest_raw: Arc<Mutex<Option<OldestRaw>>>,
}

/// The raw tier's oldest row, and when it was read (see [`Views::period`]).
type OldestRaw = (Instant, Option<i64>);

/// How long the raw tier's oldest row is taken as known: it moves only when the
/// daemon prunes (every few minutes), and finding it costs a pass over every raw
/// block (100 ms and more for days of them), which a page must not pay each time.
const OLDEST_TTL: Duration = Duration::from_secs(60);

/// The overview's data over one period.
pub struct OverviewData {
    pub facts: HostFacts,
    pub health: Health,
    pub timeline: Timeline,
    pub period: Period,
}

impl Views {
    pub fn new(state: StateDir, config: HistoryConfig, sysfs: PathBuf, weights: Weights) -> Views {
        Views {
            state,
            config,
            sysfs,
            weights,
            history: Arc::new(Mutex::new(None)),
            oldest_raw: Arc::new(Mutex::new(None)),
        }
    }

    /// [`Period::ending`], with the raw tier's oldest row remembered for
    /// [`OLDEST_TTL`]: the same choice of tier (raw up to [`RAW_MAX`] when it covers
    /// the period, minute beyond).
    fn period(&self, h: &History, since: Duration, to_ms: i64) -> Result<Period, HistoryError> {
        let from_ms = to_ms.saturating_sub(since.as_millis() as i64);
        if since > RAW_MAX {
            return Ok(Period {
                from_ms,
                to_ms,
                tier: Tier::Minute,
            });
        }
        let mut cached = match self.oldest_raw.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let oldest = match *cached {
            Some((at, oldest)) if at.elapsed() < OLDEST_TTL => oldest,
            _ => {
                let oldest = h.oldest_in(Tier::Raw)?;
                *cached = Some((Instant::now(), oldest));
                oldest
            }
        };
        let covers = oldest.is_some_and(|o| o <= from_ms.saturating_add(60_000));
        Ok(Period {
            from_ms,
            to_ms,
            tier: if covers { Tier::Raw } else { Tier::Minute },
        })
    }

    /// Run `f` with the history (opened on first use). A failure is logged in full and
    /// answered in general terms (no path reaches a client).
    fn with_history<R>(
        &self,
        f: impl FnOnce(&History) -> Result<R, HistoryError>,
    ) -> Result<R, Refusal> {
        let mut guard = match self.history.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.is_none() {
            match History::open(self.state.history(), &self.config) {
                Ok(h) => *guard = Some(h),
                Err(e) => {
                    tracing::warn!("dashboard: {e}");
                    return Err(refuse(503, "the history is unavailable; try again"));
                }
            }
        }
        let Some(h) = guard.as_ref() else {
            return Err(refuse(503, "the history is unavailable; try again"));
        };
        f(h).map_err(|e| {
            tracing::warn!("dashboard: {e}");
            // A broken connection is opened afresh next time.
            *guard = None;
            refuse(503, "the history could not be read; try again")
        })
    }

    /// Facts, health and the score timeline over `since` before `now_ms`; `tickets`
    /// (all of them) give the incidents to shade.
    pub fn overview(
        &self,
        tickets: &[Ticket],
        since: Duration,
        now_ms: i64,
    ) -> Result<OverviewData, Refusal> {
        let facts = HostFacts::gather(&self.sysfs);
        self.with_history(|h| {
            let period = self.period(h, since, now_ms)?;
            let health = health::build(h, period, &facts, &self.weights)?;
            let timeline = timeline::build(h, tickets, period)?;
            Ok(OverviewData {
                facts,
                health,
                timeline,
                period,
            })
        })
    }

    /// The score timeline alone (for its chart's refresh and the JSON API).
    pub fn timeline(
        &self,
        tickets: &[Ticket],
        since: Duration,
        now_ms: i64,
    ) -> Result<Timeline, Refusal> {
        self.with_history(|h| timeline::build(h, tickets, self.period(h, since, now_ms)?))
    }

    /// The heatmap of every ping target, or of `target` alone, over `since`.
    pub fn heatmaps(
        &self,
        since: Duration,
        now_ms: i64,
        columns: usize,
        target: Option<&str>,
    ) -> Result<Vec<Heatmap>, Refusal> {
        let mut maps =
            self.with_history(|h| heatmap::build(h, self.period(h, since, now_ms)?, columns))?;
        if let Some(t) = target {
            maps.retain(|m| m.target == t);
            if maps.is_empty() {
                return Err(refuse(404, format!("no ping target {t:?} in the history")));
            }
        }
        Ok(maps)
    }
}
