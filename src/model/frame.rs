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
#[allow(clippy::unwrap_used)]
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

    /// Training reads a frame; it holds what the records of `training_rows` give once
    /// turned into a frame: features appearing and disappearing, in new orders, with
    /// NaN and infinite values, derived series and rows after `until` left out.
    #[test]
    fn the_history_reads_the_frame_of_its_training_rows() {
        use crate::store::{History, HistoryConfig};
        const T0: i64 = 1_700_000_040_000;
        let rec = |ts: i64, values: &[(&str, f64)]| Record {
            timestamp_ms: Some(ts),
            values: values.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let cfg = HistoryConfig {
            retention: std::time::Duration::from_secs(86_400),
            raw_retention: std::time::Duration::from_secs(600),
            ..HistoryConfig::default()
        };
        let mut h = History::open(dir.path().join("history.db"), &cfg).unwrap();
        let score = crate::store::derived::ANOMALY_SCORE;
        for i in 0..3_000i64 {
            let v = i as f64;
            let mut values = vec![("a", v), (score, 0.5)];
            if i % 7 != 0 {
                values.push(("b", if i % 11 == 0 { f64::NAN } else { -v }));
            }
            if (800..1_500).contains(&i) {
                values.insert(0, ("c", if i % 13 == 0 { f64::INFINITY } else { 2.0 * v }));
            }
            if i >= 2_000 {
                values.push(("d", 1.0));
            }
            h.append(&rec(T0 + i * 10_000, &values)).unwrap();
        }
        let bits = |f: &crate::sample::Frame| -> Vec<u64> {
            f.rows().flatten().map(|v| v.to_bits()).collect()
        };
        for (since, max, until) in [
            (0, 100_000, i64::MAX),
            (0, 500, i64::MAX),
            (0, 100_000, T0 + 1_000 * 10_000),
            (T0 + 600_000, 7, T0 + 2_500 * 10_000),
        ] {
            for tier_pruned in [false, true] {
                if tier_pruned {
                    h.prune(T0 + 3_000 * 10_000).unwrap();
                }
                let records: Vec<Record> = h
                    .training_rows(since, max)
                    .unwrap()
                    .into_iter()
                    .filter(|r| r.timestamp_ms.is_none_or(|t| t <= until))
                    .collect();
                let want = from_records(&records);
                let got = h.training_frame(since, max, until).unwrap();
                assert_eq!(got.names(), want.names(), "{since} {max} {until}");
                assert_eq!(got.timestamps(), want.timestamps());
                assert_eq!(bits(&got), bits(&want));
                assert!(!got.is_empty());
            }
        }
    }
}
