//! `TaskTable`: the task state machine, as a plain struct with synchronous methods.
//!
//! It owns every `TaskRecord`, the queue of ready tasks and the attempts in flight, and it notes
//! what changed so that the task actor can write exactly that to the store before it tells
//! anyone. It knows nothing of channels, sockets or sled, so its rules are unit-tested directly
//! (as HyperQueue tests its scheduler). Only the task actor (`tasks.rs`) holds one.

use crate::record::TaskRecord;
use crate::store::Batch;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use tatzelwurm_proto::actioner::Selection;
use tatzelwurm_proto::task::{Outcome, TaskInfo, TaskSpec, TaskState, Timestamp};
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
    flights: HashMap<(TaskId, Attempt), WorkerId>,
    /// Tasks changed since the last `take_changes`.
    dirty: BTreeSet<TaskId>,
    /// Whether `next_id` moved since the last `take_changes`.
    next_id_dirty: bool,
    /// Tasks that finished since the last `take_finished`, for waiters.
    finished: Vec<TaskId>,
}

impl TaskTable {
    /// Rebuilds the table from the store. Tasks that were running when the coordinator stopped
    /// have lost their worker with it: they go back to `ready` (and are marked for writing).
    pub fn recover(records: Vec<TaskRecord>, next_id: u64) -> TaskTable {
        let mut table = TaskTable {
            next_id: next_id.max(1),
            ..TaskTable::default()
        };
        for mut record in records {
            if record.state == TaskState::Running {
                record.state = TaskState::Ready;
                table.dirty.insert(record.id);
            }
            if record.state == TaskState::Ready {
                table.ready.push_back(record.id);
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
    pub fn play(&mut self, selection: &Selection) -> Result<Changed, String> {
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

    /// Ends unfinished tasks. A running one is marked `killed` now and its worker must be told
    /// to stop it (the returned orders); its slot stays taken until the worker reports.
    pub fn kill(
        &mut self,
        selection: &Selection,
        now: Timestamp,
    ) -> Result<(Changed, Vec<KillOrder>), String> {
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
                if let Some(worker) = self.flights.get(&(id, record.attempt)) {
                    orders.push(KillOrder {
                        worker: *worker,
                        task: id,
                        attempt: record.attempt,
                    });
                }
            }
            record.state = TaskState::Killed;
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
            self.flights.insert((id, record.attempt), worker);
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
    /// the meantime, a report resent after a reconnect) at most frees the slot it held.
    pub fn report(&mut self, worker: WorkerId, report: Report, now: Timestamp) -> ReportEffect {
        let key = (report.task, report.attempt);
        let freed_slot = self.flights.get(&key) == Some(&worker);
        if freed_slot {
            self.flights.remove(&key);
        }
        let Some(record) = self.tasks.get_mut(&report.task) else {
            return ReportEffect {
                freed_slot,
                recorded: false,
            };
        };
        let current =
            freed_slot && record.state == TaskState::Running && record.attempt == report.attempt;
        if !current {
            return ReportEffect {
                freed_slot,
                recorded: false,
            };
        }
        match report.outcome {
            Outcome::Completed { result } => {
                record.state = TaskState::Completed;
                record.result = Some(result);
                record.error = None;
            }
            Outcome::Failed { error } => {
                record.state = TaskState::Failed;
                record.error = Some(error);
            }
            Outcome::Killed => record.state = TaskState::Killed,
        }
        record.output = report.output;
        record.finished_at = Some(now);
        self.dirty.insert(report.task);
        self.finished.push(report.task);
        ReportEffect {
            freed_slot,
            recorded: true,
        }
    }

    /// A worker's connection is gone: its running attempts go back to `ready`, ahead of newer
    /// tasks. Returns how many were requeued.
    pub fn worker_lost(&mut self, worker: WorkerId) -> usize {
        let lost: Vec<(TaskId, Attempt)> = self
            .flights
            .iter()
            .filter(|(_, w)| **w == worker)
            .map(|(key, _)| *key)
            .collect();
        let mut requeued = Vec::new();
        for key in lost {
            self.flights.remove(&key);
            let record = self.tasks.get_mut(&key.0).expect("flights name tasks");
            if record.state == TaskState::Running && record.attempt == key.1 {
                record.state = TaskState::Ready;
                self.dirty.insert(key.0);
                requeued.push(key.0);
            }
        }
        requeued.sort_unstable();
        for id in requeued.iter().rev() {
            self.ready.push_front(*id);
        }
        requeued.len()
    }

    /// Tasks in any of `states` (all when empty), in id order, without output.
    pub fn list(&self, states: &[TaskState]) -> Vec<TaskInfo> {
        self.tasks
            .values()
            .filter(|t| states.is_empty() || states.contains(&t.state))
            .map(|t| t.info(false))
            .collect()
    }

    /// One task with its output.
    pub fn show(&self, id: TaskId) -> Result<TaskInfo, String> {
        self.tasks
            .get(&id)
            .map(|t| t.info(true))
            .ok_or_else(|| unknown_ids(&[id]))
    }

    /// A task as listed (without output), for answering waiters.
    pub fn summary(&self, id: TaskId) -> Option<TaskInfo> {
        self.tasks.get(&id).map(|t| t.info(false))
    }

    /// The tasks a wait is about: the given ids, or with `All` every task that is neither
    /// finished nor `created` now.
    pub fn wait_targets(&self, selection: &Selection) -> Result<Vec<TaskId>, String> {
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
            next_task_id,
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
    ) -> Result<Vec<TaskId>, String> {
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
                    Err(unknown_ids(&missing))
                }
            }
        }
    }
}

/// The sentence for ids that do not exist.
fn unknown_ids(ids: &[TaskId]) -> String {
    let names: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let (noun, list) = if names.len() == 1 {
        ("id", names[0].clone())
    } else {
        ("ids", names.join(", "))
    };
    format!("no task has {noun} {list}; `actionwurm task list` shows the tasks there are")
}

#[cfg(test)]
mod tests;
