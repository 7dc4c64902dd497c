//! Series the daemon stores beside the sampled features: what the model made of each
//! sample (its smoothed anomaly score and the threshold it was judged against), so
//! the report and the dashboard can draw the score over days after the fact.
//!
//! They live in the same rows as the features (one block, one write), under names no
//! collector produces ([`PREFIX`]); the model's feature discovery skips them
//! ([`is_derived`]), so training never learns from its own output.

/// Every derived series' name starts with this (a colon: no collector's name has one).
pub const PREFIX: &str = "derived:";
/// The model's smoothed anomaly score of the sample.
pub const ANOMALY_SCORE: &str = "derived:anomaly_score";
/// The model's decision threshold when the sample was scored.
pub const ANOMALY_THRESHOLD: &str = "derived:anomaly_threshold";

/// Whether `name` is a derived series rather than a sampled feature.
pub fn is_derived(name: &str) -> bool {
    name.starts_with(PREFIX)
}
