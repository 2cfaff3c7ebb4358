//! The durable store: the only module that knows which database backends exist.
//!
//! Every backend holds the same logical layout (schema version 3), in four key spaces:
//! - `meta`: `schema_version` → u32 big-endian; `next_task_id` → u64 big-endian.
//! - `records`: task id as u64 big-endian (so keys sort by id) → bincode of `TaskRecord`.
//! - `outputs`: task id as u64 big-endian → bincode of the `TaskOutput` of the task's latest
//!   reported attempt. Kept apart from the records so that the coordinator never holds output
//!   in memory: up to 512 KiB per task, read only by `task show`.
//! - `add_keys`: an add's idempotency key (16 bytes) → 24 bytes, three u64 big-endian: the first
//!   id the add got, how many tasks it added, and when (ms since the epoch). See `add_keys.rs`.
//!
//! Backends ([`Backend`], one file each): `sled` (sled trees, schema 1 and 2 migrated, see
//! `sled/migrate.rs`) and `fjall` (fjall partitions in `keyspace/`). The directory's `backend`
//! file names the backend that created it (a sled directory of an older tatzelwurm has none and
//! is known by sled's `conf` file); a directory is opened only by the backend that wrote it.
//!
//! Writes run on a dedicated store thread that owns the writing side of the backend: `apply`
//! sends the batch there and waits on a oneshot, so a flush (an fsync for fjall) never blocks
//! the async runtime. `apply` returns only after the flush covers the batch: that is the moment
//! a change may be told to anyone. Tasks, outputs, the id counter and add keys of one batch
//! become durable all together or not at all, in both backends.

mod fjall;
mod sled;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod cost;

use crate::add_keys::{KeyChange, KeyedAdd};
use crate::record::TaskRecord;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tatzelwurm_proto::actioner::AddKey;
use tatzelwurm_proto::task::{TaskOutput, Timestamp};
use tatzelwurm_proto::TaskId;
use thiserror::Error;
use tokio::sync::oneshot;

/// The schema this build writes. A database of a newer schema is refused, never rewritten; an
/// older one is migrated.
pub const SCHEMA_VERSION: u32 = 3;

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
#[derive(Debug, Error)]
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

impl Loaded {
    /// Decodes what a backend holds, the same for every backend: its records and its add keys
    /// as (key, value) entries in key order, and the raw `next_task_id` if one is stored. The
    /// counter is never below the id after the last record.
    fn decode<K, V, E>(
        records: impl Iterator<Item = Result<(K, V), E>>,
        stored_next: Option<impl AsRef<[u8]>>,
        add_keys: impl Iterator<Item = Result<(K, V), E>>,
    ) -> Result<Loaded, StoreError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        StoreError: From<E>,
    {
        let mut tasks = Vec::new();
        for entry in records {
            let (_, value) = entry?;
            tasks.push(decode::<TaskRecord>(value.as_ref())?);
        }
        let stored_next = match stored_next {
            Some(raw) => Some(u64::from_be_bytes(read_be(raw.as_ref(), "next_task_id")?)),
            None => None,
        };
        let mut keys = Vec::new();
        for entry in add_keys {
            let (key, value) = entry?;
            keys.push(decode_add_key(key.as_ref(), value.as_ref())?);
        }
        let after_last = tasks.last().map_or(1, |t: &TaskRecord| t.id.0 + 1);
        Ok(Loaded {
            tasks,
            next_task_id: stored_next.unwrap_or(1).max(after_last),
            add_keys: keys,
        })
    }
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

/// What a database backend does for the store. Each implementation opens its directory
/// itself (refusing a locked one and a newer schema, migrating an older one) and lives in one
/// file under `store/`.
trait Backend: Send + Sync {
    /// Reads every task record (outputs stay on disk), the id counter and the add keys.
    fn load(&self) -> Result<Loaded, StoreError>;
    /// The stored output of task `id`, if any.
    fn output(&self, id: TaskId) -> Result<Option<TaskOutput>, StoreError>;
    /// Writes the batch atomically and returns once it is durable (the backend's flush).
    fn apply(&self, batch: &Batch) -> Result<(), StoreError>;
    /// Overwrites the stored schema version and flushes; only for tests of the refusal.
    #[cfg(test)]
    fn force_schema(&self, version: u32) -> Result<(), StoreError>;
}

/// A batch for the store thread and where its outcome goes.
struct Write {
    batch: Batch,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The open database: reads go to the backend directly, writes through the store thread.
pub struct Store {
    kind: StoreKind,
    backend: Arc<dyn Backend>,
    /// `None` only while dropping: closing it ends the store thread.
    writes: Option<mpsc::Sender<Write>>,
    thread: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens (or creates) the database in `dir`. `asked` is `--store`: a new directory gets it
    /// (or [`DEFAULT_KIND`]); an existing one is opened by the backend that wrote it, and
    /// refused when `asked` names another. A locked database and a newer schema are refused.
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
        let (writes, queue) = mpsc::channel::<Write>();
        let writer = backend.clone();
        let thread = std::thread::Builder::new()
            .name("tatzelwurm-store".into())
            .spawn(move || {
                for write in queue {
                    let _ = write.done.send(writer.apply(&write.batch));
                }
            })
            .map_err(|err| StoreError::Open {
                path: dir.to_path_buf(),
                cause: format!("cannot start the store thread: {err}"),
            })?;
        Ok(Store {
            kind,
            backend,
            writes: Some(writes),
            thread: Some(thread),
        })
    }

    /// The backend this database is kept in.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Reads every task record (outputs stay on disk), the id counter and the add keys.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        self.backend.load()
    }

    /// What the latest reported attempt of task `id` printed; empty if none was reported.
    pub fn output(&self, id: TaskId) -> Result<TaskOutput, StoreError> {
        Ok(self.backend.output(id)?.unwrap_or_default())
    }

    /// Writes the batch on the store thread and returns once it is flushed: only then may
    /// anyone be told.
    pub async fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let stopped = || StoreError::Failed("the store thread stopped".into());
        let (done, outcome) = oneshot::channel();
        self.writes
            .as_ref()
            .ok_or_else(stopped)?
            .send(Write { batch, done })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
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

/// Reads a stored big-endian integer of `N` bytes.
fn read_be<const N: usize>(raw: &[u8], what: &str) -> Result<[u8; N], StoreError> {
    raw.try_into()
        .map_err(|_| StoreError::Corrupt(what.to_string()))
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
