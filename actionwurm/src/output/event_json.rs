//! One event as scripts read it (`actionwurm events --json`, one object per line): `seq`, `at`
//! (seconds since the epoch), `kind` (`task`, `purged` or `worker`) and the fields of that kind.
//! The keys are a contract for scripts, as the other JSON is: add freely, never rename.

use serde::Serialize;
use tatzelwurm_proto::event::{Event, EventKind};

/// The JSON of one event.
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    seq: u64,
    at: f64,
    #[serde(flatten)]
    kind: KindJson<'a>,
}

/// The fields of each kind of event.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum KindJson<'a> {
    /// A task was written in a new state.
    Task {
        task: u64,
        queue: &'a str,
        state: &'static str,
        attempt: u32,
        /// The worker of that attempt, by name, or null.
        worker: Option<&'a str>,
        /// A failed task's error kind (`ValueError`, `MemoryLimit`), or null.
        error: Option<&'a str>,
    },
    /// Finished tasks were purged, this many in one round.
    Purged { count: u64 },
    /// A worker joined, started draining or left.
    Worker {
        worker: &'a str,
        worker_id: u64,
        /// `joined`, `draining` or `left`.
        change: &'static str,
    },
}

impl<'a> EventJson<'a> {
    /// The JSON of `event`.
    pub fn new(event: &'a Event) -> EventJson<'a> {
        let kind = match &event.kind {
            EventKind::Task {
                id,
                queue,
                state,
                attempt,
                worker,
                error,
            } => KindJson::Task {
                task: id.0,
                queue,
                state: state.as_str(),
                attempt: attempt.0,
                worker: worker.as_deref(),
                error: error.as_deref(),
            },
            EventKind::Purged { count } => KindJson::Purged { count: *count },
            EventKind::Worker { id, name, change } => KindJson::Worker {
                worker: name,
                worker_id: id.0,
                change: change.as_str(),
            },
        };
        EventJson {
            seq: event.seq,
            at: event.at.as_secs_f64(),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tatzelwurm_proto::event::WorkerChange;
    use tatzelwurm_proto::task::{TaskState, Timestamp};
    use tatzelwurm_proto::{Attempt, TaskId, WorkerId};

    fn json_of(kind: EventKind) -> serde_json::Value {
        let event = Event {
            seq: 9,
            at: Timestamp(1_500),
            kind,
        };
        serde_json::to_value(EventJson::new(&event)).unwrap()
    }

    /// Each kind has exactly its contract keys, with `kind` naming it.
    #[test]
    fn every_kind() {
        let task = json_of(EventKind::Task {
            id: TaskId(4),
            queue: "gpu".into(),
            state: TaskState::Failed,
            attempt: Attempt(2),
            worker: Some("box:1".into()),
            error: Some("MemoryLimit".into()),
        });
        assert_eq!(
            task,
            json!({"seq": 9, "at": 1.5, "kind": "task", "task": 4, "queue": "gpu",
                "state": "failed", "attempt": 2, "worker": "box:1", "error": "MemoryLimit"})
        );
        assert_eq!(
            json_of(EventKind::Purged { count: 3 }),
            json!({"seq": 9, "at": 1.5, "kind": "purged", "count": 3})
        );
        assert_eq!(
            json_of(EventKind::Worker {
                id: WorkerId(2),
                name: "box:1".into(),
                change: WorkerChange::Left,
            }),
            json!({"seq": 9, "at": 1.5, "kind": "worker", "worker": "box:1", "worker_id": 2,
                "change": "left"})
        );
    }
}
