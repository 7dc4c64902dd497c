//! Metric values as text. [`fmt_value`] is the plain form reports and titles use
//! today; [`fmt_quantity`] reads the unit from the series name (`_bytes`, `_ratio`,
//! `_seconds`, `_per_second`), as Prometheus names carry it, so a value can be shown
//! as `1.50 GiB`, `98.0 %` or `45.0 ms`.

/// A value in at most 4 significant digits, with k/M/G for large ones.
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        return "?".into();
    }
    let a = v.abs();
    let (x, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    };
    format!("{s}{suffix}")
}

/// `v` in the unit that `series` (a feature name, labels allowed) ends with:
/// `_bytes` in binary multiples (`1.50 GiB`), `_ratio` as a percentage (`98.0 %`),
/// `_seconds` in s/ms/µs, `_per_second` as a rate (`1.20k/s`); anything else as
/// [`fmt_value`].
pub fn fmt_quantity(series: &str, v: f64) -> String {
    let name = series.split('{').next().unwrap_or(series);
    if v.is_nan() {
        return "?".into();
    }
    if name.ends_with("_per_second") {
        format!("{}/s", fmt_value(v))
    } else if name.ends_with("_bytes") {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut x = v;
        let mut u = 0;
        while x.abs() >= 1024.0 && u + 1 < units.len() {
            x /= 1024.0;
            u += 1;
        }
        if u == 0 {
            format!("{x:.0} B")
        } else {
            format!("{x:.2} {}", units[u])
        }
    } else if name.ends_with("_ratio") {
        format!("{:.1} %", v * 100.0)
    } else if name.ends_with("_seconds") {
        let a = v.abs();
        if a == 0.0 || a >= 1.0 {
            format!("{v:.2} s")
        } else if a >= 1e-3 {
            format!("{:.1} ms", v * 1e3)
        } else {
            format!("{:.1} µs", v * 1e6)
        }
    } else {
        fmt_value(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_keep_four_digits() {
        assert_eq!(fmt_value(0.1194), "0.119");
        assert_eq!(fmt_value(37.73), "37.73");
        assert_eq!(fmt_value(2_500_000.0), "2.50M");
        assert_eq!(fmt_value(f64::NAN), "?");
    }

    #[test]
    fn quantities_take_their_unit_from_the_series_name() {
        let q = fmt_quantity;
        assert_eq!(
            q("memory_available_bytes", 1.5 * 1024.0 * 1024.0 * 1024.0),
            "1.50 GiB"
        );
        assert_eq!(q("memory_available_bytes", 512.0), "512 B");
        assert_eq!(q("disk_busy_ratio{device=\"sdb\"}", 0.98), "98.0 %");
        assert_eq!(
            q("disk_write_latency_seconds{device=\"sdb\"}", 0.045),
            "45.0 ms"
        );
        assert_eq!(q("ping_rtt_max_seconds", 2.0), "2.00 s");
        assert_eq!(q("disk_reads_per_second", 12_000.0), "12.00k/s");
        assert_eq!(q("processes_running", 3.0), "3.00");
    }
}
