//! `TaskTable`: the task state machine, as a plain struct with synchronous methods.
//!
//! It owns the tasks that are not finished, in a compact form (`task_table/live.rs`), the
//! ready lanes per queue and priority (`ready.rs`), one index of the times at which scheduled
//! and waiting tasks come due (`due.rs`), the dependency counts of tasks that run after others
//! (`deps.rs`) and the queue table (`crate::queues`), and it notes what changed so that the
//! task actor can write exactly that to the store before it tells anyone.
//!
//! The life of a task: `created` (added without play) or, when played, `blocked` while a task
//! it runs after has not completed, then `scheduled` while its start time is ahead, then
//! `ready`; `running` once handed to a worker; `waiting` between a failed attempt and its retry;
//! `paused` (from created, ready or scheduled) until played again; and finally `completed`,
//! `failed` or `killed`. A task whose dependency fails or is killed fails with
//! `DependencyFailed`, and so do its dependents in turn (`settle`). Commands that move tasks
//! by selection are in `control.rs`, the release and cascade of dependents in `cascade.rs`,
//! the dependents handed to a worker ahead of their dependencies' completion in `held.rs`,
//! reads in `reads.rs`, the start in `recover.rs`.
//!
//! A finished task leaves memory once the batch that records it is durable (its round's pushes
//! and waiters still read it here); after that, `show`, `list`, `infos` and the states of
//! `play`/`pause`/`kill` and of dependencies read it from the store, which the caller passes
//! in. So memory grows with the live tasks, not with the history. Which worker holds which
//! attempt (the flights) is the `Scheduler`'s: the table is told whether a reported
//! attempt was held (`report`), which attempts a lost worker held (`lost`) and which a worker
//! gave back (`returned`). It knows nothing of channels, sockets or sled, so its rules are
//! unit-tested directly (as HyperQueue tests its scheduler). Only the task actor (`tasks.rs`)
//! holds one.

use crate::queues::{QueueId, Queues};
use crate::record::TaskRecord;
use crate::retry::{self, RetryJitter};
use crate::store::{Batch, EncodedRecords, Store};
use deps::Deps;
use done::Done;
use due::Due;
pub use held::{HeldOrders, HoldTarget};
use live::{LiveTask, LiveTasks, Names};
pub use purge::Purged;
use ready::{Head, Ready};
use rustc_hash::FxHashSet;
use std::collections::BTreeSet;
use tatzelwurm_proto::actioner::{Failure, FailureKind};
use tatzelwurm_proto::task::{
    Outcome, TaskError, TaskOutput, TaskSpec, TaskState, Timestamp, When, DEPENDENCY_FAILED,
};
use tatzelwurm_proto::worker::{Assignment, Report};
use tatzelwurm_proto::{Attempt, TaskId};

/// What a play, a pause or a kill did, as the actioner is told.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Tasks that moved.
    pub changed: Vec<TaskId>,
    /// Tasks left alone, with the state that made the command not apply.
    pub unchanged: Vec<(TaskId, TaskState)>,
}

/// Ids a refusal names at most; the rest are counted, so that an error never grows with the
/// request.
const NAMED_IDS: usize = 3;

/// Why the table refused a command; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// Ids that name no task: ids never handed out (0, or at or above the next id). Holds the
    /// smallest few of them and how many there were.
    UnknownTasks {
        /// The smallest unknown ids, at most `NAMED_IDS`.
        first: Vec<TaskId>,
        /// How many distinct unknown ids the request named.
        count: usize,
        /// The first id never handed out, for the sentence.
        next_id: u64,
    },
    /// Ids of tasks that were purged (`task purge`, `--keep-finished`): handed out, but their
    /// records are gone. Holds the smallest few and how many there were.
    Purged {
        /// The smallest purged ids, at most `NAMED_IDS`.
        first: Vec<TaskId>,
        /// How many distinct purged ids the request named.
        count: usize,
    },
    /// A finished task's record could not be read from the store.
    Store(String),
}

impl TableError {
    /// The failure an actioner is sent.
    pub fn failure(&self) -> Failure {
        let kind = match self {
            TableError::UnknownTasks { .. } => FailureKind::UnknownTask,
            TableError::Purged { .. } => FailureKind::Purged,
            TableError::Store(_) => FailureKind::Internal,
        };
        Failure::new(kind, self.to_string())
    }
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableError::UnknownTasks {
                first,
                count,
                next_id,
            } => {
                let list = name_ids(first, *count);
                let what = if *count == 1 {
                    "there is no task"
                } else {
                    "there are no tasks"
                };
                let known = if *next_id <= 1 {
                    "no task has been added yet".to_string()
                } else if *next_id == 2 {
                    "the only id handed out so far is 1".to_string()
                } else {
                    format!("the ids handed out so far are 1 to {}", next_id - 1)
                };
                write!(f, "{what} {list}; {known}")
            }
            TableError::Purged { first, count } => {
                let list = name_ids(first, *count);
                let (noun, what, their) = if *count == 1 {
                    ("task", "was", "its result and output are")
                } else {
                    ("tasks", "were", "their results and output are")
                };
                write!(f, "{noun} {list} {what} purged (finished tasks are removed by `task purge` or --keep-finished); {their} gone")
            }
            TableError::Store(cause) => write!(
                f,
                "cannot read a finished task from the database ({cause}); the database may be damaged"
            ),
        }
    }
}

/// `first` (the smallest few of `count` ids) as a sentence names them: "3", "3 and 4",
/// "3, 4, 5 and 2 more".
fn name_ids(first: &[TaskId], count: usize) -> String {
    let mut names: Vec<String> = first.iter().map(|id| id.to_string()).collect();
    let rest = count.saturating_sub(names.len());
    if rest > 0 {
        format!("{} and {rest} more", names.join(", "))
    } else if names.len() > 1 {
        let last = names.pop().unwrap_or_default();
        format!("{} and {last}", names.join(", "))
    } else {
        names.join("")
    }
}

/// What a worker's report did.
#[derive(Debug, PartialEq, Eq)]
pub struct ReportEffect {
    /// The report was recorded as the task's outcome (it was the current, running attempt).
    pub recorded: bool,
    /// The report was of an attempt that is no longer current (fenced) and was ignored; a
    /// confirmation of a kill the coordinator asked for is not stale.
    pub stale: bool,
}

/// What losing a worker did to the tasks it ran.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LostEffect {
    /// Tasks put back to `ready` (or `blocked`: held tasks whose dependencies are unfinished).
    pub requeued: usize,
    /// Tasks ended `failed` instead: at-most-once, or past their crash limit.
    pub failed: usize,
    /// Of the requeued, those whose attempt had not started (no crash counted).
    pub unstarted: usize,
}

/// The task state machine. See the module comment.
#[derive(Debug, Default)]
pub struct TaskTable {
    /// The tasks that are not finished, in their compact form.
    tasks: LiveTasks,
    /// Function names, policies, queue names and worker names the live tasks share.
    names: Names,
    /// Tasks that finished since the last `take_changes`, which writes them with its batch
    /// (`done.rs`): the round that finished them reads them here (its pushes and waiters are
    /// worked out before it takes its batch); later reads go to the store. A hash map: a
    /// B-tree shifted these large records within its nodes on every insert and removal (1.5%
    /// of the coordinator in W1), and the one reader that wants them in order (`list`) sorts a
    /// round's.
    done: rustc_hash::FxHashMap<TaskId, Done>,
    /// Tasks waiting for a slot, in lanes per queue and priority.
    ready: Ready,
    /// When scheduled tasks start and waiting tasks retry.
    due: Due,
    /// Which tasks wait for which others to complete.
    deps: Deps,
    /// Finished tasks whose dependents are still to be released or failed (`settle`).
    settling: Vec<TaskId>,
    /// Tasks released this round (their last dependency completed) whose durable record was
    /// current (`durable_current`): `blocked`, with the attempt number they still have. Such a task may start
    /// before the round's flush (`may_start_early`); cleared by `take_changes`.
    released: FxHashSet<TaskId>,
    /// Blocked tasks that may be held (`held.rs`): dependents of tasks handed out.
    holdable: BTreeSet<TaskId>,
    /// Kills and take-backs of held tasks whose dependencies did not complete (`held.rs`).
    orders: HeldOrders,
    /// The attempts each held task showed before it was held (`held.rs`).
    held_from: rustc_hash::FxHashMap<TaskId, Attempt>,
    /// Queue settings, finished counts and live counts.
    queues: Queues,
    /// The first id never handed out.
    next_id: u64,
    /// Tasks changed since the last `take_changes`.
    dirty: FxHashSet<TaskId>,
    /// Outputs reported since the last `take_changes`; they go to the store and are not kept.
    outputs: Vec<(TaskId, TaskOutput)>,
    /// Whether `next_id` moved since the last `take_changes`.
    next_id_dirty: bool,
    /// Tasks that finished since the last `take_finished`, for waiters.
    finished: Vec<TaskId>,
    /// Finished tasks purged since the last `take_changes` (`purge.rs`): the next batch
    /// removes them.
    purging: FxHashSet<TaskId>,
    /// Spreads retry delays.
    jitter: RetryJitter,
    /// What the batches still in flight (taken, not yet flushed) wrote: see `Unflushed`.
    unflushed: Unflushed,
}

/// The live tasks whose records batches still in flight wrote: their durable record is
/// behind memory until that batch is flushed, so a `Run` of theirs may not leave before a flush
/// (`may_start_early`), as if they had changed this round. Tasks new in a batch are not kept
/// here (the actor knows them by id: `Round::early_below`), so an add costs nothing here.
#[derive(Debug, Default)]
struct Unflushed {
    /// Each such task and the number of the last batch that wrote it.
    tasks: rustc_hash::FxHashMap<TaskId, u64>,
    /// Per batch in flight that wrote some, its number and those tasks, oldest first.
    batches: std::collections::VecDeque<(u64, Vec<TaskId>)>,
    /// The number of the last batch taken (`take_changes`); the first is 1.
    last: u64,
    /// The first id not handed out when the last batch was taken: ids from it on are new in
    /// the next batch.
    new_from: u64,
}

impl Unflushed {
    /// For a table recovered with `next_id`: every id below it is old.
    fn recovered(next_id: u64) -> Unflushed {
        Unflushed {
            new_from: next_id,
            ..Unflushed::default()
        }
    }

    /// Numbers the next batch and notes its tasks that are live and not new in it.
    fn taken(&mut self, tasks: Vec<TaskId>) {
        self.last += 1;
        if tasks.is_empty() {
            return;
        }
        for id in &tasks {
            self.tasks.insert(*id, self.last);
        }
        self.batches.push_back((self.last, tasks));
    }

    /// Batches up to `number` are durable: their tasks' records are current again, unless a
    /// later batch in flight wrote them too.
    fn flushed(&mut self, number: u64) {
        while self.batches.front().is_some_and(|(n, _)| *n <= number) {
            let Some((n, tasks)) = self.batches.pop_front() else {
                break;
            };
            for id in tasks {
                if self.tasks.get(&id) == Some(&n) {
                    self.tasks.remove(&id);
                }
            }
        }
    }
}

/// Moves a live task to state `to`, keeping its queue's live counts.
fn move_to(task: &mut LiveTask, to: TaskState, names: &Names, queues: &mut Queues) {
    queues.moved(task.queue(names), Some(task.state), Some(to));
    task.state = to;
}

impl TaskTable {
    /// Whether task `id` changed since the last `take_changes`, so the batch being made writes
    /// it. A task handed out while its durable record is current (not dirty, nor written by a
    /// batch in flight: `durable_current`) may have its `Run` sent before the round's flush
    /// (see `recover` for why that keeps attempt numbers unique).
    pub fn is_dirty(&self, id: TaskId) -> bool {
        self.dirty.contains(&id) || self.tasks.get(id).is_some_and(|t| t.unrecorded)
    }

    /// Whether task `id`'s durable record is what memory has: it did not change this round
    /// (`is_dirty`) and no batch still in flight wrote it (`Unflushed`; a task new in such a
    /// batch is the caller's to exclude by id).
    fn durable_current(&self, id: TaskId) -> bool {
        !self.is_dirty(id) && !self.unflushed.tasks.contains_key(&id)
    }

    /// Whether the `Run` of task `id`, just handed out, may leave before the round's flush as
    /// far as its record goes: its durable record is current (`durable_current`), or it was
    /// released this round from a durable, current `blocked` record. A crash before the flush then leaves it
    /// `blocked` with its old attempt number, which `recover` counts as used, as it does for a
    /// `ready` one; the run it may have had followed a completion that really happened, and the
    /// dependency, run once more, releases it once more (at least once). The caller also
    /// checks that the task is at-least-once and was not added this round.
    pub fn may_start_early(&self, id: TaskId) -> bool {
        self.durable_current(id) || self.released.contains(&id)
    }

    /// Adds tasks with fresh ids. Without `play` they start `created`; with it, `blocked`
    /// while a task they run after has not completed, else `scheduled` while their start time
    /// is ahead, else `ready`. A `run_at` of `Delay` becomes the `At` it means by `now`, and
    /// is stored so. Every id in an `after` must have been handed out, or the whole add fails
    /// (`UnknownTasks`) and adds nothing; a task whose dependency has already failed or was
    /// killed is added and fails at once (`DependencyFailed`). The states of finished
    /// dependencies are read from `store` (unless they finished this round). The caller
    /// checked names, priorities and sizes.
    pub fn add(
        &mut self,
        specs: Vec<TaskSpec>,
        play: bool,
        now: Timestamp,
        store: &Store,
    ) -> Result<Vec<TaskId>, TableError> {
        let ended = self.dependency_states(&specs, store)?;
        let mut ids = Vec::with_capacity(specs.len());
        for mut spec in specs {
            let id = TaskId(self.next_id);
            self.next_id += 1;
            if let Some(When::Delay(ms)) = spec.run_at {
                spec.run_at = Some(When::At(Timestamp(now.0.saturating_add(ms))));
            }
            let mut broken = None;
            if !spec.after.is_empty() {
                let mut unique = spec.after.clone();
                unique.sort_unstable();
                unique.dedup();
                for dependency in unique {
                    match ended.get(&dependency) {
                        None => self.deps.wait_for(id, dependency),
                        Some(TaskState::Completed) => {}
                        Some(state) => {
                            broken = broken.or(Some((dependency, *state)));
                        }
                    }
                }
            }
            let task = LiveTask::new(spec, TaskState::Created, now, &mut self.names);
            // One that fails at once goes nowhere first (below).
            let state = if play && broken.is_none() {
                self.entry_state(id, &task, now)
            } else {
                TaskState::Created
            };
            self.insert(id, task, state);
            self.dirty.insert(id);
            ids.push(id);
            if let Some((dependency, state)) = broken {
                self.fail_dependent(id, dependency, state, now);
            }
        }
        self.next_id_dirty |= !ids.is_empty();
        self.settle(now);
        Ok(ids)
    }

    /// Where a played task goes: `blocked` while it waits for a dependency, else `scheduled`
    /// while its start time is ahead of `now`, else `ready`.
    fn entry_state(&self, id: TaskId, task: &LiveTask, now: Timestamp) -> TaskState {
        if !self.deps.is_empty() && self.deps.remaining(id) > 0 {
            TaskState::Blocked
        } else if task.run_at.get().is_some_and(|at| at > now) {
            TaskState::Scheduled
        } else {
            TaskState::Ready
        }
    }

    /// Makes `task` live as `id` in `state`, in the ready lanes or the due index as that
    /// state needs.
    fn insert(&mut self, id: TaskId, mut task: LiveTask, state: TaskState) {
        let queue = task.queue(&self.names);
        task.state = state;
        self.queues.moved(queue, None, Some(state));
        match state {
            TaskState::Ready => self.ready.push_back(queue, task.priority, id),
            TaskState::Scheduled => {
                if let Some(at) = task.run_at.get() {
                    self.due.insert(at, id);
                }
            }
            TaskState::Waiting => {
                if let Some(at) = task.retry_at.get() {
                    self.due.insert(at, id);
                }
            }
            // Its dependencies may run already: a candidate for holding (`held.rs`).
            TaskState::Blocked => {
                self.holdable.insert(id);
            }
            _ => {}
        }
        self.tasks.insert(id, task);
    }

    /// Moves live task `id` on from `created`, `paused` or `blocked` (see `entry_state`).
    /// Returns whether it became ready.
    fn go_on(&mut self, id: TaskId, now: Timestamp) -> bool {
        let Some(task) = self.tasks.get(id) else {
            return false;
        };
        let to = self.entry_state(id, task, now);
        let task = self.tasks.get_mut(id).expect("checked above");
        let queue = task.queue(&self.names);
        move_to(task, to, &self.names, &mut self.queues);
        match to {
            TaskState::Ready => self.ready.push_back(queue, task.priority, id),
            TaskState::Scheduled => {
                if let Some(at) = task.run_at.get() {
                    self.due.insert(at, id);
                }
            }
            TaskState::Blocked => {
                self.holdable.insert(id);
            }
            _ => {}
        }
        self.dirty.insert(id);
        to == TaskState::Ready
    }

    /// Ready tasks in all queues.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Ready tasks in `queue`.
    pub fn ready_in(&self, queue: QueueId) -> usize {
        self.ready.len_of(queue)
    }

    /// The head of every queue that has a ready task and is not paused, for dispatch: it
    /// hands the best head first (`Head`'s order) and asks the queue for its next head after
    /// each hand (`ready_head`).
    pub fn ready_heads(&self) -> Vec<Head> {
        self.ready.heads(|queue| !self.queues.paused(queue))
    }

    /// The task `queue` hands next, if it has a ready one.
    pub fn ready_head(&self, queue: QueueId) -> Option<Head> {
        self.ready.head(queue)
    }

    /// The function of task `id` (a head) and whether it is at-most-once, for prefetch: its
    /// depth is the function's, and an at-most-once task is never queued behind a busy slot.
    pub fn head_kind(&self, id: TaskId) -> Option<(&str, bool)> {
        let task = self.tasks.get(id)?;
        Some((
            task.function(&self.names),
            task.policy(&self.names).at_most_once,
        ))
    }

    /// Hands up to `count` ready tasks to the worker named `worker_name`, the best first
    /// across every queue, paused ones included: the tests' way to play a worker (dispatch
    /// picks a queue per task and uses `assign_from`).
    #[cfg(test)]
    pub fn assign(&mut self, worker_name: &str, count: usize, now: Timestamp) -> Vec<Assignment> {
        let mut handed = Vec::with_capacity(count.min(self.ready.len()));
        while handed.len() < count {
            let Some(head) = self.ready.heads(|_| true).into_iter().max() else {
                break;
            };
            if let Some(assignment) = self.assign_from(head.queue, worker_name, now) {
                handed.push(assignment);
            }
        }
        handed
    }

    /// Hands the next ready task of `queue` to the worker named `worker_name`: it gets its
    /// next attempt number, which fences every report of an earlier attempt. The caller (the
    /// scheduler) records which connection holds the attempt.
    ///
    /// Only an at-most-once task's assignment is written to the store (before its `Run` may
    /// leave), and that of a task whose attempt number is ahead of its record (`unrecorded`):
    /// an at-least-once task found `ready` after a crash runs again, which its guarantee
    /// allows, so its assignment costs no write (see DESIGN.md, the flush rule).
    pub fn assign_from(
        &mut self,
        queue: QueueId,
        worker_name: &str,
        now: Timestamp,
    ) -> Option<Assignment> {
        loop {
            let id = self.ready.pop(queue)?;
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            if task.state != TaskState::Ready {
                continue;
            }
            task.attempt = task.attempt.next();
            move_to(task, TaskState::Running, &self.names, &mut self.queues);
            task.set_worker(Some(worker_name), &mut self.names);
            task.started_at = Some(now).into();
            let spec = task.spec(&self.names);
            if spec.policy.at_most_once || task.unrecorded {
                task.unrecorded = false;
                self.dirty.insert(id);
            }
            let attempt = task.attempt;
            if !self.deps.is_empty() {
                self.note_holdable(id);
            }
            return Some(Assignment {
                task: id,
                attempt,
                spec,
            });
        }
    }

    /// Applies a worker's report. `held` says the scheduler confirmed that the reporting worker
    /// held this attempt (and has dropped its flight). Only the current attempt of a running
    /// task, reported by the worker that held it, is recorded; anything else (a fenced attempt,
    /// a task killed in the meantime, a report resent after a reconnect) is ignored. A failed
    /// attempt with retries left makes the task `waiting` until its backoff has passed. A
    /// completion releases the tasks that ran after this one only; a final failure fails them.
    pub fn report(&mut self, mut report: Report, held: bool, now: Timestamp) -> ReportEffect {
        let id = report.task;
        let current = self
            .tasks
            .get(id)
            .is_some_and(|t| held && t.state == TaskState::Running && t.attempt == report.attempt);
        if !current {
            // A held attempt whose task is no longer live was killed while it ran (a finished
            // task's attempts are all reported or dropped otherwise): this confirms the kill.
            let kill_confirmed = held
                && match self.tasks.get(id) {
                    Some(task) => task.state == TaskState::Killed,
                    // A held task that failed with its dependency was told to stop too.
                    None => self.done.get(&id).map(Done::ending).is_none_or(|r| {
                        r.state == TaskState::Killed
                            || r.error
                                .as_ref()
                                .is_some_and(|e| e.kind == DEPENDENCY_FAILED)
                    }),
                };
            if kill_confirmed {
                // What the killed attempt printed until the kill: the record is final already.
                keep_output(&mut self.outputs, &mut report);
            }
            return ReportEffect {
                recorded: false,
                stale: !kill_confirmed,
            };
        }
        keep_output(&mut self.outputs, &mut report);
        let policy = self.tasks.get(id).map(|t| t.policy(&self.names));
        let policy = policy.unwrap_or_default();
        match report.outcome {
            Outcome::Completed { result } => self.finish(id, |record| {
                record.state = TaskState::Completed;
                record.result = Some(result);
                record.error = None;
                record.finished_at = Some(now);
            }),
            Outcome::Failed { error } => {
                let task = self.tasks.get_mut(id).expect("current tasks are live");
                task.failures += 1;
                if task.failures <= policy.retries {
                    let factor = self.jitter.factor();
                    let delay = retry::delay_ms(policy.backoff_ms, task.failures, factor);
                    let due = Timestamp(now.0 + delay);
                    task.set_error(Some(error));
                    move_to(task, TaskState::Waiting, &self.names, &mut self.queues);
                    task.retry_at = Some(due).into();
                    self.due.insert(due, id);
                    self.dirty.insert(id);
                    self.unhold_after(id);
                } else {
                    self.finish(id, |record| {
                        record.error = Some(error);
                        record.state = TaskState::Failed;
                        record.finished_at = Some(now);
                    });
                }
            }
            Outcome::Killed => self.finish(id, |record| {
                record.state = TaskState::Killed;
                record.finished_at = Some(now);
            }),
        }
        self.settle(now);
        ReportEffect {
            recorded: true,
            stale: false,
        }
    }

    /// When the earliest scheduled task starts or waiting task retries, if any.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.due.next()
    }

    /// Moves every `scheduled` task whose start time has come and every `waiting` task whose
    /// retry is due to `ready`; returns how many moved. Entries of tasks that left those
    /// states otherwise (killed, paused, failed) are dropped.
    pub fn promote_due(&mut self, now: Timestamp) -> usize {
        let mut moved = 0;
        while let Some((at, id)) = self.due.pop_due(now) {
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            let current = match task.state {
                TaskState::Waiting => task.retry_at.get() == Some(at),
                TaskState::Scheduled => task.run_at.get() == Some(at),
                _ => false,
            };
            if !current {
                continue;
            }
            if task.state == TaskState::Waiting {
                task.retry_at = None.into();
            }
            move_to(task, TaskState::Ready, &self.names, &mut self.queues);
            self.ready
                .push_back(task.queue(&self.names), task.priority, id);
            self.dirty.insert(id);
            moved += 1;
        }
        moved
    }

    /// Whether `attempt` is the current attempt of a running task (a heartbeat naming one that
    /// is not is told to stop it).
    pub fn is_current(&self, task: TaskId, attempt: Attempt) -> bool {
        self.tasks
            .get(task)
            .is_some_and(|t| t.state == TaskState::Running && t.attempt == attempt)
    }

    /// The function task `id` runs, for the scheduler's per-function duration average: a live
    /// task's, or one's that finished this round.
    pub fn function_of(&self, id: TaskId) -> Option<&str> {
        match self.tasks.get(id) {
            Some(task) => Some(task.function(&self.names)),
            None => self.done.get(&id).map(|done| done.function(&self.names)),
        }
    }

    /// The queue of live task `id`.
    pub fn queue_of(&self, id: TaskId) -> Option<QueueId> {
        self.tasks.get(id).map(|t| t.queue(&self.names))
    }

    /// The task's state and current attempt, for log lines about ignored messages: a live
    /// task's, or one's that finished this round.
    pub fn describe(&self, id: TaskId) -> Option<(TaskState, Attempt)> {
        match self.tasks.get(id) {
            Some(task) => Some((task.state, task.attempt)),
            None => self
                .done
                .get(&id)
                .map(|done| (done.state(), done.ending().attempts)),
        }
    }

    /// A worker's connection is gone with the attempts it held (from the scheduler's flights),
    /// each with whether a slot had started it. An attempt it had not started (it never said
    /// `Started`) puts its task back to `ready` with no crash counted. Each attempt it had
    /// started counts as a crash of its task: the task goes back to `ready` (a held task whose
    /// dependencies are unfinished to `blocked`, here and above), ahead of newer
    /// tasks of its priority, unless it has reached its crash limit. An at-most-once task ends
    /// `failed` either way: a `Started` may have been lost on its way (a cut network) after the
    /// slot began, and such a task must never start twice. Attempts that are not current are
    /// skipped.
    pub fn lost(&mut self, attempts: Vec<((TaskId, Attempt), bool)>, now: Timestamp) -> LostEffect {
        let mut effect = LostEffect::default();
        let mut requeued = Vec::new();
        let mut back = 0;
        for ((id, attempt), started) in attempts {
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            if task.state != TaskState::Running || task.attempt != attempt {
                continue;
            }
            self.dirty.insert(id);
            let policy = task.policy(&self.names);
            if !started && !policy.at_most_once {
                if self.back_from_running(id, true) {
                    requeued.push(id);
                }
                back += 1;
                effect.unstarted += 1;
                continue;
            }
            task.crashes += 1;
            let crashes = task.crashes;
            if policy.at_most_once {
                self.finish(id, |record| {
                    fail(
                        record,
                        "WorkerLost",
                        "the task was lost with its worker while it ran; at-most-once tasks are never started twice".into(),
                        now,
                    )
                });
            } else if crashes >= policy.crash_limit {
                let message = format!(
                    "the task was lost with its worker {crashes} times, its crash limit; it may be killing its worker or interpreter"
                );
                self.finish(id, |record| fail(record, "CrashLimitReached", message, now));
            } else {
                if self.back_from_running(id, false) {
                    requeued.push(id);
                }
                back += 1;
                continue;
            }
            effect.failed += 1;
        }
        effect.requeued = back;
        self.requeue_first(requeued);
        self.settle(now);
        effect
    }

    /// A worker gave these attempts back unstarted (`Returned`, after a take-back): their tasks
    /// are ready again at the front of their lanes, with no crash counted (`blocked` instead
    /// while a dependency has not completed: a held task, see `held.rs`). Their attempt
    /// numbers stay used, so the next assignment fences them. Only tasks still running with
    /// that attempt move; returns how many did.
    pub fn returned(&mut self, attempts: &[(TaskId, Attempt)]) -> usize {
        let mut requeued = Vec::new();
        let mut count = 0;
        for &(id, attempt) in attempts {
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            if task.state != TaskState::Running || task.attempt != attempt {
                continue;
            }
            if self.back_from_running(id, true) {
                requeued.push(id);
            }
            count += 1;
        }
        self.requeue_first(requeued);
        count
    }

    /// Puts `ready` tasks back at the front of their lanes, the oldest first.
    fn requeue_first(&mut self, mut ids: Vec<TaskId>) {
        ids.sort_unstable();
        for id in ids.into_iter().rev() {
            if let Some(task) = self.tasks.get(id) {
                self.ready
                    .push_front(task.queue(&self.names), task.priority, id);
            }
        }
    }

    /// The first id never handed out.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Everything changed since the last call, as one store batch, numbered (`last_batch`).
    /// Tasks that finished since the last call move into it and leave memory (the round that
    /// finished them has read them); they and the live tasks it writes are encoded into it
    /// straight from their compact form (`Batch::encoded`, `Done::stored`), with no owned
    /// record built, and the live ones stay behind their durable record until `flushed` says
    /// so (`Unflushed`).
    pub fn take_changes(&mut self) -> Batch {
        let mut purge: Vec<TaskId> = self.purging.drain().collect();
        self.released.clear();
        let mut tasks = Vec::new();
        // About the size of a small task's record (a short function name, args and queue); a
        // round of larger ones grows the buffer.
        let mut encoded = EncodedRecords::with_capacity(self.dirty.len(), self.dirty.len() * 96);
        // In id order, as the store likes its writes; a hash set is cheaper to fill and ask
        // (`is_dirty` on every hand-out) than a B-tree, and a round's few hundred ids sort fast.
        let mut dirty: Vec<TaskId> = self.dirty.drain().collect();
        dirty.sort_unstable();
        let mut unflushed = Vec::new();
        let new_from = TaskId(self.unflushed.new_from);
        for id in dirty {
            if let Some(task) = self.tasks.get(id) {
                let record = self.stored_record(id, task);
                if encoded.push(&record).is_err() {
                    tasks.push(record.to_record());
                }
                if id < new_from {
                    unflushed.push(id);
                }
            } else if let Some(done) = self.done.remove(&id) {
                // Encoded as the live ones are, borrowing the task's strings; whole if that
                // fails (it cannot, encoding into memory).
                if encoded.push(&done.stored(id, &self.names)).is_err() {
                    tasks.push(done.whole(&self.names));
                }
            }
        }
        let next_task_id = std::mem::take(&mut self.next_id_dirty).then_some(self.next_id);
        self.unflushed.taken(unflushed);
        self.unflushed.new_from = self.next_id;
        let queues = self
            .queues
            .take_changes()
            .into_iter()
            .map(|(queue, record)| (self.names.queue_name(queue).to_string(), record))
            .collect();
        // A purged task that finished since the last batch is written by this one (its record
        // leaves `live`) and removed by the same batch's purge, which the store applies after
        // the records.
        purge.sort_unstable();
        Batch {
            tasks,
            encoded,
            outputs: std::mem::take(&mut self.outputs),
            next_task_id,
            queues,
            purge,
            ..Batch::default()
        }
    }

    /// The number of the batch the last `take_changes` made (0 before the first): the actor
    /// passes it to `flushed` once that batch is durable.
    pub fn last_batch(&self) -> u64 {
        self.unflushed.last
    }

    /// Batches up to `number` (`last_batch`) are durable: the records they wrote are current
    /// on disk, so their tasks may start before a flush again (`may_start_early`).
    pub fn flushed(&mut self, number: u64) {
        self.unflushed.flushed(number);
    }

    /// Tasks that finished since the last call.
    pub fn take_finished(&mut self) -> Vec<TaskId> {
        std::mem::take(&mut self.finished)
    }

    /// How many tasks are live (not finished), held in memory.
    pub fn live_len(&self) -> usize {
        self.tasks.len()
    }

    /// The number of queue `name`, interning it if new (a worker's queues, a schedule's).
    pub fn queue_id(&mut self, name: &str) -> QueueId {
        self.names.queue(name)
    }

    /// The number of queue `name`, if anything has named it since the start.
    pub fn find_queue(&self, name: &str) -> Option<QueueId> {
        self.names.find_queue(name)
    }

    /// The name of queue `queue`.
    pub fn queue_name(&self, queue: QueueId) -> &str {
        self.names.queue_name(queue)
    }

    /// Every queue named since the start, by number.
    pub fn queue_ids(&self) -> impl Iterator<Item = QueueId> {
        (0..self.names.queue_count()).map(|q| QueueId(q as u32))
    }

    /// The queue table: settings, finished and live counts.
    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// The queue table, to change a queue's settings (written with the next batch).
    pub fn queues_mut(&mut self) -> &mut Queues {
        &mut self.queues
    }

    /// Moves live task `id` to the finished records, with `end` setting its final state; it
    /// is written with the next batch and reported by the next `take_finished`, and its queue
    /// counts it. Its dependents are released or failed by the next `settle`.
    fn finish(&mut self, id: TaskId, end: impl FnOnce(&mut TaskRecord)) {
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        let queue = task.queue(&self.names);
        // A held task (see `held.rs`) ends as one that never ran, counted as `blocked`.
        let shown = self.shown_state(id, task);
        // The spec's strings stay in the compact form, moved into `done` (see `done.rs`).
        let mut record = task.ending_record(id, &self.names);
        if shown != task.state {
            held::hide_hold(&mut record, self.attempts_before_hold(id, task));
        }
        self.held_from.remove(&id);
        let Some(task) = self.tasks.remove(id) else {
            return;
        };
        end(&mut record);
        self.queues.moved(queue, Some(shown), None);
        self.queues.finished(queue, record.state);
        if !self.deps.is_empty() {
            self.deps.forget(id);
            if self.deps.has_dependents(id) {
                self.settling.push(id);
            }
        }
        self.done.insert(id, Done::ended(record, task));
        self.dirty.insert(id);
        self.finished.push(id);
    }

    /// The state of a task that is not live: finished this round (memory) or earlier (store).
    fn finished_state(&self, id: TaskId, store: &Store) -> Result<TaskState, TableError> {
        if let Some(done) = self.done.get(&id) {
            return Ok(done.state());
        }
        match store.get(id) {
            Ok(Some(record)) => Ok(record.state),
            Ok(None) => Err(self.purged_error(vec![id])),
            Err(err) => Err(TableError::Store(err.to_string())),
        }
    }

    /// Whether `id` was handed out: ids are never reused nor forgotten.
    fn exists(&self, id: TaskId) -> bool {
        id.0 >= 1 && id.0 < self.next_id
    }

    /// The refusal for `missing` ids: the smallest few named, all counted.
    fn unknown(&self, mut missing: Vec<TaskId>) -> TableError {
        missing.sort_unstable();
        missing.dedup();
        TableError::UnknownTasks {
            count: missing.len(),
            first: missing.into_iter().take(NAMED_IDS).collect(),
            next_id: self.next_id,
        }
    }
}

/// Queues the report's output for the store. An empty output of a first attempt is skipped:
/// no earlier output can be stored for the task, and most tasks print nothing, so this saves
/// a write per task. A later attempt's empty output replaces the earlier one's.
fn keep_output(outputs: &mut Vec<(TaskId, TaskOutput)>, report: &mut Report) {
    if report.attempt > Attempt(1) || report.output != TaskOutput::default() {
        outputs.push((report.task, std::mem::take(&mut report.output)));
    }
}

/// Ends a task `failed` with an error of the coordinator's own (not the task's exception).
fn fail(record: &mut TaskRecord, kind: &str, message: String, now: Timestamp) {
    record.state = TaskState::Failed;
    record.error = Some(TaskError {
        kind: kind.into(),
        message,
        traceback: String::new(),
    });
    record.finished_at = Some(now);
}

mod cascade;
mod control;
mod deps;
mod done;
mod due;
mod held;
mod live;
mod purge;
mod reads;
mod ready;
mod recover;
#[cfg(test)]
mod tests;
