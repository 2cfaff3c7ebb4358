//! Held tasks (see `slot_table/waits`) with real `python3` slot processes: a chain goes to one
//! slot behind its head with conditions and runs in order; when the head fails, slot.py skips
//! the links (`unmet`) and the pool gives them back unasked, without running them.

use super::tests::{completed, failed, next, python_command, run_one, task, PATIENCE};
use super::*;

/// Runs of each function before the chains, for its average to settle below `FAST`.
const SETTLE: u64 = 12;

fn after(id: u64, function: &str, deps: &[u64]) -> Assignment {
    let mut assignment = task(id, function, "[]");
    assignment.spec.after = deps.iter().map(|d| TaskId(*d)).collect();
    assignment
}

/// Attempts the pool gives back unasked, until `count` of them came (reports are skipped).
async fn returned(news: &mut mpsc::UnboundedReceiver<News>, count: usize) -> Vec<AttemptId> {
    let mut given = Vec::new();
    while given.len() < count {
        let item = tokio::time::timeout(PATIENCE, news.recv())
            .await
            .expect("news within the patience")
            .expect("the pool is alive");
        if let News::Returned(attempts) = item {
            given.extend(attempts);
        }
    }
    given
}

/// `tasks:count` counts its calls in the slot's module state, so each result shows how many
/// ran before it there: the chain runs in order in the one slot, and after a failed head
/// neither link runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_chain_runs_behind_its_head_or_comes_back() {
    let (slots, mut news) = SlotsHandle::start(python_command(), 1, 1);
    slots.started().await;
    // Both functions are seen fast (their averages settle below `FAST`), so the links go
    // behind their head in one frame.
    for n in 1..=SETTLE {
        let report = run_one(&slots, &mut news, task(n, "tasks:count", "[]")).await;
        assert_eq!(completed(&report), n.to_string());
        failed(&run_one(&slots, &mut news, task(100 + n, "tasks:fail", "[1]")).await);
    }

    slots
        .run(vec![
            task(10, "tasks:count", "[]"),
            after(11, "tasks:count", &[10]),
            after(12, "tasks:count", &[11]),
        ])
        .await;
    for (id, calls) in [(10, SETTLE + 1), (11, SETTLE + 2), (12, SETTLE + 3)] {
        let report = next(&mut news).await;
        assert_eq!(
            (report.task, completed(&report)),
            (TaskId(id), calls.to_string().as_str())
        );
    }

    slots
        .run(vec![
            task(20, "tasks:fail", "[2]"),
            after(21, "tasks:count", &[20]),
            after(22, "tasks:count", &[21]),
        ])
        .await;
    let report = next(&mut news).await;
    assert_eq!(report.task, TaskId(20));
    failed(&report);
    let mut given = returned(&mut news, 2).await;
    given.sort();
    assert_eq!(
        given,
        vec![(TaskId(21), Attempt(1)), (TaskId(22), Attempt(1))]
    );
    assert_eq!(
        completed(&run_one(&slots, &mut news, task(30, "tasks:count", "[]")).await),
        (SETTLE + 4).to_string(),
        "neither link ran"
    );
    slots.shutdown().await;
}
