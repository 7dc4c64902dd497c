//! Text helpers shared by modules that put our ids where only plain characters are
//! safe (file names, mail headers).

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
