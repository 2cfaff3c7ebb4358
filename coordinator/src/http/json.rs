//! Tasks, workers, queues and events as programs read them from the HTTP API.
//!
//! Tasks, workers and queues use the keys and value types of the CLI's `--json` output
//! (`actionwurm/src/output.rs` and `output/`), events those of `actionwurm events --json`, so a
//! script can switch between the two: arguments and results as JSON values, times as seconds
//! since the epoch, policy durations in seconds. Keys are a contract for programs: add keys
//! freely, never rename or retype one.

use serde::Serialize;
use serde_json::{Map, Value};
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::event::{Event, EventKind};
use tatzelwurm_proto::queue::QueueInfo;
use tatzelwurm_proto::task::{TaskError, TaskInfo, TaskPolicy, TaskState, Timestamp, When};
use tatzelwurm_proto::worker::WorkerUsage;

/// One task: `task show --json`'s keys; `stdout`/`stderr` only where the output was asked for.
#[derive(Debug, Serialize)]
pub struct TaskJson<'a> {
    id: u64,
    state: &'static str,
    function: &'a str,
    args: Value,
    kwargs: Value,
    queue: &'a str,
    priority: i8,
    run_at: Option<f64>,
    after: Vec<u64>,
    policy: PolicyJson,
    result: Value,
    error: Option<ErrorJson<'a>>,
    worker: Option<&'a str>,
    attempts: u32,
    failures: u32,
    crashes: u32,
    retry_at: Option<f64>,
    created_at: f64,
    started_at: Option<f64>,
    finished_at: Option<f64>,
    #[serde(flatten)]
    output: Option<OutputJson<'a>>,
}

/// A task's error: the exception's type, message and traceback.
#[derive(Debug, Serialize)]
struct ErrorJson<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
    traceback: &'a str,
}

/// `TaskPolicy` with seconds for milliseconds.
#[derive(Debug, Serialize)]
struct PolicyJson {
    at_most_once: bool,
    retries: u32,
    backoff: f64,
    timeout: Option<f64>,
    crash_limit: u32,
}

/// The captured output of a task's latest attempt.
#[derive(Debug, Serialize)]
struct OutputJson<'a> {
    stdout: Option<&'a str>,
    stderr: Option<&'a str>,
}

impl<'a> TaskJson<'a> {
    /// The JSON of a task; `with_output` adds `stdout` and `stderr`.
    pub fn new(info: &'a TaskInfo, with_output: bool) -> TaskJson<'a> {
        let run_at = info.spec.run_at.map(|when| match when {
            When::At(at) => at,
            When::Delay(ms) => Timestamp(info.created_at.0.saturating_add(ms)),
        });
        TaskJson {
            id: info.id.0,
            state: info.state.as_str(),
            function: &info.spec.function,
            args: json_value(&info.spec.args),
            kwargs: json_value(&info.spec.kwargs),
            queue: &info.spec.queue,
            priority: info.spec.priority,
            run_at: run_at.map(Timestamp::as_secs_f64),
            after: info.spec.after.iter().map(|id| id.0).collect(),
            policy: PolicyJson::new(&info.spec.policy),
            result: info.result.as_deref().map_or(Value::Null, json_value),
            error: info.error.as_ref().map(ErrorJson::new),
            worker: info.worker.as_deref(),
            attempts: info.attempts.0,
            failures: info.failures,
            crashes: info.crashes,
            retry_at: info.retry_at.map(Timestamp::as_secs_f64),
            created_at: info.created_at.as_secs_f64(),
            started_at: info.started_at.map(Timestamp::as_secs_f64),
            finished_at: info.finished_at.map(Timestamp::as_secs_f64),
            output: with_output.then(|| OutputJson {
                stdout: info.output.as_ref().map(|o| o.stdout.as_str()),
                stderr: info.output.as_ref().map(|o| o.stderr.as_str()),
            }),
        }
    }
}

impl PolicyJson {
    fn new(policy: &TaskPolicy) -> PolicyJson {
        PolicyJson {
            at_most_once: policy.at_most_once,
            retries: policy.retries,
            backoff: policy.backoff_ms as f64 / 1000.0,
            timeout: policy.timeout_ms.map(|ms| ms as f64 / 1000.0),
            crash_limit: policy.crash_limit,
        }
    }
}

impl<'a> ErrorJson<'a> {
    fn new(error: &'a TaskError) -> ErrorJson<'a> {
        ErrorJson {
            kind: &error.kind,
            message: &error.message,
            traceback: &error.traceback,
        }
    }
}

/// One worker: `worker list --json`'s keys, and `usage` as it last reported it.
#[derive(Debug, Serialize)]
pub struct WorkerJson<'a> {
    id: u64,
    name: &'a str,
    address: &'a str,
    slots: u32,
    running: u32,
    queued: u32,
    done: u64,
    python: &'a str,
    connected_at: f64,
    /// `active`, `draining`, or `held off`.
    state: &'static str,
    held_off_until: Option<f64>,
    queues: &'a [String],
    async_concurrency: u32,
    /// Seconds since it connected.
    uptime: f64,
    /// What its slots use; null until it has said.
    usage: Option<UsageJson>,
}

/// What a worker's slots use.
#[derive(Debug, Serialize)]
struct UsageJson {
    /// When it measured, seconds since the epoch (its clock).
    at: f64,
    /// Resident memory of all its slots, bytes.
    rss: u64,
    /// CPU of all its slots, in cores (1.0 = one core busy).
    cpu: f64,
    /// `--max-memory` in bytes, or null.
    max_memory: Option<u64>,
    memory_replaced: u64,
    memory_killed: u64,
    /// Per slot: pid, rss (bytes), cpu (cores), running.
    slots: Vec<SlotJson>,
}

/// One slot process.
#[derive(Debug, Serialize)]
struct SlotJson {
    pid: u32,
    rss: u64,
    cpu: f64,
    running: u32,
}

impl<'a> WorkerJson<'a> {
    /// The JSON of a worker.
    pub fn new(info: &'a WorkerInfo) -> WorkerJson<'a> {
        WorkerJson {
            id: info.id.0,
            name: &info.name,
            address: &info.address,
            slots: info.slots,
            running: info.running,
            queued: info.queued,
            done: info.done,
            python: &info.python,
            connected_at: info.connected_at.as_secs_f64(),
            state: worker_state(info),
            held_off_until: info.held_off_until.map(Timestamp::as_secs_f64),
            queues: &info.queues,
            async_concurrency: info.async_concurrency,
            uptime: Timestamp::now().0.saturating_sub(info.connected_at.0) as f64 / 1000.0,
            usage: info.usage.as_ref().map(UsageJson::new),
        }
    }
}

impl UsageJson {
    fn new(usage: &WorkerUsage) -> UsageJson {
        UsageJson {
            at: usage.at.as_secs_f64(),
            rss: usage.slots.iter().map(|s| s.rss).sum(),
            cpu: usage
                .slots
                .iter()
                .map(|s| f64::from(s.cpu_permille))
                .sum::<f64>()
                / 1000.0,
            max_memory: usage.max_memory,
            memory_replaced: usage.memory_replaced,
            memory_killed: usage.memory_killed,
            slots: usage
                .slots
                .iter()
                .map(|s| SlotJson {
                    pid: s.pid,
                    rss: s.rss,
                    cpu: f64::from(s.cpu_permille) / 1000.0,
                    running: s.running,
                })
                .collect(),
        }
    }
}

/// A worker's state as `worker list` shows it.
pub fn worker_state(info: &WorkerInfo) -> &'static str {
    if info.draining {
        "draining"
    } else if info
        .held_off_until
        .is_some_and(|until| until > Timestamp::now())
    {
        "held off"
    } else {
        "active"
    }
}

/// One queue: `queue list --json`'s keys.
#[derive(Debug, Serialize)]
pub struct QueueJson<'a> {
    name: &'a str,
    paused: bool,
    /// null when there is no limit.
    limit: Option<u32>,
    /// Tasks per state, every state present.
    counts: Map<String, Value>,
    workers: &'a [String],
}

impl<'a> QueueJson<'a> {
    /// The JSON of a queue.
    pub fn new(info: &'a QueueInfo) -> QueueJson<'a> {
        QueueJson {
            name: &info.name,
            paused: info.paused,
            limit: (info.limit > 0).then_some(info.limit),
            counts: TaskState::ALL
                .into_iter()
                .map(|state| (state.as_str().to_string(), Value::from(info.count(state))))
                .collect(),
            workers: &info.workers,
        }
    }
}

/// One event, as `actionwurm events --json` prints it: `{"seq", "at", "kind": "task"|"worker"|
/// "purged", ...}`; a task event adds `task`, `queue`, `state`, `attempt`, `worker`, `error`; a
/// worker event `worker` (its name), `worker_id`, `change` (`joined`, `draining`, `left`); a
/// purge `count`.
pub fn event_json(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("seq".into(), event.seq.into());
    object.insert("at".into(), event.at.as_secs_f64().into());
    match &event.kind {
        EventKind::Task {
            id,
            queue,
            state,
            attempt,
            worker,
            error,
        } => {
            object.insert("kind".into(), "task".into());
            object.insert("task".into(), id.0.into());
            object.insert("queue".into(), queue.as_str().into());
            object.insert("state".into(), state.as_str().into());
            object.insert("attempt".into(), attempt.0.into());
            object.insert("worker".into(), worker.as_deref().into());
            object.insert("error".into(), error.as_deref().into());
        }
        EventKind::Purged { count } => {
            object.insert("kind".into(), "purged".into());
            object.insert("count".into(), (*count).into());
        }
        EventKind::Worker { id, name, change } => {
            object.insert("kind".into(), "worker".into());
            object.insert("worker".into(), name.as_str().into());
            object.insert("worker_id".into(), id.0.into());
            object.insert("change".into(), change.as_str().into());
        }
    }
    Value::Object(object)
}

/// JSON text as a value; text that is not JSON (never sent by the coordinator) is kept as a
/// string rather than lost.
fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::event::WorkerChange;
    use tatzelwurm_proto::{Attempt, TaskId, WorkerId};

    /// A task event carries its task's fields and a worker event its change, under the
    /// documented keys.
    #[test]
    fn events_as_json() {
        let task = Event {
            seq: 7,
            at: Timestamp(1_500),
            kind: EventKind::Task {
                id: TaskId(3),
                queue: "default".into(),
                state: TaskState::Failed,
                attempt: Attempt(2),
                worker: Some("w1".into()),
                error: Some("ValueError".into()),
            },
        };
        assert_eq!(
            event_json(&task),
            serde_json::json!({"seq": 7, "at": 1.5, "kind": "task", "task": 3, "queue": "default",
                "state": "failed", "attempt": 2, "worker": "w1", "error": "ValueError"})
        );
        let worker = Event {
            seq: 8,
            at: Timestamp(2_000),
            kind: EventKind::Worker {
                id: WorkerId(4),
                name: "host:1".into(),
                change: WorkerChange::Left,
            },
        };
        assert_eq!(
            event_json(&worker),
            serde_json::json!({"seq": 8, "at": 2.0, "kind": "worker", "worker_id": 4,
                "worker": "host:1", "change": "left"})
        );
    }

    /// A task's arguments and result are JSON values, its times seconds, and its output shows
    /// only when asked for.
    #[test]
    fn task_as_json() {
        let mut info = TaskInfo::new(
            TaskId(5),
            tatzelwurm_proto::task::TaskSpec::call("m:f", "[1, \"a\"]", "{\"k\": true}"),
            TaskState::Completed,
            Timestamp(3_000),
        );
        info.result = Some("{\"n\": 2}".into());
        let json = serde_json::to_value(TaskJson::new(&info, false)).unwrap();
        assert_eq!(json["args"], serde_json::json!([1, "a"]));
        assert_eq!(json["kwargs"], serde_json::json!({"k": true}));
        assert_eq!(json["result"], serde_json::json!({"n": 2}));
        assert_eq!(json["created_at"], serde_json::json!(3.0));
        assert!(json.get("stdout").is_none());
        let json = serde_json::to_value(TaskJson::new(&info, true)).unwrap();
        assert_eq!(json["stdout"], Value::Null);
    }
}
