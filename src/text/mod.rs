//! Text, in and out, for every layer: durations ([`duration`]), metric values with or
//! without their unit ([`value`]), times ([`time`]), and [`plain`] for ids put where
//! only plain characters are safe (file names, mail headers). A leaf: it imports
//! nothing of ours, so any module can use it.

pub mod duration;
pub mod time;
pub mod value;

pub use duration::{fmt_duration, fmt_duration_ms};
pub use time::{fmt_rfc3339, fmt_time, parse_timestamp_ms};
pub use value::{fmt_quantity, fmt_value};

/// `s` with every character but ASCII letters, digits, '-', '_' and '.' replaced by '_'.
pub fn plain(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_plain_characters_only() {
        assert_eq!(super::plain("INC-1_a.b"), "INC-1_a.b");
        assert_eq!(super::plain("../x y/é"), ".._x_y__");
    }
}
