//! `anomalyd train`: a model from a CSV file, from the daemon's history as the
//! daemon would train it now, or from a host's history in Prometheus (also what
//! `model.bootstrap` does when the daemon starts without a model).

use std::io::Write;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;

use super::eval::Bar;
use crate::cli::{PrometheusArgs, TrainArgs};
use crate::model::bootstrap::{self, Auth, BootstrapConfig, Fetched, SourceChoice};
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

/// The `instance` to read: the configured one, else `<host name>:9100` (the
/// node_exporter default port).
pub fn instance(config: &Config, b: &BootstrapConfig) -> String {
    b.instance
        .clone()
        .unwrap_or_else(|| format!("{}:9100", crate::incident::host_name(&config.incidents)))
}

/// Read the host's history from Prometheus and train on it (at most
/// `model.max_training_rows` rows, spread over the range).
pub fn model_from_prometheus(
    config: &Config,
    b: &BootstrapConfig,
    spec: &Spec,
) -> anyhow::Result<(Model, Vec<crate::sample::Record>, Fetched)> {
    let instance = instance(config, b);
    let mut fetched = bootstrap::fetch(b, &instance, crate::sample::now_ms(), &config.collectors)?;
    let rows = bootstrap::spread(
        std::mem::take(&mut fetched.rows),
        config.model.max_training_rows,
    );
    let model = Model::train(&rows, spec).with_context(|| {
        format!(
            "training on {} rows of {instance}'s {} history from {}",
            rows.len(),
            fetched.source.name(),
            b.endpoint.url
        )
    })?;
    Ok((model, rows, fetched))
}

/// One line saying what was read and learnt.
fn summary(model: &Model, rows: usize, f: &Fetched, b: &BootstrapConfig, instance: &str) -> String {
    format!(
        "trained on {rows} rows of {instance}'s {} history from {} ({} to {}, step {}, {} requests): {} features ({} constant skipped), threshold {:.4}; not in Prometheus, learnt locally later: {}",
        f.source.name(),
        b.endpoint.url,
        crate::text::fmt_time(f.start_ms),
        crate::text::fmt_time(f.end_ms),
        crate::text::fmt_duration(b.step),
        f.requests,
        model.schema().len(),
        model.skipped().len(),
        model.threshold(),
        if f.unmapped.is_empty() {
            "nothing".to_string()
        } else {
            f.unmapped.join(", ")
        }
    )
}

/// `anomalyd train --prometheus URL --out MODEL`.
pub fn train_from_prometheus(
    config: &Config,
    b: &BootstrapConfig,
    spec: &Spec,
    out: &Path,
    log: &mut dyn Write,
) -> anyhow::Result<()> {
    let (model, rows, fetched) = model_from_prometheus(config, b, spec)?;
    model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    writeln!(
        log,
        "{} -> {}",
        summary(&model, rows.len(), &fetched, b, &instance(config, b)),
        out.display()
    )?;
    Ok(())
}

/// `model.bootstrap` at start: when the state directory has no model yet, train one
/// from Prometheus and save it (and the fault-risk calibration fitted on the same
/// rows) where the daemon loads its model from. Bounded by the section's `timeout`.
/// A failure is logged and the daemon learns from its own history as usual; the next
/// start without a model tries again.
pub fn bootstrap_at_start(config: &Config, state: &StateDir) {
    let Some(b) = config
        .model
        .bootstrap
        .as_ref()
        .filter(|_| config.model.enabled)
    else {
        return;
    };
    if state.model().exists() {
        return;
    }
    let instance = instance(config, b);
    tracing::info!(prometheus = %b.endpoint.url, %instance, range = %crate::text::fmt_duration(b.range), "no model yet: reading the host's history from Prometheus");
    let result =
        model_from_prometheus(config, b, &config.model.spec).and_then(|(model, rows, f)| {
            let tmp = state.model().with_extension("json.tmp");
            model.save(&tmp)?;
            std::fs::rename(&tmp, state.model())?;
            tracing::info!(
                "model bootstrapped: {}",
                summary(&model, rows.len(), &f, b, &instance)
            );
            let risk = &config.forecast.risk;
            if config.forecast.enabled && risk.enabled {
                let shared = std::sync::Arc::new(model);
                match crate::forecast::risk::calibrate(&shared, &rows, risk) {
                    Ok(c) => c.save(&state.risk())?,
                    Err(e) => tracing::info!("fault risk not calibrated: {e}"),
                }
            }
            Ok(())
        });
    if let Err(e) = result {
        tracing::warn!("model bootstrap from Prometheus failed, learning locally instead: {e:#}");
    }
}

/// The `model.bootstrap` section (or the defaults) with the command line over it.
fn prometheus_config(config: &Config, a: &PrometheusArgs) -> anyhow::Result<BootstrapConfig> {
    let url = a.prometheus.as_deref().unwrap_or_default();
    let mut b = match &config.model.bootstrap {
        Some(b) => BootstrapConfig {
            endpoint: bootstrap::Endpoint {
                url: url.trim_end_matches('/').to_string(),
                ..b.endpoint.clone()
            },
            ..b.clone()
        },
        None => BootstrapConfig::new(url),
    };
    if let Some(i) = &a.instance {
        b.instance = Some(i.clone());
    }
    b.range = a.range.unwrap_or(b.range);
    b.step = a.step.unwrap_or(b.step);
    b.rate_window = a.rate_window.or(b.rate_window);
    b.timeout = a.timeout.unwrap_or(b.timeout);
    if let Some(s) = &a.source {
        b.source = SourceChoice::parse(s).map_err(|e| anyhow::anyhow!("--source: {e}"))?;
    }
    if let Some(m) = &a.blackbox {
        b.blackbox = (!m.is_empty()).then(|| m.clone());
    }
    match (&a.username, &a.password_file, &a.bearer_token_file) {
        (Some(u), Some(p), _) => {
            b.endpoint.auth = Auth::Basic {
                username: u.clone(),
                password_file: p.clone(),
            }
        }
        (_, _, Some(t)) => {
            b.endpoint.auth = Auth::Bearer {
                token_file: t.clone(),
            }
        }
        _ => {}
    }
    let tls = &mut b.endpoint.tls;
    tls.ca_file = a.ca_file.clone().or(tls.ca_file.take());
    if a.cert_file.is_some() {
        tls.cert_file = a.cert_file.clone();
        tls.key_file = a.key_file.clone();
    }
    tls.insecure_skip_verify |= a.insecure_skip_verify;
    let problems: Vec<String> = b
        .problems()
        .into_iter()
        .map(|(key, m)| format!("--{}: {m}", key.replace('_', "-")))
        .collect();
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(b)
}

/// `anomalyd train`: clap guarantees exactly one of `--input`, `--history` and
/// `--prometheus`.
pub fn run(args: TrainArgs, log: &mut dyn Write) -> anyhow::Result<std::process::ExitCode> {
    let (config, state) = super::resolve_common(&args.common)?;
    let spec = super::spec(args.spec.as_deref(), &config.model.spec)?;
    if args.prometheus.prometheus.is_some() {
        let b = prometheus_config(&config, &args.prometheus)?;
        let out = args
            .out
            .ok_or_else(|| anyhow::anyhow!("--out MODEL is required with --prometheus"))?;
        train_from_prometheus(&config, &b, &spec, &out, log)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
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
