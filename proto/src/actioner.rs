//! Requests of an actioner and the coordinator's replies.
//!
//! The CLI and a Python client are both actioners: each request carries a `RequestId` that the
//! reply echoes, so one connection may have many requests under way (a long `Wait` does not
//! block an `Add` sent after it). These types cross the wire: changing one breaks compatibility,
//! bump `PROTOCOL_VERSION`.

use crate::ids::{RequestId, TaskId, WorkerId};
use crate::task::{TaskInfo, TaskSpec, TaskState, Timestamp};
use serde::{Deserialize, Serialize};

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
    /// Exactly these; an unknown id fails the whole command and changes nothing.
    Ids(Vec<TaskId>),
    /// Every task the command applies to: `created` ones for play, unfinished ones for kill, and
    /// for wait every task that is neither finished nor `created` when the wait begins.
    All,
}

/// What an actioner can ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Add tasks; with `play` they start `ready`, else `created`. Answered once durable.
    Add { tasks: Vec<TaskSpec>, play: bool },
    /// Move `created` tasks to `ready`.
    Play(Selection),
    /// End tasks that are not finished: at once when not running, by the worker when running.
    Kill(Selection),
    /// Tasks in any of these states (all tasks when empty), in id order, without output.
    /// Answered in pages of `Reply::Tasks`.
    List { states: Vec<TaskState> },
    /// One task with its output.
    Show(TaskId),
    /// Answered when every selected task is finished.
    Wait(Selection),
    /// The connected workers.
    Workers,
}

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
    /// The waited tasks, all finished now (without output).
    Waited(Vec<TaskInfo>),
    /// The connected workers.
    Workers(Vec<WorkerInfo>),
    /// The request failed; one sentence that says what and what to do.
    Error(String),
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
    /// Tasks assigned to it and not yet reported.
    pub running: u32,
    /// Attempts it has reported since it connected.
    pub done: u64,
    /// Its slots' Python version.
    pub python: String,
    /// When it connected.
    pub connected_at: Timestamp,
    /// Whether it is draining: finishing what it holds before it leaves, given nothing new.
    pub draining: bool,
}
