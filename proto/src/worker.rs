//! Messages between the coordinator and a worker after the handshake.
//!
//! Every message carries a batch, so that many tasks or results share one frame and one flush.
//! These types cross the wire: changing one breaks compatibility, bump `PROTOCOL_VERSION`.

use crate::ids::{Attempt, TaskId};
use crate::task::{Outcome, TaskOutput, TaskSpec};
use serde::{Deserialize, Serialize};

/// One task handed to a worker, fenced by its attempt number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The task to run.
    pub task: TaskId,
    /// Which attempt this is; the worker echoes it in its report.
    pub attempt: Attempt,
    /// What to run.
    pub spec: TaskSpec,
}

/// How one attempt ended, as the worker tells the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The task that ran.
    pub task: TaskId,
    /// The attempt that ran; a report of an attempt that is no longer current is ignored.
    pub attempt: Attempt,
    /// How it ended.
    pub outcome: Outcome,
    /// What it printed.
    pub output: TaskOutput,
}

/// What the coordinator sends a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run these, in order. May be more than the worker's free slots (prefetch): the rest wait
    /// in the worker's queue, and any free slot takes the next one, so a slot has its next task
    /// before it finishes the current one. Each counts toward the worker's load from now.
    Run(Vec<Assignment>),
    /// Stop these attempts now (with any processes they started) and report them `Killed`.
    Kill(Vec<(TaskId, Attempt)>),
    /// These reports are durably recorded; the worker may forget them.
    Recorded(Vec<(TaskId, Attempt)>),
    /// Give these attempts back if no slot has started them yet: another worker sits idle with
    /// nothing ready. The worker drops the ones still queued and answers `Returned` with them;
    /// one already started runs on and is reported as usual (fencing covers the race).
    TakeBack(Vec<(TaskId, Attempt)>),
}

/// What a worker sends the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromWorker {
    /// Attempts that ended; each frees one slot. At most `limits::MAX_REPORTS_PER_FRAME`.
    Reports(#[serde(deserialize_with = "crate::limits::reports")] Vec<Report>),
    /// The worker is alive; these are the attempts it is running now.
    Heartbeat {
        /// The attempts running in its slots.
        #[serde(deserialize_with = "crate::limits::attempts")]
        running: Vec<(TaskId, Attempt)>,
    },
    /// The worker is shutting down gently (its first SIGTERM or ctrl-c): hand it no more tasks;
    /// it finishes those it holds, waits until their reports are `Recorded`, then disconnects.
    /// Sent again after a reconnect, since the new connection starts as an ordinary worker.
    Draining,
    /// These attempts are about to start in a slot (sent before the slot gets them). Only a
    /// started attempt counts as a crash of its task when the worker is lost; one the worker
    /// never started goes back to `ready` with no crash (an at-most-once task fails either
    /// way). A report implies it.
    Started(#[serde(deserialize_with = "crate::limits::attempts")] Vec<(TaskId, Attempt)>),
    /// The answer to `TakeBack`: these attempts were queued here, never started, and are
    /// dropped; the coordinator makes their tasks ready again with no crash counted. Attempts
    /// of a `TakeBack` not named here had started (or were unknown) and are reported as usual.
    Returned(#[serde(deserialize_with = "crate::limits::attempts")] Vec<(TaskId, Attempt)>),
    /// These functions turned out to be coroutine functions (`async def`) when a slot imported
    /// them: from now on each of their tasks counts as 1/`async_concurrency` of a slot toward
    /// this worker's load, so that the coordinator hands it enough of them to fill its event
    /// loops. Sent once per function per connection. At most `limits::MAX_IDS_PER_REQUEST`.
    Coroutines(#[serde(deserialize_with = "crate::limits::ids")] Vec<String>),
}
