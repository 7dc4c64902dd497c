//! `anomalyd replay`: recorded data through the daemon's own code.
//!
//! Replay feeds CSV rows to a [`Pipeline`] in replay mode, in a scratch state
//! directory (or `--state-dir`), so warm-up, retraining, history-based training,
//! incidents and tickets happen exactly as in the daemon, with the clock taken from
//! the rows. Rows without a `timestamp` column are spaced one `interval` apart from
//! the Unix epoch; with one, they must be in time order, each time once (the error
//! names the first line that is not).
//!
//! With `--state-dir DIR` the tickets stay in `DIR/tickets.db` (see them with
//! `anomalyd tickets list --state-dir DIR`) and the sinks get them: replay delivers
//! the outbox for up to [`DELIVERY_GRACE`]; what a sink did not take by then stays
//! queued and `anomalyd run` on the same state directory delivers it. The state
//! directory of the config file is never used: a replay must not mix a recorded
//! series into the daemon's own history by accident.

use std::io::Write;
use std::path::Path;

use super::score::{write_row, write_time};
use crate::cli::ReplayArgs;
use crate::model::csv::{check_series, stream_series};
use crate::pipeline::{Mode, Pipeline};
use crate::settings::Config;
use crate::store::{Scratch, StateDir};

/// `anomalyd replay --input FILE [--forecast]`: the config's state directory is never
/// used (see the module header); `--state-dir` keeps the replay's.
pub fn run(
    args: ReplayArgs,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> anyhow::Result<std::process::ExitCode> {
    let (config, _) = super::resolve_common(&args.common)?;
    replay(
        &config,
        &args.input,
        args.common.state_dir.as_deref(),
        args.forecast,
        out,
        log,
    )?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// How long a replay waits for the sinks to take its tickets.
pub const DELIVERY_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Stream `input` through the pipeline; one `score,anomaly,cause` row per input row
/// (`0,0,` while the model is still warming up), after a `timestamp` column (RFC 3339)
/// when the input has one. With `forecast`, three columns
/// follow: `fault_risk` (empty without a calibrated model), `min_eta_seconds` (the
/// nearest exhaustion, `inf` when nothing runs out) and `forecast_events` (the firing
/// events as `kind:resource:severity`, `;`-separated). A summary of the tickets opened
/// goes to `log`; with `state_dir` they are kept there (and sent to the sinks).
pub fn replay(
    config: &Config,
    input: &Path,
    state_dir: Option<&Path>,
    forecast: bool,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> anyhow::Result<()> {
    // The whole file is checked first: a bad line anywhere is an error before any row
    // reaches the state directory (and comes in seconds, not after the replay).
    check_series(input)?;
    let mut rows = stream_series(input)?.read_ahead()?;
    let timed = rows.timed();
    let scratch;
    let state = match state_dir {
        Some(d) => StateDir::create(d)?,
        None => {
            scratch = Scratch::new("replay")?;
            scratch.state()
        }
    };
    let mut pipeline = Pipeline::open_mode(config, &state, Mode::Replay)?;
    let first_seq = match pipeline.incidents() {
        Some(i) => i.desk().store().next_seq()?,
        None => 1,
    };
    let step = config.interval.as_millis() as i64;
    if timed {
        write!(out, "timestamp,")?;
    }
    if forecast {
        writeln!(
            out,
            "score,anomaly,cause,fault_risk,min_eta_seconds,forecast_events"
        )?;
    } else {
        writeln!(out, "score,anomaly,cause")?;
    }
    let mut row = Vec::new();
    let mut i = 0;
    while let Some(record) = rows.next_row()? {
        if record.timestamp_ms.is_none() {
            record.timestamp_ms = Some(i * step);
        }
        i += 1;
        let verdict = pipeline.process_record(record);
        row.clear();
        if timed {
            write_time(&mut row, record.timestamp_ms)?;
        }
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
    if let Some(i) = pipeline.incidents() {
        let store = i.desk().store();
        summarize(store, first_seq, log)?;
        if state_dir.is_some() && !config.tickets.sinks.is_empty() {
            deliver(config, store.path(), log)?;
        }
    }
    pipeline.close(std::time::Duration::ZERO);
    Ok(())
}

/// One line per ticket this replay opened or reopened.
fn summarize(
    store: &crate::tickets::Store,
    first_seq: u64,
    log: &mut dyn Write,
) -> anyhow::Result<()> {
    let tickets = store.list(false, i64::MAX)?;
    let mine: Vec<_> = tickets
        .iter()
        .rev()
        .filter(|t| {
            t.id.strip_prefix("INC-")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= first_seq)
        })
        .collect();
    writeln!(log, "replay: {} tickets", mine.len())?;
    for t in mine {
        let state = match t.resolved_ms {
            Some(r) => format!(
                "resolved after {}",
                crate::text::fmt_duration_ms(r - t.opened_ms)
            ),
            None => "open".to_string(),
        };
        writeln!(
            log,
            "  {} {} {} at {}, {state}: {}",
            t.id,
            t.severity,
            t.label,
            crate::text::fmt_time(t.opened_ms),
            t.title
        )?;
    }
    Ok(())
}

/// Give the sinks the replay's tickets, for up to [`DELIVERY_GRACE`].
fn deliver(config: &Config, db: &Path, log: &mut dyn Write) -> anyhow::Result<()> {
    let mut d = crate::tickets::outbox::Deliverer::open(db, &config.tickets.sinks)?;
    let end = std::time::Instant::now() + DELIVERY_GRACE;
    let mut delivered = 0;
    loop {
        let r = d.run_once(crate::sample::now_ms());
        delivered += r.delivered;
        if r.pending == 0 {
            writeln!(log, "replay: {delivered} deliveries made, none pending")?;
            return Ok(());
        }
        if std::time::Instant::now() >= end {
            writeln!(
                log,
                "replay: {delivered} deliveries made, {} still pending (kept in {}; `anomalyd run` delivers them)",
                r.pending,
                db.display()
            )?;
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
