//! The task actor's operations commands: `task purge ID...` (finished tasks removed, durably,
//! with a `Purged` event; the scan by age runs off the actor, in `retention`) and
//! `worker drain NAME` (the workers of that name drain as SIGTERM makes them: nothing new goes
//! to them, they are told `Drain`, and a `Draining` event is written).

use super::TasksActor;
use tatzelwurm_proto::actioner::{Failure, FailureKind, Reply};
use tatzelwurm_proto::event::WorkerChange;
use tatzelwurm_proto::worker::ToWorker;
use tatzelwurm_proto::{TaskId, WorkerId};

impl TasksActor {
    /// Purges the finished tasks among `ids` (see `TaskTable::purge`); the answer leaves after
    /// the flush that removed them.
    pub(super) fn purge_ids(&mut self, ids: &[TaskId]) -> Reply {
        match self.table.purge(ids, &self.store) {
            Ok(outcome) => Reply::Purged {
                purged: outcome.purged,
                unchanged: outcome.unchanged,
            },
            Err(err) => Reply::Error(err.failure()),
        }
    }

    /// Marks `worker` draining (nothing new goes to it) and notes a `Draining` event the first
    /// time. Returns how many attempts it still holds, or `None` if it is not connected.
    pub(super) fn drain_worker(&mut self, worker: WorkerId) -> Option<u32> {
        let was = self
            .scheduler
            .list()
            .into_iter()
            .find(|info| info.id == worker)
            .map(|info| info.draining);
        let holds = self.scheduler.drain(worker)?;
        if was == Some(false) {
            if let Some(name) = self.scheduler.name(worker) {
                self.events.worker(worker, name, WorkerChange::Draining);
            }
        }
        Some(holds)
    }

    /// `worker drain NAME`: drains every connected worker that `name` names (its name, or its
    /// connection id), tells each to drain as its SIGTERM would, and answers them as listed.
    /// No such worker: `UnknownWorker`, naming the connected ones.
    pub(super) fn drain_named(&mut self, name: &str) -> Reply {
        let ids = self.scheduler.named(name);
        if ids.is_empty() {
            return Reply::Error(self.unknown_worker(name));
        }
        for &id in &ids {
            self.drain_worker(id);
            if let Some(sender) = self.senders.get(&id) {
                // A closing connection needs no drain: its end requeues what it held.
                let _ = sender.send(ToWorker::Drain);
            }
        }
        let infos = self
            .scheduler
            .list()
            .into_iter()
            .filter(|info| ids.contains(&info.id))
            .collect();
        Reply::Workers(infos)
    }

    /// The refusal of a drain of `name`, which no connected worker has: names those that are.
    fn unknown_worker(&self, name: &str) -> Failure {
        let mut names: Vec<String> = self.scheduler.list().into_iter().map(|w| w.name).collect();
        names.sort();
        names.dedup();
        let known = if names.is_empty() {
            "no worker is connected".to_string()
        } else {
            format!("the connected workers are: {}", names.join(", "))
        };
        Failure::new(
            FailureKind::UnknownWorker,
            format!(
                "no connected worker is named {name:?} or has that id; {known} (see `worker list`)"
            ),
        )
    }
}
