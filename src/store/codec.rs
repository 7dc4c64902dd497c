//! The value encoding of one history row (format 1, recorded as `value_encoding` in the
//! `meta` table).
//!
//! A row is a concatenation of entries, one per feature value, in the record's order:
//!
//! ```text
//! entry   = varint(key) payload
//! key     = feature_id << 1 | tag          (feature_id from the `names` table)
//! tag 0   : payload = f64, 8 bytes little-endian (the exact bits: NaN and -0.0 survive)
//! tag 1   : payload = varint(zigzag(i))     (value is an integer i with |i| < 2^53)
//! varint  = unsigned LEB128, at most 10 bytes
//! ```
//!
//! Why not plain `u32 id + f64` (12 bytes a value): host features are full of exact
//! integers (zeros for idle error counters, whole byte and packet counts), and ids are
//! small. On the bench's 100-feature sample (a third of them whole numbers) a row is 733
//! bytes instead of 1,200, which matters at 86,400 rows a day; it costs a branch a value. Rows stay independently
//! decodable (no delta against the previous row), so any single row can be read, pruned
//! or lost without touching its neighbours.

/// Largest magnitude stored as an integer: beyond 2^53 not every integer is an f64, and
/// the varint would be no shorter than the 8 raw bytes anyway.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53

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
}

/// Append one `(feature id, value)` entry to `out`.
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

/// The value of `id` in a row, without materialising the other entries (series reads).
pub fn find(data: &[u8], id: u32) -> Result<Option<f64>, DecodeError> {
    for entry in decode(data) {
        let (entry_id, value) = entry?;
        if entry_id == id {
            return Ok(Some(value));
        }
    }
    Ok(None)
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

    #[test]
    fn find_reads_one_feature() {
        let mut buf = Vec::new();
        push(&mut buf, 1, 10.0);
        push(&mut buf, 2, 0.75);
        push(&mut buf, 3, -4.0);
        assert_eq!(find(&buf, 2), Ok(Some(0.75)));
        assert_eq!(find(&buf, 3), Ok(Some(-4.0)));
        assert_eq!(find(&buf, 9), Ok(None));
    }
}
