//! Tests of the fjall backend's own upkeep (what the conformance suite cannot see, because
//! sled has no such thing): when the small key spaces' memtables are sealed.

use super::super::writes::Writes;
use super::super::{write_backend_file, Backend, Space, StoreKind};
use super::{FjallBackend, MEMTABLE_BYTES};
use std::time::{Duration, Instant};

/// After one large key space's memtable is sealed, the small ones are sealed once, not again
/// at every later batch: a `queues` record written by each of 300 rounds (as every round that
/// finishes tasks writes one) is written out to a table a few times at most. Sealing it
/// again whenever the journals its own seals started were not yet deleted once wrote it out
/// 110 times in a W1 run of 100,000 tasks.
#[test]
fn small_key_spaces_are_sealed_once_per_large_seal() {
    let dir = tempfile::tempdir().unwrap();
    write_backend_file(dir.path(), StoreKind::Fjall).unwrap();
    let backend = FjallBackend::open(dir.path()).unwrap();
    // Past one memtable of `live`, in batches of 1 MiB: its memtable is sealed at least once.
    let value = vec![7u8; 64 * 1024];
    let mut key = 0u64;
    let mut written = 0usize;
    while written <= MEMTABLE_BYTES as usize + 1024 * 1024 {
        let mut writes = Writes::default();
        for _ in 0..16 {
            key += 1;
            writes.put(Space::Live, &key.to_be_bytes(), &value);
            written += value.len();
        }
        writes.put(Space::Queues, b"default", &key.to_be_bytes());
        backend.apply(&writes).unwrap();
    }
    for round in 0..300u64 {
        let mut writes = Writes::default();
        writes.put(Space::Queues, b"default", &round.to_be_bytes());
        backend.apply(&writes).unwrap();
    }
    // Let the flushes that were started end.
    let waited = Instant::now();
    while backend.keyspace.journal_count() > 2 && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        backend.live.flushes_completed() > 0,
        "live was sealed and written out"
    );
    let flushes = backend.queues.flushes_completed();
    assert!(flushes <= 3, "queues written out {flushes} times");
    assert_eq!(
        backend.get(Space::Queues, b"default").unwrap(),
        Some(299u64.to_be_bytes().to_vec())
    );
}
