//! Which wall clock the time-of-day bins follow.
//!
//! Nightly jobs are scheduled in local time (cron, systemd timers), so a model learns
//! its bins on the host's local wall clock: a backup at 02:00 stays in the 02:00 bin
//! across a daylight-saving change, where a UTC bin would move by an hour twice a year
//! and the backup would look like an anomaly for a week or more. Model files from
//! before this recorded no clock and binned in UTC; they still do ([`Clock::Utc`] is
//! the serde default).
//!
//! The local offset comes from the C library (`localtime_r`, `tm_gmtoff`), which reads
//! the zone (`TZ`, else `/etc/localtime`) once per process: a daemon picks up a changed
//! host time zone when it restarts.

use serde::{Deserialize, Serialize};

const MS_PER_DAY: i64 = 86_400_000;

/// The clock a model's time-of-day bins are measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// Coordinated Universal Time: what models trained before `local` existed used.
    #[default]
    Utc,
    /// The host's local wall clock, daylight saving included.
    Local,
}

impl Clock {
    /// This clock's offset from UTC at `ts_ms` (Unix ms), in seconds.
    pub fn offset_s(self, ts_ms: i64) -> i64 {
        match self {
            Clock::Utc => 0,
            Clock::Local => local_offset_s(ts_ms),
        }
    }

    /// Time-of-day bin of `ts_ms` on this clock, `bins` equal bins per day.
    pub fn day_bin(self, ts_ms: i64, bins: usize) -> usize {
        day_bin_at(ts_ms, self.offset_s(ts_ms), bins)
    }
}

/// Time-of-day bin of `ts_ms` (Unix ms) on a clock `offset_s` seconds ahead of UTC,
/// `bins` equal bins per day. Pure, so the bins are testable for any zone.
pub fn day_bin_at(ts_ms: i64, offset_s: i64, bins: usize) -> usize {
    let wall = ts_ms.saturating_add(offset_s.saturating_mul(1000));
    let in_day = wall.rem_euclid(MS_PER_DAY);
    ((in_day as i128 * bins as i128) / MS_PER_DAY as i128) as usize
}

/// The host's UTC offset at `ts_ms`, in seconds (east positive), daylight saving
/// included. 0 (UTC) when the C library cannot convert the time.
pub fn local_offset_s(ts_ms: i64) -> i64 {
    let t = ts_ms.div_euclid(1000) as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: `localtime_r` is the thread-safe variant: it writes only into the
    // `tm` we own (zeroed, so valid even if it fails) and reads `t`.
    let ok = !unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) }.is_null();
    if !ok {
        return 0;
    }
    // SAFETY: zero-initialised above and filled by a successful call.
    let tm = unsafe { tm.assume_init() };
    // `c_long` is i64 here but i32 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let offset = i64::from(tm.tm_gmtoff);
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_bins() {
        assert_eq!(Clock::Utc.day_bin(0, 48), 0);
        assert_eq!(Clock::Utc.day_bin(MS_PER_DAY - 1, 48), 47);
        assert_eq!(Clock::Utc.day_bin(2 * 3_600_000 + 15 * 60_000, 48), 4);
        assert_eq!(Clock::Utc.day_bin(-1, 24), 23);
    }

    #[test]
    fn offset_moves_the_bin() {
        // 07:00 UTC is 02:00 at UTC-5 (New York in winter), 03:00 at UTC-4 (summer).
        let seven = 7 * 3_600_000;
        assert_eq!(day_bin_at(seven, -5 * 3600, 48), 4);
        assert_eq!(day_bin_at(seven, -4 * 3600, 48), 6);
        // East of UTC, across midnight: 23:30 UTC at +05:30 is 05:00 the next day.
        assert_eq!(day_bin_at(23 * 3_600_000 + 1_800_000, 19_800, 24), 5);
        // Before the epoch, still the floor of the day.
        assert_eq!(day_bin_at(-1, 3600, 24), 0);
        assert_eq!(day_bin_at(-1, 0, 24), 23);
    }

    #[test]
    fn serde_names_and_default() {
        assert_eq!(
            serde_json::to_string(&Clock::Local).expect("json"),
            "\"local\""
        );
        let c: Clock = serde_json::from_str("\"utc\"").expect("json");
        assert_eq!(c, Clock::Utc);
        assert_eq!(Clock::default(), Clock::Utc);
        assert!(serde_json::from_str::<Clock>("\"gmt\"").is_err());
    }

    /// Known dates around New York's 2024 daylight-saving changes (10 March, 3
    /// November), checked in a child process started with `TZ=America/New_York`:
    /// setting `TZ` in this (multi-threaded) test process would be unsafe.
    const ZONE_CHILD: &str = "ANOMALYD_TEST_ZONE_CHILD";

    #[test]
    fn local_bins_follow_daylight_saving_in_a_real_zone() {
        assert!(
            std::path::Path::new("/usr/share/zoneinfo/America/New_York").exists(),
            "tzdata (America/New_York) is needed for this test"
        );
        crate::child_test::run(
            "model::clock::tests::new_york_child",
            &[("TZ", "America/New_York"), (ZONE_CHILD, "1")],
            "new-york-ok",
        );
    }

    /// Run only as the child of the test above (it is `#[ignore]`d, and does nothing
    /// without the marker variable).
    #[test]
    #[ignore = "run by local_bins_follow_daylight_saving_in_a_real_zone with TZ set"]
    fn new_york_child() {
        if std::env::var_os(ZONE_CHILD).is_none() {
            return;
        }
        // 02:00 local on the Saturday before and the Monday after each change.
        let winter_sat = 1_709_967_600_000; // 2024-03-09T07:00Z = 02:00 EST
        let summer_mon = 1_710_136_800_000; // 2024-03-11T06:00Z = 02:00 EDT
        let summer_sat = 1_730_527_200_000; // 2024-11-02T06:00Z = 02:00 EDT
        let winter_mon = 1_730_703_600_000; // 2024-11-04T07:00Z = 02:00 EST
        assert_eq!(local_offset_s(winter_sat), -5 * 3600);
        assert_eq!(local_offset_s(summer_mon), -4 * 3600);
        assert_eq!(local_offset_s(summer_sat), -4 * 3600);
        assert_eq!(local_offset_s(winter_mon), -5 * 3600);
        for ts in [winter_sat, summer_mon, summer_sat, winter_mon] {
            assert_eq!(Clock::Local.day_bin(ts, 48), 4, "02:00 local at {ts}");
        }
        // In UTC the same job moves by an hour (two half-hour bins).
        assert_eq!(Clock::Utc.day_bin(winter_sat, 48), 14);
        assert_eq!(Clock::Utc.day_bin(summer_mon, 48), 12);
        println!("new-york-ok");
    }
}
