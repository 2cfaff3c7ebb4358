//! `task kill`: a running task ends within 2 seconds together with the processes it started, its
//! slot serves the next task, and tasks that wait are killed without ever running.

use crate::TASK_TIMEOUT;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use tatzelwurm_e2e::{example, fixture, pid_alive, wait_for, wait_until, Cluster, WorkerSpec};

/// The contract: a kill ends a running task within 2 s.
const KILL_DEADLINE: Duration = Duration::from_secs(2);
/// What observing the state through the CLI adds to that on a loaded machine (one poll interval
/// and one `task show`).
const OBSERVATION_SLACK: Duration = Duration::from_millis(500);

/// A task asleep in `time.sleep(3600)` is `killed` within 2 s of `task kill`, and its only slot
/// then runs the next task.
#[test]
fn kill_ends_a_sleeping_task_and_the_slot_serves_on() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let id = cluster.add(&example("sleep"), "[3600]");
    cluster.wait_state(id, "running", TASK_TIMEOUT);

    let start = Instant::now();
    cluster.action(&["task", "kill", &id.to_string()]).ok();
    let task = cluster.wait_finished(id, Duration::from_secs(10));
    let took = start.elapsed();
    assert_eq!(task["state"], "killed", "{task}");
    assert!(
        took <= KILL_DEADLINE + OBSERVATION_SLACK,
        "killed only after {took:?}"
    );

    let next = cluster.add(&example("square"), "[7]");
    let next = cluster.wait_completed(next, TASK_TIMEOUT);
    assert_eq!(next["result"], 49);
    assert_eq!(next["worker"], "w1");
}

/// Killing a task also ends the processes it started.
#[test]
fn kill_ends_the_processes_a_task_started() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let pid_file = cluster.dir().join("child.pid");
    let id = cluster.add(
        &fixture("sleep_with_child"),
        &json!([pid_file, 3600]).to_string(),
    );
    let child = read_pid(&pid_file);
    assert!(pid_alive(child), "the task's child {child} runs");

    cluster.action(&["task", "kill", &id.to_string()]).ok();
    assert_eq!(
        cluster.wait_finished(id, Duration::from_secs(10))["state"],
        "killed"
    );
    wait_until(
        &format!("the task's child process {child} to end"),
        KILL_DEADLINE + OBSERVATION_SLACK,
        || !pid_alive(child),
    );
}

/// A `created` and a `ready` task are killed at once and never run afterwards.
#[test]
fn kill_of_waiting_tasks_ends_them_before_they_run() {
    let cluster = Cluster::start();
    let created = cluster.add_created(&example("square"), "[2]");
    let ready = cluster.add(&example("square"), "[3]");
    assert_eq!(cluster.show(ready)["state"], "ready");
    let (created_id, ready_id) = (created.to_string(), ready.to_string());
    cluster
        .action(&["task", "kill", &created_id, &ready_id])
        .ok();
    for id in [created, ready] {
        assert_eq!(cluster.show(id)["state"], "killed");
    }

    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let later = cluster.add(&example("square"), "[4]");
    cluster.wait_completed(later, TASK_TIMEOUT);
    for id in [created, ready] {
        let task = cluster.show(id);
        assert_eq!(task["state"], "killed", "{task}");
        assert_eq!(task["attempts"], 0, "{task}");
    }
}

/// Waits for a fixture to write a pid to `file`, and reads it.
pub fn read_pid(file: &Path) -> i32 {
    wait_for(
        &format!("a pid in {}", file.display()),
        TASK_TIMEOUT,
        || std::fs::read_to_string(file).ok()?.trim().parse().ok(),
    )
}
