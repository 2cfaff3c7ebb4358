//! Schema 4's task record, frozen, and what it becomes in schema 5.
//!
//! Schemas 2, 3 and 4 stored this one layout (schema 1 had the output inside; see
//! `sled/migrate.rs`): a record with a spec of four fields and a state of seven variants. Schema
//! 5 stores the wire's `TaskInfo` instead, whose spec has a queue, a priority, a start time and
//! dependencies, and whose state has three more variants inserted before `Ready` (so even the
//! state's bincode discriminants moved). The migrations (`split.rs` from schema 3, `rewrite.rs`
//! from schema 4, and through them `sled/migrate.rs` from 1 and 2) decode old bytes with
//! [`RecordV4`] and convert them with [`RecordV4::upgrade`].
//!
//! Frozen: these types describe bytes already on disk. Nothing here uses a type of `proto` or
//! `record.rs` in the layout (ids and times are the bare integers their newtypes encode as), so
//! that a later change there cannot change what an old database decodes to. Never edit them.

use super::writes::Writes;
use super::{Space, StoreError};
use crate::record::{QueueRecord, TaskRecord};
use serde::{Deserialize, Serialize};
use tatzelwurm_proto::task::{
    TaskError, TaskPolicy, TaskSpec, TaskState, Timestamp, DEFAULT_QUEUE,
};
use tatzelwurm_proto::{Attempt, TaskId};

/// A task record as schemas 2 to 4 stored it. Frozen (see the module comment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RecordV4 {
    pub(super) id: u64,
    pub(super) spec: SpecV4,
    pub(super) state: StateV4,
    pub(super) attempt: u32,
    pub(super) failures: u32,
    pub(super) crashes: u32,
    pub(super) retry_at: Option<u64>,
    pub(super) worker: Option<String>,
    pub(super) result: Option<String>,
    pub(super) error: Option<ErrorV4>,
    pub(super) created_at: u64,
    pub(super) started_at: Option<u64>,
    pub(super) finished_at: Option<u64>,
}

/// A task spec as schemas 1 to 4 stored it: the call and its policy, nothing of where or when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SpecV4 {
    pub(super) function: String,
    pub(super) args: String,
    pub(super) kwargs: String,
    pub(super) policy: PolicyV4,
}

/// A task policy as schemas 1 to 4 stored it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct PolicyV4 {
    pub(super) at_most_once: bool,
    pub(super) retries: u32,
    pub(super) backoff_ms: u64,
    pub(super) timeout_ms: Option<u64>,
    pub(super) crash_limit: u32,
}

/// A task state as schemas 1 to 4 stored it: seven variants, in this order (bincode stores the
/// variant's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum StateV4 {
    Created,
    Ready,
    Running,
    Waiting,
    Completed,
    Failed,
    Killed,
}

/// A task error as schemas 1 to 4 stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ErrorV4 {
    pub(super) kind: String,
    pub(super) message: String,
    pub(super) traceback: String,
}

impl StateV4 {
    /// The schema 5 state of the same name.
    fn upgrade(self) -> TaskState {
        match self {
            StateV4::Created => TaskState::Created,
            StateV4::Ready => TaskState::Ready,
            StateV4::Running => TaskState::Running,
            StateV4::Waiting => TaskState::Waiting,
            StateV4::Completed => TaskState::Completed,
            StateV4::Failed => TaskState::Failed,
            StateV4::Killed => TaskState::Killed,
        }
    }
}

impl RecordV4 {
    /// The same task as schema 5 stores it: every field kept, the state of the same name, and
    /// what schema 4 had no way to ask for left at its default (queue `default`, priority 0,
    /// no start time, no dependencies).
    pub(super) fn upgrade(self) -> TaskRecord {
        let policy = self.spec.policy;
        let spec = TaskSpec {
            function: self.spec.function,
            args: self.spec.args,
            kwargs: self.spec.kwargs,
            policy: TaskPolicy {
                at_most_once: policy.at_most_once,
                retries: policy.retries,
                backoff_ms: policy.backoff_ms,
                timeout_ms: policy.timeout_ms,
                crash_limit: policy.crash_limit,
            },
            queue: DEFAULT_QUEUE.into(),
            priority: 0,
            run_at: None,
            after: Vec::new(),
        };
        TaskRecord {
            id: TaskId(self.id),
            state: self.state.upgrade(),
            spec,
            result: self.result,
            error: self.error.map(|error| TaskError {
                kind: error.kind,
                message: error.message,
                traceback: error.traceback,
            }),
            worker: self.worker,
            attempts: Attempt(self.attempt),
            failures: self.failures,
            crashes: self.crashes,
            retry_at: self.retry_at.map(Timestamp),
            created_at: Timestamp(self.created_at),
            started_at: self.started_at.map(Timestamp),
            finished_at: self.finished_at.map(Timestamp),
            output: None,
        }
    }
}

/// How many of a schema 4 database's tasks finished in each way. Schema 5 keeps these counts per
/// queue (`QueueRecord`), because it never reads the finished records to answer `queue list`;
/// every task of schema 4 is in the default queue, so a migration counts what it converts and
/// writes the default queue's record with its new schema version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) completed: u64,
    pub(super) failed: u64,
    pub(super) killed: u64,
}

impl Tally {
    /// Counts one converted record (one that is not finished counts nowhere).
    pub(super) fn count(&mut self, state: TaskState) {
        match state {
            TaskState::Completed => self.completed += 1,
            TaskState::Failed => self.failed += 1,
            TaskState::Killed => self.killed += 1,
            _ => {}
        }
    }

    /// Adds the write of the default queue's record holding these counts to `writes`; none
    /// when nothing finished (a queue with no record has no settings and no finished tasks).
    pub(super) fn queue_write(&self, writes: &mut Writes) -> Result<(), StoreError> {
        if *self == Tally::default() {
            return Ok(());
        }
        let record = QueueRecord {
            completed: self.completed,
            failed: self.failed,
            killed: self.killed,
            ..QueueRecord::default()
        };
        writes.put_encoded(Space::Queues, DEFAULT_QUEUE.as_bytes(), &record)
    }
}

/// The schema 4 record of a record of this schema, for tests that write an old database.
/// Panics for what schema 4 could not hold (a state it did not have, a queue, a start time).
#[cfg(test)]
pub(super) fn downgrade(record: &TaskRecord) -> RecordV4 {
    let spec = &record.spec;
    assert!(
        spec.queue == DEFAULT_QUEUE && spec.priority == 0,
        "schema 4 has no queues or priorities"
    );
    assert!(
        spec.run_at.is_none() && spec.after.is_empty(),
        "schema 4 has no start times or dependencies"
    );
    let state = match record.state {
        TaskState::Created => StateV4::Created,
        TaskState::Ready => StateV4::Ready,
        TaskState::Running => StateV4::Running,
        TaskState::Waiting => StateV4::Waiting,
        TaskState::Completed => StateV4::Completed,
        TaskState::Failed => StateV4::Failed,
        TaskState::Killed => StateV4::Killed,
        other => panic!("schema 4 has no state {other}"),
    };
    RecordV4 {
        id: record.id.0,
        spec: SpecV4 {
            function: spec.function.clone(),
            args: spec.args.clone(),
            kwargs: spec.kwargs.clone(),
            policy: PolicyV4 {
                at_most_once: spec.policy.at_most_once,
                retries: spec.policy.retries,
                backoff_ms: spec.policy.backoff_ms,
                timeout_ms: spec.policy.timeout_ms,
                crash_limit: spec.policy.crash_limit,
            },
        },
        state,
        attempt: record.attempts.0,
        failures: record.failures,
        crashes: record.crashes,
        retry_at: record.retry_at.map(|at| at.0),
        worker: record.worker.clone(),
        result: record.result.clone(),
        error: record.error.as_ref().map(|error| ErrorV4 {
            kind: error.kind.clone(),
            message: error.message.clone(),
            traceback: error.traceback.clone(),
        }),
        created_at: record.created_at.0,
        started_at: record.started_at.map(|at| at.0),
        finished_at: record.finished_at.map(|at| at.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::decode;

    /// The bytes a schema 4 coordinator wrote for one record, spelled out by hand from its
    /// `TaskRecord` (bincode's standard configuration: variable-length integers, a length before
    /// each string, a byte before each option, the variant's index for an enum), decode into
    /// the frozen layout and upgrade to the same task in schema 5.
    #[test]
    fn schema_4_bytes_decode_and_upgrade() {
        #[rustfmt::skip]
        let bytes: Vec<u8> = [
            &[7][..],                               // id
            &[3, b'm', b':', b'f'],                 // spec.function
            &[2, b'[', b']'],                       // spec.args
            &[2, b'{', b'}'],                       // spec.kwargs
            &[0, 2, 251, 0xe8, 0x03, 1, 30, 5],     // policy: at_most_once .. crash_limit
            &[3],                                   // state: Waiting, the 4th of 7
            &[1, 1, 0],                             // attempt, failures, crashes
            &[1, 99],                               // retry_at
            &[1, 1, b'w'],                          // worker
            &[0],                                   // result
            &[1, 1, b'E', 1, b'm', 0],              // error
            &[5, 1, 6, 0],                          // created_at, started_at, finished_at
        ]
        .concat();
        let old: RecordV4 = decode(&bytes).unwrap();
        let mut spec = TaskSpec::call("m:f", "[]", "{}");
        spec.policy = TaskPolicy {
            at_most_once: false,
            retries: 2,
            backoff_ms: 1000,
            timeout_ms: Some(30),
            crash_limit: 5,
        };
        let mut expected = TaskRecord::new(TaskId(7), spec, TaskState::Waiting, Timestamp(5));
        expected.attempts = Attempt(1);
        expected.failures = 1;
        expected.retry_at = Some(Timestamp(99));
        expected.worker = Some("w".into());
        expected.error = Some(TaskError {
            kind: "E".into(),
            message: "m".into(),
            traceback: String::new(),
        });
        expected.started_at = Some(Timestamp(6));
        assert_eq!(old.clone().upgrade(), expected);
        assert_eq!(downgrade(&expected), old, "the test helper is the inverse");
    }

    /// Every old state becomes the new state of the same name, finished or not as before.
    #[test]
    fn each_state_keeps_its_name() {
        let old = [
            StateV4::Created,
            StateV4::Ready,
            StateV4::Running,
            StateV4::Waiting,
            StateV4::Completed,
            StateV4::Failed,
            StateV4::Killed,
        ];
        for (index, state) in old.into_iter().enumerate() {
            let bytes = super::super::encode(&state).unwrap();
            assert_eq!(bytes, vec![index as u8], "{state:?} keeps its discriminant");
            let new = state.upgrade();
            assert_eq!(format!("{state:?}").to_lowercase(), new.as_str());
        }
    }

    /// The tally counts finished records only and becomes the default queue's record.
    #[test]
    fn the_tally_becomes_the_default_queue() {
        let mut tally = Tally::default();
        let mut writes = Writes::default();
        tally.queue_write(&mut writes).unwrap();
        assert!(writes.is_empty(), "nothing finished");
        for state in [
            TaskState::Ready,
            TaskState::Completed,
            TaskState::Completed,
            TaskState::Failed,
            TaskState::Killed,
        ] {
            tally.count(state);
        }
        tally.queue_write(&mut writes).unwrap();
        assert_eq!(writes.len(), 1);
        let write = writes.iter().next().unwrap();
        assert_eq!(
            (write.space, write.key),
            (Space::Queues, b"default".as_slice())
        );
        let record: QueueRecord = decode(write.value.unwrap()).unwrap();
        assert_eq!(
            (
                record.completed,
                record.failed,
                record.killed,
                record.paused,
                record.limit
            ),
            (2, 1, 1, false, 0)
        );
    }
}
