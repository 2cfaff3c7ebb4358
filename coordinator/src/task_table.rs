//! `TaskTable`: the task state machine, as a plain struct with synchronous methods.
//!
//! It owns every `TaskRecord`, the queue of ready tasks and the attempts in flight, and it notes
//! what changed so that the task actor can write exactly that to the store before it tells
//! anyone. It knows nothing of channels, sockets or sled, so its rules are unit-tested directly
//! (as HyperQueue tests its scheduler). Only the task actor (`tasks.rs`) holds one.

use crate::record::TaskRecord;
use crate::retry::{self, RetryJitter};
use crate::store::Batch;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use tatzelwurm_proto::actioner::{Failure, FailureKind, Selection};
use tatzelwurm_proto::task::{
    Outcome, TaskError, TaskInfo, TaskOutput, TaskSpec, TaskState, Timestamp,
};
use tatzelwurm_proto::worker::{Assignment, Report};
use tatzelwurm_proto::{Attempt, TaskId, WorkerId};

/// What a play or a kill did, as the actioner is told.
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
}

impl TableError {
    /// The failure an actioner is sent.
    pub fn failure(&self) -> Failure {
        let kind = match self {
            TableError::UnknownTasks { .. } => FailureKind::UnknownTask,
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
                let mut names: Vec<String> = first.iter().map(|id| id.to_string()).collect();
                let rest = count.saturating_sub(names.len());
                let list = if rest > 0 {
                    format!("{} and {rest} more", names.join(", "))
                } else if names.len() > 1 {
                    let last = names.pop().unwrap_or_default();
                    format!("{} and {last}", names.join(", "))
                } else {
                    names.join("")
                };
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
        }
    }
}

/// A running attempt to stop: the worker running it must be told.
#[derive(Debug, PartialEq, Eq)]
pub struct KillOrder {
    /// The worker connection that runs the attempt.
    pub worker: WorkerId,
    /// The task.
    pub task: TaskId,
    /// The attempt to stop.
    pub attempt: Attempt,
}

/// What a worker's report did.
#[derive(Debug, PartialEq, Eq)]
pub struct ReportEffect {
    /// The report ended an attempt handed to this worker: one of its slots is free again.
    pub freed_slot: bool,
    /// The report was recorded as the task's outcome (it was the current, running attempt).
    pub recorded: bool,
    /// The report was of an attempt that is no longer current (fenced) and was ignored; a
    /// confirmation of a kill the coordinator asked for is not stale.
    pub stale: bool,
}

/// What losing a worker did to the tasks it ran.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LostEffect {
    /// Tasks put back to `ready`.
    pub requeued: usize,
    /// Tasks ended `failed` instead: at-most-once, or past their crash limit.
    pub failed: usize,
    /// Of the requeued, those whose attempt had not started (no crash counted).
    pub unstarted: usize,
}

/// An attempt handed to a worker and not yet reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flight {
    /// The worker connection that holds a slot for it.
    worker: WorkerId,
    /// The worker said it started (`Started`, or a report): only then can its loss be a crash.
    started: bool,
}

/// The task state machine. See the module comment.
#[derive(Debug, Default)]
pub struct TaskTable {
    /// Every task, by id.
    tasks: BTreeMap<TaskId, TaskRecord>,
    /// Tasks waiting for a slot, oldest first.
    ready: VecDeque<TaskId>,
    /// The first id never handed out.
    next_id: u64,
    /// Attempts handed to a worker and not yet reported, with the worker that holds a slot for
    /// each. A killed task stays here until its worker confirms, so its slot is not reused early.
    flights: HashMap<(TaskId, Attempt), Flight>,
    /// Tasks changed since the last `take_changes`.
    dirty: BTreeSet<TaskId>,
    /// Outputs reported since the last `take_changes`; they go to the store and are not kept.
    outputs: Vec<(TaskId, TaskOutput)>,
    /// Whether `next_id` moved since the last `take_changes`.
    next_id_dirty: bool,
    /// Tasks that finished since the last `take_finished`, for waiters.
    finished: Vec<TaskId>,
    /// `waiting` tasks by the time their retry is due. Entries of tasks that left `waiting`
    /// otherwise (killed) are skipped when they come due.
    waiting: BTreeSet<(Timestamp, TaskId)>,
    /// Spreads retry delays.
    jitter: RetryJitter,
}

impl TaskTable {
    /// Rebuilds the table from the store. Tasks that were running when the coordinator stopped
    /// have lost their worker with it: they go back to `ready`, except at-most-once tasks, which
    /// may have started and so end `failed`. Changed records are marked for writing.
    pub fn recover(records: Vec<TaskRecord>, next_id: u64, now: Timestamp) -> TaskTable {
        let mut table = TaskTable {
            next_id: next_id.max(1),
            ..TaskTable::default()
        };
        for mut record in records {
            if record.state == TaskState::Running {
                table.dirty.insert(record.id);
                if record.spec.policy.at_most_once {
                    fail(
                        &mut record,
                        "WorkerLost",
                        "the coordinator stopped while this at-most-once task ran, so it may have started; it is never started twice".into(),
                        now,
                    );
                } else {
                    record.state = TaskState::Ready;
                }
            }
            match record.state {
                TaskState::Ready => table.ready.push_back(record.id),
                TaskState::Waiting => {
                    let due = record.retry_at.unwrap_or(now);
                    table.waiting.insert((due, record.id));
                }
                _ => {}
            }
            table.tasks.insert(record.id, record);
        }
        table
    }

    /// Adds tasks with fresh ids, `ready` when `play`, else `created`.
    pub fn add(&mut self, specs: Vec<TaskSpec>, play: bool, now: Timestamp) -> Vec<TaskId> {
        let state = if play {
            TaskState::Ready
        } else {
            TaskState::Created
        };
        let mut ids = Vec::with_capacity(specs.len());
        for spec in specs {
            let id = TaskId(self.next_id);
            self.next_id += 1;
            self.tasks.insert(id, TaskRecord::new(id, spec, state, now));
            if play {
                self.ready.push_back(id);
            }
            self.dirty.insert(id);
            ids.push(id);
        }
        self.next_id_dirty |= !ids.is_empty();
        ids
    }

    /// Moves `created` tasks to `ready`. With `All`, every created task.
    pub fn play(&mut self, selection: &Selection) -> Result<Changed, TableError> {
        let ids = self.resolve(selection, |state| state == TaskState::Created)?;
        let mut outcome = Changed::default();
        for id in ids {
            let record = self.tasks.get_mut(&id).expect("resolved ids exist");
            if record.state == TaskState::Created {
                record.state = TaskState::Ready;
                self.ready.push_back(id);
                self.dirty.insert(id);
                outcome.changed.push(id);
            } else {
                outcome.unchanged.push((id, record.state));
            }
        }
        Ok(outcome)
    }

    /// Ends unfinished tasks (created, ready, waiting or running). A running one is marked `killed` now and its worker must be told
    /// to stop it (the returned orders); its slot stays taken until the worker reports.
    pub fn kill(
        &mut self,
        selection: &Selection,
        now: Timestamp,
    ) -> Result<(Changed, Vec<KillOrder>), TableError> {
        let ids = self.resolve(selection, |state| !state.is_finished())?;
        let mut outcome = Changed::default();
        let mut orders = Vec::new();
        let mut left_ready = false;
        for id in ids {
            let record = self.tasks.get_mut(&id).expect("resolved ids exist");
            if record.state.is_finished() {
                outcome.unchanged.push((id, record.state));
                continue;
            }
            left_ready |= record.state == TaskState::Ready;
            if record.state == TaskState::Running {
                if let Some(flight) = self.flights.get(&(id, record.attempt)) {
                    orders.push(KillOrder {
                        worker: flight.worker,
                        task: id,
                        attempt: record.attempt,
                    });
                }
            }
            record.state = TaskState::Killed;
            record.retry_at = None;
            record.finished_at = Some(now);
            self.dirty.insert(id);
            self.finished.push(id);
            outcome.changed.push(id);
        }
        if left_ready {
            let tasks = &self.tasks;
            self.ready
                .retain(|id| tasks.get(id).map(|t| t.state) == Some(TaskState::Ready));
        }
        Ok((outcome, orders))
    }

    /// How many tasks wait for a slot.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Hands up to `count` ready tasks, oldest first, to `worker`: each gets its next attempt
    /// number, which fences every report of an earlier attempt.
    pub fn assign(
        &mut self,
        worker: WorkerId,
        worker_name: &str,
        count: usize,
        now: Timestamp,
    ) -> Vec<Assignment> {
        let mut handed = Vec::with_capacity(count.min(self.ready.len()));
        while handed.len() < count {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let record = self.tasks.get_mut(&id).expect("ready ids exist");
            if record.state != TaskState::Ready {
                continue;
            }
            record.attempt = record.attempt.next();
            record.state = TaskState::Running;
            record.worker = Some(worker_name.to_string());
            record.started_at = Some(now);
            let started = false;
            self.flights
                .insert((id, record.attempt), Flight { worker, started });
            self.dirty.insert(id);
            handed.push(Assignment {
                task: id,
                attempt: record.attempt,
                spec: record.spec.clone(),
            });
        }
        handed
    }

    /// Applies a worker's report. Only the current attempt of a running task, reported by the
    /// worker it was handed to, is recorded; anything else (a fenced attempt, a task killed in
    /// the meantime, a report resent after a reconnect) at most frees the slot it held. A failed
    /// attempt with retries left makes the task `waiting` until its backoff has passed.
    pub fn report(&mut self, worker: WorkerId, mut report: Report, now: Timestamp) -> ReportEffect {
        let key = (report.task, report.attempt);
        let freed_slot = self.flights.get(&key).map(|f| f.worker) == Some(worker);
        if freed_slot {
            self.flights.remove(&key);
        }
        let Some(record) = self.tasks.get_mut(&report.task) else {
            return ReportEffect {
                freed_slot,
                recorded: false,
                stale: true,
            };
        };
        let current =
            freed_slot && record.state == TaskState::Running && record.attempt == report.attempt;
        if !current {
            let kill_confirmed = freed_slot && record.state == TaskState::Killed;
            if kill_confirmed && record.attempt == report.attempt {
                // What the killed attempt printed until the kill: the record is final already.
                keep_output(&mut self.outputs, &mut report);
            }
            return ReportEffect {
                freed_slot,
                recorded: false,
                stale: !kill_confirmed,
            };
        }
        keep_output(&mut self.outputs, &mut report);
        match report.outcome {
            Outcome::Completed { result } => {
                record.state = TaskState::Completed;
                record.result = Some(result);
                record.error = None;
                record.finished_at = Some(now);
            }
            Outcome::Failed { error } => {
                record.failures += 1;
                record.error = Some(error);
                if record.failures <= record.spec.policy.retries {
                    let factor = self.jitter.factor();
                    let delay =
                        retry::delay_ms(record.spec.policy.backoff_ms, record.failures, factor);
                    let due = Timestamp(now.0 + delay);
                    record.state = TaskState::Waiting;
                    record.retry_at = Some(due);
                    self.waiting.insert((due, report.task));
                } else {
                    record.state = TaskState::Failed;
                    record.finished_at = Some(now);
                }
            }
            Outcome::Killed => {
                record.state = TaskState::Killed;
                record.finished_at = Some(now);
            }
        }
        self.dirty.insert(report.task);
        if record.state.is_finished() {
            self.finished.push(report.task);
        }
        ReportEffect {
            freed_slot,
            recorded: true,
            stale: false,
        }
    }

    /// When the earliest `waiting` task's retry is due, if any waits.
    pub fn next_retry(&self) -> Option<Timestamp> {
        self.waiting.first().map(|(due, _)| *due)
    }

    /// Moves every `waiting` task whose retry is due to `ready`; returns how many moved.
    pub fn promote_due(&mut self, now: Timestamp) -> usize {
        let mut moved = 0;
        while let Some(&(due, id)) = self.waiting.first() {
            if due > now {
                break;
            }
            self.waiting.pop_first();
            let Some(record) = self.tasks.get_mut(&id) else {
                continue;
            };
            if record.state == TaskState::Waiting && record.retry_at == Some(due) {
                record.state = TaskState::Ready;
                record.retry_at = None;
                self.ready.push_back(id);
                self.dirty.insert(id);
                moved += 1;
            }
        }
        moved
    }

    /// Checks a worker's heartbeat: returns the attempts it says it runs that are not handed to
    /// it (fenced or unknown), which it should stop.
    pub fn stale_attempts(
        &self,
        worker: WorkerId,
        running: &[(TaskId, Attempt)],
    ) -> Vec<(TaskId, Attempt)> {
        running
            .iter()
            .filter(|key| self.flights.get(key).map(|f| f.worker) != Some(worker))
            .copied()
            .collect()
    }

    /// The worker says these attempts start now: from here on, losing the worker counts as a
    /// crash of their tasks. Returns those that are not handed to it (ignored).
    pub fn started(&mut self, worker: WorkerId, attempts: &[(TaskId, Attempt)]) -> usize {
        let mut ignored = 0;
        for key in attempts {
            match self.flights.get_mut(key) {
                Some(flight) if flight.worker == worker => flight.started = true,
                _ => ignored += 1,
            }
        }
        ignored
    }

    /// The task's state and current attempt, for log lines about ignored messages.
    pub fn describe(&self, id: TaskId) -> Option<(TaskState, Attempt)> {
        self.tasks.get(&id).map(|t| (t.state, t.attempt))
    }

    /// A worker's connection is gone. An attempt it had not started (it never said `Started`)
    /// puts its task back to `ready` with no crash counted. Each attempt it had started counts
    /// as a crash of its task: the task goes back to `ready`, ahead of newer tasks, unless it
    /// has reached its crash limit. An at-most-once task ends `failed` either way: a `Started`
    /// may have been lost on its way (a cut network) after the slot began, and such a task must
    /// never start twice.
    pub fn worker_lost(&mut self, worker: WorkerId, now: Timestamp) -> LostEffect {
        let lost: Vec<((TaskId, Attempt), bool)> = self
            .flights
            .iter()
            .filter(|(_, f)| f.worker == worker)
            .map(|(key, f)| (*key, f.started))
            .collect();
        let mut effect = LostEffect::default();
        let mut requeued = Vec::new();
        for (key, started) in lost {
            self.flights.remove(&key);
            let record = self.tasks.get_mut(&key.0).expect("flights name tasks");
            if record.state != TaskState::Running || record.attempt != key.1 {
                continue;
            }
            self.dirty.insert(key.0);
            if !started && !record.spec.policy.at_most_once {
                record.state = TaskState::Ready;
                record.worker = None;
                record.started_at = None;
                requeued.push(key.0);
                effect.unstarted += 1;
                continue;
            }
            record.crashes += 1;
            let policy = record.spec.policy;
            if policy.at_most_once {
                fail(
                    record,
                    "WorkerLost",
                    "the task was lost with its worker while it ran; at-most-once tasks are never started twice".into(),
                    now,
                );
            } else if record.crashes >= policy.crash_limit {
                let message = format!(
                    "the task was lost with its worker {} times, its crash limit; it may be killing its worker or interpreter",
                    record.crashes
                );
                fail(record, "CrashLimitReached", message, now);
            } else {
                record.state = TaskState::Ready;
                requeued.push(key.0);
                continue;
            }
            self.finished.push(key.0);
            effect.failed += 1;
        }
        requeued.sort_unstable();
        for id in requeued.iter().rev() {
            self.ready.push_front(*id);
        }
        effect.requeued = requeued.len();
        effect
    }

    /// Tasks in any of `states` (all when empty) with ids above `after`, in id order, at most
    /// `limit` of them, without output.
    pub fn list(&self, states: &[TaskState], after: Option<TaskId>, limit: usize) -> Vec<TaskInfo> {
        let from = after.map_or(0, |id| id.0.saturating_add(1));
        self.tasks
            .range(TaskId(from)..)
            .map(|(_, task)| task)
            .filter(|t| states.is_empty() || states.contains(&t.state))
            .take(limit)
            .map(TaskRecord::info)
            .collect()
    }

    /// One task, without its output (which only the store has).
    pub fn show(&self, id: TaskId) -> Result<TaskInfo, TableError> {
        self.summary(id).ok_or_else(|| self.unknown(vec![id]))
    }

    /// The tasks a watch is about: every id must exist; sorted, without repeats.
    pub fn watch_targets(&self, ids: &[TaskId]) -> Result<Vec<TaskId>, TableError> {
        self.resolve(&Selection::Ids(ids.to_vec()), |_| false)
    }

    /// The first id never handed out.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The output of task `id` reported since the last `take_changes`, if any: newer than what
    /// the store has, and about to be written with the same flush as the answer that shows it.
    pub fn unsaved_output(&self, id: TaskId) -> Option<&TaskOutput> {
        self.outputs
            .iter()
            .rev()
            .find(|(task, _)| *task == id)
            .map(|(_, output)| output)
    }

    /// A task as listed (without output), for answering waiters.
    pub fn summary(&self, id: TaskId) -> Option<TaskInfo> {
        self.tasks.get(&id).map(TaskRecord::info)
    }

    /// The tasks a wait is about: the given ids, or with `All` every task that is neither
    /// finished nor `created` now.
    pub fn wait_targets(&self, selection: &Selection) -> Result<Vec<TaskId>, TableError> {
        self.resolve(selection, |state| {
            !state.is_finished() && state != TaskState::Created
        })
    }

    /// Whether the task has finished.
    pub fn is_finished(&self, id: TaskId) -> bool {
        self.tasks.get(&id).is_some_and(|t| t.state.is_finished())
    }

    /// Everything changed since the last call, as one store batch.
    pub fn take_changes(&mut self) -> Batch {
        let tasks = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.tasks.get(&id).cloned())
            .collect();
        let next_task_id = std::mem::take(&mut self.next_id_dirty).then_some(self.next_id);
        Batch {
            tasks,
            outputs: std::mem::take(&mut self.outputs),
            next_task_id,
            add_keys: Vec::new(),
        }
    }

    /// Tasks that finished since the last call.
    pub fn take_finished(&mut self) -> Vec<TaskId> {
        std::mem::take(&mut self.finished)
    }

    /// Explicit ids (each must exist) or every task whose state passes `all_filter`.
    fn resolve(
        &self,
        selection: &Selection,
        all_filter: impl Fn(TaskState) -> bool,
    ) -> Result<Vec<TaskId>, TableError> {
        match selection {
            Selection::All => Ok(self
                .tasks
                .values()
                .filter(|t| all_filter(t.state))
                .map(|t| t.id)
                .collect()),
            Selection::Ids(ids) => {
                let missing: Vec<TaskId> = ids
                    .iter()
                    .filter(|id| !self.tasks.contains_key(id))
                    .copied()
                    .collect();
                if missing.is_empty() {
                    let mut unique = ids.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    Ok(unique)
                } else {
                    Err(self.unknown(missing))
                }
            }
        }
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

#[cfg(test)]
mod tests;
