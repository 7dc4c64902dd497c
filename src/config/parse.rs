//! YAML -> Config (stub).
use super::Config;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration")]
pub struct ConfigErrors(pub Vec<String>);

pub fn parse(_text: &str) -> Result<Config, ConfigErrors> {
    Ok(Config::default())
}

pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    parse(&text)
}
