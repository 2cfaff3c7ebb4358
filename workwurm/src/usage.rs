//! What the slots use: resident memory and CPU time, read from `/proc`, for the coordinator's
//! `FromWorker::Usage` (shown by `worker list`) and for `--max-memory`.
//!
//! `slots` reads [`resident`] of its slot processes for the memory limit; `session` asks the
//! pool for a [`SlotsSnapshot`] every few heartbeats and turns it into a `WorkerUsage` with a
//! [`CpuMeter`], which remembers each slot's CPU time at the previous measurement. Parsing is
//! plain functions over the files' text, tested without a process; the numbers are those of
//! the slot process itself (not of processes its task started).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::worker::{SlotUsage, WorkerUsage};

/// What the pool knows of its slots at one moment, for a `WorkerUsage`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotsSnapshot {
    /// Per slot, in slot order: its process id (`None` while it is being replaced) and how many
    /// tasks it runs now.
    pub slots: Vec<(Option<i32>, u32)>,
    /// `--max-memory` in bytes.
    pub max_memory: Option<u64>,
    /// Slots replaced because they were past the limit after a task, since the worker started.
    pub memory_replaced: u64,
    /// Tasks failed `MemoryLimit` because their slot passed the limit while they ran.
    pub memory_killed: u64,
}

/// Bytes per memory page, as `/proc/PID/statm` counts.
fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        size if size > 0 => size as u64,
        _ => 4096,
    })
}

/// Clock ticks per second, as `/proc/PID/stat` counts CPU time.
fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *TICKS.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        ticks if ticks > 0 => ticks as u64,
        _ => 100,
    })
}

/// The resident memory of process `pid` in bytes; `None` if it is gone.
pub fn resident(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    Some(statm_resident_pages(&text)? * page_size())
}

/// The CPU time (user and system) process `pid` has used, in clock ticks; `None` if it is gone.
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu_ticks(&text)
}

/// The resident pages in the text of `/proc/PID/statm` (its second field).
pub fn statm_resident_pages(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// utime + stime in the text of `/proc/PID/stat` (fields 14 and 15; counted after the command
/// name, which is in parentheses and may itself contain spaces and parentheses).
pub fn stat_cpu_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Each slot process's CPU time at the previous measurement, to tell the share of a core it
/// used since then.
#[derive(Debug, Default)]
pub struct CpuMeter {
    last: HashMap<i32, (u64, Instant)>,
}

impl CpuMeter {
    /// Thousandths of one core that `pid` used between its previous sample and this one
    /// (`ticks` at `now`); 0 for its first sample.
    pub fn permille(&mut self, pid: i32, ticks: u64, now: Instant) -> u32 {
        let before = self.last.insert(pid, (ticks, now));
        let Some((then_ticks, then)) = before else {
            return 0;
        };
        let elapsed = now.saturating_duration_since(then).as_micros();
        if elapsed == 0 {
            return 0;
        }
        let used = u128::from(ticks.saturating_sub(then_ticks)) * 1_000_000
            / u128::from(ticks_per_second());
        u32::try_from(used * 1000 / elapsed).unwrap_or(u32::MAX)
    }

    /// Forgets the processes not in `alive` (replaced slots).
    pub fn keep_only(&mut self, alive: &[i32]) {
        self.last.retain(|pid, _| alive.contains(pid));
    }

    /// Measures each slot of `snapshot` now: what the coordinator's `Usage` carries.
    pub fn measure(&mut self, snapshot: SlotsSnapshot) -> WorkerUsage {
        let now = Instant::now();
        let mut alive = Vec::with_capacity(snapshot.slots.len());
        let slots = snapshot
            .slots
            .iter()
            .map(|&(pid, running)| {
                let Some(pid) = pid else {
                    return SlotUsage {
                        pid: 0,
                        rss: 0,
                        cpu_permille: 0,
                        running,
                    };
                };
                alive.push(pid);
                let cpu_permille = cpu_ticks(pid).map_or(0, |t| self.permille(pid, t, now));
                SlotUsage {
                    pid: pid as u32,
                    rss: resident(pid).unwrap_or(0),
                    cpu_permille,
                    running,
                }
            })
            .collect();
        self.keep_only(&alive);
        WorkerUsage {
            at: Timestamp::now(),
            slots,
            max_memory: snapshot.max_memory,
            memory_replaced: snapshot.memory_replaced,
            memory_killed: snapshot.memory_killed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// statm's second field is the resident pages; stat's utime and stime are found after a
    /// command name holding spaces and parentheses.
    #[test]
    fn parses_proc_files() {
        assert_eq!(statm_resident_pages("2345 678 90 1 0 300 0\n"), Some(678));
        assert_eq!(statm_resident_pages(""), None);
        let stat = "4711 (py (x) y) S 1 4711 4711 0 -1 4194560 1500 0 0 0 \
                    250 50 0 0 20 0 1 0 12345 1000000 678 18446744073709551615";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
        assert_eq!(stat_cpu_ticks("4711 (cut"), None);
    }

    /// This process's own numbers are read: some resident memory, some CPU time.
    #[test]
    fn reads_this_process() {
        let pid = std::process::id() as i32;
        assert!(resident(pid).unwrap() > 1024 * 1024);
        assert!(cpu_ticks(pid).is_some());
        assert_eq!(resident(i32::MAX), None);
    }

    /// One core busy for the whole interval is 1000; the first sample of a process is 0, and a
    /// forgotten process starts over.
    #[test]
    fn cpu_permille_since_the_last_sample() {
        let mut meter = CpuMeter::default();
        let start = Instant::now();
        let tps = ticks_per_second();
        assert_eq!(meter.permille(7, 100, start), 0);
        let later = start + Duration::from_secs(2);
        assert_eq!(meter.permille(7, 100 + 2 * tps, later), 1000);
        let after = later + Duration::from_secs(4);
        assert_eq!(meter.permille(7, 100 + 3 * tps, after), 250);
        meter.keep_only(&[8]);
        assert_eq!(
            meter.permille(7, 100 + 9 * tps, after + Duration::from_secs(1)),
            0
        );
    }

    /// A snapshot becomes one `SlotUsage` per slot; a slot being replaced shows pid 0.
    #[test]
    fn measures_a_snapshot() {
        let mut meter = CpuMeter::default();
        let pid = std::process::id() as i32;
        let usage = meter.measure(SlotsSnapshot {
            slots: vec![(Some(pid), 1), (None, 0)],
            max_memory: Some(512 * 1024 * 1024),
            memory_replaced: 2,
            memory_killed: 1,
        });
        assert_eq!(usage.slots.len(), 2);
        assert_eq!(usage.slots[0].pid, pid as u32);
        assert!(usage.slots[0].rss > 0);
        assert_eq!(usage.slots[0].running, 1);
        assert_eq!((usage.slots[1].pid, usage.slots[1].rss), (0, 0));
        assert_eq!(
            (usage.max_memory, usage.memory_replaced, usage.memory_killed),
            (Some(512 * 1024 * 1024), 2, 1)
        );
    }
}
