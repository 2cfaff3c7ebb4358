//! Tasks, workers, queues, a worker's usage and events as programs read them in JSON: the one
//! owner of these shapes, used by the CLI's `--json` output (actionwurm's `output`) and by the
//! coordinator's HTTP API (`coordinator/src/http/json.rs`), so a script reads both alike.
//!
//! Arguments and results are JSON values, times seconds since the epoch, policy durations
//! seconds. The keys, their value types and their order are a contract for programs: add keys
//! freely, never rename, retype or reorder one. Not on the wire: nothing here is bincode.

use crate::actioner::WorkerInfo;
use crate::event::{Event, EventKind};
use crate::queue::QueueInfo;
use crate::task::{TaskError, TaskInfo, TaskPolicy, TaskState, Timestamp, When};
use crate::worker::WorkerUsage;
use serde::Serialize;
use serde_json::{Map, Value};

/// One task: arguments and result as JSON values, times (and `retry_at`, `run_at`) as seconds
/// since the epoch, durations of the policy in seconds, the error as an object or null;
/// `stdout`/`stderr` only where the output was asked for (`task show`).
#[derive(Debug, Serialize)]
pub struct TaskJson<'a> {
    id: u64,
    state: &'static str,
    function: &'a str,
    args: Value,
    kwargs: Value,
    /// The queue it waits in.
    queue: &'a str,
    /// Higher runs first.
    priority: i8,
    /// Not before this moment (null: as soon as it is ready).
    run_at: Option<f64>,
    /// The ids of the tasks it runs after.
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

/// How a task is retried, fenced and timed: `TaskPolicy` with seconds instead of milliseconds,
/// the unit of the `task add` flags. Also a schedule's (actionwurm's `schedule_json`).
#[derive(Debug, Serialize)]
pub struct PolicyJson {
    at_most_once: bool,
    retries: u32,
    backoff: f64,
    timeout: Option<f64>,
    crash_limit: u32,
}

/// The captured output of a task's latest attempt (null where the coordinator sent none).
#[derive(Debug, Serialize)]
struct OutputJson<'a> {
    stdout: Option<&'a str>,
    stderr: Option<&'a str>,
}

impl<'a> TaskJson<'a> {
    /// The JSON of a task; `with_output` adds `stdout` and `stderr`, as `task show` does.
    pub fn new(info: &'a TaskInfo, with_output: bool) -> TaskJson<'a> {
        TaskJson {
            id: info.id.0,
            state: info.state.as_str(),
            function: &info.spec.function,
            args: json_value(&info.spec.args),
            kwargs: json_value(&info.spec.kwargs),
            queue: &info.spec.queue,
            priority: info.spec.priority,
            run_at: run_at(info).map(Timestamp::as_secs_f64),
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

/// When a task may start: its `At`, or (from a coordinator that did not resolve a `Delay`,
/// which it always does on add) its delay counted from when it was added.
pub fn run_at(info: &TaskInfo) -> Option<Timestamp> {
    match info.spec.run_at? {
        When::At(at) => Some(at),
        When::Delay(millis) => Some(Timestamp(info.created_at.0.saturating_add(millis))),
    }
}

impl PolicyJson {
    /// The JSON of a task's policy.
    pub fn new(policy: &TaskPolicy) -> PolicyJson {
        PolicyJson {
            at_most_once: policy.at_most_once,
            retries: policy.retries,
            backoff: secs(policy.backoff_ms),
            timeout: policy.timeout_ms.map(secs),
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

/// One worker: its load, its state and `usage` as it last reported it.
#[derive(Debug, Serialize)]
pub struct WorkerJson<'a> {
    id: u64,
    name: &'a str,
    address: &'a str,
    slots: u32,
    /// Attempts it holds, queued ones included (its load).
    running: u32,
    /// Of `running`, those queued ahead of a free slot (prefetched) that no slot has started.
    queued: u32,
    done: u64,
    python: &'a str,
    connected_at: f64,
    /// `active`, `draining` while it finishes its tasks before leaving, or `held off` while
    /// it gets no tasks because its name keeps dropping its connections.
    state: &'static str,
    /// Until when it is held off (seconds since the epoch), or null.
    held_off_until: Option<f64>,
    /// The queues it serves.
    queues: &'a [String],
    /// How many `async def` tasks one of its slots runs at once.
    async_concurrency: u32,
    /// Seconds since it connected.
    uptime: f64,
    /// What its slots use (RSS, CPU, the memory limit), as it last measured; null until then.
    usage: Option<UsageJson>,
}

impl<'a> WorkerJson<'a> {
    /// The JSON of a worker; `now` measures its uptime.
    pub fn new(info: &'a WorkerInfo, now: Timestamp) -> WorkerJson<'a> {
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
            uptime: secs(now.0.saturating_sub(info.connected_at.0)),
            usage: info.usage.as_ref().map(UsageJson::new),
        }
    }
}

/// A worker's state as `worker list` shows it: `draining`, `held off` or `active`.
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

/// What a worker's slots use, as it last measured.
#[derive(Debug, Serialize)]
pub struct UsageJson {
    /// When it measured, seconds since the epoch (its clock).
    at: f64,
    /// Resident memory of all its slots, bytes.
    rss: u64,
    /// CPU of all its slots, in cores (1.0 = one core busy).
    cpu: f64,
    /// `workwurm --max-memory` in bytes, or null.
    max_memory: Option<u64>,
    /// Slots replaced after a task for passing `max_memory`.
    memory_replaced: u64,
    /// Tasks failed `MemoryLimit` for passing it while they ran.
    memory_killed: u64,
    /// One per slot, in slot order.
    slots: Vec<SlotJson>,
}

/// One slot process.
#[derive(Debug, Serialize)]
struct SlotJson {
    pid: u32,
    /// Bytes.
    rss: u64,
    /// Cores.
    cpu: f64,
    /// Tasks it runs now.
    running: u32,
}

impl UsageJson {
    /// The JSON of `usage`.
    pub fn new(usage: &WorkerUsage) -> UsageJson {
        UsageJson {
            at: usage.at.as_secs_f64(),
            rss: usage.slots.iter().map(|s| s.rss).sum(),
            // Summed as u64: a u32 of thousandths would overflow past four million cores.
            cpu: usage
                .slots
                .iter()
                .map(|s| u64::from(s.cpu_permille))
                .sum::<u64>() as f64
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

/// One event: `seq`, `at` (seconds since the epoch), `kind` (`task`, `purged` or `worker`) and
/// the fields of that kind; the fields of the other kinds are left out. A task event has
/// `task`, `queue`, `state`, `attempt`, `worker` (its attempt's, or null) and `error` (a failed
/// task's error kind, or null); a purge `count`; a worker event `worker` (its name),
/// `worker_id` and `change` (`joined`, `draining` or `left`).
///
/// The fields are public, in the order of the keys, for pyext's `EventFeed`: the Python
/// `Event` has these fields in this order, the other kinds' as None.
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    pub seq: u64,
    pub at: f64,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Left out (outer None) or null (inner None).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<Option<&'a str>>,
    /// Left out (outer None) or null (inner None).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<&'static str>,
}

impl<'a> EventJson<'a> {
    /// The JSON of `event`.
    pub fn new(event: &'a Event) -> EventJson<'a> {
        let none = EventJson {
            seq: event.seq,
            at: event.at.as_secs_f64(),
            kind: "",
            task: None,
            queue: None,
            state: None,
            attempt: None,
            worker: None,
            error: None,
            count: None,
            worker_id: None,
            change: None,
        };
        match &event.kind {
            EventKind::Task {
                id,
                queue,
                state,
                attempt,
                worker,
                error,
            } => EventJson {
                kind: "task",
                task: Some(id.0),
                queue: Some(queue),
                state: Some(state.as_str()),
                attempt: Some(attempt.0),
                worker: Some(worker.as_deref()),
                error: Some(error.as_deref()),
                ..none
            },
            EventKind::Purged { count } => EventJson {
                kind: "purged",
                count: Some(*count),
                ..none
            },
            EventKind::Worker { id, name, change } => EventJson {
                kind: "worker",
                worker: Some(Some(name)),
                worker_id: Some(id.0),
                change: Some(change.as_str()),
                ..none
            },
        }
    }
}

/// JSON text as a value; text that is not JSON (which the coordinator should never send) is
/// kept as a string rather than lost.
pub fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
}

/// Milliseconds as seconds, the unit people typed.
fn secs(millis: u64) -> f64 {
    millis as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::WorkerChange;
    use crate::task::TaskSpec;
    use crate::worker::SlotUsage;
    use crate::{Attempt, TaskId, WorkerId};
    use serde_json::json;

    fn event_of(kind: EventKind) -> Value {
        let event = Event {
            seq: 9,
            at: Timestamp(1_500),
            kind,
        };
        serde_json::to_value(EventJson::new(&event)).unwrap()
    }

    /// Each kind of event has exactly its contract keys, with `kind` naming it.
    #[test]
    fn every_kind_of_event() {
        let task = event_of(EventKind::Task {
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
            event_of(EventKind::Purged { count: 3 }),
            json!({"seq": 9, "at": 1.5, "kind": "purged", "count": 3})
        );
        assert_eq!(
            event_of(EventKind::Worker {
                id: WorkerId(2),
                name: "box:1".into(),
                change: WorkerChange::Left,
            }),
            json!({"seq": 9, "at": 1.5, "kind": "worker", "worker": "box:1", "worker_id": 2,
                "change": "left"})
        );
    }

    /// Keys are printed in the order declared, `seq`, `at`, `kind`, then the kind's fields;
    /// a task event's missing worker and error are null, not left out.
    #[test]
    fn event_key_order() {
        let text = |kind| {
            let event = Event {
                seq: 1,
                at: Timestamp(0),
                kind,
            };
            serde_json::to_string(&EventJson::new(&event)).unwrap()
        };
        assert_eq!(
            text(EventKind::Purged { count: 2 }),
            r#"{"seq":1,"at":0.0,"kind":"purged","count":2}"#
        );
        assert_eq!(
            text(EventKind::Task {
                id: TaskId(4),
                queue: "default".into(),
                state: TaskState::Ready,
                attempt: Attempt(0),
                worker: None,
                error: None,
            }),
            r#"{"seq":1,"at":0.0,"kind":"task","task":4,"queue":"default","state":"ready","attempt":0,"worker":null,"error":null}"#
        );
        assert_eq!(
            text(EventKind::Worker {
                id: WorkerId(2),
                name: "box:1".into(),
                change: WorkerChange::Joined,
            }),
            r#"{"seq":1,"at":0.0,"kind":"worker","worker":"box:1","worker_id":2,"change":"joined"}"#
        );
    }

    /// A task's arguments and result are JSON values, its times seconds, and its output shows
    /// only when asked for.
    #[test]
    fn task_as_json() {
        let mut info = TaskInfo::new(
            TaskId(5),
            TaskSpec::call("m:f", "[1, \"a\"]", "{\"k\": true}"),
            TaskState::Completed,
            Timestamp(3_000),
        );
        info.result = Some("{\"n\": 2}".into());
        let json = serde_json::to_value(TaskJson::new(&info, false)).unwrap();
        assert_eq!(json["args"], json!([1, "a"]));
        assert_eq!(json["kwargs"], json!({"k": true}));
        assert_eq!(json["result"], json!({"n": 2}));
        assert_eq!(json["created_at"], json!(3.0));
        assert!(json.get("stdout").is_none());
        let json = serde_json::to_value(TaskJson::new(&info, true)).unwrap();
        assert_eq!(json["stdout"], Value::Null);
    }

    /// A worker's usage sums its slots' memory and CPU, in bytes and cores.
    #[test]
    fn usage_sums_slots() {
        let slot = |pid, cpu_permille| SlotUsage {
            pid,
            rss: 1_000,
            cpu_permille,
            running: 1,
        };
        let usage = WorkerUsage {
            at: Timestamp(3_000),
            slots: vec![slot(1, 250), slot(2, 1_500)],
            max_memory: Some(4_096),
            memory_replaced: 1,
            memory_killed: 2,
        };
        assert_eq!(
            serde_json::to_value(UsageJson::new(&usage)).unwrap(),
            json!({"at": 3.0, "rss": 2000, "cpu": 1.75, "max_memory": 4096,
                "memory_replaced": 1, "memory_killed": 2,
                "slots": [{"pid": 1, "rss": 1000, "cpu": 0.25, "running": 1},
                    {"pid": 2, "rss": 1000, "cpu": 1.5, "running": 1}]})
        );
    }
}
