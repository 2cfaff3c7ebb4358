//! Schema 4 → 5, for every backend (`schema6.rs` goes on to 6 in the same open): every record
//! in `live` and `finished` is rewritten in place from schema 4's layout (`v4.rs`) to schema
//! 5's (the wire's `TaskInfo`), and the default queue's record gets the counts of the finished
//! tasks.
//!
//! Crash-safe by a mark: the records are rewritten in chunks, and each chunk's write also
//! writes, in `meta`, where the next chunk starts and the counts so far (one atomic, durable
//! write per chunk). A crash leaves a schema 4 database whose records before the mark are of
//! schema 5 and the rest of schema 4; the next open resumes at the mark, so no record is ever
//! decoded in the wrong layout nor counted twice. The last write sets the schema version to 5,
//! writes the default queue's record and removes the mark, together.
//!
//! The mark's value: one byte for the key space (0 `live`, 1 `finished`), the id to go on from
//! (u64 big-endian), then the completed, failed and killed counts so far (u64 big-endian each).
//! Stored bytes, but only between two opens of one migration.

use super::v4::{RecordV4, Tally};
use super::writes::Writes;
use super::{decode, read_be, Backend, Space, StoreError, SCHEMA_5, SCHEMA_KEY};
use tracing::info;

/// The `meta` key of the mark (see the module comment); present only while a migration from
/// schema 4 is under way.
pub(super) const MARK_KEY: &[u8] = b"rewrite_to_5_at";

/// Records rewritten per durable write: bounds the memory a migration of millions holds.
pub(super) const CHUNK: usize = 10_000;

/// The key spaces rewritten, in this order.
const SPACES: [Space; 2] = [Space::Live, Space::Finished];

/// Where a migration is: the next record to rewrite and what the finished ones counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    /// Index into `SPACES`.
    space: usize,
    /// The first id not yet rewritten in that space.
    from: u64,
    tally: Tally,
}

impl Mark {
    fn encode(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(33);
        value.push(self.space as u8);
        for word in [
            self.from,
            self.tally.completed,
            self.tally.failed,
            self.tally.killed,
        ] {
            value.extend_from_slice(&word.to_be_bytes());
        }
        value
    }

    fn decode(raw: &[u8]) -> Result<Mark, StoreError> {
        let corrupt = || StoreError::Corrupt("the mark of an interrupted migration".into());
        if raw.len() != 33 || usize::from(raw[0]) >= SPACES.len() {
            return Err(corrupt());
        }
        let word = |at: usize| u64::from_be_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        Ok(Mark {
            space: usize::from(raw[0]),
            from: word(1),
            tally: Tally {
                completed: word(9),
                failed: word(17),
                killed: word(25),
            },
        })
    }
}

/// Rewrites every schema 4 record as schema 5, `chunk` records per durable write, resuming
/// where an interrupted run stopped, then sets the schema version to 5. Safe to run again after
/// a crash at any point.
pub(super) fn rewrite_records(backend: &dyn Backend, chunk: usize) -> Result<(), StoreError> {
    let stored = backend.get(Space::Meta, MARK_KEY)?;
    let resumed = stored.is_some();
    let mut mark = match stored {
        Some(raw) => Mark::decode(&raw)?,
        None => Mark {
            space: 0,
            from: 0,
            tally: Tally::default(),
        },
    };
    let mut rewritten = 0u64;
    while mark.space < SPACES.len() {
        let space = SPACES[mark.space];
        let mut writes = Writes::with_capacity(chunk + 1, (chunk + 1) * 120);
        let mut last = None;
        backend.visit(space, &mark.from.to_be_bytes(), &mut |key, value| {
            let record = decode::<RecordV4>(value)?.upgrade();
            mark.tally.count(record.state);
            last = Some(u64::from_be_bytes(read_be(key, "a task key")?));
            writes.put_encoded(space, key, &record)?;
            Ok(writes.len() < chunk)
        })?;
        let next = last.and_then(|last| last.checked_add(1));
        match next {
            Some(from) => mark.from = from,
            None => {
                mark.space += 1;
                mark.from = 0;
            }
        }
        if writes.is_empty() {
            continue;
        }
        rewritten += writes.len() as u64;
        writes.put(Space::Meta, MARK_KEY, &mark.encode());
        backend.apply(&writes)?;
    }
    let mut last = Writes::default();
    mark.tally.queue_write(&mut last)?;
    last.put(Space::Meta, SCHEMA_KEY, &SCHEMA_5.to_be_bytes());
    last.remove(Space::Meta, MARK_KEY);
    backend.apply(&last)?;
    let how = if resumed { "resumed and " } else { "" };
    info!("{how}rewrote {rewritten} task records in the layout of schema {SCHEMA_5}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mark reads back as written, and a damaged one is refused rather than misread.
    #[test]
    fn the_mark_round_trips() {
        let mark = Mark {
            space: 1,
            from: 12_345,
            tally: Tally {
                completed: 7,
                failed: 8,
                killed: 9,
            },
        };
        assert_eq!(Mark::decode(&mark.encode()).unwrap(), mark);
        assert!(Mark::decode(&mark.encode()[..32]).is_err());
        let mut bad = mark.encode();
        bad[0] = 2;
        assert!(Mark::decode(&bad).is_err());
    }
}
