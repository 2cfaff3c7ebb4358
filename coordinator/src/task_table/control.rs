//! The commands that move tasks chosen by a `Selection`: play, pause and kill, and which tasks
//! a wait or a watch is about. Ids must all have been handed out, or the command fails and
//! changes nothing; a finished task named by id is left alone and reported with its state,
//! read from the store unless it finished this round.

use super::{Changed, TableError, TaskTable};
use crate::store::Store;
use tatzelwurm_proto::actioner::Selection;
use tatzelwurm_proto::task::{TaskState, Timestamp};
use tatzelwurm_proto::{Attempt, TaskId};

impl TaskTable {
    /// Moves `created` and `paused` tasks on: to `blocked` while a task they run after has
    /// not completed, else to `scheduled` while their start time is ahead of `now` (a paused
    /// scheduled task keeps its time), else to `ready`. With `All`, every created and paused
    /// task.
    pub fn play(
        &mut self,
        selection: &Selection,
        store: &Store,
        now: Timestamp,
    ) -> Result<Changed, TableError> {
        let playable = |state| matches!(state, TaskState::Created | TaskState::Paused);
        let ids = self.resolve(selection, playable)?;
        let mut outcome = Changed::default();
        for id in ids {
            match self.tasks.get(id).map(|t| t.state) {
                Some(state) if playable(state) => {
                    self.go_on(id, now);
                    outcome.changed.push(id);
                }
                Some(state) => outcome.unchanged.push((id, state)),
                None => outcome
                    .unchanged
                    .push((id, self.finished_state(id, store)?)),
            }
        }
        Ok(outcome)
    }

    /// Moves `created`, `ready` and `scheduled` tasks to `paused`: nothing dispatches them
    /// until they are played. A scheduled one keeps its start time; a ready one leaves its
    /// lane (and goes to the back of it when played). With `All`, every such task.
    pub fn pause(&mut self, selection: &Selection, store: &Store) -> Result<Changed, TableError> {
        let pausable = |state| {
            matches!(
                state,
                TaskState::Created | TaskState::Ready | TaskState::Scheduled
            )
        };
        let ids = self.resolve(selection, pausable)?;
        let mut outcome = Changed::default();
        let mut lanes = Vec::new();
        for id in ids {
            let Some(task) = self.tasks.get_mut(id) else {
                outcome
                    .unchanged
                    .push((id, self.finished_state(id, store)?));
                continue;
            };
            if !pausable(task.state) {
                outcome.unchanged.push((id, task.state));
                continue;
            }
            if task.state == TaskState::Ready {
                lanes.push((task.queue(&self.names), task.priority));
            }
            super::move_to(task, TaskState::Paused, &self.names, &mut self.queues);
            self.dirty.insert(id);
            outcome.changed.push(id);
        }
        self.drop_unready(lanes);
        Ok(outcome)
    }

    /// Ends unfinished tasks, whatever their state. A running one is marked `killed` now and
    /// returned with its attempt: the worker that holds it (the scheduler knows which) must be
    /// told to stop it, and its slot stays taken until the worker reports. The tasks that run
    /// after a killed one fail (`DependencyFailed`), unless this kill ends them too. The state
    /// of a finished task named by id is read from `store`.
    pub fn kill(
        &mut self,
        selection: &Selection,
        store: &Store,
        now: Timestamp,
    ) -> Result<(Changed, Vec<(TaskId, Attempt)>), TableError> {
        let ids = self.resolve(selection, |state| !state.is_finished())?;
        let mut outcome = Changed::default();
        let mut orders = Vec::new();
        let mut lanes = Vec::new();
        for id in ids {
            let Some(task) = self.tasks.get(id) else {
                outcome
                    .unchanged
                    .push((id, self.finished_state(id, store)?));
                continue;
            };
            match task.state {
                TaskState::Ready => lanes.push((task.queue(&self.names), task.priority)),
                TaskState::Running => orders.push((id, task.attempt)),
                _ => {}
            }
            self.finish(id, |record| {
                record.state = TaskState::Killed;
                record.retry_at = None;
                record.finished_at = Some(now);
            });
            outcome.changed.push(id);
        }
        self.drop_unready(lanes);
        self.settle(now);
        Ok((outcome, orders))
    }

    /// Takes out of the ready lanes (`queue`, `priority`) the tasks that are no longer ready
    /// (paused or killed by the caller).
    pub(super) fn drop_unready(&mut self, mut lanes: Vec<(crate::queues::QueueId, i8)>) {
        lanes.sort_unstable();
        lanes.dedup();
        for (queue, priority) in lanes {
            let tasks = &self.tasks;
            self.ready.retain(queue, priority, |id| {
                tasks.get(*id).map(|t| t.state) == Some(TaskState::Ready)
            });
        }
    }

    /// The tasks a wait is about: the given ids, or with `All` every task that is neither
    /// finished nor `created` nor `paused` now (those wait for a person, not for a slot).
    pub fn wait_targets(&self, selection: &Selection) -> Result<Vec<TaskId>, TableError> {
        self.resolve(selection, |state| {
            !state.is_finished() && !matches!(state, TaskState::Created | TaskState::Paused)
        })
    }

    /// The tasks a watch is about: every id must exist; sorted, without repeats.
    pub fn watch_targets(&self, ids: &[TaskId]) -> Result<Vec<TaskId>, TableError> {
        self.resolve(&Selection::Ids(ids.to_vec()), |_| false)
    }

    /// Whether the task has finished (an id handed out that is not live).
    pub fn is_finished(&self, id: TaskId) -> bool {
        self.exists(id) && !self.tasks.contains(id)
    }

    /// Explicit ids (each must exist) or every live task whose state passes `all_filter`.
    pub(super) fn resolve(
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
}
