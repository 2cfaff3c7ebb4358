//! What tests ask the coordinator most often, through the real CLI: add tasks, show and list
//! them, list workers, and wait until a task reaches a state.
//!
//! These are thin: each is one `actionwurm` command and a parse of its `--json` output, so a test
//! reads like the commands a user types, and a broken command fails with its stderr shown.

use crate::actionwurm::{self, Action, DEFAULT_TIMEOUT};
use crate::cluster::Cluster;
use crate::wait::{poll, wait_for};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// How long a worker may take to connect and show up in `worker list`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Cluster {
    /// Runs `actionwurm --coordinator ADDR ARGS...` (bounded by the default timeout).
    pub fn action(&self, args: &[&str]) -> Action {
        self.action_within(args, DEFAULT_TIMEOUT)
    }

    /// Runs `actionwurm --coordinator ADDR ARGS...`, killing it after `timeout`.
    pub fn action_within(&self, args: &[&str], timeout: Duration) -> Action {
        let log = self.log_dir().join("actionwurm.log");
        actionwurm::run(
            &self.bins().actionwurm,
            Some(self.addr()),
            args,
            &self.token_env(),
            timeout,
            Some(&log),
        )
    }

    /// Runs a command that must succeed and returns its stdout as JSON.
    pub fn action_json(&self, args: &[&str]) -> Value {
        self.action(args).ok().json()
    }

    /// Adds one task with `--play` and returns its id; `args` is a JSON array.
    pub fn add(&self, function: &str, args: &str) -> u64 {
        self.add_one(&["task", "add", function, "--args", args, "--play"])
    }

    /// Adds one task without playing it (it stays `created`) and returns its id.
    pub fn add_created(&self, function: &str, args: &str) -> u64 {
        self.add_one(&["task", "add", function, "--args", args])
    }

    /// Adds one task with `--play` and the policy flags `options` (such as `["--retries", "2"]`),
    /// and returns its id.
    pub fn add_with(&self, function: &str, args: &str, options: &[&str]) -> u64 {
        let mut argv = vec!["task", "add", function, "--args", args, "--play"];
        argv.extend_from_slice(options);
        self.add_one(&argv)
    }

    fn add_one(&self, argv: &[&str]) -> u64 {
        let ids = self.action(argv).ok().ids();
        assert_eq!(ids.len(), 1, "one task added should print one id: {ids:?}");
        ids[0]
    }

    /// Writes `lines` (one JSON array each) to an args file in the temp dir and adds one task per
    /// line with `task add FUNC --args-file FILE [--play]`; returns the ids.
    pub fn add_from_file(&self, function: &str, lines: &[String], play: bool) -> Vec<u64> {
        let file = self.write_args_file(lines);
        let file = file.to_str().expect("temp paths are UTF-8");
        let mut argv = vec!["task", "add", function, "--args-file", file];
        if play {
            argv.push("--play");
        }
        let ids = self.action(&argv).ok().ids();
        assert_eq!(ids.len(), lines.len(), "one id per line of the args file");
        ids
    }

    /// Writes an args file with a fresh name in the temp dir.
    pub fn write_args_file(&self, lines: &[String]) -> PathBuf {
        let file = tempfile::Builder::new()
            .prefix("args-")
            .suffix(".jsonl")
            .tempfile_in(self.dir())
            .expect("create an args file");
        let (_, path) = file.keep().expect("keep the args file");
        std::fs::write(&path, lines.join("\n") + "\n").expect("write the args file");
        path
    }

    /// `task show ID --json`.
    pub fn show(&self, id: u64) -> Value {
        self.action_json(&["task", "show", &id.to_string(), "--json"])
    }

    /// `task list [--state S]... --limit 0 --json` as a vector of every such task.
    pub fn list(&self, states: &[&str]) -> Vec<Value> {
        let mut argv = vec!["task", "list", "--limit", "0"];
        for state in states {
            argv.extend(["--state", state]);
        }
        argv.push("--json");
        as_array(self.action_json(&argv))
    }

    /// `worker list --json` as a vector of workers.
    pub fn workers(&self) -> Vec<Value> {
        as_array(self.action_json(&["worker", "list", "--json"]))
    }

    /// Waits until the coordinator lists a worker named `name`.
    pub fn wait_worker_connected(&self, name: &str) -> Value {
        wait_for(
            &format!("worker {name} to show up in `worker list`"),
            CONNECT_TIMEOUT,
            || self.workers().into_iter().find(|w| w["name"] == name),
        )
    }

    /// Waits until `worker list` has exactly `count` workers.
    pub fn wait_worker_count(&self, count: usize, timeout: Duration) -> Vec<Value> {
        wait_for(
            &format!("`worker list` to show {count} worker(s)"),
            timeout,
            || Some(self.workers()).filter(|w| w.len() == count),
        )
    }

    /// Waits until task `id` is in `state` and returns the task (with output); panics naming the
    /// state it was last seen in.
    pub fn wait_state(&self, id: u64, state: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        let found = poll(timeout, || {
            last = self.show(id);
            (last["state"] == state).then(|| last.clone())
        });
        found.unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for task {id} to be {state}; last seen {} \
                 (error: {}, worker: {})",
                last["state"], last["error"], last["worker"]
            )
        })
    }

    /// Waits until task `id` is finished (completed, failed or killed) and returns it.
    pub fn wait_finished(&self, id: u64, timeout: Duration) -> Value {
        wait_for(&format!("task {id} to finish"), timeout, || {
            let task = self.show(id);
            is_finished(&task).then_some(task)
        })
    }

    /// Waits until task `id` is finished and asserts it completed, showing its error if not.
    pub fn wait_completed(&self, id: u64, timeout: Duration) -> Value {
        let task = self.wait_finished(id, timeout);
        assert_eq!(
            task["state"], "completed",
            "task {id} did not complete: error {}, worker {}",
            task["error"], task["worker"]
        );
        task
    }
}

/// Whether a task (as JSON) is in a state it never leaves.
pub fn is_finished(task: &Value) -> bool {
    matches!(
        task["state"].as_str(),
        Some("completed" | "failed" | "killed")
    )
}

/// A JSON array's elements; panics on anything else.
fn as_array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}
