//! Durations as text: the config's own spelling (`5m`, `90s`), for messages that quote
//! a setting back, and the human one (`2 h 05 min`) for reports, tickets and tables.

use std::time::Duration;

/// The config spelling, in the largest unit that divides `d`: `5m`, `36h`, `250ms`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        _ if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1000 == 0 => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// "2 h 05 min", "12 min", "40 s".
pub fn fmt_duration_ms(ms: i64) -> String {
    let s = (ms.max(0) + 500) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{s} s")
    }
}
