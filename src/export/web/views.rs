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
use std::time::Duration;

use crate::store::{History, HistoryConfig, StateDir};
use crate::tickets::store::Ticket;
use crate::view::facts::HostFacts;
use crate::view::health::{self, Health};
use crate::view::heatmap::{self, Heatmap};
use crate::view::period::Period;
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
}

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
        }
    }

    /// Run `f` with the history (opened on first use). A failure is logged in full and
    /// answered in general terms (no path reaches a client).
    fn with_history<R>(
        &self,
        f: impl FnOnce(&History) -> Result<R, crate::store::HistoryError>,
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
            let period = Period::ending(h, since, now_ms)?;
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
        self.with_history(|h| timeline::build(h, tickets, Period::ending(h, since, now_ms)?))
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
            self.with_history(|h| heatmap::build(h, Period::ending(h, since, now_ms)?, columns))?;
        if let Some(t) = target {
            maps.retain(|m| m.target == t);
            if maps.is_empty() {
                return Err(refuse(404, format!("no ping target {t:?} in the history")));
            }
        }
        Ok(maps)
    }
}
