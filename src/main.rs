//! Thin entry point: parse the command line, set up logging, call the library, map
//! errors to exit codes (0 ok, 1 runtime failure, 2 bad input such as a bad config).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use anomalyd::cli::{Cli, Command};
use anomalyd::config::ConfigErrors;
use anomalyd::daemon::{self, Overrides};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = std::env::var("ANOMALYD_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<ConfigErrors>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let overrides = Overrides {
                listen: args.listen,
                state_dir: args.common.state_dir,
                interval: args.interval,
                ping_targets: args.ping_targets,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(4)
                .build()?;
            let result = rt.block_on(daemon::run(
                args.common.config,
                overrides,
                anomalyd::signals::shutdown(),
            ));
            // A collector stuck in a syscall must not hold the process past SIGTERM.
            rt.shutdown_timeout(std::time::Duration::from_millis(500));
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { path } => {
            let config = anomalyd::config::load(&path)?;
            if let Some(web) = &config.web_config_file {
                anomalyd::export::webconfig::load(web)?;
            }
            println!("{}: ok", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Collect(args) => {
            let overrides = Overrides {
                state_dir: args.common.state_dir,
                ping_targets: args.ping_targets,
                ..Default::default()
            };
            let config = daemon::load_config(args.common.config.as_deref(), &overrides)?;
            let sample = daemon::collect_once(&config);
            let mut out = std::io::stdout().lock();
            if args.json {
                serde_json::to_writer_pretty(&mut out, &sample)?;
                writeln!(out)?;
            } else {
                anomalyd::export::table::write(&mut out, &sample)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
