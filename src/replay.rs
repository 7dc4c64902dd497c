//! `anomalyd replay` and `anomalyd train --history`: recorded data through the
//! daemon's own code.
//!
//! Replay feeds CSV rows to a [`Pipeline`] in replay mode, in a scratch state
//! directory, so warm-up, retraining and history-based training happen exactly as in
//! the daemon, with the clock taken from the rows. Rows without a `timestamp` column
//! are spaced one `interval` apart from the Unix epoch.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::model::{commands::write_row, csv::read_table, Model, Spec};
use crate::pipeline::{Mode, Pipeline};
use crate::store::History;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("anomalyd-replay-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stream `input` through the pipeline; one `score,anomaly,cause` row per input row
/// (`0,0,` while the model is still warming up). With `forecast`, three columns
/// follow: `fault_risk` (empty without a calibrated model), `min_eta_seconds` (the
/// nearest exhaustion, `inf` when nothing runs out) and `forecast_events` (the firing
/// events as `kind:resource:severity`, `;`-separated).
pub fn replay(
    config: &Config,
    input: &Path,
    forecast: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let table = read_table(input)?;
    let scratch = Scratch::new()?;
    let mut pipeline = Pipeline::open_mode(config, &scratch.0, Mode::Replay)?;
    let step = config.interval.as_millis() as i64;
    if forecast {
        writeln!(
            out,
            "score,anomaly,cause,fault_risk,min_eta_seconds,forecast_events"
        )?;
    } else {
        writeln!(out, "score,anomaly,cause")?;
    }
    let mut row = Vec::new();
    for (i, record) in table.records.into_iter().enumerate() {
        let mut record = record;
        if record.timestamp_ms.is_none() {
            record.timestamp_ms = Some(i as i64 * step);
        }
        let verdict = pipeline.process_record(&record);
        row.clear();
        match (&verdict.score, pipeline.model()) {
            (Some(score), Some(model)) => write_row(&mut row, model, score)?,
            _ => writeln!(row, "0,0,")?,
        }
        if forecast {
            row.pop(); // the newline
            let o = &verdict.outlook;
            let risk = o
                .risk
                .map(|r| r.probability.to_string())
                .unwrap_or_default();
            let events: Vec<String> = o
                .active
                .iter()
                .map(|e| format!("{}:{}:{}", e.kind.as_str(), e.resource, e.severity.as_str()))
                .collect();
            writeln!(row, ",{risk},{},{}", o.min_eta(), events.join(";"))?;
        }
        out.write_all(&row)?;
    }
    out.flush()?;
    pipeline.close();
    Ok(())
}

/// `anomalyd train --history`: train on the state directory's history, as the daemon
/// would now, and write the model.
pub fn train_from_history(
    config: &Config,
    state_dir: &Path,
    spec: &Spec,
    out: &Path,
    log: &mut dyn Write,
) -> anyhow::Result<()> {
    let path = state_dir.join("history.db");
    anyhow::ensure!(
        path.exists(),
        "no history at {} (run the daemon first)",
        path.display()
    );
    let history = History::open(&path, &config.history)?;
    let now = history.stats()?.newest_ms.unwrap_or(0);
    let since = now - config.model.window.as_millis() as i64;
    let rows = history.training_rows(since, config.model.max_training_rows)?;
    let model = Model::train(&rows, spec)
        .with_context(|| format!("training on {} history rows", rows.len()))?;
    model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    writeln!(
        log,
        "trained on {} history rows, {} features, threshold {:.4} -> {}",
        rows.len(),
        model.schema().len(),
        model.threshold(),
        out.display()
    )?;
    Ok(())
}
