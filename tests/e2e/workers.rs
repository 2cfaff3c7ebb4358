//! `worker list`: each worker's name, address, slots, Python version and the tasks it has done,
//! as JSON for scripts and as a table for people.

use crate::TASK_TIMEOUT;
use serde_json::Value;
use std::process::Command;
use tatzelwurm_e2e::actionwurm::run_command;
use tatzelwurm_e2e::{example, wait_until, Cluster, WorkerSpec};

/// `worker list` shows each worker's name, slot count, Python version and done count, in JSON
/// and in its table.
#[test]
fn worker_list_shows_python_version_and_slots() {
    let cluster = Cluster::start();
    let _alpha = cluster.start_worker(WorkerSpec::new(1).name("alpha"));
    let _beta = cluster.start_worker(WorkerSpec::new(3).name("beta"));
    let version = python_version();

    let workers = cluster.workers();
    assert_eq!(workers.len(), 2, "{workers:?}");
    for (name, slots) in [("alpha", 1), ("beta", 3)] {
        let worker = named(&workers, name);
        assert_eq!(worker["slots"], slots, "{worker}");
        assert_eq!(worker["running"], 0, "{worker}");
        assert_eq!(worker["done"], 0, "{worker}");
        let python = worker["python"].as_str().expect("a python version");
        assert!(python.contains(&version), "{python} should name {version}");
        assert!(worker["address"].as_str().is_some_and(|a| !a.is_empty()));
        assert!(worker["connected_at"].is_number(), "{worker}");
        assert!(worker["id"].is_u64(), "{worker}");
    }

    let id = cluster.add(&example("noop"), "[1]");
    cluster.wait_completed(id, TASK_TIMEOUT);
    wait_until(
        "worker list to count the task as done",
        TASK_TIMEOUT,
        || {
            let done: u64 = cluster
                .workers()
                .iter()
                .map(|w| w["done"].as_u64().unwrap())
                .sum();
            done == 1
        },
    );

    let table = cluster.action(&["worker", "list"]).ok().stdout;
    for expected in ["alpha", "beta", &version] {
        assert!(table.contains(expected), "table lacks {expected}:\n{table}");
    }
}

fn named<'a>(workers: &'a [Value], name: &str) -> &'a Value {
    workers
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no worker {name} in {workers:?}"))
}

/// The version of the `python3` on PATH, the one the workers run.
fn python_version() -> String {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import platform; print(platform.python_version())"]);
    run_command(cmd, TASK_TIMEOUT)
        .ok()
        .stdout
        .trim()
        .to_string()
}
