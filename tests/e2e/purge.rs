//! `task purge`: finished tasks removed with their results and output, by id or by age; a
//! purged id answered as purged (not unknown) by `task show` and `task wait`; the queue counts
//! and the event log; and a purge under load that loses no live task, across a `kill -9`.

use crate::TASK_TIMEOUT;
use serde_json::Value;
use std::time::Duration;
use tatzelwurm_e2e::control::queue_count;
use tatzelwurm_e2e::{example, wait_for, Action, Cluster, Stop, WorkerSpec};

/// How many tasks a purge's stdout says it removed: "purged 3 tasks", "purged 1 task that...".
fn purged(action: &Action) -> u64 {
    let words: Vec<&str> = action.stdout.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"purged"), "{action}");
    words[1]
        .parse()
        .unwrap_or_else(|_| panic!("no count: {action}"))
}

/// By id: a finished task goes, a live one is left and named (exit 1), one purged before is
/// named (exit 0), an id never handed out fails. A purged id's show and wait say it was purged.
/// By age: every finished task goes. The queue no longer counts them, and each purge is an
/// event.
#[test]
fn purge_by_id_and_by_age() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let done: Vec<u64> = (0..3)
        .map(|i| cluster.add(&example("square"), &format!("[{i}]")))
        .collect();
    for id in &done {
        cluster.wait_completed(*id, TASK_TIMEOUT);
    }
    let live = cluster.add_created(&example("square"), "[9]");
    let (first, live_arg) = (done[0].to_string(), live.to_string());

    let action = cluster
        .action(&["task", "purge", &first, &live_arg])
        .failed();
    assert_eq!(purged(&action), 1, "{action}");
    assert!(
        action.stderr.contains(&format!("task {live} is created")),
        "{action}"
    );
    for argv in [
        vec!["task", "show", first.as_str()],
        vec!["task", "wait", first.as_str()],
    ] {
        let action = cluster.action(&argv).failed();
        let sentence = action.one_sentence();
        assert!(
            sentence.contains(&format!("task {first} was purged")),
            "{action}"
        );
    }
    let again = cluster.action(&["task", "purge", &first]).ok();
    assert_eq!(purged(&again), 0);
    assert!(again.stderr.contains("was purged before"), "{again}");
    let unknown = cluster.action(&["task", "purge", "999"]).failed();
    assert!(
        unknown.one_sentence().contains("there is no task 999"),
        "{unknown}"
    );

    let by_age = cluster
        .action(&["task", "purge", "--finished-before", "0s"])
        .ok();
    assert_eq!(purged(&by_age), 2, "{by_age}");
    assert!(by_age.stdout.contains("that finished before"), "{by_age}");
    for id in &done[1..] {
        let action = cluster.action(&["task", "show", &id.to_string()]).failed();
        assert!(action.one_sentence().contains("was purged"), "{action}");
    }
    assert_eq!(cluster.show(live)["state"], "created");
    let queue = cluster.queue("default");
    assert_eq!(queue_count(&queue, "completed"), 0, "{queue}");
    assert_eq!(queue_count(&queue, "created"), 1, "{queue}");
    let events = cluster.action(&["events", "--json"]).ok();
    let counts: Vec<u64> = events
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|e| e["kind"] == "purged")
        .map(|e| e["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 2], "one event per purge that removed something");
}

/// Tasks in chunks while `task purge --finished-before 0s` runs between them, with the
/// coordinator killed (`kill -9`) and started again halfway: every task completes once and is
/// purged once, so the purges add up to exactly the tasks added; none was lost live.
#[test]
fn a_purge_under_load_loses_no_live_task() {
    const CHUNKS: usize = 6;
    const PER_CHUNK: usize = 300;
    let mut cluster = Cluster::start();
    let _w1 = cluster.start_worker(WorkerSpec::new(2));
    let _w2 = cluster.start_worker(WorkerSpec::new(2));
    let mut total = 0;
    let purge = |cluster: &Cluster| {
        purged(
            &cluster
                .action(&["task", "purge", "--finished-before", "0s"])
                .ok(),
        )
    };
    for chunk in 0..CHUNKS {
        let lines: Vec<String> = (0..PER_CHUNK)
            .map(|i| format!("[{}]", chunk * PER_CHUNK + i))
            .collect();
        cluster.add_from_file(&example("square"), &lines, true);
        total += purge(&cluster);
        if chunk == CHUNKS / 2 {
            cluster.stop_coordinator(Stop::Kill);
            cluster.start_coordinator_again();
        }
    }
    let added = (CHUNKS * PER_CHUNK) as u64;
    wait_for(
        "every task to complete and be purged",
        Duration::from_secs(120),
        || {
            total += purge(&cluster);
            assert!(
                total <= added,
                "purged {total} of {added} tasks: some twice"
            );
            (total == added).then_some(())
        },
    );
    let left = cluster.list(&[]);
    assert!(left.is_empty(), "no task is left: {left:?}");
    let queue = cluster.queue("default");
    for state in ["completed", "failed", "killed", "ready", "running"] {
        assert_eq!(queue_count(&queue, state), 0, "{state}: {queue}");
    }
}
