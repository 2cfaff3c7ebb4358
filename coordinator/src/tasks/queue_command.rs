//! The task actor's queue commands: `queue list` and `queue pause|resume|limit`. The settings
//! live in the task table's queue table (written with the round's batch, so a change is
//! durable before it is answered); which workers serve a queue is the scheduler's.

use super::TasksActor;
use crate::queues::{unknown_queue, QueueId};
use tatzelwurm_proto::actioner::Failure;
use tatzelwurm_proto::queue::{check_name, QueueChange, QueueInfo};

impl TasksActor {
    /// Every known queue (see `queues`), by name.
    pub(super) fn queue_list(&self) -> Vec<QueueInfo> {
        let mut known = self.known_queues();
        known.sort_by(|a, b| self.table.queue_name(*a).cmp(self.table.queue_name(*b)));
        known
            .into_iter()
            .map(|queue| self.queue_info(queue))
            .collect()
    }

    /// Pauses, resumes or limits queue `name`; a malformed name is a bad request, and a queue
    /// nothing names is refused with the names of those that exist.
    pub(super) fn change_queue(
        &mut self,
        name: &str,
        change: QueueChange,
    ) -> Result<QueueInfo, Failure> {
        check_name(name).map_err(Failure::bad_request)?;
        let queue = self
            .table
            .find_queue(name)
            .filter(|queue| self.is_known(*queue));
        let Some(queue) = queue else {
            let mut names: Vec<String> = self
                .known_queues()
                .into_iter()
                .map(|queue| self.table.queue_name(queue).to_string())
                .collect();
            names.sort();
            return Err(unknown_queue(name, &names));
        };
        self.table.queues_mut().change(queue, change);
        Ok(self.queue_info(queue))
    }

    /// Whether a live task, a setting, a finished count or a connected worker names `queue`.
    fn is_known(&self, queue: QueueId) -> bool {
        self.table.queues().known(queue) || self.scheduler.serves(queue)
    }

    /// Every known queue, by number.
    fn known_queues(&self) -> Vec<QueueId> {
        let served = self.scheduler.served();
        self.table
            .queue_ids()
            .filter(|queue| self.table.queues().known(*queue) || served.contains(queue))
            .collect()
    }

    fn queue_info(&self, queue: QueueId) -> QueueInfo {
        let name = self.table.queue_name(queue);
        self.table
            .queues()
            .info(queue, name, self.scheduler.workers_of(queue))
    }
}
