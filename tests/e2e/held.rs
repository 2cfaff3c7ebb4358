//! Held dependents end to end: the links of a chain go to the worker that runs the link before
//! them ahead of its completion, and still each link starts only after the one before it
//! completed; a link that fails for good fails the rest without running them; a link that is
//! retried holds the rest back until it completed.

use crate::TASK_TIMEOUT;
use serde_json::json;
use tatzelwurm_e2e::{example, fixture, scheduling, Cluster, WorkerSpec};

/// Adds `function(args)` created (not played) after `after`, if any, and returns its id.
fn add_link(
    cluster: &Cluster,
    function: &str,
    args: &str,
    after: Option<u64>,
    extra: &[&str],
) -> u64 {
    let after = after.map(|id| id.to_string());
    let mut argv = vec!["task", "add", function, "--args", args];
    if let Some(after) = &after {
        argv.extend(["--after", after.as_str()]);
    }
    argv.extend_from_slice(extra);
    let ids = cluster.action(&argv).ok().ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0]
}

/// `count` links of `append_label(path, "i")`, each after the one before (the first after
/// `first`, if given); returns their ids.
fn labels(cluster: &Cluster, path: &std::path::Path, count: usize, first: Option<u64>) -> Vec<u64> {
    let mut ids: Vec<u64> = Vec::new();
    for i in 0..count {
        let after = ids.last().copied().or(first);
        let args = json!([path, i.to_string()]).to_string();
        ids.push(add_link(
            cluster,
            &scheduling("append_label"),
            &args,
            after,
            &[],
        ));
    }
    ids
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A chain of 100 links played at once over two workers runs in order, each link once, each
/// started after the one before it finished.
#[test]
fn a_chain_runs_in_order() {
    let cluster = Cluster::start();
    let _a = cluster.start_worker(WorkerSpec::new(1).name("a"));
    let _b = cluster.start_worker(WorkerSpec::new(1).name("b"));
    let path = cluster.dir().join("order");
    let ids = labels(&cluster, &path, 100, None);
    cluster.action(&["task", "play", "-a"]).ok();
    let mut previous: Option<serde_json::Value> = None;
    for id in &ids {
        let task = cluster.wait_completed(*id, TASK_TIMEOUT);
        if let Some(before) = &previous {
            assert!(
                task["started_at"].as_f64() >= before["finished_at"].as_f64(),
                "started after the link before it finished: {before} {task}"
            );
        }
        previous = Some(task);
    }
    let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(lines(&path), expected, "every link once, in order");
}

/// A link that fails for good fails every link after it with `DependencyFailed` naming the
/// link before it; none of them ran (no attempts, nothing written).
#[test]
fn a_failed_link_fails_the_rest_without_running_them() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1));
    let path = cluster.dir().join("order");
    let head = add_link(&cluster, &example("square"), "[2]", None, &[]);
    let failing = add_link(
        &cluster,
        &example("fail"),
        r#"["on purpose"]"#,
        Some(head),
        &[],
    );
    let rest = labels(&cluster, &path, 20, Some(failing));
    cluster.action(&["task", "play", "-a"]).ok();
    cluster.wait_completed(head, TASK_TIMEOUT);
    assert_eq!(
        cluster.wait_finished(failing, TASK_TIMEOUT)["state"],
        "failed"
    );
    let mut cause = failing;
    for id in rest {
        let task = cluster.wait_finished(id, TASK_TIMEOUT);
        assert_eq!(task["state"], "failed", "{task}");
        assert_eq!(task["error"]["type"], "DependencyFailed", "{task}");
        let message = task["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("task {cause}")), "{task}");
        assert_eq!(task["attempts"], 0, "it never ran: {task}");
        cause = id;
    }
    assert!(lines(&path).is_empty(), "no link after the failure ran");
}

/// A link that fails once and is retried holds the links after it back: they run after its
/// second attempt completed, in order, each once.
#[test]
fn a_retried_link_holds_the_rest_until_it_completed() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1));
    let path = cluster.dir().join("order");
    let starts = cluster.dir().join("starts");
    let head = add_link(
        &cluster,
        &fixture("fail_first"),
        &json!([starts, 1]).to_string(),
        None,
        &["--retries", "1", "--backoff", "0.2"],
    );
    let rest = labels(&cluster, &path, 20, Some(head));
    cluster.action(&["task", "play", "-a"]).ok();
    let first = cluster.wait_completed(head, TASK_TIMEOUT);
    assert_eq!(first["result"], 2, "{first}");
    let mut previous = first;
    for id in &rest {
        let task = cluster.wait_completed(*id, TASK_TIMEOUT);
        assert!(
            task["started_at"].as_f64() >= previous["finished_at"].as_f64(),
            "{previous} {task}"
        );
        previous = task;
    }
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(lines(&path), expected, "every link once, in order");
}
