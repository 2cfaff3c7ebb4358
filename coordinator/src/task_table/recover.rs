//! The table rebuilt at start from the store's live records, queue records and, for the
//! dependencies of live tasks that have finished, their stored states.

use super::done::Done;
use super::live::LiveTask;
use super::{fail, TaskTable, Unflushed};
use crate::record::QueueRecord;
use crate::store::{IntoRecords, Store};
use tatzelwurm_proto::task::{TaskState, Timestamp};
use tatzelwurm_proto::TaskId;
use tracing::error;

impl TaskTable {
    /// Rebuilds the table from the live records of the store (finished ones stay there) and
    /// the stored queue records. Tasks that were running when the coordinator stopped have
    /// lost their worker with it: they go back to `ready`, except at-most-once tasks, which
    /// may have started and so end `failed`. Scheduled and waiting tasks go back into the due
    /// index (those due by now become ready at the first round, `promote_due`); ready ones
    /// into their lanes in id order. The dependency index is rebuilt: a dependency that is
    /// live is waited for, a completed one counts nothing, and one that failed or was killed
    /// fails its dependent (as it would have when it ended). Changed records are marked for
    /// writing.
    pub fn recover(
        records: impl IntoRecords,
        next_id: u64,
        queues: Vec<(String, QueueRecord)>,
        now: Timestamp,
        store: &Store,
    ) -> TaskTable {
        let records = records.into_records();
        let mut table = TaskTable {
            next_id: next_id.max(1),
            unflushed: Unflushed::recovered(next_id.max(1)),
            ..TaskTable::default()
        };
        for (name, record) in queues {
            let queue = table.names.queue(&name);
            table.queues.restore(queue, record);
        }
        let mut dependents = Vec::new();
        let mut lost_at_most_once = Vec::new();
        for stored in records.refs() {
            let id = stored.id;
            let mut state = stored.state;
            if state.is_finished() {
                // Not in the live part; kept (and written back) as it was.
                table
                    .done
                    .insert(id, Done::whole_record(stored.to_record()));
                table.dirty.insert(id);
                continue;
            }
            let mut task = LiveTask::from_ref(&stored, &mut table.names);
            match state {
                TaskState::Running => {
                    table.dirty.insert(id);
                    if task.policy(&table.names).at_most_once {
                        lost_at_most_once.push(id);
                    } else {
                        // Its attempt number was written with it (handed out while its record
                        // was not current, so its `Run` waited for the flush): no gap needed.
                        state = TaskState::Ready;
                    }
                }
                // Blocked with nothing to wait for (not written so by this coordinator):
                // moved on below like a released task.
                TaskState::Blocked if task.after().is_empty() => {
                    state = table.entry_state(id, &task, now);
                    table.dirty.insert(id);
                }
                TaskState::Ready | TaskState::Blocked => {
                    // An at-least-once assignment is not written before its `Run` leaves (the
                    // flush rule), so the crash may have cut off one that used the next attempt
                    // number. Counting it as used keeps every (task, attempt) pair naming one
                    // run: at most one such number per task, since a task is handed out early
                    // only when its stored record is current (`may_start_early`: a `ready`
                    // one, or a `blocked` one released in that round), and every other way
                    // back to `ready` is written first.
                    task.attempt = task.attempt.next();
                    task.unrecorded = true;
                }
                _ => {}
            }
            if !task.after().is_empty() {
                dependents.push(id);
            }
            table.insert(id, task, state);
        }
        for id in lost_at_most_once {
            table.finish(id, |record| {
                fail(
                    record,
                    "WorkerLost",
                    "the coordinator stopped while this at-most-once task ran, so it may have started; it is never started twice".into(),
                    now,
                )
            });
        }
        table.rebuild_dependencies(dependents, store, now);
        table.settle(now);
        table
    }

    /// Registers every live task of `dependents` with its unfinished dependencies; fails it
    /// if one failed or was killed; moves a `blocked` one with nothing left to wait for on.
    fn rebuild_dependencies(&mut self, dependents: Vec<TaskId>, store: &Store, now: Timestamp) {
        let mut lanes = Vec::new();
        for id in dependents {
            let Some(task) = self.tasks.get(id) else {
                continue;
            };
            let mut after = task.after().to_vec();
            after.sort_unstable();
            after.dedup();
            let mut broken = None;
            for dependency in after {
                if self.tasks.contains(dependency) {
                    self.deps.wait_for(id, dependency);
                    continue;
                }
                match self.finished_state(dependency, store) {
                    Ok(TaskState::Completed) => {}
                    Ok(state) => broken = broken.or(Some((dependency, state))),
                    Err(err) => {
                        error!("task {id} runs after task {dependency}, whose state cannot be read ({err}); it fails as if task {dependency} had failed");
                        broken = broken.or(Some((dependency, TaskState::Failed)));
                    }
                }
            }
            let state = self.tasks.get(id).map(|t| t.state);
            if let Some((dependency, ended)) = broken {
                self.fail_dependent(id, dependency, ended, now);
            } else if state == Some(TaskState::Blocked) && self.deps.remaining(id) == 0 {
                self.go_on(id, now);
            } else if state == Some(TaskState::Ready) && self.deps.remaining(id) > 0 {
                // Stored `running` while held (`held.rs`): back to waiting for its dependencies.
                let task = self.tasks.get_mut(id).expect("checked above");
                lanes.push((task.queue(&self.names), task.priority));
                super::move_to(task, TaskState::Blocked, &self.names, &mut self.queues);
                self.dirty.insert(id);
            }
        }
        self.drop_unready(lanes);
    }
}
