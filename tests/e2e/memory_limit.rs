//! `workwurm --max-memory MB`: a slot that passes the limit while a task runs is killed and the
//! task fails `MemoryLimit` (retried as any failure); a slot left past it by a task keeps that
//! task's result and is replaced by a fresh process; `worker list` shows the limit and both
//! counts.

use crate::TASK_TIMEOUT;
use serde_json::Value;
use std::path::Path;
use tatzelwurm_e2e::{wait_for, Cluster, WorkerSpec};

/// The tasks of these tests, written next to the cluster and named by file.
const TASKS: &str = r#"
import os
import time

_kept = []


def grow(megabytes, seconds):
    """Holds `megabytes` MB while it runs for `seconds`."""
    held = bytearray(megabytes * 1024 * 1024)
    time.sleep(seconds)
    return len(held)


def keep(megabytes):
    """Leaves its slot holding `megabytes` MB more; returns the slot's pid."""
    _kept.append(bytearray(megabytes * 1024 * 1024))
    return os.getpid()


def pid():
    return os.getpid()
"#;

/// Writes the task file into the cluster's directory; returns `FILE:function` for `name`.
fn tasks(cluster: &Cluster) -> impl Fn(&str) -> String {
    let file = cluster.dir().join("memory_tasks.py");
    std::fs::write(&file, TASKS).unwrap();
    move |name| format!("{}:{name}", file.display())
}

/// A limited worker named `w1` with one slot.
fn limited_worker(cluster: &Cluster, megabytes: &str) -> tatzelwurm_e2e::Worker {
    cluster.start_worker(
        WorkerSpec::new(1)
            .name("w1")
            .args(&["--max-memory", megabytes]),
    )
}

/// `w1`'s usage as `worker list --json` shows it, once it has one with `ready` true.
fn usage_where(cluster: &Cluster, ready: impl Fn(&Value) -> bool) -> Value {
    wait_for("w1's usage in worker list", TASK_TIMEOUT, || {
        let worker = cluster.workers().into_iter().find(|w| w["name"] == "w1")?;
        let usage = worker["usage"].clone();
        (!usage.is_null() && ready(&usage)).then_some(usage)
    })
}

/// A task that allocates past the limit and keeps running is killed within a second or so, not
/// after its 60 s: it fails `MemoryLimit` with a sentence naming the limit and the memory seen,
/// is retried as any failure is (and fails again), and a fresh slot runs the next task.
/// `worker list` counts both kills.
#[test]
fn a_task_past_the_limit_fails_with_memory_limit_and_is_retried() {
    let cluster = Cluster::start();
    let named = tasks(&cluster);
    let _worker = limited_worker(&cluster, "100");
    let started = std::time::Instant::now();
    let id = cluster.add_with(&named("grow"), "[200, 60]", &["--retries", "1"]);
    let task = cluster.wait_finished(id, TASK_TIMEOUT);
    assert!(started.elapsed() < TASK_TIMEOUT, "{task}");
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["attempts"], 2, "retried once: {task}");
    let error = &task["error"];
    assert_eq!(error["type"], "MemoryLimit", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("--max-memory 100 MB"), "{message}");
    assert!(message.contains(" MB of resident memory"), "{message}");

    let next = cluster.add(&named("pid"), "[]");
    cluster.wait_completed(next, TASK_TIMEOUT);
    let usage = usage_where(&cluster, |u| u["memory_killed"] == 2);
    assert_eq!(usage["max_memory"], 100 * 1024 * 1024, "{usage}");
    assert_eq!(usage["memory_replaced"], 0, "{usage}");
}

/// A task that leaves its slot past the limit completes with its result; the slot is replaced,
/// so the next task runs in another process; `worker list` shows the replacement, and the slot
/// with its pid and memory.
#[test]
fn a_slot_left_big_keeps_the_result_and_is_replaced() {
    let cluster = Cluster::start();
    let named = tasks(&cluster);
    let _worker = limited_worker(&cluster, "100");
    // About 10 MB of interpreter and 100 MB more: past the limit only in the last moments of
    // the allocation, as the task returns (a task past it for longer is killed, as above).
    let big = cluster.add(&named("keep"), "[100]");
    let done = cluster.wait_completed(big, TASK_TIMEOUT);
    assert_eq!(done["attempts"], 1, "{done}");
    let big_pid = done["result"].as_i64().expect("a pid");
    let next = cluster.add(&named("pid"), "[]");
    let fresh_pid = cluster.wait_completed(next, TASK_TIMEOUT)["result"]
        .as_i64()
        .expect("a pid");
    assert_ne!(fresh_pid, big_pid, "the slot left big was replaced");
    assert!(!Path::new(&format!("/proc/{big_pid}")).exists() || gone(big_pid));

    let usage = usage_where(&cluster, |u| {
        u["memory_replaced"] == 1 && u["slots"][0]["pid"] == fresh_pid
    });
    assert_eq!(usage["memory_killed"], 0, "{usage}");
    assert!(
        usage["slots"][0]["rss"].as_u64().unwrap() > 1024 * 1024,
        "{usage}"
    );
}

/// Whether process `pid` is gone or a zombie about to be reaped.
fn gone(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next();
            matches!(state, Some('Z' | 'X'))
        })
        .unwrap_or(true)
}
