//! Workers from an actioner: `worker drain NAME` does what SIGTERM on the worker's host does
//! (it finishes its running task, gets nothing new, exits 0), a name no worker has gets one
//! sentence, and `worker list` shows what each worker's slots use (RSS, CPU) and its uptime.

use crate::drain::{finishes_its_drain, gated, running_on};
use crate::TASK_TIMEOUT;
use serde_json::Value;
use tatzelwurm_e2e::{fixture, wait_for, Cluster, WorkerSpec};

/// `worker drain w1` while w1 runs a task: w1 shows as draining, a task added afterwards goes
/// to w2 although w1 has a free slot, w1's task completes on its first attempt, and w1 exits
/// 0 once its result is recorded.
#[test]
fn worker_drain_drains_the_named_worker() {
    let cluster = Cluster::start();
    let mut w1 = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let gate = cluster.dir().join("gate");
    let held = cluster.add(&fixture("attempt_after_gate"), &gated(&gate));
    assert_eq!(running_on(&cluster, held), "w1");

    let _w2 = cluster.start_worker(WorkerSpec::new(1).name("w2"));
    let drained = cluster.action(&["worker", "drain", "w1"]).ok();
    assert!(drained.stdout.contains("w1"), "{drained}");
    finishes_its_drain(&cluster, &mut w1, &gate, held);
}

/// `worker drain` of a name no connected worker has fails with one sentence naming it, and
/// drains nobody.
#[test]
fn worker_drain_of_an_unknown_name() {
    let cluster = Cluster::start();
    let _w1 = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let failed = cluster.action(&["worker", "drain", "nosuch"]).failed();
    let sentence = failed.one_sentence();
    assert!(sentence.contains("nosuch"), "{sentence}");
    assert_eq!(
        worker(&cluster, "w1").expect("w1 is listed")["state"],
        "active"
    );
}

/// `worker list` shows, once the worker has measured them, each slot's resident memory and
/// CPU and the worker's uptime, in its JSON and its table.
#[test]
fn worker_list_shows_memory_cpu_and_uptime() {
    let cluster = Cluster::start();
    let _w1 = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let listed = wait_for("w1's usage in `worker list`", TASK_TIMEOUT, || {
        let w = worker(&cluster, "w1")?;
        w["usage"]["rss"]
            .as_u64()
            .is_some_and(|rss| rss > 0)
            .then_some(w)
    });
    let usage = &listed["usage"];
    let slots = usage["slots"]
        .as_array()
        .unwrap_or_else(|| panic!("per-slot usage: {listed}"));
    assert_eq!(slots.len(), 2, "{listed}");
    let mut pids = Vec::new();
    for slot in slots {
        let pid = slot["pid"].as_u64().unwrap_or_default();
        assert!(pid > 0, "{slot}");
        pids.push(pid);
        assert!(
            slot["rss"].as_u64().is_some_and(|rss| rss > 1 << 20),
            "a Python process takes more than 1 MiB: {slot}"
        );
        assert!(slot["cpu"].as_f64().is_some_and(|cpu| cpu >= 0.0), "{slot}");
    }
    pids.dedup();
    assert_eq!(pids.len(), 2, "two slot processes: {listed}");
    let sum: u64 = slots.iter().filter_map(|s| s["rss"].as_u64()).sum();
    assert_eq!(usage["rss"], sum, "{listed}");
    assert!(
        listed["uptime"].as_f64().is_some_and(|up| up >= 0.0),
        "{listed}"
    );
    let table = cluster.action(&["worker", "list"]).ok().stdout;
    let header = table
        .lines()
        .find(|line| line.contains("name"))
        .unwrap_or_default()
        .to_uppercase();
    for column in ["RSS", "CPU", "UPTIME"] {
        assert!(header.contains(column), "no {column} column:\n{table}");
    }
    let row = table
        .lines()
        .find(|line| line.contains("w1"))
        .unwrap_or_default();
    assert!(row.contains("iB"), "w1's memory in its row:\n{table}");
}

/// The worker named `name` in `worker list --json`, if it is connected.
fn worker(cluster: &Cluster, name: &str) -> Option<Value> {
    cluster.workers().into_iter().find(|w| w["name"] == name)
}
