//! When the fjall backend compacts: after many keys were removed from a partition, a major
//! compaction rewrites what is left of it and drops the removed records with their tombstones,
//! so the disk shrinks.
//!
//! An LSM tree keeps a removed record and its tombstone in its tables until a compaction
//! reaches its last level; leveled compaction gets there late, and the disk holds both
//! meanwhile. Four partitions lose keys: `live` (every task leaves it when it finishes:
//! measured, 2.03 × the bytes of the finished records after 10^6 tasks without this, where the
//! finished part alone is about 1 ×), `finished` and `outputs` (a purge), and `events` (the
//! trim of the event log). Each counts its removals; a partition is due when they reach a
//! share of its entries (`approximate_len`, which counts tombstones too): a quarter, so that
//! the rewrites add up to a few times what is kept; a half for `events`, which loses its oldest
//! tenth at every trim, so that a steady log is rewritten at most every few trims.
//!
//! A major compaction rewrites the partition's tables only, so memtables are sealed and
//! written out first: the tombstones of the latest removals (a purge that just ended) are
//! there, and without them the records they remove would survive the compaction. Every
//! partition's memtable is sealed, not only the compacted ones', and the compaction waits for
//! all of them to be written out: fjall deletes a journal only once every partition with writes
//! in it has a table at least as new, so a partition compacted to nothing (every finished task
//! purged) before its journals were deleted would keep them, and the disk a purge wrote to
//! them, until it got a table again (seen in the `purge` benchmark: 53 MB of journals kept).
//!
//! fjall's own `major_compact` drops a removed record only if its tombstone is older than a
//! watermark that trails the writes by 50-100 batches and moves only with snapshots and a
//! monitor thread; right after a purge (the coordinator idle, no batch coming) nothing it
//! removed would go. So the compaction is asked of the tree directly with the keyspace's
//! current instant as the watermark. That is safe here: the store takes no snapshots, and an
//! iterator holds the tables it reads until it ends, so a compaction never changes what a
//! running read sees.
//!
//! Due partitions are looked at after each batch (with at least `AFTER_WRITE` removals) and
//! when the store is idle (at least `WHEN_IDLE`, so that the tail of a purge is compacted
//! once the purge is over). Compactions run off the store thread (writes go on meanwhile), one
//! thread at a time, every due partition in turn.

use super::super::{Space, StoreError};
use fjall::{AbstractTree, Keyspace, PartitionHandle};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Removals of a partition before a compaction is considered after a batch.
const AFTER_WRITE: usize = 100_000;

/// Removals of a partition before a compaction is considered when the store is idle.
const WHEN_IDLE: usize = 10_000;

/// How long a compaction waits at most for the memtables it sealed to be written out; past it
/// the tables are compacted anyway (the tombstones still in memory go at the next one).
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a compaction waits at most for fjall to delete the journals of the memtables it
/// sealed (see `seal_all`).
const JOURNAL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// One partition whose removals are counted.
struct Watched {
    space: Space,
    partition: PartitionHandle,
    /// Removals since its last compaction started.
    removals: AtomicUsize,
    /// Due when removals reach `approximate_len / share`.
    share: usize,
}

/// Counts removals per partition and runs the compactions they make due.
pub(super) struct Compactor {
    /// For the current instant (the watermark of a compaction, see the module comment).
    keyspace: Keyspace,
    watched: Vec<Watched>,
    /// Every partition, sealed before a compaction (see the module comment).
    all: Vec<PartitionHandle>,
    /// Whether a compaction thread runs now.
    running: Arc<AtomicBool>,
    /// The latest compaction thread, joined before the next one starts and on drop.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Compactor {
    /// Watches `partitions` (`live`, `finished`, `outputs` and `events`, by space); `all` are
    /// every partition of the keyspace.
    pub(super) fn new(
        keyspace: Keyspace,
        partitions: Vec<(Space, PartitionHandle)>,
        all: Vec<PartitionHandle>,
    ) -> Compactor {
        let watched = partitions
            .into_iter()
            .map(|(space, partition)| Watched {
                space,
                partition,
                removals: AtomicUsize::new(0),
                share: if space == Space::Events { 2 } else { 4 },
            })
            .collect();
        Compactor {
            keyspace,
            watched,
            all,
            running: Arc::new(AtomicBool::new(false)),
            thread: Mutex::new(None),
        }
    }

    /// Counts `count` removals from `space` (not watched: ignored).
    pub(super) fn removed(&self, space: Space, count: usize) {
        if let Some(watched) = self.watched.iter().find(|w| w.space == space) {
            watched.removals.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// After a batch: starts the compactions due with at least `AFTER_WRITE` removals.
    pub(super) fn after_write(&self) {
        self.start_due(AFTER_WRITE);
    }

    /// When the store is idle: starts those due with at least `WHEN_IDLE` removals.
    pub(super) fn when_idle(&self) {
        self.start_due(WHEN_IDLE);
    }

    /// Starts a thread compacting every partition due with at least `minimum` removals,
    /// unless one runs already (the next call after it ended looks again).
    fn start_due(&self, minimum: usize) {
        let due = |w: &Watched| {
            let removals = w.removals.load(Ordering::Relaxed);
            removals >= minimum && removals >= w.partition.approximate_len() / w.share
        };
        if !self.watched.iter().any(due) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut partitions = Vec::new();
        for watched in self.watched.iter().filter(|w| due(w)) {
            watched.removals.store(0, Ordering::Relaxed);
            partitions.push((watched.space, watched.partition.clone()));
        }
        let running = self.running.clone();
        let keyspace = self.keyspace.clone();
        let all = self.all.clone();
        let started = std::thread::Builder::new()
            .name("tatzelwurm-compact".into())
            .spawn(move || {
                seal_all(&keyspace, &all);
                for (space, partition) in partitions {
                    if let Err(err) = compact(&keyspace, &partition) {
                        tracing::warn!(
                            "compacting the {} key space failed ({err}); the database takes more disk until the next try",
                            space.name()
                        );
                    }
                }
                running.store(false, Ordering::Release);
            });
        match started {
            Ok(thread) => {
                if let Ok(mut slot) = self.thread.lock() {
                    // The previous one has ended (`running` was false).
                    if let Some(previous) = slot.replace(thread) {
                        let _ = previous.join();
                    }
                }
            }
            Err(_) => self.running.store(false, Ordering::Release),
        }
    }

    /// Waits for a running compaction, then compacts, on this thread, every watched partition
    /// that had removals since its last compaction.
    pub(super) fn compact_now(&self) -> Result<(), StoreError> {
        // Take the one compaction turn: a thread started meanwhile is waited for first.
        while self.running.swap(true, Ordering::AcqRel) {
            self.join();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        seal_all(&self.keyspace, &self.all);
        let mut outcome = Ok(());
        for watched in &self.watched {
            if watched.removals.swap(0, Ordering::Relaxed) > 0 {
                if let Err(err) = compact(&self.keyspace, &watched.partition) {
                    outcome = Err(err.into());
                    break;
                }
            }
        }
        self.running.store(false, Ordering::Release);
        outcome
    }

    /// Waits for the running compaction thread, if any.
    pub(super) fn join(&self) {
        let thread = self.thread.lock().ok().and_then(|mut slot| slot.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// Seals every partition's memtable and waits (at most `FLUSH_WAIT`) until none holds a
/// sealed one any more, then (at most `JOURNAL_WAIT`) until fjall has deleted the journals they
/// needed (it does so after a flush; under steady writes newer journals stay, hence the short
/// bound). Not fjall's `rotate_memtable_and_wait`, which waits until no flush at all is queued
/// and, under steady writes, might wait long.
fn seal_all(keyspace: &Keyspace, all: &[PartitionHandle]) {
    for partition in all {
        // An empty memtable is left as it is; a failure only keeps a journal longer.
        let _ = partition.rotate_memtable();
    }
    let pause = std::time::Duration::from_millis(10);
    let waited = std::time::Instant::now();
    while all.iter().any(|p| p.tree.sealed_memtable_count() > 0) && waited.elapsed() < FLUSH_WAIT {
        std::thread::sleep(pause);
    }
    let waited = std::time::Instant::now();
    while keyspace.journal_count() > 1 && waited.elapsed() < JOURNAL_WAIT {
        std::thread::sleep(pause);
    }
}

/// Compacts all the partition's tables into one level, dropping every record removed before
/// now with its tombstone (its memtable was written out by `seal_all` just before).
fn compact(keyspace: &Keyspace, partition: &PartitionHandle) -> fjall::Result<()> {
    // The tables of the last level, at the size of fjall's default (leveled) strategy, as
    // `PartitionHandle::major_compact` uses them.
    let target = u64::from(fjall::compaction::Leveled::default().target_size);
    partition.tree.major_compact(target, keyspace.instant())?;
    Ok(())
}
