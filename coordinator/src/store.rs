//! The durable store: the only module that knows sled.
//!
//! Layout (schema version 3), in one sled database directory:
//! - tree `meta`: `schema_version` → u32 big-endian; `next_task_id` → u64 big-endian.
//! - tree `records`: task id as u64 big-endian (so keys sort by id) → bincode of `TaskRecord`.
//! - tree `outputs`: task id as u64 big-endian → bincode of the `TaskOutput` of the task's
//!   latest reported attempt. Kept apart from the records so that the coordinator never holds
//!   output in memory: up to 512 KiB per task, read only by `task show`.
//! - tree `add_keys` (new in schema 3): an add's idempotency key (16 bytes) → 24 bytes, three
//!   u64 big-endian: the first id the add got, how many tasks it added, and when (ms since the
//!   epoch). See `add_keys.rs` for how long keys are kept.
//!
//! Schema 1 kept the output inside each record (tree `tasks`); schema 2 had no `add_keys`.
//! `migrate` moves such a database to schema 3 when it is opened.
//!
//! The interface is deliberately narrow — open, load every record, read one output, apply a
//! batch durably — so a second backend fits in one file. `apply` returns only after sled's flush covers the batch:
//! that is the moment a change may be told to anyone. A batch that records add keys writes them,
//! the records and the id counter in one sled transaction, which sled recovers all or nothing:
//! a key is never durable without its tasks, nor tasks without their key. sled's flush is
//! `sync_file_range`, which survives a killed process but not a power cut (see DESIGN.md).

mod migrate;

use crate::add_keys::{KeyChange, KeyedAdd};
use crate::record::TaskRecord;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{TransactionError, Transactional};
use std::path::{Path, PathBuf};
use tatzelwurm_proto::actioner::AddKey;
use tatzelwurm_proto::task::{TaskOutput, Timestamp};
use tatzelwurm_proto::TaskId;
use thiserror::Error;

/// The schema this build writes. A database of a newer schema is refused, never rewritten; an
/// older one is migrated.
pub const SCHEMA_VERSION: u32 = 3;

/// sled's page cache, instead of its default of 1 GiB. sled counts pages at their size on disk,
/// so this bounds the cached records; a large value (an output) is held in memory beyond it
/// once written or read until the coordinator restarts (measured: 500 outputs of 200 KB raised
/// the resident size by 100 MB with this limit or one of 8 MiB).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Tree names of schema 3.
const RECORDS_TREE: &str = "records";
const OUTPUTS_TREE: &str = "outputs";
const ADD_KEYS_TREE: &str = "add_keys";

const SCHEMA_KEY: &[u8] = b"schema_version";
const NEXT_ID_KEY: &[u8] = b"next_task_id";

/// Why the store failed; each reads as one sentence for the operator.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error("the database at {0} is in use by another process (is another tatzelwurm running on it?); stop that coordinator or pass another --db")]
    Locked(PathBuf),
    /// The database was written by a newer tatzelwurm.
    #[error("the database at {path} has schema version {found}, newer than the {SCHEMA_VERSION} this tatzelwurm understands; run the newer tatzelwurm that wrote it")]
    NewerSchema { path: PathBuf, found: u32 },
    /// The directory cannot be opened as a database.
    #[error("cannot open the database at {path}: {cause}; check that the path is a directory tatzelwurm may write")]
    Open { path: PathBuf, cause: sled::Error },
    /// A record on disk does not decode.
    #[error("the database holds a record that cannot be read ({0}); it may be damaged")]
    Corrupt(String),
    /// Reading or writing failed after opening.
    #[error("the database failed: {0}")]
    Sled(#[from] sled::Error),
}

/// Everything on disk, as loaded at start.
pub struct Loaded {
    /// Every task, in id order.
    pub tasks: Vec<TaskRecord>,
    /// The first id never handed out.
    pub next_task_id: u64,
    /// Every stored add key, in key order.
    pub add_keys: Vec<(AddKey, KeyedAdd)>,
}

/// A set of changes that become durable together.
#[derive(Default)]
pub struct Batch {
    /// Records to write (insert or replace).
    pub tasks: Vec<TaskRecord>,
    /// Outputs to write (insert or replace), each the latest reported attempt's of its task.
    pub outputs: Vec<(TaskId, TaskOutput)>,
    /// The new first-unused id, when ids were handed out.
    pub next_task_id: Option<u64>,
    /// Add keys recorded or forgotten, in order; written atomically with `tasks`.
    pub add_keys: Vec<KeyChange>,
}

impl Batch {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.outputs.is_empty()
            && self.next_task_id.is_none()
            && self.add_keys.is_empty()
    }
}

/// The open database.
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    records: sled::Tree,
    outputs: sled::Tree,
    add_keys: sled::Tree,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a stored value.
fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, bincode_config())
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Decodes a stored value.
fn decode<T: DeserializeOwned>(raw: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(raw, bincode_config())
        .map(|(value, _)| value)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    /// Opens (or creates) the database in `dir`, refusing a locked one or a newer schema.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.to_path_buf();
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io) if is_lock_error(io) => StoreError::Locked(path.clone()),
                other => StoreError::Open {
                    path: path.clone(),
                    cause: other,
                },
            })?;
        let meta = db.open_tree("meta")?;
        // A database without a version is new; it gets this build's.
        let found = match meta.get(SCHEMA_KEY)? {
            Some(raw) => Some(u32::from_be_bytes(
                raw.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("schema_version".into()))?,
            )),
            None => None,
        };
        let found_or_new = found.unwrap_or(SCHEMA_VERSION);
        if found_or_new > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path,
                found: found_or_new,
            });
        }
        let records = db.open_tree(RECORDS_TREE)?;
        let outputs = db.open_tree(OUTPUTS_TREE)?;
        if found_or_new < 2 {
            migrate::from_v1(&db, &records, &outputs)?;
        }
        // Schema 3 only adds the `add_keys` tree: opening it creates it, and the flush below
        // makes it durable before the version says 3.
        let add_keys = db.open_tree(ADD_KEYS_TREE)?;
        if found != Some(SCHEMA_VERSION) {
            db.flush()?;
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            db.flush()?;
        }
        migrate::drop_v1_leftovers(&db)?;
        Ok(Store {
            db,
            meta,
            records,
            outputs,
            add_keys,
        })
    }

    /// Reads every task record (outputs stay on disk) and the id counter.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let mut tasks = Vec::with_capacity(self.records.len());
        for entry in self.records.iter() {
            let (_, value) = entry?;
            tasks.push(decode::<TaskRecord>(&value)?);
        }
        let stored_next = match self.meta.get(NEXT_ID_KEY)? {
            Some(raw) => u64::from_be_bytes(
                raw.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("next_task_id".into()))?,
            ),
            None => 1,
        };
        let after_last = tasks.last().map_or(1, |t: &TaskRecord| t.id.0 + 1);
        let mut add_keys = Vec::with_capacity(self.add_keys.len());
        for entry in self.add_keys.iter() {
            let (key, value) = entry?;
            add_keys.push(decode_add_key(&key, &value)?);
        }
        Ok(Loaded {
            tasks,
            next_task_id: stored_next.max(after_last),
            add_keys,
        })
    }

    /// What the latest reported attempt of task `id` printed; empty if none was reported.
    pub fn output(&self, id: TaskId) -> Result<TaskOutput, StoreError> {
        match self.outputs.get(task_key(id))? {
            Some(raw) => decode(&raw),
            None => Ok(TaskOutput::default()),
        }
    }

    /// Writes the batch and returns once it is flushed: only then may anyone be told.
    pub async fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writes = sled::Batch::default();
        for record in &batch.tasks {
            writes.insert(&task_key(record.id), encode(record)?);
        }
        if batch.add_keys.is_empty() {
            if let Some(next) = batch.next_task_id {
                self.meta.insert(NEXT_ID_KEY, &next.to_be_bytes())?;
            }
            self.records.apply_batch(writes)?;
        } else {
            let mut keys = sled::Batch::default();
            for change in &batch.add_keys {
                match change {
                    KeyChange::Put(key, add) => keys.insert(&key.0, &encode_add_key(add)),
                    KeyChange::Remove(key) => keys.remove(&key.0),
                }
            }
            (&self.meta, &self.records, &self.add_keys)
                .transaction(|(meta, records, add_keys)| {
                    if let Some(next) = batch.next_task_id {
                        meta.insert(NEXT_ID_KEY, &next.to_be_bytes())?;
                    }
                    records.apply_batch(&writes)?;
                    add_keys.apply_batch(&keys)?;
                    Ok(())
                })
                .map_err(|err: TransactionError<()>| match err {
                    TransactionError::Storage(err) => StoreError::Sled(err),
                    TransactionError::Abort(()) => {
                        StoreError::Sled(sled::Error::Unsupported("aborted".into()))
                    }
                })?;
        }
        if !batch.outputs.is_empty() {
            let mut writes = sled::Batch::default();
            for (id, output) in &batch.outputs {
                writes.insert(&task_key(*id), encode(output)?);
            }
            self.outputs.apply_batch(writes)?;
        }
        self.db.flush_async().await?;
        Ok(())
    }
}

fn task_key(id: TaskId) -> [u8; 8] {
    id.0.to_be_bytes()
}

/// The stored value of an add key: first id, count, time, each u64 big-endian. Stored bytes:
/// changing this layout breaks every database; bump `SCHEMA_VERSION` and migrate.
fn encode_add_key(add: &KeyedAdd) -> [u8; 24] {
    let mut value = [0u8; 24];
    value[..8].copy_from_slice(&add.first.0.to_be_bytes());
    value[8..16].copy_from_slice(&add.count.to_be_bytes());
    value[16..].copy_from_slice(&add.at.0.to_be_bytes());
    value
}

fn decode_add_key(key: &[u8], value: &[u8]) -> Result<(AddKey, KeyedAdd), StoreError> {
    let corrupt = || StoreError::Corrupt("an add key".into());
    let key: [u8; 16] = key.try_into().map_err(|_| corrupt())?;
    if value.len() != 24 {
        return Err(corrupt());
    }
    let word = |at: usize| u64::from_be_bytes(value[at..at + 8].try_into().expect("8 bytes"));
    Ok((
        AddKey(key),
        KeyedAdd {
            first: TaskId(word(0)),
            count: word(8),
            at: Timestamp(word(16)),
        },
    ))
}

/// sled 0.34 reports a held lock only as an `Other` I/O error with this text.
fn is_lock_error(err: &std::io::Error) -> bool {
    err.to_string().contains("could not acquire lock")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::task::{TaskSpec, TaskState, Timestamp};

    fn record(id: u64) -> TaskRecord {
        let spec = TaskSpec {
            function: "m:f".into(),
            args: "[1]".into(),
            kwargs: "{}".into(),
            policy: tatzelwurm_proto::task::TaskPolicy::default(),
        };
        TaskRecord::new(TaskId(id), spec, TaskState::Created, Timestamp(5))
    }

    /// sled's flusher thread may hold the file lock a moment after the `Db` is dropped; a new
    /// process never sees this, a reopen in the same process may.
    pub(super) async fn reopen(dir: &Path) -> Store {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Store::open(dir) {
                Ok(store) => return store,
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(err) => panic!("reopen failed: {err}"),
            }
        }
    }

    /// What a batch wrote is what a later open loads (outputs apart), and the id counter survives.
    #[tokio::test]
    async fn batch_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let batch = Batch {
                tasks: vec![record(1), record(2)],
                outputs: vec![(TaskId(2), printed("two"))],
                next_task_id: Some(10),
                add_keys: Vec::new(),
            };
            store.apply(batch).await.unwrap();
        }
        let store = reopen(dir.path()).await;
        let loaded = store.load().unwrap();
        assert_eq!(loaded.tasks, vec![record(1), record(2)]);
        assert_eq!(loaded.next_task_id, 10);
        assert_eq!(store.output(TaskId(2)).unwrap(), printed("two"));
        assert_eq!(store.output(TaskId(1)).unwrap(), TaskOutput::default());
    }

    fn printed(text: &str) -> TaskOutput {
        TaskOutput {
            stdout: text.into(),
            stderr: String::new(),
        }
    }

    /// A database of a newer schema is refused and left as it was.
    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert(SCHEMA_KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        // sled's flusher may hold the lock a moment after the `Db` above is dropped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let err = loop {
            match Store::open(dir.path()) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.err().expect("must refuse"),
            }
        };
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        let db = sled::open(dir.path()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        let raw = meta.get(SCHEMA_KEY).unwrap().unwrap();
        assert_eq!(raw.as_ref(), &(SCHEMA_VERSION + 1).to_be_bytes());
    }
}

#[cfg(test)]
mod cost {
    use super::*;
    use crate::add_keys::{KeyChange, KeyedAdd};
    use tatzelwurm_proto::task::{TaskSpec, TaskState};

    /// What writing an add key with the tasks costs: batches of 10,000 new records written plain
    /// and in the transaction that a keyed add takes. A measurement, not a check:
    /// `cargo test -p tatzelwurm --release -- --ignored --nocapture store_cost`.
    #[tokio::test]
    #[ignore]
    async fn store_cost_of_add_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let spec = TaskSpec {
            function: "tasks:square".into(),
            args: "[12345]".into(),
            kwargs: "{}".into(),
            policy: Default::default(),
        };
        let mut next = 1u64;
        for keyed in [false, true, false, true] {
            let start = std::time::Instant::now();
            for round in 0..10u8 {
                let tasks: Vec<TaskRecord> = (next..next + 10_000)
                    .map(|id| {
                        TaskRecord::new(TaskId(id), spec.clone(), TaskState::Ready, Timestamp(1))
                    })
                    .collect();
                let add_keys = if keyed {
                    vec![KeyChange::Put(
                        AddKey([round; 16]),
                        KeyedAdd {
                            first: TaskId(next),
                            count: 10_000,
                            at: Timestamp(1),
                        },
                    )]
                } else {
                    Vec::new()
                };
                next += 10_000;
                let batch = Batch {
                    tasks,
                    outputs: Vec::new(),
                    next_task_id: Some(next),
                    add_keys,
                };
                store.apply(batch).await.unwrap();
            }
            let per = start.elapsed() / 100_000;
            println!("keyed={keyed}: {per:?} per record");
        }
    }
}
