//! Logging: to stderr (journald under systemd), with a level the config's `log_level`
//! sets at start and on every reload. `ANOMALYD_LOG` (a tracing filter such as
//! `anomalyd=debug`) wins over the config when set, for one-off debugging.

use std::sync::OnceLock;

use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, EnvFilter, Registry};

static HANDLE: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Install the subscriber: `ANOMALYD_LOG` if set and valid, else `info` until the
/// configuration is read.
pub fn init() {
    let from_env = std::env::var("ANOMALYD_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok());
    let pinned = from_env.is_some();
    let (filter, handle) = reload::Layer::new(from_env.unwrap_or_else(|| EnvFilter::new("info")));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .init();
    if !pinned {
        let _ = HANDLE.set(handle);
    }
}

/// Apply the configured level (one of the values config validation allows).
pub fn set_level(level: &str) {
    if let Some(handle) = HANDLE.get() {
        if let Err(e) = handle.modify(|f| *f = EnvFilter::new(level)) {
            tracing::warn!("cannot change the log level: {e}");
        }
    }
}
