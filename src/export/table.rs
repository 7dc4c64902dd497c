//! `collect --once` as a table people can read in a terminal: one block per metric in
//! collector order, its label names said once (`filesystem_inodes{mountpoint,device,
//! fstype}`) and one line per point with the label values and the value with its
//! unit; counts as integers. Lines fit in [`WIDTH`] columns unless a label value is
//! itself that long.

use std::io::{self, Write};

use crate::sample::{Kind, Point, Sample};

/// The width the table is laid out for.
pub const WIDTH: usize = 100;

/// Whether the forecast had history to learn a trend from: an ETA of +Inf means
/// "never at this trend" only when it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    None,
    Some,
}

/// "3 h 10 min", as an operator would say it.
fn eta(v: f64, history: History) -> String {
    if !v.is_finite() {
        return match history {
            History::None => "no history yet".to_string(),
            History::Some => "never at this trend".to_string(),
        };
    }
    duration(v)
}

fn duration(v: f64) -> String {
    let s = v.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn human(name: &str, v: f64, history: History) -> String {
    if name.ends_with("_seconds_until_exhaustion") {
        eta(v, history)
    } else if name.ends_with("_bytes") || name.ends_with("_bytes_per_second") {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut x = v;
        let mut i = 0;
        while x.abs() >= 1024.0 && i < units.len() - 1 {
            x /= 1024.0;
            i += 1;
        }
        let suffix = if name.ends_with("_per_second") {
            "/s"
        } else {
            ""
        };
        format!("{x:.1} {}{suffix}", units[i])
    } else if name.ends_with("_ratio") {
        format!("{:.1} %", v * 100.0)
    } else if name.ends_with("_seconds") {
        // Under a minute in s/ms/µs with three significant digits (`0.430 ms`,
        // `0 s`, never `0.000 ms`); longer as a duration.
        if v.abs() < 60.0 {
            crate::text::fmt_quantity(name, v)
        } else {
            duration(v)
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        // Counts (inodes, processes, packets): whole numbers, not 16777216.00.
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One line: `left` and the value right-aligned at [`WIDTH`] (or just after `left`
/// when that is too long).
fn line(out: &mut impl Write, left: &str, value: &str) -> io::Result<()> {
    let pad = WIDTH.saturating_sub(left.chars().count() + value.chars().count());
    writeln!(out, "{left}{:pad$}{value}", "", pad = pad.max(2))
}

pub fn write(out: &mut impl Write, sample: &Sample, history: History) -> io::Result<()> {
    let gauges: Vec<&Point> = sample
        .points
        .iter()
        .filter(|p| p.kind == Kind::Gauge)
        .collect();
    line(out, "METRIC", "VALUE")?;
    let mut i = 0;
    while i < gauges.len() {
        let p = gauges[i];
        let n = gauges[i..].iter().take_while(|q| q.name == p.name).count();
        if p.labels.is_empty() && n == 1 {
            line(out, p.name, &human(p.name, p.value, history))?;
        } else {
            let names: Vec<&str> = p.labels.iter().map(|(k, _)| *k).collect();
            writeln!(out, "{}{{{}}}", p.name, names.join(","))?;
            for q in &gauges[i..i + n] {
                let values: Vec<&str> = q.labels.iter().map(|(_, v)| v.as_str()).collect();
                let left = format!("  {}", values.join("  "));
                line(out, &left, &human(q.name, q.value, history))?;
            }
        }
        i += n;
    }
    writeln!(out)?;
    for r in &sample.runs {
        let state = match &r.error {
            None => "ok".to_string(),
            Some(e) => format!("FAILED: {e}"),
        };
        writeln!(
            out,
            "collector {:<8} {:>8.3} ms  {state}",
            r.collector,
            r.duration_seconds * 1000.0
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(name: &'static str, labels: &[(&'static str, &str)], value: f64) -> Point {
        Point {
            name,
            help: "",
            kind: Kind::Gauge,
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
            observations: Vec::new(),
            feature: false,
        }
    }

    fn table(history: History) -> String {
        let fs = [
            ("mountpoint", "/var/lib/containers/storage/overlay-images"),
            ("device", "/dev/mapper/vg0-containers"),
            ("fstype", "xfs"),
        ];
        let mut sample = Sample::new(0);
        sample.points = vec![
            gauge("processes_running", &[], 3.0),
            gauge("load_average", &[("period", "1m")], 0.52),
            gauge("load_average", &[("period", "5m")], 0.5),
            gauge("filesystem_inodes", &fs, 16_777_216.0),
            gauge("filesystem_used_ratio", &fs, 0.4567),
            gauge("filesystem_seconds_until_exhaustion", &fs, f64::INFINITY),
            gauge("filesystem_inodes_seconds_until_exhaustion", &fs, 11_400.0),
            gauge("memory_seconds_until_exhaustion", &[], f64::INFINITY),
            gauge(
                "forecast_horizon_seconds",
                &[("severity", "warning")],
                86_400.0,
            ),
            gauge("ping_rtt_median_seconds", &[("target", "gw")], 0.00043),
            gauge("scrape_seconds", &[], 0.0),
        ];
        let mut out = Vec::new();
        write(&mut out, &sample, history).expect("write");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn fits_the_width_with_counts_as_integers() {
        let t = table(History::Some);
        for l in t.lines() {
            assert!(l.chars().count() <= WIDTH, "{} columns: {l}", l.len());
        }
        let find = |needle: &str| {
            t.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no {needle:?} in\n{t}"))
                .to_string()
        };
        assert!(find("processes_running").ends_with(" 3"), "{t}");
        assert!(
            t.contains("filesystem_inodes{mountpoint,device,fstype}\n"),
            "{t}"
        );
        assert!(find("16777216").ends_with(" 16777216"), "{t}");
        assert!(!t.contains("16777216.00"), "{t}");
        assert!(find("0.52").starts_with("  1m "), "{t}");
        assert!(t.contains(" 45.7 %\n"), "{t}");
        assert!(t.contains(" 3 h 10 min\n"), "{t}");
        assert!(t.contains(" 1 d 0 h\n"), "{t}");
        assert!(t.contains(" never at this trend\n"), "{t}");
        assert!(!t.contains("no history yet"), "{t}");
        // Seconds in their unit, never `0.000 ms`.
        assert!(t.contains(" 0.430 ms\n"), "{t}");
        assert!(find("scrape_seconds").ends_with(" 0 s"), "{t}");
    }

    #[test]
    fn without_history_the_forecast_says_so() {
        let t = table(History::None);
        assert!(!t.contains("never"), "{t}");
        assert_eq!(t.matches("no history yet").count(), 2, "{t}");
    }
}
