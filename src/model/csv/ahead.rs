//! A streamed CSV parsed on its own thread, a batch of rows ahead of the one playing
//! them: a replay's other core splits and parses the next rows while this one runs
//! the pipeline on the last. Batches of records go back to the reader to be refilled,
//! so a record keeps its names from batch to batch.

use std::io::BufRead;
use std::sync::mpsc;

use super::{CsvError, Rows};
use crate::sample::Record;

/// Rows a batch holds: big enough that passing it costs nothing per row, small
/// enough to start at once.
const BATCH: usize = 1024;

pub struct ReadAhead {
    rows: mpsc::Receiver<Result<Vec<Record>, CsvError>>,
    /// Played batches, back to the reader.
    spent: mpsc::Sender<Vec<Record>>,
    batch: Vec<Record>,
    next: usize,
    timed: bool,
}

impl ReadAhead {
    pub(super) fn start<R: BufRead + Send + 'static>(
        mut rows: Rows<R>,
    ) -> std::io::Result<ReadAhead> {
        let timed = rows.timed();
        let (tx, rx) = mpsc::sync_channel(2);
        let (spent, returned) = mpsc::channel::<Vec<Record>>();
        let reader = move || loop {
            let mut batch = returned.try_recv().unwrap_or_default();
            let mut n = 0;
            let end = loop {
                match rows.next_row() {
                    Ok(Some(r)) if n < batch.len() => refill(&mut batch[n], r),
                    Ok(Some(r)) => batch.push(r.clone()),
                    Ok(None) => break Ok(true),
                    Err(e) => break Err(e),
                }
                n += 1;
                if n == BATCH {
                    break Ok(false);
                }
            };
            batch.truncate(n);
            let last = !matches!(end, Ok(false));
            let sent = match end {
                Err(e) => tx.send(Ok(batch)).and_then(|_| tx.send(Err(e))),
                Ok(_) => tx.send(Ok(batch)),
            };
            // The player stopped listening, or this was the end.
            if sent.is_err() || last {
                return;
            }
        };
        std::thread::Builder::new()
            .name("csv".into())
            .spawn(reader)?;
        Ok(ReadAhead {
            rows: rx,
            spent,
            batch: Vec::new(),
            next: 0,
            timed,
        })
    }

    /// Whether the rows carry times (the file has a `timestamp` column).
    pub fn timed(&self) -> bool {
        self.timed
    }

    /// [`Rows::next_row`], a batch ahead.
    pub fn next_row(&mut self) -> Result<Option<&mut Record>, CsvError> {
        if self.next == self.batch.len() {
            let spent = std::mem::take(&mut self.batch);
            if !spent.is_empty() {
                let _ = self.spent.send(spent);
            }
            self.next = 0;
            match self.rows.recv() {
                Ok(batch) => self.batch = batch?,
                // The reader has ended after its last batch.
                Err(_) => return Ok(None),
            }
            if self.batch.is_empty() {
                return Ok(None);
            }
        }
        self.next += 1;
        Ok(Some(&mut self.batch[self.next - 1]))
    }
}

/// Make `to` a copy of `from`, keeping the names it has where they match.
fn refill(to: &mut Record, from: &Record) {
    to.timestamp_ms = from.timestamp_ms;
    for (k, (name, value)) in from.values.iter().enumerate() {
        to.set_at(k, name, *value);
    }
    to.values.truncate(from.values.len());
}
