//! Which area of the host a problem is in: each feature belongs to a [`Label`] by its
//! name; an incident's label is the one its top causes carry the most weight in.

use super::{Cause, Label};

/// The area a feature belongs to, from its metric name (labels ignored).
pub fn label_of_feature(feature: &str) -> Label {
    let name = feature.split('{').next().unwrap_or(feature);
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
    if starts(&[
        "cpu_",
        "load_",
        "context_switches",
        "interrupts",
        "forks",
        "processes_",
    ]) {
        Label::Cpu
    } else if starts(&["memory_", "swap_", "major_page_faults"]) {
        Label::Memory
    } else if starts(&["filesystem_", "disk_"]) {
        Label::Storage
    } else if starts(&["network_", "tcp_", "udp_"]) {
        Label::Network
    } else if starts(&["ping_"]) {
        Label::Latency
    } else {
        Label::Other
    }
}

/// The resource a feature is about: the value of its `mountpoint`, `device`,
/// `interface` or `target` label, if it has one.
pub fn resource_of_feature(feature: &str) -> Option<String> {
    ["mountpoint", "device", "interface", "target"]
        .iter()
        .find_map(|key| crate::sample::label_value(feature, key))
        .map(str::to_string)
}

/// The label with the largest share of the causes' contributions (ties: the first
/// cause's), and the resource of the strongest cause in that label.
pub fn classify(causes: &[Cause]) -> (Label, Option<String>) {
    let mut weights: Vec<(Label, f64)> = Vec::new();
    for c in causes {
        let l = label_of_feature(&c.feature);
        let w = c.contribution.max(0.0);
        match weights.iter_mut().find(|(x, _)| *x == l) {
            Some((_, sum)) => *sum += w,
            None => weights.push((l, w)),
        }
    }
    // `weights` is in order of first appearance, so a tie keeps the earlier cause's.
    let Some(label) = weights
        .iter()
        .fold(None::<(Label, f64)>, |best, &(l, w)| match best {
            Some((_, bw)) if bw >= w => best,
            _ => Some((l, w)),
        })
        .map(|(l, _)| l)
    else {
        return (Label::Other, None);
    };
    let resource = causes
        .iter()
        .find(|c| label_of_feature(&c.feature) == label)
        .and_then(|c| resource_of_feature(&c.feature));
    (label, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(feature: &str, contribution: f64) -> Cause {
        Cause {
            feature: feature.into(),
            value: 0.0,
            baseline: 0.0,
            contribution,
        }
    }

    #[test]
    fn features_map_to_labels() {
        for (f, l) in [
            ("cpu_utilization_ratio{mode=\"user\"}", Label::Cpu),
            ("load_average{period=\"1m\"}", Label::Cpu),
            ("context_switches_per_second", Label::Cpu),
            ("memory_used_ratio", Label::Memory),
            ("swap_used_bytes", Label::Memory),
            ("major_page_faults_per_second", Label::Memory),
            ("filesystem_used_ratio{mountpoint=\"/var\"}", Label::Storage),
            ("disk_busy_ratio{device=\"sda\"}", Label::Storage),
            (
                "network_receive_bytes_per_second{interface=\"eth0\"}",
                Label::Network,
            ),
            ("tcp_retransmits_per_second", Label::Network),
            ("udp_receive_errors_per_second", Label::Network),
            (
                "ping_rtt_max_seconds{target=\"gw\",address=\"10.0.0.1\"}",
                Label::Latency,
            ),
            ("my_custom_metric", Label::Other),
        ] {
            assert_eq!(label_of_feature(f), l, "{f}");
        }
    }

    #[test]
    fn resources_come_from_labels() {
        assert_eq!(
            resource_of_feature("filesystem_used_ratio{mountpoint=\"/var\"}").as_deref(),
            Some("/var")
        );
        assert_eq!(
            resource_of_feature("ping_loss_ratio{target=\"gw\",address=\"10.0.0.1\"}").as_deref(),
            Some("gw")
        );
        assert_eq!(resource_of_feature("memory_used_ratio"), None);
    }

    #[test]
    fn label_is_weighted_by_contribution() {
        // One big storage cause outweighs two small CPU ones.
        let causes = [
            cause("cpu_utilization_ratio{mode=\"user\"}", 2.0),
            cause("disk_busy_ratio{device=\"sdb\"}", 5.0),
            cause("load_average{period=\"1m\"}", 2.0),
        ];
        assert_eq!(classify(&causes), (Label::Storage, Some("sdb".into())));
        // Several CPU causes together outweigh one storage cause.
        let causes = [
            cause("disk_busy_ratio{device=\"sdb\"}", 3.0),
            cause("cpu_utilization_ratio{mode=\"user\"}", 2.0),
            cause("load_average{period=\"1m\"}", 2.0),
        ];
        assert_eq!(classify(&causes), (Label::Cpu, None));
        assert_eq!(classify(&[]), (Label::Other, None));
    }
}
