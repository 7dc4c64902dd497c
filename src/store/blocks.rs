//! Rows in columns: the block being filled in memory ([`Buffer`]) and the blocks read
//! back ([`Part`]), with the one way both are turned into rows again ([`Rows`]).
//!
//! A block lists its features once, in an order every one of its rows agrees with, so
//! a row read back has its values in the order it was appended. A row that disagrees
//! (its features in another order than earlier rows of the block) is refused by
//! [`Buffer::push`] and starts the next block instead.

use std::collections::HashMap;

use super::codec::{self, BlockOut, ColumnIn, ColumnOut};
use crate::sample::{Frame, Record};

/// The rows appended since the last flush of one tier, by feature.
#[derive(Debug, Default)]
pub struct Buffer {
    ts: Vec<i64>,
    /// Append-only storage; `order` says the block's feature order.
    columns: Vec<Column>,
    index: HashMap<String, usize>,
    order: Vec<usize>,
    /// `rank[c]`: position of column `c` in `order`.
    rank: Vec<usize>,
    /// The columns of the last row, in its order: the next row almost always has the
    /// same features, and comparing names is cheaper than hashing them.
    last_row: Vec<usize>,
}

#[derive(Debug)]
struct Column {
    name: String,
    rows: Vec<u32>,
    values: Vec<f64>,
}

impl Buffer {
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn first_ts(&self) -> Option<i64> {
        self.ts.first().copied()
    }

    pub fn timestamps(&self) -> &[i64] {
        &self.ts
    }

    pub fn clear(&mut self) {
        *self = Buffer::default();
    }

    /// Add one row. False (and nothing added) when the row's features come in an order
    /// this block's earlier rows contradict: the caller writes the block out and pushes
    /// the row into an empty buffer, which always takes it. A feature repeated within
    /// the row keeps its first value.
    pub fn push(&mut self, ts: i64, values: &[(String, f64)]) -> bool {
        let row = self.ts.len() as u32;
        let same_layout = values.len() == self.last_row.len()
            && values
                .iter()
                .zip(&self.last_row)
                .all(|((name, _), &c)| self.columns[c].name == *name);
        if !same_layout {
            let Some(layout) = self.layout(values) else {
                return false;
            };
            self.last_row = layout;
        }
        let mut kept = self.last_row.iter();
        let mut next = kept.next();
        for (name, value) in values {
            match next {
                Some(&c) if self.columns[c].name == *name => {
                    let col = &mut self.columns[c];
                    col.rows.push(row);
                    col.values.push(*value);
                    next = kept.next();
                }
                // A repeated feature, left out by `layout`.
                _ => {}
            }
        }
        self.ts.push(ts);
        true
    }

    /// The columns of a row with new features, adding the features it introduces right
    /// after the feature before them in the row; `None` if the row contradicts the order.
    fn layout(&mut self, values: &[(String, f64)]) -> Option<Vec<usize>> {
        let mut layout: Vec<usize> = Vec::with_capacity(values.len());
        let mut prev_rank: Option<usize> = None;
        for (name, _) in values {
            let c = match self.index.get(name) {
                Some(&c) => c,
                None => {
                    let c = self.columns.len();
                    self.columns.push(Column {
                        name: name.clone(),
                        rows: Vec::new(),
                        values: Vec::new(),
                    });
                    self.index.insert(name.clone(), c);
                    let at = prev_rank.map_or(0, |r| r + 1);
                    self.order.insert(at, c);
                    self.rank = vec![0; self.columns.len()];
                    for (i, &col) in self.order.iter().enumerate() {
                        self.rank[col] = i;
                    }
                    c
                }
            };
            if layout.contains(&c) {
                continue;
            }
            let r = self.rank[c];
            if prev_rank.is_some_and(|p| r <= p) {
                return None;
            }
            prev_rank = Some(r);
            layout.push(c);
        }
        Some(layout)
    }

    /// The block's columns, in block order, with the feature ids `id_of` gives; features
    /// without a value (added by a refused row) are left out.
    pub fn encode(&self, id_of: impl Fn(&str) -> u32, compress: bool) -> Vec<u8> {
        let columns: Vec<ColumnIn<'_>> = self
            .order
            .iter()
            .map(|&c| &self.columns[c])
            .filter(|c| !c.rows.is_empty())
            .map(|c| ColumnIn {
                id: id_of(&c.name),
                rows: &c.rows,
                values: &c.values,
            })
            .collect();
        codec::encode_block(&self.ts, &columns, compress)
    }

    /// Names of the features that have values, in block order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order
            .iter()
            .map(|&c| &self.columns[c])
            .filter(|c| !c.rows.is_empty())
            .map(|c| c.name.as_str())
    }

    /// A copy to read from, like a block read back; `only` keeps one feature.
    pub fn part(&self, only: Option<&str>) -> Part {
        let n = self.ts.len();
        let columns = self
            .order
            .iter()
            .map(|&c| &self.columns[c])
            .filter(|c| !c.rows.is_empty() && only.is_none_or(|o| o == c.name))
            .map(|c| {
                (
                    c.name.clone(),
                    ColumnOut {
                        id: 0,
                        rows: (c.rows.len() != n).then(|| c.rows.clone()),
                        values: c.values.clone(),
                    },
                )
            })
            .collect();
        Part {
            ts: self.ts.clone(),
            columns,
        }
    }
}

/// One block's rows, decoded, with feature names.
#[derive(Debug, Clone, Default)]
pub struct Part {
    pub ts: Vec<i64>,
    pub columns: Vec<(String, ColumnOut)>,
}

impl Part {
    /// A decoded block with its ids named by `name_of` (`None`: an unknown id).
    pub fn named(block: BlockOut, name_of: impl Fn(u32) -> Option<String>) -> Result<Part, u32> {
        let columns = block
            .columns
            .into_iter()
            .map(|c| {
                let id = c.id;
                name_of(id).map(|n| (n, c)).ok_or(id)
            })
            .collect::<Result<_, _>>()?;
        Ok(Part {
            ts: block.ts,
            columns,
        })
    }
}

/// The rows of several parts in time order: where two rows have the same timestamp
/// the one appended last wins (a clock stepped back replaces, as a keyed table would).
pub struct Rows {
    parts: Vec<Part>,
    /// (timestamp, part, row), sorted by time, one per timestamp.
    index: Vec<(i64, u32, u32)>,
}

impl Rows {
    /// Parts in the order they were written; rows outside `keep` left out.
    pub fn new(parts: Vec<Part>, keep: impl Fn(i64) -> bool) -> Rows {
        let mut index = Vec::with_capacity(parts.iter().map(|p| p.ts.len()).sum());
        for (p, part) in parts.iter().enumerate() {
            for (r, &ts) in part.ts.iter().enumerate() {
                if keep(ts) {
                    index.push((ts, p as u32, r as u32));
                }
            }
        }
        dedup_last(&mut index);
        Rows { parts, index }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Row `i`'s time.
    pub fn timestamp(&self, i: usize) -> i64 {
        self.index[i].0
    }

    /// Row `i` (in time order) as a record.
    pub fn record(&self, i: usize) -> Record {
        let (ts, p, r) = self.index[i];
        let part = &self.parts[p as usize];
        // Sized once: training builds tens of thousands of these at each retraining.
        let mut values = Vec::with_capacity(part.columns.len());
        values.extend(
            part.columns
                .iter()
                .filter_map(|(name, c)| c.value_at(r).map(|v| (name.clone(), v))),
        );
        Record {
            timestamp_ms: Some(ts),
            values,
        }
    }

    /// The rows at `picks` (indices in time order) as a training [`Frame`], without a
    /// [`Record`] per row: the features in the order `Schema::discover` finds them in
    /// these rows' records (first seen first, a row's in its block's order), derived
    /// series left out, and the values [`Rows::record`] gives, non-finite ones as NaN
    /// (`Schema::vector_into_with`).
    pub fn frame(&self, picks: &[usize]) -> Frame {
        let mut names: Vec<String> = Vec::new();
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        // A part whose features are all known needs no more looking at.
        let mut known = vec![false; self.parts.len()];
        for &i in picks {
            let (_, p, r) = self.index[i];
            if known[p as usize] {
                continue;
            }
            let mut all = true;
            for (name, c) in &self.parts[p as usize].columns {
                if slot_of.contains_key(name.as_str()) || super::derived::is_derived(name) {
                    continue;
                }
                if c.value_at(r).is_some() {
                    slot_of.insert(name, names.len());
                    names.push(name.clone());
                } else {
                    all = false;
                }
            }
            known[p as usize] = all;
        }
        let slots: Vec<Vec<Option<usize>>> = self
            .parts
            .iter()
            .map(|part| {
                part.columns
                    .iter()
                    .map(|(name, _)| slot_of.get(name.as_str()).copied())
                    .collect()
            })
            .collect();
        let d = names.len();
        let mut values = vec![f64::NAN; picks.len() * d];
        let mut ts = Vec::with_capacity(picks.len());
        for (k, &i) in picks.iter().enumerate() {
            let (t, p, r) = self.index[i];
            ts.push(Some(t));
            let out = &mut values[k * d..(k + 1) * d];
            for ((_, c), slot) in self.parts[p as usize]
                .columns
                .iter()
                .zip(&slots[p as usize])
            {
                if let (Some(s), Some(v)) = (slot, c.value_at(r)) {
                    out[*s] = if v.is_finite() { v } else { f64::NAN };
                }
            }
        }
        Frame::new(names, ts, values)
    }

    /// `(ts, value)` of the first column, for rows that have it (parts read with one
    /// feature only).
    pub fn points(&self) -> Vec<(i64, f64)> {
        self.index
            .iter()
            .filter_map(|&(ts, p, r)| {
                let (_, c) = self.parts[p as usize].columns.first()?;
                c.value_at(r).map(|v| (ts, v))
            })
            .collect()
    }
}

/// Sort `(ts, ...)` entries by time, stably, and keep the last of equal timestamps.
pub fn dedup_last<T: Copy>(index: &mut Vec<(i64, T, T)>) {
    if !index.windows(2).all(|w| w[0].0 < w[1].0) {
        index.sort_by_key(|e| e.0);
        // Keep the last of each run: reverse, keep firsts, reverse back.
        index.reverse();
        index.dedup_by_key(|e| e.0);
        index.reverse();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vals(names: &[&str]) -> Vec<(String, f64)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i as f64))
            .collect()
    }

    fn read_back(b: &Buffer) -> Vec<Record> {
        let rows = Rows::new(vec![b.part(None)], |_| true);
        (0..rows.len()).map(|i| rows.record(i)).collect()
    }

    #[test]
    fn a_feature_that_appears_keeps_each_rows_order() {
        let mut b = Buffer::default();
        let rows = [vals(&["a", "c"]), vals(&["a", "b", "c"]), vals(&["x", "a"])];
        for (i, r) in rows.iter().enumerate() {
            assert!(b.push(i as i64, r), "row {i}");
        }
        let back = read_back(&b);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(&back[i].values, r, "row {i}");
        }
    }

    #[test]
    fn a_row_against_the_blocks_order_is_refused_and_fits_a_new_block() {
        let mut b = Buffer::default();
        assert!(b.push(0, &vals(&["a", "b"])));
        assert!(!b.push(1, &vals(&["b", "a"])));
        assert_eq!(b.len(), 1, "nothing added");
        b.clear();
        assert!(b.push(1, &vals(&["b", "a"])));
        assert_eq!(read_back(&b)[0].values, vals(&["b", "a"]));
    }

    #[test]
    fn a_repeated_feature_keeps_its_first_value() {
        let mut b = Buffer::default();
        let row = vec![("a".to_string(), 1.0), ("a".to_string(), 2.0)];
        assert!(b.push(0, &row));
        assert!(b.push(1, &row));
        let back = read_back(&b);
        assert_eq!(back[1].values, vec![("a".to_string(), 1.0)]);
    }

    #[test]
    fn equal_timestamps_keep_the_last_row() {
        let mut idx = vec![(2, 0u32, 0u32), (1, 0, 1), (2, 1, 0), (3, 1, 1)];
        dedup_last(&mut idx);
        assert_eq!(idx, vec![(1, 0, 1), (2, 1, 0), (3, 1, 1)]);
    }
}
