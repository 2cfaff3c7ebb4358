//! Messages between the coordinator and a worker after the handshake.
//!
//! Every message carries a batch, so that many tasks or results share one frame and one flush.
//! These types cross the wire: changing one breaks compatibility, bump `PROTOCOL_VERSION`.

use crate::ids::{Attempt, TaskId};
use crate::task::{Outcome, TaskOutput, TaskSpec, Timestamp};
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
    /// Drain, as a SIGTERM on the worker's host asks (`actionwurm worker drain NAME`): the
    /// worker says `Draining`, finishes what it holds, waits until its reports are `Recorded`,
    /// and exits.
    Drain,
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
    /// What running tasks wrote to stdout and stderr since the last `Output`, so that
    /// `task logs --follow` shows it as it is written. Not acknowledged and not stored: the
    /// report carries the whole output that is kept. Coalesced by the worker (a few frames a
    /// second at most), and only for tasks that print. At most `limits::MAX_REPORTS_PER_FRAME`.
    Output(#[serde(deserialize_with = "crate::limits::reports")] Vec<OutputChunk>),
    /// What the worker's slots use now, sent every few heartbeats (and after a slot is
    /// replaced): shown by `worker list`.
    Usage(WorkerUsage),
}

/// A piece of what one attempt of a task wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// The task.
    pub task: TaskId,
    /// Its attempt that wrote it.
    pub attempt: Attempt,
    /// Which stream.
    pub stream: OutputStream,
    /// What was written, in order after the previous chunk of the same attempt and stream.
    pub text: String,
}

/// Standard output or standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputStream {
    /// `sys.stdout`.
    Stdout,
    /// `sys.stderr`.
    Stderr,
}

/// What a worker's slots use, as the worker measured it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerUsage {
    /// When it was measured, by the worker's clock.
    pub at: Timestamp,
    /// One per slot, in slot order.
    pub slots: Vec<SlotUsage>,
    /// `workwurm --max-memory`, in bytes; `None` when there is no limit.
    pub max_memory: Option<u64>,
    /// How many slots it replaced because they passed `max_memory` after a task, since it
    /// started.
    pub memory_replaced: u64,
    /// How many tasks it failed (`MemoryLimit`) because their slot passed `max_memory` while
    /// they ran, since it started.
    pub memory_killed: u64,
}

/// What one slot process uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotUsage {
    /// Its process id (0 while it is being replaced).
    pub pid: u32,
    /// Its resident memory, in bytes.
    pub rss: u64,
    /// Its CPU use since the previous measurement, in thousandths of one core (1000 = one
    /// core busy all the time).
    pub cpu_permille: u32,
    /// How many tasks it is running now.
    pub running: u32,
}
