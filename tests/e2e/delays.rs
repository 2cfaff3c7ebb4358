//! Delays: `task add --delay` and `--at` keep a task `scheduled` until its time, then make it
//! `ready`; an `--at` in the past runs now and says so; a malformed duration or time is one
//! sentence; and a delay that passed while the coordinator was down fires when it starts.

use crate::TASK_TIMEOUT;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tatzelwurm_e2e::control::rfc3339_utc;
use tatzelwurm_e2e::{example, wait_until, Cluster, Stop, WorkerSpec};

/// A task's `run_at` in seconds since the epoch; panics when it has none.
fn run_at(task: &Value) -> f64 {
    task["run_at"]
        .as_f64()
        .unwrap_or_else(|| panic!("the task has no run_at: {task}"))
}

/// Asserts that the task started no earlier than its `run_at` (both by the coordinator's clock;
/// times are stored in milliseconds).
fn assert_started_on_time(task: &Value) {
    let started = task["started_at"].as_f64().expect("a started task");
    assert!(
        started + 0.001 >= run_at(task),
        "started at {started} before its time {}: {task}",
        run_at(task)
    );
}

/// Seconds since the epoch now.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `--delay 2s` keeps the task `scheduled` (with its `run_at` two seconds after it was added)
/// while a worker is idle, then it runs, not before its time.
#[test]
fn a_delayed_task_is_scheduled_until_its_time_then_runs() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1));
    let id = cluster.add_with(&example("square"), "[6]", &["--delay", "2s"]);
    let task = cluster.show(id);
    assert_eq!(task["state"], "scheduled", "{task}");
    let created = task["created_at"].as_f64().unwrap();
    let delay = run_at(&task) - created;
    assert!(
        (1.99..=2.01).contains(&delay),
        "run_at is created_at + 2 s: {task}"
    );

    let task = cluster.wait_completed(id, TASK_TIMEOUT);
    assert_eq!(task["result"], 36);
    assert_started_on_time(&task);
}

/// `--at` a moment two seconds ahead keeps the task `scheduled` until then; `--at` in the past
/// is accepted with a warning on stderr that it runs now, and the task is `ready` at once.
#[test]
fn at_a_time_ahead_waits_and_at_a_time_past_runs_now_with_a_warning() {
    let cluster = Cluster::start();
    let ahead = rfc3339_utc(SystemTime::now() + Duration::from_secs(3));
    let later = cluster.add_with(&example("square"), "[2]", &["--at", &ahead]);
    assert_eq!(cluster.show(later)["state"], "scheduled");

    let past = cluster
        .action(&[
            "task",
            "add",
            &example("square"),
            "--args",
            "[3]",
            "--at",
            "2020-01-01T00:00:00Z",
            "--play",
        ])
        .ok();
    let warning = past.one_sentence();
    assert!(
        warning.contains("runs now"),
        "the warning says the task runs now: {past}"
    );
    let early = past.ids()[0];
    // No worker yet: the past one waits `ready`, the other still `scheduled`.
    assert_eq!(cluster.show(early)["state"], "ready");

    let _w = cluster.start_worker(WorkerSpec::new(1));
    assert_eq!(cluster.wait_completed(early, TASK_TIMEOUT)["result"], 9);
    let task = cluster.wait_completed(later, TASK_TIMEOUT);
    assert_eq!(task["result"], 4);
    assert_started_on_time(&task);
}

/// A malformed `--delay` or `--at` is refused with one sentence naming it, and adds nothing.
#[test]
fn a_malformed_duration_or_time_is_refused() {
    let cluster = Cluster::start();
    let square = example("square");
    for (flag, bad) in [
        ("--delay", "5x"),
        ("--delay", "soon"),
        ("--delay", "3 parsecs"),
        ("--at", "tomorrow"),
        ("--at", "2026-13-01T00:00:00Z"),
    ] {
        let refused = cluster
            .action(&["task", "add", &square, "--args", "[1]", flag, bad, "--play"])
            .failed();
        refused.one_sentence();
        assert!(refused.stderr.contains(bad), "names `{bad}`: {refused}");
    }
    let both = cluster
        .action(&[
            "task",
            "add",
            &square,
            "--args",
            "[1]",
            "--delay",
            "1s",
            "--at",
            "2030-01-01T00:00:00Z",
        ])
        .failed();
    both.one_sentence();
    assert!(cluster.list(&[]).is_empty(), "nothing was added");
    for good in ["30s", "5m", "2h", "1h30m"] {
        cluster
            .action(&["task", "add", &square, "--args", "[1]", "--delay", good])
            .ok();
    }
}

/// With no worker, a task delayed by 1 s and one by 6 s are added and the coordinator is killed
/// (`kill -9`); it starts again after the first time passed: that task is `ready` at once, the
/// other still `scheduled` with its time, and a worker runs each, the second not before its time.
#[test]
fn a_delay_that_passed_while_the_coordinator_was_down_fires_at_start() {
    delay_across_a_restart_on(&[]);
}

/// The same on `--store sled`.
#[test]
fn a_delay_that_passed_while_down_fires_at_start_with_sled() {
    delay_across_a_restart_on(&["--store", "sled"]);
}

/// The delay-across-a-restart test with the coordinator's extra arguments `args`.
fn delay_across_a_restart_on(args: &[&str]) {
    let mut cluster = Cluster::start_with_args(args);
    let soon = cluster.add_with(&example("square"), "[11]", &["--delay", "1s"]);
    let late = cluster.add_with(&example("square"), "[12]", &["--delay", "6s"]);
    let soon_at = run_at(&cluster.show(soon));
    let late_at = run_at(&cluster.show(late));
    assert_eq!(cluster.show(soon)["state"], "scheduled");

    cluster.stop_coordinator(Stop::Kill);
    // The event awaited is the clock passing the first task's time, while nothing runs.
    wait_until("the first delay to pass", TASK_TIMEOUT, || {
        now() > soon_at + 0.2
    });
    cluster.start_coordinator_again();
    let task = cluster.show(soon);
    assert_eq!(
        task["state"], "ready",
        "due while down, ready at start: {task}"
    );
    assert_eq!(run_at(&task), soon_at);
    let task = cluster.show(late);
    if now() < late_at {
        assert_eq!(task["state"], "scheduled", "{task}");
    }
    assert_eq!(run_at(&task), late_at, "the time is durable: {task}");

    let _w = cluster.start_worker(WorkerSpec::new(1));
    assert_eq!(cluster.wait_completed(soon, TASK_TIMEOUT)["result"], 121);
    let task = cluster.wait_completed(late, TASK_TIMEOUT);
    assert_eq!(task["result"], 144);
    assert_started_on_time(&task);
}
