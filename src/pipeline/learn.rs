//! The model stage's training: when it is due (warm-up over, model old, back-off
//! after a failure), on which rows (only history already stored: no look-ahead), and
//! where it runs (a background thread live, inline in replay). A trained model is
//! saved atomically and swapped in whole, with the fault-risk calibration fitted on
//! the same rows.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::{Mode, Pipeline};
use crate::forecast::{self, Calibration};
use crate::model::{Model, ModelState, Scorer};
use crate::sample::Record;
use crate::store::History;

/// A trained model and the fault-risk calibration fitted on the same rows (or why
/// there is none).
pub(super) struct Trained {
    model: Model,
    calibration: Result<Calibration, String>,
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
                self.swap(m);
            }
            Err(e) => {
                let aside = model_path
                    .with_extension(format!("rejected-{}", crate::sample::now_ms() / 1000));
                let _ = std::fs::rename(&model_path, &aside);
                tracing::warn!("{e}; moved it to {} and will learn afresh", aside.display());
            }
        }
    }

    fn swap(&mut self, model: Model) {
        let model = Arc::new(model);
        self.scorer = Some(Scorer::new(model.clone()));
        self.state = ModelState::Trained(model);
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
            Ok(Trained { model, calibration }) => {
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
                self.swap(model);
            }
            Err(e) => {
                tracing::warn!("training failed: {e}");
                self.last_error = Some(e);
            }
        }
    }

    /// Train when the warm-up is over and no model exists, or when the model is older
    /// than `retrain_interval`. After a failed attempt (too few rows, say) the next waits
    /// a tenth of the retrain interval, at least the warm-up and at most an hour: not
    /// one attempt per tick.
    pub(super) fn maybe_train(&mut self, now: i64) {
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
        match self.writer.inline() {
            Some(history) => {
                let result = train_from(history, since, now, max_rows, &spec, risk.as_ref());
                self.finish_training(result);
            }
            None => {
                let path = self.state_dir.history();
                let hcfg = self.history_cfg.clone();
                let (tx, rx) = mpsc::channel();
                let spawned = std::thread::Builder::new()
                    .name("train".into())
                    .spawn(move || {
                        let result = History::open(&path, &hcfg)
                            .map_err(|e| e.to_string())
                            .and_then(|h| {
                                train_from(&h, since, now, max_rows, &spec, risk.as_ref())
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
) -> Result<Trained, String> {
    let rows: Vec<Record> = history
        .training_rows(since, max_rows)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|r| r.timestamp_ms.is_none_or(|t| t <= now))
        .collect();
    let model = Model::train(&rows, spec).map_err(|e| e.to_string())?;
    // The risk is calibrated on the rows the model learnt from, scored by the model
    // itself: the host's own history, no labels.
    let calibration = match risk {
        Some(cfg) => {
            let shared = Arc::new(model);
            let c = forecast::risk::calibrate(&shared, &rows, cfg);
            // The scorer's reference is gone by now; the clone is only a fallback.
            let model = Arc::try_unwrap(shared).unwrap_or_else(|m| (*m).clone());
            return Ok(Trained {
                model,
                calibration: c,
            });
        }
        None => Err("fault risk disabled".to_string()),
    };
    Ok(Trained { model, calibration })
}

/// Write to a temporary file and rename it over the old one, so a crash mid-write
/// never leaves a half model behind.
fn save_atomic(model: &Model, path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    model.save(&tmp)?;
    std::fs::rename(&tmp, path)
}
