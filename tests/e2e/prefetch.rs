//! Prefetch and take-back (issue 10) with real processes: a worker may hold more attempts than
//! it has free slots, queued behind its busy ones. These tests hold a worker's only slot with a
//! task that waits for a gate file, so that whatever else the coordinator hands that worker
//! stays queued (not started) for as long as the test wants, and then check what must happen
//! to the queue: another idle worker takes it over (take-back), a kill of a queued attempt ends
//! it within 2 s, a lost worker's queue runs elsewhere with no crash counted, and at-most-once
//! tasks never run twice across a coordinator `kill -9`.
//!
//! A queued attempt shows as a task `running` on its worker (the table hands it out; only the
//! slot starting it tells the worker's `Started`), so "queued on a" is read as: `running`,
//! `worker` a, and not the task holding a's only slot. No timing is asserted beyond the kill
//! contract's 2 s and generous bounds on every wait.

use crate::{number_lines, TASK_TIMEOUT};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use tatzelwurm_e2e::{example, fixture, fixtures_dir, wait_for, Cluster, Stop, WorkerSpec};

/// The contract: a kill ends an attempt within 2 s; plus what observing it through the CLI adds.
const KILL_DEADLINE: Duration = Duration::from_secs(2);
const OBSERVATION_SLACK: Duration = Duration::from_millis(500);
/// How many fast tasks each burst adds.
const BURST: u64 = 200;

/// Warms the coordinator's duration average of `square` up (so that it prefetches for it),
/// then holds the only slot of worker `holder` with a task waiting for `gate`, adds a burst of
/// `square` tasks and waits until some of them are queued on `holder`. Returns the holding
/// task, the burst's ids and those seen queued on `holder`.
fn hold_and_queue(cluster: &Cluster, holder: &str, gate: &Path) -> (u64, Vec<u64>, Vec<u64>) {
    let warm = cluster.add_from_file(&example("square"), &number_lines(0..20), true);
    wait_tasks(cluster, &warm);
    let long = cluster.add(
        &fixture("wait_for_file"),
        &json!([gate, TASK_TIMEOUT.as_secs() * 4]).to_string(),
    );
    let held = cluster.wait_state(long, "running", TASK_TIMEOUT);
    assert_eq!(held["worker"], holder, "{held}");
    let burst = cluster.add_from_file(&example("square"), &number_lines(100..100 + BURST), true);
    let queued = wait_for(
        &format!("a task of the burst to be queued on {holder} behind its held slot"),
        TASK_TIMEOUT,
        || {
            let queued = queued_on(cluster, holder, long);
            (!queued.is_empty()).then_some(queued)
        },
    );
    (long, burst, queued)
}

/// The tasks `running` on `worker` other than `holding`: queued there, not started.
fn queued_on(cluster: &Cluster, worker: &str, holding: u64) -> Vec<u64> {
    cluster
        .list(&["running"])
        .iter()
        .filter(|t| t["worker"] == worker && t["id"] != holding)
        .filter_map(|t| t["id"].as_u64())
        .collect()
}

/// `task wait ID...`, bounded; the tasks must complete.
fn wait_tasks(cluster: &Cluster, ids: &[u64]) {
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    let seconds = TASK_TIMEOUT.as_secs().to_string();
    let mut argv = vec!["task", "wait", "--timeout", &seconds];
    argv.extend(ids.iter().map(String::as_str));
    cluster.action_within(&argv, TASK_TIMEOUT * 2).ok();
}

/// Every task by id.
fn tasks_by_id(cluster: &Cluster) -> BTreeMap<u64, Value> {
    cluster
        .list(&[])
        .into_iter()
        .map(|t| (t["id"].as_u64().expect("an id"), t))
        .collect()
}

/// Take-back: worker a's only slot is held, fast tasks are queued on it, then worker b comes
/// up idle with nothing ready: a must give its queued tasks back and b runs them, so that the
/// whole burst completes while a's slot is still held, none of it counted as a crash.
#[test]
fn an_idle_worker_takes_over_a_busy_workers_queue() {
    let cluster = Cluster::start();
    let _a = cluster.start_worker(WorkerSpec::new(1).name("a"));
    let gate = cluster.dir().join("gate");
    let (long, burst, queued) = hold_and_queue(&cluster, "a", &gate);
    eprintln!("{} of the burst queued on a before b started", queued.len());

    let _b = cluster.start_worker(WorkerSpec::new(1).name("b"));
    // A task left queued on a would wait for the gate, which stays shut: the wait would fail.
    wait_tasks(&cluster, &burst);
    let tasks = tasks_by_id(&cluster);
    let holding = &tasks[&long];
    assert_eq!(
        (&holding["state"], &holding["worker"]),
        (&json!("running"), &json!("a")),
        "the gated task still holds a's slot: {holding}"
    );
    for id in &queued {
        let task = &tasks[id];
        assert_eq!(task["state"], "completed", "{task}");
        assert_eq!(task["worker"], "b", "queued on a, then given back: {task}");
        assert_eq!(task["crashes"], 0, "a take-back is no crash: {task}");
    }
    for id in &burst {
        assert_eq!(tasks[id]["crashes"], 0, "{}", tasks[id]);
    }
    let log = cluster.coordinator_log();
    eprintln!(
        "coordinator log lines mentioning a return: {}",
        log.lines().filter(|l| l.contains("return")).count()
    );

    std::fs::write(&gate, "open").unwrap();
    cluster.wait_completed(long, TASK_TIMEOUT);
}

/// `task kill` of an attempt queued (not started) on a worker ends it `killed` within 2 s,
/// while the slot ahead of it is still busy; the rest of the queue runs once the slot is free.
#[test]
fn kill_of_a_queued_task_ends_it_within_two_seconds() {
    let cluster = Cluster::start();
    let _a = cluster.start_worker(WorkerSpec::new(1).name("a"));
    let gate = cluster.dir().join("gate");
    let (long, burst, queued) = hold_and_queue(&cluster, "a", &gate);
    let victim = queued[0];

    let start = Instant::now();
    cluster.action(&["task", "kill", &victim.to_string()]).ok();
    let killed = cluster.wait_finished(victim, Duration::from_secs(10));
    let took = start.elapsed();
    assert_eq!(killed["state"], "killed", "{killed}");
    assert!(
        took <= KILL_DEADLINE + OBSERVATION_SLACK,
        "a queued task was killed only after {took:?}"
    );
    assert_eq!(
        cluster.show(long)["state"],
        "running",
        "the slot is still held"
    );

    std::fs::write(&gate, "open").unwrap();
    let rest: Vec<u64> = burst.iter().copied().filter(|&id| id != victim).collect();
    wait_tasks(&cluster, &rest);
    cluster.wait_completed(long, TASK_TIMEOUT);
    let tasks = tasks_by_id(&cluster);
    for id in &rest {
        assert_eq!(tasks[id]["state"], "completed", "{}", tasks[id]);
    }
    let victim = &tasks[&victim];
    assert_eq!(
        victim["state"], "killed",
        "it never ran afterwards: {victim}"
    );
    assert_eq!(victim["result"], Value::Null, "{victim}");
}

/// A worker killed (SIGKILL) with attempts queued behind its busy slot: the queued tasks run on
/// another worker with no crash counted (they never started), while the task its slot was
/// running counts the crash.
#[test]
fn a_lost_workers_queue_runs_elsewhere_without_a_crash() {
    let cluster = Cluster::start();
    let mut a = cluster.start_worker(WorkerSpec::new(1).name("a"));
    let gate = cluster.dir().join("gate");
    let (long, burst, queued) = hold_and_queue(&cluster, "a", &gate);
    eprintln!(
        "{} of the burst queued on a when it was killed",
        queued.len()
    );

    a.proc.kill9();
    std::fs::write(&gate, "open").unwrap();
    let _b = cluster.start_worker(WorkerSpec::new(1).name("b"));
    wait_tasks(&cluster, &burst);
    let long_task = cluster.wait_completed(long, TASK_TIMEOUT);
    assert_eq!(long_task["crashes"], 1, "it was running on a: {long_task}");
    let tasks = tasks_by_id(&cluster);
    for id in &queued {
        let task = &tasks[id];
        assert_eq!(task["state"], "completed", "{task}");
        assert_eq!(task["worker"], "b", "{task}");
        assert_eq!(task["crashes"], 0, "queued, never started on a: {task}");
    }
}

/// At-most-once tasks never run twice, also when the coordinator is killed (`kill -9`) while a
/// burst of them runs with prefetch on two workers: each task's side effect appears at most
/// once, a completed task's exactly once and with the result of that run.
#[test]
fn at_most_once_tasks_never_run_twice_across_a_coordinator_kill() {
    const TASKS: usize = 400;
    let mut cluster = Cluster::start();
    let _workers: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| cluster.start_worker(WorkerSpec::new(2).name(name)))
        .collect();
    let side = cluster.dir().join("side-effects.txt");
    let line = json!([side, "amo", 0.01]).to_string();
    let file = cluster.write_args_file(&vec![line; TASKS]);
    let function = format!("{}:record", fixtures_dir().join("soak.py").display());
    let added = cluster
        .action(&[
            "task",
            "add",
            &function,
            "--args-file",
            file.to_str().unwrap(),
            "--play",
            "--at-most-once",
        ])
        .ok();
    let ids = added.ids();
    assert_eq!(ids.len(), TASKS);

    wait_for("a quarter of the burst to run", TASK_TIMEOUT, || {
        (count_lines(&side) >= TASKS / 4).then_some(())
    });
    cluster.restart_coordinator(Stop::Kill);
    let tasks = wait_for(
        "every task to be finished after the restart",
        TASK_TIMEOUT * 2,
        || {
            let tasks = tasks_by_id(&cluster);
            let open = tasks
                .values()
                .filter(|t| !tatzelwurm_e2e::client::is_finished(t))
                .count();
            (open == 0).then_some(tasks)
        },
    );
    assert_eq!(tasks.len(), TASKS);

    let text = std::fs::read_to_string(&side).unwrap_or_default();
    let mut runs: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "a torn line: {line:?}");
        runs.entry(parts[0].parse().unwrap())
            .or_default()
            .push(parts[2].to_string());
    }
    let twice: Vec<(&u64, &Vec<String>)> = runs.iter().filter(|(_, r)| r.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "{} at-most-once task(s) ran twice, such as {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    let ids: BTreeSet<u64> = ids.into_iter().collect();
    for (id, task) in &tasks {
        assert!(ids.contains(id), "task {id} was never added: {task}");
        *states
            .entry(task["state"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        if task["state"] == "completed" {
            let ran = runs.get(id).map(Vec::as_slice).unwrap_or(&[]);
            assert_eq!(ran.len(), 1, "a completed task ran once: {task}");
            assert_eq!(task["result"]["run"], ran[0].as_str(), "{task}");
        }
    }
    eprintln!("at-most-once burst across a kill -9: {states:?}");
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}
