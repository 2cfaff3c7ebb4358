//! Retries and the limits that end them: a task that raises is retried after a doubling, jittered
//! backoff (`waiting` meanwhile) until `--retries` runs out; a task that kills its own worker is
//! stopped by its crash limit; a task running past `--timeout` is killed and handled as a failure.

use crate::TASK_TIMEOUT;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tatzelwurm_e2e::client::is_finished;
use tatzelwurm_e2e::wait::poll_every;
use tatzelwurm_e2e::{example, fixture, Cluster, WorkerSpec};

/// How often the retry test looks at its task, to see it `waiting` in a backoff of 0.1 s or more.
const WATCH_POLL: Duration = Duration::from_millis(5);

/// A task that raises on its first 2 attempts, added with `--retries 3 --backoff 0.2`, waits in
/// `waiting` between attempts, each gap at least the shortest its doubling, jittered backoff
/// allows, and completes on attempt 3 with 2 failures.
#[test]
fn failing_task_is_retried_after_a_doubling_backoff() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let starts_file = cluster.dir().join("attempt-starts");
    let base = 0.2;
    let id = cluster.add_with(
        &fixture("fail_first"),
        &json!([starts_file, 2]).to_string(),
        &["--retries", "3", "--backoff", "0.2"],
    );

    let mut seen_waiting: Vec<Value> = Vec::new();
    let task = poll_every(WATCH_POLL, TASK_TIMEOUT, || {
        let task = cluster.show(id);
        if task["state"] == "waiting" {
            seen_waiting.push(task.clone());
        }
        is_finished(&task).then_some(task)
    })
    .unwrap_or_else(|| panic!("task {id} did not finish within {TASK_TIMEOUT:?}"));
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["result"], 3, "{task}");
    assert_eq!(task["attempts"], 3, "{task}");
    assert_eq!(task["failures"], 2, "{task}");
    assert_eq!(task["crashes"], 0, "{task}");
    assert_eq!(task["policy"]["retries"], 3, "{task}");
    assert_eq!(task["policy"]["backoff"], base, "{task}");

    assert!(
        !seen_waiting.is_empty(),
        "task {id} was never seen `waiting` between its attempts"
    );
    for waiting in &seen_waiting {
        assert!(
            waiting["retry_at"].as_f64().is_some(),
            "a waiting task says when it is retried: {waiting}"
        );
    }

    let starts: Vec<f64> = std::fs::read_to_string(&starts_file)
        .unwrap()
        .lines()
        .map(|line| line.parse().expect("a start time"))
        .collect();
    assert_eq!(starts.len(), 3, "attempts started: {starts:?}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("retry gaps with --backoff {base}: {gaps:?} s");
    for (n, gap) in gaps.iter().enumerate() {
        // Retry n waits backoff × 2^(n-1) × a jitter of 0.5 to 1.5 after attempt n failed, which
        // is after it started; the upper bound allows 2 s for reporting and dispatching.
        let nominal = base * 2f64.powi(n as i32);
        assert!(
            *gap >= 0.5 * nominal,
            "retry {} came {gap:.3} s after the previous attempt started, before its shortest \
             backoff of {:.3} s (gaps {gaps:?})",
            n + 1,
            0.5 * nominal
        );
        assert!(
            *gap <= 1.5 * nominal + 2.0,
            "retry {} came only {gap:.3} s after the previous attempt started (gaps {gaps:?})",
            n + 1
        );
    }
}

/// A task that always raises, added with `--retries 2 --backoff 0.1`, ends `failed` after 3
/// attempts and 3 failures with the exception's type and message.
#[test]
fn retries_run_out_and_the_task_fails_with_its_exception() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let id = cluster.add_with(
        &example("fail"),
        r#"["no luck"]"#,
        &["--retries", "2", "--backoff", "0.1"],
    );
    let task = cluster.wait_finished(id, TASK_TIMEOUT);
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["attempts"], 3, "{task}");
    assert_eq!(task["failures"], 3, "{task}");
    assert_eq!(task["crashes"], 0, "{task}");
    assert_eq!(task["error"]["type"], "ValueError", "{task}");
    assert_eq!(task["error"]["message"], "no luck", "{task}");
    assert_eq!(task["retry_at"], Value::Null, "{task}");
}

/// A task that kills its own worker, added with `--crash-limit 2`, runs again after the first
/// crash and ends `failed` as `CrashLimitReached` after the second (the worker being restarted
/// each time it dies), after which the worker serves on.
#[test]
fn crash_limit_ends_a_task_that_kills_its_worker() {
    let cluster = Cluster::start();
    let supervisor = cluster.supervise_worker(WorkerSpec::new(1).name("w1"));
    cluster.wait_worker_connected("w1");
    let id = cluster.add_with(&fixture("kill_my_worker"), "[]", &["--crash-limit", "2"]);
    let task = cluster.wait_finished(id, TASK_TIMEOUT);
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["error"]["type"], "CrashLimitReached", "{task}");
    assert_eq!(task["crashes"], 2, "{task}");
    assert_eq!(task["attempts"], 2, "{task}");
    assert_eq!(task["failures"], 0, "{task}");
    assert_eq!(task["policy"]["crash_limit"], 2, "{task}");
    assert!(
        supervisor.starts() >= 2,
        "the task killed its worker (started {} time(s))",
        supervisor.starts()
    );

    let next = cluster.add(&example("square"), "[6]");
    assert_eq!(cluster.wait_completed(next, TASK_TIMEOUT)["result"], 36);
    assert_eq!(cluster.show(id)["attempts"], 2, "the failed task ran again");
}

/// A task sleeping past `--timeout 1` is killed in its slot and ends `failed` as `Timeout` about
/// 1 s after it started, and the worker serves the next task.
#[test]
fn timeout_kills_a_task_and_fails_it() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let added = Instant::now();
    let id = cluster.add_with(&example("sleep"), "[3600]", &["--timeout", "1"]);
    cluster.wait_state(id, "running", TASK_TIMEOUT);
    let running = Instant::now();
    let task = cluster.wait_finished(id, Duration::from_secs(10));
    let (since_added, since_running) = (added.elapsed(), running.elapsed());
    eprintln!("timeout of 1 s: failed {since_added:?} after the add");
    assert_timed_out(&task);
    assert_eq!(task["attempts"], 1, "{task}");
    assert_eq!(task["failures"], 1, "{task}");
    assert_eq!(task["policy"]["timeout"], 1.0, "{task}");
    assert!(
        since_added >= Duration::from_secs(1),
        "failed {since_added:?} after the add, before its timeout"
    );
    assert!(
        since_running < Duration::from_secs(3),
        "failed only {since_running:?} after it was seen running (timeout 1 s)"
    );

    let next = cluster.add(&example("square"), "[8]");
    assert_eq!(cluster.wait_completed(next, TASK_TIMEOUT)["result"], 64);
}

/// With `--timeout 0.5 --retries 1 --backoff 0.1`, a task that always runs too long is tried
/// twice and ends `failed` as `Timeout` with 2 failures.
#[test]
fn timeout_is_retried_like_a_failure() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let id = cluster.add_with(
        &example("sleep"),
        "[3600]",
        &["--timeout", "0.5", "--retries", "1", "--backoff", "0.1"],
    );
    let task = cluster.wait_finished(id, TASK_TIMEOUT);
    assert_timed_out(&task);
    assert_eq!(task["attempts"], 2, "{task}");
    assert_eq!(task["failures"], 2, "{task}");
}

fn assert_timed_out(task: &Value) {
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["error"]["type"], "Timeout", "{task}");
    let message = task["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("timeout"), "{task}");
}
