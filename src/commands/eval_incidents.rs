//! `anomalyd eval incidents` and `anomalyd eval generate`: the incident figures of
//! labelled series (SMD, or any CSV with a label column), and the generated host to
//! check them on.

use std::io::Write;

use anyhow::Context;

use crate::cli::EvalDataset;
use crate::eval::incidents::{self, Outcome, Series};
use crate::eval::synth;

pub fn run(
    dataset: EvalDataset,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> anyhow::Result<std::process::ExitCode> {
    match dataset {
        EvalDataset::Generate {
            days,
            seed,
            faults,
            out: path,
        } => {
            let spec = synth::Spec::month(seed, faults, days);
            let series = synth::generate(&spec);
            if path.as_os_str() == "-" {
                series.write_csv(out)?;
            } else {
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let mut w = std::io::BufWriter::new(file);
                series.write_csv(&mut w)?;
                w.flush()
                    .with_context(|| format!("writing {}", path.display()))?;
                writeln!(log, "{} rows -> {}", series.rows.len(), path.display())?;
            }
        }
        EvalDataset::Incidents {
            common,
            smd,
            machines,
            input,
            label_column,
            json,
        } => {
            let (config, _) = super::resolve_common(&common)?;
            // One series at a time: a month of rows is all the memory this needs.
            let mut loaders: Vec<Box<dyn Fn() -> anyhow::Result<Series>>> = Vec::new();
            match &smd {
                Some(dir) => {
                    let names = if machines.is_empty() {
                        super::eval::smd_machines(dir)?
                    } else {
                        machines.clone()
                    };
                    for m in names {
                        let (dir, config) = (dir.clone(), config.clone());
                        loaders.push(Box::new(move || incidents::smd_series(&dir, &m, &config)));
                    }
                }
                None => {
                    for path in &input {
                        let (path, config, col) =
                            (path.clone(), config.clone(), label_column.clone());
                        loaders.push(Box::new(move || {
                            incidents::csv_series(&path, &col, &config)
                        }));
                    }
                }
            }
            writeln!(
                out,
                "{:<16} {:>5} {:>4} {:>6} {:>7} {:>5} {:>9} {:>9}",
                "series", "segs", "det", "recall", "tickets", "false", "false/day", "med.delay"
            )?;
            let mut outcomes: Vec<Outcome> = Vec::new();
            for load in &loaders {
                let series = load()?;
                let pages = incidents::pages(&series)?;
                let o = incidents::score(&series, &pages);
                let mut d = o.delays_min.clone();
                d.sort_by(f64::total_cmp);
                let med = d
                    .get(d.len() / 2)
                    .map_or("-".to_string(), |m| format!("{m:.0} min"));
                writeln!(
                    out,
                    "{:<16} {:>5} {:>4} {:>6.2} {:>7} {:>5} {:>9.2} {:>9}",
                    o.name,
                    o.segments,
                    o.detected,
                    o.recall(),
                    o.tickets,
                    o.false_tickets,
                    o.false_per_day(),
                    med
                )?;
                outcomes.push(o);
            }
            let t = incidents::totals(&outcomes);
            writeln!(
                out,
                "TOTAL recall={:.3} ({}/{}) false={} false_per_host_day={:.3} median_delay_min={}",
                t.recall,
                t.detected,
                t.segments,
                t.false_tickets,
                t.false_per_day,
                t.median_delay_min
                    .map_or("-".to_string(), |m| format!("{m:.0}"))
            )?;
            if let Some(path) = json {
                let doc = serde_json::json!({ "series": outcomes, "total": t });
                std::fs::write(&path, serde_json::to_vec_pretty(&doc)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        EvalDataset::Smd { .. } | EvalDataset::SmdRisk { .. } => {
            unreachable!("dispatched elsewhere")
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
