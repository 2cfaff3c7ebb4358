//! Stopping a worker gently: the first SIGTERM drains it (it finishes what runs, gets nothing
//! new, leaves once its reports are recorded); a second SIGTERM or `--drain-timeout` stops it at
//! once, and the coordinator requeues what it was running.

use crate::TASK_TIMEOUT;
use serde_json::Value;
use tatzelwurm_e2e::{fixture, wait_for, Cluster, Worker, WorkerSpec};

/// A worker given SIGTERM while it runs a task shows as `draining`, gets no new task although it
/// has a free slot (a second worker takes it), finishes its task on the first attempt, and exits
/// 0 once the result is recorded.
#[test]
fn sigterm_drains_a_worker_without_losing_its_task() {
    let cluster = Cluster::start();
    let mut w1 = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let gate = cluster.dir().join("gate");
    let held = cluster.add(&fixture("attempt_after_gate"), &gated(&gate));
    assert_eq!(running_on(&cluster, held), "w1");
    let _w2 = cluster.start_worker(WorkerSpec::new(1).name("w2"));

    w1.proc.signal(libc::SIGTERM);
    finishes_its_drain(&cluster, &mut w1, &gate, held);
}

/// Worker `w1`, running task `held` (waiting behind `gate`), was told to drain and a worker
/// `w2` is connected: w1 shows as `draining`, a task added now runs on w2 although w1 has a
/// free slot, both tasks complete on their first attempt once the gate opens (`held` on w1),
/// and w1 exits 0 once its result is recorded.
pub(crate) fn finishes_its_drain(
    cluster: &Cluster,
    w1: &mut Worker,
    gate: &std::path::Path,
    held: u64,
) {
    wait_for("w1 to show as draining", TASK_TIMEOUT, || {
        (worker_state(cluster, "w1")? == "draining").then_some(())
    });
    let next = cluster.add(&fixture("attempt_after_gate"), &gated(gate));
    assert_eq!(
        running_on(cluster, next),
        "w2",
        "a draining worker got a task"
    );

    std::fs::write(gate, "open").unwrap();
    for id in [held, next] {
        let done = cluster.wait_completed(id, TASK_TIMEOUT);
        assert_eq!(done["attempts"], 1, "{done}");
        assert_eq!(done["result"], 1, "{done}");
    }
    assert_eq!(cluster.show(held)["worker"], "w1");
    let status = w1
        .proc
        .wait_exit(TASK_TIMEOUT)
        .expect("w1 exits after draining");
    assert!(status.success(), "w1 exited with {status}");
    cluster.wait_coordinator_log("worker w1 left after draining", TASK_TIMEOUT);
}

/// A second SIGTERM during a drain stops the worker at once, and its unfinished task is ready
/// again for another worker.
#[test]
fn a_second_sigterm_stops_at_once() {
    let cluster = Cluster::start();
    let mut w1 = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let id = stuck_task(&cluster, &w1);
    w1.proc.signal(libc::SIGTERM);
    wait_for("w1 to show as draining", TASK_TIMEOUT, || {
        (worker_state(&cluster, "w1")? == "draining").then_some(())
    });
    w1.proc.signal(libc::SIGTERM);
    let status = w1.proc.wait_exit(TASK_TIMEOUT).expect("w1 exits");
    assert!(status.success(), "w1 exited with {status}");
    assert_requeued(&cluster, id);
}

/// A drain that outlasts `--drain-timeout` ends in a stop at once, without a second signal.
#[test]
fn the_drain_timeout_stops_a_drain_that_takes_too_long() {
    let cluster = Cluster::start();
    let mut w1 = cluster.start_worker(WorkerSpec::new(1).name("w1").drain_timeout("0.5"));
    let id = stuck_task(&cluster, &w1);
    w1.proc.signal(libc::SIGTERM);
    let status = w1.proc.wait_exit(TASK_TIMEOUT).expect("w1 exits by itself");
    assert!(status.success(), "w1 exited with {status}");
    assert_requeued(&cluster, id);
}

/// Args for `attempt_after_gate`: wait for `gate` for up to two minutes.
pub(crate) fn gated(gate: &std::path::Path) -> String {
    serde_json::json!([gate, 120]).to_string()
}

/// Adds a task that waits for a gate nobody opens, and waits until it runs on `worker`.
fn stuck_task(cluster: &Cluster, worker: &Worker) -> u64 {
    let id = cluster.add(
        &fixture("attempt_after_gate"),
        &gated(&cluster.dir().join("never")),
    );
    assert_eq!(running_on(cluster, id), worker.name);
    id
}

/// Waits until task `id` runs and returns the name of its worker.
pub(crate) fn running_on(cluster: &Cluster, id: u64) -> String {
    let task = cluster.wait_state(id, "running", TASK_TIMEOUT);
    task["worker"]
        .as_str()
        .expect("a running task has a worker")
        .to_string()
}

/// The `state` of the worker named `name` in `worker list --json`, if it is connected.
fn worker_state(cluster: &Cluster, name: &str) -> Option<String> {
    let workers = cluster.workers();
    let worker: &Value = workers.iter().find(|w| w["name"] == name)?;
    worker["state"].as_str().map(str::to_string)
}

/// The task lost its only attempt with its worker and waits for another one.
fn assert_requeued(cluster: &Cluster, id: u64) {
    let task = cluster.wait_state(id, "ready", TASK_TIMEOUT);
    assert_eq!(task["attempts"], 1, "{task}");
    assert_eq!(task["crashes"], 1, "{task}");
}
