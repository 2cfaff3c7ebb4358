//! The memory limit (`workwurm --max-memory`): the slot table's rules for a slot whose resident
//! memory (RSS) passed it.
//!
//! Part of the slot table (see there). Two measurements feed it:
//! - After each task it runs in order, slot.py reads its own RSS (only under a limit) and, if it
//!   is past the limit, says `outgrown` right after that task's `done`, begins nothing more and
//!   waits. The task's result stands; [`SlotTable::outgrown`] puts the tasks the slot held back
//!   in the queue (none of them began) and replaces its process. Counted in `memory_replaced`.
//! - While the slot lives, the pool measures it every `slots::MEMORY_EVERY` and tells
//!   [`SlotTable::measured`]. A slot found past the limit twice in a row while running the same
//!   task (so for at least one interval: a task that passes the limit only as it returns is
//!   judged after it, by slot.py, and keeps its result) is killed: the task fails
//!   `MemoryLimit` with a sentence naming the limit and the RSS seen (every task it ran together,
//!   if it ran `async def` tasks), the tasks behind it go back to the queue, and a fresh slot
//!   starts. Counted per failed task in `memory_killed`. An idle slot past the limit that has
//!   run a task since it started (a slot whose `async def` tasks ended, which slot.py does not
//!   measure) is replaced as after a task.
//!
//! A fresh slot that has run nothing is never replaced for its size: if the interpreter alone
//! (with what `sitecustomize` imports) is past the limit, replacing it would loop forever; its
//! first task fails instead, and the sentence shows why.

use super::{Action, Phase, SlotTable};
use crate::failures;
use tatzelwurm_proto::task::Outcome;
use tokio::time::Instant;
use tracing::warn;

/// The limit and what it did, since the worker started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCounts {
    /// `--max-memory` in bytes; `None`: no limit.
    pub limit: Option<u64>,
    /// Slots replaced because they were past the limit after a task.
    pub replaced: u64,
    /// Tasks failed `MemoryLimit` because their slot passed the limit while they ran.
    pub killed: u64,
}

impl SlotTable {
    /// The same table with a memory limit of `limit` bytes per slot (`None`: none).
    pub fn with_max_memory(mut self, limit: Option<u64>) -> SlotTable {
        self.memory.limit = limit;
        self
    }

    /// The limit and its counts, for the coordinator's `Usage`.
    pub fn memory_counts(&self) -> MemoryCounts {
        self.memory
    }

    /// Whether the pool should measure its slots: a limit is set and some slot is ready.
    pub fn wants_memory_samples(&self) -> bool {
        self.memory.limit.is_some() && self.slots.iter().any(|s| matches!(s.phase, Phase::Ready))
    }

    /// Slot `index` said it was at `rss` bytes, past the limit, right after the task it last
    /// reported: it begins nothing more, so its hand goes back to the queue and its process is
    /// replaced.
    pub fn outgrown(&mut self, index: usize, rss: u64, now: Instant) {
        let slot = &self.slots[index];
        if !matches!(slot.phase, Phase::Ready) || slot.broken {
            // Being killed already: its exit settles what it held.
            return;
        }
        warn!(
            "slot {index} uses {} MB after its task, past --max-memory {} MB; starting a fresh slot (the task's result stands)",
            failures::megabytes(rss),
            failures::megabytes(self.memory.limit.unwrap_or(0)),
        );
        self.memory.replaced += 1;
        self.replace(index);
        self.dispatch(now);
    }

    /// The pool measured slot `index` at `rss` bytes. Past the limit, what it runs fails
    /// `MemoryLimit` and the slot is killed, or an idle slot that ran a task is replaced.
    pub fn measured(&mut self, index: usize, rss: u64, now: Instant) {
        let Some(limit) = self.memory.limit else {
            return;
        };
        if rss <= limit {
            self.slots[index].over = None;
            return;
        }
        let slot = &self.slots[index];
        if !matches!(slot.phase, Phase::Ready) || slot.broken {
            return;
        }
        let running = slot
            .together
            .first()
            .map(|t| t.id())
            .or_else(|| slot.hand.front().filter(|h| !h.cancelled).map(|h| h.id()));
        if running.is_some() && self.slots[index].over != running {
            // The first time over in this task: it may be returning; look again next time.
            self.slots[index].over = running;
            return;
        }
        let slot = &self.slots[index];
        let (seen, allowed) = (failures::megabytes(rss), failures::megabytes(limit));
        if !slot.together.is_empty() {
            let failed = self.fail_together(index, failures::memory_limit(limit, rss));
            warn!("slot {index} uses {seen} MB, past --max-memory {allowed} MB, while running {failed} task(s) together; killing it, they fail with MemoryLimit");
            self.memory.killed += failed as u64;
        } else if let Some(front) = slot.hand.front().filter(|h| !h.cancelled) {
            warn!(
                "slot {index} uses {seen} MB, past --max-memory {allowed} MB, while running task {} (attempt {}); killing it, the task fails with MemoryLimit",
                front.assignment.task, front.assignment.attempt
            );
            self.memory.killed += 1;
            let error = failures::memory_limit(limit, rss);
            self.stop_front(index, Outcome::Failed { error });
        } else if slot.ran {
            warn!("slot {index} uses {seen} MB between tasks, past --max-memory {allowed} MB; starting a fresh slot");
            self.memory.replaced += 1;
            self.replace(index);
        } else {
            return;
        }
        self.dispatch(now);
    }

    /// Kills the process of `index`, which runs nothing that began: what it holds goes back to
    /// the queue when it is gone, and a fresh process starts.
    fn replace(&mut self, index: usize) {
        self.requeue_hand(index);
        self.slots[index].phase = Phase::Killing(None);
        self.actions.push_back(Action::Kill { slot: index });
    }

    /// How many tasks slot `index` runs now, for the coordinator's `Usage`.
    pub fn running_in(&self, index: usize) -> u32 {
        let slot = &self.slots[index];
        let together = slot.together.len() as u32;
        match &slot.phase {
            Phase::Ready => together + u32::from(slot.hand.front().is_some_and(|h| !h.cancelled)),
            Phase::Killing(Some(stop)) if stop.outcome.is_some() => together + 1,
            _ => together,
        }
    }

    /// The attempt whose output slot `index`'s capture files hold now, for live output: the
    /// task it runs in order; `None` while it runs tasks together or nothing.
    pub fn live_target(&self, index: usize) -> Option<super::AttemptId> {
        let slot = &self.slots[index];
        if !matches!(slot.phase, Phase::Ready) || !slot.together.is_empty() {
            return None;
        }
        slot.hand
            .front()
            .filter(|h| !h.cancelled && slot.began.is_some())
            .map(|h| h.id())
    }
}

#[cfg(test)]
mod tests;
