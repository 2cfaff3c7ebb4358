//! Queues: a worker serves only the queues it names (`workwurm --queue`), `queue list` counts
//! each queue's tasks by state and names the workers serving it, and `queue pause` stops new
//! dispatch from one queue while its running tasks go on, across a coordinator restart too.

use crate::TASK_TIMEOUT;
use serde_json::json;
use tatzelwurm_e2e::control::{queue_count, queue_workers};
use tatzelwurm_e2e::{example, fixture, Cluster, Stop, WorkerSpec};

/// A worker serving only queue `a` never runs a task of queue `b` (and the other way round), a
/// queue no worker serves keeps its task `ready`, and `queue list` counts each queue's tasks by
/// state and names the workers serving it.
#[test]
fn workers_run_only_their_queues_and_queue_list_counts_them() {
    let cluster = Cluster::start();
    let _a = cluster.start_worker(WorkerSpec::new(2).name("wa").queue("a"));
    let _b = cluster.start_worker(WorkerSpec::new(2).name("wb").queue("b"));
    let square = example("square");
    // Added first, so that every dispatch below could have taken it.
    let orphan = cluster.add_with(&square, "[99]", &["--queue", "c"]);
    let mut added = Vec::new();
    for n in 0..6 {
        for queue in ["a", "b"] {
            let id = cluster.add_with(&square, &format!("[{n}]"), &["--queue", queue]);
            added.push((id, queue));
        }
    }
    for &(id, queue) in &added {
        let task = cluster.wait_completed(id, TASK_TIMEOUT);
        assert_eq!(
            task["worker"],
            format!("w{queue}"),
            "task of queue {queue}: {task}"
        );
        assert_eq!(task["queue"], queue, "{task}");
    }
    // Both workers ran twelve tasks after it was added, and neither took it.
    assert_eq!(cluster.show(orphan)["state"], "ready");

    let a = cluster.queue("a");
    assert_eq!(queue_count(&a, "completed"), 6, "{a}");
    assert_eq!(queue_count(&a, "ready"), 0, "{a}");
    assert_eq!(queue_workers(&a), ["wa"], "{a}");
    let b = cluster.queue("b");
    assert_eq!(queue_count(&b, "completed"), 6, "{b}");
    assert_eq!(queue_workers(&b), ["wb"], "{b}");
    let c = cluster.queue("c");
    assert_eq!(queue_count(&c, "ready"), 1, "{c}");
    assert_eq!(queue_count(&c, "completed"), 0, "{c}");
    assert!(queue_workers(&c).is_empty(), "{c}");

    // `task list --queue` lists one queue's tasks only.
    let listed = cluster.action_json(&["task", "list", "--queue", "c", "--limit", "0", "--json"]);
    let ids: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [orphan], "{listed}");

    // A worker serving `c` (and `a`) takes the orphan at once.
    let _c = cluster.start_worker(WorkerSpec::new(1).name("wc").queue("a").queue("c"));
    let task = cluster.wait_completed(orphan, TASK_TIMEOUT);
    assert_eq!(task["worker"], "wc", "{task}");
    assert_eq!(task["result"], 99 * 99);
    let a = cluster.queue("a");
    let mut serving = queue_workers(&a);
    serving.sort();
    assert_eq!(serving, ["wa", "wc"], "{a}");

    // The table form names every queue too.
    let table = cluster.action(&["queue", "list"]).ok();
    for name in ["a", "b", "c"] {
        assert!(table.stdout.lines().any(|l| l.contains(name)), "{table}");
    }
}

/// Tasks added without `--queue` go to `default`, which a worker started without `--queue`
/// serves.
#[test]
fn tasks_and_workers_default_to_the_default_queue() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1).name("plain"));
    let id = cluster.add(&example("square"), "[7]");
    let task = cluster.wait_completed(id, TASK_TIMEOUT);
    assert_eq!(task["queue"], "default", "{task}");
    let default = cluster.queue("default");
    assert_eq!(queue_count(&default, "completed"), 1, "{default}");
    assert_eq!(queue_workers(&default), ["plain"], "{default}");
}

/// `queue list` counts a queue's tasks in each of the states a task waits in: created,
/// blocked, scheduled, paused and ready.
#[test]
fn queue_list_counts_every_waiting_state() {
    let cluster = Cluster::start();
    let square = example("square");
    let on_q = |extra: &[&str]| {
        let mut options = vec!["--queue", "q"];
        options.extend_from_slice(extra);
        cluster.add_with(&square, "[1]", &options)
    };
    let created = cluster
        .action(&["task", "add", &square, "--args", "[1]", "--queue", "q"])
        .ok()
        .ids()[0];
    on_q(&["--after", &created.to_string()]);
    on_q(&["--delay", "1h"]);
    let to_pause = on_q(&[]);
    cluster
        .action(&["task", "pause", &to_pause.to_string()])
        .ok();
    on_q(&[]);
    let q = cluster.queue("q");
    for (state, count) in [
        ("created", 1),
        ("blocked", 1),
        ("scheduled", 1),
        ("paused", 1),
        ("ready", 1),
        ("running", 0),
        ("completed", 0),
    ] {
        assert_eq!(queue_count(&q, state), count, "{state}: {q}");
    }
}

/// While queue `q` is paused its running task goes on to complete but nothing new of it is
/// dispatched, even to a free slot that runs another queue's task meanwhile; the pause
/// survives a `kill -9` of the coordinator, and `queue resume` lets the waiting task run.
#[test]
fn a_paused_queue_dispatches_nothing_new_and_running_tasks_go_on() {
    paused_queue_on(&[]);
}

/// The same on `--store sled`, whose queue settings and counts live in key spaces of their own.
#[test]
fn a_paused_queue_stays_paused_across_a_restart_with_sled() {
    paused_queue_on(&["--store", "sled"]);
}

/// The paused-queue test with the coordinator's extra arguments `args`.
fn paused_queue_on(args: &[&str]) {
    let mut cluster = Cluster::start_with_args(args);
    let _w = cluster.start_worker(WorkerSpec::new(2).name("w").queue("q").queue("other"));
    let gate = cluster.dir().join("gate");
    let running = cluster.add_with(
        &fixture("wait_for_file"),
        &json!([gate, 120]).to_string(),
        &["--queue", "q"],
    );
    cluster.wait_state(running, "running", TASK_TIMEOUT);

    cluster.action(&["queue", "pause", "q"]).ok();
    assert_eq!(cluster.queue("q")["paused"], true);
    let held = cluster.add_with(&example("square"), "[3]", &["--queue", "q"]);
    // A task of another queue, added after the held one, runs on the free slot: the dispatcher
    // has looked at the ready tasks since `held` was added and left it alone.
    let passer = cluster.add_with(&example("square"), "[4]", &["--queue", "other"]);
    cluster.wait_completed(passer, TASK_TIMEOUT);
    assert_eq!(cluster.show(held)["state"], "ready");

    std::fs::write(&gate, "open").unwrap();
    cluster.wait_completed(running, TASK_TIMEOUT);
    assert_eq!(cluster.show(held)["state"], "ready");

    cluster.restart_coordinator(Stop::Kill);
    cluster.wait_worker_connected("w");
    let q = cluster.queue("q");
    assert_eq!(q["paused"], true, "the pause is durable: {q}");
    assert_eq!(
        queue_count(&q, "completed"),
        1,
        "the counts are durable: {q}"
    );
    assert_eq!(queue_count(&q, "ready"), 1, "{q}");
    let passer = cluster.add_with(&example("square"), "[5]", &["--queue", "other"]);
    cluster.wait_completed(passer, TASK_TIMEOUT);
    assert_eq!(cluster.show(held)["state"], "ready");

    cluster.action(&["queue", "resume", "q"]).ok();
    assert_eq!(cluster.queue("q")["paused"], false);
    let task = cluster.wait_completed(held, TASK_TIMEOUT);
    assert_eq!(task["result"], 9);
}

/// `queue pause`, `queue resume` and `queue limit` of a queue nobody has named fail with one
/// sentence that names it and lists the known queues, and create no queue.
#[test]
fn an_unknown_queue_is_refused_naming_the_known_ones() {
    let cluster = Cluster::start();
    cluster.add_with(&example("square"), "[1]", &["--queue", "known"]);
    for args in [
        &["queue", "pause", "nosuch"][..],
        &["queue", "resume", "nosuch"][..],
        &["queue", "limit", "nosuch", "2"][..],
    ] {
        let refused = cluster.action(args).failed();
        let sentence = refused.one_sentence();
        assert!(sentence.contains("nosuch"), "{refused}");
        assert!(sentence.contains("known"), "{refused}");
    }
    assert!(
        cluster.queues().iter().all(|q| q["name"] != "nosuch"),
        "{:?}",
        cluster.queues()
    );
}

/// A queue name outside the allowed alphabet is refused with one sentence by `task add
/// --queue`, and nothing is added.
#[test]
fn a_bad_queue_name_is_refused() {
    let cluster = Cluster::start();
    let refused = cluster
        .action(&[
            "task",
            "add",
            &example("square"),
            "--args",
            "[1]",
            "--queue",
            "a b",
        ])
        .failed();
    refused.one_sentence();
    assert!(refused.stderr.contains("a b"), "{refused}");
    assert!(cluster.list(&[]).is_empty());
}
