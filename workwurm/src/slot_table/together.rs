//! Running tasks together: the slot table's rules for tasks of coroutine functions (`async def`).
//!
//! Part of the slot table (see there). The first time a slot's call of a task's function returns
//! a coroutine, the slot says so (`coroutines`); from then on the table hands that
//! function's tasks *together*: up to `async_concurrency` of them at once to one slot, which
//! starts each on its event loop as soon as it reads it, so each counts as begun when handed and
//! ends on its own, in any order. Until the table knows, a task of such a function goes out like
//! any other (alone, to an idle slot, where the slot runs it to its end before the next), so the
//! first task of an `async def` on a worker runs alone.
//!
//! The rules:
//! - A slot runs either a sequential hand or together tasks, never both: a sync task (or one of
//!   an unknown function) still takes a whole idle slot, and together tasks go only to an idle
//!   slot or to one that runs together tasks and has room.
//! - Together tasks are packed as the coordinator counts them (each is 1/N of a slot): the slot
//!   running the most of them that still has room takes the next, so that other slots stay idle
//!   for sync tasks.
//! - A sync task that waits at the queue's front for an idle slot does not stop together tasks
//!   behind it from going to slots with room, except to the slot running the fewest (lowest index
//!   on a tie): that one takes nothing new, so it empties and the sync task gets it. Only the
//!   first [`SCAN`] queued attempts are looked at for this.
//! - A slot that is cancelling one of its tasks takes nothing new until that is settled.
//! - A kill or a timeout of a together task cancels exactly that task (`Interrupt`: its asyncio
//!   task is cancelled) and reports it as asked (`Killed`, or `Timeout`) once the slot says it
//!   ended, with what it wrote. If it has not ended [`GRACE`] after the cancel (it blocks the
//!   event loop, or swallows the cancellation), the slot's process is killed and replaced: that
//!   task is reported as asked, and every other task still running together in that slot fails
//!   (`SlotCrashed`, naming the task that would not stop): they ran, so running them again
//!   unasked could run an at-most-once task twice; the coordinator's crash policy decides.
//!   Together tasks that the slot reported ended before its exit are reported as they ended.
//! - A crash of a slot fails every task it ran together (`SlotCrashed`).

use super::{Action, AttemptId, Phase, Slot, SlotTable};
use crate::failures;
use std::time::Duration;
use tatzelwurm_proto::task::{Outcome, TaskError};
use tatzelwurm_proto::worker::{Assignment, Report};
use tokio::time::Instant;
use tracing::{debug, warn};

/// How long a together task may take to end after its cancel before its slot is replaced.
pub const GRACE: Duration = Duration::from_secs(1);

/// How many queued attempts are looked at for together tasks that may pass a sync task waiting
/// for an idle slot; beyond them, they wait in order.
pub(super) const SCAN: usize = 1024;

/// A task a slot runs together with others.
#[derive(Debug)]
pub(crate) struct Together {
    /// What the coordinator handed.
    pub(super) assignment: Assignment,
    /// When it was handed, which is when the slot began it.
    pub(super) began: Instant,
    /// Its cancel, once one was sent.
    pub(super) stop: Option<Cancel>,
}

/// A together task being cancelled.
#[derive(Debug)]
pub(super) struct Cancel {
    /// What it is reported as, whatever the slot says of it.
    outcome: Outcome,
    /// When its slot is replaced if it has not ended by then.
    until: Instant,
}

impl Together {
    pub(super) fn id(&self) -> AttemptId {
        (self.assignment.task, self.assignment.attempt)
    }

    /// When it must end, and its timeout; none once it is being cancelled.
    fn deadline(&self) -> Option<(Instant, Duration)> {
        if self.stop.is_some() {
            return None;
        }
        let limit = Duration::from_millis(self.assignment.spec.policy.timeout_ms?);
        Some((self.began.checked_add(limit)?, limit))
    }
}

/// The earliest moment the table must look at `slot`'s together tasks: a timeout, or the end of
/// a cancel's grace.
/// None while the slot's process is being killed: its exit settles every task it holds.
pub(super) fn next_deadline(slot: &Slot) -> Option<Instant> {
    if !matches!(slot.phase, Phase::Ready) {
        return None;
    }
    slot.together
        .iter()
        .filter_map(|t| match &t.stop {
            Some(cancel) => Some(cancel.until),
            None => t.deadline().map(|(at, _)| at),
        })
        .min()
}

impl SlotTable {
    /// Slot `index` found these functions to be coroutine functions: from now on their tasks run
    /// together. Those new to the table are kept for [`SlotTable::take_coroutines`].
    pub fn coroutines(&mut self, index: usize, names: Vec<String>, now: Instant) {
        for name in names {
            if self.coroutines.insert(name.clone()) {
                debug!("slot {index} found {name} to be a coroutine function");
                self.learned.push(name);
            }
        }
        self.dispatch(now);
    }

    /// The coroutine functions learned since the last call, for the coordinator.
    pub fn take_coroutines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.learned)
    }

    /// Whether tasks of `function` run together.
    pub(super) fn is_coroutine(&self, function: &str) -> bool {
        // No hashing on the hot path of a worker that never met a coroutine function.
        !self.coroutines.is_empty() && self.coroutines.contains(function)
    }

    /// Whether `index` may take a together task now, and how many it runs (`None`: it may not).
    /// An idle slot runs 0.
    pub(super) fn together_room(&self, index: usize) -> Option<usize> {
        let slot = &self.slots[index];
        let open = matches!(slot.phase, Phase::Ready)
            && !slot.broken
            && slot.hand.is_empty()
            && slot.together.len() < self.concurrency
            && slot.together.iter().all(|t| t.stop.is_none());
        open.then_some(slot.together.len())
    }

    /// The slot a together task goes to: the one running the most together tasks that has room,
    /// an idle one only when none has; never `reserved`.
    pub(super) fn together_target(&self, reserved: Option<usize>) -> Option<usize> {
        (0..self.slots.len())
            .filter(|&i| Some(i) != reserved)
            .filter_map(|i| self.together_room(i).map(|running| (running, i)))
            // Most running first; among equals the lowest index.
            .max_by_key(|&(running, i)| (running, std::cmp::Reverse(i)))
            .map(|(_, i)| i)
    }

    /// The slot kept free of new together tasks while a sync task waits for an idle slot: the
    /// one running the fewest together tasks (lowest index on a tie), if any runs some.
    pub(super) fn reserved_for_waiting(&self) -> Option<usize> {
        (0..self.slots.len())
            .filter(|&i| {
                matches!(self.slots[i].phase, Phase::Ready) && !self.slots[i].together.is_empty()
            })
            .min_by_key(|&i| (self.slots[i].together.len(), i))
    }

    /// Hands `assignment` to `index` to run together with what it runs.
    pub(super) fn push_together(&mut self, index: usize, assignment: Assignment, now: Instant) {
        self.slots[index].together.push(Together {
            assignment,
            began: now,
            stop: None,
        });
    }

    /// A kill of `target` if it runs together somewhere: cancels it (or, if it is being
    /// cancelled for its timeout, makes that cancel a kill). Returns whether it was found.
    pub(super) fn kill_together(&mut self, target: AttemptId, now: Instant) -> bool {
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let Some(task) = slot.together.iter_mut().find(|t| t.id() == target) else {
                continue;
            };
            match &mut task.stop {
                Some(cancel) => cancel.outcome = Outcome::Killed,
                None => {
                    debug!(task = %target.0, attempt = %target.1, "cancelling a task running together in slot {index}");
                    task.stop = Some(Cancel {
                        outcome: Outcome::Killed,
                        until: now + GRACE,
                    });
                    if matches!(slot.phase, Phase::Ready) {
                        self.actions.push_back(Action::Interrupt {
                            slot: index,
                            attempts: vec![target],
                        });
                    }
                }
            }
            return true;
        }
        false
    }

    /// Cancels the together tasks of `index` past their timeout, and replaces the slot's process
    /// if a cancel's grace passed.
    pub(super) fn time_out_together(&mut self, index: usize, now: Instant) {
        let slot = &mut self.slots[index];
        if !matches!(slot.phase, Phase::Ready) {
            return;
        }
        let mut cancel = Vec::new();
        let mut stuck = None;
        for task in &mut slot.together {
            match &task.stop {
                Some(stop) if stop.until <= now => {
                    stuck.get_or_insert(task.id());
                }
                Some(_) => {}
                None => {
                    let Some((at, limit)) = task.deadline() else {
                        continue;
                    };
                    if at > now {
                        continue;
                    }
                    let error = failures::timed_out(limit);
                    tracing::info!(
                        "task {} (attempt {}) in slot {index}: {}",
                        task.assignment.task,
                        task.assignment.attempt,
                        error.message
                    );
                    task.stop = Some(Cancel {
                        outcome: Outcome::Failed { error },
                        until: now + GRACE,
                    });
                    cancel.push(task.id());
                }
            }
        }
        if let Some(stuck) = stuck {
            warn!(
                "task {} (attempt {}) did not end within {} s of being cancelled; replacing slot {index} and the {} task{} it ran together",
                stuck.0,
                stuck.1,
                GRACE.as_secs_f64(),
                slot.together.len(),
                if slot.together.len() == 1 { "" } else { "s" }
            );
            slot.replaced_for = Some(stuck);
            slot.phase = Phase::Killing(None);
            self.actions.push_back(Action::Kill { slot: index });
            return;
        }
        if !cancel.is_empty() {
            self.actions.push_back(Action::Interrupt {
                slot: index,
                attempts: cancel,
            });
        }
    }

    /// The slot reported `report`: if it is one of its together tasks, reports it (as asked, if
    /// it was being cancelled) and returns `None`; otherwise gives it back for the sequential
    /// rules.
    pub(super) fn done_together(&mut self, index: usize, report: Report) -> Option<Report> {
        let slot = &mut self.slots[index];
        let id = (report.task, report.attempt);
        let Some(at) = slot.together.iter().position(|t| t.id() == id) else {
            return Some(report);
        };
        let task = slot.together.remove(at);
        let report = match task.stop {
            // Whatever it did after the cancel, it ends as the kill or the timeout said, with
            // what it wrote.
            Some(cancel) => Report {
                outcome: cancel.outcome,
                ..report
            },
            None => report,
        };
        if slot.together.is_empty() && slot.replaced_for.is_none() {
            slot.failures = 0;
        }
        self.push_report(report, None);
        None
    }

    /// Fails every together task of `index` that is not being cancelled already with `error`
    /// (those being cancelled end as their cancel says) and kills the slot's process; each is
    /// reported when the process is gone. Returns how many were failed.
    pub(super) fn fail_together(&mut self, index: usize, error: TaskError) -> usize {
        let slot = &mut self.slots[index];
        let mut failed = 0;
        for task in &mut slot.together {
            if task.stop.is_none() {
                task.stop = Some(Cancel {
                    outcome: Outcome::Failed {
                        error: error.clone(),
                    },
                    // Never looked at: the slot is being killed.
                    until: task.began,
                });
                failed += 1;
            }
        }
        slot.phase = Phase::Killing(None);
        self.actions.push_back(Action::Kill { slot: index });
        failed
    }

    /// The last `count` together tasks handed to `index` did not reach it: they go back to the
    /// queue, and the slot, whose process is gone, gets nothing more until its exit.
    pub(super) fn together_hand_failed(&mut self, index: usize, count: usize, now: Instant) {
        let slot = &mut self.slots[index];
        if !matches!(slot.phase, Phase::Ready) || slot.broken || slot.together.len() < count {
            return;
        }
        let keep = slot.together.len() - count;
        let lost: Vec<Together> = slot.together.drain(keep..).collect();
        for task in lost.into_iter().rev() {
            self.queue.push_front(task.assignment);
        }
        warn!("slot {index} died before it read its tasks");
        if slot.together.is_empty() {
            slot.failures += 1;
            slot.phase = Phase::Killing(None);
        } else {
            slot.broken = true;
        }
        self.actions.push_back(Action::Kill { slot: index });
        self.dispatch(now);
    }

    /// The process of `index` is gone: reports every task it still ran together (as asked if
    /// it was being cancelled; failed otherwise, naming why) and returns how many there were.
    pub(super) fn together_exited(&mut self, index: usize, how: &str) -> usize {
        let slot = &mut self.slots[index];
        let tasks = std::mem::take(&mut slot.together);
        let replaced_for = slot.replaced_for.take();
        let count = tasks.len();
        for task in tasks {
            let id = task.id();
            let outcome = match (task.stop, replaced_for) {
                (Some(cancel), _) => cancel.outcome,
                (None, Some(culprit)) => Outcome::Failed {
                    error: failures::replaced_beside(culprit.0, culprit.1),
                },
                (None, None) => Outcome::Failed {
                    error: failures::slot_crashed(how),
                },
            };
            self.report(id, outcome, Some(index));
        }
        count
    }
}

#[cfg(test)]
mod tests;
