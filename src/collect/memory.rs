//! Memory: RAM and swap use from `/proc/meminfo`, major page faults from `/proc/vmstat`.
//!
//! "Used" is total minus `MemAvailable`, the kernel's own estimate of what could be
//! handed out without swapping; `MemFree` would call every page cache page used and make
//! a healthy host look full. A host without swap, or without `/proc/vmstat` (some
//! container runtimes), just lacks those points.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;

use super::{read, CollectError, Collector, Paths};
use crate::sample::Sample;

const HELP_TOTAL: &str = "Physical memory usable by the kernel";
const HELP_AVAILABLE: &str = "Memory available for new work without swapping (MemAvailable)";
const HELP_USED: &str = "Memory in use: total minus available";
const HELP_USED_RATIO: &str = "Share of memory in use: used over total";
const HELP_CACHED: &str = "Memory used by the page cache";
const HELP_BUFFERS: &str = "Memory used by block device buffers";
const HELP_SWAP_TOTAL: &str = "Swap space configured";
const HELP_SWAP_USED: &str = "Swap space in use";
const HELP_SWAP_USED_RATIO: &str = "Share of swap space in use";
const HELP_MAJOR_FAULTS: &str = "Page faults that needed disk I/O, per second";

pub struct Memory {
    paths: Paths,
    /// Timestamp and `pgmajfault` of the previous tick that could read it.
    previous: Option<(i64, u64)>,
}

impl Memory {
    pub fn new(paths: Paths) -> Self {
        Memory {
            paths,
            previous: None,
        }
    }
}

impl Collector for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let meminfo_path = self.paths.proc("meminfo");
        let meminfo_text = read(&meminfo_path)?;
        let meminfo = parse_meminfo(&meminfo_text);
        let vmstat_path = self.paths.proc("vmstat");
        let major_faults = match std::fs::read_to_string(&vmstat_path) {
            Ok(text) => parse_vmstat_field(&text, "pgmajfault"),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(CollectError::io(&vmstat_path, e)),
        };

        emit_meminfo(sample, &meminfo, &meminfo_path)?;

        if let (Some((then_ms, before)), Some(after)) = (self.previous, major_faults) {
            let elapsed_ms = sample.timestamp_ms - then_ms;
            // Going backwards means a reset; a clock standing still gives no interval.
            let delta = after.checked_sub(before).filter(|_| elapsed_ms > 0);
            if let Some(delta) = delta {
                sample.feature(
                    "major_page_faults_per_second",
                    HELP_MAJOR_FAULTS,
                    &[],
                    delta as f64 * 1000.0 / elapsed_ms as f64,
                );
            }
        }
        self.previous = major_faults.map(|count| (sample.timestamp_ms, count));
        Ok(())
    }
}

fn emit_meminfo(
    sample: &mut Sample,
    meminfo: &HashMap<&str, u64>,
    path: &Path,
) -> Result<(), CollectError> {
    let total = *meminfo
        .get("MemTotal")
        .ok_or_else(|| CollectError::parse(path, "no MemTotal line"))?;
    sample.info("memory_total_bytes", HELP_TOTAL, &[], total as f64);
    // MemAvailable exists since Linux 3.14; without it there is no honest "used".
    if let Some(&available) = meminfo.get("MemAvailable") {
        let used = total.saturating_sub(available);
        sample.feature(
            "memory_available_bytes",
            HELP_AVAILABLE,
            &[],
            available as f64,
        );
        sample.feature("memory_used_bytes", HELP_USED, &[], used as f64);
        if total > 0 {
            sample.feature(
                "memory_used_ratio",
                HELP_USED_RATIO,
                &[],
                used as f64 / total as f64,
            );
        }
    }
    if let Some(&cached) = meminfo.get("Cached") {
        sample.feature("memory_cached_bytes", HELP_CACHED, &[], cached as f64);
    }
    if let Some(&buffers) = meminfo.get("Buffers") {
        sample.feature("memory_buffers_bytes", HELP_BUFFERS, &[], buffers as f64);
    }
    if let (Some(&swap_total), Some(&swap_free)) =
        (meminfo.get("SwapTotal"), meminfo.get("SwapFree"))
    {
        // No swap configured: a constant zero would only be noise for the model.
        if swap_total > 0 {
            let used = swap_total.saturating_sub(swap_free);
            sample.info("swap_total_bytes", HELP_SWAP_TOTAL, &[], swap_total as f64);
            sample.feature("swap_used_bytes", HELP_SWAP_USED, &[], used as f64);
            sample.feature(
                "swap_used_ratio",
                HELP_SWAP_USED_RATIO,
                &[],
                used as f64 / swap_total as f64,
            );
        }
    }
    Ok(())
}

/// `Key:   123 kB` lines as bytes. Unit-less lines (`HugePages_Total`) are counts and
/// kept as they are; lines that don't parse are skipped.
fn parse_meminfo(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut fields = rest.split_whitespace();
            let value: u64 = fields.next()?.parse().ok()?;
            let value = match fields.next() {
                None => value,
                Some("kB") => value.checked_mul(1024)?,
                Some(_) => return None,
            };
            Some((key.trim(), value))
        })
        .collect()
}

/// Value of one `name value` line of `/proc/vmstat`.
fn parse_vmstat_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        if key != name {
            return None;
        }
        value.trim().parse().ok()
    })
}

#[doc(hidden)]
pub fn parse_for_fuzzing(text: &str) {
    let _ = parse_meminfo(text);
    let _ = parse_vmstat_field(text, "pgmajfault");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;
    use crate::collect::testing::{assert_close, fixture};

    const KIB: f64 = 1024.0;

    fn collect_in_turn(hosts: &[&str]) -> Sample {
        let mut memory = Memory::new(fixture(hosts[0]));
        let mut sample = Sample::new(0);
        for (i, host) in hosts.iter().enumerate() {
            memory.paths = fixture(host);
            sample = Sample::new(1_000_000 + i as i64 * 1000);
            memory.collect(&mut sample).unwrap();
        }
        sample
    }

    fn proc_dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn paths_for(dir: &tempfile::TempDir) -> Paths {
        Paths {
            procfs: dir.path().to_path_buf(),
            ..Paths::default()
        }
    }

    #[test]
    fn first_tick_reads_fixture_exactly() {
        let s = collect_in_turn(&["host"]);
        assert_close(s.get("memory_total_bytes", &[]), 16_000_000.0 * KIB);
        assert_close(s.get("memory_available_bytes", &[]), 12_000_000.0 * KIB);
        assert_close(s.get("memory_used_bytes", &[]), 4_000_000.0 * KIB);
        assert_close(s.get("memory_used_ratio", &[]), 0.25);
        assert_close(s.get("memory_cached_bytes", &[]), 3_000_000.0 * KIB);
        assert_close(s.get("memory_buffers_bytes", &[]), 200_000.0 * KIB);
        assert_close(s.get("swap_total_bytes", &[]), 2_000_000.0 * KIB);
        assert_close(s.get("swap_used_bytes", &[]), 500_000.0 * KIB);
        assert_close(s.get("swap_used_ratio", &[]), 0.25);
        assert!(s.get("major_page_faults_per_second", &[]).is_none());

        let info: Vec<_> = s
            .points
            .iter()
            .filter(|p| !p.feature)
            .map(|p| p.name)
            .collect();
        assert_eq!(info, ["memory_total_bytes", "swap_total_bytes"]);
    }

    #[test]
    fn second_tick_has_major_fault_rate() {
        let s = collect_in_turn(&["host", "host2"]);
        assert_close(s.get("major_page_faults_per_second", &[]), 150.0);
        assert_close(s.get("memory_used_ratio", &[]), 0.275);
        assert_close(s.get("swap_used_ratio", &[]), 0.3);
    }

    #[test]
    fn counter_reset_yields_no_rate() {
        let s = collect_in_turn(&["host2", "host"]);
        assert!(s.get("major_page_faults_per_second", &[]).is_none());
    }

    #[test]
    fn no_swap_and_no_vmstat_just_omit_points() {
        let dir = proc_dir_with(&[(
            "meminfo",
            "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 500 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        )]);
        let mut memory = Memory::new(paths_for(&dir));
        let mut s = Sample::new(1000);
        memory.collect(&mut s).unwrap();
        let mut s = Sample::new(2000);
        memory.collect(&mut s).unwrap();
        assert_close(s.get("memory_used_ratio", &[]), 0.5);
        for name in [
            "swap_total_bytes",
            "swap_used_bytes",
            "swap_used_ratio",
            "major_page_faults_per_second",
        ] {
            assert!(s.get(name, &[]).is_none(), "{name}");
        }
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let parsed = parse_meminfo(
            "MemTotal: 2 kB\nbroken\nCached: lots kB\nHugePages_Total: 3\nOdd: 1 MB\n",
        );
        assert_eq!(
            parsed,
            HashMap::from([("MemTotal", 2048), ("HugePages_Total", 3)])
        );
        assert_eq!(
            parse_vmstat_field("pgfault 1\npgmajfault x\n", "pgmajfault"),
            None
        );
    }

    #[test]
    fn meminfo_without_total_is_an_error() {
        let dir = proc_dir_with(&[("meminfo", "MemFree: 100 kB\n")]);
        let err = Memory::new(paths_for(&dir))
            .collect(&mut Sample::new(0))
            .unwrap_err();
        assert!(err.to_string().contains("MemTotal"), "{err}");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let mut memory = Memory::new(fixture("no-such-host"));
        let err = memory.collect(&mut Sample::new(0)).unwrap_err();
        assert!(
            err.to_string().contains("no-such-host/proc/meminfo"),
            "{err}"
        );
    }

    #[test]
    fn reads_this_machine() {
        let mut memory = Memory::new(Paths::default());
        memory.collect(&mut Sample::new(1000)).unwrap();
        let mut s = Sample::new(2000);
        memory.collect(&mut s).unwrap();
        assert!(s.get("memory_total_bytes", &[]).unwrap() > 0.0);
        assert!(s.get("memory_available_bytes", &[]).is_some());
        assert!(s.get("major_page_faults_per_second", &[]).is_some());
    }
}
