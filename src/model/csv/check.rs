//! Checking a whole series before a replay plays any of it, on both cores: a plain
//! file of more than [`SPLIT_BYTES`] is checked as two halves at once (the second half
//! told how many lines the first has, so that every error names its real line), and
//! the seam between them is checked last. A gzip file can only be read from the
//! start, so it is checked in one pass.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::{CsvError, Rows, MAX_STREAM_BYTES};

/// Smaller files are checked in one pass: a thread costs more than it saves.
const SPLIT_BYTES: u64 = 64 << 20;

/// The rows of `path`, every one checked as a replay reads them ([`Rows::check_all`]);
/// the first error in the file if there is one.
pub fn check_series(path: &Path) -> Result<u64, CsvError> {
    check_split(path, SPLIT_BYTES)
}

/// [`check_series`], splitting files of `split_bytes` or more.
fn check_split(path: &Path, split_bytes: u64) -> Result<u64, CsvError> {
    let io = |source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    };
    let whole = || super::stream_series(path)?.check_all();
    let mut f = crate::config::file::open_regular(path, MAX_STREAM_BYTES).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut magic = [0u8; 2];
    let gzip = f.read(&mut magic).map_err(io)? == 2 && magic == [0x1f, 0x8b];
    if gzip || size < split_bytes {
        return whole();
    }
    // The second half starts after the first line end past the middle.
    f.seek(SeekFrom::Start(size / 2)).map_err(io)?;
    let mut reader = BufReader::new(f);
    let mut skipped = Vec::new();
    reader.read_until(b'\n', &mut skipped).map_err(io)?;
    let mid = size / 2 + skipped.len() as u64;
    if mid >= size {
        return whole();
    }
    // Lines in the first half, so the second numbers its own from there.
    let open = || crate::config::file::open_regular(path, MAX_STREAM_BYTES).map_err(io);
    let mut counting = BufReader::with_capacity(1 << 16, open()?.take(mid));
    let mut lines = 0usize;
    loop {
        let buf = counting.fill_buf().map_err(io)?;
        if buf.is_empty() {
            break;
        }
        lines += buf.iter().filter(|b| **b == b'\n').count();
        let n = buf.len();
        counting.consume(n);
    }
    let head = Rows::new(
        BufReader::with_capacity(1 << 16, open()?.take(mid)),
        path,
        true,
    )?;
    let mut rest = open()?;
    rest.seek(SeekFrom::Start(mid)).map_err(io)?;
    let tail = head.continued(BufReader::with_capacity(1 << 16, rest), lines);
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(move || tail.check_ends());
        (head.check_ends(), second.join())
    });
    // An error in the first half is the file's first; one in the second half may come
    // after an error at the seam, so the file is read again in one pass to find it.
    let first = first?;
    let Ok(Ok(second)) = second else {
        return whole();
    };
    if let (Some((t1, l1)), Some((t2, l2))) = (first.last, second.first) {
        if t2 <= t1 {
            return Err(super::order_error(path, l2, t2, t1, l1));
        }
    }
    Ok(first.rows + second.rows)
}

/// What a checked part of a file holds at its ends.
pub(super) struct Ends {
    pub rows: u64,
    /// (time, line) of its first and last rows, when timed.
    pub first: Option<(i64, usize)>,
    pub last: Option<(i64, usize)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split or not, a file checks the same: the same row count, or the same first
    /// error with the same line numbers, wherever it is (first half, second half, at
    /// the seam, an order error across the seam, blank lines about the middle).
    #[test]
    fn a_split_check_finds_what_one_pass_finds() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("s.csv");
        let rows = |n: usize| -> Vec<String> {
            (0..n)
                .map(|i| format!("{},{}.5,{}", 1000 + i * 60, i, i % 7))
                .collect()
        };
        let mut cases: Vec<Vec<String>> = Vec::new();
        cases.push(rows(40));
        for at in [3, 19, 20, 21, 35] {
            let mut r = rows(40);
            r[at] = format!("{},x,1", 1000 + at * 60);
            cases.push(r.clone());
            let mut r = rows(40);
            r[at] = format!("{},1,2", 1000 + (at - 2) * 60); // out of order
            cases.push(r);
            let mut r = rows(40);
            r.insert(at, String::new());
            r.insert(at, "  ".into());
            cases.push(r);
        }
        let mut r = rows(40);
        r[20] = "1,2".into(); // too few fields
        r[30] = "junk,1,2".into();
        cases.push(r);
        for case in cases {
            let text = format!("timestamp,a,b\n{}\n", case.join("\n"));
            std::fs::write(&p, &text).expect("write");
            let one = super::super::stream_series(&p).and_then(Rows::check_all);
            let split = check_split(&p, 0);
            assert_eq!(
                one.as_ref().map_err(ToString::to_string),
                split.as_ref().map_err(ToString::to_string),
                "{text}"
            );
        }
    }
}
