//! `StoreReader`: reads of the store from anywhere, without the task actor or the store thread.
//!
//! A reader reaches the backend the `Store` opened (both backends read concurrently with writes
//! and see every applied batch), so a replay of a million events or a scan of the finished
//! tasks for a purge runs beside the rounds instead of inside one. It does not keep the database
//! open: once the `Store` is dropped (and its directory's lock released), a read answers
//! `StoreError::Closed`. Records read here may be written but not yet flushed (the task actor
//! tells nothing of them before the flush); events never are: `events` stops at the last
//! flushed one, since a watcher is told what it reads. Reads block the calling thread
//! while they touch the disk: from async code, read pages of bounded size (a `limit`) or call
//! them in `tokio::task::spawn_blocking`.

use super::{decode, events, task_key, Backend, Space, StoreError};
use crate::record::TaskRecord;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tatzelwurm_proto::event::Event;
use tatzelwurm_proto::task::{TaskOutput, TaskState, Timestamp};
use tatzelwurm_proto::TaskId;

/// A cheap, cloneable handle for reading the store (`Store::reader`); see the module comment.
#[derive(Clone)]
pub struct StoreReader {
    /// The `Store`'s backend, while it is open.
    backend: Weak<dyn Backend>,
    /// The database directory, for `disk_bytes`.
    dir: Arc<PathBuf>,
    /// The last event seq that is durable (the store thread moves it after each sync).
    durable_events: Arc<AtomicU64>,
}

impl StoreReader {
    pub(super) fn new(
        backend: &Arc<dyn Backend>,
        dir: &Path,
        durable_events: Arc<AtomicU64>,
    ) -> StoreReader {
        StoreReader {
            backend: Arc::downgrade(backend),
            dir: Arc::new(dir.to_path_buf()),
            durable_events,
        }
    }

    /// The backend, unless the `Store` was dropped.
    fn backend(&self) -> Result<Arc<dyn Backend>, StoreError> {
        self.backend.upgrade().ok_or(StoreError::Closed)
    }

    /// The stored record of task `id`, finished or live; `None` if none was written (or it
    /// was purged).
    pub fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        for space in [Space::Finished, Space::Live] {
            if let Some(raw) = self.backend()?.get(space, &task_key(id))? {
                return decode(&raw).map(Some);
            }
        }
        Ok(None)
    }

    /// What the latest reported attempt of task `id` printed; empty if none was reported (or
    /// the task was purged).
    pub fn output(&self, id: TaskId) -> Result<TaskOutput, StoreError> {
        match self.backend()?.get(Space::Outputs, &task_key(id))? {
            Some(raw) => decode(&raw),
            None => Ok(TaskOutput::default()),
        }
    }

    /// Up to `limit` durable events with seq above `after`, ascending (`after = 0`: from the
    /// oldest kept). Events trimmed by retention are not there: compare the first seq with
    /// `after + 1` to know whether some were missed. Events written but not yet flushed are
    /// left out, as if not written yet.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let through = self.durable_events.load(Ordering::Acquire);
        events::page(self.backend()?.as_ref(), after, through, limit)
    }

    /// Up to `limit` ids of finished tasks with ids above `after`, in id order, that finished
    /// before `before` (`finished_at < before`) in one of `states` (every finished state when
    /// empty; a live state never matches): the candidates of a purge by age.
    ///
    /// Reads the finished records in id order, in place, and stops early at the first record
    /// created at or after `before`: ids are handed out in time order, so every later task was
    /// created (and so finished) after `before` too. A page costs what it passes over below
    /// that point. (Should the clock have gone back, a task below that point is found by a
    /// later call, once `before` has passed it.)
    pub fn finished_ids(
        &self,
        before: Timestamp,
        states: &[TaskState],
        after: Option<TaskId>,
        limit: usize,
    ) -> Result<Vec<TaskId>, StoreError> {
        let mut ids = Vec::new();
        if limit == 0 {
            return Ok(ids);
        }
        let Some(from) = after.map_or(Some(0), |id| id.0.checked_add(1)) else {
            return Ok(ids);
        };
        self.backend()?
            .visit(Space::Finished, &from.to_be_bytes(), &mut |_, value| {
                let record = super::decode_ref(value)?;
                if record.created_at >= before {
                    return Ok(false);
                }
                let old = record.finished_at.is_some_and(|at| at < before);
                let wanted = if states.is_empty() {
                    record.state.is_finished()
                } else {
                    states.contains(&record.state)
                };
                if old && wanted {
                    ids.push(record.id);
                }
                Ok(ids.len() < limit)
            })?;
        Ok(ids)
    }

    /// The bytes the database directory takes on disk (blocks allocated, as `du` counts
    /// them), for benchmarks and the disk-use metric. A file that vanishes while it is counted
    /// (a compaction removed it) counts as 0.
    pub fn disk_bytes(&self) -> u64 {
        dir_disk_bytes(&self.dir)
    }
}

/// The bytes the files under `dir` take on disk (blocks allocated, as `du` counts them): a
/// database's size measured from outside, as a benchmark does while the coordinator holds it.
pub fn dir_disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += dir_disk_bytes(&entry.path());
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}
