//! Held dependents: a `blocked` task handed to the worker that holds all of its unfinished
//! dependencies, ahead of their completion, so that a chain flows to one worker link after link
//! without a round trip per link (HyperQueue does the same).
//!
//! A task may be held when it is at-least-once, `blocked`, and every dependency that has not
//! completed is `running` on one worker W (queued or started there). It becomes `running` with
//! a new attempt like a prefetched task, counts toward W's load, and its `Run` carries its
//! spec, whose `after` tells W what to wait for: W starts it only once each of those it holds
//! completed there (`workwurm`'s slot table). While a dependency is unfinished the task is
//! *held*: `running` with dependencies left (`Deps::remaining` > 0).
//!
//! When a dependency does not complete, the held task must not start, and W keeps it
//! unstartable; the table then orders what W must do with it (`take_orders`):
//! - the dependency failed for good or was killed: the held task fails (`DependencyFailed`,
//!   `settle`) and W is told to kill its attempt; W's `Killed` report confirms the kill;
//! - the dependency goes back (`waiting` for a retry, `ready`/`blocked` after a lost worker or
//!   a return): each held task that runs after it, directly or down a chain, is taken back;
//!   when W returns it, it is `blocked` again (`back_from_running`), never `ready` while a
//!   dependency is unfinished.
//!
//! Candidates are tasks that became `blocked` and the dependents of tasks just handed out;
//! dispatch looks at them after the ready tasks (`tasks/dispatch.rs`), each at most once per
//! pass, and drops those that cannot be held until another of their dependencies is handed out.
//!
//! A held task shows and is counted as `blocked` (it waits for its dependencies, wherever it
//! waits), with no worker and the attempts before the one it holds; its stored record too, but
//! with that attempt number, so that a restart never hands it out again. Once its last
//! dependency completed it is an ordinary `running` task, started then (`released_held`).

use super::live::LiveTask;
use super::{move_to, TaskTable};
use crate::queues::QueueId;
use crate::record::{TaskRecord, TaskRecordRef};
use tatzelwurm_proto::task::{TaskState, Timestamp};
use tatzelwurm_proto::worker::Assignment;
use tatzelwurm_proto::{Attempt, TaskId, WorkerId};

/// Whether and where a candidate may be held now.
#[derive(Debug, PartialEq, Eq)]
pub enum HoldTarget {
    /// It cannot be held until one of its dependencies is handed out (or never): forget it.
    Drop,
    /// Every unfinished dependency runs on `worker`: it may go there if the worker has room
    /// and its queue may have one more assigned.
    On {
        /// The worker that holds all its unfinished dependencies.
        worker: WorkerId,
        /// Its queue.
        queue: QueueId,
    },
}

/// What the workers must be told about held tasks whose dependencies did not complete.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeldOrders {
    /// Held attempts to kill: their task failed with its dependency.
    pub kill: Vec<(TaskId, Attempt)>,
    /// Held attempts to take back: a dependency went back and will run again.
    pub take_back: Vec<(TaskId, Attempt)>,
}

impl TaskTable {
    /// Whether live task `id` is held: `running` while a dependency has not completed.
    pub fn is_held(&self, id: TaskId) -> bool {
        !self.deps.is_empty()
            && self.deps.remaining(id) > 0
            && self
                .tasks
                .get(id)
                .is_some_and(|t| t.state == TaskState::Running)
    }

    /// Whether a worker may give back an attempt of task `id` although it said a slot started
    /// it: the task runs after others, so it may have been held and skipped by its slot
    /// because a dependency did not complete there; or it is finished (failed with its
    /// dependency), and the worker no longer holds it, so its flight must end.
    pub fn may_give_back_started(&self, id: TaskId) -> bool {
        self.tasks.get(id).is_none_or(|t| !t.after().is_empty())
    }

    /// The state live task `id` shows and is counted in: `blocked` for a held task (it waits
    /// for its dependencies, wherever it waits), else its own.
    pub(super) fn shown_state(&self, id: TaskId, task: &LiveTask) -> TaskState {
        if task.state == TaskState::Running && self.held_by_deps(id) {
            TaskState::Blocked
        } else {
            task.state
        }
    }

    /// Whether `id` has a dependency that has not completed.
    fn held_by_deps(&self, id: TaskId) -> bool {
        !self.deps.is_empty() && self.deps.remaining(id) > 0
    }

    /// The record of live task `id` as shown: a held task is `blocked`, with no worker, no
    /// start and the attempts before the one it holds (it has not run).
    pub(super) fn shown_record(&self, id: TaskId, task: &LiveTask) -> TaskRecord {
        let mut record = task.record(id, &self.names);
        if self.shown_state(id, task) != task.state {
            hide_hold(&mut record, self.attempts_before_hold(id, task));
        }
        record
    }

    /// The attempts held task `id` showed before it was held (what it shows while held).
    pub(super) fn attempts_before_hold(&self, id: TaskId, task: &LiveTask) -> Attempt {
        self.held_from
            .get(&id)
            .copied()
            .unwrap_or(Attempt(task.attempt.0.saturating_sub(1)))
    }

    /// The record of live task `id` to store: a held task as `blocked` with no worker, but
    /// with the attempt number it holds, so that a restart, which reserves the next one for a
    /// `blocked` record, never hands that number out again. Borrowed from `task` and the
    /// table's names (`LiveTask::record_ref`): a round encodes it into its batch as it is.
    pub(super) fn stored_record<'a>(&'a self, id: TaskId, task: &'a LiveTask) -> TaskRecordRef<'a> {
        let mut record = task.record_ref(id, &self.names);
        if self.shown_state(id, task) != task.state {
            record.state = TaskState::Blocked;
            record.worker = None;
            record.started_at = None;
        }
        record
    }

    /// Whether task `id` is held, or some held task runs after it: a take-back for idle
    /// workers leaves such an attempt where it is (taking it alone would strand its dependents).
    pub fn holds_or_is_held(&self, id: TaskId) -> bool {
        if self.deps.is_empty() {
            return false;
        }
        self.is_held(id) || self.deps.dependents_of(id).iter().any(|d| self.is_held(*d))
    }

    /// The smallest candidate for holding above `after`.
    pub fn next_holdable(&self, after: TaskId) -> Option<TaskId> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.holdable
            .range((Excluded(after), Unbounded))
            .next()
            .copied()
    }

    /// Whether some task may be held (dispatch looks only then).
    pub fn has_holdable(&self) -> bool {
        !self.holdable.is_empty()
    }

    /// Forgets candidate `id` (see `HoldTarget::Drop`).
    pub fn drop_holdable(&mut self, id: TaskId) {
        self.holdable.remove(&id);
    }

    /// Notes the dependents of `id`, just handed out, as candidates for holding.
    pub(super) fn note_holdable(&mut self, id: TaskId) {
        if self.deps.is_empty() {
            return;
        }
        let deps = &self.deps;
        for dependent in deps.dependents_of(id) {
            if deps.remaining(*dependent) > 0 {
                self.holdable.insert(*dependent);
            }
        }
    }

    /// Where candidate `id` may be held: `holder` names the worker holding an attempt (the
    /// scheduler's flights). See the module comment for the rule.
    pub fn hold_target(
        &self,
        id: TaskId,
        holder: impl Fn((TaskId, Attempt)) -> Option<WorkerId>,
    ) -> HoldTarget {
        let Some(task) = self.tasks.get(id) else {
            return HoldTarget::Drop;
        };
        if task.state != TaskState::Blocked
            || task.policy(&self.names).at_most_once
            || self.deps.remaining(id) == 0
        {
            return HoldTarget::Drop;
        }
        let mut on = None;
        for dependency in task.after() {
            let Some(dep) = self.tasks.get(*dependency) else {
                // Finished; it completed, or this task would have failed.
                continue;
            };
            if dep.state != TaskState::Running {
                return HoldTarget::Drop;
            }
            match (holder((*dependency, dep.attempt)), on) {
                (None, _) => return HoldTarget::Drop,
                (Some(worker), None) => on = Some(worker),
                (Some(worker), Some(first)) if worker != first => return HoldTarget::Drop,
                _ => {}
            }
        }
        match on {
            Some(worker) => HoldTarget::On {
                worker,
                queue: task.queue(&self.names),
            },
            None => HoldTarget::Drop,
        }
    }

    /// Hands `blocked` task `id` to the worker named `worker_name` ahead of its dependencies'
    /// completion (the caller checked `hold_target` and the worker's room): it is `running`
    /// with its next attempt, like a prefetched task. Its own dependents become candidates.
    pub fn hold(&mut self, id: TaskId, worker_name: &str, now: Timestamp) -> Option<Assignment> {
        self.holdable.remove(&id);
        let task = self.tasks.get_mut(id)?;
        if task.state != TaskState::Blocked {
            return None;
        }
        let before = if task.unrecorded {
            Attempt(task.attempt.0.saturating_sub(1))
        } else {
            task.attempt
        };
        self.held_from.insert(id, before);
        task.attempt = task.attempt.next();
        // Still counted (and shown) as `blocked` until its last dependency completes
        // (`released_held`).
        task.state = TaskState::Running;
        task.set_worker(Some(worker_name), &mut self.names);
        task.started_at = Some(now).into();
        let spec = task.spec(&self.names);
        if task.unrecorded {
            task.unrecorded = false;
            self.dirty.insert(id);
        }
        let assignment = Assignment {
            task: id,
            attempt: task.attempt,
            spec,
        };
        self.note_holdable(id);
        Some(assignment)
    }

    /// Puts `running` task `id`, whose attempt ended unfinished, back: `blocked` while a
    /// dependency has not completed (a held task), else `ready`. Returns whether it is ready
    /// (the caller puts it at the front of its lane). Its held dependents are taken back.
    /// `forget_worker` clears the worker and start time (an attempt that never began).
    pub(super) fn back_from_running(&mut self, id: TaskId, forget_worker: bool) -> bool {
        let held = self.held_by_deps(id);
        self.held_from.remove(&id);
        let Some(task) = self.tasks.get_mut(id) else {
            return false;
        };
        if held {
            // Counted as `blocked` all along.
            task.state = TaskState::Blocked;
        } else {
            move_to(task, TaskState::Ready, &self.names, &mut self.queues);
        }
        if forget_worker {
            task.set_worker(None, &mut self.names);
            task.started_at = None.into();
        }
        self.dirty.insert(id);
        if held {
            // A candidate again; dispatch drops it while its dependencies are not all running
            // on one worker.
            self.holdable.insert(id);
        }
        self.unhold_after(id);
        !held
    }

    /// `id` left `running` without completing and will run again: every held task that runs
    /// after it, directly or down a chain, is taken back from its worker.
    pub(super) fn unhold_after(&mut self, id: TaskId) {
        if self.deps.is_empty() {
            return;
        }
        let mut stack = vec![id];
        while let Some(next) = stack.pop() {
            for dependent in self.deps.dependents_of(next).to_vec() {
                if self.is_held(dependent) {
                    let attempt = self
                        .tasks
                        .get(dependent)
                        .expect("held tasks are live")
                        .attempt;
                    let key = (dependent, attempt);
                    if !self.orders.take_back.contains(&key) {
                        self.orders.take_back.push(key);
                        stack.push(dependent);
                    }
                }
            }
        }
    }

    /// Held task `id`'s last dependency completed at `now`: it is an ordinary running task
    /// from here on, counted so, and could not have begun before `now`.
    pub(super) fn released_held(&mut self, id: TaskId, now: Timestamp) {
        self.held_from.remove(&id);
        let Some(task) = self.tasks.get_mut(id) else {
            return;
        };
        self.queues.moved(
            task.queue(&self.names),
            Some(TaskState::Blocked),
            Some(TaskState::Running),
        );
        task.started_at = Some(now).into();
    }

    /// What the workers must be told about held tasks since the last call (see `HeldOrders`).
    pub fn take_orders(&mut self) -> HeldOrders {
        std::mem::take(&mut self.orders)
    }
}

/// Makes `record`, of a held task, show it as not handed out: `blocked`, with no worker or
/// start and `attempts`, those it showed before it was held.
pub(super) fn hide_hold(record: &mut TaskRecord, attempts: Attempt) {
    record.state = TaskState::Blocked;
    record.worker = None;
    record.started_at = None;
    record.attempts = attempts;
}
