//! `EncodedRecords`: a round's task records, encoded on the actor thread where they are made,
//! and `WrittenRecord`, how a batch's records (whole or encoded) are read back for the round's
//! events.
//!
//! The task table keeps a live task in a compact form (`task_table/live.rs`); its stored record
//! used to be rebuilt as an owned `TaskRecord` (five strings) every time the task changed, moved
//! to the store thread, encoded there and freed (building the strings alone, `LiveTask::spec`,
//! was 3.7% of the coordinator's samples in W1). Now `TaskTable::take_changes` encodes a
//! `TaskRecordRef` that borrows the task table's strings straight into one buffer here, and the
//! store thread copies the bytes into its writes as they are. A task that finished this round
//! is encoded the same way, from its compact form and its ending (`task_table/done.rs`). The
//! bytes are exactly the owned record's bincode (`TaskRecordRef` mirrors `TaskInfo` field for
//! field), so the store's layout does not change. Nothing here is decoded on the hot
//! path: what a round's events tell of a record (id, state, attempts, queue, worker) is noted
//! while it is encoded; only the error of a failed attempt, which few records have, is read
//! back from the bytes.

use super::{bincode_config, decode_ref, StoreError};
use crate::record::{TaskRecord, TaskRecordRef};
use bincode::error::EncodeError;
use serde::Serialize;
use std::ops::Range;
use tatzelwurm_proto::task::TaskState;
use tatzelwurm_proto::{Attempt, TaskId};

/// Records encoded where they were made, back to back in one buffer (see the module comment):
/// a round of a thousand live records costs two growing vectors.
#[derive(Debug, Default, Clone)]
pub struct EncodedRecords {
    /// The records' bytes, back to back.
    bytes: Vec<u8>,
    /// What was noted of each record, in the order pushed.
    entries: Vec<Entry>,
}

/// Where a record's queue's name and its worker's (if any) lie in `EncodedRecords::bytes`.
type NameRanges = (Range<usize>, Option<Range<usize>>);

/// What `EncodedRecords` notes of one record besides its bytes.
#[derive(Debug, Clone)]
struct Entry {
    id: TaskId,
    /// Where it is written (`live` or `finished`) and what its event says.
    state: TaskState,
    attempts: Attempt,
    /// The record is `bytes[start..end]`.
    start: usize,
    end: usize,
    /// Where the queue's name lies within `bytes`.
    queue: Range<usize>,
    /// Where the worker's name lies within `bytes`, if it names one.
    worker: Option<Range<usize>>,
    /// Whether it holds an error (read back from the bytes when asked).
    error: bool,
}

impl EncodedRecords {
    /// Room for `records` records of about `bytes` bytes in all.
    pub fn with_capacity(records: usize, bytes: usize) -> EncodedRecords {
        EncodedRecords {
            bytes: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(records),
        }
    }

    /// Encodes `record` after the others, into the bytes its owned `TaskRecord` encodes into.
    ///
    /// bincode lays a struct (or a tuple) out as its fields one after the other, so the record
    /// is encoded in three runs of its fields, in `TaskInfo`'s order, to learn where the queue's
    /// and the worker's names lie (a test checks the bytes against the owned record's). On an
    /// error (none can happen encoding into memory, but serde's signature allows one) nothing of
    /// the record is kept and the caller writes it whole.
    pub fn push(&mut self, record: &TaskRecordRef<'_>) -> Result<(), EncodeError> {
        let start = self.bytes.len();
        let encoded = self.encode_runs(record);
        let (queue, worker) = match encoded {
            Ok(names) => names,
            Err(err) => {
                self.bytes.truncate(start);
                return Err(err);
            }
        };
        self.entries.push(Entry {
            id: record.id,
            state: record.state,
            attempts: record.attempts,
            start,
            end: self.bytes.len(),
            queue,
            worker,
            error: record.error.is_some(),
        });
        Ok(())
    }

    /// Encodes `record`'s fields in three runs; where its queue's and worker's names lie.
    fn encode_runs(&mut self, record: &TaskRecordRef<'_>) -> Result<NameRanges, EncodeError> {
        let spec = &record.spec;
        self.encode(&(
            record.id,
            record.state,
            spec.function,
            spec.args,
            spec.kwargs,
            spec.policy,
            spec.queue,
        ))?;
        let queue = self.bytes.len() - spec.queue.len()..self.bytes.len();
        self.encode(&(
            spec.priority,
            spec.run_at,
            &spec.after,
            record.result,
            &record.error,
            record.worker,
        ))?;
        let worker = record
            .worker
            .map(|name| self.bytes.len() - name.len()..self.bytes.len());
        self.encode(&(
            record.attempts,
            record.failures,
            record.crashes,
            record.retry_at,
            record.created_at,
            record.started_at,
            record.finished_at,
            &record.output,
        ))?;
        Ok((queue, worker))
    }

    /// Appends the bincode of `value` (the store's configuration, as `Writes::put_encoded`).
    fn encode<T: Serialize>(&mut self, value: &T) -> Result<(), EncodeError> {
        bincode::serde::encode_into_std_write(value, &mut self.bytes, bincode_config()).map(|_| ())
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many bytes its records take in all.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Each record's id, state and bytes, in the order pushed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (TaskId, TaskState, &[u8])> + '_ {
        self.entries
            .iter()
            .map(|entry| (entry.id, entry.state, &self.bytes[entry.start..entry.end]))
    }

    /// Record number `at`, as `Batch::records` reads it.
    fn written(&self, at: usize) -> WrittenRecord<'_> {
        WrittenRecord(Written::Encoded {
            entry: &self.entries[at],
            bytes: &self.bytes,
        })
    }
}

/// One record a batch writes, as `Batch::records` reads it: whole, or from its encoded bytes
/// and what was noted of it, without decoding.
#[derive(Debug, Clone, Copy)]
pub struct WrittenRecord<'a>(Written<'a>);

#[derive(Debug, Clone, Copy)]
enum Written<'a> {
    /// A record of `Batch::tasks`.
    Whole(&'a TaskRecord),
    /// A record of `Batch::encoded`: what was noted of it, and all the batch's encoded bytes
    /// (its own and its names' ranges index them).
    Encoded { entry: &'a Entry, bytes: &'a [u8] },
}

impl<'a> From<&'a TaskRecord> for WrittenRecord<'a> {
    fn from(record: &'a TaskRecord) -> WrittenRecord<'a> {
        WrittenRecord(Written::Whole(record))
    }
}

impl<'a> WrittenRecord<'a> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        match self.0 {
            Written::Whole(record) => record.id,
            Written::Encoded { entry, .. } => entry.id,
        }
    }

    /// Its state as written.
    pub fn state(&self) -> TaskState {
        match self.0 {
            Written::Whole(record) => record.state,
            Written::Encoded { entry, .. } => entry.state,
        }
    }

    /// How many attempts it shows.
    pub fn attempts(&self) -> Attempt {
        match self.0 {
            Written::Whole(record) => record.attempts,
            Written::Encoded { entry, .. } => entry.attempts,
        }
    }

    /// Its queue's name.
    pub fn queue(&self) -> &'a str {
        match self.0 {
            Written::Whole(record) => &record.spec.queue,
            Written::Encoded { entry, bytes } => text(bytes, entry.queue.clone()),
        }
    }

    /// The worker of its latest attempt, as written.
    pub fn worker(&self) -> Option<&'a str> {
        match self.0 {
            Written::Whole(record) => record.worker.as_deref(),
            Written::Encoded { entry, bytes } => {
                entry.worker.clone().map(|range| text(bytes, range))
            }
        }
    }

    /// The kind of the error it holds (a failed task's, or a failed attempt's while the task
    /// waits to retry). An encoded record's is read back from its bytes: few have one.
    pub fn error_kind(&self) -> Option<String> {
        match self.0 {
            Written::Whole(record) => record.error.as_ref().map(|e| e.kind.clone()),
            Written::Encoded { entry, bytes } if entry.error => {
                let record = decode_ref(&bytes[entry.start..entry.end]).ok()?;
                record.error.map(|error| error.kind)
            }
            Written::Encoded { .. } => None,
        }
    }

    /// The record, owned (for tests and rare readers: an encoded one is decoded, which fails
    /// only if its bytes, encoded by this batch, were not a record).
    pub fn to_record(&self) -> Result<TaskRecord, StoreError> {
        match self.0 {
            Written::Whole(record) => Ok(record.clone()),
            Written::Encoded { entry, bytes } => {
                decode_ref(&bytes[entry.start..entry.end]).map(|record| record.to_record())
            }
        }
    }
}

/// A name `push` noted, read back: it was encoded from a `&str`, so it is UTF-8 (checked again,
/// cheaply; a name that were not would read as empty).
fn text(bytes: &[u8], range: Range<usize>) -> &str {
    std::str::from_utf8(&bytes[range]).unwrap_or_default()
}

/// The iterator of `Batch::records`: merges the encoded and the whole records by id.
pub struct Records<'a> {
    encoded: &'a EncodedRecords,
    /// The next of `encoded` to give.
    next_encoded: usize,
    tasks: std::slice::Iter<'a, TaskRecord>,
}

impl<'a> Records<'a> {
    /// The records of `encoded` and `tasks`, each in id order, merged.
    pub(super) fn new(encoded: &'a EncodedRecords, tasks: &'a [TaskRecord]) -> Records<'a> {
        Records {
            encoded,
            next_encoded: 0,
            tasks: tasks.iter(),
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = WrittenRecord<'a>;

    fn next(&mut self) -> Option<WrittenRecord<'a>> {
        let encoded = self.encoded.entries.get(self.next_encoded);
        match (encoded, self.tasks.as_slice().first()) {
            (Some(entry), task) if task.is_none_or(|task| entry.id <= task.id) => {
                self.next_encoded += 1;
                Some(self.encoded.written(self.next_encoded - 1))
            }
            _ => self.tasks.next().map(WrittenRecord::from),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.encoded.len() - self.next_encoded + self.tasks.len();
        (left, Some(left))
    }
}

impl ExactSizeIterator for Records<'_> {}
