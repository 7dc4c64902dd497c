//! `anomalyd check-config FILE`: every problem in a configuration (and the web config
//! it names), each with its YAML path; exit 2 if there is any.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

pub fn run(path: &Path, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let config = crate::settings::load(path)?;
    if let Some(web) = &config.web_config_file {
        crate::export::webconfig::load(web)?;
    }
    writeln!(out, "{}: ok", path.display())?;
    Ok(ExitCode::SUCCESS)
}
