//! The cells of `worker list` about what a worker's slots use: memory (RSS), CPU, uptime and
//! the memory limit with what it did. Short, so the table fits a terminal.

use crate::time;
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::worker::WorkerUsage;

/// The resident memory of all its slots: `412 MiB`; empty until the worker has measured.
pub fn rss(info: &WorkerInfo) -> String {
    info.usage
        .as_ref()
        .map(|usage| bytes(usage.slots.iter().map(|s| s.rss).sum()))
        .unwrap_or_default()
}

/// The CPU of all its slots as a percentage of one core (`135%` is more than one core busy).
pub fn cpu(info: &WorkerInfo) -> String {
    info.usage
        .as_ref()
        .map(|usage| {
            let permille: u64 = usage.slots.iter().map(|s| u64::from(s.cpu_permille)).sum();
            format!("{}%", (permille + 5) / 10)
        })
        .unwrap_or_default()
}

/// How long it has been connected.
pub fn uptime(info: &WorkerInfo, now: Timestamp) -> String {
    time::duration(info.connected_at, now)
}

/// `--max-memory` and what it did: `1.0 GiB (2 replaced, 1 killed)`, `none`, or empty until
/// the worker has measured.
pub fn memory_limit(info: &WorkerInfo) -> String {
    let Some(usage) = &info.usage else {
        return String::new();
    };
    let Some(max) = usage.max_memory else {
        return "none".into();
    };
    match actions(usage) {
        Some(actions) => format!("{} ({actions})", bytes(max)),
        None => bytes(max),
    }
}

/// What the limit did, when it did anything: `2 replaced, 1 killed`.
fn actions(usage: &WorkerUsage) -> Option<String> {
    let mut parts = Vec::new();
    if usage.memory_replaced > 0 {
        parts.push(format!("{} replaced", usage.memory_replaced));
    }
    if usage.memory_killed > 0 {
        parts.push(format!("{} killed", usage.memory_killed));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Bytes in binary units, three significant digits: `980 KiB`, `412 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else if value >= 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes keep three significant digits in the largest unit that fits.
    #[test]
    fn sizes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(412 << 20), "412 MiB");
        assert_eq!(bytes(15 << 29), "7.50 GiB");
        assert_eq!(bytes(20 << 20), "20.0 MiB");
    }
}
