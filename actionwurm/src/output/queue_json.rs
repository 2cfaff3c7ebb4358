//! One queue as scripts read it from `queue list --json`: its settings, its tasks counted by
//! state (an object keyed by state name, every state present) and the workers serving it.

use serde::Serialize;
use serde_json::{Map, Value};
use tatzelwurm_proto::queue::QueueInfo;
use tatzelwurm_proto::task::TaskState;

/// A queue: `{"name", "paused", "limit" (null for none), "counts": {"ready": 2, ...},
/// "workers": ["name", ...]}`.
#[derive(Debug, Serialize)]
pub struct QueueJson<'a> {
    name: &'a str,
    paused: bool,
    /// At most this many of its tasks at once; null when there is no limit.
    limit: Option<u32>,
    /// Tasks per state, every state of the life order present (zero included).
    counts: Map<String, Value>,
    /// Names of the connected workers serving it.
    workers: &'a [String],
}

impl<'a> QueueJson<'a> {
    /// The JSON of a queue.
    pub fn new(info: &'a QueueInfo) -> QueueJson<'a> {
        let counts = TaskState::ALL
            .into_iter()
            .map(|state| (state.as_str().to_string(), Value::from(info.count(state))))
            .collect();
        QueueJson {
            name: &info.name,
            paused: info.paused,
            limit: (info.limit > 0).then_some(info.limit),
            counts,
            workers: &info.workers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_client::fake_coordinator::queue;

    /// A queue has its contract keys; counts name every state; no limit is null.
    #[test]
    fn queue_json() {
        let mut info = queue("gpu");
        let json = serde_json::to_value(QueueJson::new(&info)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "gpu", "paused": false, "limit": null,
                "counts": {"created": 0, "blocked": 0, "scheduled": 0, "paused": 0, "ready": 2,
                    "running": 1, "waiting": 0, "completed": 5, "failed": 0, "killed": 0},
                "workers": ["host:42"]})
        );
        info.limit = 3;
        info.paused = true;
        let json = serde_json::to_value(QueueJson::new(&info)).unwrap();
        assert_eq!(json["limit"], 3);
        assert_eq!(json["paused"], true);
    }
}
