//! The fjall backend: the store's layout as fjall partitions `meta`, `records`, `outputs` and
//! `add_keys` of one keyspace in `keyspace/` under the database directory.
//!
//! Every batch is one fjall write batch, committed with `PersistMode::SyncAll`: fjall writes
//! the whole batch to its journal as one unit (recovered all or nothing) and fsyncs the journal
//! before `commit` returns. That is stronger than sled's `sync_file_range`: an acknowledged
//! change survives a power cut, not only a killed process.
//!
//! fjall 2 does not lock its directory, so the backend takes an exclusive `flock` on the
//! directory's `backend` file before opening the keyspace and holds it while open: a second
//! coordinator on the same `--db` is refused, and the lock ends with the process.
//!
//! fjall databases start at schema 3; there is nothing older to migrate.

use super::{
    add_key_write, check_schema, decode, encode, read_be, task_key, Backend, Batch, Loaded,
    StoreError, BACKEND_FILE, NEXT_ID_KEY, SCHEMA_KEY, SCHEMA_VERSION,
};
use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use tatzelwurm_proto::task::TaskOutput;
use tatzelwurm_proto::TaskId;

/// The keyspace's directory inside the database directory.
pub(super) const KEYSPACE_DIR: &str = "keyspace";

impl From<fjall::Error> for StoreError {
    fn from(err: fjall::Error) -> StoreError {
        StoreError::Failed(err.to_string())
    }
}

/// An open fjall keyspace.
pub(super) struct FjallBackend {
    keyspace: Keyspace,
    meta: PartitionHandle,
    records: PartitionHandle,
    outputs: PartitionHandle,
    add_keys: PartitionHandle,
    /// Holds the directory's lock; declared last so that it is released after the keyspace
    /// has stopped its threads.
    _lock: File,
}

impl FjallBackend {
    /// Opens (or creates) the keyspace in `dir`, refusing a locked one or a newer schema.
    pub(super) fn open(dir: &Path) -> Result<FjallBackend, StoreError> {
        let open_error = |cause: String| StoreError::Open {
            path: dir.to_path_buf(),
            cause,
        };
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(BACKEND_FILE))
            .map_err(|err| open_error(err.to_string()))?;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => StoreError::Locked(dir.to_path_buf()),
                _ => open_error(format!("cannot lock it: {err}")),
            });
        }
        let keyspace = fjall::Config::new(dir.join(KEYSPACE_DIR))
            .open()
            .map_err(|err| open_error(err.to_string()))?;
        let partition =
            |name: &str| keyspace.open_partition(name, PartitionCreateOptions::default());
        let meta = partition("meta")?;
        let found = match meta.get(SCHEMA_KEY)? {
            Some(raw) => Some(u32::from_be_bytes(read_be(&raw, "schema_version")?)),
            None => None,
        };
        check_schema(dir, found)?;
        let records = partition("records")?;
        let outputs = partition("outputs")?;
        let add_keys = partition("add_keys")?;
        if found.is_none() {
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes())?;
            keyspace.persist(PersistMode::SyncAll)?;
        }
        Ok(FjallBackend {
            keyspace,
            meta,
            records,
            outputs,
            add_keys,
            _lock: lock,
        })
    }
}

impl Backend for FjallBackend {
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
        let mut writes = self.keyspace.batch().durability(Some(PersistMode::SyncAll));
        for record in &batch.tasks {
            writes.insert(&self.records, task_key(record.id), encode(record)?);
        }
        for (id, output) in &batch.outputs {
            writes.insert(&self.outputs, task_key(*id), encode(output)?);
        }
        if let Some(next) = batch.next_task_id {
            writes.insert(&self.meta, NEXT_ID_KEY, next.to_be_bytes());
        }
        for change in &batch.add_keys {
            match add_key_write(change) {
                (key, Some(value)) => writes.insert(&self.add_keys, *key, value),
                (key, None) => writes.remove(&self.add_keys, *key),
            }
        }
        // One journal entry, fsynced before `commit` returns (on the store thread).
        writes.commit()?;
        Ok(())
    }

    #[cfg(test)]
    fn force_schema(&self, version: u32) -> Result<(), StoreError> {
        self.meta.insert(SCHEMA_KEY, version.to_be_bytes())?;
        self.keyspace.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}
