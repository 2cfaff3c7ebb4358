//! Tests of async tasks with real `python3` slots (fixture `tests/fixtures/aio.py`): several at
//! once per slot on its event loop, kills and timeouts that end exactly one of them, the grace
//! after which a slot is replaced, per-task output, and the coroutine functions the pool names.

use super::tests::{
    completed, failed, next, python_command, run_one, task, with_timeout, PATIENCE,
};
use super::*;
use crate::slot_table::GRACE;
use std::collections::HashMap;
use std::time::Instant;

fn start(count: usize, concurrency: usize) -> (SlotsHandle, mpsc::UnboundedReceiver<News>) {
    SlotsHandle::start(python_command(), count, concurrency)
}

/// Every report until `count` arrived, by task id, and the coroutine functions named meanwhile.
async fn collect(
    news: &mut mpsc::UnboundedReceiver<News>,
    count: usize,
) -> (HashMap<u64, Report>, Vec<String>) {
    let mut reports = HashMap::new();
    let mut coroutines = Vec::new();
    while reports.len() < count {
        let item = tokio::time::timeout(PATIENCE, news.recv())
            .await
            .expect("news within the patience")
            .expect("the pool is alive");
        match item {
            News::Report(report) => {
                reports.insert(report.task.0, report);
            }
            News::Coroutines(names) => coroutines.extend(names),
            News::Started(_) | News::Output(_) | News::MemoryActed => {}
            News::Returned(attempts) => panic!("no task here runs after another: {attempts:?}"),
        }
    }
    (reports, coroutines)
}

/// Runs one task of `function` so that the pool learns it is a coroutine function; returns
/// what the slot named.
async fn learn(
    slots: &SlotsHandle,
    news: &mut mpsc::UnboundedReceiver<News>,
    id: u64,
    function: &str,
    args: &str,
) -> Vec<String> {
    slots.run(vec![task(id, function, args)]).await;
    let (reports, coroutines) = collect(news, 1).await;
    completed(&reports[&id]);
    coroutines
}

/// A slot runs up to --async-concurrency tasks of an `async def` at once and never more; the
/// function is named once, after its first task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_tasks_run_together_up_to_the_concurrency() {
    let (slots, mut news) = start(1, 3);
    let named = learn(&slots, &mut news, 1, "aio:overlap", "[0.01]").await;
    assert_eq!(named, ["aio:overlap"]);
    slots
        .run((2..=8).map(|i| task(i, "aio:overlap", "[0.4]")).collect())
        .await;
    let (reports, named) = collect(&mut news, 7).await;
    assert!(named.is_empty(), "named again: {named:?}");
    let peaks: Vec<u32> = reports
        .values()
        .map(|r| completed(r).parse().unwrap())
        .collect();
    // Seven tasks of 0.4 s in one slot: three at a time, never more.
    assert_eq!(peaks.iter().max(), Some(&3), "{peaks:?}");
    // A sync task takes the slot once the async ones are done, and prints as before.
    let report = run_one(&slots, &mut news, task(9, "tasks:chatter", "[]")).await;
    assert_eq!(report.output.stdout, "to stdout\nraw\nchild\n");
    slots.shutdown().await;
}

/// A kill cancels exactly one async task, reported `Killed` with what it printed; the tasks
/// beside it run on in the same slot process, and a new one takes its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_cancels_only_one_async_task() {
    let (slots, mut news) = start(1, 3);
    learn(&slots, &mut news, 1, "aio:wait", r#"[0, "warm"]"#).await;
    slots
        .run(
            (2..=4)
                .map(|i| task(i, "aio:wait", &format!(r#"[30, "t{i}"]"#)))
                .collect(),
        )
        .await;
    // Each has begun once it printed; give the warm slot a moment to read its frame.
    tokio::time::sleep(Duration::from_secs(1)).await;
    slots.kill(vec![(TaskId(3), Attempt(1))]).await;
    let report = next(&mut news).await;
    assert_eq!(report.task, TaskId(3));
    assert_eq!(report.outcome, tatzelwurm_proto::task::Outcome::Killed);
    assert_eq!(report.output.stdout, "started t3\n");
    // A cancel, not a replaced slot: the others run on (below, in the same process).
    let report = run_one(&slots, &mut news, task(5, "aio:wait", r#"[0, "t5"]"#)).await;
    let value: serde_json::Value = serde_json::from_str(completed(&report)).unwrap();
    assert_eq!(value[0], "t5");
    let pid = value[1].as_i64().unwrap();
    let mut running = slots.running().await;
    running.sort();
    assert_eq!(running, [(TaskId(2), Attempt(1)), (TaskId(4), Attempt(1))]);
    slots
        .kill(vec![(TaskId(2), Attempt(1)), (TaskId(4), Attempt(1))])
        .await;
    let (reports, _) = collect(&mut news, 2).await;
    assert!(reports
        .values()
        .all(|r| r.outcome == tatzelwurm_proto::task::Outcome::Killed));
    // Still the same process.
    let report = run_one(&slots, &mut news, task(6, "aio:wait", r#"[0, "t6"]"#)).await;
    let value: serde_json::Value = serde_json::from_str(completed(&report)).unwrap();
    assert_eq!(value[1].as_i64().unwrap(), pid);
    slots.shutdown().await;
}

/// A timeout of one async task cancels it alone; a task that swallows its cancel is killed with
/// its slot after the grace, and the task running beside it fails naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_cancel_and_a_stubborn_task_costs_its_slot() {
    let (slots, mut news) = start(1, 2);
    learn(&slots, &mut news, 1, "aio:wait", r#"[0, "warm"]"#).await;
    // Its first task runs alone, in order: its timeout kills the slot, as for a sync task.
    slots
        .run(vec![with_timeout(task(2, "aio:stubborn", "[]"), 200)])
        .await;
    let (reports, named) = collect(&mut news, 1).await;
    assert_eq!(failed(&reports[&2]).kind, "Timeout");
    assert_eq!(named, ["aio:stubborn"]);
    slots
        .run(vec![
            with_timeout(task(3, "aio:wait", r#"[30, "slow"]"#), 300),
            task(4, "aio:wait", r#"[1, "beside"]"#),
        ])
        .await;
    let (reports, _) = collect(&mut news, 2).await;
    assert_eq!(failed(&reports[&3]).kind, "Timeout");
    assert_eq!(reports[&3].output.stdout, "started slow\n");
    assert!(completed(&reports[&4]).contains("beside"));
    // Now one that will not stop, beside one that would run for a while.
    slots
        .run(vec![
            with_timeout(task(5, "aio:stubborn", "[]"), 200),
            task(6, "aio:wait", r#"[30, "victim"]"#),
        ])
        .await;
    let asked = Instant::now();
    let (reports, _) = collect(&mut news, 2).await;
    let took = asked.elapsed();
    assert!(
        took >= GRACE && took < GRACE + Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(failed(&reports[&5]).kind, "Timeout");
    let error = failed(&reports[&6]);
    assert_eq!(error.kind, "SlotCrashed");
    assert!(
        error.message.contains("task 5 (attempt 1)") && error.message.contains("did not stop"),
        "{}",
        error.message
    );
    // A fresh slot serves.
    let report = run_one(&slots, &mut news, task(7, "aio:wait", r#"[0, "after"]"#)).await;
    assert!(completed(&report).contains("after"));
    slots.shutdown().await;
}

/// What async tasks print is each one's own, children asyncio tasks included; exceptions and
/// sys.exit fail only their task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_errors_are_per_task() {
    let (slots, mut news) = start(1, 4);
    learn(&slots, &mut news, 1, "aio:say", r#"["warm", 0]"#).await;
    slots
        .run(vec![
            task(2, "aio:say", r#"["one", 0.3]"#),
            task(3, "aio:say", r#"["two", 0.2]"#),
            task(4, "aio:fail", r#"["async bad"]"#),
            task(5, "aio:leave", "[3]"),
        ])
        .await;
    let (reports, named) = collect(&mut news, 4).await;
    // aio:fail and aio:leave were new: they ran in order, each alone, and were named.
    assert_eq!(named, ["aio:fail", "aio:leave"]);
    for (id, text) in [(2, "one"), (3, "two")] {
        assert_eq!(completed(&reports[&id]), format!("\"{text}\""));
        assert_eq!(
            reports[&id].output.stdout,
            format!("{text}\n{text} from a child task\n")
        );
        assert_eq!(reports[&id].output.stderr, format!("{text} again\n"));
    }
    let error = failed(&reports[&4]);
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        ("ValueError", "async bad")
    );
    assert!(error.traceback.contains("in fail"), "{}", error.traceback);
    assert_eq!(failed(&reports[&5]).kind, "SystemExit");
    // Known now: run together, and fail just the same.
    slots
        .run(vec![
            task(6, "aio:fail", r#"["again"]"#),
            task(7, "aio:say", r#"["three", 0]"#),
        ])
        .await;
    let (reports, _) = collect(&mut news, 2).await;
    assert_eq!(failed(&reports[&6]).message, "again");
    assert_eq!(
        reports[&7].output.stdout,
        "three\nthree from a child task\n"
    );
    slots.shutdown().await;
}
