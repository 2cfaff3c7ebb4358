//! Schema 5 → 6, for every backend: schema 6 adds the `events` key space (see `events.rs`) and
//! changes nothing else.
//!
//! Crash-safe by order: each backend creates the (empty) `events` space when it opens a
//! database and makes its creation durable before it returns (fjall fsyncs its partitions'
//! directory, sled flushes), so by the time this runs the space is there; the one write here
//! sets the version to 6. A crash before that write leaves a schema 5 database with an empty
//! extra space, which schema 5 never reads and the next open upgrades again. Older databases
//! chain through: `split.rs` (schema 3) and `rewrite.rs` (schema 4) bring them to 5 first.

use super::writes::Writes;
use super::{Backend, Space, StoreError, SCHEMA_KEY};
use tracing::info;

/// The schema this step starts from.
pub(super) const FROM: u32 = 5;

/// The schema it brings a database to.
pub(super) const TO: u32 = 6;

/// Sets the schema version of a schema 5 database to 6 (its `events` space exists already).
pub(super) fn add_events(backend: &dyn Backend) -> Result<(), StoreError> {
    let mut writes = Writes::default();
    writes.put(Space::Meta, SCHEMA_KEY, &TO.to_be_bytes());
    backend.apply(&writes)?;
    info!("moved the database to schema {TO} (a durable event log beside the tasks)");
    Ok(())
}
