//! `anomalyd collect --once`: what the daemon sees on this host right now, as a table
//! or JSON, with the forecast from the state directory's history and model.

use std::io::Write;
use std::process::ExitCode;

use super::{resolve, Overrides};
use crate::cli::CollectArgs;
use crate::collect::{self, Collector};
use crate::export::table::History;
use crate::sample::{now_ms, Sample};
use crate::settings::Config;

pub fn run(args: CollectArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let flags = Overrides {
        state_dir: args.common.state_dir,
        ping_targets: args.ping_targets,
        ..Default::default()
    };
    let (config, _) = resolve(args.common.config.as_deref(), &flags)?;
    let (sample, history) = collect_once(&config);
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &sample)?;
        writeln!(out)?;
    } else {
        crate::export::table::write(out, &sample, history)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One sample: two readings one interval apart so rates exist, with the forecast from
/// the state directory's history and model, and whether there was history for it.
pub fn collect_once(config: &Config) -> (Sample, History) {
    let mut collectors: Vec<Box<dyn Collector>> = collect::build(&config.paths, &config.collectors);
    let _ = collect::run_all(&mut collectors, now_ms());
    // Ping rounds run in the background; give one round time to finish.
    let wait = if config.collectors.ping.enabled && !config.collectors.ping.targets.is_empty() {
        let p = &config.collectors.ping;
        (p.packet_interval * p.packets + p.timeout).max(config.interval)
    } else {
        config.interval
    };
    std::thread::sleep(wait);
    let mut sample = collect::run_all(&mut collectors, now_ms());
    let seeded = crate::pipeline::forecast_once(config, &mut sample).1;
    let history = if seeded > 0 {
        History::Some
    } else {
        History::None
    };
    (sample, history)
}
