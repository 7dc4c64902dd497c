//! Tickets: one per incident, kept in the embedded store (`<state_dir>/tickets.db`)
//! and delivered to any number of external sinks through the outbox.
//!
//! - [`desk::Desk`]: per tick, records what the incident engine decided: renders each
//!   changed incident's report ([`report`]) and writes the change to the [`Store`]
//!   (which enqueues the sinks' deliveries in the same transaction); applies silences.
//! - [`store::Store`]: tickets, their timelines, silences (SQLite).
//! - [`similar`]: the earlier tickets most like a new one (the knowledge base).
//! - [`response`]: response levels: per severity, deadlines to acknowledge and to
//!   resolve, and their events; [`route`]: who a new ticket goes to.
//! - [`summary`]: `anomalyd tickets report`, the tickets of a period summed up.
//! - [`outbox`] + [`sinks`]: the persistent delivery queue and the external trackers.
//! - [`api`]: `/api/v1/tickets` for the HTTP server.
//!
//! The shell's `anomalyd tickets ...` and `anomalyd silence ...` are in `commands/`.

pub mod api;
mod delivery;
pub mod desk;
pub mod outbox;
pub mod report;
pub mod response;
pub mod route;
pub mod similar;
pub mod sinks;
pub mod store;
pub mod summary;

use std::time::Duration;

pub use delivery::{Delivery, DeliveryKind};
pub use desk::Desk;
pub use store::{Status, Store, StoreError, Ticket};

use serde_yaml::Value;

use crate::config::reader::Reader;

#[derive(Debug, Clone, PartialEq)]
pub struct TicketsConfig {
    /// How much recent history a ticket's report summarises (min/median/max of the
    /// affected metrics).
    pub report_history: Duration,
    /// External trackers that get every ticket change (see `sinks/`).
    pub sinks: Vec<sinks::SinkConfig>,
    /// Deadlines per severity (`tickets.response`).
    pub response: response::ResponseConfig,
    /// Who a new ticket goes to (`tickets.routing`).
    pub routing: route::Routing,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            report_history: Duration::from_secs(3600),
            sinks: Vec::new(),
            response: response::ResponseConfig::default(),
            routing: route::Routing::default(),
        }
    }
}

impl TicketsConfig {
    /// The sinks' names: each ticket change is queued once for each.
    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.name.clone()).collect()
    }
}

/// Read the `tickets:` section; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> TicketsConfig {
    let d = TicketsConfig::default();
    let s = r.section(v, path, &["report_history", "sinks", "response", "routing"]);
    let sinks = sinks::parse_sinks(r, &s);
    let names: Vec<String> = sinks.iter().map(|s| s.name.clone()).collect();
    TicketsConfig {
        report_history: s.duration(
            r,
            "report_history",
            d.report_history,
            Duration::from_secs(60),
            Duration::from_secs(7 * 86_400),
        ),
        sinks,
        response: response::parse_config(r, s.get("response"), &s.path("response")),
        routing: route::parse_config(r, s.get("routing"), &s.path("routing"), &names),
    }
}
