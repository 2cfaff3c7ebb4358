//! The `events` key space (schema 6): the durable event log.
//!
//! Layout: a block of consecutive events per key: the seq of the block's LAST event as u64
//! big-endian (so keys sort by seq) → bincode of a `Vec<Event>` of the wire's `Event`
//! (`tatzelwurm_proto::event`, seq included), at most `EVENTS_PER_BLOCK`, in increasing seq.
//! A batch writes its events as blocks (a round's events are consecutive), so a round costs
//! one or a few keys, not one per event: with one key per event the log doubled the store's
//! writes per task and slowed W4's run through 10^6 tasks several times over. Keyed by the
//! last seq, a read `after` N starts at the first key above N: the block holding N + 1.
//! Appended by `Batch::events`, trimmed from the oldest end by `Batch::trim_events_through`
//! (a block that straddles the trim point is rewritten without its trimmed head), read in
//! pages by `StoreReader::events`.
//!
//! Sequence numbers never repeat, across restarts and trims: a trim also records, in `meta`
//! under `events_trimmed_through` (u64 big-endian), the highest seq it removed, and a start
//! continues after the greater of that and the last stored seq. Nothing is written to `meta`
//! per round for this: only a trim writes it.

use super::writes::Writes;
use super::{decode, read_be, Backend, Space, StoreError};
use tatzelwurm_proto::event::Event;

/// The `meta` key of the highest seq a trim removed (absent until the first trim). Stored
/// bytes: changing it breaks every database; bump `SCHEMA_VERSION` and migrate.
pub(super) const EVENTS_TRIMMED_KEY: &[u8] = b"events_trimmed_through";

/// Where the stored event log stands at a start (`Loaded::events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventsMeta {
    /// The seq the next event gets: 1 for a log that never had one, else one more than the
    /// highest seq ever written (kept or trimmed).
    pub next_seq: u64,
    /// The lowest seq still stored; `None` when no event is stored. A replay can start no
    /// earlier than this (`EventsGone` before it).
    pub oldest: Option<u64>,
}

/// Events one stored block holds at most (a few tens of KB).
pub(super) const EVENTS_PER_BLOCK: usize = 1_000;

/// The key of the block whose last event is `seq`.
pub(super) fn event_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// A stored block's events.
fn block(value: &[u8]) -> Result<Vec<Event>, StoreError> {
    decode(value)
}

fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    read_be(key, "an event's key").map(u64::from_be_bytes)
}

/// Reads where the log stands: its first and last stored key and the trim mark.
pub(super) fn load_meta(backend: &dyn Backend) -> Result<EventsMeta, StoreError> {
    let mut oldest = None;
    backend.visit(Space::Events, &[], &mut |_, value| {
        oldest = block(value)?.first().map(|event| event.seq);
        Ok(false)
    })?;
    let last = backend
        .last_key(Space::Events)?
        .map(|key| seq_of(&key))
        .transpose()?
        .unwrap_or(0);
    let trimmed = trimmed_through(backend)?;
    Ok(EventsMeta {
        next_seq: last.max(trimmed) + 1,
        oldest,
    })
}

/// The highest seq a trim removed (0 before the first trim).
fn trimmed_through(backend: &dyn Backend) -> Result<u64, StoreError> {
    match backend.get(Space::Meta, EVENTS_TRIMMED_KEY)? {
        Some(raw) => Ok(u64::from_be_bytes(read_be(&raw, "events_trimmed_through")?)),
        None => Ok(0),
    }
}

/// Adds to `writes` the removal of every stored event with seq `<= through`, and the trim
/// mark (never lowered). Reads the keys to remove (the oldest ones, in order, up to
/// `through`): a trim removes what is there, not a range guessed from seqs.
pub(super) fn trim_writes(
    backend: &dyn Backend,
    through: u64,
    writes: &mut Writes,
) -> Result<(), StoreError> {
    let limit = event_key(through);
    let mut straddling = None;
    backend.visit(Space::Events, &[], &mut |key, value| {
        if key > limit.as_slice() {
            // The first block past the point may still hold events at or below it.
            let events = block(value)?;
            if events.first().is_some_and(|event| event.seq <= through) {
                let rest: Vec<Event> = events.into_iter().filter(|e| e.seq > through).collect();
                straddling = Some((key.to_vec(), rest));
            }
            return Ok(false);
        }
        writes.remove(Space::Events, key);
        Ok(true)
    })?;
    if let Some((key, rest)) = straddling {
        writes.put_encoded(Space::Events, &key, &rest)?;
    }
    let mark = trimmed_through(backend)?.max(through);
    writes.put(Space::Meta, EVENTS_TRIMMED_KEY, &mark.to_be_bytes());
    Ok(())
}

/// Up to `limit` stored events with seq above `after` and at most `through`, ascending.
pub(super) fn page(
    backend: &dyn Backend,
    after: u64,
    through: u64,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    let Some(from) = after.checked_add(1) else {
        return Ok(events);
    };
    if limit == 0 {
        return Ok(events);
    }
    let mut beyond = false;
    backend.visit(Space::Events, &event_key(from), &mut |_, value| {
        for event in block(value)? {
            beyond |= event.seq > through;
            if event.seq > after && !beyond && events.len() < limit {
                events.push(event);
            }
        }
        Ok(events.len() < limit && !beyond)
    })?;
    Ok(events)
}
