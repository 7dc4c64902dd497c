//! What the pipeline adds to each live sample for /metrics: the model's verdict and
//! state, the history writer's drops, and the incident stages' own metrics.

use super::{Pipeline, Training};
use crate::model::{ModelState, Phase, Score};
use crate::sample::Sample;

impl Pipeline {
    /// Add the verdict and the model's state to the sample (what /metrics shows).
    pub(super) fn export(&self, sample: &mut Sample, score: Option<&Score>) {
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
        export_phase(sample, self.phase(sample.timestamp_ms));
        if let Some(i) = &self.incidents {
            if matches!(self.state, ModelState::Trained(_)) {
                sample.info(
                    "anomaly_opening_level",
                    "Score, in units of the threshold, above which anomalous samples open an incident (false-alarm budget, recent level)",
                    &[],
                    i.opening_level(),
                );
            }
        }
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
        if let Some(incidents) = &self.incidents {
            incidents.export(sample);
        }
        for (component, why) in &self.components {
            sample.info(
                "component_up",
                "Whether an enabled component runs (0: it could not start, the log says why, and /healthz is degraded)",
                &[("component", component)],
                if why.is_none() { 1.0 } else { 0.0 },
            );
        }
        if let Some(dropped) = self.writer.dropped() {
            sample.info(
                "history_dropped_samples",
                "Samples not stored because the history writer was behind",
                &[],
                dropped as f64,
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
}

/// `model_state{state}` (one of them 1) and `model_ready_seconds`: where the model is
/// in its life and how long until it pages.
pub(super) fn export_phase(sample: &mut Sample, phase: Phase) {
    for name in Phase::NAMES {
        sample.info(
            "model_state",
            "The model's phase: warming_up (no model yet), probation (scoring, its anomaly tickets muted), trained",
            &[("state", name)],
            if phase.name() == name { 1.0 } else { 0.0 },
        );
    }
    sample.info(
        "model_ready_seconds",
        "Seconds until the model scores and pages (end of warm-up or probation); 0 when it does",
        &[],
        phase.ready_ms().map_or(0.0, |t| {
            ((t - sample.timestamp_ms) as f64 / 1000.0).max(0.0)
        }),
    );
}
