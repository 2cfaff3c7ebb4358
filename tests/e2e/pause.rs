//! Pausing tasks: `task pause` holds a created, ready or scheduled task `paused` until
//! `task play`, a scheduled one keeps its time, `task pause -a` leaves running and finished
//! tasks alone, and a paused task stays paused across a coordinator restart.

use crate::TASK_TIMEOUT;
use serde_json::json;
use tatzelwurm_e2e::{example, fixture, wait_until, Cluster, Stop, WorkerSpec};

/// Seconds since the epoch now.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A created and a ready task paused by id are `paused`, stay so over a `kill -9` of the
/// coordinator and while a worker idles, and run once `task play` takes them back.
#[test]
fn paused_tasks_wait_for_play() {
    let mut cluster = Cluster::start();
    let square = example("square");
    let created = cluster.add_created(&square, "[2]");
    let ready = cluster.add(&square, "[3]");
    assert_eq!(cluster.show(ready)["state"], "ready");
    cluster
        .action(&["task", "pause", &created.to_string(), &ready.to_string()])
        .ok();
    for id in [created, ready] {
        assert_eq!(cluster.show(id)["state"], "paused");
    }

    cluster.restart_coordinator(Stop::Kill);
    let _w = cluster.start_worker(WorkerSpec::new(1));
    // A task added after them runs: the worker has looked and left the paused ones alone.
    let passer = cluster.add(&square, "[4]");
    cluster.wait_completed(passer, TASK_TIMEOUT);
    for id in [created, ready] {
        assert_eq!(cluster.show(id)["state"], "paused", "durable and not run");
    }

    cluster
        .action(&["task", "play", &created.to_string(), &ready.to_string()])
        .ok();
    assert_eq!(cluster.wait_completed(created, TASK_TIMEOUT)["result"], 4);
    assert_eq!(cluster.wait_completed(ready, TASK_TIMEOUT)["result"], 9);
}

/// A scheduled task paused and played before its time is `scheduled` again with the same
/// `run_at`; paused past its time it stays `paused`, and played then it is `ready` at once.
#[test]
fn a_scheduled_task_keeps_its_time_through_pause_and_play() {
    let cluster = Cluster::start();
    let square = example("square");
    let id = cluster.add_with(&square, "[5]", &["--delay", "3s"]);
    let run_at = cluster.show(id)["run_at"].clone();
    assert!(run_at.as_f64().is_some(), "{}", cluster.show(id));
    let sid = id.to_string();

    cluster.action(&["task", "pause", &sid]).ok();
    assert_eq!(cluster.show(id)["state"], "paused");
    cluster.action(&["task", "play", &sid]).ok();
    let task = cluster.show(id);
    if now() < run_at.as_f64().unwrap() {
        assert_eq!(task["state"], "scheduled", "{task}");
    }
    assert_eq!(task["run_at"], run_at, "the time is kept: {task}");

    cluster.action(&["task", "pause", &sid]).ok();
    let due = run_at.as_f64().unwrap();
    wait_until("the task's time to pass", TASK_TIMEOUT, || {
        now() > due + 0.2
    });
    assert_eq!(
        cluster.show(id)["state"],
        "paused",
        "its time passed while paused"
    );
    cluster.action(&["task", "play", &sid]).ok();
    assert_eq!(cluster.show(id)["state"], "ready");
    let _w = cluster.start_worker(WorkerSpec::new(1));
    assert_eq!(cluster.wait_completed(id, TASK_TIMEOUT)["result"], 25);
}

/// `task pause -a` pauses the created, ready and scheduled tasks and leaves the running and the
/// completed ones alone (the running one completes); `task play -a` runs the paused ones.
#[test]
fn pause_all_leaves_running_and_finished_tasks_alone() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1));
    let square = example("square");
    let done = cluster.add(&square, "[1]");
    cluster.wait_completed(done, TASK_TIMEOUT);
    let gate = cluster.dir().join("gate");
    let running = cluster.add(&fixture("wait_for_file"), &json!([gate, 120]).to_string());
    cluster.wait_state(running, "running", TASK_TIMEOUT);
    let created = cluster.add_created(&square, "[2]");
    // At-most-once, so that it is not prefetched behind the running task: it stays `ready`.
    let ready = cluster.add_with(&square, "[3]", &["--at-most-once"]);
    assert_eq!(cluster.show(ready)["state"], "ready");
    let scheduled = cluster.add_with(&square, "[4]", &["--delay", "1h"]);

    cluster.action(&["task", "pause", "-a"]).ok();
    for id in [created, ready, scheduled] {
        assert_eq!(cluster.show(id)["state"], "paused", "task {id}");
    }
    assert_eq!(cluster.show(running)["state"], "running");
    assert_eq!(cluster.show(done)["state"], "completed");
    std::fs::write(&gate, "open").unwrap();
    cluster.wait_completed(running, TASK_TIMEOUT);

    cluster.action(&["task", "play", "-a"]).ok();
    assert_eq!(cluster.wait_completed(created, TASK_TIMEOUT)["result"], 4);
    assert_eq!(cluster.wait_completed(ready, TASK_TIMEOUT)["result"], 9);
    assert_eq!(
        cluster.show(scheduled)["state"],
        "scheduled",
        "keeps its hour"
    );
}

/// `task pause` of an unknown id is refused with one sentence naming it.
#[test]
fn pause_of_an_unknown_task_is_refused() {
    let cluster = Cluster::start();
    let refused = cluster.action(&["task", "pause", "424242"]).failed();
    assert!(refused.one_sentence().contains("424242"), "{refused}");
}
