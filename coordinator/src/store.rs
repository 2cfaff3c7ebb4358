//! The durable store: the only module that knows sled.
//!
//! Layout (schema version 1), in one sled database directory:
//! - tree `meta`: `schema_version` → u32 big-endian; `next_task_id` → u64 big-endian.
//! - tree `tasks`: task id as u64 big-endian (so keys sort by id) → bincode of `TaskRecord`.
//!
//! The interface is deliberately narrow — open, load everything, apply a batch durably — so a
//! second backend fits in one file. `apply` returns only after sled's flush covers the batch:
//! that is the moment a change may be told to anyone. sled's flush is `sync_file_range`, which
//! survives a killed process but not a power cut (see DESIGN.md).

use crate::record::TaskRecord;
use std::path::{Path, PathBuf};
use tatzelwurm_proto::TaskId;
use thiserror::Error;

/// The schema this build writes. A database of a newer schema is refused, never rewritten.
pub const SCHEMA_VERSION: u32 = 1;

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
}

/// A set of changes that become durable together.
#[derive(Default)]
pub struct Batch {
    /// Records to write (insert or replace).
    pub tasks: Vec<TaskRecord>,
    /// The new first-unused id, when ids were handed out.
    pub next_task_id: Option<u64>,
}

impl Batch {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.next_task_id.is_none()
    }
}

/// The open database.
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    tasks: sled::Tree,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl Store {
    /// Opens (or creates) the database in `dir`, refusing a locked one or a newer schema.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.to_path_buf();
        let db = sled::Config::new().path(dir).open().map_err(|e| match e {
            sled::Error::Io(ref io) if is_lock_error(io) => StoreError::Locked(path.clone()),
            other => StoreError::Open {
                path: path.clone(),
                cause: other,
            },
        })?;
        let meta = db.open_tree("meta")?;
        let tasks = db.open_tree("tasks")?;
        match meta.get(SCHEMA_KEY)? {
            Some(raw) => {
                let found = u32::from_be_bytes(
                    raw.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("schema_version".into()))?,
                );
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path, found });
                }
            }
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        Ok(Store { db, meta, tasks })
    }

    /// Reads every task and the id counter.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for entry in self.tasks.iter() {
            let (_, value) = entry?;
            let (record, _): (TaskRecord, usize) =
                bincode::serde::decode_from_slice(&value, bincode_config())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tasks.push(record);
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
        Ok(Loaded {
            tasks,
            next_task_id: stored_next.max(after_last),
        })
    }

    /// Writes the batch and returns once it is flushed: only then may anyone be told.
    pub async fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(next) = batch.next_task_id {
            self.meta.insert(NEXT_ID_KEY, &next.to_be_bytes())?;
        }
        let mut writes = sled::Batch::default();
        for record in &batch.tasks {
            let value = bincode::serde::encode_to_vec(record, bincode_config())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            writes.insert(&task_key(record.id), value);
        }
        self.tasks.apply_batch(writes)?;
        self.db.flush_async().await?;
        Ok(())
    }
}

fn task_key(id: TaskId) -> [u8; 8] {
    id.0.to_be_bytes()
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
    async fn reopen(dir: &Path) -> Store {
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

    /// What a batch wrote is what a later open loads, and the id counter survives.
    #[tokio::test]
    async fn batch_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let batch = Batch {
                tasks: vec![record(1), record(2)],
                next_task_id: Some(10),
            };
            store.apply(batch).await.unwrap();
        }
        let store = reopen(dir.path()).await;
        let loaded = store.load().unwrap();
        assert_eq!(loaded.tasks, vec![record(1), record(2)]);
        assert_eq!(loaded.next_task_id, 10);
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
        let err = Store::open(dir.path()).err().expect("must refuse");
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        let db = sled::open(dir.path()).unwrap();
        let meta = db.open_tree("meta").unwrap();
        let raw = meta.get(SCHEMA_KEY).unwrap().unwrap();
        assert_eq!(raw.as_ref(), &(SCHEMA_VERSION + 1).to_be_bytes());
    }
}
