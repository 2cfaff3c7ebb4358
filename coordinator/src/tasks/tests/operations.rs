//! The operations commands through the actor with a real store: the events a round writes,
//! purge by id (and what a purged id answers afterwards), worker drain.

use super::*;
use crate::events::subscription;
use tatzelwurm_proto::actioner::{PurgeSelection, Selection};
use tatzelwurm_proto::event::{EventKind, WorkerChange};
use tatzelwurm_proto::task::{Outcome, TaskState};

fn completed(task: u64) -> Report {
    Report {
        task: TaskId(task),
        attempt: Attempt(1),
        outcome: Outcome::Completed { result: "1".into() },
        output: Default::default(),
    }
}

/// Adds `n` played tasks to a worker of `n` slots named "a" and completes the first `done`;
/// returns the worker's id and frames.
async fn run_some(
    tasks: &TasksHandle,
    n: u64,
    done: u64,
) -> (WorkerId, mpsc::UnboundedReceiver<ToWorker>) {
    let (sink, _pushed) = mpsc::unbounded_channel();
    let (a, mut to_a) = worker(tasks, "a", n as u32).await;
    let add = Command::Add {
        tasks: specs(n),
        play: true,
        key: None,
        watch: false,
    };
    tasks.command(add, origin(1, 1, &sink)).await;
    let ToWorker::Run(run) = next_frame(&mut to_a).await else {
        panic!("a run first")
    };
    assert_eq!(run.len() as u64, n);
    let reports = (1..=done).map(completed).collect();
    tasks.reports(a, reports, held().await).await;
    // The round of the reports is durable once a later command is answered.
    let _ = tasks.command(Command::Queues, origin(1, 2, &sink)).await;
    (a, to_a)
}

/// A round's events are its written records, its hand-outs and its worker events, numbered
/// on without a gap, sent to a subscriber only once durable, and stored as sent.
#[tokio::test]
async fn rounds_write_and_send_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let (tasks, reader) = start_keeping(dir.path(), 1_000_000);
    let (subscriber, mut live) = subscription();
    let position = tasks.subscribe(subscriber).await.unwrap();
    assert_eq!(position.last, 0);
    let (_a, _to_a) = run_some(&tasks, 2, 2).await;
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let round = tokio::time::timeout(std::time::Duration::from_secs(5), live.recv())
            .await
            .expect("a round within 5 s")
            .unwrap()
            .unwrap();
        seen.extend(round.iter().cloned());
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(matches!(
        seen[0].kind,
        EventKind::Worker {
            change: WorkerChange::Joined,
            ..
        }
    ));
    let states: Vec<(TaskId, TaskState)> = seen[1..]
        .iter()
        .map(|e| match &e.kind {
            EventKind::Task { id, state, .. } => (*id, *state),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        states,
        [
            (TaskId(1), TaskState::Running),
            (TaskId(2), TaskState::Running),
            (TaskId(1), TaskState::Completed),
            (TaskId(2), TaskState::Completed),
        ],
        "added and handed out in one round: one event, as written"
    );
    assert_eq!(reader.events(0, 100).unwrap(), seen);
}

/// A purge by id removes finished tasks only, counts them off their queue, writes one
/// `Purged` event; a purged id is then answered `Purged` by show, wait, watch and a second
/// purge, and an id never handed out fails the whole purge.
#[tokio::test]
async fn purge_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let (tasks, reader) = start_keeping(dir.path(), 1_000_000);
    let (sink, _pushed) = mpsc::unbounded_channel();
    let (_a, _to_a) = run_some(&tasks, 3, 2).await;
    let purge = |ids: &[u64]| {
        Command::Purge(PurgeSelection::Ids(
            ids.iter().map(|id| TaskId(*id)).collect(),
        ))
    };
    match tasks.command(purge(&[1, 9]), origin(1, 3, &sink)).await {
        Reply::Error(failure) => assert_eq!(failure.kind, FailureKind::UnknownTask),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        tasks.command(purge(&[1, 2, 3]), origin(1, 4, &sink)).await,
        Reply::Purged {
            purged: 2,
            unchanged: vec![(TaskId(3), Some(TaskState::Running))]
        }
    );
    assert_eq!(
        tasks.command(purge(&[1]), origin(1, 5, &sink)).await,
        Reply::Purged {
            purged: 0,
            unchanged: vec![(TaskId(1), None)]
        }
    );
    for command in [
        Command::Show(TaskId(1)),
        Command::Wait(Selection::Ids(vec![TaskId(2)])),
        Command::Watch(vec![TaskId(1), TaskId(3)]),
    ] {
        match tasks.command(command, origin(1, 6, &sink)).await {
            Reply::Error(failure) => {
                assert_eq!(failure.kind, FailureKind::Purged);
                assert!(
                    failure.message.contains("was purged"),
                    "{}",
                    failure.message
                );
            }
            other => panic!("{other:?}"),
        }
    }
    match tasks.command(Command::Queues, origin(1, 7, &sink)).await {
        Reply::Queues(queues) => {
            assert_eq!(queues[0].count(TaskState::Completed), 0);
            assert_eq!(queues[0].count(TaskState::Running), 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(reader.get(TaskId(1)).unwrap(), None);
    assert!(reader.get(TaskId(3)).unwrap().is_some());
    let events = reader.events(0, 100).unwrap();
    let purged: Vec<&EventKind> = events
        .iter()
        .map(|e| &e.kind)
        .filter(|k| matches!(k, EventKind::Purged { .. }))
        .collect();
    assert_eq!(purged, [&EventKind::Purged { count: 2 }]);
}

/// `worker drain NAME` marks the worker draining, tells it `Drain`, writes a `Draining`
/// event, and answers it as listed; a name no worker has is `UnknownWorker`.
#[tokio::test]
async fn drain_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (tasks, reader) = start_keeping(dir.path(), 1_000_000);
    let (sink, _pushed) = mpsc::unbounded_channel();
    let (a, mut to_a) = worker(&tasks, "a", 1).await;
    match tasks
        .command(Command::DrainWorker("a".into()), origin(1, 1, &sink))
        .await
    {
        Reply::Workers(workers) => {
            assert_eq!(workers.len(), 1);
            assert!(workers[0].draining && workers[0].id == a);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(next_frame(&mut to_a).await, ToWorker::Drain);
    match tasks
        .command(Command::DrainWorker("b".into()), origin(1, 2, &sink))
        .await
    {
        Reply::Error(failure) => {
            assert_eq!(failure.kind, FailureKind::UnknownWorker);
            assert!(failure.message.contains("are: a"), "{}", failure.message);
        }
        other => panic!("{other:?}"),
    }
    let changes: Vec<WorkerChange> = reader
        .events(0, 100)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Worker { change, .. } => Some(change),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [WorkerChange::Joined, WorkerChange::Draining]);
}
