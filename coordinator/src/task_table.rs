//! `TaskTable`: the task state machine, as a plain struct with synchronous methods.
//!
//! It owns the tasks that are not finished, in a compact form (`task_table/live.rs`), and the
//! queue of ready tasks, and it notes what changed so that the task actor can write exactly
//! that to the store before it tells anyone. A finished task leaves memory once the batch that
//! records it is durable (its round's pushes and waiters still read it here); after that,
//! `show`, `list`, `infos` and the states of `play`/`kill` read it from the store, which the
//! caller passes in. So memory grows with the live tasks, not with the history. Which worker holds
//! which attempt (the flights) is the `Scheduler`'s: the table is told whether a reported
//! attempt was held (`report`), which attempts a lost worker held (`lost`) and which a worker
//! gave back (`returned`). It knows nothing of channels, sockets or sled, so its rules are
//! unit-tested directly (as HyperQueue tests its scheduler). Only the task actor (`tasks.rs`)
//! holds one.

use crate::record::TaskRecord;
use crate::retry::{self, RetryJitter};
use crate::store::{Batch, IntoRecords, Part, Store};
use live::{LiveTask, LiveTasks, Names};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use tatzelwurm_proto::actioner::{Failure, FailureKind, Selection};
use tatzelwurm_proto::task::{
    Outcome, TaskError, TaskInfo, TaskOutput, TaskSpec, TaskState, Timestamp,
};
use tatzelwurm_proto::worker::{Assignment, Report};
use tatzelwurm_proto::{Attempt, TaskId};

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
    /// A finished task's record could not be read from the store.
    Store(String),
}

impl TableError {
    /// The failure an actioner is sent.
    pub fn failure(&self) -> Failure {
        let kind = match self {
            TableError::UnknownTasks { .. } => FailureKind::UnknownTask,
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
            TableError::Store(cause) => write!(
                f,
                "cannot read a finished task from the database ({cause}); the database may be damaged"
            ),
        }
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
    /// Tasks put back to `ready`.
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
    /// Function names, policies and worker names the live tasks share.
    names: Names,
    /// Records of tasks that finished since the batch before the last `take_changes`, each
    /// with whether that batch wrote it: pushes and waiters of the round that finished them
    /// read them here, and the next `take_changes` drops those written (durable by then).
    done: BTreeMap<TaskId, (TaskRecord, bool)>,
    /// Tasks waiting for a slot, oldest first.
    ready: VecDeque<TaskId>,
    /// The first id never handed out.
    next_id: u64,
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
    /// Rebuilds the table from the live records of the store (finished ones stay there).
    /// Tasks that were running when the coordinator stopped have lost their worker with it:
    /// they go back to `ready`, except at-most-once tasks, which may have started and so end
    /// `failed`. Changed records are marked for writing.
    pub fn recover(records: impl IntoRecords, next_id: u64, now: Timestamp) -> TaskTable {
        let records = records.into_records();
        let mut table = TaskTable {
            next_id: next_id.max(1),
            ..TaskTable::default()
        };
        for stored in records.refs() {
            let id = stored.id;
            match stored.state {
                TaskState::Running => {
                    table.dirty.insert(id);
                    let mut record = stored.to_record();
                    if record.spec.policy.at_most_once {
                        fail(
                            &mut record,
                            "WorkerLost",
                            "the coordinator stopped while this at-most-once task ran, so it may have started; it is never started twice".into(),
                            now,
                        );
                        table.done.insert(id, (record, false));
                        continue;
                    }
                    // Its attempt number was written with it (handed out while its record was
                    // not current, so its `Run` waited for the flush): no gap needed, see below.
                    record.state = TaskState::Ready;
                    table.ready.push_back(id);
                    let task = LiveTask::from_record(record, &mut table.names);
                    table.tasks.insert(id, task);
                    continue;
                }
                TaskState::Ready => table.ready.push_back(id),
                TaskState::Waiting => {
                    let due = stored.retry_at.unwrap_or(now);
                    table.waiting.insert((due, id));
                }
                state if state.is_finished() => {
                    // Not in the live part; kept (and written back) as it was.
                    table.done.insert(id, (stored.to_record(), false));
                    table.dirty.insert(id);
                    continue;
                }
                _ => {}
            }
            let mut task = LiveTask::from_ref(&stored, &mut table.names);
            if task.state == TaskState::Ready {
                // An at-least-once assignment is not written before its `Run` leaves (the flush
                // rule), so the crash may have cut off one that used the next attempt number.
                // Counting it as used keeps every (task, attempt) pair naming one run: at most
                // one such number per task, since a task is handed out early only when its
                // stored record is current (`is_dirty`), and every way back to `ready` is
                // written. Any other state must become `ready` first, which is a write.
                task.attempt = task.attempt.next();
                task.unrecorded = true;
            }
            table.tasks.insert(id, task);
        }
        table
    }

    /// Whether task `id` changed since the last `take_changes`, so its stored record is not
    /// current. A task handed out while its record is current may have its `Run` sent before the
    /// round's flush (see `recover` for why that keeps attempt numbers unique).
    pub fn is_dirty(&self, id: TaskId) -> bool {
        self.dirty.contains(&id) || self.tasks.get(id).is_some_and(|t| t.unrecorded)
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
            let task = LiveTask::new(spec, state, now, &mut self.names);
            self.tasks.insert(id, task);
            if play {
                self.ready.push_back(id);
            }
            self.dirty.insert(id);
            ids.push(id);
        }
        self.next_id_dirty |= !ids.is_empty();
        ids
    }

    /// Moves `created` tasks to `ready`. With `All`, every created task. The state of a
    /// finished task named by id is read from `store`.
    pub fn play(&mut self, selection: &Selection, store: &Store) -> Result<Changed, TableError> {
        let ids = self.resolve(selection, |state| state == TaskState::Created)?;
        let mut outcome = Changed::default();
        for id in ids {
            match self.tasks.get_mut(id) {
                Some(task) if task.state == TaskState::Created => {
                    task.state = TaskState::Ready;
                    self.ready.push_back(id);
                    self.dirty.insert(id);
                    outcome.changed.push(id);
                }
                Some(task) => outcome.unchanged.push((id, task.state)),
                None => outcome
                    .unchanged
                    .push((id, self.finished_state(id, store)?)),
            }
        }
        Ok(outcome)
    }

    /// Ends unfinished tasks (created, ready, waiting or running). A running one is marked
    /// `killed` now and returned with its attempt: the worker that holds it (the scheduler knows
    /// which) must be told to stop it, and its slot stays taken until the worker reports. The
    /// state of a finished task named by id is read from `store`.
    pub fn kill(
        &mut self,
        selection: &Selection,
        store: &Store,
        now: Timestamp,
    ) -> Result<(Changed, Vec<(TaskId, Attempt)>), TableError> {
        let ids = self.resolve(selection, |state| !state.is_finished())?;
        let mut outcome = Changed::default();
        let mut orders = Vec::new();
        let mut left_ready = false;
        for id in ids {
            let Some(task) = self.tasks.get(id) else {
                outcome
                    .unchanged
                    .push((id, self.finished_state(id, store)?));
                continue;
            };
            left_ready |= task.state == TaskState::Ready;
            if task.state == TaskState::Running {
                orders.push((id, task.attempt));
            }
            self.finish(id, |record| {
                record.state = TaskState::Killed;
                record.retry_at = None;
                record.finished_at = Some(now);
            });
            outcome.changed.push(id);
        }
        if left_ready {
            let tasks = &self.tasks;
            self.ready
                .retain(|id| tasks.get(*id).map(|t| t.state) == Some(TaskState::Ready));
        }
        Ok((outcome, orders))
    }

    /// How many tasks wait for a slot.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// The function of the task first in the ready queue (the one `assign` hands next) and
    /// whether that task is at-most-once, for prefetch: its depth is the function's, and an
    /// at-most-once task is never queued behind a busy slot. `None` when nothing is ready.
    pub fn next_ready(&self) -> Option<(&str, bool)> {
        self.ready
            .iter()
            .filter_map(|id| self.tasks.get(*id))
            .find(|t| t.state == TaskState::Ready)
            .map(|t| (t.function(&self.names), t.policy(&self.names).at_most_once))
    }

    /// Hands up to `count` ready tasks, oldest first, to the worker named `worker_name`: each
    /// gets its next attempt number, which fences every report of an earlier attempt. The
    /// caller (the scheduler) records which connection holds each attempt.
    ///
    /// Only an at-most-once task's assignment is written to the store (before its `Run` may
    /// leave), and that of a task whose attempt number is ahead of its record (`unrecorded`):
    /// an at-least-once task found `ready` after a crash runs again, which its guarantee
    /// allows, so its assignment costs no write (see DESIGN.md, the flush rule).
    pub fn assign(&mut self, worker_name: &str, count: usize, now: Timestamp) -> Vec<Assignment> {
        let mut handed = Vec::with_capacity(count.min(self.ready.len()));
        while handed.len() < count {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            if task.state != TaskState::Ready {
                continue;
            }
            task.attempt = task.attempt.next();
            task.state = TaskState::Running;
            task.set_worker(Some(worker_name), &mut self.names);
            task.started_at = Some(now).into();
            let spec = task.spec(&self.names);
            if spec.policy.at_most_once || task.unrecorded {
                task.unrecorded = false;
                self.dirty.insert(id);
            }
            handed.push(Assignment {
                task: id,
                attempt: task.attempt,
                spec,
            });
        }
        handed
    }

    /// Applies a worker's report. `held` says the scheduler confirmed that the reporting worker
    /// held this attempt (and has dropped its flight). Only the current attempt of a running
    /// task, reported by the worker that held it, is recorded; anything else (a fenced attempt,
    /// a task killed in the meantime, a report resent after a reconnect) is ignored. A failed
    /// attempt with retries left makes the task `waiting` until its backoff has passed.
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
                    None => self
                        .done
                        .get(&id)
                        .is_none_or(|(r, _)| r.state == TaskState::Killed),
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
                    task.error = Some(Box::new(error));
                    task.state = TaskState::Waiting;
                    task.retry_at = Some(due).into();
                    self.waiting.insert((due, id));
                    self.dirty.insert(id);
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
        ReportEffect {
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
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            if task.state == TaskState::Waiting && task.retry_at.get() == Some(due) {
                task.state = TaskState::Ready;
                task.retry_at = None.into();
                self.ready.push_back(id);
                self.dirty.insert(id);
                moved += 1;
            }
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
            None => self.done.get(&id).map(|(r, _)| r.spec.function.as_str()),
        }
    }

    /// The task's state and current attempt, for log lines about ignored messages: a live
    /// task's, or one's that finished this round.
    pub fn describe(&self, id: TaskId) -> Option<(TaskState, Attempt)> {
        match self.tasks.get(id) {
            Some(task) => Some((task.state, task.attempt)),
            None => self.done.get(&id).map(|(r, _)| (r.state, r.attempt)),
        }
    }

    /// A worker's connection is gone with the attempts it held (from the scheduler's flights),
    /// each with whether a slot had started it. An attempt it had not started (it never said
    /// `Started`) puts its task back to `ready` with no crash counted. Each attempt it had
    /// started counts as a crash of its task: the task goes back to `ready`, ahead of newer
    /// tasks, unless it has reached its crash limit. An at-most-once task ends `failed` either
    /// way: a `Started` may have been lost on its way (a cut network) after the slot began, and
    /// such a task must never start twice. Attempts that are not current are skipped.
    pub fn lost(&mut self, attempts: Vec<((TaskId, Attempt), bool)>, now: Timestamp) -> LostEffect {
        let mut effect = LostEffect::default();
        let mut requeued = Vec::new();
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
                task.state = TaskState::Ready;
                task.set_worker(None, &mut self.names);
                task.started_at = None.into();
                requeued.push(id);
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
                task.state = TaskState::Ready;
                requeued.push(id);
                continue;
            }
            effect.failed += 1;
        }
        requeued.sort_unstable();
        for id in requeued.iter().rev() {
            self.ready.push_front(*id);
        }
        effect.requeued = requeued.len();
        effect
    }

    /// A worker gave these attempts back unstarted (`Returned`, after a take-back): their tasks
    /// are ready again at the front of the queue, with no crash counted. Their attempt numbers
    /// stay used, so the next assignment fences them. Only tasks still running with that
    /// attempt move; returns how many did.
    pub fn returned(&mut self, attempts: &[(TaskId, Attempt)]) -> usize {
        let mut requeued = Vec::new();
        for &(id, attempt) in attempts {
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            if task.state != TaskState::Running || task.attempt != attempt {
                continue;
            }
            task.state = TaskState::Ready;
            task.set_worker(None, &mut self.names);
            task.started_at = None.into();
            self.dirty.insert(id);
            requeued.push(id);
        }
        requeued.sort_unstable();
        for id in requeued.iter().rev() {
            self.ready.push_front(*id);
        }
        requeued.len()
    }

    /// Tasks in any of `states` (all when empty) with ids above `after`, in id order, at most
    /// `limit` of them, without output. Live tasks come from memory; finished ones from
    /// `store`, except those finished in this round, which memory has newer. A listing of
    /// live states only reads no store.
    pub fn list(
        &self,
        states: &[TaskState],
        after: Option<TaskId>,
        limit: usize,
        store: &Store,
    ) -> Result<Vec<TaskInfo>, TableError> {
        let Some(from) = after.map_or(Some(0), |id| id.0.checked_add(1)) else {
            return Ok(Vec::new());
        };
        let wanted = |state: TaskState| states.is_empty() || states.contains(&state);
        let live: Vec<(TaskId, TaskInfo)> = self
            .tasks
            .range_from(TaskId(from))
            .filter(|(_, t)| wanted(t.state))
            .take(limit)
            .map(|(id, t)| (id, t.info(id, &self.names)))
            .collect();
        if !states.is_empty() && states.iter().all(|s| !s.is_finished()) {
            return Ok(live.into_iter().map(|(_, info)| info).collect());
        }
        let recent: Vec<(TaskId, TaskInfo)> = self
            .done
            .range(TaskId(from)..)
            .filter(|(_, (r, _))| wanted(r.state))
            .take(limit)
            .map(|(id, (r, _))| (*id, r.info()))
            .collect();
        let stored: Vec<(TaskId, TaskInfo)> = store
            .scan(Part::Finished, after, limit, states)
            .map_err(|err| TableError::Store(err.to_string()))?
            .into_iter()
            .map(|r| (r.id, r.into_info()))
            .collect();
        // Three lists in id order; an id in memory and in the store is memory's.
        let mut merged: BTreeMap<TaskId, TaskInfo> = stored.into_iter().collect();
        merged.extend(recent);
        merged.extend(live);
        Ok(merged.into_values().take(limit).collect())
    }

    /// One task, without its output (which only the store has); a finished one is read from
    /// `store` unless it finished in this round.
    pub fn show(&self, id: TaskId, store: &Store) -> Result<TaskInfo, TableError> {
        if !self.exists(id) {
            return Err(self.unknown(vec![id]));
        }
        match self.info_in_memory(id) {
            Some(info) => Ok(info),
            None => match store.get(id) {
                Ok(Some(record)) => Ok(record.into_info()),
                Ok(None) => Err(TableError::Store(format!(
                    "task {id} has no record in the database"
                ))),
                Err(err) => Err(TableError::Store(err.to_string())),
            },
        }
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

    /// A task as listed (without output), if memory has it: live, or finished this round.
    fn info_in_memory(&self, id: TaskId) -> Option<TaskInfo> {
        match self.tasks.get(id) {
            Some(task) => Some(task.info(id, &self.names)),
            None => self.done.get(&id).map(|(r, _)| r.info()),
        }
    }

    /// The tasks `ids` as listed (without output), for pushes and waiters: from memory, or
    /// for tasks finished in an earlier round from `store`. Ids of no task (and, should the
    /// store fail to read, the tasks it could not read) are left out.
    pub fn infos(&self, ids: &[TaskId], store: &Store) -> Vec<TaskInfo> {
        ids.iter()
            .filter_map(|id| match self.info_in_memory(*id) {
                Some(info) => Some(info),
                None if self.exists(*id) => match store.get(*id) {
                    Ok(record) => record.map(TaskRecord::into_info),
                    Err(err) => {
                        tracing::error!("cannot read task {id} from the database: {err}");
                        None
                    }
                },
                None => None,
            })
            .collect()
    }

    /// The tasks a wait is about: the given ids, or with `All` every task that is neither
    /// finished nor `created` now.
    pub fn wait_targets(&self, selection: &Selection) -> Result<Vec<TaskId>, TableError> {
        self.resolve(selection, |state| {
            !state.is_finished() && state != TaskState::Created
        })
    }

    /// Whether the task has finished (an id handed out that is not live).
    pub fn is_finished(&self, id: TaskId) -> bool {
        self.exists(id) && !self.tasks.contains(id)
    }

    /// Everything changed since the last call, as one store batch. The finished records the
    /// previous batch wrote are durable now (the task actor applies each batch before it takes
    /// the next) and leave memory.
    pub fn take_changes(&mut self) -> Batch {
        self.done.retain(|_, (_, written)| !*written);
        let mut tasks = Vec::with_capacity(self.dirty.len());
        for id in std::mem::take(&mut self.dirty) {
            if let Some(task) = self.tasks.get(id) {
                tasks.push(task.record(id, &self.names));
            } else if let Some((record, written)) = self.done.get_mut(&id) {
                tasks.push(record.clone());
                *written = true;
            }
        }
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

    /// How many tasks are live (not finished), held in memory.
    pub fn live_len(&self) -> usize {
        self.tasks.len()
    }

    /// Moves live task `id` to the finished records, with `end` setting its final state; it
    /// is written with the next batch and reported by the next `take_finished`.
    fn finish(&mut self, id: TaskId, end: impl FnOnce(&mut TaskRecord)) {
        let Some(task) = self.tasks.remove(id) else {
            return;
        };
        let mut record = task.record(id, &self.names);
        end(&mut record);
        self.done.insert(id, (record, false));
        self.dirty.insert(id);
        self.finished.push(id);
    }

    /// The state of a task that is not live: finished this round (memory) or earlier (store).
    fn finished_state(&self, id: TaskId, store: &Store) -> Result<TaskState, TableError> {
        if let Some((record, _)) = self.done.get(&id) {
            return Ok(record.state);
        }
        match store.get(id) {
            Ok(Some(record)) => Ok(record.state),
            Ok(None) => Err(TableError::Store(format!(
                "task {id} has no record in the database"
            ))),
            Err(err) => Err(TableError::Store(err.to_string())),
        }
    }

    /// Whether `id` was handed out: ids are never reused nor forgotten.
    fn exists(&self, id: TaskId) -> bool {
        id.0 >= 1 && id.0 < self.next_id
    }

    /// Explicit ids (each must exist) or every live task whose state passes `all_filter`.
    fn resolve(
        &self,
        selection: &Selection,
        all_filter: impl Fn(TaskState) -> bool,
    ) -> Result<Vec<TaskId>, TableError> {
        match selection {
            Selection::All => Ok(self
                .tasks
                .range_from(TaskId(0))
                .filter(|(_, t)| all_filter(t.state))
                .map(|(id, _)| id)
                .collect()),
            Selection::Ids(ids) => {
                let missing: Vec<TaskId> = ids
                    .iter()
                    .filter(|id| !self.exists(**id))
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

mod live;
#[cfg(test)]
mod tests;
