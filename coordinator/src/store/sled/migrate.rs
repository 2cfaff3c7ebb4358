//! Moving an older sled database to schema 3, when it is opened; `split.rs` goes on from there
//! to schema 5.
//!
//! Schema 2 → 3 only adds the `add_keys` tree: `SledBackend::open` opens (creates) it and flushes
//! before it writes the new version, so a crash leaves a schema 2 database with an empty extra
//! tree, which the next open upgrades again. Schema 1 → 2 is below; a schema 1 database goes
//! through both.
//!
//! Schema 1 kept each task's output inside its record, in tree `tasks`, so every output stayed
//! in the coordinator's memory for as long as it ran. Schema 2 keeps records in `records` and
//! outputs in `outputs`. The move writes only new trees and flips `schema_version` after they
//! are flushed, so a crash at any moment leaves either a complete schema 1 database (and the
//! next open runs the move again from the start) or a complete schema 2 one; `tasks` is
//! dropped only after the flip. The records it writes have the layout of schemas 2 to 4
//! (`v4.rs`), which `split.rs` reads.

use crate::store::v4::{ErrorV4, RecordV4, SpecV4, StateV4};
use crate::store::{decode, encode, StoreError};
use serde::{Deserialize, Serialize};
use tatzelwurm_proto::task::TaskOutput;
use tracing::info;

/// Schema 1's tree of records.
const V1_TASKS_TREE: &str = "tasks";

/// A record as schema 1 stored it: schema 4's record (`RecordV4`) with the output between
/// `error` and `created_at`. Frozen: it describes bytes already on disk.
#[derive(Serialize, Deserialize)]
struct RecordV1 {
    id: u64,
    spec: SpecV4,
    state: StateV4,
    attempt: u32,
    failures: u32,
    crashes: u32,
    retry_at: Option<u64>,
    worker: Option<String>,
    result: Option<String>,
    error: Option<ErrorV4>,
    output: OutputV1,
    created_at: u64,
    started_at: Option<u64>,
    finished_at: Option<u64>,
}

/// A task's output as schema 1 stored it inside the record. Frozen.
#[derive(Serialize, Deserialize)]
struct OutputV1 {
    stdout: String,
    stderr: String,
}

impl RecordV1 {
    /// The schema 2 record and the output that now lives apart from it.
    fn split(self) -> (RecordV4, TaskOutput) {
        let record = RecordV4 {
            id: self.id,
            spec: self.spec,
            state: self.state,
            attempt: self.attempt,
            failures: self.failures,
            crashes: self.crashes,
            retry_at: self.retry_at,
            worker: self.worker,
            result: self.result,
            error: self.error,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        };
        let output = TaskOutput {
            stdout: self.output.stdout,
            stderr: self.output.stderr,
        };
        (record, output)
    }
}

/// Copies every schema 1 record into `records` and its output (if any) into `outputs`, and
/// flushes; the caller then sets the schema version. Safe to run again after a crash.
pub(super) fn from_v1(
    db: &sled::Db,
    records: &sled::Tree,
    outputs: &sled::Tree,
) -> Result<(), StoreError> {
    let old = db.open_tree(V1_TASKS_TREE)?;
    let mut moved = 0usize;
    for entry in old.iter() {
        let (key, value) = entry?;
        let (record, output) = decode::<RecordV1>(&value)?.split();
        records.insert(&key, encode(&record)?)?;
        if output != TaskOutput::default() {
            outputs.insert(record.id.to_be_bytes(), encode(&output)?)?;
        }
        moved += 1;
    }
    db.flush()?;
    info!("moved {moved} tasks from schema 1 to schema 2 (outputs apart from the records)");
    Ok(())
}

/// Drops schema 1's tree once the schema version says 2.
pub(super) fn drop_v1_leftovers(db: &sled::Db) -> Result<(), StoreError> {
    if db
        .tree_names()
        .iter()
        .any(|name| name == V1_TASKS_TREE.as_bytes())
    {
        db.drop_tree(V1_TASKS_TREE)?;
        db.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::QueueRecord;
    use crate::store::v4::PolicyV4;
    use crate::store::{Store, StoreKind, SCHEMA_KEY, SCHEMA_VERSION};
    use std::path::Path;
    use tatzelwurm_proto::task::{TaskSpec, TaskState, Timestamp, DEFAULT_QUEUE};
    use tatzelwurm_proto::TaskId;

    /// Opens the whole store (which goes on to schema 5), retrying a lock held a moment by the
    /// previous `Db` of this process.
    fn reopen(dir: &Path) -> Store {
        crate::store::conformance::reopen(dir, StoreKind::Sled)
    }

    /// The stored schema version.
    fn version(store: &Store) -> u32 {
        store.backend.schema().unwrap()
    }

    fn spec() -> SpecV4 {
        SpecV4 {
            function: "m:f".into(),
            args: "[1]".into(),
            kwargs: "{}".into(),
            policy: PolicyV4 {
                at_most_once: false,
                retries: 0,
                backoff_ms: 1_000,
                timeout_ms: None,
                crash_limit: 5,
            },
        }
    }

    /// A schema 1 record of a completed task that printed `stdout`.
    fn v1(id: u64, stdout: &str) -> RecordV1 {
        RecordV1 {
            id,
            spec: spec(),
            state: StateV4::Completed,
            attempt: 1,
            failures: 0,
            crashes: 0,
            retry_at: None,
            worker: Some("w1".into()),
            result: Some("42".into()),
            error: None,
            output: OutputV1 {
                stdout: stdout.into(),
                stderr: String::new(),
            },
            created_at: 1,
            started_at: Some(2),
            finished_at: Some(3),
        }
    }

    /// A schema 1 database opens (through 2 and 3) as schema 5: every record loads with its
    /// fields (in the default queue), each output is readable apart, the default queue counts
    /// the completed tasks, the old trees are gone, and a second open changes nothing.
    #[test]
    fn a_schema_1_database_is_moved_to_schema_5() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert(SCHEMA_KEY, &1u32.to_be_bytes()).unwrap();
            let tasks = db.open_tree(V1_TASKS_TREE).unwrap();
            for (id, stdout) in [(1, "hello"), (2, "")] {
                let value = encode(&v1(id, stdout)).unwrap();
                tasks.insert(id.to_be_bytes(), value).unwrap();
            }
            db.flush().unwrap();
        }
        for _ in 0..2 {
            let store = reopen(dir.path());
            let loaded = store.load_all().unwrap();
            let ids: Vec<u64> = loaded.tasks.iter().map(|t| t.id.0).collect();
            assert_eq!(ids, vec![1, 2]);
            let first = &loaded.tasks[0];
            assert_eq!(
                (
                    first.state,
                    first.result.as_deref(),
                    first.worker.as_deref()
                ),
                (TaskState::Completed, Some("42"), Some("w1"))
            );
            assert_eq!(first.spec, TaskSpec::call("m:f", "[1]", "{}"));
            assert_eq!(first.finished_at, Some(Timestamp(3)));
            assert_eq!(store.output(TaskId(1)).unwrap().stdout, "hello");
            assert_eq!(store.output(TaskId(2)).unwrap(), TaskOutput::default());
            assert_eq!(loaded.next_task_id, 3);
            let counted = QueueRecord {
                completed: 2,
                ..QueueRecord::default()
            };
            assert_eq!(loaded.queues, vec![(DEFAULT_QUEUE.to_string(), counted)]);
            assert!(store.load().unwrap().tasks.is_empty(), "both finished");
            assert_eq!(version(&store), SCHEMA_VERSION);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            match sled::open(dir.path()) {
                Ok(db) => break db,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(err) => panic!("reopen failed: {err}"),
            }
        };
        let names = db.tree_names();
        for gone in [V1_TASKS_TREE, "records"] {
            assert!(!names.iter().any(|n| n == gone.as_bytes()), "{gone}");
        }
    }

    /// A schema 2 database opens (through 3) as schema 5: its records load converted, it gets
    /// an empty `add_keys` tree, and add keys written then survive a reopen.
    #[tokio::test]
    async fn a_schema_2_database_gets_the_add_keys_tree() {
        use crate::add_keys::{KeyChange, KeyedAdd};
        use crate::store::Batch;
        use tatzelwurm_proto::actioner::AddKey;
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert(SCHEMA_KEY, &2u32.to_be_bytes()).unwrap();
            let records = db.open_tree("records").unwrap();
            let mut created = v1(1, "");
            created.state = StateV4::Created;
            let (record, _) = created.split();
            records
                .insert(1u64.to_be_bytes(), encode(&record).unwrap())
                .unwrap();
            db.flush().unwrap();
        }
        let add = KeyedAdd {
            first: TaskId(1),
            count: 1,
            at: Timestamp(7),
        };
        {
            let store = reopen(dir.path());
            let loaded = store.load().unwrap();
            let tasks = loaded.tasks.decode_all().unwrap();
            assert_eq!(tasks.len(), 1, "created, so live");
            assert_eq!(tasks[0].state, TaskState::Created);
            assert!(loaded.add_keys.is_empty());
            assert!(loaded.queues.is_empty(), "nothing finished");
            assert_eq!(version(&store), SCHEMA_VERSION);
            let batch = Batch {
                add_keys: vec![KeyChange::Put(AddKey([9; 16]), add)],
                ..Batch::default()
            };
            store.apply(batch).await.unwrap();
        }
        let store = reopen(dir.path());
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.add_keys, vec![(AddKey([9; 16]), add)]);
        assert_eq!(loaded.tasks.len(), 1);
    }
}
