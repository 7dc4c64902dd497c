//! One message for one sink about one ticket: the contract between the ticket store
//! (which enqueues deliveries in the same SQLite transaction as the ticket change, so a
//! crash can neither lose nor invent one) and the outbox that delivers them.

use serde::{Deserialize, Serialize};

use crate::incident::Incident;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryKind {
    /// A new ticket (or a reopened one: the sink decides from its own state whether
    /// it already has an external ticket for this fingerprint).
    Open,
    /// Still open; something changed (`summary` says what).
    Update,
    Resolve,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Unique per delivery (outbox row); receivers can use it as an idempotency key.
    pub id: String,
    /// The ticket (= incident id, e.g. `INC-42`).
    pub ticket_id: String,
    pub kind: DeliveryKind,
    /// The incident as it is at this event.
    pub incident: Incident,
    /// One line: what happened ("opened", "severity P3 -> P2", "resolved after 12 min").
    pub summary: String,
    /// The ticket's report, Markdown: what a person needs to act.
    pub body: String,
    pub at_ms: i64,
}
