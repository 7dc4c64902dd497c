//! Thin entry point: parse the command line, set up logging, hand the command to the
//! commands layer, map errors to exit codes (0 ok, 1 runtime failure, 2 bad input such
//! as a bad config).

use std::process::ExitCode;

use clap::Parser;

use anomalyd::cli::Cli;
use anomalyd::settings::ConfigErrors;

/// Whether the error is the input's fault (a file the operator gave us), not the
/// machine's: those exit 2.
fn bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<ConfigErrors>()
            || c.is::<anomalyd::export::webconfig::WebConfigError>()
            || c.is::<anomalyd::model::csv::CsvError>()
            || c.is::<anomalyd::model::LoadError>()
            || c.is::<anomalyd::model::spec::SpecError>()
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    anomalyd::logging::init();
    match anomalyd::commands::dispatch(cli) {
        Ok(code) => code,
        // A reader that went away (`anomalyd score ... | head -1`) is not an error.
        Err(e) if anomalyd::commands::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", anomalyd::commands::error_text(&e));
            if bad_input(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
