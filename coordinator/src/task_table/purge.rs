//! Purge: finished tasks removed with their results and output (`task purge`,
//! `--keep-finished`). The table decides which named tasks go (finished ones; live ones and
//! those already purged are left and named), takes them off their queue's finished counts,
//! and hands their ids to the next batch (`Batch.purge`), which removes their records and
//! outputs in the same flush as the queue counts and the `Purged` event. A purged id stays
//! handed out (ids are never reused), so the table can tell a purged task from one that never
//! was: below the next id, neither live nor stored (`TableError::Purged`).

use super::{TableError, TaskTable};
use crate::store::Store;
use tatzelwurm_proto::task::TaskState;
use tatzelwurm_proto::TaskId;

/// What a purge did, as the actioner is told.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// How many finished tasks it removed.
    pub purged: u64,
    /// Named tasks it left: live ones with their state, already purged ones with `None`.
    pub unchanged: Vec<(TaskId, Option<TaskState>)>,
}

impl TaskTable {
    /// Purges the finished tasks among `ids` (every one must have been handed out, or nothing
    /// is purged: `UnknownTasks`). Live tasks are left with their state; tasks purged before
    /// (or twice in this request) are left with `None`. Finished tasks are read from `store`
    /// unless they finished since the last batch.
    pub fn purge(&mut self, ids: &[TaskId], store: &Store) -> Result<Purged, TableError> {
        let missing: Vec<TaskId> = ids.iter().copied().filter(|id| !self.exists(*id)).collect();
        if !missing.is_empty() {
            return Err(self.unknown(missing));
        }
        let mut outcome = Purged::default();
        for &id in ids {
            if let Some(task) = self.tasks.get(id) {
                outcome
                    .unchanged
                    .push((id, Some(self.shown_state(id, task))));
                continue;
            }
            if self.purging.contains(&id) {
                outcome.unchanged.push((id, None));
                continue;
            }
            let found = match self.done.get(&id) {
                Some(done) => Some((done.queue(&self.names).to_string(), done.state())),
                None => store
                    .get(id)
                    .map_err(|err| TableError::Store(err.to_string()))?
                    .map(|record| (record.spec.queue, record.state)),
            };
            match found {
                Some((queue, state)) => {
                    self.remove_finished(id, &queue, state);
                    outcome.purged += 1;
                }
                None => outcome.unchanged.push((id, None)),
            }
        }
        Ok(outcome)
    }

    /// Purges finished tasks a scan of the store found (`retention`), each with its queue and
    /// state as stored; those purged since (in this round) are skipped. Returns how many went.
    pub fn purge_found(&mut self, found: Vec<(TaskId, String, TaskState)>) -> u64 {
        let mut purged = 0;
        for (id, queue, state) in found {
            if !self.exists(id) || self.tasks.contains(id) || self.purging.contains(&id) {
                continue;
            }
            self.remove_finished(id, &queue, state);
            purged += 1;
        }
        purged
    }

    /// Whether some of `ids` were purged: handed out, neither live nor finished since the last
    /// batch, and not in `store`. Checked before a wait or a watch names finished tasks,
    /// which would otherwise be left out of the answer without a word.
    pub fn check_not_purged(&self, ids: &[TaskId], store: &Store) -> Result<(), TableError> {
        let mut purged = Vec::new();
        for &id in ids {
            if !self.exists(id) || self.tasks.contains(id) || self.done.contains_key(&id) {
                continue;
            }
            let gone = self.purging.contains(&id)
                || store
                    .get(id)
                    .map_err(|err| TableError::Store(err.to_string()))?
                    .is_none();
            if gone {
                purged.push(id);
            }
        }
        if purged.is_empty() {
            Ok(())
        } else {
            Err(self.purged_error(purged))
        }
    }

    /// The refusal for `ids` that were purged: the smallest few named, all counted.
    pub(super) fn purged_error(&self, mut ids: Vec<TaskId>) -> TableError {
        ids.sort_unstable();
        ids.dedup();
        TableError::Purged {
            count: ids.len(),
            first: ids.into_iter().take(super::NAMED_IDS).collect(),
        }
    }

    /// Takes finished task `id` of `queue` in `state` off its queue's counts and queues its
    /// removal for the next batch.
    fn remove_finished(&mut self, id: TaskId, queue: &str, state: TaskState) {
        let queue = self.names.queue(queue);
        self.queues.unfinished(queue, state);
        self.purging.insert(id);
    }
}
