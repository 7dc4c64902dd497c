//! `anomalyd report`: the health report of a period, from the state directory (the
//! daemon may be running) and the host now. See `view::report`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::ReportArgs;
use crate::view::report::{self, Live};

/// A progress line appears only when the report takes longer than this.
const QUIET_FOR: Duration = Duration::from_secs(1);

/// The report in `format` (`html`, `md` or `json`).
pub fn render(r: &report::Report, format: &str) -> anyhow::Result<String> {
    Ok(match format {
        "json" => serde_json::to_string_pretty(r)? + "\n",
        "md" => report::markdown(r),
        _ => report::html(r)?,
    })
}

pub fn run(args: ReportArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let (config, state) = super::resolve_common(&args.common)?;
    let until = match &args.until {
        None => crate::sample::now_ms(),
        Some(s) => crate::text::parse_timestamp_ms(s).with_context(|| {
            format!("--until {s:?} is not a time (RFC 3339, e.g. 2025-06-01T22:00:00Z)")
        })?,
    };
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut shown = false;
    let mut progress = |step: &str| {
        if tty && started.elapsed() >= QUIET_FOR {
            // One line, rewritten in place; cleared when the report is done.
            eprint!("\r\x1b[2Kreport: {step}...");
            shown = true;
        }
    };
    let src = config.report_source(&state);
    progress("looking at the host");
    let live = Live::gather(&config.paths.sysfs);
    let built = report::build(&src, args.since, until, &live, &mut progress);
    let text = built.map_err(anyhow::Error::from).and_then(|r| {
        progress("rendering");
        render(&r, &args.format)
    });
    if shown {
        eprint!("\r\x1b[2K");
    }
    let text = text?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
