//! `anomalyd run`: the sampling loop and everything it drives.
//!
//! One tokio task owns the tick: collectors run on the blocking pool (a hung statvfs
//! must not freeze the runtime), the sample goes down the tick path ([`Pipeline`]),
//! then the exporter re-renders /metrics and systemd gets `WATCHDOG=1`. If the tick
//! stops completing, the watchdog pings stop and systemd restarts us: that is the
//! point of sending them from here rather than from a timer of their own.
//!
//! [`run`] takes what it needs already resolved (the configuration, the state
//! directory, how to re-read the configuration) and a `shutdown` future (mini-redis'
//! shape): when it resolves, the one shutdown token ([`crate::shutdown`]) fires for
//! every worker and [`finish`] stops them in order. SIGHUP re-reads the config; a bad
//! one is logged and ignored.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::Signal;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::collect;
use crate::export::http::{self, Health};
use crate::export::metrics::Exporter;
use crate::export::web::views::Views;
use crate::export::web::{Dashboard, Live};
use crate::export::webconfig;
use crate::notify::Notifier;
use crate::pipeline::Pipeline;
use crate::sample::{now_ms, Sample};
use crate::settings::{Config, ConfigErrors};
use crate::shutdown::{self, Shutdown};
use crate::store::StateDir;
use crate::tickets::outbox::{Deliverer, DelivererHandle};

/// How the daemon re-reads its configuration on SIGHUP (the file, with the command
/// line's flags applied again), and which file that is, for the logs.
pub struct Reload {
    pub file: Option<PathBuf>,
    /// Runs on the blocking pool, so a slow parse never holds up a tick.
    pub load: Arc<dyn Fn() -> Result<Config, ConfigErrors> + Send + Sync>,
    /// SIGHUP, caught from before the daemon starts (its default action ends the
    /// process): a reload asked for during the start is done once the loop runs.
    pub hangup: Signal,
}

/// Run the daemon until `shutdown` resolves.
pub async fn run(
    config: Config,
    state: StateDir,
    reload: Reload,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut config = config;
    let mut reload = reload;
    crate::logging::set_level(&config.log_level);
    match &reload.file {
        Some(p) => {
            tracing::info!(config = %p.display(), state_dir = %state.path().display(), "starting")
        }
        None => {
            tracing::info!(state_dir = %state.path().display(), "starting with built-in defaults (no --config given)")
        }
    }
    let web = match &config.web_config_file {
        Some(p) => webconfig::load(p)?,
        None => webconfig::WebConfig::plain(),
    };
    let scheme = if web.tls.is_some() { "https" } else { "http" };
    let (trigger, token) = shutdown::channel();

    let mut exporter = Exporter::new(true)?;
    let health = Arc::new(Health::default());
    health
        .interval_ms
        .store(config.interval.as_millis() as i64, Ordering::Relaxed);
    let mut pipeline = Pipeline::open(&config, &state)?;
    health.set_off(pipeline.components_off());
    // External ticket sinks: their own thread, so a slow or dead sink never holds up
    // sampling; the outbox in tickets.db keeps what they have not acknowledged.
    let mut deliverer = start_deliverer(&config, &state, &token)?;

    check_fds(&config)?;
    let listener =
        http::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr()?;
    // Tests and scripts read this line to find an ephemeral port.
    tracing::info!("listening on {scheme}://{bound}/metrics");
    let tickets_api = config.incidents.enabled.then(|| {
        crate::tickets::api::TicketsApi::new(state.tickets(), config.tickets.sink_names())
    });
    // Kept for reloads: the dashboard's actions are delivered to the sinks of the day.
    let actions_api = tickets_api.clone();
    let live = Live::default();
    let dashboard = Dashboard::new(
        live.clone(),
        tickets_api.clone(),
        Some(Views::new(
            state.clone(),
            config.history.clone(),
            config.paths.sysfs.clone(),
            config.health.weights.clone(),
        )),
        web.auth.is_some(),
        config.http.dashboard_loopback_writes,
    );
    let server = http::spawn(
        listener,
        http::State {
            rendered: exporter.rendered.clone(),
            health: health.clone(),
            web,
            tickets: tickets_api,
            dashboard,
            report: Some(crate::export::report::ReportRoute::new(
                config.report_source(&state),
            )),
        },
        config.http.clone(),
        token.clone(),
    )
    .context("starting the HTTP server thread")?;

    let notifier = Notifier::from_env();
    if let Some(p) = Notifier::watchdog_period() {
        if config.interval * 2 > p {
            tracing::warn!(interval = ?config.interval, watchdog = ?p, "sampling interval is too long for the systemd watchdog");
        }
    }
    tokio::pin!(shutdown);

    let mut collectors = collect::build(&config.paths, &config.collectors);
    let mut ticker = new_ticker(config.interval);
    tracing::debug!(interval = ?config.interval, collectors = collectors.len(), "sampling loop starting");
    let mut ready = false;
    let mut ticks: u64 = 0;
    let mut trim = crate::memory::Trim::every(Duration::from_secs(60));
    // (timestamp of the previous sample, the longest gap between two so far): a
    // stalled tick shows here, whatever clients or files did (benches/load.py).
    let mut gaps: (Option<i64>, i64) = (None, 0);
    let mut reloading: Option<JoinHandle<Result<Config, ConfigErrors>>> = None;
    let result: anyhow::Result<()> = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = reload.hangup.recv() => {
                if reloading.is_some() {
                    tracing::info!("SIGHUP: a reload is already running");
                } else {
                    let load = reload.load.clone();
                    reloading = Some(tokio::task::spawn_blocking(move || load()));
                }
            }
            loaded = finished(&mut reloading) => {
                reloading = None;
                match loaded.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                    Ok(mut new) => {
                        if new.listen != config.listen || new.state_dir != config.state_dir || new.web_config_file != config.web_config_file || new.history != config.history {
                            tracing::warn!("listen, state_dir, web_config_file and history changes take effect on restart");
                        }
                        collectors = collect::build(&new.paths, &new.collectors);
                        if new.interval != config.interval {
                            ticker = new_ticker(new.interval);
                            health.interval_ms.store(new.interval.as_millis() as i64, Ordering::Relaxed);
                        }
                        if new.tickets.sinks != config.tickets.sinks {
                            deliverer = reload_deliverer(deliverer, &mut new, &config, &state, &token).await;
                        }
                        pipeline.reconfigure(&new);
                        if let Some(api) = &actions_api {
                            api.set_sinks(new.tickets.sink_names());
                        }
                        crate::logging::set_level(&new.log_level);
                        config = new;
                        tracing::info!("configuration reloaded");
                        notifier.send("STATUS=configuration reloaded");
                    }
                    Err(e) => tracing::error!("reload failed, keeping the running configuration: {e}"),
                }
            }
            _ = ticker.tick() => {
                let ts = now_ms();
                let tick = tokio::task::spawn_blocking(move || {
                    let sample = collect::run_all(&mut collectors, ts);
                    (collectors, sample)
                });
                // A shutdown during a slow tick must not wait for it.
                let (back, mut sample) = tokio::select! {
                    _ = &mut shutdown => break Ok(()),
                    r = tick => match r.context("sampling task panicked") {
                        Ok(r) => r,
                        Err(e) => break Err(e),
                    },
                };
                collectors = back;
                if let Some(prev) = gaps.0 {
                    gaps.1 = gaps.1.max(sample.timestamp_ms - prev);
                }
                gaps.0 = Some(sample.timestamp_ms);
                sample.info(
                    "sampling_longest_gap_seconds",
                    "The longest time between two consecutive samples since the daemon started",
                    &[],
                    gaps.1 as f64 / 1000.0,
                );
                pipeline.process(&mut sample);
                if let Some(d) = &deliverer {
                    d.wake();
                    d.stats().export(&mut sample);
                }
                for e in exporter.publish(&sample) {
                    tracing::warn!("export: {e}");
                }
                live.update(&sample);
                health.tick(now_ms());
                notifier.send("WATCHDOG=1");
                ticks += 1;
                if !ready {
                    ready = true;
                    notifier.send("READY=1");
                    tracing::info!("first sample taken; ready");
                }
                if ticks % 10 == 1 {
                    notifier.send(&format!("STATUS={}", status_line(&sample, &pipeline)));
                }
                trim.tick(now_ms());
            }
        }
    };
    trigger.fire();
    finish(&notifier, server, pipeline, deliverer).await;
    result
}

/// The one place the daemon stops. By now the tick loop has ended and the shutdown
/// token has fired; in this order:
///
/// 1. the HTTP server (it stopped accepting when the token fired and drops open
///    connections) is awaited, for up to 1 s;
/// 2. the pipeline is closed: the history writer stores what is queued and is joined,
///    for up to 500 ms (past that the WAL keeps the file consistent); a training run
///    is abandoned (it writes nothing partial); remediation's worker threads end with
///    their queues;
/// 3. the outbox thread (it starts no new round once the token fired): a request in
///    flight gets up to 2 s; one still running then keeps its row "in doubt" and is
///    retried, with a look-up, after the restart.
///
/// `commands/run.rs` then gives blocking work 500 ms (a collector stuck in a syscall
/// must not hold the process past SIGTERM) and drops the runtime.
async fn finish(
    notifier: &Notifier,
    server: http::Server,
    pipeline: Pipeline,
    deliverer: Option<DelivererHandle>,
) {
    tracing::info!("shutting down");
    notifier.send("STOPPING=1");
    let _ = tokio::task::spawn_blocking(move || server.join(Duration::from_secs(1))).await;
    let _ = tokio::task::spawn_blocking(move || pipeline.close(Duration::from_millis(500))).await;
    if let Some(d) = deliverer {
        let _ = tokio::task::spawn_blocking(move || d.stop(Duration::from_secs(2))).await;
    }
}

/// The reload running on the blocking pool, when it is done; never, when none runs.
async fn finished<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}

/// Refuse to start when the connection cap leaves too few descriptors for sampling:
/// a server full of connections must never make the collectors fail to open /proc.
fn check_fds(config: &Config) -> Result<(), ConfigErrors> {
    use crate::export::config::RESERVED_FDS;
    let limit = http::fd_limit();
    let need = config.http.max_connections.saturating_add(RESERVED_FDS);
    if need > limit {
        return Err(ConfigErrors(vec![format!(
            "http.max_connections: {} connections need {need} file descriptors with the \
             {RESERVED_FDS} kept for sampling, but the limit is {limit} (raise LimitNOFILE \
             or lower http.max_connections)",
            config.http.max_connections
        )]));
    }
    Ok(())
}

fn start_deliverer(
    config: &Config,
    state: &StateDir,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<DelivererHandle>> {
    if config.tickets.sinks.is_empty() {
        return Ok(None);
    }
    let d = Deliverer::open(&state.tickets(), &config.tickets.sinks)?;
    let names: Vec<&str> = config
        .tickets
        .sinks
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    tracing::info!(sinks = %names.join(","), "ticket delivery started");
    Ok(Some(
        d.spawn_until(Duration::from_secs(1), shutdown.clone())
            .context("starting the outbox thread")?,
    ))
}

/// SIGHUP with changed `tickets.sinks`: build the new sinks first (their secrets are
/// read again, so this is also how a rotated token is picked up); only if that works
/// stop the old delivery thread and start the new one. If it fails, the running sinks
/// stay and `new` keeps their configuration, so the ticket store queues deliveries
/// only for sinks that exist. Rows queued for a sink that was removed stay in the
/// outbox (`outbox_pending{sink}` shows them) and go out if it comes back.
async fn reload_deliverer(
    old: Option<DelivererHandle>,
    new: &mut Config,
    running: &Config,
    state: &StateDir,
    shutdown: &Shutdown,
) -> Option<DelivererHandle> {
    let fresh = if new.tickets.sinks.is_empty() {
        Ok(None)
    } else {
        Deliverer::open(&state.tickets(), &new.tickets.sinks).map(Some)
    };
    match fresh {
        Ok(fresh) => {
            if let Some(d) = old {
                // The in-flight request gets a moment, as at shutdown.
                let _ = tokio::task::spawn_blocking(move || d.stop(Duration::from_secs(2))).await;
            }
            let names: Vec<&str> = new.tickets.sinks.iter().map(|s| s.name.as_str()).collect();
            tracing::info!(sinks = %names.join(","), "ticket sinks reloaded");
            // Nothing is lost if the thread cannot start: the rows wait in the outbox.
            fresh.and_then(
                |d| match d.spawn_until(Duration::from_secs(1), shutdown.clone()) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        tracing::error!(
                            "cannot start the outbox thread; deliveries wait until a restart: {e}"
                        );
                        None
                    }
                },
            )
        }
        Err(e) => {
            tracing::error!("tickets.sinks not reloaded, keeping the running sinks: {e}");
            new.tickets.sinks = running.tickets.sinks.clone();
            old
        }
    }
}

fn new_ticker(interval: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(interval);
    // After a stall, sample now and carry on; a burst of catch-up ticks would only
    // produce near-identical samples and skewed rates.
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

fn status_line(sample: &Sample, pipeline: &Pipeline) -> String {
    let failed: Vec<&str> = sample
        .runs
        .iter()
        .filter(|r| !r.success)
        .map(|r| r.collector)
        .collect();
    let collectors = if failed.is_empty() {
        format!("{} collectors ok", sample.runs.len())
    } else {
        format!("collectors failing: {}", failed.join(","))
    };
    format!("{collectors}; {}", pipeline.status())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::History;

    /// mini-redis' test shape: the shutdown is just a future handed to `run`. Here it
    /// resolves once the daemon has stored a few samples, as a signal would mid-run;
    /// `run` must then return promptly, with the history intact and holding them.
    #[tokio::test]
    async fn run_returns_when_its_shutdown_future_resolves_and_keeps_the_samples() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::create(dir.path()).unwrap();
        let config = Config {
            interval: Duration::from_millis(50),
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: state.path().to_path_buf(),
            // Other processes (`stored` below) see samples once their block is written.
            history: crate::store::HistoryConfig {
                flush_interval: Duration::from_secs(1),
                ..Default::default()
            },
            ..Config::default()
        };
        let reload = Reload {
            file: None,
            load: Arc::new(|| Ok(Config::default())),
            hangup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap(),
        };
        let stored = {
            let (path, config) = (state.history(), config.history.clone());
            move || {
                path.exists()
                    .then(|| History::open(&path, &config).ok()?.stats().ok())
                    .flatten()
                    .map_or(0, |s| s.raw_rows)
            }
        };
        let fired = std::sync::Arc::new(std::sync::Mutex::new(None));
        let stop = {
            let (stored, fired) = (stored.clone(), fired.clone());
            async move {
                while stored() < 3 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                *fired.lock().unwrap() = Some(std::time::Instant::now());
            }
        };
        let result =
            tokio::time::timeout(Duration::from_secs(60), run(config, state, reload, stop)).await;
        assert!(
            matches!(result, Ok(Ok(()))),
            "run did not end cleanly: {result:?}"
        );
        let fired = fired.lock().unwrap().unwrap();
        assert!(
            fired.elapsed() < Duration::from_secs(3),
            "{:?}",
            fired.elapsed()
        );
        assert!(stored() >= 3, "the history lost samples");
    }
}
