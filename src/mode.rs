//! Live or replay: the one switch the stages of the tick path share.
//!
//! Live, work that could delay a tick runs beside it (the history writer, training,
//! remediation runs and diagnoses each have a thread); in replay it runs inline, with
//! the recorded series' clock, so a replay is deterministic.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Replay,
}
