//! What a task is, the states it moves through, and what the coordinator says about it.
//!
//! These types cross the wire and (inside the coordinator's records) are stored on disk:
//! changing one breaks compatibility. Bump `PROTOCOL_VERSION` and the store's schema version.

use crate::ids::{Attempt, TaskId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a user asks to run: a Python function and its arguments, and where, when and after
/// what it may run.
///
/// Arguments travel as JSON text rather than as a parsed value because bincode cannot carry a
/// self-describing value, and because neither the coordinator nor the worker's Rust side needs
/// to look inside them: only the slot's Python parses them.
///
/// The same struct is the spec inside every stored record (`TaskInfo`): a field added here is
/// added once, for the wire and the store together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// `package.module:function` or `path/to/file.py:function`.
    pub function: String,
    /// A JSON array: the positional arguments.
    pub args: String,
    /// A JSON object: the keyword arguments.
    pub kwargs: String,
    /// What happens when an attempt fails, is lost, or runs too long.
    pub policy: TaskPolicy,
    /// The queue it waits in (`DEFAULT_QUEUE` unless chosen); only workers that serve the queue
    /// run it. Named as `queue::check_name` allows.
    pub queue: String,
    /// Higher runs first, `PRIORITIES` bounds it; first in, first out within one priority.
    pub priority: i8,
    /// Not before this: the task is `scheduled` until then. The coordinator turns a `Delay`
    /// into an `At` when it adds the task, so a stored spec holds `At` (or nothing).
    pub run_at: Option<When>,
    /// Tasks that must complete first: the task is `blocked` until each has. If one fails or is
    /// killed, this task fails (`DependencyFailed`). Ids must exist when the task is added, so
    /// no cycle can form. At most `MAX_AFTER`.
    pub after: Vec<TaskId>,
}

impl Default for TaskSpec {
    /// An empty call (`[]`, `{}`) of no function yet, in the default queue, priority 0, to run
    /// now: fill in `function` (and the rest as needed).
    fn default() -> TaskSpec {
        TaskSpec {
            function: String::new(),
            args: "[]".into(),
            kwargs: "{}".into(),
            policy: TaskPolicy::default(),
            queue: DEFAULT_QUEUE.into(),
            priority: 0,
            run_at: None,
            after: Vec::new(),
        }
    }
}

impl TaskSpec {
    /// A call of `function` with JSON `args` and `kwargs`, with every other field default.
    pub fn call(
        function: impl Into<String>,
        args: impl Into<String>,
        kwargs: impl Into<String>,
    ) -> TaskSpec {
        TaskSpec {
            function: function.into(),
            args: args.into(),
            kwargs: kwargs.into(),
            ..TaskSpec::default()
        }
    }
}

/// The queue of a task (and of a worker) when none is named.
pub const DEFAULT_QUEUE: &str = "default";

/// The priorities a task may have: higher runs first.
pub const PRIORITIES: std::ops::RangeInclusive<i8> = -100..=100;

/// Checks a priority a user gave (any integer) and returns it as stored; the error is the
/// sentence a user reads, the same from the coordinator, the CLI and the Python client.
pub fn check_priority(priority: i64) -> Result<i8, String> {
    i8::try_from(priority)
        .ok()
        .filter(|p| PRIORITIES.contains(p))
        .ok_or_else(|| {
            format!(
                "priority {priority} is out of range; use {} to {} (higher runs first, 0 is the default)",
                PRIORITIES.start(),
                PRIORITIES.end()
            )
        })
}

/// The most dependencies one task may name (`TaskSpec::after`).
pub const MAX_AFTER: usize = 1_000;

/// When a task may start, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum When {
    /// This many milliseconds after the coordinator adds it (by the coordinator's clock).
    Delay(u64),
    /// Not before this moment.
    At(Timestamp),
}

/// How a task is retried, fenced and timed, chosen when it is added.
///
/// At-least-once is the default: a task whose worker is lost while it runs is run again, up to
/// `crash_limit` times. `at_most_once` turns that off for tasks that must never start twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPolicy {
    /// Never start the task twice: if its worker is lost while it runs, it ends `failed`
    /// ("lost with its worker") instead of going back to `ready`.
    pub at_most_once: bool,
    /// How many more attempts a task that raises (or times out) gets.
    pub retries: u32,
    /// Base of the exponential backoff before a retry, in milliseconds: the n-th retry waits
    /// about `backoff_ms * 2^(n-1)`, with jitter so that retries do not arrive in step.
    pub backoff_ms: u64,
    /// An attempt running longer than this many milliseconds is killed and counts as a failure.
    pub timeout_ms: Option<u64>,
    /// How many attempts may be lost with their worker before the task fails, so a task that
    /// kills its worker cannot loop forever.
    pub crash_limit: u32,
}

impl Default for TaskPolicy {
    fn default() -> Self {
        TaskPolicy {
            at_most_once: false,
            retries: 0,
            backoff_ms: 1_000,
            timeout_ms: None,
            crash_limit: DEFAULT_CRASH_LIMIT,
        }
    }
}

/// How many attempts a task may lose with its worker unless told otherwise.
pub const DEFAULT_CRASH_LIMIT: u32 = 5;

/// Where a task is in its life. Spelled in lower case everywhere a person or a script reads it.
///
/// `created` → `ready` (played) → `running` (handed to a worker) → `completed` | `failed`, and
/// `killed` from any state that is not finished. A played task waits `blocked` while a task it
/// runs after has not completed, then `scheduled` until its start time, then `ready`. `paused`
/// (from `created`, `ready` or `scheduled`) waits for `task play`. A failed attempt with retries
/// left goes to `waiting` until its backoff passes, then to `ready`. A running task whose
/// worker is lost goes back to `ready` (or ends `failed` when at-most-once or past its crash
/// limit). DESIGN.md draws the whole machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Added but not yet played: it waits for `task play`.
    Created,
    /// Played, waiting for the tasks it runs after to complete.
    Blocked,
    /// Played, waiting for its start time (`--delay`, `--at`).
    Scheduled,
    /// Held by `task pause` until `task play`; nothing dispatches it.
    Paused,
    /// Played and waiting for a free slot.
    Ready,
    /// Handed to a worker, which runs it in one of its slots.
    Running,
    /// An attempt failed and a retry is due once its backoff has passed.
    Waiting,
    /// The function returned; its result is stored.
    Completed,
    /// The function raised, crashed its interpreter, or returned something that is not JSON.
    Failed,
    /// Ended on a person's request.
    Killed,
}

impl TaskState {
    /// Every state, in the order of a task's life; used to parse and to list them.
    pub const ALL: [TaskState; 10] = [
        TaskState::Created,
        TaskState::Blocked,
        TaskState::Scheduled,
        TaskState::Paused,
        TaskState::Ready,
        TaskState::Running,
        TaskState::Waiting,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Killed,
    ];

    /// The name a person and a script read: lower case, as in the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Created => "created",
            TaskState::Blocked => "blocked",
            TaskState::Scheduled => "scheduled",
            TaskState::Paused => "paused",
            TaskState::Ready => "ready",
            TaskState::Running => "running",
            TaskState::Waiting => "waiting",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Killed => "killed",
        }
    }

    /// A finished task never changes state again; waiters are answered when their tasks are.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Killed
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown task state `{s}`; use one of: {}", names.join(", "))
            })
    }
}

/// Why a task failed, as Python saw it, so that the user can read it without the worker's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// The exception's type, such as `ValueError`, or a name of ours such as `SlotCrashed`.
    pub kind: String,
    /// The exception's message.
    pub message: String,
    /// The full Python traceback as text (empty where there was none, as for a crash).
    pub traceback: String,
}

/// The `TaskError::kind` of a task that failed because a task it ran after failed or was
/// killed; its message names that task.
pub const DEPENDENCY_FAILED: &str = "DependencyFailed";

/// The `TaskError::kind` of an attempt whose slot passed `workwurm --max-memory` while it ran:
/// the slot was killed and replaced. Retried as any failure is.
pub const MEMORY_LIMIT: &str = "MemoryLimit";

/// How one attempt of a task ended, as its worker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The function returned this JSON text.
    Completed { result: String },
    /// The function raised, or the slot running it died.
    Failed { error: TaskError },
    /// The worker stopped the attempt because the coordinator asked it to.
    Killed,
}

/// What a task wrote to its standard output and error while it ran, kept so that a user can
/// read it with `task show`. Long output keeps its tail (the part that usually explains).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutput {
    /// Captured standard output.
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
}

/// Milliseconds since the Unix epoch: when something happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The present moment by the wall clock of the machine that asks.
    pub fn now() -> Timestamp {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Timestamp(millis)
    }

    /// Seconds since the epoch, as scripts reading JSON expect.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

/// Everything the coordinator tells about one task, and also what it stores of one (the store
/// keeps `output` apart and stores `None` there): the record and the wire share one type, so a
/// new field is added once. Its layout is then part of the store's schema as well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// Its state now.
    pub state: TaskState,
    /// What it runs.
    pub spec: TaskSpec,
    /// The JSON text its function returned, once completed.
    pub result: Option<String>,
    /// Why it failed, once failed.
    pub error: Option<TaskError>,
    /// Name of the worker that ran (or runs) its latest attempt.
    pub worker: Option<String>,
    /// How many times it was handed to a worker.
    pub attempts: Attempt,
    /// How many attempts failed (raised, crashed their slot, or timed out).
    pub failures: u32,
    /// How many attempts were lost with their worker.
    pub crashes: u32,
    /// For a `waiting` task: when its retry becomes `ready`.
    pub retry_at: Option<Timestamp>,
    /// When it was added.
    pub created_at: Timestamp,
    /// When its latest attempt was handed to a worker.
    pub started_at: Option<Timestamp>,
    /// When it reached a finished state.
    pub finished_at: Option<Timestamp>,
    /// What its latest attempt printed; left out of lists (`None`) to keep them small.
    pub output: Option<TaskOutput>,
}

impl TaskInfo {
    /// A task as it is right after it was added.
    pub fn new(id: TaskId, spec: TaskSpec, state: TaskState, now: Timestamp) -> TaskInfo {
        TaskInfo {
            id,
            state,
            spec,
            result: None,
            error: None,
            worker: None,
            attempts: Attempt(0),
            failures: 0,
            crashes: 0,
            retry_at: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            output: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Priorities inside the range pass as they are; outside it (and past i8) the sentence
    /// names the range.
    #[test]
    fn priorities() {
        assert_eq!(check_priority(-100), Ok(-100));
        assert_eq!(check_priority(100), Ok(100));
        for bad in [101, -101, 1000, i64::MIN] {
            let err = check_priority(bad).unwrap_err();
            assert!(err.contains("use -100 to 100"), "{err}");
        }
    }

    /// Every state parses back from the name it prints, and a wrong name lists the right ones.
    #[test]
    fn state_names_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>(), Ok(state));
        }
        let err = "done".parse::<TaskState>().unwrap_err();
        assert!(err.contains("completed"), "{err}");
    }
}
