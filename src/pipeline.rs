//! What happens to a sample after collection: it is stored in the history, scored by
//! the model, and the verdict is added to the sample for export.
//!
//! The live daemon and `anomalyd replay` both drive this type, so a recorded series
//! goes through exactly the decisions the daemon makes: when the warm-up is over, when
//! to retrain, which rows to train on (only rows already seen: no look-ahead). The one
//! difference is *where* work runs: live, history writes go to a writer thread and
//! training to a background thread, so neither can delay a tick; in replay both run
//! inline so results are deterministic.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ModelConfig};
use crate::forecast::{self, Calibration, ForecastConfig, Forecaster, Outlook, RiskTracker};
use crate::incident::{AnomalySignal, Cause, Change, ForecastLevel, ForecastSignal, Signals};
use crate::model::{Model, ModelState, Score, Scorer};
use crate::sample::{Record, Sample};
use crate::store::History;
use crate::tickets::Desk;

/// Live: work off the tick path. Replay: inline, deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Replay,
}

/// How often the history is pruned (retention and size bound).
const PRUNE_EVERY_MS: i64 = 5 * 60 * 1000;

enum Writer {
    /// Live: a bounded queue to the writer thread. If the disk stalls the queue fills
    /// and samples are dropped from history (counted), never from sampling.
    Thread {
        tx: mpsc::SyncSender<Record>,
        dropped: u64,
    },
    Inline {
        history: Box<History>,
        last_prune_ms: i64,
    },
}

/// A trained model and the fault-risk calibration fitted on the same rows (or why
/// there is none).
struct Trained {
    model: Model,
    calibration: Result<Calibration, String>,
}

enum Training {
    Idle,
    Running(mpsc::Receiver<Result<Trained, String>>),
}

/// What one record produced: the model's verdict (when a model is in place) and the
/// forecast (time to exhaustion, forecast events, fault risk).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub score: Option<Score>,
    pub outlook: Outlook,
}

pub struct Pipeline {
    mode: Mode,
    model_cfg: ModelConfig,
    history_path: PathBuf,
    history_cfg: crate::config::History,
    model_path: PathBuf,
    writer: Writer,
    state: ModelState,
    scorer: Option<Scorer>,
    training: Training,
    /// Timestamp of the first record this pipeline saw; the warm-up counts from here
    /// (or from the oldest stored sample, whichever is older).
    first_ms: Option<i64>,
    last_train_start_ms: Option<i64>,
    last_error: Option<String>,
    /// Incidents and tickets; `None` when disabled (or, live, when the ticket store
    /// could not be opened: the daemon samples on without tickets).
    desk: Option<Desk>,
    incidents_top: usize,
    /// What the incident engine reported for the last record.
    changes: Vec<Change>,
    /// Rules, diagnoses and verification for incidents; with the desk only.
    remediation: Option<crate::remediate::Engine>,
    state_dir: PathBuf,
    forecast_cfg: ForecastConfig,
    forecaster: Forecaster,
    risk: RiskTracker,
}

impl Pipeline {
    /// Open the history in `state_dir` and load a saved model if one matches.
    pub fn open(config: &Config, state_dir: &Path) -> anyhow::Result<Self> {
        Self::open_mode(config, state_dir, Mode::Live)
    }

    pub fn open_mode(config: &Config, state_dir: &Path, mode: Mode) -> anyhow::Result<Self> {
        let history_path = state_dir.join("history.db");
        let (history, problem) = History::open_or_reset(&history_path, &config.history)?;
        if let Some(p) = problem {
            tracing::warn!("history: {p}");
        }
        let stats = history.stats().ok();
        let first_ms = stats.as_ref().and_then(|s| s.oldest_ms);
        let mut forecaster = Forecaster::new(&config.forecast);
        // A restart must not forget the trend: feed the forecaster the last window.
        if let (true, Some(newest)) = (
            config.forecast.enabled,
            stats.as_ref().and_then(|s| s.newest_ms),
        ) {
            match forecaster.seed(&history, newest) {
                Ok(n) if n > 0 => tracing::info!(resources = n, "forecast seeded from history"),
                Ok(_) => {}
                Err(e) => tracing::warn!("forecast: cannot read history: {e}"),
            }
        }
        let writer = match mode {
            Mode::Replay => Writer::Inline {
                history: Box::new(history),
                last_prune_ms: 0,
            },
            Mode::Live => Writer::Thread {
                tx: spawn_writer(history),
                dropped: 0,
            },
        };
        let model_path = state_dir.join("model.json");
        let desk = if config.incidents.enabled {
            let now = match mode {
                Mode::Live => crate::sample::now_ms(),
                Mode::Replay => 0,
            };
            match (Desk::open(config, state_dir, now), mode) {
                (Ok(d), _) => Some(d),
                (Err(e), Mode::Replay) => return Err(e.into()),
                (Err(e), Mode::Live) => {
                    tracing::error!("incidents and tickets are off: {e}");
                    None
                }
            }
        } else {
            None
        };
        let remediation = match &desk {
            None => None,
            Some(_) => match (
                crate::remediate::Engine::open(&config.remediation, state_dir, mode),
                mode,
            ) {
                (Ok(e), _) => e,
                (Err(e), Mode::Replay) => return Err(e),
                (Err(e), Mode::Live) => {
                    tracing::error!("remediation is off: {e:#}");
                    None
                }
            },
        };
        let mut p = Pipeline {
            mode,
            model_cfg: config.model.clone(),
            history_path,
            history_cfg: config.history.clone(),
            model_path,
            writer,
            state: ModelState::Untrained,
            scorer: None,
            training: Training::Idle,
            first_ms,
            last_train_start_ms: None,
            last_error: None,
            desk,
            incidents_top: config.incidents.top_causes,
            changes: Vec::new(),
            remediation,
            state_dir: state_dir.to_path_buf(),
            forecast_cfg: config.forecast.clone(),
            forecaster,
            risk: RiskTracker::new(&config.forecast.risk),
        };
        if mode == Mode::Live && config.model.enabled {
            p.load_saved();
        }
        Ok(p)
    }

    /// A saved model is used only if it loads cleanly; anything else is logged with
    /// the reason and the daemon learns afresh (the bad file is kept for inspection).
    fn load_saved(&mut self) {
        if !self.model_path.exists() {
            return;
        }
        match Model::load(&self.model_path) {
            Ok(m) => {
                tracing::info!(path = %self.model_path.display(), rows = m.window().rows, "loaded saved model");
                self.last_train_start_ms = Some(m.created_ms());
                let risk_path = self.risk_path();
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
                let aside = self
                    .model_path
                    .with_extension(format!("rejected-{}", crate::sample::now_ms() / 1000));
                let _ = std::fs::rename(&self.model_path, &aside);
                tracing::warn!("{e}; moved it to {} and will learn afresh", aside.display());
            }
        }
    }

    fn swap(&mut self, model: Model) {
        let model = Arc::new(model);
        self.scorer = Some(Scorer::new(model.clone()));
        self.state = ModelState::Trained(model);
    }

    fn risk_path(&self) -> PathBuf {
        self.model_path.with_file_name(forecast::risk::FILE)
    }

    /// Process one live sample; adds the verdict, forecast and model state to it.
    pub fn process(&mut self, sample: &mut Sample) -> Verdict {
        let record = sample.record();
        let verdict = self.process_record(&record);
        self.export(sample, verdict.score.as_ref());
        if self.forecast_cfg.enabled {
            verdict.outlook.export(sample, &self.forecast_cfg);
        }
        verdict
    }

    /// Store, maybe (re)train, score, forecast.
    pub fn process_record(&mut self, record: &Record) -> Verdict {
        let now = record.timestamp_ms.unwrap_or(0);
        self.first_ms = Some(self.first_ms.map_or(now, |f| f.min(now)));
        self.store(record, now);
        let score = if self.model_cfg.enabled {
            self.poll_training();
            self.maybe_train(now);
            self.scorer.as_mut().map(|s| s.score(record))
        } else {
            None
        };
        let outlook = if self.forecast_cfg.enabled {
            let mut outlook = self.forecaster.observe(record);
            let threshold = self.state.model().map(|m| m.threshold());
            let scored = score.as_ref().zip(threshold);
            outlook.risk = self.risk.observe(now, scored, outlook.min_eta());
            outlook
        } else {
            Outlook::default()
        };
        self.incidents(record, now, score.as_ref(), &outlook);
        Verdict { score, outlook }
    }

    /// The verdict, the forecasts and the fault risk through the incident engine and
    /// into the ticket store.
    fn incidents(&mut self, record: &Record, now: i64, score: Option<&Score>, outlook: &Outlook) {
        self.changes.clear();
        let Some(desk) = &mut self.desk else {
            return;
        };
        let anomaly = match (score, &self.state) {
            (Some(s), ModelState::Trained(m)) => {
                Some(AnomalySignal::from_score(m, s, record, self.incidents_top))
            }
            _ => None,
        };
        let signals = Signals {
            anomaly,
            forecasts: forecast_signals(outlook),
            risk: outlook.risk.map(|r| r.probability),
            ping_loss_all: Signals::ping_loss_all_in(record),
        };
        self.changes = desk.tick(now, record, &signals);
        if let Some(engine) = &mut self.remediation {
            crate::remediate::hook::step(engine, desk, &self.changes, now);
        }
    }

    /// The incident changes of the last processed record (already in the ticket store).
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The ticket desk, when incidents are on (remediation escalates through it).
    pub fn desk_mut(&mut self) -> Option<&mut Desk> {
        self.desk.as_mut()
    }

    fn store(&mut self, record: &Record, now: i64) {
        match &mut self.writer {
            Writer::Thread { tx, dropped } => {
                if let Err(mpsc::TrySendError::Full(_)) = tx.try_send(record.clone()) {
                    *dropped += 1;
                    if dropped.is_power_of_two() {
                        tracing::warn!(
                            dropped = *dropped,
                            "history writer is behind; samples dropped from history"
                        );
                    }
                }
            }
            Writer::Inline {
                history,
                last_prune_ms,
            } => {
                if let Err(e) = history.append(record) {
                    tracing::warn!("history: {e}");
                }
                if now - *last_prune_ms >= PRUNE_EVERY_MS {
                    *last_prune_ms = now;
                    if let Err(e) = history.prune(now) {
                        tracing::warn!("history prune: {e}");
                    }
                }
            }
        }
    }

    fn poll_training(&mut self) {
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
                    if let Err(e) = save_atomic(&model, &self.model_path) {
                        tracing::warn!("saving model to {}: {e}", self.model_path.display());
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
                            let path = self.risk_path();
                            if let Err(e) = c.save(&path) {
                                tracing::warn!("saving {}: {e}", path.display());
                            }
                        }
                        Some(c)
                    }
                    Err(e) => {
                        tracing::info!("fault risk not calibrated: {e}");
                        let _ = std::fs::remove_file(self.risk_path());
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
    fn maybe_train(&mut self, now: i64) {
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
        match &self.writer {
            Writer::Inline { history, .. } => {
                let result = train_from(history, since, now, max_rows, &spec, risk.as_ref());
                self.finish_training(result);
            }
            Writer::Thread { .. } => {
                let path = self.history_path.clone();
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

    /// Add the verdict and the model's state to the sample (what /metrics shows).
    fn export(&self, sample: &mut Sample, score: Option<&Score>) {
        let (trained, age, rows, features) = match &self.state {
            ModelState::Trained(m) => (
                1.0,
                (sample.timestamp_ms - m.created_ms()) as f64 / 1000.0,
                m.window().rows as f64,
                m.schema().len() as f64,
            ),
            ModelState::Untrained => (0.0, f64::NAN, f64::NAN, f64::NAN),
        };
        sample.info(
            "model_trained",
            "Whether a trained model is scoring samples (1) or the daemon is still learning (0)",
            &[],
            trained,
        );
        sample.info(
            "model_age_seconds",
            "Time since the scoring model was trained",
            &[],
            age,
        );
        sample.info(
            "model_training_rows",
            "History rows the scoring model was trained on",
            &[],
            rows,
        );
        sample.info(
            "model_features",
            "Features in the scoring model's schema",
            &[],
            features,
        );
        sample.info(
            "model_training_running",
            "Whether a training run is in progress",
            &[],
            if matches!(self.training, Training::Running(_)) {
                1.0
            } else {
                0.0
            },
        );
        if let Some(desk) = &self.desk {
            desk.export(sample);
        }
        if let Some(r) = &self.remediation {
            r.export(sample);
        }
        if let Writer::Thread { dropped, .. } = &self.writer {
            sample.info(
                "history_dropped_samples",
                "Samples not stored because the history writer was behind",
                &[],
                *dropped as f64,
            );
        }
        let (Some(score), ModelState::Trained(model)) = (score, &self.state) else {
            return;
        };
        sample.info(
            "anomaly_score",
            "Anomaly score of the last sample (sum of the per-feature contributions)",
            &[],
            score.value,
        );
        sample.info(
            "anomaly_threshold",
            "Score above which a sample is anomalous, learned from training data",
            &[],
            model.threshold(),
        );
        sample.info(
            "anomaly",
            "Whether the last sample is anomalous (score above threshold)",
            &[],
            if score.anomaly { 1.0 } else { 0.0 },
        );
        for (rank, (i, c)) in score
            .contributions
            .iter()
            .take(self.model_cfg.top_causes)
            .enumerate()
        {
            let rank = (rank + 1).to_string();
            sample.info(
                "anomaly_cause_contribution",
                "Contribution of the top features to the anomaly score (rank 1 is the main cause)",
                &[("rank", &rank), ("feature", &model.schema()[*i])],
                *c,
            );
        }
    }

    pub fn reconfigure(&mut self, config: &Config) {
        self.model_cfg = config.model.clone();
        self.incidents_top = config.incidents.top_causes;
        if let Some(desk) = &mut self.desk {
            desk.reconfigure(config);
        }
        if let Some(r) = &mut self.remediation {
            r.reconfigure(&config.remediation, &self.state_dir);
        }
        self.forecaster.reconfigure(&config.forecast);
        self.risk.reconfigure(&config.forecast.risk);
        self.forecast_cfg = config.forecast.clone();
    }

    /// One-line summary for systemd's STATUS=.
    pub fn status(&self) -> String {
        match &self.state {
            ModelState::Trained(m) => format!(
                "model: trained on {} rows, {} features",
                m.window().rows,
                m.schema().len()
            ),
            ModelState::Untrained if matches!(self.training, Training::Running(_)) => {
                "model: training".into()
            }
            ModelState::Untrained => match &self.last_error {
                Some(e) => format!("model: learning ({e})"),
                None => "model: learning".into(),
            },
        }
    }

    pub fn model(&self) -> Option<&Arc<Model>> {
        self.state.model()
    }

    /// Stop: closing the queue ends the history thread after it stores what is queued,
    /// unless the process exits first (the WAL keeps the file consistent either way).
    /// A training run in progress is abandoned.
    pub fn close(self) {
        drop(self.writer);
    }
}

/// `collect --once`: the forecast for one fresh sample, from the state directory's
/// history (the trend of the last window) and saved model (the fault risk, warmed
/// on the last horizon of history). Added to `sample`; nothing is written.
pub fn forecast_once(config: &Config, sample: &mut Sample) -> Outlook {
    let cfg = &config.forecast;
    if !cfg.enabled {
        return Outlook::default();
    }
    let now = sample.timestamp_ms;
    let record = sample.record();
    let mut forecaster = Forecaster::new(cfg);
    let mut risk = RiskTracker::new(&cfg.risk);
    let path = config.state_dir.join(crate::store::HISTORY_FILE);
    // Opening would create a missing database: only read one that exists.
    let history = if path.exists() {
        History::open(&path, &config.history)
            .map_err(|e| tracing::warn!("forecast: {e}"))
            .ok()
    } else {
        None
    };
    if let Some(h) = &history {
        if let Err(e) = forecaster.seed(h, now) {
            tracing::warn!("forecast: {e}");
        }
    }
    let model_path = config.state_dir.join("model.json");
    let model = model_path
        .exists()
        .then(|| {
            Model::load(&model_path)
                .map_err(|e| tracing::warn!("{e}"))
                .ok()
        })
        .flatten()
        .map(Arc::new);
    let mut scorer = None;
    if let Some(m) = &model {
        let calibration =
            Calibration::load(&config.state_dir.join(forecast::risk::FILE), m, &cfg.risk)
                .map_err(|e| tracing::info!("fault risk: {e}"))
                .ok();
        risk.set_calibration(calibration);
        let mut sc = Scorer::new(Arc::clone(m));
        let since = now - cfg.risk.horizon.as_millis() as i64;
        let rows = history
            .as_ref()
            .and_then(|h| h.range(since, now, crate::store::Tier::Raw).ok())
            .unwrap_or_default();
        for r in &rows {
            let s = sc.score(r);
            risk.observe(
                r.timestamp_ms.unwrap_or(0),
                Some((&s, m.threshold())),
                f64::INFINITY,
            );
        }
        scorer = Some(sc);
    }
    let mut outlook = forecaster.observe(&record);
    if let (Some(sc), Some(m)) = (scorer.as_mut(), &model) {
        let s = sc.score(&record);
        outlook.risk = risk.observe(now, Some((&s, m.threshold())), outlook.min_eta());
    }
    outlook.export(sample, cfg);
    outlook
}

/// The forecast events firing now, as the incident engine wants them: all of them on
/// every tick (one no longer listed has cleared), each with its evidence.
fn forecast_signals(outlook: &Outlook) -> Vec<ForecastSignal> {
    outlook
        .active
        .iter()
        .map(|e| {
            let eta = outlook
                .etas
                .iter()
                .find(|t| t.kind == e.kind && t.resource == e.resource);
            let causes = eta
                .map(|t| {
                    vec![Cause {
                        feature: forecast_feature(t),
                        value: t.headroom,
                        // No learned normal for a trend: where it takes the
                        // resource in an hour (the report labels it so).
                        baseline: t.headroom + t.rate * 3600.0,
                        contribution: 1.0,
                    }]
                })
                .unwrap_or_default();
            ForecastSignal {
                resource: e.resource.clone(),
                kind: e.kind.as_str().to_string(),
                level: match e.severity {
                    forecast::Severity::Warning => ForecastLevel::Warning,
                    forecast::Severity::Critical => ForecastLevel::Critical,
                },
                eta_seconds: e.eta_seconds,
                causes,
            }
        })
        .collect()
}

/// The headroom series an ETA was fitted on, named like the feature it comes from.
fn forecast_feature(t: &forecast::Eta) -> String {
    let fs = [
        ("mountpoint", t.resource.as_str()),
        ("device", t.device.as_str()),
        ("fstype", t.fstype.as_str()),
    ];
    match t.kind {
        forecast::Kind::Bytes => crate::sample::series_name("filesystem_available_bytes", fs),
        forecast::Kind::Inodes => crate::sample::series_name("filesystem_inodes_free", fs),
        forecast::Kind::Memory => "memory_available_bytes".to_string(),
        forecast::Kind::Swap => "swap_free_bytes".to_string(),
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

fn spawn_writer(mut history: History) -> mpsc::SyncSender<Record> {
    let (tx, rx) = mpsc::sync_channel::<Record>(1024);
    let spawned = std::thread::Builder::new()
        .name("history".into())
        .spawn(move || {
            let mut last_prune = 0i64;
            let mut failing = false;
            for record in rx {
                let now = record.timestamp_ms.unwrap_or(0);
                match history.append(&record) {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("history writes recovered");
                    }
                    Ok(()) => {}
                    // Disk full or read-only: say so once, keep trying, keep sampling.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!("history write failed (will keep retrying quietly): {e}");
                    }
                    Err(_) => {}
                }
                if now - last_prune >= PRUNE_EVERY_MS {
                    last_prune = now;
                    if let Err(e) = history.prune(now) {
                        tracing::warn!("history prune: {e}");
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the history writer: {e}");
    }
    tx
}
