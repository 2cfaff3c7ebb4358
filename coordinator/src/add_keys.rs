//! `AddKeys`: the idempotency keys of recent adds, so that an add re-sent after a dropped
//! connection creates nothing twice.
//!
//! A client puts a random `AddKey` on each add and sends the same key again when it re-sends
//! that add. The task actor looks the key up before it adds: a known key is answered with the
//! ids the first add created, and nothing is created. A new key is recorded with the ids the add
//! got (they are consecutive, so the first id and the count say it all) and written to the store
//! in the same batch, under the same flush, as the tasks themselves: after a crash either both are
//! there or neither is.
//!
//! Keys are kept for `RETENTION` (24 hours) and at most `MAX_KEYS` of them (the oldest go
//! first); expired ones are dropped when the store is loaded and in every round. A client
//! re-sends within seconds (it gives up on a connection that is not back within 30 s), so both
//! bounds are far beyond what it needs, and they keep memory and disk bounded (about 100 bytes
//! per key in memory, 40 on disk). A plain struct with `now` passed in: the task actor holds it,
//! the tests below drive it directly.

use std::collections::{HashMap, VecDeque};
use tatzelwurm_proto::actioner::AddKey;
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::TaskId;

/// How long a key is honoured: 24 hours, in milliseconds.
pub const RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// Keys kept at most; past this the oldest is forgotten early.
pub const MAX_KEYS: usize = 1_000_000;

/// What one keyed add created: `count` tasks with consecutive ids from `first`, at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedAdd {
    /// The first id the add got.
    pub first: TaskId,
    /// How many tasks it added.
    pub count: u64,
    /// When it was added; the key expires `RETENTION_MS` later.
    pub at: Timestamp,
}

impl KeyedAdd {
    /// The ids the add got, in order.
    pub fn ids(&self) -> Vec<TaskId> {
        (self.first.0..self.first.0 + self.count)
            .map(TaskId)
            .collect()
    }
}

/// A change to the stored keys, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Record (or replace) a key.
    Put(AddKey, KeyedAdd),
    /// Forget a key.
    Remove(AddKey),
}

/// The keys of recent adds. See the module comment.
#[derive(Debug)]
pub struct AddKeys {
    /// Every key kept, with what its add created.
    entries: HashMap<AddKey, KeyedAdd>,
    /// The keys in the order they were recorded, oldest first: pruning pops from the front.
    order: VecDeque<AddKey>,
    /// How long a key is honoured.
    retention_ms: u64,
    /// How many keys are kept at most.
    max_keys: usize,
    /// Changes not yet taken for the store, in order.
    changes: Vec<KeyChange>,
}

impl Default for AddKeys {
    fn default() -> Self {
        AddKeys::with_limits(RETENTION_MS, MAX_KEYS)
    }
}

impl AddKeys {
    /// An empty table with these bounds (the tests use small ones).
    pub fn with_limits(retention_ms: u64, max_keys: usize) -> AddKeys {
        AddKeys {
            entries: HashMap::new(),
            order: VecDeque::new(),
            retention_ms,
            max_keys: max_keys.max(1),
            changes: Vec::new(),
        }
    }

    /// The table of the keys loaded from the store; the expired ones (and any beyond
    /// `MAX_KEYS`) are dropped at once and their removal is queued for the store.
    pub fn recover(stored: Vec<(AddKey, KeyedAdd)>, now: Timestamp) -> AddKeys {
        AddKeys::recover_with(stored, now, AddKeys::default())
    }

    fn recover_with(
        mut stored: Vec<(AddKey, KeyedAdd)>,
        now: Timestamp,
        mut keys: AddKeys,
    ) -> AddKeys {
        stored.sort_by_key(|(key, add)| (add.at, *key));
        for (key, add) in stored {
            keys.entries.insert(key, add);
            keys.order.push_back(key);
        }
        keys.prune(now);
        keys
    }

    /// What the add with `key` created, if the key is kept.
    pub fn get(&self, key: &AddKey) -> Option<KeyedAdd> {
        self.entries.get(key).copied()
    }

    /// Records that the add with `key` created `ids` (consecutive) at `now`. An add of no task
    /// is not recorded: re-sending it creates nothing either.
    pub fn insert(&mut self, key: AddKey, ids: &[TaskId], now: Timestamp) {
        let Some(first) = ids.first() else {
            return;
        };
        debug_assert!(ids.windows(2).all(|w| w[1].0 == w[0].0 + 1));
        let add = KeyedAdd {
            first: *first,
            count: ids.len() as u64,
            at: now,
        };
        if self.entries.insert(key, add).is_none() {
            self.order.push_back(key);
        }
        self.changes.push(KeyChange::Put(key, add));
        while self.entries.len() > self.max_keys {
            self.pop_oldest();
        }
    }

    /// Forgets every key older than the retention; returns how many went.
    pub fn prune(&mut self, now: Timestamp) -> usize {
        let mut dropped = 0;
        while let Some(key) = self.order.front() {
            let expired = self
                .entries
                .get(key)
                .is_none_or(|add| add.at.0.saturating_add(self.retention_ms) <= now.0);
            if !expired && self.entries.len() <= self.max_keys {
                break;
            }
            self.pop_oldest();
            dropped += 1;
        }
        dropped
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The changes since the last call, in the order they must be applied.
    pub fn take_changes(&mut self) -> Vec<KeyChange> {
        std::mem::take(&mut self.changes)
    }

    fn pop_oldest(&mut self) {
        if let Some(key) = self.order.pop_front() {
            if self.entries.remove(&key).is_some() {
                self.changes.push(KeyChange::Remove(key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> AddKey {
        AddKey([n; 16])
    }

    fn ids(first: u64, count: u64) -> Vec<TaskId> {
        (first..first + count).map(TaskId).collect()
    }

    /// A recorded key gives back the ids of its add, and the record is queued for the store.
    #[test]
    fn a_key_gives_back_its_ids() {
        let mut keys = AddKeys::default();
        assert_eq!(keys.get(&key(1)), None);
        keys.insert(key(1), &ids(5, 3), Timestamp(10));
        let add = keys.get(&key(1)).unwrap();
        assert_eq!(add.ids(), ids(5, 3));
        assert_eq!(
            keys.take_changes(),
            vec![KeyChange::Put(
                key(1),
                KeyedAdd {
                    first: TaskId(5),
                    count: 3,
                    at: Timestamp(10)
                }
            )]
        );
        assert!(keys.take_changes().is_empty());
    }

    /// An add of no task records nothing.
    #[test]
    fn an_empty_add_is_not_recorded() {
        let mut keys = AddKeys::default();
        keys.insert(key(1), &[], Timestamp(10));
        assert!(keys.is_empty());
        assert!(keys.take_changes().is_empty());
    }

    /// Keys expire after the retention, oldest first, and each expiry is queued as a removal.
    #[test]
    fn keys_expire_after_the_retention() {
        let mut keys = AddKeys::with_limits(100, 10);
        keys.insert(key(1), &ids(1, 1), Timestamp(0));
        keys.insert(key(2), &ids(2, 1), Timestamp(50));
        keys.take_changes();
        assert_eq!(keys.prune(Timestamp(99)), 0);
        assert_eq!(keys.prune(Timestamp(100)), 1);
        assert_eq!(keys.get(&key(1)), None);
        assert!(keys.get(&key(2)).is_some());
        assert_eq!(keys.take_changes(), vec![KeyChange::Remove(key(1))]);
        assert_eq!(keys.prune(Timestamp(1_000)), 1);
        assert!(keys.is_empty());
    }

    /// Past the cap the oldest key is forgotten early, so memory stays bounded under any rate.
    #[test]
    fn the_oldest_keys_go_past_the_cap() {
        let mut keys = AddKeys::with_limits(u64::MAX / 2, 3);
        for n in 1..=5u8 {
            keys.insert(key(n), &ids(u64::from(n), 1), Timestamp(u64::from(n)));
        }
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.get(&key(2)), None);
        assert!(keys.get(&key(3)).is_some() && keys.get(&key(5)).is_some());
        let removed: Vec<KeyChange> = keys
            .take_changes()
            .into_iter()
            .filter(|c| matches!(c, KeyChange::Remove(_)))
            .collect();
        assert_eq!(
            removed,
            vec![KeyChange::Remove(key(1)), KeyChange::Remove(key(2))]
        );
    }

    /// Loading keeps the live keys, drops the expired ones and queues their removal, whatever
    /// order the store returned them in.
    #[test]
    fn recovery_drops_expired_keys() {
        let stored = vec![
            (
                key(2),
                KeyedAdd {
                    first: TaskId(4),
                    count: 2,
                    at: Timestamp(500),
                },
            ),
            (
                key(1),
                KeyedAdd {
                    first: TaskId(1),
                    count: 3,
                    at: Timestamp(0),
                },
            ),
        ];
        let mut keys = AddKeys::recover_with(stored, Timestamp(200), AddKeys::with_limits(100, 10));
        assert_eq!(keys.get(&key(1)), None);
        assert_eq!(keys.get(&key(2)).unwrap().ids(), ids(4, 2));
        assert_eq!(keys.take_changes(), vec![KeyChange::Remove(key(1))]);
        assert_eq!(keys.prune(Timestamp(600)), 1);
    }
}
