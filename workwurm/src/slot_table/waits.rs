//! The start condition of held tasks: a task the coordinator handed this worker ahead of its
//! dependencies' completion starts only after each of them completed here.
//!
//! The coordinator hands a `blocked` task to the worker that holds all its unfinished
//! dependencies (see coordinator/src/task_table/held.rs); the task's spec names them in
//! `after`. When its `Run` arrives, the ids of `after` that this worker holds (queued, in a
//! slot's hand or running) are what it waits for; ids it does not hold count as done, since the
//! coordinator sent it only because the others had completed. Each completion here (outcome
//! `Completed`) ticks one off; when none is left, the task is startable like any other.
//!
//! If one of them ends otherwise (failed, killed, timed out, crashed, given back, or skipped by
//! its slot), the waiting task is *doomed*: it never starts here, and the worker gives it back
//! unasked (`Returned`) as soon as it is in the queue (`hand_out`), and so dooms what waits for
//! it in turn. The coordinator puts it back to `blocked`, or has failed it already
//! (`DependencyFailed`; its `Kill` then finds nothing, and the `Returned` ends the attempt); its
//! own `TakeBack`s and `Kill`s of held tasks find them gone or act on them as on any queued task.
//! One race is covered by `unmet`: a dependency that ended here otherwise while the
//! coordinator, not knowing yet, sent a task that waits for it. That `Run` arrives before any
//! answer to the dependency's report (one connection, in order), so the dependency is
//! remembered for `UNMET_KEEP`, far longer than a connection that says nothing lives (the
//! lease), or until a new attempt of it arrives (`again`: the coordinator sent that one after
//! it heard); a lost connection forgets everything (`abandon`).
//!
//! A waiting task whose dependencies are all in one slot's hand may be handed to that slot
//! behind them with a condition (`needs`): the slot runs it only if they completed there, and
//! otherwise skips it and says so (`unmet`), and the task comes back to the queue, doomed by the
//! report of the dependency that did not complete (see `hand_out`).

use super::SlotTable;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tatzelwurm_proto::worker::Assignment;
use tatzelwurm_proto::TaskId;
use tokio::time::Instant;

/// How long a dependency that ended here without completing is remembered (see the module
/// comment): much longer than a lease, so that no `Run` sent before the coordinator heard of the
/// end can arrive after it is forgotten.
pub const UNMET_KEEP: Duration = Duration::from_secs(600);

/// Entries of `unmet` above which a new one makes the old ones be looked at.
const UNMET_SWEEP: usize = 256;

/// The waiting tasks of this worker. See the module comment.
#[derive(Debug, Default)]
pub struct Waits {
    /// Tasks handed here that wait for tasks held here, by id.
    pending: HashMap<TaskId, Pending>,
    /// The tasks waiting for each held task, by the held task's id (entries of tasks that left
    /// may stay; `pending` decides).
    waiters: HashMap<TaskId, Vec<TaskId>>,
    /// Tasks that ended here without completing (or were given back), with when.
    unmet: HashMap<TaskId, Instant>,
    /// How many of `pending` are doomed: while any is, the queue is looked through for them
    /// (one may still be in a slot's hand, on its way back).
    doomed: usize,
}

/// What one waiting task waits for.
#[derive(Debug)]
struct Pending {
    /// Held tasks it runs after that have not completed here yet.
    on: Vec<TaskId>,
    /// One of them ended otherwise: it never starts here.
    doomed: bool,
}

impl Waits {
    /// Whether no task waits: then every queued task is startable and nothing is looked up.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Notes `assignment`, just arrived, as waiting if its `after` names tasks this worker
    /// holds (`holds`) or ended here without completing.
    pub fn arrive(&mut self, assignment: &Assignment, holds: impl Fn(TaskId) -> bool) {
        let after = &assignment.spec.after;
        if after.is_empty() {
            return;
        }
        let mut on: Vec<TaskId> = after.iter().copied().filter(|id| holds(*id)).collect();
        on.sort_unstable();
        on.dedup();
        let doomed = !self.unmet.is_empty() && after.iter().any(|id| self.unmet.contains_key(id));
        if on.is_empty() && !doomed {
            return;
        }
        self.doomed += usize::from(doomed);
        for dependency in &on {
            self.waiters
                .entry(*dependency)
                .or_default()
                .push(assignment.task);
        }
        let before = self.pending.insert(assignment.task, Pending { on, doomed });
        if before.is_some_and(|p| p.doomed) {
            self.doomed -= 1;
        }
    }

    /// Task `task` ended here (`completed`: its outcome was `Completed`), or was given back or
    /// dropped (not completed): the tasks waiting for it tick it off, or are doomed. `now` is
    /// needed only for one that did not complete (it is remembered, see `unmet`).
    pub fn ended(&mut self, task: TaskId, completed: bool, now: Option<Instant>) {
        if !completed {
            self.remember_unmet(task, now.unwrap_or_else(Instant::now));
        }
        if self.pending.is_empty() && self.waiters.is_empty() {
            // The common case: a report costs two length checks here.
            return;
        }
        if self.pending.remove(&task).is_some_and(|p| p.doomed) {
            self.doomed -= 1;
        }
        let Some(waiting) = self.waiters.remove(&task) else {
            return;
        };
        for dependent in waiting {
            let Some(pending) = self.pending.get_mut(&dependent) else {
                continue;
            };
            if completed {
                pending.on.retain(|id| *id != task);
                if pending.on.is_empty() && !pending.doomed {
                    self.pending.remove(&dependent);
                }
            } else if !pending.doomed {
                pending.doomed = true;
                self.doomed += 1;
            }
        }
    }

    /// Whether some waiting task is doomed (and still here).
    pub fn any_doomed(&self) -> bool {
        self.doomed > 0
    }

    /// Whether `task` is doomed: something it waits for ended here without completing.
    pub fn doomed(&self, task: TaskId) -> bool {
        self.pending.get(&task).is_some_and(|p| p.doomed)
    }

    /// A new attempt of `task` arrived: a failure of an earlier one no longer dooms what is
    /// sent after it (the coordinator sent this one after it heard of that failure).
    pub fn again(&mut self, task: TaskId) {
        if !self.unmet.is_empty() {
            self.unmet.remove(&task);
        }
    }

    /// Whether `task` may start: it waits for nothing here and is not doomed.
    pub fn startable(&self, task: TaskId) -> bool {
        self.pending.is_empty() || !self.pending.contains_key(&task)
    }

    /// What `task` waits for, if it is waiting and not doomed: it may go behind those in a slot
    /// with that condition.
    pub fn condition(&self, task: TaskId) -> Option<&[TaskId]> {
        self.pending
            .get(&task)
            .filter(|p| !p.doomed && !p.on.is_empty())
            .map(|p| p.on.as_slice())
    }

    /// Forgets everything (a lost connection: the coordinator takes every attempt back).
    pub fn clear(&mut self) {
        self.doomed = 0;
        self.pending.clear();
        self.waiters.clear();
        self.unmet.clear();
    }

    fn remember_unmet(&mut self, task: TaskId, now: Instant) {
        if self.unmet.len() >= UNMET_SWEEP {
            self.unmet
                .retain(|_, at| now.saturating_duration_since(*at) < UNMET_KEEP);
        }
        self.unmet.insert(task, now);
    }
}

impl SlotTable {
    /// The tasks the worker holds: queued, in a slot's hand or running together.
    pub(super) fn held_tasks(&self) -> HashSet<TaskId> {
        let mut held: HashSet<TaskId> = self.queue.iter().map(|a| a.task).collect();
        for slot in &self.slots {
            held.extend(slot.hand.iter().map(|h| h.assignment.task));
            held.extend(slot.together.iter().map(|t| t.assignment.task));
        }
        held
    }
}

#[cfg(test)]
mod tests;
