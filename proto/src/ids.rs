//! Typed ids. A bare `u64` could be a task, a worker or a request; these newtypes make the
//! compiler keep them apart. All of them cross the wire and are stored on disk: changing their
//! representation breaks compatibility (bump `PROTOCOL_VERSION` and the store's schema version).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies a task for its whole life. Handed out by the coordinator in increasing order and
/// never reused, also across restarts (the next id is persisted with the tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId(pub u64);

/// Identifies one connection of a worker. A worker that reconnects gets a new id, so nothing
/// meant for its old connection can be mistaken for the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkerId(pub u64);

/// Counts the times a task has been handed to a worker, starting at 1. It is the fencing token:
/// a result or heartbeat that names an older attempt than the task's current one is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attempt(pub u32);

/// Chosen by an actioner for each request and echoed in the reply, so that one connection can
/// have many requests under way (a Python client awaiting several results, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Attempt {
    /// The attempt after this one: what the next hand-out of the task is fenced with.
    pub fn next(self) -> Attempt {
        Attempt(self.0 + 1)
    }
}
