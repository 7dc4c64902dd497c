//! The tick path. Every sample goes through the same stages, in this order, each
//! called from here with what the one before produced:
//!
//! `collect` → `store` → `model` → `forecast` → `incident` → `tickets` → `remediate`
//!
//! - collect: the daemon's collectors fill the [`Sample`] (see `daemon.rs`); from here
//!   on it is a [`Record`] of named features;
//! - store: the record is appended to the history (`writer.rs`);
//! - model: it is scored, once a model has been trained, and the model is (re)trained
//!   from the history when due (`learn.rs`);
//! - forecast: times to exhaustion, forecast events and the fault risk;
//! - incident, tickets, remediate: decisions, their tickets, and the fixes
//!   (`incidents.rs`). Remediation's feedback (an escalation) is an input of the next
//!   tick, never a call back up.
//!
//! The live daemon and `anomalyd replay` both drive this type, so a recorded series
//! goes through exactly the decisions the daemon makes: when the warm-up is over, when
//! to retrain, which rows to train on (only rows already seen: no look-ahead). The one
//! difference is *where* work runs ([`Mode`]): live, history writes go to a writer
//! thread and training to a background thread, so neither can delay a tick; in replay
//! both run inline so results are deterministic.

mod export;
mod incidents;
mod learn;
mod once;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use crate::forecast::{ForecastConfig, Forecaster, Outlook, RiskTracker};
use crate::incident::{AnomalySignal, PingSignal, Signals};
use crate::model::{Model, ModelConfig, ModelState, Phase, Score, Scorer};
use crate::sample::{Record, Sample};
use crate::settings::Config;
use crate::store::{History, HistoryConfig, StateDir};

pub use crate::mode::Mode;
pub use incidents::{remediate_stage, Escalation, Incidents};
pub use once::forecast_once;

use learn::Training;
use writer::Writer;

/// How often a replay looks for an operator's changes to its tickets (acknowledged,
/// resolved, silenced by `anomalyd tickets` beside it): a live daemon looks at every
/// tick, a replay's ticks are microseconds apart.
const REPLAY_LOOK_EVERY: Duration = Duration::from_millis(200);

/// What one record produced: the model's verdict (when a model is in place) and the
/// forecast (time to exhaustion, forecast events, fault risk).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub score: Option<Score>,
    pub outlook: Outlook,
}

pub struct Pipeline {
    mode: Mode,
    state_dir: StateDir,
    // store
    writer: Writer,
    history_cfg: HistoryConfig,
    // model
    model_cfg: ModelConfig,
    state: ModelState,
    scorer: Option<Scorer>,
    training: Training,
    /// Timestamp of the first record this pipeline saw; the warm-up counts from here
    /// (or from the oldest stored sample, whichever is older).
    first_ms: Option<i64>,
    last_train_start_ms: Option<i64>,
    last_error: Option<String>,
    /// The phase last logged, so each change is said once.
    logged_phase: Option<&'static str>,
    // forecast
    forecast_cfg: ForecastConfig,
    forecaster: Forecaster,
    risk: RiskTracker,
    // incident, tickets, remediate: `None` when incidents are disabled (or, live,
    // when the ticket store could not be opened: the daemon samples on without them).
    incidents: Option<Incidents>,
    incidents_top: usize,
    /// The optional components that are enabled, each with why it could not start
    /// (live only; `None`: running): `component_up{component}`, and /healthz is
    /// degraded while one is off.
    components: Vec<(&'static str, Option<String>)>,
}

impl Pipeline {
    /// Open the history in `state` and load a saved model if one matches.
    pub fn open(config: &Config, state: &StateDir) -> anyhow::Result<Self> {
        Self::open_mode(config, state, Mode::Live)
    }

    pub fn open_mode(config: &Config, state: &StateDir, mode: Mode) -> anyhow::Result<Self> {
        let (history, problem) = History::open_or_reset(state.history(), &config.history, mode)?;
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
        let writer = Writer::start(history, mode);
        let mut components = Vec::new();
        let incidents = if config.incidents.enabled {
            let now = match mode {
                Mode::Live => crate::sample::now_ms(),
                Mode::Replay => 0,
            };
            match (Incidents::open(config, state, now), mode) {
                (Ok(mut i), _) => {
                    if mode == Mode::Replay {
                        i.look_for_changes_every(REPLAY_LOOK_EVERY);
                    }
                    let remediation = Incidents::open_remediation(config, state, mode)?;
                    components.push(("incidents", None));
                    if config.remediation.enabled {
                        let why = remediation
                            .is_none()
                            .then(|| "remediation could not start".into());
                        components.push(("remediation", why));
                    }
                    Some(i.with_remediation(remediation))
                }
                (Err(e), Mode::Replay) => return Err(e.into()),
                (Err(e), Mode::Live) => {
                    tracing::error!("incidents and tickets are off: {e}");
                    let why = "the ticket store could not be opened".to_string();
                    components.push(("incidents", Some(why)));
                    None
                }
            }
        } else {
            None
        };
        let mut p = Pipeline {
            mode,
            state_dir: state.clone(),
            writer,
            history_cfg: config.history.clone(),
            model_cfg: config.model.clone(),
            state: ModelState::Untrained,
            scorer: None,
            training: Training::Idle,
            first_ms,
            last_train_start_ms: None,
            last_error: None,
            logged_phase: None,
            forecast_cfg: config.forecast.clone(),
            forecaster,
            risk: RiskTracker::new(&config.forecast.risk),
            incidents,
            incidents_top: config.incidents.top_causes,
            components,
        };
        if mode == Mode::Live && config.model.enabled {
            p.load_saved();
        }
        Ok(p)
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

    /// One record down the tick path: store, model, forecast, then incident, tickets
    /// and remediate.
    pub fn process_record(&mut self, record: &Record) -> Verdict {
        let now = record.timestamp_ms.unwrap_or(0);
        self.first_ms = Some(self.first_ms.map_or(now, |f| f.min(now)));
        // model
        let score = if self.model_cfg.enabled {
            self.poll_training();
            self.maybe_train(record);
            self.scorer.as_mut().map(|s| s.score(record))
        } else {
            None
        };
        let threshold = self.state.model().map(|m| m.threshold());
        let derived: Vec<(&str, f64)> = match (&score, threshold) {
            (Some(s), Some(t)) if s.value.is_finite() => vec![
                (crate::store::derived::ANOMALY_SCORE, s.value),
                (crate::store::derived::ANOMALY_THRESHOLD, t),
            ],
            _ => Vec::new(),
        };
        // store: once scored, with its score (`writer.rs`)
        self.writer.append(record, &derived, now);
        self.log_phase(now);
        // forecast
        let outlook = if self.forecast_cfg.enabled {
            let mut outlook = self.forecaster.observe(record);
            let scored = score.as_ref().zip(threshold);
            outlook.risk = self.risk.observe(now, scored, outlook.min_eta());
            outlook
        } else {
            Outlook::default()
        };
        // incident -> tickets -> remediate
        let probation = matches!(self.phase(now), Phase::Probation { .. });
        if let Some(incidents) = &mut self.incidents {
            let anomaly = match (&score, &self.state) {
                (Some(s), ModelState::Trained(m)) => {
                    Some(AnomalySignal::from_score(m, s, record, self.incidents_top))
                }
                _ => None,
            };
            let signals = Signals {
                anomaly,
                forecasts: incidents::forecast_signals(&outlook),
                risk: outlook.risk.map(|r| r.probability),
                ping: PingSignal::from_record(record),
                probation,
            };
            incidents.tick(now, record, &signals);
        }
        Verdict { score, outlook }
    }

    /// Where the model is in its life at `now_ms`.
    pub fn phase(&self, now_ms: i64) -> Phase {
        let ms = |d: Duration| d.as_millis() as i64;
        Phase::at(
            &self.state,
            self.first_ms,
            ms(self.model_cfg.warmup),
            ms(self.model_cfg.probation),
            now_ms,
        )
    }

    /// Say when the model's phase changes, and when the next one starts.
    fn log_phase(&mut self, now_ms: i64) {
        if !self.model_cfg.enabled {
            return;
        }
        let phase = self.phase(now_ms);
        if self.logged_phase == Some(phase.name()) {
            return;
        }
        self.logged_phase = Some(phase.name());
        let at = |t: i64| crate::text::fmt_time(t);
        match phase {
            Phase::WarmingUp { until_ms: Some(t) } => tracing::info!(
                "model: warming up; first training at {} (after {} of history)",
                at(t),
                crate::text::fmt_duration(self.model_cfg.warmup)
            ),
            Phase::WarmingUp { until_ms: None } => tracing::info!("model: warming up"),
            Phase::Probation { until_ms } => tracing::info!(
                "model: trained; on probation until {} (the history covers {} then): anomaly tickets open muted until then",
                at(until_ms),
                crate::text::fmt_duration(self.model_cfg.probation)
            ),
            Phase::Trained => tracing::info!("model: trained and out of probation; anomaly tickets are sent"),
        }
    }

    /// The incident, ticket and remediation stages, when incidents are on.
    pub fn incidents(&self) -> Option<&Incidents> {
        self.incidents.as_ref()
    }

    pub fn reconfigure(&mut self, config: &Config) {
        self.model_cfg = config.model.clone();
        self.incidents_top = config.incidents.top_causes;
        if let Some(i) = &mut self.incidents {
            i.reconfigure(config, &self.state_dir);
        }
        self.forecaster.reconfigure(&config.forecast);
        self.risk.reconfigure(&config.forecast.risk);
        self.forecast_cfg = config.forecast.clone();
    }

    /// One-line summary for systemd's STATUS=.
    pub fn status(&self) -> String {
        let now = crate::sample::now_ms();
        match &self.state {
            ModelState::Trained(m) => {
                let probation = match self.phase(now) {
                    Phase::Probation { until_ms } => {
                        format!(", on probation until {}", crate::text::fmt_time(until_ms))
                    }
                    _ => String::new(),
                };
                format!(
                    "model: trained on {} rows, {} features{probation}",
                    m.window().rows,
                    m.schema().len()
                )
            }
            ModelState::Untrained if matches!(self.training, Training::Running(_)) => {
                "model: training".into()
            }
            ModelState::Untrained => {
                let until = match self.phase(now) {
                    Phase::WarmingUp { until_ms: Some(t) } => {
                        format!(" until {}", crate::text::fmt_time(t))
                    }
                    _ => String::new(),
                };
                match &self.last_error {
                    Some(e) => format!("model: warming up{until} ({e})"),
                    None => format!("model: warming up{until}"),
                }
            }
        }
    }

    /// The enabled components that are off, with why (empty when all run).
    pub fn components_off(&self) -> Vec<String> {
        self.components
            .iter()
            .filter_map(|(c, why)| why.as_ref().map(|w| format!("{c} off: {w}")))
            .collect()
    }

    pub fn model(&self) -> Option<&Arc<Model>> {
        self.state.model()
    }

    /// Stop: the history writer stores what is queued and is joined, for up to
    /// `grace` (past it, the process may exit first: the WAL keeps the file consistent
    /// either way). A training run in progress is abandoned: it writes nothing until
    /// it has finished, and the next start trains again when due.
    pub fn close(self, grace: Duration) {
        self.writer.close(grace);
    }
}
