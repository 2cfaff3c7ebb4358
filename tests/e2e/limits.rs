//! Concurrency limits: `queue limit NAME N` lets at most N tasks of a queue run at once across
//! all workers, `queue list` shows the limit, it survives a coordinator restart, and `queue
//! limit NAME 0` removes it.

use crate::TASK_TIMEOUT;
use serde_json::json;
use tatzelwurm_e2e::control::queue_count;
use tatzelwurm_e2e::{fixture, scheduling, wait_until, Cluster, Stop, WorkerSpec};

/// The spans "LABEL START END" that `scheduling.span` wrote, as (start, end).
fn spans(path: &std::path::Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[1].parse().unwrap(), fields[2].parse().unwrap())
        })
        .collect()
}

/// The most spans that were open at one moment.
fn most_at_once(spans: &[(f64, f64)]) -> usize {
    let mut edges: Vec<(f64, i32)> = spans
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    // An end sorts before a start at the same moment: touching spans do not overlap.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        open += step;
        most = most.max(open);
    }
    most as usize
}

/// With `queue limit q 1`, eight tasks of `q` on 2 workers × 2 slots run one at a time (their
/// own start and end times never overlap), while a task of another queue runs beside them;
/// the limit shows in `queue list` and survives a `kill -9` of the coordinator.
#[test]
fn a_limit_of_one_runs_one_at_a_time_across_workers() {
    let mut cluster = Cluster::start();
    let spec = |name: &str| WorkerSpec::new(2).name(name).queue("q").queue("free");
    let _w1 = cluster.start_worker(spec("w1"));
    let _w2 = cluster.start_worker(spec("w2"));
    // The queue is known once a task names it; the limit is set before any task can run.
    let gate = cluster.dir().join("gate");
    let opener = cluster.add_with(
        &fixture("wait_for_file"),
        &json!([gate, 120]).to_string(),
        &["--queue", "q"],
    );
    cluster.action(&["queue", "limit", "q", "1"]).ok();
    assert_eq!(cluster.queue("q")["limit"], 1);
    cluster.restart_coordinator(Stop::Kill);
    assert_eq!(cluster.queue("q")["limit"], 1, "the limit is durable");
    std::fs::write(&gate, "open").unwrap();
    cluster.wait_completed(opener, TASK_TIMEOUT);

    let log = cluster.dir().join("spans");
    let ids: Vec<u64> = (0..8)
        .map(|n| {
            let args = json!([log, format!("t{n}"), 0.3]).to_string();
            cluster.add_with(&scheduling("span"), &args, &["--queue", "q"])
        })
        .collect();
    // Another queue is not limited: it runs on a free slot while q's tasks wait.
    let other_log = cluster.dir().join("other-spans");
    let other = cluster.add_with(
        &scheduling("span"),
        &json!([other_log, "free", 0.3]).to_string(),
        &["--queue", "free"],
    );
    let mut peak_running = 0;
    wait_until("the limited tasks to finish", TASK_TIMEOUT * 2, || {
        let q = cluster.queue("q");
        peak_running = peak_running.max(queue_count(&q, "running"));
        queue_count(&q, "completed") == 9
    });
    for &id in &ids {
        cluster.wait_completed(id, TASK_TIMEOUT);
    }
    cluster.wait_completed(other, TASK_TIMEOUT);
    let spans = spans(&log);
    assert_eq!(spans.len(), 8);
    assert_eq!(most_at_once(&spans), 1, "spans overlapped: {spans:?}");
    assert!(
        peak_running <= 1,
        "queue list showed {peak_running} running"
    );
}

/// `queue limit q 2` lets two tasks of `q` run at once and not three; `queue limit q 0` removes
/// the limit, and then four run at once on 2 workers × 2 slots.
#[test]
fn a_limit_can_be_raised_and_removed() {
    let cluster = Cluster::start();
    let spec = |name: &str| WorkerSpec::new(2).name(name).queue("q");
    let _w1 = cluster.start_worker(spec("w1"));
    let _w2 = cluster.start_worker(spec("w2"));
    let first_gate = cluster.dir().join("first-gate");
    let add_gated = |gate: &std::path::Path| {
        cluster.add_with(
            &fixture("wait_for_file"),
            &json!([gate, 120]).to_string(),
            &["--queue", "q"],
        )
    };
    let first = add_gated(&first_gate);
    cluster.action(&["queue", "limit", "q", "2"]).ok();
    let gate = cluster.dir().join("gate");
    let more: Vec<u64> = (0..3).map(|_| add_gated(&gate)).collect();
    // Two of q's tasks hold slots (the first and one more); the others wait ready.
    wait_until("two tasks of q running", TASK_TIMEOUT, || {
        queue_count(&cluster.queue("q"), "running") == 2
    });
    let q = cluster.queue("q");
    assert_eq!(queue_count(&q, "ready"), 2, "{q}");
    assert_eq!(q["limit"], 2);

    cluster.action(&["queue", "limit", "q", "0"]).ok();
    assert!(cluster.queue("q")["limit"].is_null(), "no limit any more");
    wait_until("all four tasks of q running", TASK_TIMEOUT, || {
        queue_count(&cluster.queue("q"), "running") == 4
    });
    std::fs::write(&first_gate, "open").unwrap();
    std::fs::write(&gate, "open").unwrap();
    cluster.wait_completed(first, TASK_TIMEOUT);
    for id in more {
        cluster.wait_completed(id, TASK_TIMEOUT);
    }
}

/// A limit that is not a whole number is refused with one sentence.
#[test]
fn a_malformed_limit_is_refused() {
    let cluster = Cluster::start();
    cluster.add_created(&fixture("wait_for_file"), "[\"x\", 1]");
    for bad in ["-1", "two", "1.5"] {
        let refused = cluster.action(&["queue", "limit", "default", bad]).failed();
        refused.one_sentence();
    }
    assert!(cluster.queue("default")["limit"].is_null());
}
