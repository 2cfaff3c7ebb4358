//! The fjall backend: the store's key spaces as fjall partitions `meta`, `live`, `finished`,
//! `outputs`, `add_keys`, `queues`, `schedules` and `events` (and schema 3's `records` until it
//! is split) of one keyspace in `keyspace/` under the database directory.
//!
//! A database opened without an `events` partition (schema 5 or older) gets one, and the
//! directory of the partitions is fsynced before `open` returns, so that `schema6` only has to
//! write the new version. Removed keys are given back to the disk by major compactions that
//! `fjall/compaction.rs` schedules.
//!
//! Every batch is one fjall write batch, committed with `PersistMode::SyncAll`: fjall writes
//! the whole batch to its journal as one unit (recovered all or nothing) and fsyncs the journal
//! before `commit` returns. That is stronger than sled's `sync_file_range`: an acknowledged
//! change survives a power cut, not only a killed process.
//!
//! Memory is bounded by configuration (see the constants): the block cache, the memtables
//! (per partition and in all) and, on disk, the journals that wait for memtables to be written.
//!
//! fjall 2 does not lock its directory, so the backend takes an exclusive `flock` on the
//! directory's `backend` file before opening the keyspace and holds it while open: a second
//! coordinator on the same `--db` is refused, and the lock ends with the process.
//!
//! fjall databases started at schema 3; `store/split.rs` moves them to 5, `store/rewrite.rs`
//! those of schema 4, `store/schema6.rs` those of schema 5 to 6.

mod compaction;
#[cfg(test)]
mod tests;

use super::writes::Writes;
use super::{
    check_schema, read_be, Backend, Space, StoreError, Visitor, BACKEND_FILE, SCHEMA_KEY,
    SCHEMA_VERSION,
};
use compaction::Compactor;
use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The keyspace's directory inside the database directory.
pub(super) const KEYSPACE_DIR: &str = "keyspace";

impl From<fjall::Error> for StoreError {
    fn from(err: fjall::Error) -> StoreError {
        StoreError::Failed(err.to_string())
    }
}

/// The block cache, shared by the partitions (fjall's default: 32 MiB). Records of live tasks
/// are in the coordinator's memory anyway; the cache serves `get`s of finished ones.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// All memtables together (fjall's default: 64 MiB); past it, the largest is written out.
const WRITE_BUFFER_BYTES: u64 = 32 * 1024 * 1024;

/// One partition's memtable (fjall's default: 16 MiB).
const MEMTABLE_BYTES: u32 = 8 * 1024 * 1024;

/// The journals kept on disk until their memtables are written (fjall's default: 512 MiB,
/// its minimum 24 MiB): bounds the disk a database uses beyond its tables, and what a start
/// replays. Not lower: at 32 MiB a big add (batches of 10,000 records) forced memtable flushes
/// so often that it wrote 5 times slower (`store_cost`: 157k records/s against 750k).
const JOURNAL_BYTES: u64 = 128 * 1024 * 1024;

/// fjall's flush and compaction threads each (its default: the cores less one, so 1 on two
/// cores). A major compaction of `live` (`compaction.rs`) blocks the other compactions of
/// `live` while it runs; with one compaction thread that thread waits for it and the tables of
/// `finished` pile up until fjall slows and halts writes (the likely cause of one w4 run that
/// stalled for over 30 s; not seen since).
const BACKGROUND_WORKERS: usize = 2;

/// An open fjall keyspace.
pub(super) struct FjallBackend {
    keyspace: Keyspace,
    meta: PartitionHandle,
    live: PartitionHandle,
    finished: PartitionHandle,
    outputs: PartitionHandle,
    add_keys: PartitionHandle,
    queues: PartitionHandle,
    schedules: PartitionHandle,
    events: PartitionHandle,
    /// Schema 3's records, while they are not yet split (`None` once dropped or never there).
    records: Mutex<Option<PartitionHandle>>,
    /// Counts removals and runs the compactions they make due; its thread is joined when the
    /// backend is dropped.
    compactor: Compactor,
    /// The journal count when the small memtables were last sealed (`release_journals`).
    journals_seen: AtomicUsize,
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
            .flush_workers(BACKGROUND_WORKERS)
            .compaction_workers(BACKGROUND_WORKERS)
            .cache_size(CACHE_BYTES)
            .max_write_buffer_size(WRITE_BUFFER_BYTES)
            .max_journaling_size(JOURNAL_BYTES)
            .open()
            .map_err(|err| open_error(err.to_string()))?;
        let partition = |space: Space| {
            let options = PartitionCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
            keyspace.open_partition(space.name(), options)
        };
        let meta = partition(Space::Meta)?;
        let found = match meta.get(SCHEMA_KEY)? {
            Some(raw) => Some(u32::from_be_bytes(read_be(&raw, "schema_version")?)),
            None => None,
        };
        check_schema(dir, found)?;
        let records = if keyspace.partition_exists(Space::Records.name()) {
            Some(partition(Space::Records)?)
        } else {
            None
        };
        let live = partition(Space::Live)?;
        let finished = partition(Space::Finished)?;
        let outputs = partition(Space::Outputs)?;
        let add_keys = partition(Space::AddKeys)?;
        let queues = partition(Space::Queues)?;
        let schedules = partition(Space::Schedules)?;
        let had_events = keyspace.partition_exists(Space::Events.name());
        let events = partition(Space::Events)?;
        if !had_events {
            // fjall syncs the new partition's files but not the directory entry naming it:
            // durable before `schema6` writes the version that says it is there.
            let partitions = dir.join(KEYSPACE_DIR).join("partitions");
            File::open(&partitions)
                .and_then(|partitions| partitions.sync_all())
                .map_err(|err| {
                    open_error(format!("cannot sync {}: {err}", partitions.display()))
                })?;
        }
        if found.is_none() {
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes())?;
            keyspace.persist(PersistMode::SyncAll)?;
        }
        let all = vec![
            meta.clone(),
            live.clone(),
            finished.clone(),
            outputs.clone(),
            add_keys.clone(),
            queues.clone(),
            schedules.clone(),
            events.clone(),
        ];
        let watched = vec![
            (Space::Live, live.clone()),
            (Space::Finished, finished.clone()),
            (Space::Outputs, outputs.clone()),
            (Space::Events, events.clone()),
        ];
        let compactor = Compactor::new(keyspace.clone(), watched, all);
        Ok(FjallBackend {
            keyspace,
            meta,
            live,
            finished,
            outputs,
            add_keys,
            queues,
            schedules,
            events,
            records: Mutex::new(records),
            compactor,
            journals_seen: AtomicUsize::new(0),
            _lock: lock,
        })
    }

    /// Lets fjall delete journals that only the small key spaces still need. A journal is
    /// deleted once every memtable with writes in it is flushed; `meta` (a counter per add) and
    /// `add_keys` fill their memtables so slowly that they kept every journal of a big add until
    /// the journal cap (measured: 3 journals of 32 MiB after 10^6 tasks added), and a start
    /// after a kill replays them all (measured: first answer 0.61 s instead of 0.8-1.0 s with
    /// 10^6 tasks); `queues` (a count per finished task) and `schedules` are as small. Their
    /// memtables are sealed when another memtable was sealed (the journal count grew since the
    /// last batch) and an older journal exists, not at every batch: each seal makes a small
    /// table, and sealing whenever the count changed (it drops as flushes end) cost rounds of
    /// 10 records 1.5 ms a flush instead of 0.2 (`store_cost`).
    ///
    /// Each seal starts a journal of its own, so the count is taken again after sealing: had
    /// it stayed the count from before (as it once did), the next batch would see the journals
    /// its own seals started as growth and seal again, and so on at every batch while any
    /// journal waited to be deleted (measured in W1: `queues`, written by every round that
    /// finishes tasks, sealed and written out 110 times in 100,000 tasks, each seal a table,
    /// a manifest, two flush threads and a compaction).
    fn release_journals(&self) -> Result<(), StoreError> {
        let journals = self.keyspace.journal_count();
        let mut now = journals;
        if journals > 1 && journals > self.journals_seen.load(Ordering::Relaxed) {
            // An empty memtable is left as it is.
            for small in [&self.meta, &self.add_keys, &self.queues, &self.schedules] {
                small.rotate_memtable()?;
            }
            now = self.keyspace.journal_count();
        }
        // Only the store thread writes, so no other batch races this.
        self.journals_seen.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// The partition of a key space of schema 5 (`None` for schema 3's records).
    fn fixed(&self, space: Space) -> Option<&PartitionHandle> {
        Some(match space {
            Space::Meta => &self.meta,
            Space::Live => &self.live,
            Space::Finished => &self.finished,
            Space::Outputs => &self.outputs,
            Space::AddKeys => &self.add_keys,
            Space::Queues => &self.queues,
            Space::Schedules => &self.schedules,
            Space::Events => &self.events,
            Space::Records => return None,
        })
    }

    /// The partition of `space`; `None` for schema 3's records once they are gone.
    fn partition(&self, space: Space) -> Option<PartitionHandle> {
        match self.fixed(space) {
            Some(partition) => Some(partition.clone()),
            None => self.records.lock().ok()?.clone(),
        }
    }

    /// The partition of `space`, which must exist to be written.
    fn writable(&self, space: Space) -> Result<PartitionHandle, StoreError> {
        self.partition(space)
            .ok_or_else(|| StoreError::Failed(format!("no key space {}", space.name())))
    }
}

impl Drop for FjallBackend {
    /// Waits for a running compaction, so that the directory's lock is released only when
    /// nothing writes to it any more.
    fn drop(&mut self) {
        self.compactor.join();
    }
}

impl Backend for FjallBackend {
    fn schema(&self) -> Result<u32, StoreError> {
        match self.meta.get(SCHEMA_KEY)? {
            Some(raw) => Ok(u32::from_be_bytes(read_be(&raw, "schema_version")?)),
            None => Ok(SCHEMA_VERSION),
        }
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.partition(space) {
            Some(partition) => Ok(partition.get(key)?.map(|value| value.to_vec())),
            None => Ok(None),
        }
    }

    fn visit(&self, space: Space, from: &[u8], visit: &mut Visitor<'_>) -> Result<(), StoreError> {
        let Some(partition) = self.partition(space) else {
            return Ok(());
        };
        for entry in partition.range(from.to_vec()..) {
            let (key, value) = entry?;
            if !visit(&key, &value)? {
                break;
            }
        }
        Ok(())
    }

    fn last_key(&self, space: Space) -> Result<Option<Vec<u8>>, StoreError> {
        match self.partition(space) {
            Some(partition) => Ok(partition.last_key_value()?.map(|(key, _)| key.to_vec())),
            None => Ok(None),
        }
    }

    fn write(&self, writes: &Writes) -> Result<(), StoreError> {
        // Sized at once: grown push by push, its reallocations were a tenth of `write`. Not
        // fsynced here: `sync` does that once for every batch written before it.
        let mut batch =
            fjall::Batch::with_capacity(self.keyspace.clone(), writes.len()).durability(None);
        // Removals from `live`, `finished`, `outputs`, `events` (in that order).
        let mut removals = [0usize; 4];
        for write in writes.iter() {
            let (space, key, value) = (&write.space, write.key, write.value);
            if value.is_none() {
                match space {
                    Space::Live => removals[0] += 1,
                    Space::Finished => removals[1] += 1,
                    Space::Outputs => removals[2] += 1,
                    Space::Events => removals[3] += 1,
                    _ => {}
                }
            }
            let owned;
            let partition = match self.fixed(*space) {
                Some(partition) => partition,
                None => {
                    owned = self.writable(*space)?;
                    &owned
                }
            };
            match value {
                Some(value) => batch.insert(partition, key, value),
                None => batch.remove(partition, key),
            }
        }
        // One journal entry: all of it or, after a crash before the next `sync`, none of it.
        batch.commit()?;
        if removals.iter().any(|&count| count > 0) {
            let spaces = [Space::Live, Space::Finished, Space::Outputs, Space::Events];
            for (space, count) in spaces.into_iter().zip(removals) {
                self.compactor.removed(space, count);
            }
            self.compactor.after_write();
        }
        self.release_journals()?;
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        // The journal's buffer written out and fsynced (on the store thread).
        self.keyspace.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    fn idle(&self) {
        self.compactor.when_idle();
    }

    fn compact(&self) -> Result<(), StoreError> {
        self.compactor.compact_now()
    }

    fn drop_records(&self) -> Result<(), StoreError> {
        let taken = match self.records.lock() {
            Ok(mut records) => records.take(),
            Err(_) => return Err(StoreError::Failed("a lock was poisoned".into())),
        };
        if let Some(records) = taken {
            self.keyspace.delete_partition(records)?;
        }
        Ok(())
    }
}
