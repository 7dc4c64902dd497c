//! `anomalyd score`: a CSV file scored by a saved model, as a stream.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::model::csv::read_table;
use crate::model::{Model, Score, Scorer};

/// The `cause` column: the top feature's name (for header-less input the name *is*
/// the 0-based column index), empty when nothing contributes.
fn cause<'m>(model: &'m Model, s: &Score) -> &'m str {
    s.top_cause()
        .map(|i| model.schema()[i].as_str())
        .unwrap_or("")
}

pub fn write_row(out: &mut dyn Write, model: &Model, s: &Score) -> std::io::Result<()> {
    // `{}` prints the shortest text that reads back as the same f64, so tools that
    // re-rank the scores (pointwise.py) see exactly our values.
    writeln!(
        out,
        "{},{},{}",
        s.value,
        u8::from(s.anomaly),
        crate::model::csv::quote(cause(model, s))
    )
}

/// The output's first column when the input has times: the row's time, RFC 3339
/// (empty for a row without one), so the output lines up with the input by time.
pub fn write_time(out: &mut dyn Write, timestamp_ms: Option<i64>) -> std::io::Result<()> {
    match timestamp_ms {
        Some(t) => write!(out, "{},", crate::text::fmt_rfc3339(t)),
        None => write!(out, ","),
    }
}

/// `anomalyd score --model MODEL --input FILE`: one CSV row `score,anomaly,cause` per
/// input row, in input order, scored as a stream by one [`Scorer`]; after a
/// `timestamp` column when the input has one.
pub fn score(model_path: &Path, input: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let table = read_table(input)?;
    let model = Arc::new(Model::load_for(model_path, &table.columns)?);
    let mut scorer = Scorer::new(Arc::clone(&model));
    let timed = table.timed();
    if timed {
        write!(out, "timestamp,")?;
    }
    writeln!(out, "score,anomaly,cause")?;
    for r in &table.records {
        let s = scorer.score(r);
        if timed {
            write_time(out, r.timestamp_ms)?;
        }
        write_row(out, &model, &s)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::history;
    use crate::model::Spec;

    // Moved here from `model/tests.rs` with the commands.
    #[test]
    fn train_and_score_commands_on_csv() {
        let dir = tempfile::tempdir().expect("tmp");
        let csv = dir.path().join("h.csv");
        let mut text = String::from("timestamp,cpu,load1\n");
        for (i, r) in history(800, 3).iter().enumerate() {
            let v = |n: &str| {
                r.values
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| *v)
                    .unwrap_or(0.0)
            };
            text.push_str(&format!(
                "{},{},{}\n",
                1_700_000_000 + i * 60,
                v("cpu"),
                v("load1")
            ));
        }
        std::fs::write(&csv, &text).expect("write");
        let model = dir.path().join("m.json");
        let mut log = Vec::new();
        super::super::train::train(&csv, &model, &Spec::default(), &mut log).expect("train");
        assert!(String::from_utf8_lossy(&log).contains("trained on 800 rows, 2 features"));
        // Score the same history followed by an incident.
        text.push_str("1700100000,5,40\n".repeat(15).as_str());
        std::fs::write(&csv, &text).expect("write");
        let mut out = Vec::new();
        score(&model, &csv, &mut out).expect("score");
        let out = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "timestamp,score,anomaly,cause");
        assert!(
            lines[1].starts_with("2023-11-14T22:13:20Z,"),
            "{}",
            lines[1]
        );
        assert_eq!(lines.len(), 816);
        assert!(
            lines[815].ends_with(",1,load1") || lines[815].ends_with(",1,cpu"),
            "{}",
            lines[815]
        );
        // A file without the model's columns is refused with the schema error.
        let other = dir.path().join("o.csv");
        std::fs::write(&other, "mem\n1\n").expect("write");
        let e = score(&model, &other, &mut Vec::new()).expect_err("mismatch");
        assert!(format!("{e:#}").contains("missing: cpu, load1"), "{e:#}");
    }
}
