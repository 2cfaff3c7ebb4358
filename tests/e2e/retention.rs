//! `tatzelwurm --keep-finished DURATION`: finished tasks older than that are purged on their
//! own, live ones are kept.

use crate::TASK_TIMEOUT;
use serde_json::Value;
use std::time::Duration;
use tatzelwurm_e2e::{example, wait_for, Cluster, WorkerSpec};

/// With `--keep-finished 2s`, completed tasks are seen completed and purged a few seconds
/// later (their show says so, and the event log has the purge); a task that was
/// never played stays.
#[test]
fn keep_finished_purges_on_its_own() {
    let cluster = Cluster::start_with_args(&["--keep-finished", "2s"]);
    let _worker = cluster.start_worker(WorkerSpec::new(2));
    let live = cluster.add_created(&example("square"), "[1]");
    let done: Vec<u64> = (0..3)
        .map(|i| cluster.add(&example("square"), &format!("[{i}]")))
        .collect();
    // Each is seen completed first: not purged as it finishes.
    for id in &done {
        cluster.wait_completed(*id, TASK_TIMEOUT);
    }
    wait_for(
        "the finished tasks to be purged",
        Duration::from_secs(30),
        || {
            done.iter()
                .all(|id| {
                    let show = cluster.action(&["task", "show", &id.to_string()]);
                    !show.success() && show.stderr.contains("was purged")
                })
                .then_some(())
        },
    );
    assert_eq!(cluster.show(live)["state"], "created");
    let events = cluster.action(&["events", "--json"]).ok();
    let purged: u64 = events
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|e| e["kind"] == "purged")
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(purged, 3, "{}", events.stdout);
}
