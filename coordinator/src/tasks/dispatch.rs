//! The task actor's dispatch: which ready task goes to which worker at the end of a round
//! (queues, priorities, limits, free slots, prefetch, at-most-once tasks, held dependents,
//! take-backs), with the flush rule deciding which `Run`s leave before the round's flush.

use super::{before_flush, Round, TasksActor};
use crate::queues::QueueId;
use crate::scheduler::FunctionId;
use crate::task_table::HoldTarget;
use std::collections::BinaryHeap;
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::worker::Assignment;
use tatzelwurm_proto::{Attempt, TaskId, WorkerId};

/// Candidates for holding that one dispatch looks at, at most: the rest wait for the next, so
/// that a task with many dependents never makes a round long. Holding only saves round trips;
/// a candidate not looked at runs once its dependencies complete, as any dependent does.
const HOLD_CHECKS: usize = 1024;

impl TasksActor {
    /// Whether `queue` may have one more task assigned: it has no limit, or fewer of its
    /// tasks in flight than its limit.
    fn under_limit(&self, queue: QueueId) -> bool {
        let limit = self.table.queues().limit(queue);
        limit == 0 || self.scheduler.assigned_in(queue) < limit
    }

    /// Hands ready tasks to workers, the best first across queues (higher priority, then the
    /// older task; paused queues and queues at their limit hand nothing): first to free slots
    /// (the least-loaded worker serving the task's queue with one, `Scheduler::choose_slot`),
    /// then ahead of free slots up to each worker's prefetch depth for the task's function
    /// (`Scheduler::choose`), until no queue has a ready task that some worker of it has room
    /// for. Then asks workers with a surplus of queued attempts to give some back for idle
    /// workers whose queues have nothing ready.
    ///
    /// At-most-once tasks are never prefetched: a queued attempt lost with its worker fails
    /// its task (a `Started` may have been lost), so one only goes to a free slot: when one
    /// heads its queue, that queue prefetches nothing until a free slot has taken it.
    ///
    /// Then blocked tasks whose dependencies all run on one worker are held there
    /// (`hold_dependents`), and take-backs never name held tasks nor their dependencies.
    ///
    /// Runs of at-least-once tasks that were durable before this round go out before the
    /// flush; the rest, and every held task's, after it (`Round::early`).
    pub(super) fn dispatch(&mut self, round: &mut Round, now: Timestamp) {
        let mut heads = BinaryHeap::from(self.table.ready_heads());
        while let Some(head) = heads.pop() {
            if !self.under_limit(head.queue) {
                continue;
            }
            // Only a worker with coroutine functions makes the function matter here.
            let function = if self.scheduler.has_coroutines() {
                let scheduler = &mut self.scheduler;
                self.table
                    .head_kind(head.task)
                    .map(|(name, _)| scheduler.function(name))
            } else {
                None
            };
            let Some(worker) = self.scheduler.choose_slot(head.queue, function, now) else {
                continue;
            };
            if !self.hand_next(worker, head.queue, function, round, now) {
                continue;
            }
            heads.extend(self.table.ready_head(head.queue));
        }
        let mut heads = BinaryHeap::from(self.table.ready_heads());
        while let Some(head) = heads.pop() {
            if !self.under_limit(head.queue) {
                continue;
            }
            let scheduler = &mut self.scheduler;
            let Some((function, at_most_once)) = self
                .table
                .head_kind(head.task)
                .map(|(name, once)| (scheduler.function(name), once))
            else {
                continue;
            };
            if at_most_once {
                // Never queued behind a busy slot (a queued one lost with its worker would
                // fail): its queue prefetches nothing until a free slot has taken it.
                continue;
            }
            let Some(worker) = self.scheduler.choose(head.queue, function, now) else {
                continue;
            };
            if !self.hand_next(worker, head.queue, Some(function), round, now) {
                continue;
            }
            heads.extend(self.table.ready_head(head.queue));
        }
        self.hold_dependents(round, now);
        let table = &self.table;
        let nothing_ready =
            |queue: QueueId| table.ready_in(queue) == 0 && !table.queues().paused(queue);
        let may_take = |key: (TaskId, Attempt)| !table.holds_or_is_held(key.0);
        for take in self.scheduler.take_backs(now, nothing_ready, may_take) {
            let out = round.outgoing.entry(take.worker).or_default();
            out.take_back.extend(take.attempts);
        }
    }

    /// Hands `blocked` tasks to the worker that holds all their unfinished dependencies, ahead
    /// of their completion, within its prefetch room and their queue's limit (see
    /// `task_table/held.rs`): a chain flows to one worker as far as its prefetch depth allows.
    /// Looks at `HOLD_CHECKS` candidates at most, the oldest first; one that cannot go now for
    /// want of room stays a candidate.
    fn hold_dependents(&mut self, round: &mut Round, now: Timestamp) {
        if !self.table.has_holdable() {
            return;
        }
        let mut cursor = TaskId(0);
        for _ in 0..HOLD_CHECKS {
            let Some(id) = self.table.next_holdable(cursor) else {
                break;
            };
            cursor = id;
            let scheduler = &self.scheduler;
            let (worker, queue) = match self.table.hold_target(id, |key| scheduler.holder(key)) {
                HoldTarget::Drop => {
                    self.table.drop_holdable(id);
                    continue;
                }
                HoldTarget::On { worker, queue } => (worker, queue),
            };
            if self.table.queues().paused(queue) || !self.under_limit(queue) {
                continue;
            }
            let Some((name, _)) = self.table.head_kind(id) else {
                continue;
            };
            let function = self.scheduler.function(name);
            if !self.scheduler.room_on(worker, queue, function, now) {
                continue;
            }
            let name = self.scheduler.name(worker).unwrap_or_default();
            let Some(assignment) = self.table.hold(id, name, now) else {
                continue;
            };
            // After the flush, never before: its dependency's `Run` may be waiting for this
            // flush, and the worker must have that one first (it counts a dependency it does
            // not hold as done).
            self.send_run(worker, queue, function, assignment, false, round);
        }
    }

    /// Hands the next ready task of `queue` to `worker` (the caller checked that an
    /// at-most-once task goes only to a free slot); `function` is its function's id if the
    /// caller looked it up. Returns whether a task was handed.
    fn hand_next(
        &mut self,
        worker: WorkerId,
        queue: QueueId,
        function: Option<FunctionId>,
        round: &mut Round,
        now: Timestamp,
    ) -> bool {
        let name = self.scheduler.name(worker).unwrap_or_default();
        let Some(assignment) = self.table.assign_from(queue, name, now) else {
            return false;
        };
        let id = assignment.task;
        // A hand-out whose record this round does not write is an event of its own; one that
        // is written (at-most-once, added this round) shows in its record's event.
        if !self.table.is_dirty(id) {
            let queue = assignment.spec.queue.as_str();
            self.events.handed(id, queue, assignment.attempt, name);
        }
        if let Some(since) = self.table.ready_since(id, &assignment) {
            crate::telemetry::dispatch_latency_ms(now.0.saturating_sub(since.0));
        }
        let function =
            function.unwrap_or_else(|| self.scheduler.function(&assignment.spec.function));
        self.send_run(worker, queue, function, assignment, true, round);
        true
    }

    /// Records `assignment` as `worker`'s and queues its `Run`: before the round's flush if
    /// `early` and the flush rule allow (`before_flush`), else after it.
    fn send_run(
        &mut self,
        worker: WorkerId,
        queue: QueueId,
        function: FunctionId,
        assignment: Assignment,
        early: bool,
        round: &mut Round,
    ) {
        let key = (assignment.task, assignment.attempt);
        let spec = &assignment.spec;
        let bytes = spec.function.len() + spec.args.len() + spec.kwargs.len();
        self.scheduler.hand(worker, key, queue, function, bytes);
        let current = self.table.may_start_early(assignment.task);
        if early && before_flush(&assignment, round.early_below, current) {
            round.early.entry(worker).or_default().push(assignment);
        } else {
            round
                .outgoing
                .entry(worker)
                .or_default()
                .run
                .push(assignment);
        }
    }
}
