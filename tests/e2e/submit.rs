//! Tasks submitted and run end to end: many tasks spread over several workers with the right
//! results, the ways to name a function, and keyword arguments.

use crate::{number_lines, TASK_TIMEOUT};
use serde_json::{json, Value};
use std::collections::HashMap;
use tatzelwurm_e2e::{example, examples_dir, fixtures_dir, Cluster, WorkerSpec};

/// How many tasks the spread test runs.
const MANY: u64 = 200;

/// 200 tasks on 2 workers × 2 slots all complete with the right results, and both workers ran some.
#[test]
fn many_tasks_complete_on_both_workers() {
    let cluster = Cluster::start();
    let _w1 = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let _w2 = cluster.start_worker(WorkerSpec::new(2).name("w2"));

    let ids = cluster.add_from_file(&example("primes"), &number_lines(0..MANY), true);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    cluster
        .action_within(
            &["task", "wait", "-a", "--timeout", "120"],
            TASK_TIMEOUT * 5,
        )
        .ok();

    let tasks = cluster.list(&[]);
    assert_eq!(tasks.len(), MANY as usize);
    let mut ran_on: HashMap<String, u64> = HashMap::new();
    for (n, task) in tasks.iter().enumerate() {
        assert_eq!(task["id"], ids[n], "tasks are listed in id order");
        assert_eq!(task["state"], "completed", "task {task}");
        assert_eq!(task["result"], json!(primes_below(n as u64)), "task {task}");
        let worker = task["worker"]
            .as_str()
            .expect("a completed task names its worker");
        *ran_on.entry(worker.to_string()).or_default() += 1;
    }
    assert!(ran_on.len() == 2, "both workers ran tasks: {ran_on:?}");

    let done: HashMap<String, u64> = cluster
        .workers()
        .iter()
        .map(|w| (w["name"].as_str().unwrap().to_string(), done_of(w)))
        .collect();
    assert!(done.values().all(|&d| d > 0), "worker list done: {done:?}");
    assert_eq!(
        done.values().sum::<u64>(),
        MANY,
        "worker list done: {done:?}"
    );
}

/// A function is found by module name through `--path`, by module name from the worker's working
/// directory, and by file path.
#[test]
fn functions_are_found_by_module_and_by_file() {
    let cluster = Cluster::start();
    let spec = WorkerSpec::new(1).path(examples_dir()).cwd(fixtures_dir());
    let _worker = cluster.start_worker(spec);

    let by_path = cluster.add("tasks:word_count", r#"["the cat and the hat"]"#);
    let by_cwd = cluster.add("fixtures:python_version", "[]");
    let by_file = cluster.add(&example("square"), "[12]");

    let counts = json!({"the": 2, "cat": 1, "and": 1, "hat": 1});
    assert_eq!(completed(&cluster, by_path)["result"], counts);
    assert!(completed(&cluster, by_cwd)["result"].is_string());
    assert_eq!(completed(&cluster, by_file)["result"], 144);
}

/// `--kwargs` passes keyword arguments, alone and together with positional ones, and both are
/// shown back as JSON.
#[test]
fn keyword_arguments_reach_the_function() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let square = example("square");
    let add = ["task", "add", &square, "--kwargs", r#"{"x": 9}"#, "--play"];
    let id = cluster.action(&add).ok().ids()[0];
    let task = completed(&cluster, id);
    assert_eq!(task["result"], 81);
    assert_eq!(task["kwargs"], json!({"x": 9}));
    assert_eq!(task["args"], json!([]));

    let sleep = example("sleep");
    let add = [
        "task",
        "add",
        &sleep,
        "--args",
        "[]",
        "--kwargs",
        r#"{"seconds": 0}"#,
    ];
    let id = cluster.action(&add).ok().ids()[0];
    cluster.action(&["task", "play", &id.to_string()]).ok();
    assert_eq!(completed(&cluster, id)["result"], 0);
}

/// Waits until task `id` is completed and returns it.
fn completed(cluster: &Cluster, id: u64) -> Value {
    cluster.wait_completed(id, TASK_TIMEOUT)
}

/// `done` of one worker in `worker list --json`.
fn done_of(worker: &Value) -> u64 {
    worker["done"].as_u64().expect("worker list has `done`")
}

/// The primes below `n`, as `examples/tasks.py:primes` returns them.
fn primes_below(n: u64) -> Vec<u64> {
    (2..n)
        .filter(|&k| (2..k).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .collect()
}
