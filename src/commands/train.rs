//! `anomalyd train`: a model from a CSV file, or from the daemon's history as the
//! daemon would train it now.

use std::io::Write;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;

use super::eval::Bar;
use crate::cli::TrainArgs;
use crate::model::csv::read_table;
use crate::model::{Clock, Model, Spec};
use crate::settings::Config;
use crate::store::{History, StateDir};

/// `anomalyd train --input FILE --out MODEL`: learn from a CSV (or gzip CSV) file and
/// write the model file. A one-line summary goes to `log`.
pub fn train(input: &Path, out: &Path, spec: &Spec, log: &mut dyn Write) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let table = read_table(input)?;
    let mut bar = Bar::new();
    let model =
        Model::train_with_progress(&table.records, spec, &mut |s, d, t| bar.update(s, d, t))
            .with_context(|| format!("training on {}", input.display()));
    bar.finish();
    let model = model?;
    model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    writeln!(
        log,
        "trained on {} rows, {} features ({} constant skipped), time of day: {}, smoothing per {}, threshold {:.4}, in {:.1}s -> {}",
        table.records.len(),
        model.schema().len(),
        model.skipped().len(),
        match model.time_of_day_clock() {
            Some(Clock::Local) => "yes (local clock)",
            Some(Clock::Utc) => "yes (UTC)",
            None => "no",
        },
        // What live scoring will weigh as one row: the EWMA runs in time when known.
        match model.row_interval_ms() {
            Some(ms) => format!("{} s", ms / 1000.0),
            None => "row".to_string(),
        },
        model.threshold(),
        t0.elapsed().as_secs_f64(),
        out.display()
    )?;
    Ok(())
}

/// `anomalyd train --history`: train on the state directory's history, as the daemon
/// would now, and write the model.
pub fn train_from_history(
    config: &Config,
    state: &StateDir,
    spec: &Spec,
    out: &Path,
    force: bool,
    log: &mut dyn Write,
) -> anyhow::Result<()> {
    let path = state.history();
    anyhow::ensure!(
        path.exists(),
        "no history at {} (run the daemon first)",
        path.display()
    );
    let history = History::open(&path, &config.history)?;
    let stats = history.stats()?;
    let now = stats.newest_ms.unwrap_or(0);
    // The daemon waits for its warm-up before it trains; a model from less has not
    // seen enough of the host to tell normal from not (and would page for it).
    let covered = Duration::from_millis((now - stats.oldest_ms.unwrap_or(now)).max(0) as u64);
    if covered < config.model.warmup && !force {
        anyhow::bail!(
            "the history covers {}, less than model.warmup ({}): too little to learn what is \
             normal here. Let the daemon run longer, or pass --force to train anyway",
            crate::text::fmt_duration(covered),
            crate::text::fmt_duration(config.model.warmup)
        );
    }
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

/// `anomalyd train`: clap guarantees exactly one of `--input` and `--history`.
pub fn run(args: TrainArgs, log: &mut dyn Write) -> anyhow::Result<std::process::ExitCode> {
    let (config, state) = super::resolve_common(&args.common)?;
    let spec = super::spec(args.spec.as_deref(), &config.model.spec)?;
    match &args.input {
        Some(input) => {
            let out = args
                .out
                .ok_or_else(|| anyhow::anyhow!("--out MODEL is required with --input"))?;
            train(input, &out, &spec, log)?;
        }
        None => {
            let state = StateDir::create(state.path())?;
            let out = args.out.unwrap_or_else(|| state.model());
            train_from_history(&config, &state, &spec, &out, args.force, log)?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
