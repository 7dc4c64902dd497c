//! `anomalyd report`: the health report of a period, from the state directory (the
//! daemon may be running) and the host now. See `view::report`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The progress line: on a terminal only, once the report has taken `quiet_for`; one
/// line rewritten in place, and cleared at the end.
pub struct Progress<W: Write> {
    tty: bool,
    quiet_for: Duration,
    started: Instant,
    shown: bool,
    out: W,
}

impl<W: Write> Progress<W> {
    pub fn new(tty: bool, quiet_for: Duration, out: W) -> Progress<W> {
        Progress {
            tty,
            quiet_for,
            started: Instant::now(),
            shown: false,
            out,
        }
    }

    pub fn step(&mut self, step: &str) {
        if self.tty && self.started.elapsed() >= self.quiet_for {
            let _ = write!(self.out, "\r\x1b[2Kreport: {step}...");
            let _ = self.out.flush();
            self.shown = true;
        }
    }

    /// Clear the line, if one was shown.
    pub fn done(&mut self) {
        if self.shown {
            let _ = write!(self.out, "\r\x1b[2K");
            let _ = self.out.flush();
        }
    }
}

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
    let stderr = std::io::stderr();
    let mut progress = Progress::new(stderr.is_terminal(), QUIET_FOR, stderr.lock());
    let src = config.report_source(&state);
    progress.step("looking at the host");
    let live = Live::gather(&config.paths.sysfs);
    let built = report::build(&src, args.since, until, &live, &mut |s| progress.step(s));
    let text = built.map_err(anyhow::Error::from).and_then(|r| {
        progress.step("rendering");
        render(&r, &args.format)
    });
    progress.done();
    let text = text?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_on_a_terminal_after_the_quiet_time_only() {
        // Not a terminal: nothing, however long it takes.
        let mut out = Vec::new();
        let mut p = Progress::new(false, Duration::ZERO, &mut out);
        p.step("reading");
        p.done();
        assert!(out.is_empty());
        // A terminal, before the quiet time: nothing.
        let mut out = Vec::new();
        let mut p = Progress::new(true, Duration::from_secs(3600), &mut out);
        p.step("reading");
        p.done();
        assert!(out.is_empty());
        // A terminal, past it: one line rewritten in place, cleared at the end.
        let mut out = Vec::new();
        let mut p = Progress::new(true, Duration::ZERO, &mut out);
        p.step("reading the history");
        p.step("rendering");
        p.done();
        assert_eq!(
            String::from_utf8(out).unwrap_or_default(),
            "\r\x1b[2Kreport: reading the history...\r\x1b[2Kreport: rendering...\r\x1b[2K"
        );
    }
}
