//! Metric values as text. [`fmt_value`] is the plain form for values without a known
//! unit; [`fmt_quantity`] reads the unit from the series name (`_bytes`, `_ratio`,
//! `_seconds`, `_per_second`), as Prometheus names carry it, so a value reads as
//! `1.50 GiB`, `98 %`, `0.42 ms` or `1.20 MiB/s`. Both keep three significant digits
//! whatever the magnitude: a reader never sees `0.000` for a value that is not zero.

/// `v` with three significant digits, without an exponent for everyday magnitudes.
fn significant(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    let decimals = if a >= 100.0 {
        0
    } else {
        // 3 significant digits: 2 decimals at 1.23, 3 at 0.123, 6 at 0.000123.
        (2 - a.log10().floor() as i32).clamp(0, 12) as usize
    };
    format!("{v:.decimals$}")
}

/// A value in three significant digits, with k/M/G for large ones; whole numbers
/// (counts) without decimals.
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        return "?".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞" } else { "-∞" }.into();
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
    if suffix.is_empty() && v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    format!("{}{suffix}", significant(x))
}

fn binary(v: f64, unit: &str) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = v;
    let mut u = 0;
    while x.abs() >= 1024.0 && u + 1 < units.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{x:.0} B{unit}")
    } else {
        format!("{} {}{unit}", significant(x), units[u])
    }
}

/// `v` in the unit that `series` (a feature name, labels allowed) ends with:
/// `_bytes` in binary multiples (`1.50 GiB`), `_bytes_per_second` likewise per second,
/// `_ratio` as a percentage (`98 %`), `_seconds` in s/ms/µs, `_per_second` as a rate
/// (`1.20k/s`); anything else as [`fmt_value`].
pub fn fmt_quantity(series: &str, v: f64) -> String {
    let name = series.split('{').next().unwrap_or(series);
    if !v.is_finite() {
        return fmt_value(v);
    }
    if name.ends_with("_bytes_per_second") {
        binary(v, "/s")
    } else if name.ends_with("_per_second") {
        format!("{}/s", fmt_value(v))
    } else if name.ends_with("_bytes") {
        binary(v, "")
    } else if name.ends_with("_ratio") {
        format!("{} %", significant(v * 100.0))
    } else if name.ends_with("_seconds") {
        let a = v.abs();
        if a == 0.0 {
            "0 s".into()
        } else if a >= 1.0 {
            format!("{} s", significant(v))
        } else if a >= 1e-5 {
            format!("{} ms", significant(v * 1e3))
        } else {
            format!("{} µs", significant(v * 1e6))
        }
    } else {
        fmt_value(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_keep_three_significant_digits() {
        assert_eq!(fmt_value(0.1194), "0.119");
        assert_eq!(fmt_value(37.73), "37.7");
        assert_eq!(fmt_value(2_500_000.0), "2.50M");
        assert_eq!(fmt_value(16_777_216.0), "16.8M");
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(0.000123), "0.000123");
        assert_eq!(fmt_value(0.0), "0");
        assert_eq!(fmt_value(f64::NAN), "?");
        assert_eq!(fmt_value(f64::INFINITY), "∞");
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
        assert_eq!(q("disk_busy_ratio{device=\"sdb\"}", 0.9), "90.0 %");
        assert_eq!(q("ping_loss_ratio", 0.0047), "0.470 %");
        assert_eq!(
            q("disk_write_latency_seconds{device=\"sdb\"}", 0.045),
            "45.0 ms"
        );
        // The example: never `0.000 (normal 0.000)`.
        assert_eq!(
            q("ping_rtt_median_seconds{target=\"gw\"}", 0.00042),
            "0.420 ms"
        );
        assert_eq!(
            q("ping_rtt_median_seconds{target=\"gw\"}", 0.0004),
            "0.400 ms"
        );
        assert_eq!(q("ping_rtt_max_seconds", 2.0), "2.00 s");
        assert_eq!(q("ping_jitter_seconds", 0.000_002), "2.00 µs");
        assert_eq!(q("disk_reads_per_second", 12_000.0), "12.0k/s");
        assert_eq!(
            q(
                "network_receive_bytes_per_second{interface=\"eth0\"}",
                1.2e6
            ),
            "1.14 MiB/s"
        );
        assert_eq!(q("processes_running", 3.0), "3");
        assert_eq!(q("m11", 0.071), "0.0710");
    }
}
