//! Feeds over a real task actor and store: replay then live with no gap and no repeat while
//! tasks are being added, filters, the end of a feed that does not follow, and `EventsGone`.

use super::*;
use crate::tasks::tests::start_keeping;
use crate::tasks::Origin;
use crate::watchers::ConnId;
use std::time::Duration;
use tatzelwurm_proto::actioner::{Command, Reply};
use tatzelwurm_proto::event::EventKind;
use tatzelwurm_proto::task::{TaskSpec, TaskState};
use tatzelwurm_proto::{RequestId, TaskId};

/// Adds `n` tasks (not played: one `created` event each) to `queue`, one command each.
async fn add(tasks: &TasksHandle, n: u64, queue: &str) {
    let (sink, _pushed) = mpsc::unbounded_channel();
    for i in 0..n {
        let mut spec = TaskSpec::call("tasks:square", format!("[{i}]"), "{}");
        spec.queue = queue.into();
        let command = Command::Add {
            tasks: vec![spec],
            play: false,
            key: None,
            watch: false,
        };
        let origin = Origin {
            conn: ConnId(1),
            request: RequestId(i),
            pushes: sink.clone(),
        };
        assert!(matches!(
            tasks.command(command, origin).await,
            Reply::Added(_)
        ));
    }
}

/// Reads the feed until an event with `seq >= last` came, or it ends; every item within 10 s.
async fn read_through(
    feed: &mut mpsc::Receiver<Result<Vec<Event>, Failure>>,
    last: u64,
) -> Vec<Event> {
    let mut seen = Vec::new();
    while seen.last().is_none_or(|e: &Event| e.seq < last) {
        let item = tokio::time::timeout(Duration::from_secs(10), feed.recv())
            .await
            .expect("an item within 10 s");
        match item {
            Some(Ok(page)) => seen.extend(page),
            Some(Err(failure)) => panic!("{failure}"),
            None => break,
        }
    }
    seen
}

/// A feed opened from the start while tasks are being added sees every event once, in
/// order, across the switch from the store to the live rounds.
#[tokio::test]
async fn replay_then_live_has_no_gap_and_no_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let (tasks, reader) = start_keeping(dir.path(), 1_000_000);
    add(&tasks, 300, "default").await;
    let adding = {
        let tasks = tasks.clone();
        tokio::spawn(async move { add(&tasks, 300, "default").await })
    };
    let mut feed = open_with(
        tasks.clone(),
        reader,
        EventsFrom::Start,
        true,
        EventFilter::default(),
    );
    adding.await.unwrap();
    let seen = read_through(&mut feed, 600).await;
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=600).collect::<Vec<u64>>());
    add(&tasks, 1, "default").await;
    let next = read_through(&mut feed, 601).await;
    assert_eq!(next.iter().map(|e| e.seq).collect::<Vec<_>>(), [601]);
    match &next[0].kind {
        EventKind::Task { id, state, .. } => {
            assert_eq!((*id, *state), (TaskId(601), TaskState::Created))
        }
        other => panic!("{other:?}"),
    }
}

/// Without follow the feed ends after the last durable event; a task or queue filter passes
/// only its events; `After` starts right after the given one; `Now` without follow is empty.
#[tokio::test]
async fn filters_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (tasks, reader) = start_keeping(dir.path(), 1_000_000);
    add(&tasks, 3, "a").await;
    add(&tasks, 2, "b").await;
    let collect = |from, filter| {
        let mut feed = open_with(tasks.clone(), reader.clone(), from, false, filter);
        async move {
            let mut seqs = Vec::new();
            while let Some(item) = tokio::time::timeout(Duration::from_secs(10), feed.recv())
                .await
                .expect("the feed ends within 10 s")
            {
                seqs.extend(item.unwrap().iter().map(|e| e.seq));
            }
            seqs
        }
    };
    assert_eq!(
        collect(EventsFrom::Start, EventFilter::default()).await,
        [1, 2, 3, 4, 5]
    );
    let queue_b = EventFilter {
        task: None,
        queue: Some("b".into()),
    };
    assert_eq!(collect(EventsFrom::Start, queue_b).await, [4, 5]);
    let task_2 = EventFilter {
        task: Some(TaskId(2)),
        queue: None,
    };
    assert_eq!(collect(EventsFrom::After(1), task_2).await, [2]);
    assert_eq!(
        collect(EventsFrom::After(3), EventFilter::default()).await,
        [4, 5]
    );
    assert!(collect(EventsFrom::Now, EventFilter::default())
        .await
        .is_empty());
}

/// Asking for events after one that was trimmed away is `EventsGone`, naming the oldest kept.
#[tokio::test]
async fn trimmed_events_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (tasks, reader) = start_keeping(dir.path(), 10);
    add(&tasks, 30, "default").await;
    let mut feed = open_with(
        tasks,
        reader,
        EventsFrom::After(2),
        true,
        EventFilter::default(),
    );
    let item = tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .expect("an answer within 10 s");
    let failure = item.expect("a failure").expect_err("the events are gone");
    assert_eq!(failure.kind, FailureKind::EventsGone);
    assert!(
        failure.message.contains("oldest kept is 21"),
        "{}",
        failure.message
    );
}

/// A follower whose `--since` is ahead of the log gets nothing until the log has passed it.
#[tokio::test]
async fn a_since_ahead_of_the_log_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (tasks, reader) = start_keeping(dir.path(), 1_000_000);
    add(&tasks, 2, "default").await;
    let mut feed = open_with(
        tasks.clone(),
        reader,
        EventsFrom::After(5),
        true,
        EventFilter::default(),
    );
    add(&tasks, 5, "default").await;
    let seen = read_through(&mut feed, 7).await;
    assert_eq!(seen.iter().map(|e| e.seq).collect::<Vec<_>>(), [6, 7]);
}
