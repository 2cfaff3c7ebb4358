//! Spans and moments as people type them (`--delay 1h30m`, `--at 2026-12-01T09:00:00Z`): the
//! parsers live in `tatzelwurm_proto::when`, shared with the coordinator's `--keep-finished`.

pub use tatzelwurm_proto::when::{parse_every, parse_span, parse_time};
