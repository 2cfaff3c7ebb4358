//! Tasks, workers, queues and events as programs read them from the HTTP API.
//!
//! The shapes are `tatzelwurm_proto::json`'s, the ones the CLI's `--json` output prints, so a
//! script can switch between the two: arguments and results as JSON values, times as seconds
//! since the epoch, policy durations in seconds. Keys are a contract for programs: add keys
//! freely, never rename or retype one (in `proto/src/json.rs`, their one owner).

use serde_json::{json, Value};
use tatzelwurm_proto::event::Event;
use tatzelwurm_proto::json::EventJson;

pub use tatzelwurm_proto::json::{QueueJson, TaskJson, WorkerJson};

/// One event as a value, for a server-sent event's `data`: `actionwurm events --json`'s keys
/// (`{"seq", "at", "kind": "task"|"worker"|"purged", ...}`), printed in key order, as every
/// object of the API that goes through a `Value`.
pub fn event_json(event: &Event) -> Value {
    json!(EventJson::new(event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::event::EventKind;
    use tatzelwurm_proto::task::Timestamp;

    /// An event's data line has the CLI's keys, sorted as every `Value` of the API is.
    #[test]
    fn event_data_line() {
        let purged = Event {
            seq: 8,
            at: Timestamp(2_000),
            kind: EventKind::Purged { count: 3 },
        };
        assert_eq!(
            event_json(&purged).to_string(),
            r#"{"at":2.0,"count":3,"kind":"purged","seq":8}"#
        );
    }
}
