//! What a worker's slots use, as `worker list --json` prints it under `usage`: the same keys as
//! the HTTP API's `/api/workers` (`coordinator/src/http/json.rs`), so a script reads both alike.

use serde::Serialize;
use tatzelwurm_proto::worker::WorkerUsage;

/// What a worker's slots use, as it last measured.
#[derive(Debug, Serialize)]
pub struct UsageJson {
    /// When it measured, seconds since the epoch (its clock).
    at: f64,
    /// Resident memory of all its slots, bytes.
    rss: u64,
    /// CPU of all its slots, in cores (1.0 = one core busy).
    cpu: f64,
    /// `workwurm --max-memory` in bytes, or null.
    max_memory: Option<u64>,
    /// Slots replaced after a task for passing `max_memory`.
    memory_replaced: u64,
    /// Tasks failed `MemoryLimit` for passing it while they ran.
    memory_killed: u64,
    /// One per slot, in slot order.
    slots: Vec<SlotJson>,
}

/// One slot process.
#[derive(Debug, Serialize)]
struct SlotJson {
    pid: u32,
    /// Bytes.
    rss: u64,
    /// Cores.
    cpu: f64,
    /// Tasks it runs now.
    running: u32,
}

impl UsageJson {
    /// The JSON of `usage`.
    pub fn new(usage: &WorkerUsage) -> UsageJson {
        UsageJson {
            at: usage.at.as_secs_f64(),
            rss: usage.slots.iter().map(|s| s.rss).sum(),
            cpu: cores(usage.slots.iter().map(|s| s.cpu_permille).sum()),
            max_memory: usage.max_memory,
            memory_replaced: usage.memory_replaced,
            memory_killed: usage.memory_killed,
            slots: usage
                .slots
                .iter()
                .map(|s| SlotJson {
                    pid: s.pid,
                    rss: s.rss,
                    cpu: cores(s.cpu_permille),
                    running: s.running,
                })
                .collect(),
        }
    }
}

/// Thousandths of a core as cores.
fn cores(permille: u32) -> f64 {
    f64::from(permille) / 1000.0
}
