//! What the CLI's commands mean: `task add` prints ids one per line, `task wait -a` waits for
//! the tasks that are played and unfinished and fails if any of them fails, and `task list
//! --state` filters.

use crate::{number_lines, TASK_TIMEOUT};
use serde_json::Value;
use std::collections::BTreeSet;
use tatzelwurm_e2e::client::is_finished;
use tatzelwurm_e2e::{example, open_fds, wait_for, Cluster, WorkerSpec};

/// `task add` prints only the new ids, one per line, increasing, with `--args-file` one per line
/// of the file; tasks added without `--play` are `created`, with it `ready` or beyond.
#[test]
fn add_prints_one_id_per_line() {
    let cluster = Cluster::start();
    let square = example("square");
    let one = cluster
        .action(&["task", "add", &square, "--args", "[1]"])
        .ok();
    assert!(one.stdout.ends_with('\n'), "{one}");
    let first = one.ids();
    assert_eq!(first.len(), 1, "{one}");

    let file = cluster.write_args_file(&number_lines(0..7));
    let file = file.to_str().unwrap();
    let many = cluster
        .action(&["task", "add", &square, "--args-file", file, "--play"])
        .ok();
    let ids = many.ids();
    assert_eq!(ids.len(), 7, "{many}");
    assert!(first[0] < ids[0], "ids increase");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(many.stderr.trim().is_empty(), "{many}");

    assert_eq!(cluster.show(first[0])["state"], "created");
    for id in ids {
        let task = cluster.show(id);
        assert_eq!(task["state"], "ready", "{task}");
        assert_eq!(task["attempts"], 0, "{task}");
        assert!(
            task["worker"].is_null() && task["started_at"].is_null(),
            "{task}"
        );
    }
}

/// One `task add --args-file` of 20,000 lines is one request that gets 20,000 consecutive ids
/// back, `task play -a` and `task kill -a` each change all of them in one reply, and `task list`
/// returns every one of them (pages of 5,000 on the wire): large frames in both directions.
#[test]
fn a_large_args_file_is_added_played_and_listed_whole() {
    let cluster = Cluster::start();
    let ids = cluster.add_from_file(&example("square"), &number_lines(0..20_000), false);
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "the ids of one add are consecutive"
    );
    let created = ids_in(&cluster, &["created"]);
    assert_eq!(created, set(&ids));
    // No worker: played tasks stay ready until they are killed.
    cluster.action(&["task", "play", "-a"]).ok();
    assert_eq!(ids_in(&cluster, &["ready"]), set(&ids));
    cluster.action(&["task", "kill", "-a"]).ok();
    assert_eq!(ids_in(&cluster, &["killed"]), set(&ids));
}

/// `task wait -a` waits for played tasks only (not `created` ones), exits 0 when all of them
/// completed and non-zero when one failed; `task list --state` returns exactly the tasks in the
/// given states.
#[test]
fn wait_all_and_list_filters() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let played = cluster.add_from_file(&example("square"), &number_lines(1..4), true);
    let created = cluster.add_from_file(&example("square"), &number_lines(4..6), false);

    cluster.action(&wait_all()).ok();
    assert_eq!(ids_in(&cluster, &["completed"]), set(&played));
    assert_eq!(ids_in(&cluster, &["created"]), set(&created));

    let failing = fail_while_waited_for(&cluster);
    assert_eq!(ids_in(&cluster, &["failed"]), set(&[failing]));
    let mut failed_or_created = set(&created);
    failed_or_created.insert(failing);
    assert_eq!(ids_in(&cluster, &["failed", "created"]), failed_or_created);
    assert!(ids_in(&cluster, &["running", "killed"]).is_empty());
    cluster
        .action(&["task", "wait", &failing.to_string()])
        .failed();

    let created_args: Vec<String> = created.iter().map(u64::to_string).collect();
    let mut play = vec!["task", "play"];
    play.extend(created_args.iter().map(String::as_str));
    cluster.action(&play).ok();
    let mut wait = vec!["task", "wait"];
    wait.extend(created_args.iter().map(String::as_str));
    wait.extend(["--timeout", "30"]);
    cluster.action(&wait).ok();
    assert_eq!(
        cluster.list(&["completed"]).len(),
        played.len() + created.len() + 1
    );

    let table = cluster.action(&["task", "list"]).ok();
    assert!(table.stdout.contains("completed") && table.stdout.contains("failed"));
}

/// Plays a failing task behind a 2-second one that holds the worker's only slot, so that the
/// failing one is still unfinished when `task wait -a` starts right after; that wait must fail.
/// Returns the failing task's id.
fn fail_while_waited_for(cluster: &Cluster) -> u64 {
    let holder = cluster.add(&example("sleep"), "[2]");
    cluster.wait_state(holder, "running", TASK_TIMEOUT);
    let failing = cluster.add(&example("fail"), r#"["on purpose"]"#);
    let waited = cluster.action(&wait_all()).failed();
    assert_eq!(cluster.show(holder)["state"], "completed", "{waited}");
    failing
}

/// `task wait -a` also waits for tasks that are played but not yet running: with the only worker
/// frozen it runs out of time, and once the worker goes on it succeeds.
#[test]
fn wait_all_includes_ready_tasks() {
    let cluster = Cluster::start();
    let mut worker = cluster.start_worker(WorkerSpec::new(1));
    worker.proc.pause();
    let id = cluster.add(&example("square"), "[3]");
    cluster
        .action(&["task", "wait", "-a", "--timeout", "1"])
        .failed();
    assert!(
        !is_finished(&cluster.show(id)),
        "task {id} ran on a frozen worker"
    );
    worker.proc.resume();
    cluster.action(&wait_all()).ok();
    assert_eq!(cluster.show(id)["result"], 9);
}

/// A `task wait --timeout` that gives up on a task that never finishes leaves nothing behind in
/// the coordinator: its connection is closed (within the coordinator's grace for answers under
/// way), so abandoned waits cannot use up descriptors or the coordinator's connection permits.
#[test]
fn abandoned_waits_release_their_connections() {
    let mut cluster = Cluster::start();
    let pid = cluster.coordinator().proc.pid();
    // No worker: the task stays `ready` for as long as the test runs.
    let id = cluster.add(&example("square"), "[2]");
    let fds_before = open_fds(pid);
    for _ in 0..ABANDONED_WAITS {
        cluster
            .action(&["task", "wait", &id.to_string(), "--timeout", "0.1"])
            .failed();
    }
    wait_for(
        "the coordinator to close the connections of abandoned waits",
        TASK_TIMEOUT,
        || (open_fds(pid) < fds_before + 3).then_some(()),
    );
    // The coordinator still answers waits that are not abandoned.
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    cluster.action(&wait_all()).ok();
    assert_eq!(cluster.show(id)["result"], 4);
}

/// How many `task wait`s give up in `abandoned_waits_release_their_connections`.
const ABANDONED_WAITS: usize = 20;

/// `task wait -a` with nothing played returns at once and succeeds.
#[test]
fn wait_all_with_nothing_played_returns_at_once() {
    let cluster = Cluster::start();
    cluster.add_created(&example("square"), "[1]");
    let action = cluster.action(&wait_all()).ok();
    assert!(action.elapsed < TASK_TIMEOUT, "{action}");
}

fn wait_all() -> [&'static str; 5] {
    ["task", "wait", "-a", "--timeout", "30"]
}

fn ids_in(cluster: &Cluster, states: &[&str]) -> BTreeSet<u64> {
    cluster.list(states).iter().map(id_of).collect()
}

fn id_of(task: &Value) -> u64 {
    task["id"].as_u64().expect("a task id")
}

fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}
