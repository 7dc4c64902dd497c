//! Host facts for the report and the overview: what machine this is.
//!
//! Read with `sysinfo` (OS name and version, kernel, host name, cores, memory, swap,
//! uptime: one call each, no /proc parsing of ours), and the link speed of each
//! network interface from sysfs (`/sys/class/net/<if>/speed`, which `sysinfo` does
//! not read): the bandwidth part of the health score needs a capacity.

use std::path::Path;

use serde::Serialize;
use sysinfo::{CpuRefreshKind, System};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFacts {
    pub host_name: String,
    /// e.g. `Debian GNU/Linux 13 (trixie)`.
    pub os: String,
    pub kernel: String,
    pub arch: String,
    /// Logical CPUs (vCPUs).
    pub cores: usize,
    pub memory_bytes: u64,
    pub swap_bytes: u64,
    pub uptime_seconds: u64,
    /// Interfaces whose link speed the kernel reports (virtual ones often do not).
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub interface: String,
    pub bits_per_second: u64,
}

impl HostFacts {
    /// This host, now. `sys_root` is the sysfs mount (`paths.sysfs`); what cannot be
    /// read is left empty or 0, never an error.
    pub fn gather(sys_root: &Path) -> HostFacts {
        // sysinfo refuses to start only where it cannot read the system at all; the
        // facts are then what the static calls below still find.
        let (cores, memory_bytes, swap_bytes) = match System::new() {
            Ok(mut sys) => {
                sys.refresh_memory();
                sys.refresh_cpu_list(CpuRefreshKind::nothing());
                (sys.cpus().len(), sys.total_memory(), sys.total_swap())
            }
            Err(_) => (0, 0, 0),
        };
        let cores = match cores {
            0 => std::thread::available_parallelism().map_or(0, |n| n.get()),
            n => n,
        };
        let os = System::long_os_version()
            .or_else(|_| System::name())
            .unwrap_or_default();
        HostFacts {
            host_name: System::host_name().unwrap_or_default(),
            os,
            kernel: System::kernel_version().unwrap_or_default(),
            arch: System::cpu_arch(),
            cores,
            memory_bytes,
            swap_bytes,
            uptime_seconds: System::uptime().unwrap_or(0),
            links: links(&sys_root.join("class/net")),
        }
    }

    /// The link speed of `interface`, when known.
    pub fn link_speed(&self, interface: &str) -> Option<u64> {
        self.links
            .iter()
            .find(|l| l.interface == interface)
            .map(|l| l.bits_per_second)
    }
}

/// Every interface under `dir` with a positive `speed` (Mb/s in the file; -1 or an
/// error when the driver does not know, e.g. a link that is down or virtual).
fn links(dir: &Path) -> Vec<Link> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Link> = entries
        .flatten()
        .filter_map(|e| {
            let interface = e.file_name().to_string_lossy().to_string();
            let text = std::fs::read_to_string(e.path().join("speed")).ok()?;
            let mbits: i64 = text.trim().parse().ok()?;
            (mbits > 0).then(|| Link {
                interface,
                bits_per_second: mbits as u64 * 1_000_000,
            })
        })
        .collect();
    out.sort_by(|a, b| a.interface.cmp(&b.interface));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn facts_of_this_host_are_filled() {
        let f = HostFacts::gather(Path::new("/sys"));
        assert!(f.cores >= 1);
        assert!(f.memory_bytes > 0);
        assert!(!f.kernel.is_empty());
        assert!(!f.os.is_empty());
    }

    #[test]
    fn link_speeds_come_from_sysfs_and_unknown_ones_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("class/net");
        for (i, speed) in [("eth0", "1000\n"), ("veth1", "-1\n"), ("wg0", "x")] {
            std::fs::create_dir_all(net.join(i)).unwrap();
            std::fs::write(net.join(i).join("speed"), speed).unwrap();
        }
        std::fs::create_dir_all(net.join("lo")).unwrap();
        let got = links(&net);
        assert_eq!(
            got,
            [Link {
                interface: "eth0".into(),
                bits_per_second: 1_000_000_000
            }]
        );
    }
}
