//! Records to a training [`Frame`], through the same schema discovery and feature
//! function scoring uses, so a frame read from the history and one built from the
//! same rows as records give one model.

use super::features::{Layout, Schema};
use crate::sample::{Frame, Record};

/// The records' features ([`Schema::discover`]: first seen first, derived series left
/// out) and values ([`Schema::vector_into_with`]).
pub fn from_records(records: &[Record]) -> Frame {
    let schema = Schema::discover(records);
    let d = schema.len();
    let mut values = vec![f64::NAN; records.len() * d];
    let mut layout = Layout::default();
    if d > 0 {
        for (r, out) in records.iter().zip(values.chunks_exact_mut(d)) {
            schema.vector_into_with(r, out, &mut layout);
        }
    }
    Frame::new(
        schema.names().to_vec(),
        records.iter().map(|r| r.timestamp_ms).collect(),
        values,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_records_is_the_schemas_vectors() {
        let rec = |ts, v: &[(&str, f64)]| Record {
            timestamp_ms: ts,
            values: v.iter().map(|(n, x)| (n.to_string(), *x)).collect(),
        };
        let records = [
            rec(Some(1), &[("b", 1.0), ("a", f64::INFINITY)]),
            rec(None, &[("c", 3.0), ("a", 2.0)]),
            rec(Some(3), &[(crate::store::derived::ANOMALY_SCORE, 0.5)]),
        ];
        let f = from_records(&records);
        assert_eq!(f.names(), ["b", "a", "c"]);
        assert_eq!(f.timestamps(), [Some(1), None, Some(3)]);
        let schema = Schema::discover(&records);
        for (i, r) in records.iter().enumerate() {
            let want = schema.vector(r);
            let got = f.row(i);
            assert!(want
                .iter()
                .zip(got)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        assert_eq!(f.rows().count(), 3);
    }
}
