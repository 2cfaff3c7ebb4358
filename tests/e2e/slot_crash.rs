//! Slot processes that die: a task that ends its interpreter, a slot killed from outside, and a
//! worker killed with SIGKILL, which must take its slots with it.

use crate::kill::read_pid;
use crate::TASK_TIMEOUT;
use serde_json::{json, Value};
use std::time::Duration;
use tatzelwurm_e2e::{
    descendants, example, fixture, pid_alive, wait_until, Cluster, Worker, WorkerSpec,
};

/// A task that calls `os._exit(3)` fails as `SlotCrashed`, and its worker serves the next task.
#[test]
fn os_exit_in_a_task_fails_it_as_slot_crashed() {
    let cluster = Cluster::start();
    let mut worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let id = cluster.add(&example("crash"), "[3]");
    assert_slot_crashed(&cluster.wait_finished(id, TASK_TIMEOUT));
    assert_serves_on(&cluster, &mut worker);
}

/// A slot process killed with SIGKILL fails its task as `SlotCrashed`, and its worker serves on.
#[test]
fn killed_slot_process_fails_its_task_as_slot_crashed() {
    let cluster = Cluster::start();
    let mut worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let pid_file = cluster.dir().join("slot.pid");
    let id = cluster.add(
        &fixture("pid_then_sleep"),
        &json!([pid_file, 3600]).to_string(),
    );
    let slot = read_pid(&pid_file);
    let worker_pid = worker.proc.pid();
    assert!(
        descendants(worker_pid).contains(&slot),
        "slot {slot} is a process of worker {worker_pid}"
    );

    // SAFETY: kill(2) only sends a signal, to a pid the test just read from a live slot.
    unsafe {
        libc::kill(slot, libc::SIGKILL);
    }
    assert_slot_crashed(&cluster.wait_finished(id, TASK_TIMEOUT));
    assert_serves_on(&cluster, &mut worker);
}

/// A worker killed with SIGKILL takes its slot processes with it, the coordinator notices it has
/// gone, and its running task goes back to `ready`.
#[test]
fn killed_worker_takes_its_slots_with_it() {
    let cluster = Cluster::start();
    let mut worker = cluster.start_worker(WorkerSpec::new(2));
    let pid_file = cluster.dir().join("slot.pid");
    let id = cluster.add(
        &fixture("pid_then_sleep"),
        &json!([pid_file, 3600]).to_string(),
    );
    let slot = read_pid(&pid_file);

    worker.proc.kill9();
    wait_until(
        &format!("slot process {slot} to die with its worker"),
        Duration::from_secs(5),
        || !pid_alive(slot),
    );
    cluster.wait_worker_count(0, TASK_TIMEOUT);
    cluster.wait_state(id, "ready", TASK_TIMEOUT);
}

fn assert_slot_crashed(task: &Value) {
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["error"]["type"], "SlotCrashed", "{task}");
}

/// The worker still runs and completes the next task itself.
fn assert_serves_on(cluster: &Cluster, worker: &mut Worker) {
    assert!(worker.proc.is_running(), "the worker survived its slot");
    let next = cluster.add(&example("square"), "[5]");
    let next = cluster.wait_completed(next, TASK_TIMEOUT);
    assert_eq!(next["result"], 25);
    assert_eq!(next["worker"], worker.name.as_str());
}
