//! Tasks that go wrong in Python: they fail with the exception's type, message and traceback,
//! and the worker that ran them serves on.

use crate::TASK_TIMEOUT;
use serde_json::Value;
use tatzelwurm_e2e::{example, fixture, Cluster, WorkerSpec};

/// A task that raises ValueError fails with that type, its message and a traceback naming the function.
#[test]
fn raising_task_fails_with_type_message_and_traceback() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let id = cluster.add(&example("fail"), r#"["the input was no good"]"#);
    let task = failed(&cluster, id);
    let error = &task["error"];
    assert_eq!(error["type"], "ValueError", "{error}");
    assert_eq!(error["message"], "the input was no good", "{error}");
    let traceback = error["traceback"].as_str().expect("a traceback");
    assert!(traceback.contains("in fail"), "traceback: {traceback}");
    assert!(traceback.contains("tasks.py"), "traceback: {traceback}");
    assert!(task["result"].is_null(), "{task}");
    assert!(task["finished_at"].is_number(), "{task}");
    cluster.wait_completed(cluster.add(&example("square"), "[3]"), TASK_TIMEOUT);
}

/// Wrong arguments, a result that is not JSON and a missing function each fail their task with a
/// message that says so, and the worker serves on.
#[test]
fn wrong_calls_fail_with_a_clear_error() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));

    let too_many = cluster.add(&example("square"), "[1, 2]");
    let error = failed(&cluster, too_many)["error"].clone();
    assert_eq!(error["type"], "TypeError", "{error}");
    assert!(message(&error).contains("square"), "{error}");

    let not_json = cluster.add(&fixture("returns_set"), "[]");
    let error = failed(&cluster, not_json)["error"].clone();
    assert!(!message(&error).is_empty(), "{error}");

    let missing = cluster.add(&example("no_such_function"), "[]");
    let error = failed(&cluster, missing)["error"].clone();
    let text = format!("{}{}", message(&error), error["traceback"]);
    assert!(text.contains("no_such_function"), "{error}");

    cluster.wait_completed(cluster.add(&example("square"), "[4]"), TASK_TIMEOUT);
}

/// Waits until task `id` is finished, asserts it failed and returns it.
fn failed(cluster: &Cluster, id: u64) -> Value {
    let task = cluster.wait_finished(id, TASK_TIMEOUT);
    assert_eq!(task["state"], "failed", "{task}");
    task
}

fn message(error: &Value) -> &str {
    error["message"].as_str().unwrap_or_default()
}
