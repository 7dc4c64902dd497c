//! The commands layer: one file per subcommand, each turning its parsed arguments
//! into calls on the library and output on stdout/stderr. `main.rs` parses and calls
//! [`dispatch`]; no module below this layer imports it, `cli` or `daemon`'s callers.
//!
//! [`resolve`] is the one step from the command line to what a command works with:
//! the config file (or the built-in defaults) with the flags that win over it, and
//! the state directory it names. The directory is not created here: the commands that
//! write to it create it ([`StateDir::create`]), the others only read what is there.

pub mod check_config;
pub mod collect;
pub mod eval;
pub mod eval_incidents;
pub mod eval_risk;
pub mod remediation;
pub mod replay;
pub mod report;
pub mod run;
pub mod score;
pub mod silence;
pub mod tickets;
pub mod train;

use std::net::SocketAddr;

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{Cli, Command, Common, EvalDataset};
use crate::model::Spec;
use crate::settings::{self, Config, ConfigErrors};
use crate::store::StateDir;

/// Command-line settings that win over the config file (re-applied on reload).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub state_dir: Option<PathBuf>,
    pub interval: Option<Duration>,
    pub ping_targets: Vec<String>,
}

impl Overrides {
    /// The file (or the built-in defaults when there is none) with the flags applied.
    pub fn load(&self, file: Option<&Path>) -> Result<Config, ConfigErrors> {
        let mut c = match file {
            Some(p) => settings::load(p)?,
            None => Config::default(),
        };
        if let Some(l) = self.listen {
            c.listen = l;
        }
        if let Some(d) = &self.state_dir {
            c.state_dir = d.clone();
        }
        if let Some(i) = self.interval {
            c.interval = i;
        }
        if !self.ping_targets.is_empty() {
            c.collectors.ping.targets = self.ping_targets.clone();
        }
        Ok(c)
    }
}

/// `--config FILE` and the flags, resolved: the configuration and its state directory.
pub fn resolve(file: Option<&Path>, flags: &Overrides) -> Result<(Config, StateDir), ConfigErrors> {
    let config = flags.load(file)?;
    let state = StateDir::at(&config.state_dir);
    Ok((config, state))
}

/// [`resolve`] for the flags most commands share: `--config` and `--state-dir`.
pub fn resolve_common(common: &Common) -> Result<(Config, StateDir), ConfigErrors> {
    let flags = Overrides {
        state_dir: common.state_dir.clone(),
        ..Default::default()
    };
    resolve(common.config.as_deref(), &flags)
}

/// Model hyper-parameters from `--spec FILE`, or `default`.
fn spec(file: Option<&Path>, default: &Spec) -> anyhow::Result<Spec> {
    Ok(match file {
        Some(p) => Spec::from_json(
            &crate::config::file::read_text(p, crate::config::file::SMALL)
                .with_context(|| format!("reading {}", p.display()))?,
        )?,
        None => default.clone(),
    })
}

/// `e` and its causes, each said once: a message that already quotes its cause
/// (`cannot read x.csv: No such file or directory (os error 2)`) is not followed by
/// the cause again, as `{:#}` would.
pub fn error_text(e: &anyhow::Error) -> String {
    crate::text::error_chain(e.as_ref())
}

/// Whether `e` is a write to a pipe whose reader has gone (`| head`): Unix tools
/// stop quietly then (Rust ignores SIGPIPE, so the write fails with EPIPE instead of
/// killing the process).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Run one parsed command line.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let stdout = || std::io::stdout().lock();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::CheckConfig { path } => check_config::run(&path, &mut stdout()),
        Command::Collect(args) => collect::run(args, &mut stdout()),
        Command::Train(args) => train::run(args, &mut std::io::stderr()),
        Command::Score(args) => {
            let mut out = std::io::BufWriter::new(stdout());
            score::score(&args.model, &args.input, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => {
            crate::memory::keep_freed();
            let mut out = std::io::BufWriter::new(stdout());
            replay::run(args, &mut out, &mut std::io::stderr())
        }
        Command::Tickets { command } => tickets::run(command, &mut stdout()),
        Command::Report(args) => report::run(args, &mut stdout()),
        Command::Silence { command } => silence::run(command, &mut stdout()),
        Command::Remediation { command } => remediation::run(command, &mut stdout()),
        Command::Eval {
            dataset: dataset @ EvalDataset::Smd { .. },
        } => eval::run(dataset, &mut stdout()),
        Command::Eval {
            dataset: dataset @ EvalDataset::SmdRisk { .. },
        } => eval_risk::run(dataset, &mut stdout()),
        Command::Eval {
            dataset: dataset @ (EvalDataset::Incidents { .. } | EvalDataset::Generate { .. }),
        } => eval_incidents::run(dataset, &mut stdout(), &mut std::io::stderr()),
    }
}
