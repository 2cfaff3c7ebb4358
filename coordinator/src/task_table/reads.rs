//! Reads of the table for actioners: listings, one task, and the tasks pushes and waiters
//! describe. Live tasks are described from memory; finished ones from the store, except those
//! finished this round, which memory still has (and has newer).

use super::{TableError, TaskTable};
use crate::record::TaskRecord;
use crate::store::{Part, Store};
use std::collections::BTreeMap;
use tatzelwurm_proto::actioner::TaskEnd;
use tatzelwurm_proto::task::{TaskInfo, TaskOutput, TaskState, Timestamp};
use tatzelwurm_proto::worker::Assignment;
use tatzelwurm_proto::{Attempt, TaskId};

impl TaskTable {
    /// Tasks in any of `states` (all when empty) of `queue` (any when `None`) with ids above
    /// `after`, in id order, at most `limit` of them, without output. Live tasks come from
    /// memory; finished ones from `store`, except those finished in this round, which memory has
    /// newer. A listing of live states only reads no store; one of a queue reads finished
    /// records page by page until it has `limit` of that queue or the store has no more.
    pub fn list(
        &self,
        states: &[TaskState],
        queue: Option<&str>,
        after: Option<TaskId>,
        limit: usize,
        store: &Store,
    ) -> Result<Vec<TaskInfo>, TableError> {
        let Some(from) = after.map_or(Some(0), |id| id.0.checked_add(1)) else {
            return Ok(Vec::new());
        };
        let wanted = |state: TaskState| states.is_empty() || states.contains(&state);
        // A queue nothing has named has no live task (and its finished ones, if a restart
        // forgot its name, are still found by name in the store).
        let queue_id = queue.map(|name| self.names.find_queue(name));
        let live: Vec<(TaskId, TaskInfo)> = self
            .tasks
            .range_from(TaskId(from))
            .filter(|(id, t)| wanted(self.shown_state(*id, t)))
            .filter(|(_, t)| queue_id.is_none_or(|q| Some(t.queue(&self.names)) == q))
            .take(limit)
            .map(|(id, t)| (id, self.shown_record(id, t)))
            .collect();
        if !states.is_empty() && states.iter().all(|s| !s.is_finished()) {
            return Ok(live.into_iter().map(|(_, info)| info).collect());
        }
        let of_queue = |r: &TaskRecord| queue.is_none_or(|q| r.spec.queue == q);
        let mut recent: Vec<(TaskId, TaskInfo)> = self
            .done
            .iter()
            .filter(|(id, done)| {
                id.0 >= from
                    && wanted(done.state())
                    && queue.is_none_or(|q| done.queue(&self.names) == q)
            })
            .map(|(id, done)| (*id, done.whole(&self.names)))
            .collect();
        recent.sort_unstable_by_key(|(id, _)| *id);
        recent.truncate(limit);
        let mut stored: Vec<(TaskId, TaskInfo)> = Vec::new();
        let mut cursor = after;
        loop {
            let page = store
                .scan(Part::Finished, cursor, limit, states)
                .map_err(|err| TableError::Store(err.to_string()))?;
            let full = page.len() >= limit;
            cursor = page.last().map(|r| r.id).or(cursor);
            stored.extend(page.into_iter().filter(of_queue).map(|r| (r.id, r)));
            if !full || queue.is_none() || stored.len() >= limit {
                break;
            }
        }
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
                Ok(Some(record)) => Ok(record),
                Ok(None) => Err(self.purged_error(vec![id])),
                Err(err) => Err(TableError::Store(err.to_string())),
            },
        }
    }

    /// When task `id`, just handed out as `assignment`, became ready, for the dispatch latency
    /// (`telemetry`): the later of when it was added and its start time, for a first attempt
    /// of a task that runs after nothing. A retry's or a released dependent's moment is not
    /// kept (it would cost memory per task), so those are not measured; a task added without
    /// play, or paused, counts from when it was added.
    pub fn ready_since(&self, id: TaskId, assignment: &Assignment) -> Option<Timestamp> {
        if assignment.attempt != Attempt(1) || !assignment.spec.after.is_empty() {
            return None;
        }
        let task = self.tasks.get(id)?;
        Some(
            task.run_at
                .get()
                .map_or(task.created_at, |at| at.max(task.created_at)),
        )
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
            Some(task) => Some(self.shown_record(id, task)),
            None => self.done.get(&id).map(|done| done.whole(&self.names)),
        }
    }

    /// How the finished tasks `ids` ended, for `Finished` pushes: from the records this round
    /// finished (borrowed, only the result and error copied), or for tasks finished in an
    /// earlier round from `store`. Ids of no finished task (and, should the store fail to
    /// read, the tasks it could not read) are left out.
    pub fn ends(&self, ids: &[TaskId], store: &Store) -> Vec<TaskEnd> {
        ids.iter()
            .filter_map(|id| {
                if let Some(done) = self.done.get(id) {
                    return Some(TaskEnd::from(done.ending()));
                }
                if !self.is_finished(*id) {
                    return None;
                }
                stored(*id, store).map(|record| TaskEnd::from(&record))
            })
            .collect()
    }

    /// The tasks `ids` as listed (without output), for pushes and waiters: from memory, or
    /// for tasks finished in an earlier round from `store`. Ids of no task (and, should the
    /// store fail to read, the tasks it could not read) are left out.
    pub fn infos(&self, ids: &[TaskId], store: &Store) -> Vec<TaskInfo> {
        ids.iter()
            .filter_map(|id| match self.info_in_memory(*id) {
                Some(info) => Some(info),
                None if self.exists(*id) => stored(*id, store),
                None => None,
            })
            .collect()
    }
}

/// Task `id`'s record as stored; `None` if it is not there, or (logged) if the store could not
/// read it.
fn stored(id: TaskId, store: &Store) -> Option<TaskRecord> {
    match store.get(id) {
        Ok(record) => record,
        Err(err) => {
            tracing::error!("cannot read task {id} from the database: {err}");
            None
        }
    }
}
