//! `anomalyd run`: the daemon, on a runtime of its own, until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::{resolve, Overrides};
use crate::cli::RunArgs;
use crate::daemon::{self, Reload};
use crate::store::StateDir;

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    crate::memory::one_arena();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()?;
    // The signals are caught before anything else: see `shutdown::signal`.
    let (stop, hangup) = {
        let _in = rt.enter();
        let stop = crate::shutdown::signal().context("catching SIGTERM and SIGINT")?;
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("catching SIGHUP")?;
        (stop, hangup)
    };
    let flags = Overrides {
        listen: args.listen,
        state_dir: args.common.state_dir,
        interval: args.interval,
        ping_targets: args.ping_targets,
    };
    let file = args.common.config;
    let (config, state) = resolve(file.as_deref(), &flags)?;
    let state = StateDir::create(state.path())?;
    // Before the pipeline opens, so a model read from Prometheus is the one it loads
    // and the first tick is scored.
    super::train::bootstrap_at_start(&config, &state);
    // SIGHUP reads the file again and applies the same flags over it.
    let reload = Reload {
        file: file.clone(),
        load: std::sync::Arc::new(move || flags.load(file.as_deref())),
        hangup,
    };
    let result = rt.block_on(daemon::run(config, state, reload, stop));
    // A collector stuck in a syscall must not hold the process past SIGTERM.
    rt.shutdown_timeout(Duration::from_millis(500));
    result?;
    Ok(ExitCode::SUCCESS)
}
