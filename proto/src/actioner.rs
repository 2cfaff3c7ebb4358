//! Requests of an actioner and the coordinator's replies.
//!
//! The CLI and a Python client are both actioners: each request carries a `RequestId` that the
//! reply echoes, so one connection may have many requests under way (a long `Wait` does not
//! block an `Add` sent after it, and one client serves many threads).
//!
//! Two requests are answered more than once. A `List` is answered in pages. An `Add` with
//! `watch` and a `Watch` are answered once (`Added`, `Watching`) and then, as their tasks
//! finish, by `Finished` frames under the same request id, each carrying every task of that
//! request that finished in one coordinator round. A client routes `Finished` by task id: it may
//! arrive before the `Added` of the same request (a task killed in the round that added it).
//!
//! These types cross the wire: changing one breaks compatibility, bump `PROTOCOL_VERSION`.

use crate::event::{Event, EventFilter, EventsFrom};
use crate::ids::{Attempt, RequestId, TaskId, WorkerId};
use crate::queue::{QueueChange, QueueInfo};
use crate::schedule::{ScheduleChange, ScheduleInfo, ScheduleSpec};
use crate::task::{TaskError, TaskInfo, TaskSpec, TaskState, Timestamp};
use crate::worker::{OutputChunk, WorkerUsage};
use serde::{Deserialize, Serialize};

/// How a watched task ended, as `Finished` pushes it: what a handle is resolved from, without
/// the task's spec or output (read those with `Show`). Before protocol 7 a push carried the whole
/// `TaskInfo`: its spec cloned and encoded per task cost the coordinator ~3 µs of CPU per task
/// in W1 through the Python client, and the client as much to decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEnd {
    /// The task.
    pub id: TaskId,
    /// `completed`, `failed` or `killed`.
    pub state: TaskState,
    /// JSON text of the result, when completed.
    pub result: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<TaskError>,
    /// How many times it was handed to a worker.
    pub attempts: Attempt,
}

impl From<&TaskInfo> for TaskEnd {
    fn from(info: &TaskInfo) -> TaskEnd {
        TaskEnd {
            id: info.id,
            state: info.state,
            result: info.result.clone(),
            error: info.error.clone(),
            attempts: info.attempts,
        }
    }
}

/// The answer to a `Wait`: counts, not the waited tasks themselves, so that a wait for a million
/// tasks is one small frame that the coordinator builds without reading a million records back
/// from the store (it counts each task as it finishes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitSummary {
    /// How many waited tasks ended in each finished state (`completed`, `failed`, `killed`);
    /// a state none ended in is left out.
    pub counts: Vec<(TaskState, u64)>,
    /// Every waited task that did not complete (failed or killed), as `Show` describes it
    /// without output, by id.
    pub unsuccessful: Vec<TaskInfo>,
    /// For a wait of every task (`Selection::All`): how many tasks had failed or been killed
    /// before the wait began (not among the waited ones, and not purged since), so that a
    /// client looks them up only when there are some; 0 for a wait by ids.
    pub earlier_unsuccessful: u64,
}

impl WaitSummary {
    /// How many tasks were waited for.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, count)| count).sum()
    }

    /// How many of them ended in `state`.
    pub fn count(&self, state: TaskState) -> u64 {
        self.counts
            .iter()
            .filter(|(s, _)| *s == state)
            .map(|(_, count)| count)
            .sum()
    }

    /// `other` added to this one (a wait sent in several requests), counts summed by state.
    pub fn merge(&mut self, other: WaitSummary) {
        for (state, count) in other.counts {
            match self.counts.iter_mut().find(|(s, _)| *s == state) {
                Some((_, mine)) => *mine += count,
                None => self.counts.push((state, count)),
            }
        }
        self.unsuccessful.extend(other.unsuccessful);
        self.earlier_unsuccessful += other.earlier_unsuccessful;
    }
}

/// One request of an actioner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromActioner {
    /// Echoed in the reply.
    pub request: RequestId,
    /// What to do.
    pub command: Command,
}

/// Which tasks a command is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// Exactly these; an unknown id fails the whole command and changes nothing. At most
    /// `limits::MAX_IDS_PER_REQUEST`.
    Ids(#[serde(deserialize_with = "crate::limits::ids")] Vec<TaskId>),
    /// Every task the command applies to: `created` and `paused` ones for play; `created`,
    /// `ready` and `scheduled` ones for pause; unfinished ones for kill; and for wait every task
    /// that is neither finished nor `created` nor `paused` when the wait begins.
    All,
}

/// What an actioner can ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Add tasks; with `play` they start `ready`, else `created`. Answered with `Added` once
    /// durable. With `watch`, each task's final state is pushed (`Finished`) when it finishes,
    /// so no completion can slip between the add and a later watch.
    Add {
        /// At most `limits::MAX_TASKS_PER_ADD`.
        #[serde(deserialize_with = "crate::limits::tasks")]
        tasks: Vec<TaskSpec>,
        play: bool,
        /// Made by the client, the same when an add is re-sent after a dropped connection: an
        /// add whose key the coordinator has already stored is answered with the ids it created
        /// then, and creates nothing. `None`: no such protection.
        key: Option<AddKey>,
        /// Push `Finished` for these tasks as they finish.
        watch: bool,
    },
    /// Move `created` and `paused` tasks on: to `blocked` while a task they run after has not
    /// completed, else to `scheduled` while their start time is ahead, else to `ready`.
    Play(Selection),
    /// Move `created`, `ready` and `scheduled` tasks to `paused` (a scheduled one keeps its
    /// time for when it is played). Answered with `Changed`.
    Pause(Selection),
    /// End tasks that are not finished: at once when not running, by the worker when running.
    Kill(Selection),
    /// Tasks in any of these states (all tasks when empty), in id order, without output, at
    /// most `MAX_TASKS_PER_LIST` per request: a client reads a longer listing request by
    /// request, each `after` the last id it got. Answered in frames of `Reply::Tasks`.
    List {
        states: Vec<TaskState>,
        /// Only tasks of this queue.
        queue: Option<String>,
        /// Only tasks with ids above this one (the last id of the page before).
        after: Option<TaskId>,
        /// At most this many (0, or more than `limits::MAX_TASKS_PER_LIST`, asks for that cap).
        /// An answer with fewer than asked is the last page.
        limit: u32,
    },
    /// One task with its output.
    Show(TaskId),
    /// Answered when every selected task is finished.
    Wait(Selection),
    /// The connected workers.
    Workers,
    /// Push `Finished` for each of these tasks when it finishes (at once for finished ones).
    /// Answered `Watching` when every id exists; an id that was never handed out fails the
    /// whole watch with `UnknownTask` and registers nothing. At most
    /// `limits::MAX_IDS_PER_REQUEST` ids.
    Watch(#[serde(deserialize_with = "crate::limits::ids")] Vec<TaskId>),
    /// Every queue that has tasks, settings or workers, by name. Answered `Queues`.
    Queues,
    /// Pause, resume or limit one queue, durably; a queue nothing has named is `UnknownQueue`.
    /// Answered `Queues` with the queue as it is now.
    Queue { name: String, change: QueueChange },
    /// Add a schedule, durably; a name already taken is `ScheduleExists`. Answered
    /// `Schedules` with the new schedule.
    AddSchedule(ScheduleSpec),
    /// The schedule of this name (`UnknownSchedule` if none), or every schedule by name.
    /// Answered `Schedules`.
    Schedules(Option<String>),
    /// Pause, resume or remove one schedule, durably. Answered `Schedules` with the schedule
    /// as it is now (as it was, for a removal).
    Schedule {
        name: String,
        change: ScheduleChange,
    },
    /// The event log from `from`, passed through `filter`, in `Reply::Events` frames of
    /// increasing `seq`. Without `follow` the last frame has `more: false`; with it, events
    /// are pushed as their rounds become durable until the connection ends. `Now` with
    /// `follow` is answered first by an empty frame once the watcher is subscribed: every event
    /// after it reaches the watcher. A watcher that
    /// falls far behind is dropped with `FailureKind::Lagged`; an `After` older than the oldest
    /// kept event is `FailureKind::EventsGone`.
    Events {
        from: EventsFrom,
        follow: bool,
        filter: EventFilter,
    },
    /// A task's output: the kept output of its latest attempt if it is finished, else what
    /// its running attempt has written so far; with `follow`, then what it writes as it writes
    /// it, until the task finishes. Answered in `Reply::Logs` frames, the last with `done`.
    Logs { task: TaskId, follow: bool },
    /// Remove finished tasks with their results and output, durably. Answered `Purged`.
    Purge(PurgeSelection),
    /// Drain the workers of this name (or connection id, written as a number): as SIGTERM on
    /// the worker's host does, they get nothing new, finish what they hold, and leave.
    /// Answered `Workers` with the workers drained; a name no connected worker has is
    /// `UnknownWorker`.
    DrainWorker(String),
}

/// Which tasks a purge removes. Only finished tasks (completed, failed, killed) are removed;
/// others are left and named in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurgeSelection {
    /// These tasks; an id never handed out fails the whole purge (`UnknownTask`), one already
    /// purged is counted as left. At most `limits::MAX_IDS_PER_REQUEST`.
    Ids(#[serde(deserialize_with = "crate::limits::ids")] Vec<TaskId>),
    /// Every finished task that finished before this time, in one of `states` (every finished
    /// state when empty).
    FinishedBefore {
        before: Timestamp,
        states: Vec<TaskState>,
    },
}

/// An add's idempotency key: 16 bytes the client draws at random (or derives from a random
/// session key and a counter), so that keys of different clients do not meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AddKey(pub [u8; 16]);

/// One reply frame; a `List` may take several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToActioner {
    /// The request this answers.
    pub request: RequestId,
    /// The answer.
    pub reply: Reply,
}

/// The coordinator's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// The new tasks' ids, in the order they were sent; they are durable.
    Added(Vec<TaskId>),
    /// What a play or a kill did: `changed` moved (durably), `unchanged` were in a state the
    /// command does not apply to and are named with that state.
    Changed {
        changed: Vec<TaskId>,
        unchanged: Vec<(TaskId, TaskState)>,
    },
    /// A page of a list; `more` says further pages follow for the same request.
    Tasks { tasks: Vec<TaskInfo>, more: bool },
    /// One task, with its output.
    Task(Box<TaskInfo>),
    /// The waited tasks are all finished now: how many ended in each state, and those that
    /// did not complete.
    Waited(WaitSummary),
    /// The connected workers.
    Workers(Vec<WorkerInfo>),
    /// A `Watch` is registered; `Finished` frames follow under its request id.
    Watching,
    /// Pushed for an `Add` with `watch` or a `Watch`: these tasks reached a finished state
    /// (durably): how each ended.
    Finished(Vec<TaskEnd>),
    /// Queues, by name.
    Queues(Vec<QueueInfo>),
    /// Schedules, by name.
    Schedules(Vec<ScheduleInfo>),
    /// Events, in increasing `seq`; `more` says further frames follow for the same request
    /// (always, while following).
    Events { events: Vec<Event>, more: bool },
    /// A piece of a task's output, in the order it was written; `done` on the last frame, with
    /// the state the task is in then (finished, unless not following).
    Logs {
        chunks: Vec<OutputChunk>,
        done: Option<TaskState>,
    },
    /// What a purge did: how many finished tasks it removed, and the named tasks it left, with
    /// their state (`None`: already purged).
    Purged {
        purged: u64,
        unchanged: Vec<(TaskId, Option<TaskState>)>,
    },
    /// The request failed and changed nothing.
    Error(Failure),
}

/// Why a request failed: a kind a program can act on (the Python client raises a class per
/// kind) and one sentence for a person that says what failed and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// One sentence: what failed and what to do.
    pub message: String,
}

/// The kinds of failure a request can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// A task id that was never handed out.
    UnknownTask,
    /// The request is malformed or does not apply: a bad function name, a bad selection.
    BadRequest,
    /// The request or its answer is larger than the coordinator accepts.
    TooLarge,
    /// The coordinator is shutting down; try again once it is back.
    Stopping,
    /// The coordinator failed (its store cannot be read, say); the message says what.
    Internal,
    /// A queue that no task, worker or setting has named.
    UnknownQueue,
    /// A schedule name that is not in use.
    UnknownSchedule,
    /// A schedule name that is already in use.
    ScheduleExists,
    /// A task that existed once and was purged (`task purge`, `--keep-finished`): its record,
    /// result and output are gone.
    Purged,
    /// No connected worker has this name or id.
    UnknownWorker,
    /// An event watcher read more slowly than events came and was dropped; the message names
    /// the last sequence number it was sent, to reconnect `--since` it.
    Lagged,
    /// The events asked for (`--since`) are older than the oldest kept; the message names the
    /// oldest kept.
    EventsGone,
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// An unknown task.
    pub fn unknown_task(message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::UnknownTask, message)
    }

    /// A malformed or inapplicable request.
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::BadRequest, message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What `worker list` shows of one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The id of its connection.
    pub id: WorkerId,
    /// Its name (`hostname:pid` unless given).
    pub name: String,
    /// The address it connected from.
    pub address: String,
    /// How many tasks it runs at once.
    pub slots: u32,
    /// Tasks assigned to it and not yet reported, prefetched ones included (its load).
    pub running: u32,
    /// Of `running`, those handed ahead of a free slot (prefetched) that no slot has started.
    pub queued: u32,
    /// Attempts it has reported since it connected.
    pub done: u64,
    /// Its slots' Python version.
    pub python: String,
    /// When it connected.
    pub connected_at: Timestamp,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// How many `async def` tasks one of its slots runs at once.
    pub async_concurrency: u32,
    /// Whether it is draining: finishing what it holds before it leaves, given nothing new.
    pub draining: bool,
    /// Until when this connection gets no tasks because its name kept connecting and dropping
    /// (a backoff that grows with each quick drop); it stays listed after it has passed.
    /// `None` when the connection was not held off.
    pub held_off_until: Option<Timestamp>,
    /// What its slots use, as it last said (`FromWorker::Usage`); `None` until it has.
    pub usage: Option<WorkerUsage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait sent in several requests adds up: counts are summed by state, whatever order
    /// each part lists them in, and the unsuccessful tasks of every part are kept.
    #[test]
    fn wait_summaries_merge_by_state() {
        let info = |id: u64, state: TaskState| {
            TaskInfo::new(TaskId(id), TaskSpec::default(), state, Timestamp(0))
        };
        let mut all = WaitSummary {
            counts: vec![(TaskState::Completed, 3), (TaskState::Failed, 1)],
            unsuccessful: vec![info(4, TaskState::Failed)],
            earlier_unsuccessful: 0,
        };
        all.merge(WaitSummary {
            counts: vec![(TaskState::Killed, 2), (TaskState::Completed, 5)],
            unsuccessful: vec![info(7, TaskState::Killed), info(8, TaskState::Killed)],
            earlier_unsuccessful: 2,
        });
        assert_eq!(all.count(TaskState::Completed), 8);
        assert_eq!(all.count(TaskState::Failed), 1);
        assert_eq!(all.count(TaskState::Killed), 2);
        assert_eq!(all.total(), 11);
        assert_eq!(all.earlier_unsuccessful, 2);
        let ids: Vec<u64> = all.unsuccessful.iter().map(|t| t.id.0).collect();
        assert_eq!(ids, vec![4, 7, 8]);
    }
}
