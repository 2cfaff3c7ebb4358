//! `async def` tasks: a slot runs up to `workwurm --async-concurrency N` of them at once on its
//! event loop, and a kill or a timeout ends exactly the one task, not the slot's others.

use crate::TASK_TIMEOUT;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tatzelwurm_e2e::{pid_alive, scheduling, wait_until, Cluster, WorkerSpec};

/// Adds `async_gate(marker, gate)` tasks, one per marker, and returns their ids.
fn add_gated(cluster: &Cluster, markers: &[PathBuf], gate: &Path, options: &[&str]) -> Vec<u64> {
    markers
        .iter()
        .map(|marker| {
            let args = json!([marker, gate, 120]).to_string();
            cluster.add_with(&scheduling("async_gate"), &args, options)
        })
        .collect()
}

/// `n` marker paths in the cluster's temp dir.
fn markers(cluster: &Cluster, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| cluster.dir().join(format!("marker-{i}")))
        .collect()
}

/// Runs one `async_gate` task with its gate already open and waits for it: a worker runs the
/// first task of a coroutine function it has not seen alone in a slot, and only once a slot
/// has named the function a coroutine does it run several at once.
fn warm_up(cluster: &Cluster) {
    let open = cluster.dir().join("open-gate");
    std::fs::write(&open, "open").unwrap();
    let marker = cluster.dir().join("warm-up-marker");
    let id = add_gated(cluster, &[marker], &open, &[])[0];
    cluster.wait_completed(id, TASK_TIMEOUT);
}

/// The pids the markers hold, once all of them exist.
fn marker_pids(markers: &[PathBuf]) -> Vec<i32> {
    markers
        .iter()
        .map(|m| std::fs::read_to_string(m).unwrap().trim().parse().unwrap())
        .collect()
}

/// On one slot with `--async-concurrency 10`, ten `async def` tasks waiting for a gate are all
/// started at once in the same process, and complete once it opens; ten `asyncio.sleep(1)`
/// tasks then finish together (the time is printed, not asserted).
#[test]
fn one_slot_runs_ten_coroutines_at_once() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1).async_concurrency(10));
    warm_up(&cluster);
    let markers = markers(&cluster, 10);
    let gate = cluster.dir().join("gate");
    let ids = add_gated(&cluster, &markers, &gate, &[]);
    wait_until(
        "ten coroutines started on the one slot",
        TASK_TIMEOUT,
        || markers.iter().all(|m| m.exists()),
    );
    let pids = marker_pids(&markers);
    assert!(
        pids.iter().all(|&p| p == pids[0]),
        "one slot process: {pids:?}"
    );
    std::fs::write(&gate, "open").unwrap();
    for id in ids {
        assert_eq!(cluster.wait_completed(id, TASK_TIMEOUT)["result"], pids[0]);
    }

    let warm = cluster.add(&scheduling("async_sleep"), "[0]");
    cluster.wait_completed(warm, TASK_TIMEOUT);
    let lines: Vec<String> = (0..10).map(|_| "[1]".to_string()).collect();
    let start = Instant::now();
    let sleeps = cluster.add_from_file(&scheduling("async_sleep"), &lines, true);
    for id in sleeps {
        cluster.wait_completed(id, TASK_TIMEOUT);
    }
    eprintln!(
        "ten asyncio.sleep(1) tasks on one slot with --async-concurrency 10: {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

/// With the default `--async-concurrency 1`, a slot runs one coroutine at a time: of two gated
/// `async def` tasks on one slot, only the first starts until the gate opens.
#[test]
fn by_default_a_slot_runs_one_coroutine_at_a_time() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1));
    warm_up(&cluster);
    let markers = markers(&cluster, 2);
    let gate = cluster.dir().join("gate");
    let ids = add_gated(&cluster, &markers, &gate, &[]);
    wait_until("the first coroutine started", TASK_TIMEOUT, || {
        markers[0].exists()
    });
    // The second cannot have started: the first holds the slot until the gate opens.
    assert!(
        !markers[1].exists(),
        "two coroutines ran at once on one slot"
    );
    std::fs::write(&gate, "open").unwrap();
    for id in ids {
        cluster.wait_completed(id, TASK_TIMEOUT);
    }
}

/// Killing one of three coroutines running in one slot ends that task `killed` and leaves the
/// slot process and the other two running; they complete when their gate opens.
#[test]
fn kill_ends_exactly_one_coroutine() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1).async_concurrency(10));
    warm_up(&cluster);
    let markers = markers(&cluster, 3);
    let gate = cluster.dir().join("gate");
    let ids = add_gated(&cluster, &markers, &gate, &[]);
    wait_until("three coroutines started", TASK_TIMEOUT, || {
        markers.iter().all(|m| m.exists())
    });
    let pid = marker_pids(&markers)[0];
    cluster.action(&["task", "kill", &ids[1].to_string()]).ok();
    let killed = cluster.wait_finished(ids[1], TASK_TIMEOUT);
    assert_eq!(killed["state"], "killed", "{killed}");
    for &id in [ids[0], ids[2]].iter() {
        assert_eq!(cluster.show(id)["state"], "running", "task {id} goes on");
    }
    assert!(pid_alive(pid), "the slot process {pid} survived the kill");
    std::fs::write(&gate, "open").unwrap();
    for id in [ids[0], ids[2]] {
        assert_eq!(cluster.wait_completed(id, TASK_TIMEOUT)["result"], pid);
    }
}

/// A coroutine past its `--timeout` fails alone; the one beside it in the same slot completes.
#[test]
fn a_timeout_ends_exactly_one_coroutine() {
    let cluster = Cluster::start();
    let _w = cluster.start_worker(WorkerSpec::new(1).async_concurrency(4));
    warm_up(&cluster);
    let markers = markers(&cluster, 2);
    let gate = cluster.dir().join("gate");
    let patient = add_gated(&cluster, &markers[..1], &gate, &[]);
    wait_until("the patient coroutine started", TASK_TIMEOUT, || {
        markers[0].exists()
    });
    let hasty = add_gated(&cluster, &markers[1..], &gate, &["--timeout", "1"]);
    let failed = cluster.wait_finished(hasty[0], TASK_TIMEOUT);
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout"),
        "{failed}"
    );
    assert_eq!(cluster.show(patient[0])["state"], "running");
    std::fs::write(&gate, "open").unwrap();
    cluster.wait_completed(patient[0], TASK_TIMEOUT);
}
