//! `collect --once`: the model's phase and the forecast for one fresh sample, from
//! what the daemon left in the state directory. Reads only; nothing is written.

use std::sync::Arc;

use crate::forecast::{Calibration, Forecaster, Outlook, RiskTracker};
use crate::model::{Model, ModelState, Phase, Scorer};
use crate::sample::Sample;
use crate::settings::Config;
use crate::store::{History, StateDir};

/// `collect --once`: the forecast for one fresh sample, from the state directory's
/// history (the trend of the last window) and saved model (the fault risk, warmed
/// on the last horizon of history). Added to `sample`; nothing is written. Also
/// returned: how many resources the history had samples of (0: no history yet, so
/// no ETA can be more than "unknown").
pub fn forecast_once(config: &Config, sample: &mut Sample) -> (Outlook, usize) {
    let cfg = &config.forecast;
    if !cfg.enabled {
        return (Outlook::default(), 0);
    }
    let now = sample.timestamp_ms;
    let record = sample.record();
    let mut forecaster = Forecaster::new(cfg);
    let mut risk = RiskTracker::new(&cfg.risk);
    let state = StateDir::at(&config.state_dir);
    let path = state.history();
    // Opening would create a missing database: only read one that exists.
    let history = if path.exists() {
        History::open(&path, &config.history)
            .map_err(|e| tracing::warn!("forecast: {e}"))
            .ok()
    } else {
        None
    };
    let mut seeded = 0;
    if let Some(h) = &history {
        match forecaster.seed(h, now) {
            Ok(n) => seeded = n,
            Err(e) => tracing::warn!("forecast: {e}"),
        }
    }
    let model_path = state.model();
    let model = model_path
        .exists()
        .then(|| {
            Model::load(&model_path)
                .map_err(|e| tracing::warn!("{e}"))
                .ok()
        })
        .flatten()
        .map(Arc::new);
    // Where the daemon's model is in its life, as the daemon would say it now.
    // No history yet: a daemon started now would take its first sample now.
    let first = history
        .as_ref()
        .and_then(|h| h.stats().ok())
        .and_then(|s| s.oldest_ms)
        .or(Some(now));
    let model_state = model
        .clone()
        .map_or(ModelState::Untrained, ModelState::Trained);
    let ms = |d: std::time::Duration| d.as_millis() as i64;
    let phase = Phase::at(
        &model_state,
        first,
        ms(config.model.warmup),
        ms(config.model.probation),
        now,
    );
    super::export::export_phase(sample, phase);
    let mut scorer = None;
    if let Some(m) = &model {
        let calibration = Calibration::load(&state.risk(), m, &cfg.risk)
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
    (outlook, seeded)
}
