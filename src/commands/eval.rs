//! `anomalyd eval smd`: detection quality on the Server Machine Dataset, per machine
//! and as a mean (P, R, F1, AUPRC, event recall), trained and thresholded on each
//! machine's train half alone.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use super::score::write_row;
use crate::cli::EvalDataset;
use crate::model::csv::read_table;
use crate::model::eval::{evaluate, mean, Metrics};
use crate::model::{Model, Score, Scorer, Spec};

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub(super) struct Bar {
    on: bool,
    last: Option<(&'static str, usize)>,
}

impl Bar {
    pub(super) fn new() -> Bar {
        Bar {
            on: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    pub(super) fn update(&mut self, stage: &'static str, done: usize, total: usize) {
        if !self.on {
            return;
        }
        let pct = (done * 100).checked_div(total).unwrap_or(100).min(100);
        if self.last == Some((stage, pct)) {
            return;
        }
        self.last = Some((stage, pct));
        let filled = pct * 30 / 100;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{stage:>10} [{}{}] {pct:3}%",
            "#".repeat(filled),
            " ".repeat(30 - filled)
        );
        let _ = err.flush();
    }

    pub(super) fn finish(&mut self) {
        if self.on && self.last.is_some() {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// Per-machine result of the SMD evaluation.
#[derive(Debug, Clone)]
pub struct MachineResult {
    pub machine: String,
    pub metrics: Metrics,
    pub train_seconds: f64,
}

/// The SMD machines under `data/train` (files `<machine>.txt.gz`), sorted.
pub fn smd_machines(data: &Path) -> anyhow::Result<Vec<String>> {
    let dir = data.join("train");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(m) = name.strip_suffix(".txt.gz") {
            out.push(m.to_string());
        }
    }
    out.sort();
    anyhow::ensure!(
        !out.is_empty(),
        "no <machine>.txt.gz files in {}",
        dir.display()
    );
    Ok(out)
}

pub(crate) use crate::eval::read_labels;

/// Train on one machine's train file, score its test file; the scores of the test rows.
pub fn smd_machine(
    data: &Path,
    machine: &str,
    spec: &Spec,
) -> anyhow::Result<(Arc<Model>, Vec<Score>)> {
    let train = read_table(&data.join("train").join(format!("{machine}.txt.gz")))?;
    let test = read_table(&data.join("test").join(format!("{machine}.txt.gz")))?;
    let model = Arc::new(
        Model::train(&train.records, spec).with_context(|| format!("training {machine}"))?,
    );
    let mut scorer = Scorer::new(Arc::clone(&model));
    let scores = test.records.iter().map(|r| scorer.score(r)).collect();
    Ok((model, scores))
}

/// `anomalyd eval smd --data DIR [--out DIR] [--machines a,b]`: per machine, train on
/// `train/` (threshold from train alone), score `test/`, compare with `test_label/`.
/// Prints a table to `report`; with `out_dir`, writes `<machine>.csv` (score,anomaly,cause)
/// for `pointwise.py --pairs`.
pub fn eval_smd(
    data: &Path,
    out_dir: Option<&Path>,
    machines: Option<&[String]>,
    spec: &Spec,
    report: &mut dyn Write,
) -> anyhow::Result<Vec<MachineResult>> {
    let machines = match machines {
        Some(m) if !m.is_empty() => m.to_vec(),
        _ => smd_machines(data)?,
    };
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    writeln!(
        report,
        "{:<14} {:>6} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}",
        "machine", "rows", "segs", "P", "R", "F1", "AUPRC", "evR", "bestF1*"
    )?;
    let line = |r: &mut dyn Write, name: &str, m: &Metrics| {
        writeln!(
            r,
            "{:<14} {:>6} {:>5} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>7.3}",
            name,
            m.rows,
            m.segments,
            m.precision,
            m.recall,
            m.f1,
            m.auprc,
            m.event_recall,
            m.best_f1
        )
    };
    let mut results = Vec::new();
    for machine in &machines {
        let t0 = Instant::now();
        let (model, scores) = smd_machine(data, machine, spec)?;
        let train_seconds = t0.elapsed().as_secs_f64();
        let labels = read_labels(&data.join("test_label").join(format!("{machine}.txt")))?;
        anyhow::ensure!(
            labels.len() == scores.len(),
            "{machine}: {} test rows but {} labels",
            scores.len(),
            labels.len()
        );
        let values: Vec<f64> = scores.iter().map(|s| s.value).collect();
        let decisions: Vec<bool> = scores.iter().map(|s| s.anomaly).collect();
        let metrics = evaluate(&values, &decisions, &labels);
        if let Some(dir) = out_dir {
            let path: PathBuf = dir.join(format!("{machine}.csv"));
            let mut w = std::io::BufWriter::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            writeln!(w, "score,anomaly,cause")?;
            for s in &scores {
                write_row(&mut w, &model, s)?;
            }
            w.flush()?;
        }
        line(report, machine, &metrics)?;
        results.push(MachineResult {
            machine: machine.clone(),
            metrics,
            train_seconds,
        });
    }
    let all: Vec<Metrics> = results.iter().map(|r| r.metrics).collect();
    line(report, "mean", &mean(&all))?;
    writeln!(
        report,
        "(* bestF1 picks the threshold on the test labels: an oracle, for reference only)"
    )?;
    Ok(results)
}

/// `anomalyd eval smd`.
pub fn run(dataset: EvalDataset, out: &mut dyn Write) -> anyhow::Result<std::process::ExitCode> {
    let EvalDataset::Smd {
        data,
        out: out_dir,
        machines,
        spec,
    } = dataset
    else {
        anyhow::bail!("not the smd dataset");
    };
    let spec = super::spec(spec.as_deref(), &Spec::default())?;
    eval_smd(&data, out_dir.as_deref(), Some(&machines), &spec, out)?;
    Ok(std::process::ExitCode::SUCCESS)
}
