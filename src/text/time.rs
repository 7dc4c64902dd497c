//! Times as text, both ways. Out: [`fmt_time`], the UTC form every report, ticket and
//! log line shows, and [`fmt_rfc3339`] for CSV output that tools read back. In: [`parse_timestamp_ms`], the timestamps of CSV input and command
//! lines: RFC 3339 (`2024-05-01T02:00:00Z`, `…T02:00:00.5+02:00`), `YYYY-MM-DD
//! HH:MM:SS` (taken as UTC), or Unix epoch seconds (integer or decimal; values ≥ 1e11
//! are taken as milliseconds). Small on purpose: no date crate.

/// UTC `YYYY-MM-DD HH:MM:SS UTC`.
pub fn fmt_time(ms: i64) -> String {
    let (y, mo, d, h, m, s) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02} UTC")
}

/// RFC 3339 in UTC, `2024-05-01T02:00:00Z`, with milliseconds when there are some
/// (`…T02:00:00.250Z`); [`parse_timestamp_ms`] reads it back.
pub fn fmt_rfc3339(ms: i64) -> String {
    let (y, mo, d, h, m, s) = civil(ms);
    match ms.rem_euclid(1000) {
        0 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
        frac => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{frac:03}Z"),
    }
}

/// (year, month, day, hour, minute, second) of Unix milliseconds, in UTC.
fn civil(ms: i64) -> (i64, i64, i64, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (y, mo, d, h, m, s)
}

/// Unix milliseconds of `s`, or `None` when it is none of the accepted forms.
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
    {
        let v: f64 = s.parse().ok()?;
        if !v.is_finite() {
            return None;
        }
        return Some(if v.abs() >= 1e11 {
            v.round() as i64
        } else {
            (v * 1000.0).round() as i64
        });
    }
    parse_datetime(s)
}

fn digits(s: &[u8], n: usize) -> Option<i64> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s[..n].iter().fold(0, |a, &b| a * 10 + (b - b'0') as i64))
}

fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(b, 4)?, digits(&b[5..], 2)?, digits(&b[8..], 2)?);
    let (h, mi, se) = (
        digits(&b[11..], 2)?,
        digits(&b[14..], 2)?,
        digits(&b[17..], 2)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut ms = 0i64;
    if let Some(b'.') = rest.first() {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let frac = &rest[1..1 + n];
        for i in 0..3 {
            ms = ms * 10 + frac.get(i).map_or(0, |c| (c - b'0') as i64);
        }
        rest = &rest[1 + n..];
    }
    let offset_min = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), hh1, hh2, b':', mm1, mm2] => {
            let hh = digits(&[*hh1, *hh2], 2)?;
            let mm = digits(&[*mm1, *mm2], 2)?;
            let v = hh * 60 + mm;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60) * 1000) + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_time(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(fmt_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn rfc3339_round_trips() {
        for ms in [0, 1_714_528_800_000, 1_714_528_800_250, 951_782_400_123] {
            assert_eq!(parse_timestamp_ms(&fmt_rfc3339(ms)), Some(ms));
        }
        assert_eq!(fmt_rfc3339(1_714_528_800_000), "2024-05-01T02:00:00Z");
        assert_eq!(fmt_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp_ms("2024-05-01T02:00:00Z"),
            Some(1_714_528_800_000)
        );
        assert_eq!(
            parse_timestamp_ms("2024-05-01 02:00:00"),
            Some(1_714_528_800_000)
        );
        assert_eq!(
            parse_timestamp_ms("2024-05-01T04:00:00.250+02:00"),
            Some(1_714_528_800_250)
        );
        assert_eq!(parse_timestamp_ms("1714528800"), Some(1_714_528_800_000));
        assert_eq!(parse_timestamp_ms("1714528800.5"), Some(1_714_528_800_500));
        assert_eq!(parse_timestamp_ms("1714528800000"), Some(1_714_528_800_000));
        assert_eq!(
            parse_timestamp_ms("2000-02-29T12:00:00Z"),
            Some(951_825_600_000)
        );
    }

    #[test]
    fn rejected_forms() {
        for s in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-05-01T02:00",
            "2024-05-01T02:00:00+2",
        ] {
            assert_eq!(parse_timestamp_ms(s), None, "{s}");
        }
    }
}
