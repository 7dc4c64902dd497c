//! (stub: filled in by its issue)

use serde_yaml::Value;

use crate::config::Reader;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct IncidentConfig {}

/// Read the `incidents:` section; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> IncidentConfig {
    let _s = r.section(v, path, &[]);
    IncidentConfig::default()
}

mod types;

pub use types::{Cause, Change, Class, Incident, Label, Severity};
