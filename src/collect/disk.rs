//! Disk: space and inodes per filesystem, throughput, latency and saturation per block
//! device.
//!
//! Filesystems come from the mount table and `statvfs`; block devices from
//! `/proc/diskstats`. Both lists are filtered by the config, whose defaults drop pseudo
//! filesystems, partitions and device-mapper nodes so each physical disk is counted once.
//! `statvfs` is a plain function pointer so tests can feed fixed numbers; it runs with a
//! deadline on a helper thread (`statvfs.rs`), and a mount it fails or hangs on (stale
//! NFS, no permission) is skipped for the tick rather than failing the collector.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_yaml::Value;

use super::statvfs::{Guarded, TIMEOUT as STATVFS_TIMEOUT};
use super::{read, CollectError, Collector, Kept, Paths};
use crate::config::reader::{Filter, Pattern, Reader};
use crate::sample::Sample;

/// `collectors.disk`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskConfig {
    pub enabled: bool,
    /// Filesystems by mount point.
    pub mount_points: Filter,
    /// Filesystems by type (pseudo filesystems excluded by default).
    pub fs_types: Filter,
    /// Block devices in /proc/diskstats by name (partitions and virtual devices excluded by default).
    pub devices: Filter,
}

pub const DEFAULT_MOUNT_EXCLUDE: &str =
    "/(dev|proc|sys|run/credentials/.+|var/lib/docker/.+|var/lib/containers/storage/.+)(/.*)?";
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs|nfsd|ramfs";
pub const DEFAULT_DEVICE_EXCLUDE: &str =
    "(ram|loop|fd|(h|s|v|xv)d[a-z]+|nvme\\d+n\\d+p|mmcblk\\d+p)\\d+|dm-\\d+|sr\\d+|zram\\d+";

impl Default for DiskConfig {
    fn default() -> Self {
        let exclude = |src| Filter {
            include: None,
            exclude: Pattern::builtin(src),
        };
        DiskConfig {
            enabled: true,
            mount_points: exclude(DEFAULT_MOUNT_EXCLUDE),
            fs_types: exclude(DEFAULT_FS_TYPES_EXCLUDE),
            devices: exclude(DEFAULT_DEVICE_EXCLUDE),
        }
    }
}

/// Read `collectors.disk`; problems go to `r` with their YAML path.
pub fn parse_config(r: &mut Reader, v: Option<&Value>, path: &str) -> DiskConfig {
    let d = DiskConfig::default();
    let s = r.section(v, path, &["enabled", "mount_points", "fs_types", "devices"]);
    DiskConfig {
        enabled: s.bool(r, "enabled", d.enabled),
        mount_points: s.filter(r, "mount_points", &d.mount_points),
        fs_types: s.filter(r, "fs_types", &d.fs_types),
        devices: s.filter(r, "devices", &d.devices),
    }
}

/// `/proc/diskstats` counts sectors of 512 bytes whatever the device's real sector size.
const SECTOR_BYTES: f64 = 512.0;

const HELP_SIZE: &str = "Filesystem size";
const HELP_AVAILABLE: &str = "Filesystem space available to unprivileged users";
const HELP_FREE: &str = "Filesystem free space, including blocks reserved for root";
const HELP_USED_RATIO: &str = "Share of the filesystem's usable space in use, as df computes Use%";
const HELP_INODES: &str = "Filesystem inodes";
const HELP_INODES_FREE: &str = "Filesystem inodes free";
const HELP_INODES_USED_RATIO: &str = "Share of the filesystem's inodes in use";
const HELP_READ_BYTES: &str = "Bytes read from the device per second";
const HELP_WRITTEN_BYTES: &str = "Bytes written to the device per second";
const HELP_READS: &str = "Reads completed per second";
const HELP_WRITES: &str = "Writes completed per second";
const HELP_READ_LATENCY: &str = "Average time a read took over the last interval, 0 without reads";
const HELP_WRITE_LATENCY: &str =
    "Average time a write took over the last interval, 0 without writes";
const HELP_BUSY: &str = "Share of the interval the device had I/O in flight";
const HELP_QUEUE: &str = "Average number of requests in flight (weighted I/O time per second)";

/// What `statvfs` says about one filesystem, in bytes and inode counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStat {
    pub size_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// How the collector asks for filesystem usage: [`statvfs`] on a host, fixed numbers
/// in tests.
pub type StatFs = fn(&Path) -> io::Result<FsStat>;

pub struct Disk {
    paths: Paths,
    statfs: Guarded,
    mounts: MountFilter,
    devices: Kept,
    previous: Option<Previous>,
}

struct Previous {
    timestamp_ms: i64,
    devices: HashMap<String, IoCounters>,
}

impl Disk {
    pub fn new(paths: Paths, config: DiskConfig) -> Self {
        Disk::with_statfs(paths, config, statvfs)
    }

    pub fn with_statfs(paths: Paths, config: DiskConfig, statfs: StatFs) -> Self {
        Disk {
            paths,
            statfs: Guarded::new(statfs, STATVFS_TIMEOUT),
            mounts: MountFilter::new(&config),
            devices: Kept::new(&config.devices),
            previous: None,
        }
    }

    /// The mount table, from `self/mounts` or, in node_exporter-style fixture trees
    /// that only have it, `1/mounts`.
    fn read_mounts(&self) -> Result<String, CollectError> {
        let own = self.paths.proc("self/mounts");
        match std::fs::read_to_string(&own) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let init = self.paths.proc("1/mounts");
                std::fs::read_to_string(&init).map_err(|_| CollectError::io(&own, e))
            }
            Err(e) => Err(CollectError::io(&own, e)),
        }
    }
}

impl Collector for Disk {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn collect(&mut self, sample: &mut Sample) -> Result<(), CollectError> {
        let mounts = select_mounts(&self.read_mounts()?, &mut self.mounts);
        let diskstats_path = self.paths.proc("diskstats");
        let diskstats = read(&diskstats_path)?;

        for mount in &mounts {
            if let Ok(stat) = self.statfs.stat(&self.paths.root(&mount.mount_point)) {
                emit_filesystem(sample, mount, &stat);
            }
        }

        let devices: HashMap<String, IoCounters> = parse_diskstats(&diskstats)
            .into_iter()
            .filter(|(name, _)| self.devices.keeps(name))
            .collect();
        if let Some(previous) = &self.previous {
            let elapsed_ms = sample.timestamp_ms - previous.timestamp_ms;
            // A clock that stood still or stepped back gives no interval to divide by.
            if elapsed_ms > 0 {
                let mut current: Vec<(&String, &IoCounters)> = devices.iter().collect();
                current.sort_by(|a, b| a.0.cmp(b.0));
                for (name, after) in current {
                    let delta = previous
                        .devices
                        .get(name)
                        .and_then(|before| after.since(before));
                    if let Some(delta) = delta {
                        emit_device(sample, name, &delta, elapsed_ms as f64);
                    }
                }
            }
        }
        // Replacing the map drops devices that disappeared.
        self.previous = Some(Previous {
            timestamp_ms: sample.timestamp_ms,
            devices,
        });
        Ok(())
    }
}

fn emit_filesystem(sample: &mut Sample, mount: &Mount, stat: &FsStat) {
    let labels = [
        ("mountpoint", mount.mount_point.as_str()),
        ("device", mount.device.as_str()),
        ("fstype", mount.fs_type.as_str()),
    ];
    sample.info(
        "filesystem_size_bytes",
        HELP_SIZE,
        &labels,
        stat.size_bytes as f64,
    );
    sample.feature(
        "filesystem_available_bytes",
        HELP_AVAILABLE,
        &labels,
        stat.avail_bytes as f64,
    );
    sample.feature(
        "filesystem_free_bytes",
        HELP_FREE,
        &labels,
        stat.free_bytes as f64,
    );
    // df's Use%: blocks reserved for root count neither as used nor as usable, so a
    // filesystem at 100% is one where ordinary writes fail.
    let used = stat.size_bytes.saturating_sub(stat.free_bytes);
    let usable = used.saturating_add(stat.avail_bytes);
    if usable > 0 {
        sample.feature(
            "filesystem_used_ratio",
            HELP_USED_RATIO,
            &labels,
            used as f64 / usable as f64,
        );
    }
    // Filesystems that allocate inodes on demand (btrfs, vfat) report zero; a zero total
    // would only invite divisions by it downstream.
    if stat.inodes > 0 {
        let used_inodes = stat.inodes.saturating_sub(stat.inodes_free);
        sample.info(
            "filesystem_inodes",
            HELP_INODES,
            &labels,
            stat.inodes as f64,
        );
        sample.feature(
            "filesystem_inodes_free",
            HELP_INODES_FREE,
            &labels,
            stat.inodes_free as f64,
        );
        sample.feature(
            "filesystem_inodes_used_ratio",
            HELP_INODES_USED_RATIO,
            &labels,
            used_inodes as f64 / stat.inodes as f64,
        );
    }
}

fn emit_device(sample: &mut Sample, name: &str, delta: &IoCounters, elapsed_ms: f64) {
    let labels = [("device", name)];
    let seconds = elapsed_ms / 1000.0;
    let per_op = |ms: u64, ops: u64| {
        if ops == 0 {
            0.0
        } else {
            ms as f64 / 1000.0 / ops as f64
        }
    };
    sample.feature(
        "disk_read_bytes_per_second",
        HELP_READ_BYTES,
        &labels,
        delta.read_sectors as f64 * SECTOR_BYTES / seconds,
    );
    sample.feature(
        "disk_written_bytes_per_second",
        HELP_WRITTEN_BYTES,
        &labels,
        delta.write_sectors as f64 * SECTOR_BYTES / seconds,
    );
    sample.feature(
        "disk_reads_per_second",
        HELP_READS,
        &labels,
        delta.reads as f64 / seconds,
    );
    sample.feature(
        "disk_writes_per_second",
        HELP_WRITES,
        &labels,
        delta.writes as f64 / seconds,
    );
    sample.feature(
        "disk_read_latency_seconds",
        HELP_READ_LATENCY,
        &labels,
        per_op(delta.read_ms, delta.reads),
    );
    sample.feature(
        "disk_write_latency_seconds",
        HELP_WRITE_LATENCY,
        &labels,
        per_op(delta.write_ms, delta.writes),
    );
    // io_ticks is sampled at request boundaries and can overshoot the wall-clock
    // interval a little.
    sample.feature(
        "disk_busy_ratio",
        HELP_BUSY,
        &labels,
        (delta.io_ms as f64 / elapsed_ms).min(1.0),
    );
    sample.feature(
        "disk_queue_depth",
        HELP_QUEUE,
        &labels,
        delta.weighted_io_ms as f64 / elapsed_ms,
    );
}

/// One line of the mount table, with the kernel's octal escapes undone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    device: String,
    mount_point: String,
    fs_type: String,
}

/// `collectors.disk.mount_points` and `fs_types` together.
struct MountFilter {
    mount_points: Kept,
    fs_types: Kept,
}

impl MountFilter {
    fn new(config: &DiskConfig) -> Self {
        MountFilter {
            mount_points: Kept::new(&config.mount_points),
            fs_types: Kept::new(&config.fs_types),
        }
    }
    fn keeps(&mut self, m: &Mount) -> bool {
        self.mount_points.keeps(&m.mount_point) && self.fs_types.keeps(&m.fs_type)
    }
}

/// The filesystems to report, in mount table order.
fn select_mounts(text: &str, filter: &mut MountFilter) -> Vec<Mount> {
    // A later mount on the same point hides the earlier one, and statvfs sees the later;
    // it takes the earlier one's place so the order stays stable.
    let mut visible: Vec<Mount> = Vec::new();
    let mut slot_of: HashMap<String, usize> = HashMap::new();
    for mount in text.lines().filter_map(parse_mount) {
        match slot_of.get(&mount.mount_point) {
            Some(&slot) => visible[slot] = mount,
            None => {
                slot_of.insert(mount.mount_point.clone(), visible.len());
                visible.push(mount);
            }
        }
    }
    // The same block device mounted twice (bind mounts) is one filesystem; report it
    // once. Names that are not paths (tmpfs, overlay, server:/export) say nothing about
    // identity, so those mounts are all kept.
    let mut seen_devices: HashSet<String> = HashSet::new();
    visible
        .into_iter()
        .filter(|m| filter.keeps(m))
        .filter(|m| !m.device.starts_with('/') || seen_devices.insert(m.device.clone()))
        .collect()
}

/// Every mount point of a mount table (`/proc/self/mounts` format), escapes undone,
/// in table order: what the remediation runner checks a path against.
pub(crate) fn mount_points(mounts: &str) -> Vec<String> {
    mounts
        .lines()
        .filter_map(parse_mount)
        .map(|m| m.mount_point)
        .collect()
}

fn parse_mount(line: &str) -> Option<Mount> {
    let mut fields = line.split_whitespace();
    let device = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    let fs_type = unescape(fields.next()?);
    Some(Mount {
        device,
        mount_point,
        fs_type,
    })
}

/// Undo the `\ooo` escapes the kernel writes for space, tab, newline and backslash.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(digits) = bytes.get(i + 1..i + 4) {
                if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                    let value = digits
                        .iter()
                        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                    if let Ok(byte) = u8::try_from(value) {
                        out.push(byte);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `/proc/diskstats` counters we use, cumulative since boot (or deltas of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct IoCounters {
    reads: u64,
    read_sectors: u64,
    read_ms: u64,
    writes: u64,
    write_sectors: u64,
    write_ms: u64,
    io_ms: u64,
    weighted_io_ms: u64,
}

impl IoCounters {
    /// Increase since `before`; `None` if any counter went backwards, which means the
    /// device was recreated or a 32-bit counter wrapped and no delta can be trusted.
    fn since(&self, before: &IoCounters) -> Option<IoCounters> {
        Some(IoCounters {
            reads: self.reads.checked_sub(before.reads)?,
            read_sectors: self.read_sectors.checked_sub(before.read_sectors)?,
            read_ms: self.read_ms.checked_sub(before.read_ms)?,
            writes: self.writes.checked_sub(before.writes)?,
            write_sectors: self.write_sectors.checked_sub(before.write_sectors)?,
            write_ms: self.write_ms.checked_sub(before.write_ms)?,
            io_ms: self.io_ms.checked_sub(before.io_ms)?,
            weighted_io_ms: self.weighted_io_ms.checked_sub(before.weighted_io_ms)?,
        })
    }
}

/// Device name and counters per line. Kernels append discard and flush columns over
/// time; the first eleven counters have been stable since 2.6, so only those are read.
fn parse_diskstats(text: &str) -> Vec<(String, IoCounters)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields.get(2)?;
            let mut n = [0u64; 11];
            for (slot, field) in n.iter_mut().zip(fields.get(3..14)?) {
                *slot = field.parse().ok()?;
            }
            // n[1], n[5]: merges; n[8]: requests in flight right now.
            let counters = IoCounters {
                reads: n[0],
                read_sectors: n[2],
                read_ms: n[3],
                writes: n[4],
                write_sectors: n[6],
                write_ms: n[7],
                io_ms: n[9],
                weighted_io_ms: n[10],
            };
            Some((name.to_string(), counters))
        })
        .collect()
}

/// `statvfs(3)` on `path`.
pub fn statvfs(path: &Path) -> io::Result<FsStat> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    let mut raw = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and outlives the call; `raw` is a valid place
    // for the kernel to write a `statvfs` into.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), raw.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled every field.
    let raw = unsafe { raw.assume_init() };
    Ok(fs_stat(&raw))
}

// The statvfs field types are u64 on 64-bit Linux but u32 on some 32-bit targets.
#[allow(clippy::unnecessary_cast)]
fn fs_stat(raw: &libc::statvfs) -> FsStat {
    // Block counts are in fragment-size units; very old kernels leave f_frsize zero.
    let unit = if raw.f_frsize > 0 {
        raw.f_frsize
    } else {
        raw.f_bsize
    } as u64;
    FsStat {
        size_bytes: (raw.f_blocks as u64).saturating_mul(unit),
        free_bytes: (raw.f_bfree as u64).saturating_mul(unit),
        avail_bytes: (raw.f_bavail as u64).saturating_mul(unit),
        inodes: raw.f_files as u64,
        inodes_free: raw.f_ffree as u64,
    }
}

#[doc(hidden)]
pub fn parse_for_fuzzing(text: &str) {
    let _ = parse_diskstats(text);
    for line in text.lines() {
        let _ = parse_mount(line);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;
    use crate::collect::testing::{assert_close, fixture};

    const GIB: u64 = 1 << 30;

    fn default_config() -> DiskConfig {
        DiskConfig::default()
    }

    /// Fixed numbers for the fixture's filesystems; the NFS mount is stale.
    fn fake_statfs(path: &Path) -> io::Result<FsStat> {
        if path.ends_with("root") {
            Ok(FsStat {
                size_bytes: 100 * GIB,
                free_bytes: 30 * GIB,
                avail_bytes: 20 * GIB,
                inodes: 1_000_000,
                inodes_free: 750_000,
            })
        } else if path.ends_with("root/home") {
            Ok(FsStat {
                size_bytes: 500 * GIB,
                free_bytes: 400 * GIB,
                avail_bytes: 400 * GIB,
                inodes: 0,
                inodes_free: 0,
            })
        } else {
            Err(io::Error::from_raw_os_error(libc::ESTALE))
        }
    }

    fn disk(host: &str, config: DiskConfig) -> Disk {
        Disk::with_statfs(fixture(host), config, fake_statfs)
    }

    fn collect_in_turn(hosts: &[&str], config: DiskConfig) -> (Disk, Sample) {
        let mut disk = disk(hosts[0], config);
        let mut sample = Sample::new(0);
        for (i, host) in hosts.iter().enumerate() {
            disk.paths = fixture(host);
            sample = Sample::new(1_000_000 + i as i64 * 1000);
            disk.collect(&mut sample).unwrap();
        }
        (disk, sample)
    }

    fn label_values(s: &Sample, name: &str, label: &str) -> Vec<String> {
        s.points
            .iter()
            .filter(|p| p.name == name)
            .filter_map(|p| {
                p.labels
                    .iter()
                    .find(|(k, _)| *k == label)
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }

    #[test]
    fn filesystems_are_filtered_deduplicated_and_stale_ones_skipped() {
        let config = default_config();
        let text = std::fs::read_to_string(fixture("host").proc("self/mounts")).unwrap();
        let chosen: Vec<String> = select_mounts(&text, &mut MountFilter::new(&config))
            .into_iter()
            .map(|m| m.mount_point)
            .collect();
        // /srv/backup is /dev/sda2 again; pseudo, docker and /dev mounts are filtered.
        assert_eq!(chosen, ["/", "/home", "/mnt/media library"]);

        let (_, s) = collect_in_turn(&["host"], config);
        // The NFS mount's statvfs failed: skipped, not an error.
        assert_eq!(
            label_values(&s, "filesystem_size_bytes", "mountpoint"),
            ["/", "/home"]
        );
    }

    #[test]
    fn filesystem_values_and_labels() {
        let (_, s) = collect_in_turn(&["host"], default_config());
        let root = [
            ("mountpoint", "/"),
            ("device", "/dev/sda2"),
            ("fstype", "ext4"),
        ];
        assert_close(s.get("filesystem_size_bytes", &root), (100 * GIB) as f64);
        assert_close(
            s.get("filesystem_available_bytes", &root),
            (20 * GIB) as f64,
        );
        assert_close(s.get("filesystem_free_bytes", &root), (30 * GIB) as f64);
        // 70 GiB used of 70 + 20 usable.
        assert_close(s.get("filesystem_used_ratio", &root), 70.0 / 90.0);
        assert_close(s.get("filesystem_inodes", &root), 1_000_000.0);
        assert_close(s.get("filesystem_inodes_free", &root), 750_000.0);
        assert_close(s.get("filesystem_inodes_used_ratio", &root), 0.25);

        let home = [
            ("mountpoint", "/home"),
            ("device", "/dev/mapper/vg0-home"),
            ("fstype", "xfs"),
        ];
        assert_close(s.get("filesystem_used_ratio", &home), 0.2);
        assert!(
            s.get("filesystem_inodes", &home).is_none(),
            "no inode table, no inode points"
        );

        let info: HashSet<&str> = s
            .points
            .iter()
            .filter(|p| !p.feature)
            .map(|p| p.name)
            .collect();
        assert_eq!(
            info,
            HashSet::from(["filesystem_size_bytes", "filesystem_inodes"])
        );
    }

    #[test]
    fn filesystem_filters_come_from_config() {
        let config = DiskConfig {
            mount_points: Filter {
                include: Some(Pattern::new("/home|/srv/.*").unwrap()),
                exclude: None,
            },
            fs_types: Filter::default(),
            ..default_config()
        };
        let text = std::fs::read_to_string(fixture("host").proc("self/mounts")).unwrap();
        let chosen: Vec<String> = select_mounts(&text, &mut MountFilter::new(&config))
            .into_iter()
            .map(|m| m.mount_point)
            .collect();
        // With / filtered out, the bind mount is the first sighting of /dev/sda2.
        assert_eq!(chosen, ["/home", "/srv/backup"]);
    }

    #[test]
    fn a_later_mount_on_the_same_point_wins() {
        let text = "/dev/sdb1 /data ext4 rw 0 0\n/dev/sdc1 /data xfs rw 0 0\nbad\n";
        let mounts = select_mounts(text, &mut MountFilter::new(&default_config()));
        assert_eq!(
            mounts,
            [Mount {
                device: "/dev/sdc1".into(),
                mount_point: "/data".into(),
                fs_type: "xfs".into()
            }]
        );
    }

    #[test]
    fn mount_escapes_are_undone() {
        assert_eq!(unescape(r"/mnt/a\040b\011c\134d\012"), "/mnt/a b\tc\\d\n");
        let table = "proc /proc proc rw,relatime 0 0\n\
                     /dev/vda / ext4 rw,relatime 0 0\n\
                     t /mnt/my\\040disk tmpfs rw,relatime 0 0\n";
        assert_eq!(mount_points(table), ["/proc", "/", "/mnt/my disk"]);
        assert_eq!(unescape(r"/odd\09\777\"), r"/odd\09\777\");
    }

    #[test]
    fn first_tick_has_no_device_rates() {
        let (_, s) = collect_in_turn(&["host"], default_config());
        assert!(s.points.iter().all(|p| !p.name.starts_with("disk_")));
    }

    #[test]
    fn second_tick_has_exact_device_rates() {
        let (_, s) = collect_in_turn(&["host", "host2"], default_config());
        let sda = [("device", "sda")];
        assert_close(s.get("disk_read_bytes_per_second", &sda), 2048.0 * 512.0);
        assert_close(s.get("disk_written_bytes_per_second", &sda), 1000.0 * 512.0);
        assert_close(s.get("disk_reads_per_second", &sda), 100.0);
        assert_close(s.get("disk_writes_per_second", &sda), 50.0);
        assert_close(s.get("disk_read_latency_seconds", &sda), 0.0025);
        assert_close(s.get("disk_write_latency_seconds", &sda), 0.008);
        assert_close(s.get("disk_busy_ratio", &sda), 0.3);
        assert_close(s.get("disk_queue_depth", &sda), 0.65);

        let idle = [("device", "nvme0n1")];
        assert_close(s.get("disk_read_latency_seconds", &idle), 0.0);
        assert_close(s.get("disk_busy_ratio", &idle), 0.0);

        // Partitions, device-mapper and loop devices are excluded by default.
        assert_eq!(
            label_values(&s, "disk_busy_ratio", "device"),
            ["nvme0n1", "sda"]
        );
    }

    #[test]
    fn device_filter_comes_from_config() {
        let config = DiskConfig {
            devices: Filter {
                include: Some(Pattern::new("dm-.*|sda1").unwrap()),
                exclude: None,
            },
            ..default_config()
        };
        let (_, s) = collect_in_turn(&["host", "host2"], config);
        assert_eq!(
            label_values(&s, "disk_busy_ratio", "device"),
            ["dm-0", "sda1"]
        );
    }

    #[test]
    fn busy_ratio_is_capped() {
        let mut s = Sample::new(0);
        let delta = IoCounters {
            io_ms: 1010,
            ..IoCounters::default()
        };
        emit_device(&mut s, "sda", &delta, 1000.0);
        assert_close(s.get("disk_busy_ratio", &[]), 1.0);
    }

    #[test]
    fn counter_reset_yields_no_rate_and_vanished_devices_are_dropped() {
        let (disk, s) = collect_in_turn(&["host", "host2"], default_config());
        assert!(disk
            .previous
            .as_ref()
            .is_some_and(|p| !p.devices.contains_key("sdb")));
        assert!(s
            .get("disk_reads_per_second", &[("device", "sdb")])
            .is_none());

        let (_, s) = collect_in_turn(&["host2", "host"], default_config());
        assert!(s
            .get("disk_reads_per_second", &[("device", "sda")])
            .is_none());
        // nvme0n1 did not move, so its delta is a valid zero.
        assert_close(
            s.get("disk_reads_per_second", &[("device", "nvme0n1")]),
            0.0,
        );
    }

    #[test]
    fn malformed_diskstats_lines_are_skipped() {
        let parsed = parse_diskstats(
            "8 0 sda 1 2 3\n8 0 sdb 1 2 3 4 5 6 7 8 9 10 x\n\n8 0 sdc 1 2 3 4 5 6 7 8 9 10 11\n",
        );
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0, "sdc");
        assert_eq!(parsed[0].1.weighted_io_ms, 11);
    }

    #[test]
    fn missing_files_are_errors_naming_them() {
        let err = disk("no-such-host", default_config())
            .collect(&mut Sample::new(0))
            .unwrap_err();
        assert!(
            err.to_string().contains("no-such-host/proc/self/mounts"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("1")).unwrap();
        std::fs::write(dir.path().join("1/mounts"), "/dev/sda2 / ext4 rw 0 0\n").unwrap();
        let paths = Paths {
            procfs: dir.path().to_path_buf(),
            ..fixture("host")
        };
        let err = Disk::with_statfs(paths, default_config(), fake_statfs)
            .collect(&mut Sample::new(0))
            .unwrap_err();
        assert!(err.to_string().contains("diskstats"), "{err}");
    }

    #[test]
    fn statvfs_reads_this_machine() {
        let stat = statvfs(Path::new("/")).unwrap();
        assert!(stat.size_bytes > 0);
        assert!(stat.free_bytes >= stat.avail_bytes);
        assert!(statvfs(Path::new("/no/such/mount")).is_err());
    }

    #[test]
    fn reads_this_machine() {
        let mut disk = Disk::new(Paths::default(), default_config());
        let mut s = Sample::new(1000);
        disk.collect(&mut s).unwrap();
        disk.collect(&mut Sample::new(2000)).unwrap();
        assert!(!s.points.is_empty());
    }
}
