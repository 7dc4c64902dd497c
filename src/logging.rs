//! Logging: to stderr (journald under systemd), with a level the config's `log_level`
//! sets at start and on every reload. `ANOMALYD_LOG` (`target=level` directives such
//! as `info,anomalyd::store=debug`) wins over the config when set, for one-off
//! debugging. The filter is tracing's `Targets`: the span and field filters of
//! `EnvFilter` would bring a regex engine in for a debugging aid.

use std::str::FromStr;
use std::sync::OnceLock;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, Registry};

static HANDLE: OnceLock<reload::Handle<Targets, Registry>> = OnceLock::new();

/// Install the subscriber: `ANOMALYD_LOG` if set and valid, else `info` until the
/// configuration is read.
pub fn init() {
    let env = std::env::var("ANOMALYD_LOG").ok();
    let from_env = env.as_deref().and_then(parse_directives);
    let pinned = from_env.is_some();
    let (filter, handle) = reload::Layer::new(from_env.unwrap_or_else(|| level_filter("info")));
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
    if let (Some(bad), false) = (env, pinned) {
        tracing::warn!(
            "ANOMALYD_LOG={bad:?} ignored: expected target=level directives such as \
             info,anomalyd::store=debug"
        );
    }
}

/// `ANOMALYD_LOG`'s value: comma-separated `level` or `target=level` directives.
fn parse_directives(text: &str) -> Option<Targets> {
    Targets::from_str(text).ok()
}

/// Apply the configured level (one of the values config validation allows).
pub fn set_level(level: &str) {
    if let Some(handle) = HANDLE.get() {
        if let Err(e) = handle.modify(|f| *f = level_filter(level)) {
            tracing::warn!("cannot change the log level: {e}");
        }
    }
}

/// Everything at `level` and above; `info` for a level tracing does not know (config
/// validation has already refused it).
fn level_filter(level: &str) -> Targets {
    let level = LevelFilter::from_str(level).unwrap_or(LevelFilter::INFO);
    Targets::new().with_default(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn a_directive_raises_one_module_and_the_default_holds_the_rest() {
        let f = parse_directives("warn,anomalyd::store=debug").expect("valid");
        assert!(f.would_enable("anomalyd::store::history", &Level::DEBUG));
        assert!(!f.would_enable("anomalyd::model", &Level::INFO));
        assert!(f.would_enable("anomalyd::model", &Level::WARN));
        assert!(parse_directives("anomalyd=loud").is_none());
    }

    #[test]
    fn a_configured_level_covers_every_target() {
        let f = level_filter("debug");
        assert!(f.would_enable("anomalyd::collect", &Level::DEBUG));
        assert!(!f.would_enable("anomalyd::collect", &Level::TRACE));
        let f = level_filter("error");
        assert!(!f.would_enable("hyper", &Level::WARN));
    }
}
