//! `anomalyd eval smd-risk`: how early the fault risk warns, on SMD.
//!
//! Per machine: the model is trained on the train half (as `eval smd`), the risk is
//! calibrated on the same train half (in-sample scores, no labels), then the scorer
//! and risk tracker run over train and test in order (the test half continues the
//! train half, one row per minute) and the test half's warnings are compared with its
//! labels. The warning level is the configured one, the same for every machine.
//!
//! * **warned ahead**: the warning is on at some row in the `horizon` rows before a
//!   segment's first anomalous row (and after the previous segment ended);
//! * **lead**: rows from the first such warned row to the segment's start;
//! * **false warning**: a rising warning outside any segment with no segment starting
//!   within the horizon after it; per machine-day = per 1440 test rows.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::eval::{read_labels, smd_machines};
use crate::cli::EvalDataset;
use crate::forecast::risk::{calibrate, RiskTracker};
use crate::forecast::RiskConfig;
use crate::model::csv::read_table;
use crate::model::eval::runs;
use crate::model::{Model, Scorer, Spec};
use crate::sample::Record;

/// Lead-time figures of one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadTime {
    pub machine: String,
    pub rows: usize,
    pub segments: usize,
    pub warned: usize,
    /// Leads in rows of the warned segments.
    pub leads: Vec<usize>,
    pub false_warnings: usize,
    /// Incidents the model would have opened in the train half (what calibration saw).
    pub train_incidents: usize,
    /// For comparison: incidents the model's debounced decisions open on the test half
    /// outside segments and not followed by one within the horizon (what the
    /// incident engine would open falsely, without any forecast).
    pub false_incidents: usize,
}

impl LeadTime {
    pub fn warned_share(&self) -> f64 {
        if self.segments == 0 {
            f64::NAN
        } else {
            self.warned as f64 / self.segments as f64
        }
    }
    pub fn false_per_day(&self) -> f64 {
        self.false_warnings as f64 / (self.rows as f64 / 1440.0)
    }
    pub fn false_incidents_per_day(&self) -> f64 {
        self.false_incidents as f64 / (self.rows as f64 / 1440.0)
    }
    pub fn median_lead(&self) -> f64 {
        median_usize(&self.leads)
    }
}

fn median_usize(v: &[usize]) -> f64 {
    let mut v: Vec<f64> = v.iter().map(|x| *x as f64).collect();
    crate::forecast::trend::median(&mut v).unwrap_or(f64::NAN)
}

/// Compare per-row warnings with labels (see the module header).
pub fn lead_time(
    warning: &[bool],
    labels: &[bool],
    horizon_rows: usize,
) -> (usize, Vec<usize>, usize) {
    let segs = runs(labels);
    let mut warned = 0;
    let mut leads = Vec::new();
    let mut prev_end = 0;
    for &(a, b) in &segs {
        let lo = a.saturating_sub(horizon_rows).max(prev_end);
        if let Some(first) = (lo..a).find(|&i| warning[i]) {
            warned += 1;
            leads.push(a - first);
        }
        prev_end = b;
    }
    let mut false_warnings = 0;
    for c in 0..warning.len() {
        let rising = warning[c] && (c == 0 || !warning[c - 1]);
        if !rising || labels[c] {
            continue;
        }
        let followed = segs.iter().any(|&(a, _)| a > c && a <= c + horizon_rows);
        if !followed {
            false_warnings += 1;
        }
    }
    (warned, leads, false_warnings)
}

/// One machine: train, calibrate, run, compare.
pub fn smd_machine_risk(
    data: &Path,
    machine: &str,
    spec: &Spec,
    cfg: &RiskConfig,
    out_dir: Option<&Path>,
) -> anyhow::Result<LeadTime> {
    let train = read_table(&data.join("train").join(format!("{machine}.txt.gz")))?;
    let test = read_table(&data.join("test").join(format!("{machine}.txt.gz")))?;
    let labels = read_labels(&data.join("test_label").join(format!("{machine}.txt")))?;
    anyhow::ensure!(
        labels.len() == test.records.len(),
        "{machine}: {} test rows but {} labels",
        test.records.len(),
        labels.len()
    );
    // Trained exactly as `eval smd` (rows without time); the clock is added after.
    let model = Arc::new(
        Model::train(&train.records, spec).with_context(|| format!("training {machine}"))?,
    );
    let minute = |i: usize, r: &Record| Record {
        timestamp_ms: Some(i as i64 * 60_000),
        values: r.values.clone(),
    };
    let n = train.records.len();
    let train_rows: Vec<Record> = train
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| minute(i, r))
        .collect();
    let calibration =
        calibrate(&model, &train_rows, cfg).map_err(|e| anyhow::anyhow!("{machine}: {e}"))?;
    let train_incidents = calibration.incidents;
    let mut tracker = RiskTracker::new(cfg);
    tracker.set_calibration(Some(calibration));
    let mut scorer = Scorer::new(Arc::clone(&model));
    let threshold = model.threshold();
    for r in &train_rows {
        let s = scorer.score(r);
        tracker.observe(
            r.timestamp_ms.unwrap_or(0),
            Some((&s, threshold)),
            f64::INFINITY,
        );
    }
    let mut warning = Vec::with_capacity(test.records.len());
    let mut opened = Vec::with_capacity(test.records.len());
    let mut debounce =
        crate::forecast::risk::Debounce::new(cfg.debounce_anomalous, cfg.debounce_of);
    let mut rows_out = Vec::new();
    for (i, r) in test.records.iter().enumerate() {
        let r = minute(n + i, r);
        let s = scorer.score(&r);
        let risk = tracker.observe(
            r.timestamp_ms.unwrap_or(0),
            Some((&s, threshold)),
            f64::INFINITY,
        );
        warning.push(risk.is_some_and(|k| k.warning));
        opened.push(debounce.push(s.anomaly).0);
        if out_dir.is_some() {
            rows_out.push(format!(
                "{},{},{},{},{}",
                s.value / threshold,
                u8::from(s.anomaly),
                risk.map_or(f64::NAN, |k| k.probability),
                u8::from(risk.is_some_and(|k| k.warning)),
                u8::from(labels[i])
            ));
        }
    }
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{machine}.risk.csv"));
        std::fs::write(
            &path,
            format!(
                "ratio,anomaly,risk,warning,label\n{}\n",
                rows_out.join("\n")
            ),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    let horizon_rows = (cfg.horizon.as_secs() / 60).max(1) as usize;
    let (warned, leads, false_warnings) = lead_time(&warning, &labels, horizon_rows);
    let (_, _, false_incidents) = lead_time(&opened, &labels, horizon_rows);
    Ok(LeadTime {
        machine: machine.to_string(),
        rows: labels.len(),
        segments: runs(&labels).len(),
        warned,
        leads,
        false_warnings,
        train_incidents,
        false_incidents,
    })
}

/// `anomalyd eval smd-risk`: the table per machine and the mean.
pub fn eval_smd_risk(
    data: &Path,
    machines: Option<&[String]>,
    spec: &Spec,
    cfg: &RiskConfig,
    out_dir: Option<&Path>,
    report: &mut dyn Write,
) -> anyhow::Result<Vec<LeadTime>> {
    let machines = match machines {
        Some(m) if !m.is_empty() => m.to_vec(),
        _ => smd_machines(data)?,
    };
    writeln!(
        report,
        "fault risk on SMD: horizon {} rows (1 row = 1 min), warning level {}, debounce {} of {}",
        cfg.horizon.as_secs() / 60,
        cfg.warning,
        cfg.debounce_anomalous,
        cfg.debounce_of
    )?;
    writeln!(
        report,
        "{:<14} {:>6} {:>5} {:>7} {:>7} {:>8} {:>6} {:>9} {:>10} {:>13}",
        "machine",
        "rows",
        "segs",
        "warned",
        "share",
        "lead_med",
        "false",
        "false/day",
        "train_inc",
        "false_inc/day"
    )?;
    let mut out = Vec::new();
    for m in &machines {
        let r = smd_machine_risk(data, m, spec, cfg, out_dir)?;
        writeln!(
            report,
            "{:<14} {:>6} {:>5} {:>7} {:>7.3} {:>8.1} {:>6} {:>9.3} {:>10} {:>13.3}",
            r.machine,
            r.rows,
            r.segments,
            r.warned,
            r.warned_share(),
            r.median_lead(),
            r.false_warnings,
            r.false_per_day(),
            r.train_incidents,
            r.false_incidents_per_day()
        )?;
        out.push(r);
    }
    let k = out.len().max(1) as f64;
    let shares: Vec<f64> = out
        .iter()
        .map(LeadTime::warned_share)
        .filter(|x| !x.is_nan())
        .collect();
    let all_leads: Vec<usize> = out.iter().flat_map(|r| r.leads.iter().copied()).collect();
    let segs: usize = out.iter().map(|r| r.segments).sum();
    let warned: usize = out.iter().map(|r| r.warned).sum();
    writeln!(
        report,
        "{:<14} {:>6} {:>5} {:>7} {:>7.3} {:>8.1} {:>6} {:>9.3} {:>10} {:>13.3}",
        "mean",
        out.iter().map(|r| r.rows).sum::<usize>(),
        segs,
        warned,
        shares.iter().sum::<f64>() / shares.len().max(1) as f64,
        median_usize(&all_leads),
        out.iter().map(|r| r.false_warnings).sum::<usize>(),
        out.iter().map(LeadTime::false_per_day).sum::<f64>() / k,
        out.iter().map(|r| r.train_incidents).sum::<usize>(),
        out.iter()
            .map(LeadTime::false_incidents_per_day)
            .sum::<f64>()
            / k,
    )?;
    let mut per_day: Vec<f64> = out.iter().map(LeadTime::false_per_day).collect();
    writeln!(
        report,
        "median false/day over machines: {:.3}; machines with <= 1 false/day: {} of {}",
        crate::forecast::trend::median(&mut per_day).unwrap_or(f64::NAN),
        out.iter().filter(|r| r.false_per_day() <= 1.0).count(),
        out.len()
    )?;
    writeln!(
        report,
        "(share: mean over machines of segments warned ahead; lead_med: median over all warned segments, rows; false/day: mean over machines; false_inc/day: the model's own debounced incidents that are false, for comparison)"
    )?;
    Ok(out)
}

/// `anomalyd eval smd-risk`. The risk settings (horizon, warning level, debounce) come
/// from the config (defaults without one): the same for every machine, never tuned on
/// labels.
pub fn run(dataset: EvalDataset, out: &mut dyn Write) -> anyhow::Result<std::process::ExitCode> {
    let EvalDataset::SmdRisk {
        common,
        data,
        machines,
        spec,
        out: out_dir,
    } = dataset
    else {
        anyhow::bail!("not the smd-risk dataset");
    };
    let (config, _) = super::resolve_common(&common)?;
    let spec = super::spec(spec.as_deref(), &Spec::default())?;
    eval_smd_risk(
        &data,
        Some(&machines),
        &spec,
        &config.forecast.risk,
        out_dir.as_deref(),
        out,
    )?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_time_counts() {
        //            0      1      2      3     4     5      6      7      8      9
        let labels = [
            false, false, false, true, true, false, false, false, false, false,
        ];
        let warn = [
            false, true, true, true, false, false, false, true, false, false,
        ];
        let (warned, leads, false_w) = lead_time(&warn, &labels, 2);
        assert_eq!((warned, leads, false_w), (1, vec![2], 1));
        // Too early (outside the horizon) is not ahead, and is a false warning.
        let warn = [
            true, false, false, false, false, false, false, false, false, false,
        ];
        assert_eq!(lead_time(&warn, &labels, 2), (0, vec![], 1));
    }
}
