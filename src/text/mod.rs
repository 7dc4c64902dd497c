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

/// An error and its causes on one line, `a: b: c`, leaving out a cause whose text the
/// message before already holds (many of our errors quote their source, and printing
/// the chain repeated it: "…valid UTF-8: …valid UTF-8").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    /// Issue #18: the cause of "cannot commit append" was not logged, and a CSV's
    /// "valid UTF-8" came out twice.
    #[test]
    fn error_chain_shows_each_cause_once() {
        #[derive(Debug)]
        struct Wrap(&'static str, std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.1)
            }
        }
        let full = std::io::Error::other("No space left on device");
        assert_eq!(
            super::error_chain(&Wrap("cannot commit append", full)),
            "cannot commit append: No space left on device"
        );
        let quoted = Wrap(
            "cannot read x: not valid UTF-8",
            std::io::Error::other("not valid UTF-8"),
        );
        assert_eq!(
            super::error_chain(&quoted),
            "cannot read x: not valid UTF-8"
        );
    }

    #[test]
    fn keeps_plain_characters_only() {
        assert_eq!(super::plain("INC-1_a.b"), "INC-1_a.b");
        assert_eq!(super::plain("../x y/é"), ".._x_y__");
    }
}
