//! The model stage's training: when it is due (warm-up over, model old, back-off
//! after a failure), on which rows (only history already stored: no look-ahead), and
//! where it runs (a background thread live, inline in replay). A trained model is
//! saved atomically and swapped in whole, with what is fitted on the same rows: the
//! fault-risk calibration and the false-alarm budget's multiplier
//! (`incident::calibrate`). The new model starts warm: its scorer has run over the
//! training rows (so its averages do not start from nothing) and the incident gate
//! gets its view of the recent past.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::{Mode, Pipeline};
use crate::forecast::{self, Calibration};
use crate::incident::{self, IncidentConfig};
use crate::model::{Model, ModelState, Scorer};
use crate::sample::{Frame, Record};
use crate::store::History;

/// How long a live training run waits for the history writer to write what it holds.
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// A trained model, its scorer warmed on the training rows, and what was fitted on
/// the same rows: the fault-risk calibration (or why there is none) and the
/// false-alarm budget's calibration (when incidents are on).
pub(super) struct Trained {
    model: Arc<Model>,
    scorer: Scorer,
    calibration: Result<Calibration, String>,
    opening: Option<incident::Calibration>,
    /// `(timestamp, score / threshold)` of the newest rows: the gate's recent past.
    recent: Vec<(i64, f64)>,
}

pub(super) enum Training {
    Idle,
    Running(mpsc::Receiver<Result<Trained, String>>),
}

impl Pipeline {
    /// A saved model is used only if it loads cleanly; anything else is logged with
    /// the reason and the daemon learns afresh (the bad file is kept for inspection).
    pub(super) fn load_saved(&mut self) {
        let model_path = self.state_dir.model();
        if !model_path.exists() {
            return;
        }
        match Model::load(&model_path) {
            Ok(m) => {
                tracing::info!(path = %model_path.display(), rows = m.window().rows, "loaded saved model");
                self.last_train_start_ms = Some(m.created_ms());
                let risk_path = self.state_dir.risk();
                let calibration = if risk_path.exists() {
                    Calibration::load(&risk_path, &m, &self.forecast_cfg.risk)
                        .map_err(|e| tracing::warn!("fault risk: {e}"))
                        .ok()
                } else {
                    None
                };
                self.risk.set_calibration(calibration);
                let m = Arc::new(m);
                let opening = self.incidents.as_ref().map(|i| {
                    let budget = i.config().false_alarm_budget;
                    incident::Calibration::load(&self.state_dir.opening(), m.created_ms(), &budget)
                });
                let multiplier = match opening {
                    Some(Ok(c)) => c.multiplier,
                    Some(Err(e)) => {
                        // Without its calibration the model would page at its bare
                        // threshold: train again at once instead.
                        tracing::info!("false-alarm budget: {e}; retraining now");
                        self.last_train_start_ms = None;
                        1.0
                    }
                    None => 1.0,
                };
                let (scorer, recent) = self.warm_from_history(&m);
                self.swap(m, scorer, multiplier, &recent);
            }
            Err(e) => {
                let aside = model_path
                    .with_extension(format!("rejected-{}", crate::sample::now_ms() / 1000));
                let _ = std::fs::rename(&model_path, &aside);
                tracing::warn!("{e}; moved it to {} and will learn afresh", aside.display());
            }
        }
    }

    /// Put `model` in use with its warmed `scorer`; the incident gate gets the budget's
    /// `multiplier` and the model's view of the `recent` past.
    fn swap(&mut self, model: Arc<Model>, scorer: Scorer, multiplier: f64, recent: &[(i64, f64)]) {
        self.scorer = Some(scorer);
        self.state = ModelState::Trained(model);
        if let Some(i) = &mut self.incidents {
            i.new_model(multiplier, recent);
        }
    }

    /// A saved model loaded at start: score the newest history with it, so its averages
    /// and the gate's recent level start where the host is (not from nothing).
    fn warm_from_history(&self, model: &Arc<Model>) -> (Scorer, Vec<(i64, f64)>) {
        let mut scorer = Scorer::new(model.clone());
        let Some(window) = self
            .incidents
            .as_ref()
            .map(|i| i.config().opening.recent_window)
        else {
            return (scorer, Vec::new());
        };
        let now = crate::sample::now_ms();
        let rows = History::open(self.state_dir.history(), &self.history_cfg)
            .and_then(|h| h.training_rows(now - window.as_millis() as i64, 100_000));
        match rows {
            Ok(rows) => {
                let recent = warm(&mut scorer, model, &rows, now);
                (scorer, recent)
            }
            Err(e) => {
                tracing::warn!("cannot read recent history to warm the model: {e}");
                (scorer, Vec::new())
            }
        }
    }

    pub(super) fn poll_training(&mut self) {
        let Training::Running(rx) = &self.training else {
            return;
        };
        match rx.try_recv() {
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => {
                self.last_error = Some("training thread died".into());
                self.training = Training::Idle;
            }
            Ok(result) => {
                self.training = Training::Idle;
                self.finish_training(result);
            }
        }
    }

    fn finish_training(&mut self, result: Result<Trained, String>) {
        match result {
            Ok(Trained {
                model,
                scorer,
                calibration,
                opening,
                recent,
            }) => {
                tracing::info!(
                    rows = model.window().rows,
                    features = model.schema().len(),
                    threshold = model.threshold(),
                    "model trained"
                );
                if self.mode == Mode::Live {
                    let model_path = self.state_dir.model();
                    if let Err(e) = save_atomic(&model, &model_path) {
                        tracing::warn!("saving model to {}: {e}", model_path.display());
                    }
                }
                let calibration = match calibration {
                    Ok(c) => {
                        tracing::info!(
                            incidents = c.incidents,
                            rows = c.rows,
                            "fault risk calibrated on the training rows"
                        );
                        if self.mode == Mode::Live {
                            let path = self.state_dir.risk();
                            if let Err(e) = c.save(&path) {
                                tracing::warn!("saving {}: {e}", path.display());
                            }
                        }
                        Some(c)
                    }
                    Err(e) => {
                        tracing::info!("fault risk not calibrated: {e}");
                        let _ = std::fs::remove_file(self.state_dir.risk());
                        None
                    }
                };
                self.risk.set_calibration(calibration);
                self.last_error = None;
                let multiplier = match &opening {
                    Some(c) => {
                        tracing::info!(
                            budget = %c.budget,
                            multiplier = c.multiplier,
                            openings = c.openings,
                            at_threshold = c.openings_at_threshold,
                            allowed = c.allowed,
                            "false-alarm budget: opening level calibrated on the training rows"
                        );
                        if self.mode == Mode::Live {
                            let path = self.state_dir.opening();
                            if let Err(e) = c.save(&path, model.created_ms()) {
                                tracing::warn!("saving {}: {e}", path.display());
                            }
                        }
                        c.multiplier
                    }
                    None => 1.0,
                };
                self.swap(model, scorer, multiplier, &recent);
            }
            Err(e) => {
                tracing::warn!("training failed: {e}");
                self.last_error = Some(e);
            }
        }
        // The training's rows are freed by now; the daemon's minute trim
        // (`memory::Trim`) hands their pages back within a minute.
    }

    /// Train when the warm-up is over and no model exists, or when the model is older
    /// than `retrain_interval`. After a failed attempt (too few rows, say) the next waits
    /// a tenth of the retrain interval, at least the warm-up and at most an hour: not
    /// one attempt per tick.
    /// `record` is this tick's: an inline training (replay) reads the history up to
    /// and including it.
    pub(super) fn maybe_train(&mut self, record: &Record) {
        let now = record.timestamp_ms.unwrap_or(0);
        if matches!(self.training, Training::Running(_)) {
            return;
        }
        let ms = |d: Duration| d.as_millis() as i64;
        let warm = self
            .first_ms
            .is_some_and(|f| now - f >= ms(self.model_cfg.warmup));
        let due = match (&self.state, self.last_train_start_ms) {
            (_, None) => warm,
            (ModelState::Trained(_), Some(last)) => {
                now - last >= ms(self.model_cfg.retrain_interval)
            }
            (ModelState::Untrained, Some(last)) => {
                let backoff = (ms(self.model_cfg.retrain_interval) / 10)
                    .max(ms(self.model_cfg.warmup))
                    .min(3_600_000);
                warm && now - last >= backoff
            }
        };
        if !due {
            return;
        }
        self.last_train_start_ms = Some(now);
        let since = now - ms(self.model_cfg.window);
        let max_rows = self.model_cfg.max_training_rows;
        let spec = self.model_cfg.spec.clone();
        let risk = self
            .forecast_cfg
            .enabled
            .then(|| self.forecast_cfg.risk.clone())
            .filter(|r| r.enabled);
        let incidents = self.incidents.as_ref().map(|i| i.config().clone());
        match self.writer.inline(record) {
            Some(history) => {
                let result = train_from(
                    history,
                    since,
                    now,
                    max_rows,
                    &spec,
                    risk.as_ref(),
                    incidents.as_ref(),
                );
                self.finish_training(result);
            }
            None => {
                let path = self.state_dir.history();
                let hcfg = self.history_cfg.clone();
                let flushed = self.writer.request_flush();
                let (tx, rx) = mpsc::channel();
                let spawned = std::thread::Builder::new()
                    .name("train".into())
                    .spawn(move || {
                        // The writer keeps up to a flush interval of samples in
                        // memory; wait (briefly: a stalled disk must not stall
                        // training) until it has written them.
                        if let Some(flushed) = flushed {
                            let _ = flushed.recv_timeout(FLUSH_WAIT);
                        }
                        let result = History::open(&path, &hcfg)
                            .map_err(|e| e.to_string())
                            .and_then(|h| {
                                train_from(
                                    &h,
                                    since,
                                    now,
                                    max_rows,
                                    &spec,
                                    risk.as_ref(),
                                    incidents.as_ref(),
                                )
                            });
                        let _ = tx.send(result);
                    });
                match spawned {
                    Ok(_) => self.training = Training::Running(rx),
                    Err(e) => self.last_error = Some(format!("cannot start training thread: {e}")),
                }
            }
        }
    }
}

fn train_from(
    history: &History,
    since: i64,
    now: i64,
    max_rows: usize,
    spec: &crate::model::Spec,
    risk: Option<&forecast::RiskConfig>,
    incidents: Option<&IncidentConfig>,
) -> Result<Trained, String> {
    let rows = history
        .training_frame(since, max_rows, now)
        .map_err(|e| e.to_string())?;
    fit_frame(&rows, now, spec, risk, incidents)
}

/// [`train_from`] on the rows read (the history's: in time order, none after `now`).
fn fit_frame(
    rows: &Frame,
    now: i64,
    spec: &crate::model::Spec,
    risk: Option<&forecast::RiskConfig>,
    incidents: Option<&IncidentConfig>,
) -> Result<Trained, String> {
    // The gate's view is of the rows before `now`. When those are the first rows (time
    // order, the row at `now` last: what the history gives), training's own pass over
    // the rows already holds every score the risk and the gate need, and the scorer
    // warmed on them; otherwise they are scored again as they always were.
    let stamps = rows.timestamps();
    let before = stamps
        .iter()
        .take_while(|t| t.is_some_and(|t| t < now))
        .count();
    if !stamps[before..].iter().all(|t| t.is_some_and(|t| t >= now)) {
        return Err("training rows are not in time order".into());
    }
    let (model, scored) = Model::train_scored(rows, spec, before).map_err(|e| e.to_string())?;
    let scorer = scored.scorer;
    // The risk is calibrated on the rows the model learnt from, scored by the model
    // itself: the host's own history, no labels.
    let risk_fit = || match risk {
        Some(cfg) => {
            let values: Vec<f64> = scored.rows.iter().map(|s| s.value).collect();
            forecast::risk::calibrate_scored(&model, stamps, &values, cfg)
        }
        None => Err("fault risk disabled".to_string()),
    };
    let threshold = model.threshold();
    let raw_threshold = model.raw_threshold();
    let gate_fit = || {
        let gate_rows: Vec<incident::calibrate::Row> = stamps[..before]
            .iter()
            .zip(&scored.rows)
            .filter_map(|(t, s)| {
                // As `Score::raw_anomaly` against the trained model.
                let raw_anomaly = s.raw > raw_threshold;
                Some(incident::calibrate::Row {
                    timestamp_ms: (*t)?,
                    ratio: incident::signals::ratio(s.value, threshold),
                    sample_anomalous: raw_anomaly,
                    sample_opens: incident::signals::opens(raw_anomaly, s.top_cause_raw),
                })
            })
            .collect::<Vec<_>>();
        fit_gate(&gate_rows, now, incidents)
    };
    // The fault risk and the false-alarm budget are fitted on the same scores and need
    // nothing of each other: both cores at once when there are two fits (a tenth of a
    // replay's time). Without a thread, one after the other.
    let (calibration, (opening, recent)) = std::thread::scope(|s| {
        let job = (risk.is_some() && incidents.is_some())
            .then(|| {
                std::thread::Builder::new()
                    .name("train-risk".into())
                    .spawn_scoped(s, risk_fit)
                    .ok()
            })
            .flatten();
        let gate = gate_fit();
        let risk = match job {
            Some(job) => job
                .join()
                .unwrap_or_else(|_| Err("fault risk calibration panicked".into())),
            None => risk_fit(),
        };
        (risk, gate)
    });
    Ok(Trained {
        model,
        scorer,
        calibration,
        opening,
        recent,
    })
}

/// What [`fit_frame`] shares out of training's own pass, done the long way: each
/// later pass scores the rows again (the reference `fit_frame` is tested against).
#[cfg(test)]
fn train_rescoring(
    rows: &[Record],
    now: i64,
    spec: &crate::model::Spec,
    risk: Option<&forecast::RiskConfig>,
    incidents: Option<&IncidentConfig>,
) -> Result<Trained, String> {
    let model = Arc::new(Model::train(rows, spec).map_err(|e| e.to_string())?);
    let calibration = match risk {
        Some(cfg) => forecast::risk::calibrate(&model, rows, cfg),
        None => Err("fault risk disabled".to_string()),
    };
    // One more pass: the gate's view of the training rows, for the budget, and the
    // scorer left warm for the live stream.
    let mut scorer = Scorer::new(model.clone());
    let gate_rows = gate_rows(&mut scorer, &model, rows, now);
    let (opening, recent) = fit_gate(&gate_rows, now, incidents);
    Ok(Trained {
        model,
        scorer,
        calibration,
        opening,
        recent,
    })
}

/// What is fitted on the gate's view of the training rows: the budget's calibration
/// and the recent past.
fn fit_gate(
    gate_rows: &[incident::calibrate::Row],
    now: i64,
    incidents: Option<&IncidentConfig>,
) -> (Option<incident::Calibration>, Vec<(i64, f64)>) {
    let opening = incidents.map(|c| incident::calibrate::calibrate(c, gate_rows));
    let recent = match incidents {
        Some(c) => {
            let from = now - c.opening.recent_window.as_millis() as i64;
            gate_rows
                .iter()
                .filter(|r| r.timestamp_ms >= from)
                .map(|r| (r.timestamp_ms, r.ratio))
                .collect()
        }
        None => Vec::new(),
    };
    (opening, recent)
}

/// Score `rows` (those before `now`: the record at `now` is scored live next) with
/// `scorer`, as the incident gate sees them.
fn gate_rows(
    scorer: &mut Scorer,
    model: &Model,
    rows: &[Record],
    now: i64,
) -> Vec<incident::calibrate::Row> {
    let threshold = model.threshold();
    rows.iter()
        .filter_map(|r| {
            let t = r.timestamp_ms.filter(|t| *t < now)?;
            let s = scorer.score(r);
            Some(incident::calibrate::Row {
                timestamp_ms: t,
                ratio: incident::signals::ratio(s.value, threshold),
                sample_anomalous: s.raw_anomaly,
                sample_opens: incident::signals::sample_opens(&s),
            })
        })
        .collect()
}

/// [`gate_rows`] as `(timestamp, ratio)`, for a loaded model's start.
fn warm(scorer: &mut Scorer, model: &Model, rows: &[Record], now: i64) -> Vec<(i64, f64)> {
    gate_rows(scorer, model, rows, now)
        .into_iter()
        .map(|r| (r.timestamp_ms, r.ratio))
        .collect()
}

/// A crash mid-write never leaves a half model behind: [`Model::save`] writes a new
/// temporary file and renames it.
fn save_atomic(model: &Model, path: &Path) -> std::io::Result<()> {
    model.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three days of minute rows of four noisy metrics with a daily cycle and, on the
    /// third day, a shift of two of them for an hour.
    fn rows() -> Vec<Record> {
        let mut x: u64 = 3;
        let mut noise = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let t0 = 1_767_225_600_000; // 2026-01-01 UTC
        (0..3 * 1440)
            .map(|i| {
                let day = (i as f64 / 1440.0 * std::f64::consts::TAU).sin();
                let fault = if (2 * 1440 + 600..2 * 1440 + 660).contains(&i) {
                    30.0
                } else {
                    0.0
                };
                Record {
                    timestamp_ms: Some(t0 + i * 60_000),
                    values: vec![
                        ("cpu".into(), 20.0 + 5.0 * day + noise() + fault),
                        ("mem".into(), 50.0 + noise()),
                        ("disk".into(), 3.0 + 2.0 * noise() + fault),
                        ("net".into(), 100.0 + 10.0 * day + 3.0 * noise()),
                    ],
                }
            })
            .collect()
    }

    /// Training's shared scores give what scoring the rows again gives: the fault
    /// risk, the budget's multiplier, the gate's recent past and the warm scorer.
    #[test]
    fn shared_scores_train_as_rescoring_does() {
        let rows = rows();
        let spec = crate::model::Spec::default();
        let risk = forecast::RiskConfig::default();
        let incidents = IncidentConfig::default();
        // The row at `now` (last) is scored live next, not by the gate.
        let now = rows.last().and_then(|r| r.timestamp_ms).expect("timed");
        let frame = crate::model::frame::from_records(&rows);
        let a = fit_frame(&frame, now, &spec, Some(&risk), Some(&incidents)).expect("trains");
        let b = train_rescoring(&rows, now, &spec, Some(&risk), Some(&incidents)).expect("trains");
        assert_eq!(a.model.threshold().to_bits(), b.model.threshold().to_bits());
        assert_eq!(a.opening, b.opening);
        assert!(a.opening.is_some());
        assert_eq!(a.recent, b.recent);
        assert!(!a.recent.is_empty());
        let created = |c: &Result<Calibration, String>| {
            c.clone().map(|mut c| {
                c.model_created_ms = 0;
                c
            })
        };
        assert_eq!(created(&a.calibration), created(&b.calibration));
        let (mut sa, mut sb) = (a.scorer, b.scorer);
        for r in rows.iter().rev().take(3).rev() {
            assert_eq!(sa.score(r), sb.score(r));
        }
    }
}
