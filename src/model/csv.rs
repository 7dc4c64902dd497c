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

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::sample::Record;
use crate::text::parse_timestamp_ms;

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

/// Open a file, transparently decompressing gzip.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>, CsvError> {
    let io = |source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(io)?;
    let f = File::open(path).map_err(io)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            f,
        ))))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
    }
}

/// Split one line into fields (RFC 4180 quoting, trimmed outside quotes).
fn split(line: &str) -> Result<Vec<String>, String> {
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

fn is_missing(f: &str) -> bool {
    f.is_empty() || f.eq_ignore_ascii_case("nan")
}

/// Read a whole CSV file into records.
pub fn read_table(path: &Path) -> Result<Table, CsvError> {
    read_table_from(open(path)?, path)
}

/// [`read_table`] from any reader; `path` is only used in messages.
pub fn read_table_from(reader: impl BufRead, path: &Path) -> Result<Table, CsvError> {
    let perr = |line: usize, msg: String| CsvError::Parse {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let lines = reader.lines().enumerate();
    let mut columns: Vec<String> = Vec::new();
    let mut time_col: Option<usize> = None;
    let mut header = false;
    let mut width = 0usize;
    let mut records = Vec::new();
    let mut first = true;
    for (i, line) in lines {
        let line = line.map_err(|source| CsvError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields = split(&line).map_err(|msg| perr(lineno, msg))?;
        if first {
            first = false;
            width = fields.len();
            header = fields.iter().map(String::as_str).any(|f| {
                !is_missing(f) && f.parse::<f64>().is_err() && parse_timestamp_ms(f).is_none()
            });
            if header {
                for (j, f) in fields.iter().enumerate() {
                    if f.eq_ignore_ascii_case("timestamp") && time_col.is_none() {
                        time_col = Some(j);
                    } else {
                        columns.push(f.clone());
                    }
                }
                continue;
            }
            columns = (0..width).map(|j| j.to_string()).collect();
        }
        if fields.len() != width {
            return Err(perr(
                lineno,
                format!("{} fields, expected {width}", fields.len()),
            ));
        }
        let mut rec = Record {
            timestamp_ms: None,
            values: Vec::with_capacity(columns.len()),
        };
        let mut c = 0;
        for (j, f) in fields.iter().map(String::as_str).enumerate() {
            if Some(j) == time_col {
                if !is_missing(f) {
                    rec.timestamp_ms = Some(
                        parse_timestamp_ms(f)
                            .ok_or_else(|| perr(lineno, format!("bad timestamp {f:?}")))?,
                    );
                }
                continue;
            }
            if !is_missing(f) {
                let v: f64 = f.parse().map_err(|_| {
                    perr(
                        lineno,
                        format!("column {:?}: not a number: {f:?}", columns[c]),
                    )
                })?;
                rec.values.push((columns[c].clone(), v));
            }
            c += 1;
        }
        records.push(rec);
    }
    if records.is_empty() {
        return Err(CsvError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Table {
        header,
        columns,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
