//! The anomaly score against its threshold over a period, with the incidents of the
//! period for shading.
//!
//! The daemon stores each sample's smoothed score and the threshold it was judged
//! against beside the features (`store::derived`), so this reads two columns of the
//! period's tier. A period holds far more samples than a chart has pixels: the points
//! are cut into at most [`MAX_POINTS`] buckets of equal time, each keeping its
//! highest score (a spike must stay visible) and the threshold at that sample.

use serde::Serialize;

use super::period::Period;
use crate::store::derived::{ANOMALY_SCORE, ANOMALY_THRESHOLD};
use crate::store::{History, HistoryError};
use crate::tickets::Ticket;

/// Points a timeline keeps at most.
pub const MAX_POINTS: usize = 1200;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub period: Period,
    /// Oldest first.
    pub points: Vec<ScorePoint>,
    /// Incidents open during the period, oldest first.
    pub incidents: Vec<Shade>,
    /// Scored samples read, and how many were above their threshold.
    pub samples: usize,
    pub above: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScorePoint {
    pub ts_ms: i64,
    pub score: f64,
    pub threshold: f64,
}

/// One incident's span, clipped to the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shade {
    pub id: String,
    pub label: String,
    pub severity: String,
    pub title: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Still open at the end of the period.
    pub open: bool,
}

/// The score timeline of `period`, with the incidents among `tickets` that were open
/// during it.
pub fn build(
    history: &History,
    tickets: &[Ticket],
    period: Period,
) -> Result<Timeline, HistoryError> {
    let (from, to) = (period.from_ms, period.to_ms);
    let scores = history.tier_series(ANOMALY_SCORE, from, to, period.tier)?;
    let thresholds = history.tier_series(ANOMALY_THRESHOLD, from, to, period.tier)?;
    // Both are written in the same rows; join on the timestamp all the same.
    let mut joined = Vec::with_capacity(scores.len());
    let mut t = thresholds.iter().peekable();
    for &(ts, score) in &scores {
        while t.peek().is_some_and(|(tt, _)| *tt < ts) {
            t.next();
        }
        if let Some(&&(tt, threshold)) = t.peek() {
            if tt == ts {
                joined.push(ScorePoint {
                    ts_ms: ts,
                    score,
                    threshold,
                });
            }
        }
    }
    let above = joined.iter().filter(|p| p.score > p.threshold).count();
    Ok(Timeline {
        period,
        samples: joined.len(),
        above,
        points: downsample(&joined, from, to, MAX_POINTS),
        incidents: shades(tickets, from, to),
    })
}

/// At most `max` points: the highest score of each equal slice of `[from, to)`.
fn downsample(points: &[ScorePoint], from: i64, to: i64, max: usize) -> Vec<ScorePoint> {
    if points.len() <= max || to <= from {
        return points.to_vec();
    }
    let width = (to - from) as f64 / max as f64;
    let mut out: Vec<ScorePoint> = Vec::with_capacity(max);
    let mut slot = None;
    for p in points {
        let s = ((p.ts_ms - from) as f64 / width) as i64;
        match out.last_mut() {
            Some(last) if slot == Some(s) => {
                if p.score > last.score {
                    *last = *p;
                }
            }
            _ => {
                out.push(*p);
                slot = Some(s);
            }
        }
    }
    out
}

/// The tickets open at some time in `[from, to)`, clipped to it.
pub fn shades(tickets: &[Ticket], from: i64, to: i64) -> Vec<Shade> {
    let mut out: Vec<Shade> = tickets
        .iter()
        .filter(|t| t.opened_ms < to && t.resolved_ms.is_none_or(|r| r >= from))
        .map(|t| Shade {
            id: t.id.clone(),
            label: t.label.clone(),
            severity: t.severity.clone(),
            title: t.title.clone(),
            from_ms: t.opened_ms.max(from),
            to_ms: t.resolved_ms.map_or(to, |r| r.min(to)),
            open: t.resolved_ms.is_none_or(|r| r >= to),
        })
        .collect();
    out.sort_by_key(|s| s.from_ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts: i64, score: f64) -> ScorePoint {
        ScorePoint {
            ts_ms: ts,
            score,
            threshold: 1.0,
        }
    }

    #[test]
    fn downsampling_keeps_each_slice_s_highest_score() {
        let points: Vec<ScorePoint> = (0..100)
            .map(|i| p(i, if i == 37 { 9.0 } else { 0.1 }))
            .collect();
        let d = downsample(&points, 0, 100, 10);
        assert_eq!(d.len(), 10);
        assert_eq!(d[3].score, 9.0);
        assert_eq!(d[3].ts_ms, 37);
        assert!(d.iter().filter(|x| x.score == 9.0).count() == 1);
    }
}
