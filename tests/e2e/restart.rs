//! A coordinator stopped (gracefully or killed) and started again on the same database keeps
//! every task and result, continues the id sequence, puts running tasks back to `ready`, and its
//! worker reconnects by itself and runs what is left.

use crate::{number_lines, TASK_TIMEOUT};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tatzelwurm_e2e::{example, fixture, Cluster, Stop, WorkerSpec};

/// A restart after SIGTERM keeps every task and result, continues the ids, and the worker
/// reconnects and finishes the rest.
#[test]
fn restart_after_sigterm_keeps_tasks_and_results() {
    restart_keeps_tasks_and_results(Stop::Term);
}

/// A restart after SIGKILL keeps every acknowledged task and result, continues the ids, and the
/// worker reconnects and finishes the rest.
#[test]
fn restart_after_sigkill_keeps_tasks_and_results() {
    restart_keeps_tasks_and_results(Stop::Kill);
}

/// A restart after SIGKILL of a coordinator on `--store fjall` keeps every acknowledged task
/// and result, continues the ids, and the worker finishes the rest.
#[test]
fn restart_after_sigkill_keeps_tasks_and_results_with_fjall() {
    restart_keeps_tasks_and_results_on(Stop::Kill, &["--store", "fjall"]);
}

/// The same on `--store sled`.
#[test]
fn restart_after_sigkill_keeps_tasks_and_results_with_sled() {
    restart_keeps_tasks_and_results_on(Stop::Kill, &["--store", "sled"]);
}

/// The tasks of one restart test, by what they are there for.
struct Scene {
    completed: Vec<u64>,
    gate: u64,
    ready: Vec<u64>,
    created: Vec<u64>,
}

fn restart_keeps_tasks_and_results(how: Stop) {
    restart_keeps_tasks_and_results_on(how, &[]);
}

/// `restart_keeps_tasks_and_results` with the coordinator's extra arguments `args`.
fn restart_keeps_tasks_and_results_on(how: Stop, args: &[&str]) {
    let mut cluster = Cluster::start_with_args(args);
    let mut worker = cluster.start_worker(WorkerSpec::new(1).name("w1").address_from_env());
    let gate_file = cluster.dir().join("open-the-gate");
    let scene = set_the_scene(&cluster, &gate_file);
    let before = by_id(cluster.list(&[]));

    // A paused worker cannot reconnect, so the restarted coordinator is seen before it does.
    worker.proc.pause();
    cluster.restart_coordinator(how);
    let after = by_id(cluster.list(&[]));
    assert_kept(&before, &after, &scene);
    let new_id = cluster.add_created(&example("square"), "[30]");
    let old_max = *before.keys().max().unwrap();
    assert!(
        new_id > old_max,
        "new id {new_id} continues after {old_max}"
    );

    worker.proc.resume();
    cluster.wait_worker_connected("w1");
    std::fs::write(&gate_file, "open").unwrap();
    cluster.action(&["task", "play", "-a"]).ok();
    let wait = ["task", "wait", "-a", "--timeout", "60"];
    cluster.action_within(&wait, TASK_TIMEOUT * 3).ok();
    assert_all_completed(&cluster);
    assert_announced_once_per_start(&mut cluster);
}

/// Five completed tasks, a gate task holding the worker's only slot, four tasks played behind it
/// (so `ready`) and three not played (`created`).
fn set_the_scene(cluster: &Cluster, gate_file: &std::path::Path) -> Scene {
    let completed = cluster.add_from_file(&example("square"), &number_lines(0..5), true);
    for &id in &completed {
        cluster.wait_completed(id, TASK_TIMEOUT);
    }
    let gate = cluster.add(
        &fixture("wait_for_file"),
        &json!([gate_file, 120]).to_string(),
    );
    cluster.wait_state(gate, "running", TASK_TIMEOUT);
    let ready = cluster.add_from_file(&example("square"), &number_lines(10..14), true);
    let created = cluster.add_from_file(&example("square"), &number_lines(20..23), false);
    Scene {
        completed,
        gate,
        ready,
        created,
    }
}

/// Every task is still there with its function, arguments and result, and in the state it had,
/// except the running gate task, which is `ready` again.
fn assert_kept(before: &BTreeMap<u64, Value>, after: &BTreeMap<u64, Value>, scene: &Scene) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (id, old) in before {
        let new = &after[id];
        for key in ["function", "args", "kwargs", "result", "created_at"] {
            assert_eq!(
                old[key], new[key],
                "task {id}: {key} changed over the restart"
            );
        }
    }
    let expect = |ids: &[u64], state: &str| {
        for id in ids {
            assert_eq!(after[id]["state"], state, "task {id} after the restart");
        }
    };
    expect(&scene.completed, "completed");
    expect(&scene.ready, "ready");
    expect(&scene.created, "created");
    assert_eq!(before[&scene.gate]["state"], "running");
    expect(&[scene.gate], "ready");
    for (n, id) in scene.completed.iter().enumerate() {
        assert_eq!(after[id]["result"], n * n, "result of task {id}");
    }
}

/// Every task, old and new, completed with the square of its argument.
fn assert_all_completed(cluster: &Cluster) {
    for task in cluster.list(&[]) {
        assert_eq!(task["state"], "completed", "{task}");
        if let Some(x) = task["args"][0].as_u64() {
            if task["function"].as_str().unwrap().ends_with(":square") {
                assert_eq!(task["result"], x * x, "{task}");
            }
        }
    }
}

/// The coordinator's stdout holds exactly its `listening on ADDR` line for each of its two starts.
fn assert_announced_once_per_start(cluster: &mut Cluster) {
    let addr = cluster.addr().to_string();
    let stdout = cluster.coordinator().proc.stdout_log();
    let expected = format!("listening on {addr}\n").repeat(2);
    assert_eq!(stdout, expected, "the coordinator's stdout");
}

fn by_id(tasks: Vec<Value>) -> BTreeMap<u64, Value> {
    tasks
        .into_iter()
        .map(|t| (t["id"].as_u64().expect("a task id"), t))
        .collect()
}
