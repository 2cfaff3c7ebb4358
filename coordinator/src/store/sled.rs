//! The sled backend: the store's layout as sled trees `meta`, `records`, `outputs` and
//! `add_keys` in the database directory itself (sled's `conf`, `db` and `snap.*` files).
//!
//! Schema 1 kept the output inside each record (tree `tasks`); schema 2 had no `add_keys`.
//! `migrate` moves such a database to schema 3 when it is opened.
//!
//! A batch that records add keys writes them, the records and the id counter in one sled
//! transaction, which sled recovers all or nothing: a key is never durable without its tasks,
//! nor tasks without their key. Outputs go in a batch of their own before the flush; the flush
//! covers everything, and only then does `apply` return. sled's flush is `sync_file_range`,
//! which survives a killed process but not a power cut (see DESIGN.md).

mod migrate;

use super::{
    add_key_write, check_schema, decode, encode, read_be, task_key, Backend, Batch, Loaded,
    StoreError, NEXT_ID_KEY, SCHEMA_KEY, SCHEMA_VERSION,
};
use sled::transaction::{TransactionError, Transactional};
use std::path::Path;
use tatzelwurm_proto::task::TaskOutput;
use tatzelwurm_proto::TaskId;

/// sled's page cache, instead of its default of 1 GiB. sled counts pages at their size on disk,
/// so this bounds the cached records; a large value (an output) is held in memory beyond it
/// once written or read until the coordinator restarts (measured: 500 outputs of 200 KB raised
/// the resident size by 100 MB with this limit or one of 8 MiB).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Tree names of schema 3.
const RECORDS_TREE: &str = "records";
const OUTPUTS_TREE: &str = "outputs";
const ADD_KEYS_TREE: &str = "add_keys";

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> StoreError {
        StoreError::Failed(err.to_string())
    }
}

/// An open sled database.
pub(super) struct SledBackend {
    db: sled::Db,
    meta: sled::Tree,
    records: sled::Tree,
    outputs: sled::Tree,
    add_keys: sled::Tree,
}

impl SledBackend {
    /// Opens (or creates) the database in `dir`, refusing a locked one or a newer schema and
    /// migrating an older one.
    pub(super) fn open(dir: &Path) -> Result<SledBackend, StoreError> {
        let path = dir.to_path_buf();
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io) if is_lock_error(io) => StoreError::Locked(path.clone()),
                other => StoreError::Open {
                    path: path.clone(),
                    cause: other.to_string(),
                },
            })?;
        let meta = db.open_tree("meta")?;
        // A database without a version is new; it gets this build's.
        let found = match meta.get(SCHEMA_KEY)? {
            Some(raw) => Some(u32::from_be_bytes(read_be(&raw, "schema_version")?)),
            None => None,
        };
        check_schema(dir, found)?;
        let found_or_new = found.unwrap_or(SCHEMA_VERSION);
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
        Ok(SledBackend {
            db,
            meta,
            records,
            outputs,
            add_keys,
        })
    }
}

impl Backend for SledBackend {
    fn load(&self) -> Result<Loaded, StoreError> {
        Loaded::decode(
            self.records.iter(),
            self.meta.get(NEXT_ID_KEY)?,
            self.add_keys.iter(),
        )
    }

    fn output(&self, id: TaskId) -> Result<Option<TaskOutput>, StoreError> {
        match self.outputs.get(task_key(id))? {
            Some(raw) => decode(&raw).map(Some),
            None => Ok(None),
        }
    }

    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
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
                match add_key_write(change) {
                    (key, Some(value)) => keys.insert(key, &value),
                    (key, None) => keys.remove(key),
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
                    TransactionError::Storage(err) => StoreError::from(err),
                    TransactionError::Abort(()) => StoreError::Failed("aborted".into()),
                })?;
        }
        if !batch.outputs.is_empty() {
            let mut writes = sled::Batch::default();
            for (id, output) in &batch.outputs {
                writes.insert(&task_key(*id), encode(output)?);
            }
            self.outputs.apply_batch(writes)?;
        }
        // On the store thread: blocking here blocks no runtime worker.
        self.db.flush()?;
        Ok(())
    }

    #[cfg(test)]
    fn force_schema(&self, version: u32) -> Result<(), StoreError> {
        self.meta.insert(SCHEMA_KEY, &version.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }
}

/// sled 0.34 reports a held lock only as an `Other` I/O error with this text.
fn is_lock_error(err: &std::io::Error) -> bool {
    err.to_string().contains("could not acquire lock")
}
