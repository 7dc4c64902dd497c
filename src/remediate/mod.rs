//! (stub: filled in by its issue)

use serde_yaml::Value;

use crate::config::Reader;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemediationConfig {}

/// Read the `remediation:` section; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> RemediationConfig {
    let _s = r.section(v, path, &[]);
    RemediationConfig::default()
}
