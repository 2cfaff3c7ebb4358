//! Dependencies: `task add --after ID[,ID...]` keeps a task `blocked` until every task it names
//! completed; a dependency that fails or is killed fails its dependents (and theirs) with a
//! `DependencyFailed` error naming it; a missing id refuses the whole add; and a chain half
//! done when the coordinator is killed goes on after it restarts.

use crate::TASK_TIMEOUT;
use serde_json::{json, Value};
use tatzelwurm_e2e::{example, fixture, Cluster, Stop, WorkerSpec};

/// Adds `square(x)` with `--play --after` the given ids and returns its id.
fn add_after(cluster: &Cluster, x: u64, after: &[u64]) -> u64 {
    let after: Vec<String> = after.iter().map(u64::to_string).collect();
    cluster.add_with(
        &example("square"),
        &format!("[{x}]"),
        &["--after", &after.join(",")],
    )
}

/// Asserts the task failed with `DependencyFailed` naming task `cause`, and returns it.
fn assert_dependency_failed(cluster: &Cluster, id: u64, cause: u64) -> Value {
    let task = cluster.wait_finished(id, TASK_TIMEOUT);
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["error"]["type"], "DependencyFailed", "{task}");
    let message = task["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("task {cause}")),
        "the error names task {cause}: {task}"
    );
    assert_eq!(task["attempts"], 0, "it never ran: {task}");
    task
}

/// A task after two others is `blocked` while either has not completed, and runs only after
/// both completed; `task show` lists what it runs after.
#[test]
fn a_task_is_blocked_until_every_dependency_completed() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(2));
    let gate_a = cluster.dir().join("gate-a");
    let gate_b = cluster.dir().join("gate-b");
    let a = cluster.add(&fixture("wait_for_file"), &json!([gate_a, 120]).to_string());
    let b = cluster.add(&fixture("wait_for_file"), &json!([gate_b, 120]).to_string());
    let c = add_after(&cluster, 7, &[a, b]);
    let task = cluster.show(c);
    assert_eq!(task["state"], "blocked", "{task}");
    assert_eq!(task["after"], json!([a, b]), "{task}");

    std::fs::write(&gate_a, "open").unwrap();
    cluster.wait_completed(a, TASK_TIMEOUT);
    assert_eq!(cluster.show(c)["state"], "blocked", "b has not completed");
    std::fs::write(&gate_b, "open").unwrap();
    let b_task = cluster.wait_completed(b, TASK_TIMEOUT);
    let task = cluster.wait_completed(c, TASK_TIMEOUT);
    assert_eq!(task["result"], 49);
    assert!(
        task["started_at"].as_f64().unwrap() >= b_task["finished_at"].as_f64().unwrap(),
        "started after its dependency finished: {task} {b_task}"
    );

    // After a task that already completed it is ready at once.
    let d = add_after(&cluster, 8, &[c]);
    assert_eq!(cluster.wait_completed(d, TASK_TIMEOUT)["result"], 64);
}

/// A failed dependency fails its dependent with `DependencyFailed` naming it, and that one's
/// own dependent with an error naming the dependent; a task added after an already failed one
/// fails at once; an unrelated task still runs.
#[test]
fn a_failed_dependency_fails_its_dependents_in_cascade() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1));
    let gate = cluster.dir().join("gate");
    let hold = cluster.add(&fixture("wait_for_file"), &json!([gate, 120]).to_string());
    let failing = cluster.add_with(
        &example("fail"),
        r#"["on purpose"]"#,
        &["--after", &hold.to_string()],
    );
    let child = add_after(&cluster, 2, &[failing]);
    let grandchild = add_after(&cluster, 3, &[child]);
    let unrelated = add_after(&cluster, 4, &[hold]);
    for id in [failing, child, grandchild, unrelated] {
        assert_eq!(cluster.show(id)["state"], "blocked", "task {id}");
    }
    std::fs::write(&gate, "open").unwrap();

    let failed = cluster.wait_finished(failing, TASK_TIMEOUT);
    assert_eq!(failed["error"]["type"], "ValueError", "{failed}");
    assert_dependency_failed(&cluster, child, failing);
    assert_dependency_failed(&cluster, grandchild, child);
    assert_eq!(
        cluster.wait_completed(unrelated, TASK_TIMEOUT)["result"],
        16
    );

    let late = add_after(&cluster, 5, &[failing]);
    assert_dependency_failed(&cluster, late, failing);
}

/// A killed dependency fails its dependent with `DependencyFailed` saying it was killed.
#[test]
fn a_killed_dependency_fails_its_dependent() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1));
    let gate = cluster.dir().join("never-opened");
    let victim = cluster.add(&fixture("wait_for_file"), &json!([gate, 120]).to_string());
    cluster.wait_state(victim, "running", TASK_TIMEOUT);
    let dependent = add_after(&cluster, 2, &[victim]);
    cluster.action(&["task", "kill", &victim.to_string()]).ok();
    let task = assert_dependency_failed(&cluster, dependent, victim);
    assert!(
        task["error"]["message"]
            .as_str()
            .unwrap()
            .contains("killed"),
        "{task}"
    );
}

/// `--after` naming a task that does not exist refuses the whole add with one sentence naming
/// the id, adding nothing (not even the tasks of the same args file).
#[test]
fn after_a_missing_id_is_refused_and_adds_nothing() {
    let cluster = Cluster::start();
    let existing = cluster.add_created(&example("square"), "[1]");
    let after = format!("{existing},424242");
    let refused = cluster
        .action(&[
            "task",
            "add",
            &example("square"),
            "--args",
            "[2]",
            "--after",
            &after,
        ])
        .failed();
    assert!(refused.one_sentence().contains("424242"), "{refused}");
    let file = cluster.write_args_file(&["[3]".into(), "[4]".into()]);
    let refused = cluster
        .action(&[
            "task",
            "add",
            &example("square"),
            "--args-file",
            file.to_str().unwrap(),
            "--after",
            "424242",
        ])
        .failed();
    assert!(refused.one_sentence().contains("424242"), "{refused}");
    let listed = cluster.list(&[]);
    assert_eq!(listed.len(), 1, "only the first task exists: {listed:?}");
    let bad = cluster
        .action(&[
            "task",
            "add",
            &example("square"),
            "--args",
            "[2]",
            "--after",
            "x,1",
        ])
        .failed();
    bad.one_sentence();
}

/// A chain of four tasks, each after the one before, with the coordinator killed (`kill -9`)
/// while the second runs: after the restart the second is ready again, the rest still blocked,
/// and the chain completes in order.
#[test]
fn a_chain_half_done_goes_on_after_a_restart() {
    chain_across_a_restart_on(&[]);
}

/// The same on `--store sled`.
#[test]
fn a_chain_half_done_goes_on_after_a_restart_with_sled() {
    chain_across_a_restart_on(&["--store", "sled"]);
}

/// The chain-across-a-restart test with the coordinator's extra arguments `args`.
fn chain_across_a_restart_on(args: &[&str]) {
    let mut cluster = Cluster::start_with_args(args);
    let mut worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let gate = cluster.dir().join("gate");
    let first = cluster.add(&example("square"), "[1]");
    let second = cluster.add_with(
        &fixture("wait_for_file"),
        &json!([gate, 120]).to_string(),
        &["--after", &first.to_string()],
    );
    let third = add_after(&cluster, 3, &[second]);
    let fourth = add_after(&cluster, 4, &[third]);
    cluster.wait_completed(first, TASK_TIMEOUT);
    cluster.wait_state(second, "running", TASK_TIMEOUT);

    // A paused worker cannot reconnect, so the restarted coordinator is seen before it does.
    worker.proc.pause();
    cluster.restart_coordinator(Stop::Kill);
    assert_eq!(cluster.show(first)["state"], "completed");
    assert_eq!(cluster.show(second)["state"], "ready");
    for id in [third, fourth] {
        let task = cluster.show(id);
        assert_eq!(task["state"], "blocked", "{task}");
    }
    worker.proc.resume();
    std::fs::write(&gate, "open").unwrap();
    cluster.wait_completed(second, TASK_TIMEOUT);
    let third_task = cluster.wait_completed(third, TASK_TIMEOUT);
    let fourth_task = cluster.wait_completed(fourth, TASK_TIMEOUT);
    assert_eq!(third_task["result"], 9);
    assert_eq!(fourth_task["result"], 16);
    assert!(
        fourth_task["started_at"].as_f64() >= third_task["finished_at"].as_f64(),
        "in order: {third_task} {fourth_task}"
    );
}

/// A chain with a failure after a restart: the coordinator is killed while a dependency that
/// will fail runs; after the restart it fails and its dependents fail with `DependencyFailed`.
#[test]
fn a_dependency_failing_after_a_restart_fails_its_dependents() {
    let mut cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let gate = cluster.dir().join("gate");
    let hold = cluster.add(&fixture("wait_for_file"), &json!([gate, 120]).to_string());
    let failing = cluster.add_with(
        &example("fail"),
        r#"["later"]"#,
        &["--after", &hold.to_string()],
    );
    let dependent = add_after(&cluster, 2, &[failing]);
    cluster.wait_state(hold, "running", TASK_TIMEOUT);
    cluster.restart_coordinator(Stop::Kill);
    assert_eq!(cluster.show(dependent)["state"], "blocked");
    std::fs::write(&gate, "open").unwrap();
    cluster.wait_completed(hold, TASK_TIMEOUT);
    assert_dependency_failed(&cluster, dependent, failing);
}
