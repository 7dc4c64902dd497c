//! The two encodings of the history store.
//!
//! **Blocks** (schema 2, `value_encoding` 2): what the store writes. A block holds the
//! rows of one tier over a time range, column by column:
//!
//! ```text
//! block     = u8(BLOCK_FORMAT) varint(rows) timestamps varint(series) column*
//! timestamps: zigzag varints: the first timestamp, the first delta, then the
//!             delta of each delta (0 for a steady interval: one byte a row)
//! column    = varint(feature_id) u8(presence | encoding << 1) [bitmap] varint(len) payload
//! presence  : 0 = a value in every row; 1 = a bitmap (bit i = row i has a value)
//! encoding  : 0 plain (f64 LE each), 1 constant (one f64 LE for every value),
//!             2 pco (a pcodec "wrapped" header, chunk meta and one page)
//! ```
//!
//! Values keep their exact bits (NaN payloads, -0.0, ±Inf). Each column carries its
//! length, so one feature is read without decoding the others. pco (pcodec) does the
//! numeric work: it finds what a column has in common (a multiplier, like the integers
//! of a byte counter; a delta order, like a counter's slope) and entropy-codes the rest,
//! which beats a Gorilla XOR on the host's noisy ratios and rates (see the README's
//! "Choices"). A column whose values are all the same (an idle error counter, a
//! filesystem's size) is stored once; a tiny column (the minute tier's one-row blocks)
//! is stored plain when pco's metadata would be larger than the values.
//!
//! **Rows** (schema 1, `value_encoding` 1): how the first store kept one sample per
//! SQLite row. Read only to migrate such a file:
//!
//! ```text
//! entry   = varint(key) payload
//! key     = feature_id << 1 | tag          (feature_id from the `names` table)
//! tag 0   : payload = f64, 8 bytes little-endian (the exact bits: NaN and -0.0 survive)
//! tag 1   : payload = varint(zigzag(i))     (value is an integer i with |i| < 2^53)
//! varint  = unsigned LEB128, at most 10 bytes
//! ```

// Writing schema 1 rows is only needed to test the migration.
/// Largest magnitude stored as an integer: beyond 2^53 not every integer is an f64, and
/// the varint would be no shorter than the 8 raw bytes anyway.
#[cfg(test)]
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

#[cfg(test)]
const TAG_F64: u64 = 0;
const TAG_INT: u64 = 1;

/// Why a row could not be decoded; the store wraps it with the row's timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("row ends inside an entry at byte {0}")]
    Truncated(usize),
    #[error("varint longer than 10 bytes at byte {0}")]
    VarintOverflow(usize),
    #[error("feature id {0} out of range")]
    BadId(u64),
    #[error("block: {0}")]
    Block(String),
}

/// Append one `(feature id, value)` entry to `out`.
#[cfg(test)]
pub fn push(out: &mut Vec<u8>, id: u32, value: f64) {
    let key = u64::from(id) << 1;
    match as_int(value) {
        Some(i) => {
            put_varint(out, key | TAG_INT);
            put_varint(out, zigzag(i));
        }
        None => {
            put_varint(out, key | TAG_F64);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Every `(feature id, value)` entry of a row, in order.
pub fn decode(data: &[u8]) -> Entries<'_> {
    Entries { data, pos: 0 }
}

pub struct Entries<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Iterator for Entries<'_> {
    type Item = Result<(u32, f64), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.data.len() {
            return None;
        }
        let entry = self.entry();
        if entry.is_err() {
            // Stop after the first error: the rest of the row has no reliable framing.
            self.pos = self.data.len();
        }
        Some(entry)
    }
}

impl Entries<'_> {
    fn entry(&mut self) -> Result<(u32, f64), DecodeError> {
        let key = self.varint()?;
        let id = u32::try_from(key >> 1).map_err(|_| DecodeError::BadId(key >> 1))?;
        let value = if key & 1 == TAG_INT {
            unzigzag(self.varint()?) as f64
        } else {
            let end = self.pos + 8;
            let bytes: [u8; 8] = self
                .data
                .get(self.pos..end)
                .and_then(|b| b.try_into().ok())
                .ok_or(DecodeError::Truncated(self.pos))?;
            self.pos = end;
            f64::from_le_bytes(bytes)
        };
        Ok((id, value))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .data
                .get(self.pos)
                .ok_or(DecodeError::Truncated(start))?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow(start))
    }
}

#[cfg(test)]
fn as_int(v: f64) -> Option<i64> {
    // -0.0 == 0.0, but storing it as integer 0 would lose the sign; NaN fails `==`.
    if v.abs() < MAX_EXACT_INT && v.fract() == 0.0 && !(v == 0.0 && v.is_sign_negative()) {
        Some(v as i64)
    } else {
        None
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Version of the block layout, its first byte.
const BLOCK_FORMAT: u8 = 1;
const PRESENT_ALL: u8 = 0;
const PRESENT_BITMAP: u8 = 1;
const ENC_PLAIN: u8 = 0;
const ENC_CONST: u8 = 1;
const ENC_PCO: u8 = 2;
/// Below this many values pco's metadata outweighs what it saves.
const PCO_MIN_VALUES: usize = 4;
/// pco's level 8 (its default) gains a few percent over lower levels for twice the CPU;
/// a live block is compressed once a minute, so the bytes win.
const PCO_LEVEL: usize = pco::DEFAULT_COMPRESSION_LEVEL;

/// One feature's values in a block being written: `rows[i]` is the row (index into the
/// block's timestamps) of `values[i]`, increasing.
#[derive(Debug, Clone, Copy)]
pub struct ColumnIn<'a> {
    pub id: u32,
    pub rows: &'a [u32],
    pub values: &'a [f64],
}

/// One feature's values in a decoded block.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnOut {
    pub id: u32,
    /// The rows that have a value, increasing; `None` when every row has one.
    pub rows: Option<Vec<u32>>,
    pub values: Vec<f64>,
}

impl ColumnOut {
    /// The value of row `row`, if it has one.
    pub fn value_at(&self, row: u32) -> Option<f64> {
        match &self.rows {
            None => self.values.get(row as usize).copied(),
            Some(rows) => rows
                .binary_search(&row)
                .ok()
                .and_then(|i| self.values.get(i).copied()),
        }
    }
}

/// A decoded block.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlockOut {
    pub ts: Vec<i64>,
    pub columns: Vec<ColumnOut>,
}

/// Encode a block. `compress: false` stores every column plain (or constant): what a
/// replay's scratch store does, where the block is read back once and thrown away, and
/// pco's CPU would be most of the replay's time.
pub fn encode_block(ts: &[i64], columns: &[ColumnIn<'_>], compress: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + ts.len() * 2 + columns.len() * 16);
    out.push(BLOCK_FORMAT);
    put_varint(&mut out, ts.len() as u64);
    let (mut prev, mut prev_delta) = (0i64, 0i64);
    for (i, &t) in ts.iter().enumerate() {
        // Wrapping arithmetic: any i64 round-trips, however far apart.
        let v = match i {
            0 => t,
            1 => t.wrapping_sub(prev),
            _ => t.wrapping_sub(prev).wrapping_sub(prev_delta),
        };
        if i > 0 {
            prev_delta = t.wrapping_sub(prev);
        }
        prev = t;
        put_varint(&mut out, zigzag(v));
    }
    put_varint(&mut out, columns.len() as u64);
    let mut payload = Vec::new();
    for c in columns {
        put_varint(&mut out, u64::from(c.id));
        let all = c.rows.len() == ts.len();
        let enc = encode_values(c.values, compress, &mut payload);
        out.push(if all { PRESENT_ALL } else { PRESENT_BITMAP } | enc << 1);
        if !all {
            let mut bitmap = vec![0u8; ts.len().div_ceil(8)];
            for &r in c.rows {
                bitmap[r as usize / 8] |= 1 << (r % 8);
            }
            out.extend_from_slice(&bitmap);
        }
        put_varint(&mut out, payload.len() as u64);
        out.extend_from_slice(&payload);
    }
    out
}

/// Write `values` into `payload` (cleared first) and return the encoding used.
fn encode_values(values: &[f64], compress: bool, payload: &mut Vec<u8>) -> u8 {
    payload.clear();
    if let Some(first) = values.first() {
        if values.iter().all(|v| v.to_bits() == first.to_bits()) {
            payload.extend_from_slice(&first.to_le_bytes());
            return ENC_CONST;
        }
    }
    if compress && values.len() >= PCO_MIN_VALUES {
        if let Some(bytes) = pco_compress(values) {
            if bytes.len() < values.len() * 8 {
                *payload = bytes;
                return ENC_PCO;
            }
        }
    }
    for v in values {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    ENC_PLAIN
}

/// `None` if pco refuses (it never should for f64): the caller stores the column plain.
fn pco_compress(values: &[f64]) -> Option<Vec<u8>> {
    use pco::wrapped::FileCompressor;
    let config = pco::ChunkConfig::default().with_compression_level(PCO_LEVEL);
    let fc = FileCompressor::default();
    let out = fc.write_header(Vec::new()).ok()?;
    let mut cc = fc.chunk_compressor(values, &config).ok()?;
    let out = cc.write_meta(out).ok()?;
    // At most `BLOCK_MAX_ROWS` values: far below pco's page size, so one page.
    (cc.n_per_page().len() == 1).then_some(())?;
    cc.write_page(0, out).ok()
}

fn pco_decompress(src: &[u8], n: usize) -> Result<Vec<f64>, DecodeError> {
    use pco::wrapped::FileDecompressor;
    let bad = |e: pco::errors::PcoError| DecodeError::Block(format!("pco: {e}"));
    let (fd, rest) = FileDecompressor::new(src).map_err(bad)?;
    let (mut cd, rest) = fd.chunk_decompressor::<f64, _>(rest).map_err(bad)?;
    let mut pd = cd.page_decompressor(rest, n).map_err(bad)?;
    let mut out = vec![0.0; n];
    let progress = pd.read(&mut out).map_err(bad)?;
    if progress.n_processed != n {
        return Err(DecodeError::Block(format!(
            "pco page holds {} values, expected {n}",
            progress.n_processed
        )));
    }
    Ok(out)
}

/// The largest block the store writes (and the most rows a decoder accepts, so a
/// corrupt count can't ask for a huge allocation).
pub const BLOCK_MAX_ROWS: usize = 1 << 16;

/// Only the timestamps of a block (what counting, the oldest row and the minute tier's
/// "first of its minute" need).
pub fn decode_timestamps(data: &[u8]) -> Result<Vec<i64>, DecodeError> {
    let mut r = Reader { data, pos: 0 };
    read_timestamps(&mut r)
}

/// A whole block, or only the column of feature `only`.
pub fn decode_block(data: &[u8], only: Option<u32>) -> Result<BlockOut, DecodeError> {
    let mut r = Reader { data, pos: 0 };
    let ts = read_timestamps(&mut r)?;
    let n = ts.len();
    let series = r.varint()?;
    let mut columns = Vec::with_capacity(if only.is_some() {
        1
    } else {
        series.min(4096) as usize
    });
    for _ in 0..series {
        let key = r.varint()?;
        let id = u32::try_from(key).map_err(|_| DecodeError::BadId(key))?;
        let flags = r.byte()?;
        let (presence, enc) = (flags & 1, flags >> 1);
        let rows = match presence {
            PRESENT_ALL => None,
            _ => {
                let bitmap = r.take(n.div_ceil(8))?;
                Some(
                    (0..n as u32)
                        .filter(|&i| bitmap[i as usize / 8] & (1 << (i % 8)) != 0)
                        .collect::<Vec<u32>>(),
                )
            }
        };
        let len = usize::try_from(r.varint()?).map_err(|_| DecodeError::Truncated(r.pos))?;
        let payload = r.take(len)?;
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let count = rows.as_ref().map_or(n, Vec::len);
        let values = match enc {
            ENC_CONST => {
                let b: [u8; 8] = payload
                    .try_into()
                    .map_err(|_| DecodeError::Block(format!("constant of {len} bytes")))?;
                vec![f64::from_le_bytes(b); count]
            }
            ENC_PLAIN if len == count * 8 => payload
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect(),
            ENC_PCO => pco_decompress(payload, count)?,
            _ => {
                return Err(DecodeError::Block(format!(
                    "column {id}: encoding {enc} with {len} bytes for {count} values"
                )))
            }
        };
        columns.push(ColumnOut { id, rows, values });
    }
    if r.pos != data.len() {
        return Err(DecodeError::Block(format!(
            "{} bytes after the last column",
            data.len() - r.pos
        )));
    }
    Ok(BlockOut { ts, columns })
}

fn read_timestamps(r: &mut Reader<'_>) -> Result<Vec<i64>, DecodeError> {
    let format = r.byte()?;
    if format != BLOCK_FORMAT {
        return Err(DecodeError::Block(format!("unknown block format {format}")));
    }
    let n = r.varint()?;
    if n as usize > BLOCK_MAX_ROWS {
        return Err(DecodeError::Block(format!("{n} rows")));
    }
    let mut ts = Vec::with_capacity(n as usize);
    let (mut prev, mut delta) = (0i64, 0i64);
    for i in 0..n {
        let v = unzigzag(r.varint()?);
        let t = match i {
            0 => v,
            1 => {
                delta = v;
                prev.wrapping_add(v)
            }
            _ => {
                delta = delta.wrapping_add(v);
                prev.wrapping_add(delta)
            }
        };
        ts.push(t);
        prev = t;
    }
    Ok(ts)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(DecodeError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.data.len())
            .ok_or(DecodeError::Truncated(self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut e = Entries {
            data: self.data,
            pos: self.pos,
        };
        let v = e.varint()?;
        self.pos = e.pos;
        Ok(v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round_trip(entries: &[(u32, f64)]) -> Vec<(u32, f64)> {
        let mut buf = Vec::new();
        for &(id, v) in entries {
            push(&mut buf, id, v);
        }
        decode(&buf).collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn values_round_trip_bit_exact() {
        let values = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1e-300,
            -123456789.0,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            1.8e19,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        let entries: Vec<(u32, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32 * 1000, v))
            .collect();
        let back = round_trip(&entries);
        assert_eq!(back.len(), entries.len());
        for ((id, v), (bid, bv)) in entries.iter().zip(&back) {
            assert_eq!(id, bid);
            assert_eq!(v.to_bits(), bv.to_bits(), "value {v}");
        }
    }

    #[test]
    fn extreme_ids_round_trip() {
        assert_eq!(
            round_trip(&[(u32::MAX, 2.5), (0, 3.0)]),
            vec![(u32::MAX, 2.5), (0, 3.0)]
        );
    }

    #[test]
    fn small_integers_are_compact() {
        let mut buf = Vec::new();
        push(&mut buf, 5, 0.0);
        assert_eq!(buf.len(), 2);
        let mut buf = Vec::new();
        push(&mut buf, 5, 0.25);
        assert_eq!(buf.len(), 9);
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        let mut buf = Vec::new();
        push(&mut buf, 7, 0.25);
        for cut in 1..buf.len() {
            let r: Result<Vec<_>, _> = decode(&buf[..cut]).collect();
            assert!(
                matches!(r, Err(DecodeError::Truncated(_))),
                "cut {cut}: {r:?}"
            );
        }
        let r: Result<Vec<_>, _> = decode(&[0xff; 11]).collect();
        assert_eq!(r, Err(DecodeError::VarintOverflow(0)));
        // A key whose id does not fit in u32.
        let mut buf = Vec::new();
        put_varint(&mut buf, (u64::from(u32::MAX) + 1) << 1);
        buf.extend_from_slice(&[0; 8]);
        let r: Result<Vec<_>, _> = decode(&buf).collect();
        assert!(matches!(r, Err(DecodeError::BadId(_))));
    }
}
