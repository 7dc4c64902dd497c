//! Evaluation against labelled data, through the daemon's own code: the incident
//! figures (`incidents`: what a recorded series would have paged) and the generated
//! host they are checked on (`synth`). The point-wise detection metrics of the model
//! alone are `model::eval`.

pub mod incidents;
pub mod synth;

use std::path::Path;

use anyhow::Context;

/// An SMD label file: one `0` or `1` per row (a first CSV field, read as a number).
pub fn read_labels(path: &Path) -> anyhow::Result<Vec<bool>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(
            |(i, l)| match l.split(',').next().unwrap_or("").parse::<f64>() {
                Ok(0.0) => Ok(false),
                Ok(1.0) => Ok(true),
                _ => anyhow::bail!(
                    "{}:{}: label must be 0 or 1, got {l:?}",
                    path.display(),
                    i + 1
                ),
            },
        )
        .collect()
}
