//! `TaskRecord`: everything the coordinator keeps about one task, in memory and on disk.
//!
//! This type is stored (bincode, in the store's `records` tree): changing it breaks every
//! existing database. Add a new schema version to `store` and a migration when it must change
//! (`store/sled/migrate.rs` holds schema 1's layout). `TaskRecordRef` mirrors it field for
//! field, to read stored records in place.

use serde::{Deserialize, Serialize};
use tatzelwurm_proto::task::{TaskError, TaskInfo, TaskPolicy, TaskSpec, TaskState, Timestamp};
use tatzelwurm_proto::{Attempt, TaskId};

/// One task as stored: its spec, its state and what its latest attempt produced, except its
/// output, which the store keeps apart so that it never stays in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task's id, also the store key.
    pub id: TaskId,
    /// What it runs.
    pub spec: TaskSpec,
    /// Where it is in its life.
    pub state: TaskState,
    /// How many times it was handed to a worker; the current attempt's fencing token.
    pub attempt: Attempt,
    /// Attempts that failed (raised, crashed their slot, timed out); checked against retries.
    pub failures: u32,
    /// Attempts lost with their worker; checked against the crash limit.
    pub crashes: u32,
    /// When a `waiting` task becomes `ready` again.
    pub retry_at: Option<Timestamp>,
    /// Name of the worker of the latest attempt.
    pub worker: Option<String>,
    /// JSON text of the result, once completed.
    pub result: Option<String>,
    /// Why it failed, once failed.
    pub error: Option<TaskError>,
    /// When it was added.
    pub created_at: Timestamp,
    /// When the latest attempt was handed out.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
}

impl TaskRecord {
    /// A task as it is right after `add`.
    pub fn new(id: TaskId, spec: TaskSpec, state: TaskState, now: Timestamp) -> TaskRecord {
        TaskRecord {
            id,
            spec,
            state,
            attempt: Attempt(0),
            failures: 0,
            crashes: 0,
            retry_at: None,
            worker: None,
            result: None,
            error: None,
            created_at: now,
            started_at: None,
            finished_at: None,
        }
    }

    /// What an actioner is told about this task; without output, which `show` adds from the
    /// store.
    pub fn info(&self) -> TaskInfo {
        self.clone().into_info()
    }

    /// `info`, moving the record's strings instead of copying them (a record read from the
    /// store for an answer is used once).
    pub fn into_info(self) -> TaskInfo {
        TaskInfo {
            id: self.id,
            state: self.state,
            spec: self.spec,
            result: self.result,
            error: self.error,
            worker: self.worker,
            attempts: self.attempt,
            failures: self.failures,
            crashes: self.crashes,
            retry_at: self.retry_at,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            output: None,
        }
    }
}

/// A stored `TaskRecord` read in place: its strings borrow from the stored bytes, so that a
/// start decodes a million live records without allocating for each (see `Store::load`). The
/// fields, their order and their types mirror `TaskRecord` exactly (the same bytes decode into
/// either); change both together.
#[derive(Debug, Deserialize)]
pub struct TaskRecordRef<'a> {
    /// The task's id.
    pub id: TaskId,
    /// What it runs.
    #[serde(borrow)]
    pub spec: TaskSpecRef<'a>,
    /// Where it is in its life.
    pub state: TaskState,
    /// How many times it was handed to a worker.
    pub attempt: Attempt,
    /// Attempts that failed.
    pub failures: u32,
    /// Attempts lost with their worker.
    pub crashes: u32,
    /// When a `waiting` task becomes `ready` again.
    pub retry_at: Option<Timestamp>,
    /// Name of the worker of the latest attempt.
    pub worker: Option<&'a str>,
    /// JSON text of the result, once completed.
    pub result: Option<&'a str>,
    /// Why it failed (rare in a live record, so owned).
    pub error: Option<TaskError>,
    /// When it was added.
    pub created_at: Timestamp,
    /// When the latest attempt was handed out.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
}

/// `TaskSpec` read in place, as `TaskRecordRef` needs it.
#[derive(Debug, Deserialize)]
pub struct TaskSpecRef<'a> {
    /// The function's name.
    pub function: &'a str,
    /// Positional arguments, JSON.
    pub args: &'a str,
    /// Keyword arguments, JSON.
    pub kwargs: &'a str,
    /// How it is retried, fenced and timed.
    pub policy: TaskPolicy,
}

impl TaskRecordRef<'_> {
    /// The owned record.
    pub fn to_record(&self) -> TaskRecord {
        TaskRecord {
            id: self.id,
            spec: TaskSpec {
                function: self.spec.function.into(),
                args: self.spec.args.into(),
                kwargs: self.spec.kwargs.into(),
                policy: self.spec.policy,
            },
            state: self.state,
            attempt: self.attempt,
            failures: self.failures,
            crashes: self.crashes,
            retry_at: self.retry_at,
            worker: self.worker.map(str::to_string),
            result: self.result.map(str::to_string),
            error: self.error.clone(),
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        }
    }
}
