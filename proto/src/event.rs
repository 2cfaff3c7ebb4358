//! The event log: every state change of a task and every worker joining, draining or leaving,
//! numbered by a durable, increasing sequence number (`seq`).
//!
//! The coordinator writes a round's events in the same batch as the changes they describe and
//! tells subscribers only after that batch is durable, so a watcher that reconnects with
//! `EventsFrom::After(last seq it saw)` misses nothing and sees nothing twice. Sequence numbers
//! start at 1 and never repeat, across restarts too; the oldest events are dropped by retention
//! (`tatzelwurm --keep-events`).
//!
//! These types cross the wire and are stored (the store's `events` key space): changing one
//! breaks compatibility, bump `PROTOCOL_VERSION` and the store's schema version. A task event's
//! queue and worker names are `Arc<str>`, written and read as plain strings (the same bytes as
//! `String`): the coordinator makes an event per task change, and sharing the names it already
//! holds spares it an allocation per name per event.

use crate::ids::{Attempt, TaskId, WorkerId};
use crate::task::{TaskState, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One thing that happened, in the order of its `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its place in the log: 1 for the first event ever, one more for each next.
    pub seq: u64,
    /// When it happened, by the coordinator's clock.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A task was written in a new state (added, played, paused, handed to a worker, retried,
    /// finished, killed) or, for `TaskState::Running` with a new attempt, handed out again.
    Task {
        /// The task.
        id: TaskId,
        /// Its queue.
        queue: Arc<str>,
        /// The state it is in now.
        state: TaskState,
        /// Its latest attempt (0 before the first).
        attempt: Attempt,
        /// The worker that runs (or ran) that attempt, by name.
        worker: Option<Arc<str>>,
        /// For a failed task: the error's kind (`ValueError`, `Timeout`, `MemoryLimit`, ...).
        error: Option<String>,
    },
    /// Finished tasks were removed with their results and output (`task purge` or
    /// `--keep-finished`); this many, in one round.
    Purged {
        /// How many tasks.
        count: u64,
    },
    /// A worker joined, started draining, or left.
    Worker {
        /// Its connection's id.
        id: WorkerId,
        /// Its name.
        name: String,
        /// What happened.
        change: WorkerChange,
    },
}

/// What happened to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkerChange {
    /// It connected and was welcomed.
    Joined,
    /// It is draining: it gets nothing new and leaves once what it holds is recorded.
    Draining,
    /// Its connection ended (or it was taken for dead); what it held is requeued.
    Left,
}

impl WorkerChange {
    /// The word the CLI and JSON print.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerChange::Joined => "joined",
            WorkerChange::Draining => "draining",
            WorkerChange::Left => "left",
        }
    }
}

/// Where a listing of events starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventsFrom {
    /// The oldest event kept.
    Start,
    /// The first event after this sequence number (the last one a watcher saw).
    After(u64),
    /// The next event to happen (only with `follow`; without, the answer is empty).
    Now,
}

/// Which events a watcher wants; `None` fields match every event. A filter on a task or queue
/// passes only task events of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only events of this task.
    pub task: Option<TaskId>,
    /// Only events of tasks of this queue.
    pub queue: Option<String>,
}

impl EventFilter {
    /// Whether `event` passes.
    pub fn passes(&self, event: &Event) -> bool {
        if self.task.is_none() && self.queue.is_none() {
            return true;
        }
        match &event.kind {
            EventKind::Task { id, queue, .. } => {
                self.task.is_none_or(|want| want == *id)
                    && self.queue.as_deref().is_none_or(|want| want == &**queue)
            }
            EventKind::Purged { .. } | EventKind::Worker { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_event(id: u64, queue: &str) -> Event {
        Event {
            seq: id,
            at: Timestamp(0),
            kind: EventKind::Task {
                id: TaskId(id),
                queue: queue.into(),
                state: TaskState::Ready,
                attempt: Attempt(0),
                worker: None,
                error: None,
            },
        }
    }

    /// An empty filter passes everything; a task or queue filter passes only that task's or
    /// queue's task events.
    #[test]
    fn filters() {
        let worker = Event {
            seq: 9,
            at: Timestamp(0),
            kind: EventKind::Worker {
                id: WorkerId(1),
                name: "w".into(),
                change: WorkerChange::Joined,
            },
        };
        let all = EventFilter::default();
        assert!(all.passes(&task_event(1, "default")) && all.passes(&worker));
        let task = EventFilter {
            task: Some(TaskId(2)),
            queue: None,
        };
        assert!(task.passes(&task_event(2, "a")));
        assert!(!task.passes(&task_event(1, "a")) && !task.passes(&worker));
        let queue = EventFilter {
            task: None,
            queue: Some("a".into()),
        };
        assert!(queue.passes(&task_event(1, "a")));
        assert!(!queue.passes(&task_event(1, "b")) && !queue.passes(&worker));
    }
}
