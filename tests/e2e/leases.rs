//! Leases: a worker that dies gives its tasks back within a second, one that hangs (SIGSTOP)
//! gives them back when its lease runs out and its late report is fenced off, a task that sleeps
//! for longer than the lease keeps it, a killed worker leaves no process behind, and an
//! at-most-once task is never started twice.
//!
//! The requeue delays are printed (`requeue after ...: N ms`) so that they can be quoted; run
//! `cargo test -p tatzelwurm-e2e -- leases --nocapture` to see them.

use crate::kill::read_pid;
use crate::TASK_TIMEOUT;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tatzelwurm_e2e::wait::poll_every;
use tatzelwurm_e2e::{
    descendants, example, fixture, pid_alive, wait_for, wait_until, Cluster, WorkerSpec,
};

/// A short lease, so that a hung worker is found out quickly: heartbeats every 0.2 s, and a
/// worker silent for 1 s is dropped.
const SHORT_LEASE: [&str; 4] = ["--heartbeat", "0.2", "--lease", "1"];
/// The lease of `SHORT_LEASE`, and its heartbeat interval.
const LEASE: Duration = Duration::from_secs(1);
const HEARTBEAT: Duration = Duration::from_millis(200);
/// The contract: a dropped connection requeues its tasks within 1 s.
const DISCONNECT_DEADLINE: Duration = Duration::from_secs(1);
/// How often a test that measures a delay looks: each look is one `task show`.
const MEASURE_POLL: Duration = Duration::from_millis(5);

/// A worker killed with SIGKILL gives its running task back: the task is `ready` again within
/// 1 s, with the lost attempt counted as a crash.
#[test]
fn killed_worker_requeues_its_task_within_a_second() {
    let cluster = Cluster::start();
    let mut worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let id = cluster.add(&example("sleep"), "[3600]");
    cluster.wait_state(id, "running", TASK_TIMEOUT);

    let start = Instant::now();
    worker.proc.kill9();
    let task = measure_until(&cluster, id, "to leave `running`", |task| {
        task["state"] != "running"
    });
    let took = start.elapsed();
    eprintln!("requeue after disconnect: {} ms", took.as_millis());
    assert_eq!(task["state"], "ready", "{task}");
    assert!(
        took < DISCONNECT_DEADLINE,
        "requeued only after {took:?}: {task}"
    );
    assert_eq!(task["attempts"], 1, "{task}");
    assert_eq!(task["crashes"], 1, "{task}");
}

/// A worker frozen with SIGSTOP loses its task when its lease runs out (not before, and within
/// 2 s after), the task completes on a second worker, and the frozen worker's report of the old
/// attempt, sent once it goes on, is logged as ignored and never recorded.
#[test]
fn stopped_worker_loses_its_task_at_lease_expiry_and_its_late_report_is_ignored() {
    let cluster = Cluster::start_with_args(&SHORT_LEASE);
    let mut w1 = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let gate = cluster.dir().join("gate");
    let id = cluster.add(
        &fixture("attempt_after_gate"),
        &json!([gate, 120]).to_string(),
    );
    let first = cluster.wait_state(id, "running", TASK_TIMEOUT);
    assert_eq!(
        (&first["worker"], &first["attempts"]),
        (&json!("w1"), &json!(1))
    );
    let _w2 = cluster.start_worker(WorkerSpec::new(1).name("w2"));

    let start = Instant::now();
    w1.proc.pause();
    let requeued = measure_until(
        &cluster,
        id,
        "to be taken from the stopped worker",
        |task| task["attempts"].as_u64() > Some(1) || task["state"] == "ready",
    );
    let took = start.elapsed();
    eprintln!(
        "requeue after SIGSTOP (heartbeat {HEARTBEAT:?}, lease {LEASE:?}): {} ms",
        took.as_millis()
    );
    // The worker's silence began with its last heartbeat before the SIGSTOP: one interval
    // earlier on schedule, allow a second for a tick delayed on a loaded machine. Sooner than
    // that, the task was taken from a worker that was not silent for a whole lease.
    assert!(
        took >= LEASE - 2 * HEARTBEAT,
        "requeued after {took:?}, before the lease of {LEASE:?} ran out: {requeued}"
    );
    assert!(
        took < LEASE + Duration::from_secs(2),
        "requeued only after {took:?} (lease {LEASE:?}): {requeued}"
    );

    wait_for(
        "the task's second attempt to run on w2",
        TASK_TIMEOUT,
        || {
            let task = cluster.show(id);
            (task["state"] == "running" && task["worker"] == "w2").then_some(task)
        },
    );
    std::fs::write(&gate, "open").unwrap();
    let done = cluster.wait_completed(id, TASK_TIMEOUT);
    assert_eq!(done["result"], 2, "the second attempt's result: {done}");
    assert_eq!(done["attempts"], 2, "{done}");

    // SIGSTOP froze the worker, not its slot: attempt 1 also passed the gate, and its result
    // waits in the frozen worker.
    let done_marker = cluster.dir().join("gate.done.1");
    wait_until("attempt 1 to finish in w1's slot", TASK_TIMEOUT, || {
        done_marker.exists()
    });
    w1.proc.resume();
    cluster.wait_coordinator_log(
        &format!("ignored report of task {id} attempt 1"),
        Duration::from_secs(10),
    );
    let after = cluster.show(id);
    assert_eq!(after["state"], "completed", "{after}");
    assert_eq!(after["result"], 2, "the late report was recorded: {after}");
    assert_eq!(after["attempts"], 2, "{after}");
    assert_eq!(after["worker"], "w2", "{after}");
}

/// A task that sleeps 3 s in Python, three leases long, keeps its lease (the worker's Rust side
/// heartbeats while Python blocks) and completes on its first attempt.
#[test]
fn long_task_keeps_its_lease() {
    let cluster = Cluster::start_with_args(&SHORT_LEASE);
    let _worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let id = cluster.add(&example("sleep"), "[3]");
    let task = cluster.wait_completed(id, TASK_TIMEOUT);
    assert_eq!(task["result"], 3, "{task}");
    assert_eq!(
        task["attempts"], 1,
        "the task was taken from its worker: {task}"
    );
    assert_eq!(task["crashes"], 0, "{task}");
    assert_eq!(task["failures"], 0, "{task}");
}

/// A worker killed with SIGKILL leaves no process behind: its slot processes and the process
/// its task started are all gone within 2 s.
#[test]
fn killed_worker_leaves_no_slot_and_no_task_process() {
    let cluster = Cluster::start();
    let mut worker = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let pid_file = cluster.dir().join("child.pid");
    let id = cluster.add(
        &fixture("sleep_with_child"),
        &json!([pid_file, 1000]).to_string(),
    );
    let child = read_pid(&pid_file);
    cluster.wait_state(id, "running", TASK_TIMEOUT);
    let started = descendants(worker.proc.pid());
    assert!(
        started.contains(&child) && started.len() >= 2,
        "the worker's processes {started:?} hold a slot and the task's child {child}"
    );

    worker.proc.kill9();
    let deadline = Duration::from_secs(2);
    let alive = || -> Vec<i32> { started.iter().copied().filter(|&p| pid_alive(p)).collect() };
    let all_gone = poll_every(Duration::from_millis(10), deadline, || {
        alive().is_empty().then_some(())
    });
    let survivors = alive();
    // Orphans of the killed worker are no handle's descendants any more: end them here, so that
    // a failure of this test leaves nothing running.
    for &pid in &survivors {
        // SAFETY: kill(2) only sends a signal, to a process that was the worker's a moment ago.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    assert!(
        all_gone.is_some(),
        "{survivors:?} of the killed worker's processes {started:?} (the task's child is {child}) \
         still ran {deadline:?} after the kill"
    );
}

/// An at-most-once task whose worker dies ends `failed` as `WorkerLost` and is never started
/// again, while an ordinary task lost the same way is requeued and completes elsewhere.
#[test]
fn at_most_once_task_is_not_run_again_after_its_worker_dies() {
    let cluster = Cluster::start();
    let mut w1 = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let gate = cluster.dir().join("gate");
    let gated = json!([gate, 120]).to_string();
    let once = cluster.add_with(&fixture("wait_for_file"), &gated, &["--at-most-once"]);
    let ordinary = cluster.add(&fixture("wait_for_file"), &gated);
    for id in [once, ordinary] {
        cluster.wait_state(id, "running", TASK_TIMEOUT);
    }
    assert_eq!(cluster.show(once)["policy"]["at_most_once"], true);
    assert_eq!(cluster.show(ordinary)["policy"]["at_most_once"], false);

    w1.proc.kill9();
    let lost = cluster.wait_state(once, "failed", Duration::from_secs(5));
    assert_worker_lost(&lost);
    cluster.wait_state(ordinary, "ready", Duration::from_secs(5));

    std::fs::write(&gate, "open").unwrap();
    let _w2 = cluster.start_worker(WorkerSpec::new(2).name("w2"));
    let ran = cluster.wait_completed(ordinary, TASK_TIMEOUT);
    assert_eq!(ran["attempts"], 2, "{ran}");
    assert_eq!(ran["crashes"], 1, "{ran}");
    assert_eq!(ran["worker"], "w2", "{ran}");
    let still = cluster.show(once);
    assert_worker_lost(&still);
    assert!(
        cluster.list(&["running", "ready"]).is_empty(),
        "nothing is left to run"
    );
}

fn assert_worker_lost(task: &Value) {
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["error"]["type"], "WorkerLost", "{task}");
    let message = task["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("lost with its worker"), "{task}");
    assert_eq!(task["attempts"], 1, "started only once: {task}");
}

/// Polls task `id` every few milliseconds until `done` holds, and returns it; panics after 10 s
/// naming what was awaited.
fn measure_until(cluster: &Cluster, id: u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let timeout = Duration::from_secs(10);
    let mut last = Value::Null;
    poll_every(MEASURE_POLL, timeout, || {
        last = cluster.show(id);
        done(&last).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for task {id} {what}: {last}"))
}
