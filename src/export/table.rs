//! `collect --once` as a table people can read: one line per point, grouped by
//! collector order, values with units.

use std::io::{self, Write};

use crate::sample::{feature_name, Kind, Sample};

/// "3 h 10 min", as an operator would say it.
fn eta(v: f64) -> String {
    if !v.is_finite() {
        return "never (no consistent decline)".to_string();
    }
    let s = v.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn human(name: &str, v: f64) -> String {
    if name.ends_with("_seconds_until_exhaustion") {
        eta(v)
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
        if v.abs() < 1.0 {
            format!("{:.3} ms", v * 1000.0)
        } else {
            format!("{v:.1} s")
        }
    } else {
        format!("{v:.2}")
    }
}

pub fn write(out: &mut impl Write, sample: &Sample) -> io::Result<()> {
    let rows: Vec<(String, String)> = sample
        .points
        .iter()
        .filter(|p| p.kind == Kind::Gauge)
        .map(|p| (feature_name(p), human(p.name, p.value)))
        .collect();
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(10);
    writeln!(out, "{:width$}  VALUE", "METRIC")?;
    for (n, v) in &rows {
        writeln!(out, "{n:width$}  {v}")?;
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
