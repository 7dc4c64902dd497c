//! CSV input for `train`, `score` and `eval`: plain or gzip (detected by its magic
//! bytes, not the file name), header optional.
//!
//! - The first line is a header when one of its fields is neither a number nor a
//!   timestamp. A header column named `timestamp` is time (see [`crate::text::time`]);
//!   every other column is a numeric feature named by its header.
//! - Without a header there is no time column and the columns are named by their
//!   0-based index (`0`, `1`, …), so causes print as column indices.
//! - An empty cell, `nan` or `NaN` is a missing value. Fields follow RFC 4180 on one
//!   line: a field in double quotes may hold commas, and `""` inside it is one quote
//!   (the daemon's own feature names, `name{label="v",...}`, need both). A quoted field
//!   spanning lines is not supported.
//! - A UTF-8 byte-order mark at the start (spreadsheets write one) is dropped.
//! - Bounded: at most [`MAX_FILE_BYTES`] on disk, [`MAX_DATA_BYTES`] once
//!   decompressed, [`MAX_LINE_BYTES`] a line, [`MAX_COLUMNS`] columns and
//!   [`MAX_VALUES`] values, each with a
//!   clear error; only regular files are read (not a FIFO or `/dev/zero`). A series
//!   streamed by `replay` ([`stream_series`]) is not held in memory, so only
//!   [`MAX_STREAM_BYTES`] bounds it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::sample::Record;
use crate::text::parse_timestamp_ms;

mod ahead;
mod check;
pub use ahead::ReadAhead;
pub use check::check_series;

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{path}: no data rows")]
    Empty { path: PathBuf },
}

/// A parsed CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Whether the file had a header line.
    pub header: bool,
    /// Feature column names (the time column excluded), in file order.
    pub columns: Vec<String>,
    pub records: Vec<Record>,
}

impl Table {
    /// Whether the rows carry times (the file has a `timestamp` column).
    pub fn timed(&self) -> bool {
        self.records.iter().any(|r| r.timestamp_ms.is_some())
    }
}

/// Largest file read, compressed or not.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Largest decompressed content (a gzip bomb stops here, not at out of memory).
pub const MAX_DATA_BYTES: u64 = 256 << 20;
/// Largest series streamed (`anomalyd replay`), on disk and decompressed: its rows are
/// not kept, so the bound is on time (a month of 1 s samples of 40 features is about
/// 1 GB of CSV), not on memory.
pub const MAX_STREAM_BYTES: u64 = 64 << 30;
/// Most values in a table (rows × columns): each costs tens of bytes in memory.
pub const MAX_VALUES: usize = 10_000_000;
/// Longest line.
pub const MAX_LINE_BYTES: usize = 16 << 20;
/// Most columns (our own history has a few hundred features).
pub const MAX_COLUMNS: usize = 10_000;

/// Open a file, transparently decompressing gzip.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, CsvError> {
    open_with(path, MAX_FILE_BYTES, MAX_DATA_BYTES)
}

/// [`open`] with other limits on the file's size and its decompressed size.
fn open_with(
    path: &Path,
    max_file: u64,
    max_data: u64,
) -> Result<Box<dyn BufRead + Send>, CsvError> {
    let io = |source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = crate::config::file::open_regular(path, max_file).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(io)?;
    let f = crate::config::file::open_regular(path, max_file).map_err(io)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            Capped {
                inner: flate2::read::MultiGzDecoder::new(f),
                left: max_data,
            },
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
    }
}

/// A reader that fails once more than `left` bytes came out of it.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("decompressed data larger than {} MiB", MAX_DATA_BYTES >> 20),
            )
        })?;
        Ok(n)
    }
}

/// The next line without its end, at most [`MAX_LINE_BYTES`] long, into `buf`;
/// `false` at the end.
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let n = reader
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {} MiB", MAX_LINE_BYTES >> 20),
        ));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(true)
}

/// Split one line into fields (RFC 4180 quoting, trimmed outside quotes).
fn split(line: &str) -> Result<Vec<String>, String> {
    if !line.contains('"') {
        // Nothing quoted (every numeric row): the same fields, without going through
        // the line a character at a time.
        return Ok(line.split(',').map(|f| f.trim().to_string()).collect());
    }
    split_quoted(line)
}

/// The fields of a line without quotes, trimmed: [`split`] without collecting them
/// (a replay splits millions of lines), and a byte loop rather than a `memchr` call
/// per field (its fields are a few bytes long).
fn comma_fields(line: &str) -> impl Iterator<Item = &str> {
    let bytes = line.as_bytes();
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        let end = bytes[from..]
            .iter()
            .position(|&b| b == b',')
            .map_or(bytes.len(), |p| from + p);
        start = (end < bytes.len()).then_some(end + 1);
        line.get(from..end).map(str::trim)
    })
}

/// [`split`] for a line with quotes.
fn split_quoted(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            while chars
                .peek()
                .is_some_and(|c| *c == ' ' || *c == '\t' || *c == '\r')
            {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim().to_string());
        }
    }
}

/// A field as CSV: quoted (with `"` doubled) when it holds a comma, a quote or a line
/// break, as is.
pub fn quote(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}

/// The row on `line` at `t` is not after the one on `pline` at `p`.
fn order_error(path: &Path, line: usize, t: i64, p: i64, pline: usize) -> CsvError {
    let what = if t == p { "repeats" } else { "is before" };
    CsvError::Parse {
        path: path.to_path_buf(),
        line,
        msg: format!(
            "timestamp {} {what} the one on line {pline} ({}): the rows must be in time \
             order, each time once",
            crate::text::fmt_time(t),
            crate::text::fmt_time(p)
        ),
    }
}

/// Whether `f` is a plain decimal number (`-12`, `3.`, `.5`, `1.5e-3`): every such
/// string parses as an `f64`, so checking a file need not work out its value. Other
/// forms (`inf`, `1_0`, junk) are left to the parser to accept or refuse.
fn plain_decimal(f: &str) -> bool {
    let b = f.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn is_missing(f: &str) -> bool {
    f.is_empty() || f.eq_ignore_ascii_case("nan")
}

/// Read a whole CSV file into records.
pub fn read_table(path: &Path) -> Result<Table, CsvError> {
    read_table_from(open(path)?, path)
}

/// The rows of a series that is played in time (`anomalyd replay`), streamed: with a
/// `timestamp` column, every row must have a time later than the row before, else
/// the error names the line (a sorted copy is one `sort` away; guessing which of
/// two rows for one instant is right is not). Bounded by [`MAX_STREAM_BYTES`], not
/// by the limits of a table held in memory.
pub fn stream_series(path: &Path) -> Result<Rows<Box<dyn BufRead + Send>>, CsvError> {
    Rows::new(
        open_with(path, MAX_STREAM_BYTES, MAX_STREAM_BYTES)?,
        path,
        true,
    )
}

/// [`read_table`] from any reader; `path` is only used in messages.
pub fn read_table_from(reader: impl BufRead, path: &Path) -> Result<Table, CsvError> {
    read(reader, path, false)
}

fn read(reader: impl BufRead, path: &Path, in_order: bool) -> Result<Table, CsvError> {
    let mut rows = Rows::new(reader, path, in_order)?;
    let mut records = Vec::new();
    let mut values = 0usize;
    let width = rows.width;
    while let Some(r) = rows.next_row()? {
        records.push(r.clone());
        values += width;
        if values > MAX_VALUES {
            return Err(rows.error(format!("more than {MAX_VALUES} values in the file")));
        }
    }
    Ok(Table {
        header: rows.header,
        columns: rows.columns,
        records,
    })
}

/// The rows of a CSV one at a time, in one [`Record`] the reader keeps and refills:
/// a replay streams files of millions of rows, which neither fit in memory as
/// records nor need a fresh name for every value of every row.
pub struct Rows<R> {
    reader: R,
    path: PathBuf,
    /// The line [`Rows::next_text`] read, checked UTF-8.
    text: String,
    /// Its commas, and whether it has a quote (found in one pass over it).
    commas: usize,
    quoted: bool,
    /// Lines read so far (the current line's number).
    line: usize,
    /// Feature column names (the time column excluded), in file order.
    pub columns: Vec<String>,
    /// Whether the file had a header line.
    pub header: bool,
    time_col: Option<usize>,
    width: usize,
    in_order: bool,
    /// (time, line) of the previous row, for `in_order`.
    previous: Option<(i64, usize)>,
    /// The first data line when the file has no header (read to find that out).
    pending: Option<Vec<String>>,
    record: Record,
    started: bool,
    /// Only check the rows ([`Rows::check_all`]): values are validated, not kept.
    checking: bool,
}

impl<R: BufRead> Rows<R> {
    /// Read up to the first row: the header (or its absence) and the column names.
    /// An empty file is an error ([`CsvError::Empty`]).
    pub fn new(reader: R, path: &Path, in_order: bool) -> Result<Rows<R>, CsvError> {
        let mut rows = Rows {
            reader,
            path: path.to_path_buf(),
            text: String::new(),
            commas: 0,
            quoted: false,
            line: 0,
            columns: Vec::new(),
            header: false,
            time_col: None,
            width: 0,
            in_order,
            previous: None,
            pending: None,
            record: Record {
                timestamp_ms: None,
                values: Vec::new(),
            },
            started: false,
            checking: false,
        };
        let Some(fields) = rows.next_fields()? else {
            return Err(CsvError::Empty {
                path: rows.path.clone(),
            });
        };
        rows.width = fields.len();
        rows.header = fields.iter().map(String::as_str).any(|f| {
            !is_missing(f) && f.parse::<f64>().is_err() && parse_timestamp_ms(f).is_none()
        });
        if rows.header {
            for (j, f) in fields.iter().enumerate() {
                if f.eq_ignore_ascii_case("timestamp") && rows.time_col.is_none() {
                    rows.time_col = Some(j);
                } else {
                    rows.columns.push(f.clone());
                }
            }
        } else {
            rows.columns = (0..rows.width).map(|j| j.to_string()).collect();
            rows.pending = Some(fields);
        }
        Ok(rows)
    }

    /// Read every row to the end, checking it as [`Rows::next_row`] would, without
    /// making its values: the first error, or the number of rows. A replay checks its
    /// whole file first, so that a bad line anywhere stops it before any row is played.
    pub fn check_all(self) -> Result<u64, CsvError> {
        self.check_ends().map(|e| e.rows)
    }

    /// [`Rows::check_all`], with the times and lines of the first and last rows.
    fn check_ends(mut self) -> Result<check::Ends, CsvError> {
        self.checking = true;
        let mut ends = check::Ends {
            rows: 0,
            first: None,
            last: None,
        };
        while let Some(r) = self.next_row()? {
            ends.rows += 1;
            let at = r.timestamp_ms.map(|t| (t, self.line));
            ends.first = ends.first.or(at);
            ends.last = at;
        }
        Ok(ends)
    }

    /// The rows of the rest of a file whose first `lines` lines (the header among them)
    /// `self` read: the same columns, lines numbered on from there.
    fn continued<S>(&self, reader: S, lines: usize) -> Rows<S> {
        Rows {
            reader,
            path: self.path.clone(),
            text: String::new(),
            commas: 0,
            quoted: false,
            line: lines,
            columns: self.columns.clone(),
            header: self.header,
            time_col: self.time_col,
            width: self.width,
            in_order: self.in_order,
            previous: None,
            pending: None,
            record: Record::default(),
            started: true,
            checking: false,
        }
    }

    /// Whether the rows carry times (the file has a `timestamp` column).
    pub fn timed(&self) -> bool {
        self.time_col.is_some()
    }

    /// The same rows, parsed on a thread of their own a batch ahead ([`ReadAhead`]).
    pub fn read_ahead(self) -> Result<ReadAhead, CsvError>
    where
        R: Send + 'static,
    {
        let path = self.path.clone();
        ReadAhead::start(self).map_err(|source| CsvError::Io { path, source })
    }

    fn error(&self, msg: String) -> CsvError {
        CsvError::Parse {
            path: self.path.clone(),
            line: self.line,
            msg,
        }
    }

    /// The next non-blank line, split (the header's and a quoted line's fields).
    fn next_fields(&mut self) -> Result<Option<Vec<String>>, CsvError> {
        if !self.next_text()? {
            return Ok(None);
        }
        split(&self.text).map(Some).map_err(|msg| self.error(msg))
    }

    /// Read the next non-blank line into `text`, checked; `false` at the end.
    fn next_text(&mut self) -> Result<bool, CsvError> {
        loop {
            let mut buf = std::mem::take(&mut self.text).into_bytes();
            let more = next_line(&mut self.reader, &mut buf).map_err(|source| CsvError::Io {
                path: self.path.clone(),
                source,
            })?;
            if !more {
                return Ok(false);
            }
            self.line += 1;
            if self.line == 1 && buf.starts_with("\u{feff}".as_bytes()) {
                buf.drain(..3);
            }
            self.text = String::from_utf8(buf).map_err(|_| CsvError::Io {
                path: self.path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"),
            })?;
            if self.text.trim().is_empty() {
                continue;
            }
            // Counted before splitting: a line of 2.6 M commas must not become 2.6 M
            // strings first.
            (self.commas, self.quoted) = (0, false);
            for b in self.text.bytes() {
                self.commas += usize::from(b == b',');
                self.quoted |= b == b'"';
            }
            if self.commas >= MAX_COLUMNS {
                let n = self.commas + 1;
                return Err(self.error(format!("{n} columns, at most {MAX_COLUMNS}")));
            }
            return Ok(true);
        }
    }

    /// The next row, `None` after the last. The record is the reader's: the next call
    /// overwrites it (clone it to keep it).
    pub fn next_row(&mut self) -> Result<Option<&mut Record>, CsvError> {
        let result = if let Some(fields) = self.pending.take() {
            self.fill(fields.iter().map(String::as_str), fields.len())
        } else if !self.next_text()? {
            if !self.started {
                return Err(CsvError::Empty {
                    path: self.path.clone(),
                });
            }
            return Ok(None);
        } else {
            let line = std::mem::take(&mut self.text);
            let r = if self.quoted {
                match split_quoted(&line) {
                    Ok(f) => self.fill(f.iter().map(String::as_str), f.len()),
                    Err(msg) => Err(self.error(msg)),
                }
            } else {
                self.fill(comma_fields(&line), self.commas + 1)
            };
            self.text = line;
            r
        };
        result?;
        self.started = true;
        Ok(Some(&mut self.record))
    }

    /// Parse one row's `n` fields into the kept record, reusing its names where the
    /// row has the same columns as the one before (every row of a full table).
    fn fill<'a>(
        &mut self,
        fields: impl Iterator<Item = &'a str>,
        n: usize,
    ) -> Result<(), CsvError> {
        if n != self.width {
            return Err(self.error(format!("{n} fields, expected {}", self.width)));
        }
        let rec = &mut self.record;
        rec.timestamp_ms = None;
        let (mut c, mut k) = (0, 0);
        for (j, f) in fields.enumerate() {
            if Some(j) == self.time_col {
                if !is_missing(f) {
                    match parse_timestamp_ms(f) {
                        Some(t) => rec.timestamp_ms = Some(t),
                        None => {
                            let msg = format!("bad timestamp {f:?}");
                            return Err(self.error(msg));
                        }
                    }
                }
                continue;
            }
            if !is_missing(f) {
                let v = if self.checking && plain_decimal(f) {
                    0.0
                } else if let Ok(v) = f.parse::<f64>() {
                    v
                } else {
                    let msg = format!("column {:?}: not a number: {f:?}", self.columns[c]);
                    return Err(self.error(msg));
                };
                if !self.checking {
                    rec.set_at(k, &self.columns[c], v);
                    k += 1;
                }
            }
            c += 1;
        }
        rec.values.truncate(k);
        if self.in_order && self.time_col.is_some() {
            let Some(t) = rec.timestamp_ms else {
                return Err(self.error("no timestamp".into()));
            };
            if let Some((p, pline)) = self.previous.filter(|(p, _)| t <= *p) {
                return Err(order_error(&self.path, self.line, t, p, pline));
            }
            self.previous = Some((t, self.line));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_lines_split_as_the_quoting_parser_does() {
        for line in [
            "",
            ",",
            "a,",
            " a , b\t,\tc ",
            "2026-01-01 00:00:00,1.5,NaN,,-3e-7\r",
            "1, 2 ,3\u{a0},x y",
        ] {
            assert_eq!(split(line), split_quoted(line), "{line:?}");
        }
        // Quoted lines take the full parser.
        assert_eq!(split("\"a,b\", c").expect("parses"), ["a,b", "c"]);
        for line in ["", ",", "a,", ",a", " a , b\t,\tc ", "1,,2", "x"] {
            let fields: Vec<String> = comma_fields(line).map(String::from).collect();
            assert_eq!(split(line).expect("plain"), fields, "{line:?}");
        }
    }

    /// Issue #18: a BOM made `\u{feff}timestamp` a feature and time was ignored.
    #[test]
    fn a_byte_order_mark_is_dropped() {
        let t = read("\u{feff}timestamp,cpu\n1714528800,1\n").expect("parses");
        assert_eq!(t.columns, ["cpu"]);
        assert_eq!(t.records[0].timestamp_ms, Some(1_714_528_800_000));
    }

    /// Issue #18: a 10 MB line of 2.6 M columns ran for minutes, a 4 MB gzip bomb grew
    /// past 2 GB and /dev/zero or a FIFO was read forever.
    #[test]
    fn columns_lines_decompressed_size_and_file_kinds_are_bounded() {
        let wide = format!("{}\n", vec!["1"; 2_600_000].join(","));
        let e = read(&wide).expect_err("too wide").to_string();
        assert!(e.contains("2600000 columns, at most 10000"), "{e}");
        let long = "1".repeat(MAX_LINE_BYTES + 10);
        let e = read(&long).expect_err("too long").to_string();
        assert!(e.contains("a line longer than"), "{e}");
        assert!(
            read("a,b\n\u{feff}1,2\n").is_err(),
            "a BOM is only dropped at the start"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("bomb.gz");
        {
            use std::io::Write;
            let f = std::fs::File::create(&p).expect("create");
            let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::best());
            let rows = b"1,2\n".repeat(1 << 18);
            for _ in 0..(MAX_DATA_BYTES >> 20) + 1 {
                gz.write_all(&rows).expect("gz");
            }
            gz.finish().expect("gz");
        }
        let t = std::time::Instant::now();
        let e = read_table(&p).expect_err("bomb").to_string();
        assert!(e.contains("more than 10000000 values"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(60));
        let mut capped = Capped {
            inner: std::io::repeat(b'\n'),
            left: 1000,
        };
        let e = std::io::copy(&mut capped, &mut std::io::sink()).expect_err("cap");
        assert!(
            e.to_string().contains("decompressed data larger than"),
            "{e}"
        );
        let e = read_table(Path::new("/dev/zero"))
            .expect_err("device")
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    fn read(text: &str) -> Result<Table, CsvError> {
        read_table_from(text.as_bytes(), Path::new("t.csv"))
    }

    #[test]
    fn header_with_timestamp() {
        let t = read("timestamp,cpu,\"disk\"\n2024-05-01T02:00:00Z,1.5,\n1714528860,2,3\n")
            .expect("parses");
        assert!(t.header);
        assert_eq!(t.columns, ["cpu", "disk"]);
        assert_eq!(t.records[0].timestamp_ms, Some(1_714_528_800_000));
        assert_eq!(t.records[0].values, vec![("cpu".to_string(), 1.5)]);
        assert_eq!(t.records[1].values.len(), 2);
    }

    #[test]
    fn headerless_columns_are_indices() {
        let t = read("0.1,0.2\n0.3,nan\n").expect("parses");
        assert!(!t.header);
        assert_eq!(t.columns, ["0", "1"]);
        assert_eq!(t.records[1].values, vec![("0".to_string(), 0.3)]);
        assert_eq!(t.records[1].timestamp_ms, None);
    }

    #[test]
    fn errors_name_the_line() {
        let e = read("a,b\n1,2\n1,x\n").expect_err("bad");
        assert!(e.to_string().contains("t.csv:3"), "{e}");
        let e = read("a,b\n1\n").expect_err("bad");
        assert!(e.to_string().contains("1 fields, expected 2"), "{e}");
        assert!(matches!(read("a,b\n"), Err(CsvError::Empty { .. })));
    }

    #[test]
    fn quoted_fields_hold_commas_and_quotes() {
        let name = r#"filesystem_used_ratio{mountpoint="/",device="/dev/vda1"}"#;
        let text = format!("timestamp, {} ,\"a\"\n1714528860,0.5, 7\n", quote(name));
        let t = read(&text).expect("parses");
        assert_eq!(t.columns, [name, "a"]);
        assert_eq!(
            t.records[0].values,
            vec![(name.to_string(), 0.5), ("a".to_string(), 7.0)]
        );
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        let e = read("\"a,b\n1\n").expect_err("unterminated");
        assert!(e.to_string().contains("t.csv:1: unterminated"), "{e}");
        let e = read("\"a\"x,b\n1,2\n").expect_err("junk after quote");
        assert!(e.to_string().contains("after a quoted field"), "{e}");
    }

    /// A plain decimal always parses; what is not one is for the parser to judge.
    #[test]
    fn plain_decimals_parse() {
        for f in [
            "0", "-12", "+3", "3.", ".5", "1.5e-3", "2E+10", "007", "1e400", "-0.0",
        ] {
            assert!(plain_decimal(f), "{f}");
            assert!(f.parse::<f64>().is_ok(), "{f}");
        }
        for f in [
            "", ".", "-", "e5", "1e", "1e+", "1.2.3", "--1", "1-", "inf", "0x10", "1 2",
        ] {
            assert!(!plain_decimal(f), "{f}");
        }
        // A file checked and a file read agree on what is a number.
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.csv");
        for (text, ok) in [("a\n1.5\ninf\n-2e3\n", true), ("a\n1.5\n1.2.3\n", false)] {
            std::fs::write(&p, text).expect("write");
            let checked = stream_series(&p).and_then(Rows::check_all);
            assert_eq!(checked.is_ok(), ok, "{text}");
            assert_eq!(read_table(&p).is_ok(), ok, "{text}");
            if ok {
                assert_eq!(checked.ok(), Some(3));
            }
        }
    }

    /// Streamed rows are the table's rows, whatever each row leaves out or quotes.
    #[test]
    fn streamed_rows_are_the_tables_rows() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("s.csv");
        for text in [
            "timestamp,a,\"b,c\",d\n100,1,2,3\n160,,2,\n220,NaN,\"5\",6\n280,7,8,9\n",
            "1,2\n3,\n,4\n5,6\n",
        ] {
            std::fs::write(&p, text).expect("write");
            let table = read_table(&p).expect("table");
            let mut rows = stream_series(&p).expect("stream");
            assert_eq!(rows.columns, table.columns);
            let mut streamed = Vec::new();
            while let Some(r) = rows.next_row().expect("row") {
                streamed.push(r.clone());
            }
            assert_eq!(streamed, table.records, "{text}");
        }
    }

    #[test]
    fn a_series_must_be_in_time_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("s.csv");
        let series = |text: &str| {
            std::fs::write(&p, text).expect("write");
            let mut rows = stream_series(&p)?;
            let timed = rows.timed();
            while rows.next_row()?.is_some() {}
            Ok::<bool, CsvError>(timed)
        };
        assert!(series("timestamp,a\n100,1\n\n160,2\n").expect("in order"));
        let e = series("timestamp,a\n100,1\n160,2\n130,3\n").expect_err("unsorted");
        assert!(
            e.to_string().ends_with(
                "s.csv:4: timestamp 1970-01-01 00:02:10 UTC is before the one on line 3 \
                 (1970-01-01 00:02:40 UTC): the rows must be in time order, each time once"
            ),
            "{e}"
        );
        let e = series("timestamp,a\n100,1\n\n100,2\n").expect_err("repeated");
        assert!(e.to_string().contains("s.csv:4: timestamp"), "{e}");
        assert!(e.to_string().contains("repeats the one on line 2"), "{e}");
        let e = series("timestamp,a\n100,1\n,2\n").expect_err("missing");
        assert!(e.to_string().contains("s.csv:3: no timestamp"), "{e}");
        // Without a time column there is no order to check; plain tables are lenient.
        assert!(!series("a\n1\n1\n").expect("no time"));
        assert!(read_table(&p).is_ok());
        std::fs::write(&p, "timestamp,a\n100,1\n100,2\n").expect("write");
        assert!(read_table(&p).is_ok());
    }

    #[test]
    fn gzip_detected_by_magic() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("x.data");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"1,2\n3,4\n").expect("gz");
        std::fs::write(&p, gz.finish().expect("gz")).expect("write");
        let t = read_table(&p).expect("reads");
        assert_eq!(t.records.len(), 2);
    }
}
