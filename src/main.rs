//! Thin entry point: parse the command line, set up logging, hand the command to the
//! commands layer, map errors to exit codes (0 ok, 1 runtime failure, 2 bad input such
//! as a bad config).

use std::process::ExitCode;

use clap::Parser;

use anomalyd::cli::Cli;
use anomalyd::settings::ConfigErrors;

fn main() -> ExitCode {
    let cli = Cli::parse();
    anomalyd::logging::init();
    match anomalyd::commands::dispatch(cli) {
        Ok(code) => code,
        // A reader that went away (`anomalyd score ... | head -1`) is not an error.
        Err(e) if anomalyd::commands::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", anomalyd::commands::error_text(&e));
            if e.downcast_ref::<ConfigErrors>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
