//! The pool with real Python slots and the operations features: live output of a running task,
//! `--max-memory` (a slot left big after a task is replaced with the result standing; one that
//! grows past the limit during a task is killed and the task fails `MemoryLimit`), and the
//! usage snapshot.

use super::tests::{completed, failed, fixtures, next, python_command, task, PATIENCE};
use super::*;
use crate::usage::CpuMeter;
use tokio::sync::mpsc::UnboundedReceiver;

const MB: u64 = 1024 * 1024;

fn start_limited(count: usize, limit_mb: u64) -> (SlotsHandle, UnboundedReceiver<News>) {
    let mut command = python_command();
    command.max_memory = Some(limit_mb * MB);
    SlotsHandle::start(command, count, 1)
}

/// The next live output news, skipping other news; panics on a report (it must come first).
async fn next_output(news: &mut UnboundedReceiver<News>) -> Vec<OutputChunk> {
    loop {
        let item = tokio::time::timeout(PATIENCE, news.recv())
            .await
            .expect("output within the patience")
            .expect("the pool is alive");
        match item {
            News::Output(chunks) => return chunks,
            News::Report(report) => panic!("a report before the live output: {report:?}"),
            _ => {}
        }
    }
}

/// A running task's lines reach the pool's news while it still runs (it waits for a gate that
/// is opened only once they arrived), attributed to its attempt and stream; its report then
/// carries all it wrote.
#[tokio::test]
async fn a_running_task_output_is_forwarded_live() {
    let (slots, mut news) = SlotsHandle::start(python_command(), 1, 1);
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let args = serde_json::json!([gate, 60]).to_string();
    slots.run(vec![task(7, "tasks:print_until", &args)]).await;
    let mut stdout = String::new();
    let mut stderr = String::new();
    while !(stdout.contains("first line\n") && stderr.contains("to stderr\n")) {
        for chunk in next_output(&mut news).await {
            assert_eq!((chunk.task, chunk.attempt), (TaskId(7), Attempt(1)));
            match chunk.stream {
                OutputStream::Stdout => stdout.push_str(&chunk.text),
                OutputStream::Stderr => stderr.push_str(&chunk.text),
            }
        }
    }
    assert_eq!(
        stdout, "first line\n",
        "nothing of a later line went out early"
    );
    std::fs::write(&gate, "open").unwrap();
    let report = next(&mut news).await;
    assert_eq!(completed(&report), "\"done\"");
    assert_eq!(report.output.stdout, "first line\nafter the gate\n");
    assert_eq!(report.output.stderr, "to stderr\n");
    slots.shutdown().await;
}

/// Tasks that print nothing send no live output at all.
#[tokio::test]
async fn silent_tasks_send_no_output() {
    let (slots, mut news) = SlotsHandle::start(python_command(), 1, 1);
    slots.run(vec![task(1, "tasks:nap", "[0.5]")]).await;
    completed(&next(&mut news).await);
    slots.run(vec![task(2, "tasks:noop", "[1]")]).await;
    next(&mut news).await;
    while let Ok(item) = news.try_recv() {
        assert!(!matches!(item, News::Output(_)), "{item:?}");
    }
    slots.shutdown().await;
}

/// A task that leaves its slot past --max-memory keeps its result; the slot is replaced (the
/// next task runs in another process) and the replacement is counted.
#[tokio::test]
async fn a_slot_left_big_after_a_task_is_replaced() {
    let (slots, mut news) = start_limited(1, 100);
    slots.run(vec![task(1, "tasks:keep_memory", "[20]")]).await;
    let small: i64 = completed(&next(&mut news).await).parse().unwrap();
    // Past the limit only as the allocation ends and the task returns (a slot found past it
    // twice while a task runs is killed instead).
    slots.run(vec![task(2, "tasks:keep_memory", "[80]")]).await;
    let big: i64 = completed(&next(&mut news).await).parse().unwrap();
    assert_eq!(small, big, "a slot under the limit is kept");
    slots.run(vec![task(3, "tasks:pid", "[]")]).await;
    let fresh: i64 = completed(&next(&mut news).await).parse().unwrap();
    assert_ne!(fresh, big, "the big slot was replaced");
    let snapshot = slots.usage().await;
    assert_eq!(snapshot.max_memory, Some(100 * MB));
    assert_eq!((snapshot.memory_replaced, snapshot.memory_killed), (1, 0));
    slots.shutdown().await;
}

/// A task that grows its slot past --max-memory while it runs is killed at once (not after its
/// 60 s) and fails `MemoryLimit` naming the limit and the RSS; a fresh slot runs the next task.
#[tokio::test]
async fn a_task_past_the_limit_fails_with_memory_limit() {
    let (slots, mut news) = start_limited(1, 100);
    let started = std::time::Instant::now();
    slots
        .run(vec![task(1, "tasks:grow_and_wait", "[200, 60]")])
        .await;
    let report = next(&mut news).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    let error = failed(&report);
    assert_eq!(error.kind, "MemoryLimit");
    assert!(
        error.message.contains("--max-memory 100 MB"),
        "{}",
        error.message
    );
    slots.run(vec![task(2, "tasks:add", "[1, 2]")]).await;
    assert_eq!(completed(&next(&mut news).await), "3");
    let snapshot = slots.usage().await;
    assert_eq!((snapshot.memory_replaced, snapshot.memory_killed), (0, 1));
    slots.shutdown().await;
}

/// The usage snapshot names each slot's process and how many tasks it runs; measured, it shows
/// the slot's resident memory.
#[tokio::test]
async fn the_snapshot_names_pids_and_running_tasks() {
    let (slots, mut news) = SlotsHandle::start(python_command(), 2, 1);
    slots.started().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let args = serde_json::json!([gate, 60]).to_string();
    slots.run(vec![task(1, "tasks:print_until", &args)]).await;
    next_output(&mut news).await;
    let snapshot = slots.usage().await;
    assert_eq!(snapshot.slots.len(), 2);
    assert!(snapshot.slots.iter().all(|(pid, _)| pid.is_some()));
    let running: u32 = snapshot.slots.iter().map(|(_, running)| running).sum();
    assert_eq!(running, 1);
    assert_eq!(snapshot.max_memory, None);
    let usage = CpuMeter::default().measure(snapshot);
    assert!(usage.slots.iter().all(|s| s.rss > MB), "{usage:?}");
    std::fs::write(&gate, "open").unwrap();
    next(&mut news).await;
    let _ = fixtures();
    slots.shutdown().await;
}
