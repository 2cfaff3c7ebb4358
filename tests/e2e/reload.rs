//! Hot reload: when the source file of a task's module changes between two tasks, the worker
//! runs a later task in a fresh import, so it sees the change without a restart of the worker;
//! `workwurm --no-reload` keeps the module imported first.
//!
//! A slot looks at its modules' files at most every 0.5 s, just before it begins a task (see
//! the worker's documentation), so the tests add tasks until one sees the change (bounded)
//! rather than expecting the very next one to.

use crate::TASK_TIMEOUT;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tatzelwurm_e2e::{wait_for, wait_until, Cluster, WorkerSpec};

/// How long a changed file may take to be seen: the slot's 0.5 s between looks, with room.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(15);

/// Writes a module whose `version()` returns `version`; each version has another length, so
/// that a change shows in the file's size as well as its modification time.
fn write_module(path: &Path, version: u64) {
    let text = format!(
        "\"\"\"A module the reload test rewrites.\"\"\"\n\n\ndef version():\n    return {version}\n{}",
        "#".repeat(version as usize)
    );
    std::fs::write(path, text).unwrap();
}

/// The module's directory (the worker's `--path`) and file.
fn module(cluster: &Cluster) -> (PathBuf, PathBuf) {
    let dir = cluster.dir().join("code");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("reload_me.py");
    (dir, file)
}

/// Runs `FUNC` once and returns its result.
fn run_once(cluster: &Cluster, function: &str) -> Value {
    let id = cluster.add(function, "[]");
    cluster.wait_completed(id, TASK_TIMEOUT)["result"].clone()
}

/// Runs `FUNC` until it returns `expected` (bounded by `RELOAD_TIMEOUT`); returns how many runs
/// it took.
fn run_until(cluster: &Cluster, function: &str, expected: u64) -> usize {
    let mut runs = 0;
    wait_for(
        &format!("{function} to return {expected} after its file changed"),
        RELOAD_TIMEOUT,
        || {
            runs += 1;
            (run_once(cluster, function) == json!(expected)).then_some(runs)
        },
    )
}

/// A task named by file path and one named by module (`--path`) see a change of the module's
/// file made after the worker first imported it, on the same worker and slot, and so does a
/// second change.
#[test]
fn a_later_task_sees_the_changed_file() {
    let cluster = Cluster::start();
    let (dir, file) = module(&cluster);
    write_module(&file, 1);
    let _w = cluster.start_worker(WorkerSpec::new(1).path(&dir));
    let by_path = format!("{}:version", file.display());
    let by_name = "reload_me:version";
    assert_eq!(run_once(&cluster, &by_path), 1);
    assert_eq!(run_once(&cluster, by_name), 1);

    write_module(&file, 2);
    run_until(&cluster, &by_path, 2);
    // The look that saw the change dropped the module under every name it was imported by.
    assert_eq!(run_once(&cluster, by_name), 2, "by module name");

    write_module(&file, 3);
    run_until(&cluster, by_name, 3);
    assert_eq!(run_once(&cluster, &by_path), 3, "by path");
}

/// With `--no-reload` the worker keeps running the module as first imported, also well after
/// the slot would have looked at the file.
#[test]
fn no_reload_keeps_the_first_import() {
    let cluster = Cluster::start();
    let (dir, file) = module(&cluster);
    write_module(&file, 1);
    let _w = cluster.start_worker(WorkerSpec::new(1).path(&dir).no_reload());
    let by_path = format!("{}:version", file.display());
    let by_name = "reload_me:version";
    assert_eq!(run_once(&cluster, &by_path), 1);
    assert_eq!(run_once(&cluster, by_name), 1);
    write_module(&file, 2);
    // Past the 0.5 s between a reloading slot's looks, twice over: the clock is the event.
    let written = Instant::now();
    wait_until("a reloading slot's look to be due", RELOAD_TIMEOUT, || {
        written.elapsed() > Duration::from_millis(1200)
    });
    for _ in 0..3 {
        assert_eq!(
            run_once(&cluster, &by_path),
            1,
            "still the first import, by path"
        );
        assert_eq!(
            run_once(&cluster, by_name),
            1,
            "still the first import, by name"
        );
    }
}
