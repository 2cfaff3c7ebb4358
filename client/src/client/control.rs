//! The queue and schedule requests of `Client`: list, pause, resume and limit queues; add,
//! list, pause, resume and remove schedules. Each answers with the queue or schedule as it is
//! afterwards, so a caller can show the change without asking again.

use super::Client;
use crate::error::ClientError;
use tatzelwurm_proto::actioner::{Command, Reply};
use tatzelwurm_proto::queue::{QueueChange, QueueInfo};
use tatzelwurm_proto::schedule::{ScheduleChange, ScheduleInfo, ScheduleSpec};

impl Client {
    /// Every queue that tasks, workers or settings name, by name, with its counts by state.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>, ClientError> {
        match self.request(Command::Queues).await? {
            Reply::Queues(queues) => Ok(queues),
            other => Err(self.unexpected(&other, "Queues")),
        }
    }

    /// Pauses, resumes or limits one queue, durably, and returns it as it is now; a queue that
    /// nothing names fails with `UnknownQueue`.
    pub async fn queue(&self, name: &str, change: QueueChange) -> Result<QueueInfo, ClientError> {
        let command = Command::Queue {
            name: name.into(),
            change,
        };
        match self.request(command).await? {
            Reply::Queues(queues) => self.one(queues, "Queues"),
            other => Err(self.unexpected(&other, "Queues")),
        }
    }

    /// Adds a schedule, durably, and returns it with its first time; a name already taken
    /// fails with `ScheduleExists`, a bad trigger with `BadRequest`.
    pub async fn add_schedule(&self, spec: ScheduleSpec) -> Result<ScheduleInfo, ClientError> {
        match self.request(Command::AddSchedule(spec)).await? {
            Reply::Schedules(schedules) => self.one(schedules, "Schedules"),
            other => Err(self.unexpected(&other, "Schedules")),
        }
    }

    /// The schedule named `name` (`UnknownSchedule` if there is none), or every schedule by
    /// name.
    pub async fn schedules(&self, name: Option<&str>) -> Result<Vec<ScheduleInfo>, ClientError> {
        match self
            .request(Command::Schedules(name.map(str::to_owned)))
            .await?
        {
            Reply::Schedules(schedules) => Ok(schedules),
            other => Err(self.unexpected(&other, "Schedules")),
        }
    }

    /// Pauses, resumes or removes one schedule, durably, and returns it as it is now (as it
    /// was, for a removal); an unknown name fails with `UnknownSchedule`.
    pub async fn schedule(
        &self,
        name: &str,
        change: ScheduleChange,
    ) -> Result<ScheduleInfo, ClientError> {
        let command = Command::Schedule {
            name: name.into(),
            change,
        };
        match self.request(command).await? {
            Reply::Schedules(schedules) => self.one(schedules, "Schedules"),
            other => Err(self.unexpected(&other, "Schedules")),
        }
    }

    /// The one item a reply about one queue or schedule carries; any other count is a
    /// coordinator of another build.
    fn one<T>(&self, mut items: Vec<T>, kind: &str) -> Result<T, ClientError> {
        match (items.pop(), items.is_empty()) {
            (Some(item), true) => Ok(item),
            (found, _) => Err(ClientError::Unexpected {
                addr: self.inner.address.clone(),
                detail: format!(
                    "answered {kind} with {} entries where one was expected",
                    items.len() + usize::from(found.is_some())
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
