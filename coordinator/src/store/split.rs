//! Schema 3 → 5, for every backend (`schema6.rs` goes on to 6 in the same open): the records
//! of schema 3's single key space `records` move to `live` or `finished` by their state, so
//! that a start reads only the live ones, and are converted on the way from schema 4's layout
//! (which schema 3 shared, see `v4.rs`) to schema 5's; the default queue's record gets the
//! counts of the finished tasks.
//!
//! Crash-safe by order: the copies are written in chunks (each durable before the next), then
//! the schema version says 5 (durable, with the default queue's record), and only then is
//! `records` dropped (`Store::open` drops a leftover `records` at every open). A crash before
//! the version is written leaves a schema 3 database whose `records` is untouched, and the next
//! open copies (and counts) again from the start; each copy also removes the id from the other
//! part, so a copy left by an earlier, interrupted run (of a task that an older coordinator
//! finished meanwhile) never survives.

use super::v4::{RecordV4, Tally};
use super::writes::Writes;
use super::{decode, Backend, Space, StoreError, SCHEMA_5, SCHEMA_KEY};
use tracing::info;

/// Records copied per durable write: bounds the memory a migration of millions holds.
const CHUNK: usize = 10_000;

/// Copies `records` into `live` and `finished` in schema 5's layout, then sets the schema
/// version to 5. Safe to run again after a crash at any point.
pub(super) fn split_records(backend: &dyn Backend) -> Result<(), StoreError> {
    let mut chunk = Writes::with_capacity(2 * CHUNK, 2 * CHUNK * 120);
    let mut tally = Tally::default();
    let (mut live, mut finished) = (0u64, 0u64);
    backend.visit(Space::Records, &[], &mut |key, value| {
        let record = decode::<RecordV4>(value)?.upgrade();
        tally.count(record.state);
        let (into, other) = if record.state.is_finished() {
            finished += 1;
            (Space::Finished, Space::Live)
        } else {
            live += 1;
            (Space::Live, Space::Finished)
        };
        chunk.put_encoded(into, key, &record)?;
        chunk.remove(other, key);
        if chunk.len() >= 2 * CHUNK {
            backend.apply(&chunk)?;
            chunk.clear();
        }
        Ok(true)
    })?;
    if !chunk.is_empty() {
        backend.apply(&chunk)?;
    }
    let mut last = Writes::default();
    tally.queue_write(&mut last)?;
    last.put(Space::Meta, SCHEMA_KEY, &SCHEMA_5.to_be_bytes());
    backend.apply(&last)?;
    if live + finished > 0 {
        info!("moved {live} live and {finished} finished tasks to schema {SCHEMA_5} (live apart from finished, in the new layout)");
    }
    Ok(())
}
