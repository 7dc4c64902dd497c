//! The one feature function: a [`Record`] becomes a dense vector in schema order.
//!
//! Training and scoring both call [`Schema::vector`], so a record produces exactly the
//! same numbers whichever path it takes (tested below). Missing values — a name absent
//! from the record, or NaN/infinite — come out as NaN and are treated as "no evidence"
//! downstream (never anomalous); names not in the schema are ignored.

use std::collections::HashMap;

use crate::sample::Record;

/// Ordered feature names and a name → position index.
#[derive(Debug, Clone)]
pub struct Schema {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl Schema {
    /// A schema of these names, in this order. Duplicates keep their first position.
    pub fn new(names: Vec<String>) -> Schema {
        let mut index = HashMap::with_capacity(names.len());
        let mut kept = Vec::with_capacity(names.len());
        for n in names {
            if !index.contains_key(&n) {
                index.insert(n.clone(), kept.len());
                kept.push(n);
            }
        }
        Schema { names: kept, index }
    }

    /// Every name seen in `records`, in order of first appearance, except the
    /// series the daemon derives from the model itself (its score and threshold,
    /// stored in the history beside the features): a model must not learn from its
    /// own output.
    pub fn discover(records: &[Record]) -> Schema {
        let mut names = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut previous: Option<&Record> = None;
        for r in records {
            // Rows of one stream repeat the names of the row before: nothing new there,
            // and comparing them is cheaper than hashing each.
            if previous.is_some_and(|p| same_names(p, r)) {
                continue;
            }
            previous = Some(r);
            for (n, _) in &r.values {
                if !seen.contains(n.as_str()) && !crate::store::derived::is_derived(n) {
                    seen.insert(n.clone());
                    names.push(n.clone());
                }
            }
        }
        Schema::new(names)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// THE feature function. Writes the record's values into `out` (length = schema
    /// length) in schema order; missing or non-finite values become NaN.
    pub fn vector_into(&self, record: &Record, out: &mut [f64]) {
        debug_assert_eq!(out.len(), self.names.len());
        out.fill(f64::NAN);
        for (name, v) in &record.values {
            if let Some(&i) = self.index.get(name) {
                out[i] = if v.is_finite() { *v } else { f64::NAN };
            }
        }
    }

    /// [`Schema::vector_into`], finding each value's position through `layout`: where
    /// the previous record of the stream had the same name at the same place, no hash
    /// lookup. The vector is the same either way (tested below).
    pub fn vector_into_with(&self, record: &Record, out: &mut [f64], layout: &mut Layout) {
        debug_assert_eq!(out.len(), self.names.len());
        out.fill(f64::NAN);
        for (k, (name, v)) in record.values.iter().enumerate() {
            let slot = match layout.slots.get(k) {
                Some((seen, slot)) if seen == name => *slot,
                _ => {
                    let slot = self.position(name);
                    layout.remember(k, name, slot);
                    slot
                }
            };
            if let Some(i) = slot {
                out[i] = if v.is_finite() { *v } else { f64::NAN };
            }
        }
    }

    /// [`Schema::vector_into`] into a fresh vector.
    pub fn vector(&self, record: &Record) -> Vec<f64> {
        let mut out = vec![f64::NAN; self.names.len()];
        self.vector_into(record, &mut out);
        out
    }
}

fn same_names(a: &Record, b: &Record) -> bool {
    a.values.len() == b.values.len()
        && a.values
            .iter()
            .zip(&b.values)
            .all(|((x, _), (y, _))| x == y)
}

/// Per position of a record's values, the name last seen there and its place in the
/// schema. The records of one stream (the collectors' tick, a CSV's columns, the
/// history's rows) list their names in the same order, and comparing a name with the
/// one remembered is cheaper than hashing it.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    slots: Vec<(String, Option<usize>)>,
}

impl Layout {
    fn remember(&mut self, k: usize, name: &str, slot: Option<usize>) {
        if k < self.slots.len() {
            self.slots[k] = (name.to_string(), slot);
        } else {
            // Positions are visited in order, so `k` is the next one.
            self.slots.push((name.to_string(), slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(vals: &[(&str, f64)]) -> Record {
        Record {
            timestamp_ms: None,
            values: vals.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn missing_nan_and_unknown_names() {
        let s = Schema::new(vec!["a".into(), "b".into(), "c".into()]);
        let v = s.vector(&rec(&[("c", 3.0), ("zzz", 9.0), ("a", f64::INFINITY)]));
        assert!(v[0].is_nan() && v[1].is_nan());
        assert_eq!(v[2], 3.0);
    }

    #[test]
    fn the_layout_gives_the_same_vectors() {
        let s = Schema::new(vec!["a".into(), "b".into(), "c".into()]);
        let mut layout = Layout::default();
        let stream = [
            rec(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]),
            rec(&[("a", 4.0), ("b", f64::NAN), ("c", 6.0)]),
            // Another order, a name not in the schema, one missing, a duplicate.
            rec(&[("c", 7.0), ("zzz", 8.0), ("a", 9.0)]),
            rec(&[("b", 1.0), ("a", 2.0), ("b", 3.0), ("c", f64::INFINITY)]),
            rec(&[]),
            rec(&[("a", 5.0), ("b", 6.0), ("c", 7.0)]),
        ];
        for r in &stream {
            let mut got = vec![0.0; 3];
            s.vector_into_with(r, &mut got, &mut layout);
            let want = s.vector(r);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{r:?}"
            );
        }
    }

    #[test]
    fn discover_keeps_first_seen_order() {
        let s = Schema::discover(&[
            rec(&[("b", 1.0), ("a", 1.0)]),
            rec(&[("b", 2.0), ("a", 2.0)]),
            rec(&[("c", 1.0), ("a", 2.0)]),
            rec(&[("c", 1.0), ("a", 2.0)]),
            rec(&[("c", 1.0), ("a", 2.0), ("d", 0.0)]),
        ]);
        assert_eq!(s.names(), ["b", "a", "c", "d"]);
    }

    /// The score and threshold stored beside the features are never features.
    #[test]
    fn discover_skips_derived_series() {
        let s = Schema::discover(&[rec(&[
            ("a", 1.0),
            (crate::store::derived::ANOMALY_SCORE, 0.5),
            (crate::store::derived::ANOMALY_THRESHOLD, 0.1),
        ])]);
        assert_eq!(s.names(), ["a"]);
    }
}
