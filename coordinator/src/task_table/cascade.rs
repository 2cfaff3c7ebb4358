//! How dependencies decide tasks, in the table: the states of the finished dependencies an add
//! names, and `settle`, which releases or fails the dependents of the tasks that finished
//! (the counts themselves are `deps.rs`'s).

use super::{fail, TableError, TaskTable};
use crate::store::Store;
use rustc_hash::FxHashMap;
use tatzelwurm_proto::task::{TaskSpec, TaskState, Timestamp, DEPENDENCY_FAILED};
use tatzelwurm_proto::TaskId;

impl TaskTable {
    /// The finished states of the dependencies the specs name that are not live, after
    /// checking that each was handed out.
    pub(super) fn dependency_states(
        &self,
        specs: &[TaskSpec],
        store: &Store,
    ) -> Result<FxHashMap<TaskId, TaskState>, TableError> {
        let mut ended = FxHashMap::default();
        if specs.iter().all(|spec| spec.after.is_empty()) {
            return Ok(ended);
        }
        let missing: Vec<TaskId> = specs
            .iter()
            .flat_map(|spec| spec.after.iter())
            .filter(|id| !self.exists(**id))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(self.unknown(missing));
        }
        for spec in specs {
            for id in &spec.after {
                if !self.tasks.contains(*id) && !ended.contains_key(id) {
                    ended.insert(*id, self.finished_state(*id, store)?);
                }
            }
        }
        Ok(ended)
    }

    /// Releases or fails the dependents of the tasks that finished (`finish`): a completion
    /// moves each `blocked` dependent with nothing left to wait for on (`scheduled` or
    /// `ready`); a failure or kill fails every dependent still waiting, whose own dependents
    /// follow in the same call, so a failure cascades down a chain at once.
    pub(super) fn settle(&mut self, now: Timestamp) {
        while let Some(id) = self.settling.pop() {
            let Some(state) = self.done.get(&id).map(|done| done.state()) else {
                continue;
            };
            if state == TaskState::Completed {
                for dependent in self.deps.completed(id) {
                    if self.tasks.get(dependent).map(|t| t.state) == Some(TaskState::Running) {
                        // Held on a worker, which starts it now.
                        self.released_held(dependent, now);
                        continue;
                    }
                    if self.tasks.get(dependent).map(|t| t.state) == Some(TaskState::Blocked) {
                        let current = self.durable_current(dependent);
                        if self.go_on(dependent, now) && current {
                            self.released.insert(dependent);
                        }
                    }
                }
            } else {
                for dependent in self.deps.failed(id) {
                    self.fail_dependent(dependent, id, state, now);
                }
            }
        }
    }

    /// Ends live task `id` `failed` because `dependency`, which it runs after, ended in
    /// `state` (failed or killed).
    pub(super) fn fail_dependent(
        &mut self,
        id: TaskId,
        dependency: TaskId,
        state: TaskState,
        now: Timestamp,
    ) {
        let how = if state == TaskState::Killed {
            "was killed"
        } else {
            "failed"
        };
        let message = format!("task {dependency}, which this task runs after, {how}");
        let mut held = None;
        if let Some(task) = self.tasks.get(id) {
            if task.state == TaskState::Running {
                // Held on a worker (`held.rs`), which keeps it from starting: stop it there.
                // It was counted as `blocked` and ends as a task that never ran.
                self.orders.kill.push((id, task.attempt));
                held = Some(self.attempts_before_hold(id, task));
            }
        }
        if held.is_some() {
            if let Some(task) = self.tasks.get_mut(id) {
                task.state = TaskState::Blocked;
            }
        }
        // Never in a ready lane: a task waiting for a dependency is created, paused, blocked
        // or held (a scheduled one's due entry is dropped when it comes due).
        self.finish(id, |record| {
            if let Some(attempt) = held {
                super::held::hide_hold(record, attempt);
            }
            fail(record, DEPENDENCY_FAILED, message, now);
            record.retry_at = None;
        });
    }
}
