//! Where remediation meets the pipeline: incident changes in, timeline events and
//! escalations out through the ticket desk. One call per processed record.

use crate::incident::Change;
use crate::tickets::Desk;

use super::Engine;

/// Feed this record's incident changes to the engine, then write what it reports
/// (run records, verifications, diagnoses) to the tickets, escalating where a run
/// did not help. An escalation is itself a change the engine sees (a stronger rule
/// may match the worse severity).
pub fn step(engine: &mut Engine, desk: &mut Desk, changes: &[Change], now_ms: i64) {
    for c in changes {
        engine.on_change(c, now_ms);
    }
    // Bounded: a rule triggers once per incident and a run escalates at most once.
    for _ in 0..16 {
        let events = engine.poll(now_ms);
        if events.is_empty() {
            return;
        }
        for e in events {
            if let Err(err) =
                desk.store()
                    .add_event(&e.ticket_id, e.at_ms, e.kind, &e.summary, &e.detail)
            {
                tracing::warn!(ticket = %e.ticket_id, "cannot record remediation event: {err}");
            }
            if let Some(reason) = &e.escalate {
                if let Some(change) = desk.escalate(&e.ticket_id, reason, now_ms) {
                    engine.on_change(&change, now_ms);
                }
            }
        }
    }
}
