//! The sled backend: the store's key spaces as sled trees `meta`, `live`, `finished`,
//! `outputs`, `add_keys`, `queues`, `schedules` and `events` (and schema 3's `records` until it
//! is split) in the database directory itself (sled's `conf`, `db` and `snap.*` files).
//!
//! A database opened without an `events` tree (schema 5 or older) gets one, flushed before
//! `open` returns, so that `schema6` only has to write the new version.
//!
//! sled has no compaction to call: it rewrites and reuses the segments of its file that
//! removals emptied on its own, so after a purge the space is reused by later writes rather than
//! given back at once (see DESIGN.md).
//!
//! Schema 1 kept the output inside each record (tree `tasks`); schema 2 had no `add_keys`.
//! `migrate` moves such a database to schema 3 when it is opened (then `store/split.rs` to 5).
//!
//! A batch that writes more than one of the trees other than `outputs` writes them in one sled
//! transaction, which sled recovers all or nothing: a key is never durable without its tasks,
//! a finished record never without its removal from `live`, a queue's finished count never
//! without the task it counts. Outputs go in a batch of their own; `sync`'s flush covers
//! everything written before it, and only then is a batch durable. sled's flush is `sync_file_range`, which
//! survives a killed process but not a power cut (see DESIGN.md).

mod migrate;

use super::writes::Writes;
use super::{
    check_schema, read_be, Backend, Space, StoreError, Visitor, SCHEMA_KEY, SCHEMA_VERSION,
};
use sled::transaction::{TransactionError, Transactional};
use std::path::Path;

/// sled's page cache, instead of its default of 1 GiB. sled counts pages at their size on disk,
/// so this bounds the cached records; a large value (an output) is held in memory beyond it
/// once written or read until the coordinator restarts (measured: 500 outputs of 200 KB raised
/// the resident size by 100 MB with this limit or one of 8 MiB).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The schema `migrate` brings an older sled database to; `split` goes on from there.
const MIGRATED_SCHEMA: u32 = 3;

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> StoreError {
        StoreError::Failed(err.to_string())
    }
}

/// An open sled database.
pub(super) struct SledBackend {
    db: sled::Db,
    meta: sled::Tree,
    live: sled::Tree,
    finished: sled::Tree,
    outputs: sled::Tree,
    add_keys: sled::Tree,
    queues: sled::Tree,
    schedules: sled::Tree,
    events: sled::Tree,
}

impl SledBackend {
    /// Opens (or creates) the database in `dir`, refusing a locked one or a newer schema and
    /// migrating one older than schema 3 to 3.
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
        let meta = db.open_tree(Space::Meta.name())?;
        // A database without a version is new; it gets this build's.
        let found = match meta.get(SCHEMA_KEY)? {
            Some(raw) => Some(u32::from_be_bytes(read_be(&raw, "schema_version")?)),
            None => None,
        };
        check_schema(dir, found)?;
        let outputs = db.open_tree(Space::Outputs.name())?;
        match found {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(found) if found < MIGRATED_SCHEMA => {
                let records = db.open_tree(Space::Records.name())?;
                if found < 2 {
                    migrate::from_v1(&db, &records, &outputs)?;
                }
                // Schema 3 only adds the `add_keys` tree: opening it creates it, and the flush
                // below makes it durable before the version says 3.
                db.open_tree(Space::AddKeys.name())?;
                db.flush()?;
                meta.insert(SCHEMA_KEY, &MIGRATED_SCHEMA.to_be_bytes())?;
                db.flush()?;
            }
            Some(_) => {}
        }
        migrate::drop_v1_leftovers(&db)?;
        let had_events = db
            .tree_names()
            .iter()
            .any(|name| name == Space::Events.name().as_bytes());
        let events = db.open_tree(Space::Events.name())?;
        if !had_events {
            // Durable before `schema6` writes the version that says it is there.
            db.flush()?;
        }
        Ok(SledBackend {
            events,
            meta,
            live: db.open_tree(Space::Live.name())?,
            finished: db.open_tree(Space::Finished.name())?,
            outputs,
            add_keys: db.open_tree(Space::AddKeys.name())?,
            queues: db.open_tree(Space::Queues.name())?,
            schedules: db.open_tree(Space::Schedules.name())?,
            db,
        })
    }

    /// Whether schema 3's `records` tree is there (it is never created by a read).
    fn has_records(&self) -> bool {
        self.db
            .tree_names()
            .iter()
            .any(|name| name == Space::Records.name().as_bytes())
    }

    /// The tree of `space`; `None` for schema 3's records when they are not there.
    fn tree(&self, space: Space) -> Result<Option<sled::Tree>, StoreError> {
        Ok(Some(match space {
            Space::Meta => self.meta.clone(),
            Space::Live => self.live.clone(),
            Space::Finished => self.finished.clone(),
            Space::Outputs => self.outputs.clone(),
            Space::AddKeys => self.add_keys.clone(),
            Space::Queues => self.queues.clone(),
            Space::Schedules => self.schedules.clone(),
            Space::Events => self.events.clone(),
            Space::Records if self.has_records() => self.db.open_tree(Space::Records.name())?,
            Space::Records => return Ok(None),
        }))
    }
}

/// The writes of one key space, as a sled batch.
#[derive(Default)]
struct TreeWrites {
    batch: sled::Batch,
    used: bool,
}

impl TreeWrites {
    fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        match value {
            Some(value) => self.batch.insert(key, value),
            None => self.batch.remove(key),
        }
        self.used = true;
    }
}

impl Backend for SledBackend {
    fn schema(&self) -> Result<u32, StoreError> {
        match self.meta.get(SCHEMA_KEY)? {
            Some(raw) => Ok(u32::from_be_bytes(read_be(&raw, "schema_version")?)),
            None => Ok(SCHEMA_VERSION),
        }
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.tree(space)? {
            Some(tree) => Ok(tree.get(key)?.map(|value| value.to_vec())),
            None => Ok(None),
        }
    }

    fn visit(&self, space: Space, from: &[u8], visit: &mut Visitor<'_>) -> Result<(), StoreError> {
        let Some(tree) = self.tree(space)? else {
            return Ok(());
        };
        for entry in tree.range(from..) {
            let (key, value) = entry?;
            if !visit(&key, &value)? {
                break;
            }
        }
        Ok(())
    }

    fn last_key(&self, space: Space) -> Result<Option<Vec<u8>>, StoreError> {
        match self.tree(space)? {
            Some(tree) => Ok(tree.last()?.map(|(key, _)| key.to_vec())),
            None => Ok(None),
        }
    }

    fn write(&self, writes: &Writes) -> Result<(), StoreError> {
        // Every tree but `outputs`, which is written apart (see the module comment).
        let trees = [
            &self.meta,
            &self.live,
            &self.finished,
            &self.add_keys,
            &self.queues,
            &self.schedules,
            &self.events,
        ];
        // The writes of each of `trees`, in the same order.
        let mut parts: [TreeWrites; 7] = Default::default();
        let mut outputs = TreeWrites::default();
        for write in writes.iter() {
            let into = match write.space {
                Space::Meta => &mut parts[0],
                Space::Live => &mut parts[1],
                Space::Finished => &mut parts[2],
                Space::AddKeys => &mut parts[3],
                Space::Queues => &mut parts[4],
                Space::Schedules => &mut parts[5],
                Space::Events => &mut parts[6],
                Space::Outputs => &mut outputs,
                Space::Records => {
                    return Err(StoreError::Failed("records are never written".into()))
                }
            };
            into.push(write.key, write.value);
        }
        let (used_trees, used_parts): (Vec<&sled::Tree>, Vec<TreeWrites>) = trees
            .into_iter()
            .zip(parts)
            .filter(|(_, part)| part.used)
            .unzip();
        if used_parts.len() > 1 {
            used_trees
                .as_slice()
                .transaction(|views| {
                    for (view, part) in views.iter().zip(&used_parts) {
                        view.apply_batch(&part.batch)?;
                    }
                    Ok(())
                })
                .map_err(|err: TransactionError<()>| match err {
                    TransactionError::Storage(err) => StoreError::from(err),
                    TransactionError::Abort(()) => StoreError::Failed("aborted".into()),
                })?;
        } else {
            for (tree, part) in used_trees.into_iter().zip(used_parts) {
                tree.apply_batch(part.batch)?;
            }
        }
        if outputs.used {
            self.outputs.apply_batch(outputs.batch)?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        // On the store thread: blocking here blocks no runtime worker.
        self.db.flush()?;
        Ok(())
    }

    fn drop_records(&self) -> Result<(), StoreError> {
        if self.has_records() {
            self.db.drop_tree(Space::Records.name())?;
            self.db.flush()?;
        }
        Ok(())
    }
}

/// sled 0.34 reports a held lock only as an `Other` I/O error with this text.
fn is_lock_error(err: &std::io::Error) -> bool {
    err.to_string().contains("could not acquire lock")
}
