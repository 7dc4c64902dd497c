//! CPU: time split by mode (all cores and per core), load averages, scheduler activity.
//!
//! Everything comes from `/proc/stat` and `/proc/loadavg`. Utilisation is each mode's
//! share of the jiffies that passed between two ticks, so the first tick has none. The
//! all-core split is a model feature; the per-core split goes to Prometheus only, since a
//! large host has hundreds of cores and the model would drown in near-duplicate series.

use std::collections::HashMap;
use std::path::Path;

use super::{read, CollectError, Collector, Paths};
use crate::sample::Sample;

/// `/proc/stat` columns in kernel order. `guest` and `guest_nice` follow but are already
/// counted in `user` and `nice`; adding them would count that time twice.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Cumulative jiffies per mode, in [`MODES`] order.
type Jiffies = [u64; 8];

const HELP_UTILIZATION: &str =
    "Share of CPU time spent in each mode over the last interval, all cores";
const HELP_CORE_UTILIZATION: &str =
    "Share of CPU time spent in each mode over the last interval, per core";
const HELP_LOAD: &str = "Load average over the period";
const HELP_CONTEXT_SWITCHES: &str = "Context switches per second";
const HELP_INTERRUPTS: &str = "Interrupts serviced per second";
const HELP_FORKS: &str = "Processes and threads created per second";
const HELP_RUNNING: &str = "Processes in runnable state";
const HELP_BLOCKED: &str = "Processes blocked waiting for I/O";

/// What one read of `/proc/stat` yields. Lines other than the CPU lines are optional:
/// a kernel or container that leaves one out loses only that point.
#[derive(Debug, Clone, PartialEq)]
struct Stat {
    total: Jiffies,
    /// Core number as the kernel writes it (`"0"`), in file order.
    cores: Vec<(String, Jiffies)>,
    context_switches: Option<u64>,
    interrupts: Option<u64>,
    forks: Option<u64>,
    running: Option<u64>,
    blocked: Option<u64>,
}

struct Previous {
    timestamp_ms: i64,
    stat: Stat,
}

pub struct Cpu {
    paths: Paths,
    previous: Option<Previous>,
}

impl Cpu {
    pub fn new(paths: Paths) -> Self {
        Cpu {
            paths,
            previous: None,
        }
    }
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        // Read both files before emitting, so a failure leaves no half-filled sample.
        let stat_path = self.paths.proc("stat");
        let stat = parse_stat(&read(&stat_path)?, &stat_path)?;
        let load_path = self.paths.proc("loadavg");
        let load = parse_loadavg(&read(&load_path)?, &load_path)?;

        for (period, value) in ["1m", "5m", "15m"].into_iter().zip(load) {
            sample.feature("load_average", HELP_LOAD, &[("period", period)], value);
        }
        if let Some(n) = stat.running {
            sample.feature("processes_running", HELP_RUNNING, &[], n as f64);
        }
        if let Some(n) = stat.blocked {
            sample.feature("processes_blocked", HELP_BLOCKED, &[], n as f64);
        }

        if let Some(previous) = &self.previous {
            emit_utilization(sample, &previous.stat, &stat);
            let elapsed_ms = sample.timestamp_ms - previous.timestamp_ms;
            // A clock that stood still or stepped back gives no interval to divide by.
            if elapsed_ms > 0 {
                emit_rates(sample, &previous.stat, &stat, elapsed_ms as f64 / 1000.0);
            }
        }
        self.previous = Some(Previous {
            timestamp_ms: sample.timestamp_ms,
            stat,
        });
        Ok(())
    }
}

fn emit_utilization(sample: &mut Sample, before: &Stat, after: &Stat) {
    if let Some(shares) = utilization(&before.total, &after.total) {
        for (mode, share) in MODES.into_iter().zip(shares) {
            sample.feature(
                "cpu_utilization_ratio",
                HELP_UTILIZATION,
                &[("mode", mode)],
                share,
            );
        }
    }
    let earlier: HashMap<&str, &Jiffies> = before
        .cores
        .iter()
        .map(|(id, jiffies)| (id.as_str(), jiffies))
        .collect();
    for (id, jiffies) in &after.cores {
        // A core that just came online has nothing to compare with yet.
        let Some(shares) = earlier
            .get(id.as_str())
            .and_then(|b| utilization(b, jiffies))
        else {
            continue;
        };
        for (mode, share) in MODES.into_iter().zip(shares) {
            sample.info(
                "cpu_core_utilization_ratio",
                HELP_CORE_UTILIZATION,
                &[("cpu", id), ("mode", mode)],
                share,
            );
        }
    }
}

fn emit_rates(sample: &mut Sample, before: &Stat, after: &Stat, seconds: f64) {
    let counters = [
        (
            "context_switches_per_second",
            HELP_CONTEXT_SWITCHES,
            before.context_switches,
            after.context_switches,
        ),
        (
            "interrupts_per_second",
            HELP_INTERRUPTS,
            before.interrupts,
            after.interrupts,
        ),
        ("forks_per_second", HELP_FORKS, before.forks, after.forks),
    ];
    for (name, help, before, after) in counters {
        if let (Some(before), Some(after)) = (before, after) {
            // Smaller than before means the counter was reset; the true increase is unknown.
            if let Some(delta) = after.checked_sub(before) {
                sample.feature(name, help, &[], delta as f64 / seconds);
            }
        }
    }
}

/// Each mode's share of the jiffies that passed, or `None` when none did.
fn utilization(before: &Jiffies, after: &Jiffies) -> Option<[f64; 8]> {
    // iowait (and on some kernels idle) can step backwards on tickless systems; such a
    // mode counts as zero instead of turning the whole split negative.
    let mut delta = [0u64; 8];
    for (d, (b, a)) in delta.iter_mut().zip(before.iter().zip(after)) {
        *d = a.saturating_sub(*b);
    }
    let total: u64 = delta.iter().sum();
    if total == 0 {
        return None;
    }
    Some(delta.map(|d| d as f64 / total as f64))
}

fn parse_stat(text: &str, path: &Path) -> Result<Stat, CollectError> {
    let mut total = None;
    let mut stat = Stat {
        total: [0; 8],
        cores: Vec::new(),
        context_switches: None,
        interrupts: None,
        forks: None,
        running: None,
        blocked: None,
    };
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else {
            continue;
        };
        // `intr` is followed by one count per IRQ line; the first is the sum.
        let first = fields.clone().next().and_then(|f| f.parse::<u64>().ok());
        match key {
            "cpu" => total = parse_jiffies(fields),
            "ctxt" => stat.context_switches = first,
            "intr" => stat.interrupts = first,
            "processes" => stat.forks = first,
            "procs_running" => stat.running = first,
            "procs_blocked" => stat.blocked = first,
            _ => {
                let Some(id) = key.strip_prefix("cpu") else {
                    continue;
                };
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Some(jiffies) = parse_jiffies(fields) {
                    stat.cores.push((id.to_string(), jiffies));
                }
            }
        }
    }
    stat.total = total.ok_or_else(|| CollectError::parse(path, "no readable \"cpu\" line"))?;
    Ok(stat)
}

/// The mode columns of a `cpu` line. Old kernels write fewer than eight (the missing
/// ones stay zero); fewer than four (user, nice, system, idle) is not a cpu line.
fn parse_jiffies<'a>(fields: impl Iterator<Item = &'a str>) -> Option<Jiffies> {
    let mut jiffies = [0u64; 8];
    let mut columns = 0;
    for (slot, field) in jiffies.iter_mut().zip(fields) {
        *slot = field.parse().ok()?;
        columns += 1;
    }
    (columns >= 4).then_some(jiffies)
}

fn parse_loadavg(text: &str, path: &Path) -> Result<[f64; 3], CollectError> {
    let mut fields = text.split_whitespace();
    let mut load = [0.0; 3];
    for slot in &mut load {
        *slot = fields
            .next()
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| {
                CollectError::parse(path, format!("expected three load averages in {text:?}"))
            })?;
    }
    Ok(load)
}

#[doc(hidden)]
pub fn parse_for_fuzzing(text: &str) {
    let p = Path::new("fuzz");
    let _ = parse_stat(text, p);
    let _ = parse_loadavg(text, p);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;
    use crate::collect::testing::{assert_close, fixture};

    /// Collect `hosts` in order, one per `step_ms`, returning the last sample.
    fn collect_in_turn(hosts: &[&str], step_ms: i64) -> Sample {
        let mut cpu = Cpu::new(fixture(hosts[0]));
        let mut sample = Sample::new(0);
        for (i, host) in hosts.iter().enumerate() {
            cpu.paths = fixture(host);
            sample = Sample::new(1_000_000 + i as i64 * step_ms);
            cpu.collect(&mut sample).unwrap();
        }
        sample
    }

    #[test]
    fn first_tick_has_gauges_but_no_rates() {
        let s = collect_in_turn(&["host"], 1000);
        assert_close(s.get("load_average", &[("period", "1m")]), 0.52);
        assert_close(s.get("load_average", &[("period", "5m")]), 0.61);
        assert_close(s.get("load_average", &[("period", "15m")]), 0.70);
        assert_close(s.get("processes_running", &[]), 3.0);
        assert_close(s.get("processes_blocked", &[]), 1.0);
        for name in [
            "cpu_utilization_ratio",
            "cpu_core_utilization_ratio",
            "context_switches_per_second",
            "interrupts_per_second",
            "forks_per_second",
        ] {
            assert!(s.get(name, &[]).is_none(), "{name} on the first tick");
        }
    }

    #[test]
    fn second_tick_splits_time_by_mode() {
        let s = collect_in_turn(&["host", "host2"], 1000);
        // 400 jiffies passed over four cores; see the fixture deltas.
        let expected = [
            ("user", 85.0),
            ("nice", 5.0),
            ("system", 35.0),
            ("idle", 255.0),
            ("iowait", 10.0),
            ("irq", 2.0),
            ("softirq", 7.0),
            ("steal", 1.0),
        ];
        for (mode, jiffies) in expected {
            assert_close(
                s.get("cpu_utilization_ratio", &[("mode", mode)]),
                jiffies / 400.0,
            );
        }
        assert_close(
            s.get(
                "cpu_core_utilization_ratio",
                &[("cpu", "0"), ("mode", "user")],
            ),
            0.5,
        );
        assert_close(
            s.get(
                "cpu_core_utilization_ratio",
                &[("cpu", "1"), ("mode", "idle")],
            ),
            0.85,
        );
        assert_close(
            s.get(
                "cpu_core_utilization_ratio",
                &[("cpu", "2"), ("mode", "idle")],
            ),
            1.0,
        );
        assert_close(
            s.get(
                "cpu_core_utilization_ratio",
                &[("cpu", "3"), ("mode", "steal")],
            ),
            0.01,
        );
        let cores = s
            .points
            .iter()
            .filter(|p| p.name == "cpu_core_utilization_ratio");
        assert_eq!(cores.clone().count(), 4 * MODES.len());
        assert!(
            cores.clone().all(|p| !p.feature),
            "per-core values are not model features"
        );
        let totals = s
            .points
            .iter()
            .filter(|p| p.name == "cpu_utilization_ratio");
        assert!(totals.clone().all(|p| p.feature));
        assert_close(Some(totals.map(|p| p.value).sum()), 1.0);
    }

    #[test]
    fn second_tick_has_exact_rates() {
        let s = collect_in_turn(&["host", "host2"], 1000);
        assert_close(s.get("context_switches_per_second", &[]), 25_000.0);
        assert_close(s.get("interrupts_per_second", &[]), 12_000.0);
        assert_close(s.get("forks_per_second", &[]), 12.0);
        assert_close(s.get("processes_running", &[]), 2.0);
        assert_close(s.get("processes_blocked", &[]), 0.0);
    }

    #[test]
    fn rates_use_the_sample_timestamps() {
        let s = collect_in_turn(&["host", "host2"], 2000);
        assert_close(s.get("context_switches_per_second", &[]), 12_500.0);
    }

    #[test]
    fn counter_reset_yields_no_rate() {
        let s = collect_in_turn(&["host2", "host"], 1000);
        assert!(s.get("context_switches_per_second", &[]).is_none());
        assert!(s.get("interrupts_per_second", &[]).is_none());
        assert!(s.get("forks_per_second", &[]).is_none());
        // Every mode went backwards: no time passed as far as we can tell.
        assert!(s.get("cpu_utilization_ratio", &[]).is_none());
        assert!(s.get("load_average", &[("period", "1m")]).is_some());
    }

    #[test]
    fn clock_standing_still_yields_no_rate() {
        let s = collect_in_turn(&["host", "host2"], 0);
        assert!(s.get("context_switches_per_second", &[]).is_none());
        // Utilisation is a share of jiffies, not of wall time, so it survives.
        assert!(s
            .get("cpu_utilization_ratio", &[("mode", "user")])
            .is_some());
    }

    #[test]
    fn a_backwards_mode_counts_as_zero() {
        let before = [100, 0, 100, 100, 50, 0, 0, 0];
        let after = [150, 0, 150, 200, 40, 0, 0, 0];
        let shares = utilization(&before, &after).unwrap();
        assert_eq!(shares, [0.25, 0.0, 0.25, 0.5, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = "cpu  1 2 3 4 5 6 7 8 0 0\n\
                    cpu0 1 2 x 4\n\
                    cpu1 1 2\n\
                    cpuX 1 2 3 4\n\
                    cpu2 1 2 3 4\n\
                    garbage\n\
                    \n\
                    ctxt many\n\
                    processes 7\n";
        let stat = parse_stat(text, Path::new("stat")).unwrap();
        assert_eq!(stat.total, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            stat.cores,
            vec![("2".to_string(), [1, 2, 3, 4, 0, 0, 0, 0])]
        );
        assert_eq!(stat.context_switches, None);
        assert_eq!(stat.forks, Some(7));
    }

    #[test]
    fn stat_without_total_line_is_an_error() {
        let err = parse_stat("cpu0 1 2 3 4\n", Path::new("/x/stat")).unwrap_err();
        assert!(err.to_string().contains("/x/stat"), "{err}");
    }

    #[test]
    fn malformed_loadavg_is_an_error() {
        let err = parse_loadavg("0.5 high", Path::new("/x/loadavg")).unwrap_err();
        assert!(err.to_string().contains("/x/loadavg"), "{err}");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let mut cpu = Cpu::new(fixture("no-such-host"));
        let err = cpu.collect(&mut Sample::new(0)).unwrap_err();
        assert!(err.to_string().contains("no-such-host/proc/stat"), "{err}");
    }

    #[test]
    fn reads_this_machine() {
        let mut cpu = Cpu::new(Paths::default());
        let mut first = Sample::new(1_000);
        cpu.collect(&mut first).unwrap();
        assert!(first.get("load_average", &[("period", "1m")]).is_some());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut second = Sample::new(1_050);
        cpu.collect(&mut second).unwrap();
        assert!(second.get("context_switches_per_second", &[]).is_some());
        for p in second.points.iter().filter(|p| p.name.ends_with("_ratio")) {
            assert!((0.0..=1.0).contains(&p.value), "{p:?}");
        }
    }
}
