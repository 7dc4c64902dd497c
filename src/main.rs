//! Thin entry point: parse the command line, set up logging, call the library, map
//! errors to exit codes (0 ok, 1 runtime failure, 2 bad input such as a bad config).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use anomalyd::cli::{Cli, Command, Common, EvalDataset};
use anomalyd::config::ConfigErrors;
use anomalyd::daemon::{self, Overrides};

fn main() -> ExitCode {
    let cli = Cli::parse();
    anomalyd::logging::init();
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
        Command::Train(args) => {
            let config = daemon::load_config(
                args.common.config.as_deref(),
                &common_overrides(&args.common),
            )?;
            let spec = match &args.spec {
                Some(p) => anomalyd::model::Spec::from_json(&std::fs::read_to_string(p)?)?,
                None => config.model.spec.clone(),
            };
            let mut err = std::io::stderr();
            // clap guarantees exactly one of --input and --history.
            match &args.input {
                Some(input) => {
                    let out = args
                        .out
                        .ok_or_else(|| anyhow::anyhow!("--out MODEL is required with --input"))?;
                    anomalyd::model::commands::train(input, &out, &spec, &mut err)?;
                }
                None => {
                    let state_dir = daemon::prepare_state_dir(&config.state_dir)?;
                    let out = args.out.unwrap_or_else(|| state_dir.join("model.json"));
                    anomalyd::replay::train_from_history(
                        &config, &state_dir, &spec, &out, &mut err,
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Score(args) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            anomalyd::model::commands::score(&args.model, &args.input, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => {
            let config = daemon::load_config(
                args.common.config.as_deref(),
                &common_overrides(&args.common),
            )?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            anomalyd::replay::replay(
                &config,
                &args.input,
                args.common.state_dir.as_deref(),
                args.forecast,
                &mut out,
                &mut std::io::stderr(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tickets { command } => {
            anomalyd::tickets::cli::run_tickets(command, &mut std::io::stdout().lock())
        }
        Command::Silence { command } => {
            anomalyd::tickets::cli::run_silence(command, &mut std::io::stdout().lock())
        }
        Command::Remediation { command } => anomalyd::remediate::cli::run(command),
        Command::Eval {
            dataset:
                EvalDataset::Smd {
                    data,
                    out,
                    machines,
                    spec,
                },
        } => {
            let spec = match &spec {
                Some(p) => anomalyd::model::Spec::from_json(&std::fs::read_to_string(p)?)?,
                None => anomalyd::model::Spec::default(),
            };
            let mut stdout = std::io::stdout().lock();
            anomalyd::model::commands::eval_smd(
                &data,
                out.as_deref(),
                Some(&machines),
                &spec,
                &mut stdout,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval {
            dataset:
                EvalDataset::SmdRisk {
                    common,
                    data,
                    machines,
                    spec,
                    out,
                },
        } => {
            // The risk settings (horizon, warning level, debounce) come from the config
            // (defaults without one): the same for every machine, never tuned on labels.
            let config = daemon::load_config(common.config.as_deref(), &common_overrides(&common))?;
            let spec = match &spec {
                Some(p) => anomalyd::model::Spec::from_json(&std::fs::read_to_string(p)?)?,
                None => anomalyd::model::Spec::default(),
            };
            let mut stdout = std::io::stdout().lock();
            anomalyd::forecast::eval::eval_smd_risk(
                &data,
                Some(&machines),
                &spec,
                &config.forecast.risk,
                out.as_deref(),
                &mut stdout,
            )?;
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

fn common_overrides(c: &Common) -> Overrides {
    Overrides {
        state_dir: c.state_dir.clone(),
        ..Default::default()
    }
}
