//! A `Batch`: the changes of one round that become durable together, and how they turn into key
//! writes of the layout (`writes_into`, into a `Writes`), on the store thread.
//!
//! Records come in two forms: whole (`tasks`: a record a start kept as it found it, or any
//! given by a test or a migration), and already encoded (`encoded`: a round's records of live
//! tasks and of tasks it finished, encoded on the actor thread straight from the task table's
//! compact form, `encoded.rs`), so that no owned copy of their strings is built only
//! to be encoded and dropped. Either way a record's stored bytes are its `TaskRecord`'s
//! bincode. `records` reads both, in id order, as `WrittenRecord`s (the round's events).
//!
//! Besides records, outputs, the id counter, add keys, queues and schedules, a batch carries
//! the round's events (appended to `events`), a trim of the oldest events, and a purge of
//! finished tasks. All of it is one atomic write of the backend (sled writes `outputs` apart,
//! inside the same flush: see `sled.rs`).

use super::encoded::{EncodedRecords, Records};
use super::events::{event_key, trim_writes, EVENTS_PER_BLOCK};
use super::writes::Writes;
use super::{add_key_write, task_key, Backend, Space, StoreError, NEXT_ID_KEY};
use crate::add_keys::KeyChange;
use crate::record::{QueueRecord, TaskRecord};
use std::collections::{HashMap, HashSet};
use tatzelwurm_proto::event::Event;
use tatzelwurm_proto::schedule::ScheduleInfo;
use tatzelwurm_proto::task::{TaskOutput, TaskState};
use tatzelwurm_proto::TaskId;

/// A set of changes that become durable together.
#[derive(Default)]
pub struct Batch {
    /// Records to write (insert or replace), whole. A finished one goes to `finished` and
    /// leaves `live`; any other goes to `live`. Written after `encoded` (of an id in both, this
    /// one is left).
    pub tasks: Vec<TaskRecord>,
    /// Records to write, already encoded (a round's own): written as `tasks` are.
    pub encoded: EncodedRecords,
    /// Outputs to write (insert or replace), each the latest reported attempt's of its task.
    pub outputs: Vec<(TaskId, TaskOutput)>,
    /// The new first-unused id, when ids were handed out.
    pub next_task_id: Option<u64>,
    /// Add keys recorded or forgotten, in order; written atomically with `tasks`.
    pub add_keys: Vec<KeyChange>,
    /// Queues' settings and finished counts to write (insert or replace), by name.
    pub queues: Vec<(String, QueueRecord)>,
    /// Schedules to write (`Some`: insert or replace) or remove (`None`), by name.
    pub schedules: Vec<(String, Option<ScheduleInfo>)>,
    /// Events to append to the event log, stamped by the caller (each `seq` one more than the
    /// last one written). Written with the changes they describe, so that a replay after a
    /// crash shows exactly what was made durable.
    pub events: Vec<Event>,
    /// Removes every stored event with `seq <=` this (retention of the event log). An event
    /// of this same batch at or below it is not written at all. The stored log never starts
    /// over: the next start's `EventsMeta::next_seq` stays past it even if nothing is left.
    pub trim_events_through: Option<u64>,
    /// Finished tasks to remove with their outputs (`task purge`, `--keep-finished`). Only the
    /// `finished` and `outputs` key spaces are touched, and a live task is never touched,
    /// whatever the caller passes: an id stored live (or written live by this batch) keeps its
    /// record and its output. A finished record or output of a purged id in the same batch is
    /// not written (the purge wins). The queues' finished counts are the caller's to adjust
    /// (`queues`), if it wants them to drop.
    pub purge: Vec<TaskId>,
}

impl Batch {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.encoded.is_empty()
            && self.outputs.is_empty()
            && self.next_task_id.is_none()
            && self.add_keys.is_empty()
            && self.queues.is_empty()
            && self.schedules.is_empty()
            && self.events.is_empty()
            && self.trim_events_through.is_none()
            && self.purge.is_empty()
    }

    /// The batch as key writes, in the order a backend applies them, in `writes` (cleared
    /// first: the store thread lays every batch out in the same buffers); every backend writes
    /// these atomically. Records and blocks are encoded straight into the buffer. Reads
    /// `backend` only to find the events a trim removes (on the store thread, which alone
    /// writes).
    pub(super) fn writes_into(
        &self,
        backend: &dyn Backend,
        writes: &mut Writes,
    ) -> Result<(), StoreError> {
        let entries = self.record_count() * 2
            + self.outputs.len()
            + self.add_keys.len()
            + self.queues.len()
            + self.schedules.len()
            + self.events.len().div_ceil(EVENTS_PER_BLOCK)
            + self.purge.len() * 2
            + 1;
        // A guess that fits a round of small records without growing: ~130 bytes per whole
        // record, the encoded records' own bytes, ~40 bytes per event, room for the keys.
        let bytes = self.tasks.len() * 130
            + self.encoded.byte_len()
            + self.events.len() * 40
            + entries * 16;
        writes.clear();
        writes.reserve(entries, bytes);
        // Only a batch that purges pays for these: the ids it purges, less the live ones.
        let purged = self.purged(backend)?;
        for (id, state, bytes) in self.encoded.iter() {
            place(writes, &purged, id, state, |writes, space, key| {
                writes.put(space, key, bytes);
                Ok(())
            })?;
        }
        for record in &self.tasks {
            place(
                writes,
                &purged,
                record.id,
                record.state,
                |writes, space, key| writes.put_encoded(space, key, record),
            )?;
        }
        for (id, output) in &self.outputs {
            if purged.contains(id) {
                continue;
            }
            writes.put_encoded(Space::Outputs, &task_key(*id), output)?;
        }
        for id in self.purge.iter().filter(|id| purged.contains(id)) {
            writes.remove(Space::Finished, &task_key(*id));
            writes.remove(Space::Outputs, &task_key(*id));
        }
        if let Some(next) = self.next_task_id {
            writes.put(Space::Meta, NEXT_ID_KEY, &next.to_be_bytes());
        }
        for change in &self.add_keys {
            match add_key_write(change) {
                (key, Some(value)) => writes.put(Space::AddKeys, key, &value),
                (key, None) => writes.remove(Space::AddKeys, key),
            }
        }
        for (name, queue) in &self.queues {
            writes.put_encoded(Space::Queues, name.as_bytes(), queue)?;
        }
        for (name, schedule) in &self.schedules {
            match schedule {
                Some(schedule) => {
                    writes.put_encoded(Space::Schedules, name.as_bytes(), schedule)?
                }
                None => writes.remove(Space::Schedules, name.as_bytes()),
            }
        }
        let trimmed = self.trim_events_through.unwrap_or(0);
        if let Some(through) = self.trim_events_through {
            trim_writes(backend, through, writes)?;
        }
        // Stored bytes: a block is the bincode of a sequence of events (a length, then each
        // event), whether encoded from a slice of events or of references to them. A trim
        // reaches this batch's own events only when the log is tiny, so they are almost always
        // all kept and encoded from the batch's slice, without a vector of references.
        if self.events.iter().all(|event| event.seq > trimmed) {
            for block in self.events.chunks(EVENTS_PER_BLOCK) {
                let last = block[block.len() - 1].seq;
                writes.put_encoded(Space::Events, &event_key(last), block)?;
            }
        } else {
            let kept: Vec<&Event> = self.events.iter().filter(|e| e.seq > trimmed).collect();
            for block in kept.chunks(EVENTS_PER_BLOCK) {
                let last = block[block.len() - 1].seq;
                writes.put_encoded(Space::Events, &event_key(last), block)?;
            }
        }
        Ok(())
    }

    /// How many records it writes (whole and encoded).
    pub fn record_count(&self) -> usize {
        self.tasks.len() + self.encoded.len()
    }

    /// The records it writes, whole and encoded, merged in id order (a round's are each in id
    /// order, and an id is in only one of them): what the round's events tell.
    pub fn records(&self) -> Records<'_> {
        Records::new(&self.encoded, &self.tasks)
    }

    /// The ids of `purge` that are not live after this batch: written finished by it, or not
    /// written by it and not stored live (one point read each, on `live`, whose bloom filters
    /// answer most of them).
    fn purged(&self, backend: &dyn Backend) -> Result<HashSet<TaskId>, StoreError> {
        if self.purge.is_empty() {
            return Ok(HashSet::new());
        }
        // Whether this batch leaves each id it writes finished (the last write counts).
        let written: HashMap<TaskId, bool> = self
            .encoded
            .iter()
            .map(|(id, state, _)| (id, state.is_finished()))
            .chain(
                self.tasks
                    .iter()
                    .map(|record| (record.id, record.state.is_finished())),
            )
            .collect();
        let mut purged = HashSet::with_capacity(self.purge.len());
        for id in &self.purge {
            let live = match written.get(id) {
                Some(finished) => !finished,
                None => backend.get(Space::Live, &task_key(*id))?.is_some(),
            };
            if !live {
                purged.insert(*id);
            }
        }
        Ok(purged)
    }
}

/// Writes the record of task `id` where `state` puts it, `put` writing its bytes under its key
/// in a key space: a finished one into `finished` (unless the batch purges it) and out of
/// `live`, any other into `live`. The one rule for whole and encoded records alike.
fn place(
    writes: &mut Writes,
    purged: &HashSet<TaskId>,
    id: TaskId,
    state: TaskState,
    put: impl FnOnce(&mut Writes, Space, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let key = task_key(id);
    if state.is_finished() {
        if !purged.contains(&id) {
            put(writes, Space::Finished, &key)?;
        }
        writes.remove(Space::Live, &key);
    } else {
        put(writes, Space::Live, &key)?;
    }
    Ok(())
}
