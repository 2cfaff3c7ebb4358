//! Priorities: of the ready tasks, a free slot takes the one of the highest priority, and
//! within one priority the one added first; `task show` tells a task's priority; a priority out
//! of -100..=100 is refused.

use crate::TASK_TIMEOUT;
use serde_json::json;
use tatzelwurm_e2e::{fixture, scheduling, Cluster, WorkerSpec};

/// The order in which tasks `(queue, priority)` ran on one worker of one slot serving
/// `queues`: a blocker holds the slot while they are added and played in one command (so all
/// are ready before the slot frees and only the order rule decides), then lets it go. Each
/// task's label is `INDEX:PRIORITY`; `task show` must tell its queue and priority.
fn run_order(queues: &[&str], tasks: &[(&str, i32)]) -> Vec<String> {
    let cluster = Cluster::start();
    let mut spec = WorkerSpec::new(1);
    for queue in queues {
        spec = spec.queue(queue);
    }
    let _w = cluster.start_worker(spec);
    let gate = cluster.dir().join("gate");
    let blocker = cluster.add_with(
        &fixture("wait_for_file"),
        &json!([gate, 120]).to_string(),
        &["--queue", queues[0]],
    );
    cluster.wait_state(blocker, "running", TASK_TIMEOUT);

    let order_file = cluster.dir().join("order");
    let mut ids = Vec::new();
    for (n, (queue, priority)) in tasks.iter().enumerate() {
        let args = json!([order_file, format!("{n}:{priority}")]).to_string();
        let priority = priority.to_string();
        let added = cluster
            .action(&[
                "task",
                "add",
                &scheduling("append_label"),
                "--args",
                &args,
                "--queue",
                queue,
                "--priority",
                &priority,
            ])
            .ok();
        ids.push(added.ids()[0]);
    }
    let mut play = vec!["task".to_string(), "play".to_string()];
    play.extend(ids.iter().map(u64::to_string));
    let play: Vec<&str> = play.iter().map(String::as_str).collect();
    cluster.action(&play).ok();
    for (&id, &(queue, priority)) in ids.iter().zip(tasks) {
        let task = cluster.show(id);
        // `running` is the one handed to the worker's queue behind the blocker (prefetch).
        assert!(
            task["state"] == "ready" || task["state"] == "running",
            "played: {task}"
        );
        assert_eq!(
            task["priority"], priority,
            "task show tells the priority: {task}"
        );
        assert_eq!(task["queue"], queue, "{task}");
    }

    std::fs::write(&gate, "open").unwrap();
    for &id in &ids {
        cluster.wait_completed(id, TASK_TIMEOUT);
    }
    std::fs::read_to_string(&order_file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// With the only slot held by a blocker, tasks of priorities 0, 5, -3, 5, 0, 100, -100 and 0
/// made ready together run, once the blocker ends, highest priority first and first in first
/// out within a priority.
#[test]
fn higher_priority_runs_first_and_fifo_within_one() {
    let q = "default";
    let priorities = [0, 5, -3, 5, 0, 100, -100, 0];
    let tasks: Vec<(&str, i32)> = priorities.iter().map(|&p| (q, p)).collect();
    assert_eq!(
        run_order(&[q], &tasks),
        ["5:100", "1:5", "3:5", "0:0", "4:0", "7:0", "2:-3", "6:-100"],
        "run order (index:priority)"
    );
}

/// A worker serving two queues takes the best head among them: higher priority first, then the
/// task added first, whichever queue it is in.
#[test]
fn a_worker_of_two_queues_takes_the_best_head_of_both() {
    let tasks = [("a", 0), ("b", 5), ("a", 5), ("b", 0), ("b", -1), ("a", 9)];
    assert_eq!(
        run_order(&["a", "b"], &tasks),
        ["5:9", "1:5", "2:5", "0:0", "3:0", "4:-1"],
        "run order (index:priority)"
    );
}

/// A priority outside -100..=100, or not a number, is refused with one sentence and adds
/// nothing; the bounds themselves are accepted.
#[test]
fn a_priority_out_of_range_is_refused() {
    let cluster = Cluster::start();
    let function = scheduling("append_label");
    let args = json!([cluster.dir().join("never"), "x"]).to_string();
    for bad in ["101", "-101", "1000", "high"] {
        let refused = cluster
            .action(&["task", "add", &function, "--args", &args, "--priority", bad])
            .failed();
        refused.one_sentence();
        assert!(refused.stderr.contains(bad), "{refused}");
    }
    assert!(cluster.list(&[]).is_empty(), "nothing was added");
    for good in ["100", "-100"] {
        let added = cluster
            .action(&[
                "task",
                "add",
                &function,
                "--args",
                &args,
                "--priority",
                good,
            ])
            .ok();
        let task = cluster.show(added.ids()[0]);
        assert_eq!(task["priority"].to_string(), good, "{task}");
    }
}
