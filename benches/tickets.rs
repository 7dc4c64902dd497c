//! Ticket store figures, plain `std::time` (no harness): `cargo bench --bench tickets`.
//!
//! What a ticket change costs the tick that makes it (the desk writes inline):
//! `Store::apply` of an open, an update and a resolve, each one fsynced transaction
//! with its outbox rows for two sinks (p50/p99/max), in a state directory under
//! `$TMPDIR` (put that on the disk you care about).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anomalyd::incident::{Cause, Change, Class, Incident, Label, Severity};
use anomalyd::tickets::Store;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn incident(n: usize) -> Incident {
    Incident {
        id: format!("INC-{n}"),
        fingerprint: format!("host/anomaly/storage/sd{n}"),
        host: "host".into(),
        class: Class::Anomaly,
        label: Label::Storage,
        severity: Severity::P3,
        resource: Some(format!("sd{n}")),
        title: format!("storage anomaly on host (sd{n})"),
        causes: (0..5)
            .map(|i| Cause {
                feature: format!("disk_busy_ratio{{device=\"sd{i}\"}}"),
                value: 0.9,
                baseline: 0.1,
                contribution: 5.0 - i as f64,
            })
            .collect(),
        opened_ms: n as i64 * 1000,
        updated_ms: n as i64 * 1000,
        resolved_ms: None,
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(&anomalyd::store::StateDir::at(dir.path()))
        .unwrap()
        .with_sinks(vec!["webhook".into(), "mail".into()]);
    let report = "# report\n".repeat(60);
    let mut times = Vec::new();
    for n in 1..=200 {
        let mut inc = incident(n);
        let t = Instant::now();
        store
            .apply(&Change::Opened(inc.clone()), &report, None, inc.opened_ms)
            .unwrap();
        times.push(t.elapsed());
        inc.severity = Severity::P2;
        let t = Instant::now();
        store
            .apply(
                &Change::Updated {
                    incident: inc.clone(),
                    what: "severity P3 -> P2".into(),
                },
                &report,
                None,
                inc.opened_ms + 1,
            )
            .unwrap();
        times.push(t.elapsed());
        let t = Instant::now();
        store
            .apply(
                &Change::Resolved(inc.clone()),
                &report,
                None,
                inc.opened_ms + 2,
            )
            .unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "ticket change (apply + 2 outbox rows, synchronous=FULL): p50 {:?}  p99 {:?}  max {:?}  ({} changes)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
        times.len()
    );
}
