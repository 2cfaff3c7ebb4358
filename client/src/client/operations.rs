//! The operations requests of `Client` (issue 12): the event log, a task's live output, purging
//! finished tasks and draining a worker by name. Events and output are streams the caller reads
//! at its pace (`EventStream`, `LogStream`); purge and drain answer once.

use super::{chunks, Client};
use crate::error::ClientError;
use crate::event_stream::EventStream;
use crate::log_stream::LogStream;
use crate::session::{Responder, ToSession};
use crate::size::check_size;
use crate::stream::{channel, FrameReceiver};
use tatzelwurm_proto::actioner::{Command, PurgeSelection, Reply, WorkerInfo};
use tatzelwurm_proto::event::{EventFilter, EventsFrom};
use tatzelwurm_proto::limits::MAX_IDS_PER_REQUEST;
use tatzelwurm_proto::task::TaskState;
use tatzelwurm_proto::TaskId;
use tokio::sync::mpsc::error::SendError;

/// What a purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// How many finished tasks it removed, with their results and output.
    pub purged: u64,
    /// Named tasks it left: with their state when they are not finished, `None` when they were
    /// purged before.
    pub unchanged: Vec<(TaskId, Option<TaskState>)>,
}

impl Client {
    /// The event log from `from`, passed through `filter`: without `follow` up to the newest
    /// event and then the end; with it, on as events happen until the stream is dropped, an
    /// error ends it (`Lagged`, the connection lost without `reconnect`), or the client closes.
    /// With `reconnect`, a dropped connection is followed on after the last event handed out
    /// (before the first one, a stream `from: Now` resumes from the new now).
    ///
    /// Returns at once; errors (`EventsGone` for an `After` older than the oldest kept event)
    /// come as the stream's first item. A dropped stream's request stays with the coordinator
    /// until the connection ends (the protocol has no cancel): its frames are dropped on arrival.
    pub fn events(&self, from: EventsFrom, follow: bool, filter: EventFilter) -> EventStream {
        let command = Command::Events {
            from,
            follow,
            filter,
        };
        EventStream::new(self.stream(command), self.address().to_string())
    }

    /// A task's output: the kept output of its latest attempt if it has finished, else what the
    /// running attempt wrote so far; with `follow`, then what it writes as it writes it, until
    /// it finishes. The last page has `done`. A connection lost after the first page ends the
    /// stream with an error (asking again repeats the output from its start).
    pub fn logs(&self, task: TaskId, follow: bool) -> LogStream {
        let command = Command::Logs { task, follow };
        LogStream::new(self.stream(command), task, self.address().to_string())
    }

    /// Removes finished tasks with their results and output, durably. Ids beyond what one
    /// request may carry go as several requests, their answers added up; an id never handed
    /// out fails its request with `UnknownTask`.
    pub async fn purge(&self, selection: PurgeSelection) -> Result<Purged, ClientError> {
        let requests = match selection {
            PurgeSelection::Ids(ids) => chunks(ids, MAX_IDS_PER_REQUEST)
                .into_iter()
                .map(PurgeSelection::Ids)
                .collect(),
            other => vec![other],
        };
        let mut all = Purged::default();
        for selection in requests {
            match self.request(Command::Purge(selection)).await? {
                Reply::Purged { purged, unchanged } => {
                    all.purged += purged;
                    all.unchanged.extend(unchanged);
                }
                other => return Err(self.unexpected(&other, "Purged")),
            }
        }
        Ok(all)
    }

    /// Drains the workers named `name` (or with this connection id): as SIGTERM on their host
    /// does, they get nothing new, finish what they hold and leave. Returns them as they are
    /// now; a name no connected worker has fails with `UnknownWorker`.
    pub async fn drain_worker(&self, name: &str) -> Result<Vec<WorkerInfo>, ClientError> {
        match self.request(Command::DrainWorker(name.into())).await? {
            Reply::Workers(workers) => Ok(workers),
            other => Err(self.unexpected(&other, "Workers")),
        }
    }

    /// Sends a command whose answer is streamed, and returns the stream's receiving end; a
    /// command that cannot be sent ends the stream at once with why.
    fn stream(&self, command: Command) -> FrameReceiver {
        let (sink, frames) = channel();
        if let Err(err) = check_size(&command) {
            sink.finish(Err(err));
            return frames;
        }
        let message = ToSession::Request {
            command: Box::new(command),
            to: Responder::Stream(sink),
        };
        if let Err(SendError(ToSession::Request {
            to: Responder::Stream(sink),
            ..
        })) = self.inner.to_session.send(message)
        {
            sink.finish(Err(self.closed()));
        }
        frames
    }
}

#[cfg(test)]
mod tests;
