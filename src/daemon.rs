//! `anomalyd run`: the sampling loop and everything it drives.
//!
//! One tokio task owns the tick: collectors run on the blocking pool (a hung statvfs
//! must not freeze the runtime), the sample goes through the [`Pipeline`] (history,
//! model), then the exporter re-renders /metrics and systemd gets `WATCHDOG=1`. If the
//! tick stops completing, the watchdog pings stop and systemd restarts us: that is the
//! point of sending them from here rather than from a timer of their own.
//!
//! Signals (mini-redis' shape): SIGTERM/SIGINT resolve the `shutdown` future and every
//! task ends; SIGHUP re-reads the config, and a bad one is logged and ignored.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::collect::{self, Collector};
use crate::config::{self, Config, ConfigErrors};
use crate::export::http::{self, Health};
use crate::export::metrics::Exporter;
use crate::export::webconfig;
use crate::notify::Notifier;
use crate::pipeline::Pipeline;
use crate::sample::{now_ms, Sample};

/// Command-line settings that win over the config file (re-applied on reload).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<std::net::SocketAddr>,
    pub state_dir: Option<PathBuf>,
    pub interval: Option<Duration>,
    pub ping_targets: Vec<String>,
}

/// The file (or the built-in defaults when there is none) with the overrides applied.
pub fn load_config(path: Option<&Path>, o: &Overrides) -> Result<Config, ConfigErrors> {
    let mut c = match path {
        Some(p) => config::load(p)?,
        None => Config::default(),
    };
    if let Some(l) = o.listen {
        c.listen = l;
    }
    if let Some(d) = &o.state_dir {
        c.state_dir = d.clone();
    }
    if let Some(i) = o.interval {
        c.interval = i;
    }
    if !o.ping_targets.is_empty() {
        c.collectors.ping.targets = o.ping_targets.clone();
    }
    Ok(c)
}

/// Create the state directory (owner-only: it holds history and tickets).
pub fn prepare_state_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))?;
    std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))
}

/// Run the daemon until `shutdown` resolves.
pub async fn run(
    config_path: Option<PathBuf>,
    overrides: Overrides,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut config = load_config(config_path.as_deref(), &overrides)?;
    crate::logging::set_level(&config.log_level);
    let state_dir = prepare_state_dir(&config.state_dir)?;
    match &config_path {
        Some(p) => {
            tracing::info!(config = %p.display(), state_dir = %state_dir.display(), "starting")
        }
        None => {
            tracing::info!(state_dir = %state_dir.display(), "starting with built-in defaults (no --config given)")
        }
    }
    let web = match &config.web_config_file {
        Some(p) => webconfig::load(p)?,
        None => webconfig::WebConfig {
            tls: None,
            auth: None,
            headers: Vec::new(),
        },
    };
    let scheme = if web.tls.is_some() { "https" } else { "http" };

    let mut exporter = Exporter::new(true)?;
    let health = Arc::new(Health::default());
    health
        .interval_ms
        .store(config.interval.as_millis() as i64, Ordering::Relaxed);
    let mut pipeline = Pipeline::open(&config, &state_dir)?;
    // External ticket sinks: their own thread, so a slow or dead sink never holds up
    // sampling; the outbox in tickets.db keeps what they have not acknowledged.
    let mut deliverer = start_deliverer(&config, &state_dir)?;

    let listener = http::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr()?;
    // Tests and scripts read this line to find an ephemeral port.
    tracing::info!("listening on {scheme}://{bound}/metrics");
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(http::serve(
        listener,
        http::State {
            rendered: exporter.rendered.clone(),
            health: health.clone(),
            web,
            tickets: config
                .incidents
                .enabled
                .then(|| crate::tickets::api::TicketsApi::new(state_dir.join("tickets.db"))),
        },
        stop_rx,
    ));

    let notifier = Notifier::from_env();
    if let Some(p) = Notifier::watchdog_period() {
        if config.interval * 2 > p {
            tracing::warn!(interval = ?config.interval, watchdog = ?p, "sampling interval is too long for the systemd watchdog");
        }
    }
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    tokio::pin!(shutdown);

    let mut collectors = collect::build(&config);
    let mut ticker = new_ticker(config.interval);
    tracing::debug!(interval = ?config.interval, collectors = collectors.len(), "sampling loop starting");
    let mut ready = false;
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = hup.recv() => {
                match load_config(config_path.as_deref(), &overrides) {
                    Ok(mut new) => {
                        if new.listen != config.listen || new.state_dir != config.state_dir || new.web_config_file != config.web_config_file || new.history != config.history {
                            tracing::warn!("listen, state_dir, web_config_file and history changes take effect on restart");
                        }
                        collectors = collect::build(&new);
                        if new.interval != config.interval {
                            ticker = new_ticker(new.interval);
                            health.interval_ms.store(new.interval.as_millis() as i64, Ordering::Relaxed);
                        }
                        if new.tickets.sinks != config.tickets.sinks {
                            deliverer = reload_deliverer(deliverer, &mut new, &config, &state_dir).await;
                        }
                        pipeline.reconfigure(&new);
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
                    _ = &mut shutdown => break,
                    r = tick => r.context("sampling task panicked")?,
                };
                collectors = back;
                pipeline.process(&mut sample);
                if let Some(d) = &deliverer {
                    d.wake();
                    d.stats().export(&mut sample);
                }
                for e in exporter.publish(&sample) {
                    tracing::warn!("export: {e}");
                }
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
            }
        }
    }
    tracing::info!("shutting down");
    notifier.send("STOPPING=1");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    pipeline.close();
    if let Some(d) = deliverer {
        // A request in flight gets a moment to finish; if it does not, its row stays
        // "in doubt" and is retried, with a look-up, after the restart.
        let _ = tokio::task::spawn_blocking(move || d.stop(Duration::from_secs(2))).await;
    }
    Ok(())
}

fn start_deliverer(
    config: &Config,
    state_dir: &Path,
) -> anyhow::Result<Option<crate::tickets::outbox::DelivererHandle>> {
    if config.tickets.sinks.is_empty() {
        return Ok(None);
    }
    let db = state_dir.join("tickets.db");
    let d = crate::tickets::outbox::Deliverer::open(&db, &config.tickets.sinks)?;
    let names: Vec<&str> = config
        .tickets
        .sinks
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    tracing::info!(sinks = %names.join(","), "ticket delivery started");
    Ok(Some(
        d.spawn(Duration::from_secs(1))
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
    old: Option<crate::tickets::outbox::DelivererHandle>,
    new: &mut Config,
    running: &Config,
    state_dir: &Path,
) -> Option<crate::tickets::outbox::DelivererHandle> {
    let fresh = if new.tickets.sinks.is_empty() {
        Ok(None)
    } else {
        crate::tickets::outbox::Deliverer::open(&state_dir.join("tickets.db"), &new.tickets.sinks)
            .map(Some)
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
            fresh.and_then(|d| match d.spawn(Duration::from_secs(1)) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::error!(
                        "cannot start the outbox thread; deliveries wait until a restart: {e}"
                    );
                    None
                }
            })
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

/// One sample, for `collect --once`: two readings one interval apart so rates exist,
/// with the forecast from the state directory's history and model.
pub fn collect_once(config: &Config) -> Sample {
    let mut collectors: Vec<Box<dyn Collector>> = collect::build(config);
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
    crate::pipeline::forecast_once(config, &mut sample);
    sample
}
