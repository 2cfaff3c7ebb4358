//! `TaskRecord`: everything the coordinator keeps about one task, in memory and on disk.
//!
//! A record is the wire's `TaskInfo` (with `output` always `None`: the store keeps output
//! apart so that it never stays in memory), so that a field is added once for the wire and the
//! store together. Its bincode layout is therefore part of the store's schema: changing
//! `TaskInfo` or anything inside it breaks every existing database. Add a new schema version to
//! `store` and a migration when it changes (`store/sled/migrate.rs` holds schema 1's layout,
//! `store/v4.rs` schema 4's). `TaskRecordRef` mirrors it field for field, to read stored records
//! in place and to write live ones without an owned copy of their strings (the task table
//! lends it its interned names and its args, `LiveTask::record_ref`; `store/encoded.rs` encodes
//! its fields in `TaskInfo`'s order, into the same bytes).

use serde::Deserialize;
use tatzelwurm_proto::task::{
    TaskError, TaskInfo, TaskOutput, TaskPolicy, TaskSpec, TaskState, Timestamp, When,
};
use tatzelwurm_proto::{Attempt, TaskId};

/// One task as stored: see the module comment.
pub type TaskRecord = TaskInfo;

/// A `TaskRecord` with borrowed strings. Read in place, its strings borrow from the stored
/// bytes, so that a start decodes a million live records without allocating for each (see
/// `Store::load`); written, they borrow from the task table, so that a round encodes the
/// records of its live tasks without building owned ones only to drop them (`take_changes`).
/// The fields, their order and their types mirror `TaskInfo` exactly (the same bytes decode
/// into either; `EncodedRecords::push` writes one into `TaskInfo`'s bytes); change them all
/// together.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskRecordRef<'a> {
    /// The task's id.
    pub id: TaskId,
    /// Where it is in its life.
    pub state: TaskState,
    /// What it runs.
    #[serde(borrow)]
    pub spec: TaskSpecRef<'a>,
    /// JSON text of the result, once completed.
    pub result: Option<&'a str>,
    /// Why it failed (rare in a live record, so owned: cloned when a live one is written).
    pub error: Option<TaskError>,
    /// Name of the worker of the latest attempt.
    pub worker: Option<&'a str>,
    /// How many times it was handed to a worker.
    pub attempts: Attempt,
    /// Attempts that failed.
    pub failures: u32,
    /// Attempts lost with their worker.
    pub crashes: u32,
    /// When a `waiting` task becomes `ready` again.
    pub retry_at: Option<Timestamp>,
    /// When it was added.
    pub created_at: Timestamp,
    /// When the latest attempt was handed out.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Always `None` in the store (output is kept apart).
    pub output: Option<TaskOutput>,
}

/// `TaskSpec` with borrowed strings, as `TaskRecordRef` needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskSpecRef<'a> {
    /// The function's name.
    pub function: &'a str,
    /// Positional arguments, JSON.
    pub args: &'a str,
    /// Keyword arguments, JSON.
    pub kwargs: &'a str,
    /// How it is retried, fenced and timed.
    pub policy: TaskPolicy,
    /// Its queue.
    pub queue: &'a str,
    /// Its priority.
    pub priority: i8,
    /// Not before this.
    pub run_at: Option<When>,
    /// Tasks that must complete first (owned; empty, so without a heap block, for most).
    pub after: Vec<TaskId>,
}

impl TaskSpecRef<'_> {
    /// The owned spec.
    pub fn to_spec(&self) -> TaskSpec {
        self.clone().into_spec()
    }

    /// The owned spec, `after` moved rather than copied.
    pub fn into_spec(self) -> TaskSpec {
        TaskSpec {
            function: self.function.into(),
            args: self.args.into(),
            kwargs: self.kwargs.into(),
            policy: self.policy,
            queue: self.queue.into(),
            priority: self.priority,
            run_at: self.run_at,
            after: self.after,
        }
    }
}

impl<'a> TaskRecordRef<'a> {
    /// `spec`, borrowed (only `after` is copied).
    pub fn spec_of(spec: &'a TaskSpec) -> TaskSpecRef<'a> {
        TaskSpecRef {
            function: &spec.function,
            args: &spec.args,
            kwargs: &spec.kwargs,
            policy: spec.policy,
            queue: &spec.queue,
            priority: spec.priority,
            run_at: spec.run_at,
            after: spec.after.clone(),
        }
    }

    /// `record` borrowed, with `spec` in place of its own spec (`output` left `None`, as
    /// stored).
    pub fn with_spec(record: &'a TaskRecord, spec: TaskSpecRef<'a>) -> TaskRecordRef<'a> {
        TaskRecordRef {
            id: record.id,
            state: record.state,
            spec,
            result: record.result.as_deref(),
            error: record.error.clone(),
            worker: record.worker.as_deref(),
            attempts: record.attempts,
            failures: record.failures,
            crashes: record.crashes,
            retry_at: record.retry_at,
            created_at: record.created_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            output: None,
        }
    }
}

impl TaskRecordRef<'_> {
    /// The owned record.
    pub fn to_record(&self) -> TaskRecord {
        self.clone().into_record()
    }

    /// The owned record, `error` and the spec's `after` moved rather than copied (`output`
    /// left `None`, as stored).
    pub fn into_record(self) -> TaskRecord {
        TaskRecord {
            id: self.id,
            state: self.state,
            spec: self.spec.into_spec(),
            result: self.result.map(str::to_string),
            error: self.error,
            worker: self.worker.map(str::to_string),
            attempts: self.attempts,
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

/// What the coordinator keeps about one queue beyond its live tasks: its settings, and how many
/// of its tasks finished in each way (finished tasks are not in memory, and counting them in
/// the store at every `queue list` would read every record). Stored under the queue's name;
/// changing it breaks every existing database (bump the store's schema).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct QueueRecord {
    /// Whether dispatch from it is paused.
    pub paused: bool,
    /// At most this many of its tasks assigned at once; 0 for no limit.
    pub limit: u32,
    /// Its tasks that completed.
    pub completed: u64,
    /// Its tasks that failed.
    pub failed: u64,
    /// Its tasks that were killed.
    pub killed: u64,
}
