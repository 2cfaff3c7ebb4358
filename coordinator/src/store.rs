//! The durable store: the only module that knows which database backends exist.
//!
//! Every backend holds the same logical layout (schema version 6), in eight key spaces:
//! - `meta`: `schema_version` → u32 big-endian; `next_task_id` → u64 big-endian (and, only
//!   while a migration from schema 4 is under way, its mark: see `rewrite.rs`).
//! - `live`: task id as u64 big-endian (so keys sort by id) → bincode of the `TaskRecord` (the
//!   wire's `TaskInfo`, `output` always `None`) of a task that is not finished (created,
//!   blocked, scheduled, paused, ready, running, waiting).
//! - `finished`: the same for finished tasks (completed, failed, killed). A task is in exactly
//!   one of `live` and `finished`: the batch that writes it finished removes it from `live`.
//!   Kept apart so that a start reads only the live tasks, however long the history is.
//! - `outputs`: task id as u64 big-endian → bincode of the `TaskOutput` of the task's latest
//!   reported attempt. Kept apart from the records so that the coordinator never holds output
//!   in memory: up to 512 KiB per task, read only by `task show`.
//! - `add_keys`: an add's idempotency key (16 bytes) → 24 bytes, three u64 big-endian: the first
//!   id the add got, how many tasks it added, and when (ms since the epoch). See `add_keys.rs`.
//! - `queues`: a queue's name (UTF-8) → bincode of its `QueueRecord`: its settings (paused,
//!   limit) and how many of its tasks finished in each way, so that `queue list` never reads
//!   the finished records. Written with the batch that changes either.
//! - `schedules`: a schedule's name (UTF-8) → bincode of its `ScheduleInfo` (spec, paused,
//!   next time, firings).
//! - `events` (schema 6): the seq of a block's last event as u64 big-endian → bincode of a block
//!   of up to 1,000 consecutive events (the wire's `Event`): the durable event log, appended
//!   with the round that made the changes, trimmed from its oldest end (see `events.rs`).
//!   `meta` keeps the highest trimmed seq so seqs never repeat.
//!
//! A purge (`Batch::purge`) removes finished records with their outputs; after batches that
//! removed many keys the fjall backend compacts the key spaces they were removed from, so the
//! disk shrinks (see `fjall/compaction.rs`).
//!
//! Older databases are migrated when opened, for both backends the same way and crash-safe:
//! schema 4 kept records in an older layout (frozen in `v4.rs`: a spec without queue, priority,
//! start time and dependencies, a state of seven variants) and had no `queues` or `schedules`;
//! `rewrite_records` converts its records in place, in durable chunks that resume after a
//! crash. Schema 3 kept every record (in schema 4's layout) in one key space, `records`;
//! `split_records` moves and converts them to schema 5 at once. Both count the finished tasks
//! into the default queue's `QueueRecord`, where schema 5 keeps those counts. Schema 5 had no
//! `events`; `schema6::add_events` goes from 5 to 6, so every older database chains through.
//!
//! Backends ([`Backend`], one file each): `sled` (sled trees, schema 1 and 2 migrated to 3,
//! see `sled/migrate.rs`) and `fjall` (fjall partitions in `keyspace/`). A backend only stores and
//! visits bytes by key space; the layout's meaning (which record goes where, what a start
//! loads, a listing's page) is here, once. The directory's `backend` file names the backend
//! that created it (a sled directory of an older tatzelwurm has none and is known by sled's
//! `conf` file); a directory is opened only by the backend that wrote it.
//!
//! Writes run on a dedicated store thread that owns the writing side of the backend: `send`
//! hands it a batch and returns at once with a [`Flushing`], which completes once the flush
//! covers the batch: that is the moment a change may be told to anyone. So an fsync never
//! blocks the async runtime, and the task actor applies its next round while this one flushes.
//! The thread writes each batch it finds queued (each atomically, visible to reads at once)
//! and then flushes them all with one sync: batches that queued up while a flush ran share the
//! next. Tasks, outputs, the id counter, add keys, queues and schedules of one batch become
//! durable all together or not at all, in both backends, and batches become durable in the
//! order they were sent.
//!
//! Reads through the `Store` (`get`, `scan`, `output`: the task actor's) first wait until
//! every batch sent so far is written (`settle`), so the actor reads what it has sent although
//! it does not wait for the flush; what it reads is told only with a later round, after the
//! flush. Reads through a [`StoreReader`] (off the actor) see the batches written so far and
//! never wait.

mod batch;
mod encoded;
mod events;
mod fjall;
mod reader;
mod rewrite;
mod schema6;
mod sled;
mod split;
mod v4;
mod writes;

pub use batch::Batch;
pub use encoded::{EncodedRecords, WrittenRecord};
pub use events::EventsMeta;
pub use reader::{dir_disk_bytes, StoreReader};

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod cost;

use crate::add_keys::{KeyChange, KeyedAdd};
use crate::record::{QueueRecord, TaskRecord, TaskRecordRef};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tatzelwurm_proto::actioner::AddKey;
use tatzelwurm_proto::schedule::ScheduleInfo;
use tatzelwurm_proto::task::{TaskOutput, TaskState, Timestamp};
use tatzelwurm_proto::TaskId;
use thiserror::Error;
use tokio::sync::oneshot;
use writes::Writes;

/// The bytes of laid-out writes the store thread keeps between batches: a round's fit (a
/// few hundred records), an add of tens of thousands gives its buffer back.
const KEEP_WRITE_BYTES: usize = 4 * 1024 * 1024;

/// Live ids a start reads on one thread; a wider range is read in two halves on two.
const PARALLEL_READ_FROM: u64 = 100_000;

/// The schema this build writes. A database of a newer schema is refused, never rewritten; an
/// older one is migrated.
pub const SCHEMA_VERSION: u32 = schema6::TO;

/// The schema `split` and `rewrite` bring older databases to; `schema6` goes on from there.
const SCHEMA_5: u32 = schema6::FROM;

/// The backend a new `--db` directory gets when `--store` is not given (chosen by measuring,
/// see DESIGN.md section 5).
pub const DEFAULT_KIND: StoreKind = StoreKind::Fjall;

/// The file in the database directory that names its backend. Stored bytes: its content is
/// the backend's name (`sled` or `fjall`) and a newline.
const BACKEND_FILE: &str = "backend";

const SCHEMA_KEY: &[u8] = b"schema_version";
const NEXT_ID_KEY: &[u8] = b"next_task_id";

/// Which database backend a directory holds (`tatzelwurm --store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// sled 0.34: flushed with `sync_file_range`; survives a killed process, not a power cut.
    Sled,
    /// fjall 2: each batch is fsynced before it is acknowledged.
    Fjall,
}

impl StoreKind {
    /// The name on the command line and in the directory's `backend` file.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sled => "sled",
            StoreKind::Fjall => "fjall",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the store failed; each reads as one sentence for the operator.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error("the database at {0} is in use by another process (is another tatzelwurm running on it?); stop that coordinator or pass another --db")]
    Locked(PathBuf),
    /// The database was written by a newer tatzelwurm.
    #[error("the database at {path} has schema version {found}, newer than the {SCHEMA_VERSION} this tatzelwurm understands; run the newer tatzelwurm that wrote it")]
    NewerSchema { path: PathBuf, found: u32 },
    /// The database was written by another backend than the one asked for.
    #[error("the database at {path} was written by the {found} backend, not by {asked} as --store asks; run with --store {found} (or without --store), or pass another --db")]
    OtherBackend {
        path: PathBuf,
        found: StoreKind,
        asked: StoreKind,
    },
    /// The directory cannot be opened as a database.
    #[error("cannot open the database at {path}: {cause}; check that the path is a directory tatzelwurm may write")]
    Open { path: PathBuf, cause: String },
    /// A record on disk does not decode.
    #[error("the database holds a record that cannot be read ({0}); it may be damaged")]
    Corrupt(String),
    /// Reading or writing failed after opening.
    #[error("the database failed: {0}")]
    Failed(String),
    /// A read through a `StoreReader` after the `Store` was closed (the coordinator stops).
    #[error("the database is closed (the coordinator is stopping); retry once it runs again")]
    Closed,
}

/// What a start reads: the live tasks (or, from `load_all`, every task), the counter, the add
/// keys.
pub struct Loaded {
    /// The tasks read, in id order.
    pub tasks: Records,
    /// The first id never handed out.
    pub next_task_id: u64,
    /// Every stored add key, in key order.
    pub add_keys: Vec<(AddKey, KeyedAdd)>,
    /// Every queue's settings and finished counts, by name.
    pub queues: Vec<(String, QueueRecord)>,
    /// Every schedule, by name.
    pub schedules: Vec<ScheduleInfo>,
    /// Where the stored event log stands: the next seq to stamp, the oldest kept.
    pub events: EventsMeta,
}

/// `Loaded` with every task, live and finished, decoded (`Store::load_all`).
pub struct LoadedAll {
    /// Every task, in id order.
    pub tasks: Vec<TaskRecord>,
    /// The first id never handed out.
    pub next_task_id: u64,
    /// Every stored add key, in key order.
    pub add_keys: Vec<(AddKey, KeyedAdd)>,
    /// Every queue's settings and finished counts, by name.
    pub queues: Vec<(String, QueueRecord)>,
    /// Every schedule, by name.
    pub schedules: Vec<ScheduleInfo>,
}

/// Task records as stored (encoded, one buffer for all), decoded one at a time as they are
/// taken: a start with a million live tasks holds their bytes (~100 each) rather than a
/// million decoded records beside the table it builds from them.
#[derive(Default)]
pub struct Records {
    bytes: Vec<u8>,
    /// Where each record ends in `bytes`.
    ends: Vec<usize>,
}

impl Records {
    /// How many records there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn push(&mut self, encoded: &[u8]) {
        self.bytes.extend_from_slice(encoded);
        self.ends.push(self.bytes.len());
    }

    /// Every record decoded, in order; an error for the first that does not decode.
    pub fn decode_all(&self) -> Result<Vec<TaskRecord>, StoreError> {
        self.iter().collect()
    }

    /// Appends `other`'s records after these.
    fn append(&mut self, other: Records) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.ends.extend(other.ends.iter().map(|end| end + base));
    }

    /// Every record decoded, owned.
    fn iter(&self) -> impl Iterator<Item = Result<TaskRecord, StoreError>> + '_ {
        self.raw().map(decode)
    }

    /// The records read in place, in order (`Store::load` checked that each decodes; one that
    /// did not would be skipped).
    pub fn refs(&self) -> impl Iterator<Item = TaskRecordRef<'_>> + '_ {
        self.raw().filter_map(|raw| decode_ref(raw).ok())
    }

    fn raw(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }
}

/// What a table is rebuilt from: `Records` as loaded, or records at hand (tests, tools).
pub trait IntoRecords {
    /// The records, encoded as the store keeps them.
    fn into_records(self) -> Records;
}

impl IntoRecords for Records {
    fn into_records(self) -> Records {
        self
    }
}

impl IntoRecords for Vec<TaskRecord> {
    /// Encodes each (a record that does not encode, which bincode never refuses, is left out).
    fn into_records(self) -> Records {
        let mut encoded = Records::default();
        for record in &self {
            if let Ok(bytes) = encode(record) {
                encoded.push(&bytes);
            }
        }
        encoded
    }
}

/// A key space of the layout (see the module comment). Backends map each to a tree or a
/// partition of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    Meta,
    Live,
    Finished,
    Outputs,
    AddKeys,
    Queues,
    Schedules,
    /// The event log (schema 6).
    Events,
    /// Schema 3's single key space of records; exists only until `split_records` has run.
    Records,
}

impl Space {
    /// The tree or partition name.
    fn name(self) -> &'static str {
        match self {
            Space::Meta => "meta",
            Space::Live => "live",
            Space::Finished => "finished",
            Space::Outputs => "outputs",
            Space::AddKeys => "add_keys",
            Space::Queues => "queues",
            Space::Schedules => "schedules",
            Space::Events => "events",
            Space::Records => "records",
        }
    }
}

/// Which records a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Tasks that are not finished (created, blocked, scheduled, paused, ready, running,
    /// waiting).
    Live,
    /// Finished tasks (completed, failed, killed).
    Finished,
    /// Both, merged in id order.
    All,
}

/// One key written (`Some` value) or removed (`None`), owned: how tests list the writes they
/// collect into `Writes`.
#[cfg(test)]
type RawWrite = (Space, Vec<u8>, Option<Vec<u8>>);

/// Called with each (key, value) a visit passes; returns whether to go on.
type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// What a database backend does for the store: keeps bytes by key space. Each implementation
/// opens its directory itself (refusing a locked one and a newer schema, migrating what is
/// older than schema 3 in its own way) and lives in one file under `store/`; what the layout
/// means is `Store`'s.
trait Backend: Send + Sync {
    /// The stored schema version (a new database has this build's).
    fn schema(&self) -> Result<u32, StoreError>;
    /// The value of `key` in `space`.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Calls `visit` with each entry of `space` from key `from` on, in key order, until it
    /// returns `false` (or an error, which is returned).
    fn visit(&self, space: Space, from: &[u8], visit: &mut Visitor<'_>) -> Result<(), StoreError>;
    /// The greatest key of `space`.
    fn last_key(&self, space: Space) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes `writes` atomically: visible to reads when it returns, durable once a later
    /// `sync` returns (a crash before loses them whole, never in part).
    fn write(&self, writes: &Writes) -> Result<(), StoreError>;
    /// Makes every write so far durable (the backend's flush).
    fn sync(&self) -> Result<(), StoreError>;
    /// Writes `writes` atomically and returns once they are durable.
    fn apply(&self, writes: &Writes) -> Result<(), StoreError> {
        self.write(writes)?;
        self.sync()
    }
    /// Removes schema 3's `records` key space, if it is there, durably.
    fn drop_records(&self) -> Result<(), StoreError>;
    /// Called on the store thread when no batch came for a while: a moment for upkeep that
    /// should not slow a busy store (fjall: compactions that smaller removals made due).
    fn idle(&self) {}
    /// Gives the disk back that removed keys take, now, and returns when done (fjall: a
    /// major compaction of every key space keys were removed from; sled: nothing, it reuses
    /// freed space itself). For tests and tools; the coordinator compacts on its own.
    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A batch for the store thread and where its outcome goes.
struct Write {
    batch: Batch,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Batches the store thread writes before one sync at most: what queued while a flush ran
/// shares the next one, but a flush never waits on an endless queue.
const GROUP_BATCHES: usize = 16;

/// Records after which the store thread takes no further batch into a group: each batch
/// written before the sync delays the first one's answer, and a burst of adds (several
/// thousand records a batch, one after another) made a group of them hold back the first
/// add's tasks for ~10 ms (W1: nothing ran from 8 to 20 ms). Small rounds still share syncs.
const GROUP_RECORDS: usize = 2_000;

/// A batch on its way to the disk (`Store::send`): completes with the outcome of the flush
/// that covers it. Batches of one `Store` complete in the order they were sent.
#[must_use = "a batch is durable only once its Flushing completes"]
pub struct Flushing(Option<oneshot::Receiver<Result<(), StoreError>>>);

impl std::future::Future for Flushing {
    type Output = Result<(), StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let Some(outcome) = self.0.as_mut() else {
            // An empty batch: nothing to wait for.
            return std::task::Poll::Ready(Ok(()));
        };
        std::pin::Pin::new(outcome)
            .poll(cx)
            .map(|got| got.unwrap_or_else(|_| Err(thread_stopped())))
    }
}

fn thread_stopped() -> StoreError {
    StoreError::Failed("the store thread stopped".into())
}

/// How many batches the store thread has written (visible to reads), for `Store::settle`.
/// Set to `u64::MAX` when the thread ends, however it ends, so that no read waits forever.
#[derive(Default)]
struct Written {
    count: std::sync::Mutex<u64>,
    grew: std::sync::Condvar,
}

impl Written {
    /// Counts one more batch written (or, with `u64::MAX`, the thread's end).
    fn advance(&self, to: Option<u64>) {
        let mut count = self
            .count
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *count = to.unwrap_or(count.saturating_add(1));
        self.grew.notify_all();
    }

    /// Blocks until `count` batches are written.
    fn wait_for(&self, count: u64) {
        let mut written = self
            .count
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while *written < count {
            written = self
                .grew
                .wait(written)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// Marks the store thread's end in `Written` when dropped, on a return or a panic alike.
struct EndOfWrites(Arc<Written>);

impl Drop for EndOfWrites {
    fn drop(&mut self) {
        self.0.advance(Some(u64::MAX));
    }
}

/// The open database: reads go to the backend directly, writes through the store thread.
pub struct Store {
    kind: StoreKind,
    backend: Arc<dyn Backend>,
    /// The reads, shared with every `StoreReader` handed out.
    reader: StoreReader,
    /// `None` only while dropping: closing it ends the store thread.
    writes: Option<mpsc::Sender<Write>>,
    thread: Option<JoinHandle<()>>,
    /// Batches sent to the store thread so far.
    sent: std::sync::atomic::AtomicU64,
    /// Batches the store thread has written so far.
    written: Arc<Written>,
}

impl Store {
    /// Opens (or creates) the database in `dir`. `asked` is `--store`: a new directory gets it
    /// (or [`DEFAULT_KIND`]); an existing one is opened by the backend that wrote it, and
    /// refused when `asked` names another. A locked database and a newer schema are refused;
    /// an older one is migrated before this returns.
    pub fn open(dir: &Path, asked: Option<StoreKind>) -> Result<Store, StoreError> {
        let found = detect(dir)?;
        let kind = match (found, asked) {
            (Some(found), Some(asked)) if found != asked => {
                return Err(StoreError::OtherBackend {
                    path: dir.to_path_buf(),
                    found,
                    asked,
                })
            }
            (Some(found), _) => found,
            (None, asked) => {
                let kind = asked.unwrap_or(DEFAULT_KIND);
                write_backend_file(dir, kind)?;
                kind
            }
        };
        let backend: Arc<dyn Backend> = match kind {
            StoreKind::Sled => Arc::new(sled::SledBackend::open(dir)?),
            StoreKind::Fjall => Arc::new(fjall::FjallBackend::open(dir)?),
        };
        match backend.schema()? {
            ..=3 => split::split_records(backend.as_ref())?,
            4 => rewrite::rewrite_records(backend.as_ref(), rewrite::CHUNK)?,
            _ => {}
        }
        if backend.schema()? == SCHEMA_5 {
            schema6::add_events(backend.as_ref())?;
        }
        backend.drop_records()?;
        let (writes, queue) = mpsc::channel::<Write>();
        let writer = backend.clone();
        let written = Arc::new(Written::default());
        let end = EndOfWrites(written.clone());
        // Every stored event is durable now.
        let stored_events = events::load_meta(backend.as_ref())?.next_seq - 1;
        let durable_events = Arc::new(std::sync::atomic::AtomicU64::new(stored_events));
        let durable = durable_events.clone();
        let thread = std::thread::Builder::new()
            .name("tatzelwurm-store".into())
            .spawn(move || write_batches(writer.as_ref(), &queue, end, &durable))
            .map_err(|err| StoreError::Open {
                path: dir.to_path_buf(),
                cause: format!("cannot start the store thread: {err}"),
            })?;
        Ok(Store {
            kind,
            reader: StoreReader::new(&backend, dir, durable_events),
            backend,
            writes: Some(writes),
            thread: Some(thread),
            sent: std::sync::atomic::AtomicU64::new(0),
            written,
        })
    }

    /// The backend this database is kept in.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// A handle for reading the store off the task actor and the store thread (event
    /// replays, purge scans, the disk-use metric); clone it freely.
    pub fn reader(&self) -> StoreReader {
        self.reader.clone()
    }

    /// The bytes the database directory takes on disk (see `StoreReader::disk_bytes`).
    pub fn disk_bytes(&self) -> u64 {
        self.reader.disk_bytes()
    }

    /// Gives back, now, the disk that removed keys (finished tasks purged, events trimmed,
    /// tasks that left `live`) still take, and returns when done. Blocks the calling thread
    /// (seconds for millions of records). For tests, benchmarks and tools: the coordinator
    /// compacts on its own after batches that removed many keys and when it is idle.
    pub fn compact(&self) -> Result<(), StoreError> {
        self.backend.compact()
    }

    /// Reads what a start needs: the live tasks only (finished ones stay on disk, read by
    /// `get` and `scan` when asked), the id counter, the add keys, the queues' records and the
    /// schedules. The counter is never below the id after the last record of either part.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let tasks = self.read_live()?;
        let stored_next = match self.backend.get(Space::Meta, NEXT_ID_KEY)? {
            Some(raw) => u64::from_be_bytes(read_be(&raw, "next_task_id")?),
            None => 1,
        };
        let mut after_last = 1;
        for space in [Space::Live, Space::Finished] {
            if let Some(key) = self.backend.last_key(space)? {
                after_last = after_last.max(u64::from_be_bytes(read_be(&key, "a task key")?) + 1);
            }
        }
        let mut add_keys = Vec::new();
        self.backend.visit(Space::AddKeys, &[], &mut |key, value| {
            add_keys.push(decode_add_key(key, value)?);
            Ok(true)
        })?;
        let mut queues = Vec::new();
        self.backend.visit(Space::Queues, &[], &mut |key, value| {
            queues.push((read_name(key, "a queue's name")?, decode(value)?));
            Ok(true)
        })?;
        let mut schedules = Vec::new();
        self.backend.visit(Space::Schedules, &[], &mut |_, value| {
            schedules.push(decode(value)?);
            Ok(true)
        })?;
        Ok(Loaded {
            tasks,
            next_task_id: stored_next.max(after_last),
            add_keys,
            queues,
            schedules,
            events: events::load_meta(self.backend.as_ref())?,
        })
    }

    /// The live records, checked. A start waits for this, so with many live tasks the ids are
    /// cut in two halves read (and checked) on two threads, each with its own iterator.
    fn read_live(&self) -> Result<Records, StoreError> {
        let key_of = |raw: Option<Vec<u8>>| -> Result<Option<u64>, StoreError> {
            raw.map(|key| read_be(&key, "a task key").map(u64::from_be_bytes))
                .transpose()
        };
        let last = key_of(self.backend.last_key(Space::Live)?)?;
        let mut first = None;
        self.backend.visit(Space::Live, &[], &mut |key, _| {
            first = Some(key.to_vec());
            Ok(false)
        })?;
        let (Some(first), Some(last)) = (key_of(first)?, last) else {
            return Ok(Records::default());
        };
        if last - first < PARALLEL_READ_FROM {
            return self.read_live_part(first, None);
        }
        let middle = first + (last - first) / 2;
        let (low, high) = std::thread::scope(|scope| {
            let low = scope.spawn(|| self.read_live_part(first, Some(middle)));
            let high = self.read_live_part(middle, None);
            (low.join(), high)
        });
        let mut low = low.map_err(|_| StoreError::Failed("a reading thread panicked".into()))??;
        low.append(high?);
        Ok(low)
    }

    /// The live records with ids from `from` up to `until` (excluded; `None`: all), checked
    /// as they are read.
    fn read_live_part(&self, from: u64, until: Option<u64>) -> Result<Records, StoreError> {
        let mut part = Records::default();
        let until = until.map(u64::to_be_bytes);
        self.backend
            .visit(Space::Live, &from.to_be_bytes(), &mut |key, value| {
                if until.is_some_and(|until| key >= until.as_slice()) {
                    return Ok(false);
                }
                decode_ref(value)?;
                part.push(value);
                Ok(true)
            })?;
        Ok(part)
    }

    /// Every task, live and finished, decoded in id order, beside what `load` reads: for tests
    /// and tools, never for a start.
    pub fn load_all(&self) -> Result<LoadedAll, StoreError> {
        let loaded = self.load()?;
        let finished = self.scan(Part::Finished, None, usize::MAX, &[])?;
        Ok(LoadedAll {
            tasks: merge(loaded.tasks.decode_all()?, finished, usize::MAX),
            next_task_id: loaded.next_task_id,
            add_keys: loaded.add_keys,
            queues: loaded.queues,
            schedules: loaded.schedules,
        })
    }

    /// The stored record of task `id`, finished or live; `None` if none was written (or it
    /// was purged).
    pub fn get(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        self.settle();
        self.reader.get(id)
    }

    /// A page of stored records of `part`: ids above `after`, in any of `states` (every state
    /// when empty), in id order, at most `limit`. Reads the records in id order from `after`
    /// on, so a page costs what it skips over as well as what it returns.
    pub fn scan(
        &self,
        part: Part,
        after: Option<TaskId>,
        limit: usize,
        states: &[TaskState],
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.settle();
        match part {
            Part::Live => self.scan_space(Space::Live, after, limit, states),
            Part::Finished => self.scan_space(Space::Finished, after, limit, states),
            Part::All => {
                let live = self.scan_space(Space::Live, after, limit, states)?;
                let finished = self.scan_space(Space::Finished, after, limit, states)?;
                Ok(merge(live, finished, limit))
            }
        }
    }

    fn scan_space(
        &self,
        space: Space,
        after: Option<TaskId>,
        limit: usize,
        states: &[TaskState],
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut page = Vec::new();
        if limit == 0 {
            return Ok(page);
        }
        let Some(from) = after.map_or(Some(0), |id| id.0.checked_add(1)) else {
            return Ok(page);
        };
        self.backend
            .visit(space, &from.to_be_bytes(), &mut |_, value| {
                // Read in place first: a listing of a few states passes over many records
                // it leaves out, and copies out only those it keeps.
                let record = decode_ref(value)?;
                if states.is_empty() || states.contains(&record.state) {
                    page.push(record.to_record());
                }
                Ok(page.len() < limit)
            })?;
        Ok(page)
    }

    /// What the latest reported attempt of task `id` printed; empty if none was reported.
    pub fn output(&self, id: TaskId) -> Result<TaskOutput, StoreError> {
        self.settle();
        self.reader.output(id)
    }

    /// Writes the batch on the store thread and returns once it is flushed: only then may
    /// anyone be told.
    pub async fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        self.send(batch).await
    }

    /// Hands the batch to the store thread and returns at once: the `Flushing` completes once
    /// the batch is durable, after every batch sent before it. Reads through this `Store`
    /// see it from now on (`settle`).
    pub fn send(&self, batch: Batch) -> Flushing {
        if batch.is_empty() {
            return Flushing(None);
        }
        let (done, outcome) = oneshot::channel();
        let sent = self
            .writes
            .as_ref()
            .is_some_and(|writes| writes.send(Write { batch, done }).is_ok());
        if sent {
            self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Not sent: `done` is dropped, so the outcome is the thread's end.
        Flushing(Some(outcome))
    }

    /// Blocks until the store thread has written every batch sent so far, so that a read sees
    /// them (a batch's write takes a fraction of its flush; this never waits for a sync).
    fn settle(&self) {
        let sent = self.sent.load(std::sync::atomic::Ordering::Relaxed);
        self.written.wait_for(sent);
    }

    /// Overwrites the stored schema version and flushes; only for tests of the refusal.
    #[cfg(test)]
    fn force_schema(&self, version: u32) -> Result<(), StoreError> {
        let mut writes = Writes::default();
        writes.put(Space::Meta, SCHEMA_KEY, &version.to_be_bytes());
        self.backend.apply(&writes)
    }
}

/// The store thread: writes the batches that come through `queue`, each atomically, all that
/// queued behind the first (up to `GROUP_BATCHES` batches and about `GROUP_RECORDS` records)
/// before one sync, then tells each its outcome. A write that fails fails the rest of its
/// group unwritten (the task actor stops at the first error). After a sync, `durable_events`
/// moves to the group's last event (readers pass on no event before that). When idle it trims
/// the allocator and gives the backend its upkeep.
fn write_batches(
    writer: &dyn Backend,
    queue: &mpsc::Receiver<Write>,
    end: EndOfWrites,
    durable_events: &std::sync::atomic::AtomicU64,
) {
    let mut trim = Trim::default();
    // Every batch is laid out in these same buffers: a fresh large allocation per batch made
    // glibc consolidate its free lists each time (a tenth of the store thread's time in W1).
    let mut writes = Writes::default();
    let mut group = Vec::with_capacity(GROUP_BATCHES);
    loop {
        let first = match queue.recv_timeout(Trim::EVERY) {
            Ok(write) => write,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                trim.idle();
                writer.idle();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut outcome = Ok(());
        let mut records = 0;
        let mut last_event = None;
        let mut next = Some(first);
        while let Some(Write { batch, done }) = next.take() {
            records += batch.record_count();
            last_event = batch.events.last().map(|event| event.seq).or(last_event);
            if outcome.is_ok() {
                outcome = batch
                    .writes_into(writer, &mut writes)
                    .and_then(|()| writer.write(&writes));
            }
            end.0.advance(None);
            // Freed here, before the sync, rather than after it.
            drop(batch);
            group.push(done);
            if group.len() < GROUP_BATCHES && records < GROUP_RECORDS {
                next = queue.try_recv().ok();
            }
        }
        let outcome = outcome.and_then(|()| writer.sync());
        if let (Ok(()), Some(seq)) = (&outcome, last_event) {
            durable_events.store(seq, std::sync::atomic::Ordering::Release);
        }
        for done in group.drain(..) {
            let _ = done.send(outcome.clone());
        }
        writes.release(KEEP_WRITE_BYTES);
        trim.after(records);
    }
}

/// Gives memory freed after batches back to the system. The allocator keeps what a
/// round of tens of thousands of records freed (its batch, its encoded writes, the records it
/// decoded) for reuse, spread over the arenas of the threads that freed it; after a big add
/// that is tens of MB the coordinator would hold, unused, until it ends. Trimmed after every
/// `RECORDS` records (at most once per `EVERY`), and once the store has been idle for `EVERY`
/// after any write (measured with 10^6 tasks added: 217 MB resident after the add instead of
/// 276 MB without the idle trim, 266 MB without any).
#[derive(Default)]
struct Trim {
    /// Records written since the last trim.
    since: usize,
    last: Option<std::time::Instant>,
}

impl Trim {
    /// Records written before a trim is considered.
    const RECORDS: usize = 20_000;
    /// At most one trim in this long (a trim walks the heap: milliseconds).
    const EVERY: std::time::Duration = std::time::Duration::from_millis(250);

    /// After a batch of `records`: trims if enough were written since the last trim.
    fn after(&mut self, records: usize) {
        self.since += records;
        if self.since < Self::RECORDS || self.last.is_some_and(|at| at.elapsed() < Self::EVERY) {
            return;
        }
        self.trim();
    }

    /// When no batch came for a while: trims what the last batches left, if they wrote any.
    fn idle(&mut self) {
        if self.since > 0 {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.since = 0;
        self.last = Some(std::time::Instant::now());
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free memory of the allocator to the system.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Two lists in id order merged into one, at most `limit` long; an id in both (a crash
/// between two writes of a backend that cannot be, but cheap to guard) is kept once, from `b`.
fn merge(a: Vec<TaskRecord>, b: Vec<TaskRecord>, limit: usize) -> Vec<TaskRecord> {
    let mut merged = Vec::with_capacity((a.len() + b.len()).min(limit));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while merged.len() < limit {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.id < y.id => a.next(),
            (Some(x), Some(y)) if x.id == y.id => {
                a.next();
                b.next()
            }
            (Some(_), None) => a.next(),
            (_, Some(_)) => b.next(),
            (None, None) => None,
        };
        match next {
            Some(record) => merged.push(record),
            None => break,
        }
    }
    merged
}

impl Drop for Store {
    /// Ends the store thread after the writes it holds, so that the backend (and its lock) is
    /// released when the `Store` is gone.
    fn drop(&mut self) {
        self.writes.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Which backend wrote `dir`: its `backend` file, else sled's or fjall's own files; `None`
/// for a directory that does not exist yet or holds no database.
fn detect(dir: &Path) -> Result<Option<StoreKind>, StoreError> {
    let open_error = |cause: String| StoreError::Open {
        path: dir.to_path_buf(),
        cause,
    };
    match std::fs::metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(open_error(err.to_string())),
        Ok(meta) if !meta.is_dir() => return Err(open_error("it is not a directory".into())),
        Ok(_) => {}
    }
    if let Ok(named) = std::fs::read_to_string(dir.join(BACKEND_FILE)) {
        match named.trim() {
            "sled" => return Ok(Some(StoreKind::Sled)),
            "fjall" => return Ok(Some(StoreKind::Fjall)),
            "" => {}
            other => {
                let unknown =
                    format!("its {BACKEND_FILE} file names `{other}`, an unknown backend");
                return Err(open_error(unknown));
            }
        }
    }
    if dir.join("conf").is_file() {
        return Ok(Some(StoreKind::Sled));
    }
    if dir.join(fjall::KEYSPACE_DIR).is_dir() {
        return Ok(Some(StoreKind::Fjall));
    }
    Ok(None)
}

/// Creates `dir` if needed and writes its `backend` file, durably, before the backend writes.
fn write_backend_file(dir: &Path, kind: StoreKind) -> Result<(), StoreError> {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(BACKEND_FILE);
        std::fs::write(&path, format!("{kind}\n"))?;
        std::fs::File::open(&path)?.sync_all()?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|err| StoreError::Open {
        path: dir.to_path_buf(),
        cause: err.to_string(),
    })
}

/// Refuses a schema newer than this build's.
fn check_schema(dir: &Path, found: Option<u32>) -> Result<(), StoreError> {
    match found {
        Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
            path: dir.to_path_buf(),
            found,
        }),
        _ => Ok(()),
    }
}

/// Reads a stored name (a queue's or a schedule's key).
fn read_name(raw: &[u8], what: &str) -> Result<String, StoreError> {
    String::from_utf8(raw.to_vec()).map_err(|_| StoreError::Corrupt(what.to_string()))
}

/// Reads a stored big-endian integer of `N` bytes.
fn read_be<const N: usize>(raw: &[u8], what: &str) -> Result<[u8; N], StoreError> {
    raw.try_into()
        .map_err(|_| StoreError::Corrupt(what.to_string()))
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a stored value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, bincode_config())
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Reads a stored record in place (its strings borrow from `raw`).
pub(crate) fn decode_ref(raw: &[u8]) -> Result<TaskRecordRef<'_>, StoreError> {
    bincode::serde::borrow_decode_from_slice(raw, bincode_config())
        .map(|(value, _)| value)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Decodes a stored value.
pub(crate) fn decode<T: DeserializeOwned>(raw: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(raw, bincode_config())
        .map(|(value, _)| value)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
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

/// The key and stored value of an add key change (`None` for a removal).
fn add_key_write(change: &KeyChange) -> (&[u8; 16], Option<[u8; 24]>) {
    match change {
        KeyChange::Put(key, add) => (&key.0, Some(encode_add_key(add))),
        KeyChange::Remove(key) => (&key.0, None),
    }
}
