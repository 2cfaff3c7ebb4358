//! The task actor with a real store and no network: keyed adds, watches and pushes as an
//! actioner connection sees them through its `Origin` and push sink.

use super::*;
use tatzelwurm_proto::actioner::{AddKey, Selection};
use tatzelwurm_proto::task::{TaskSpec, TaskState};
use tatzelwurm_proto::worker::Assignment;

/// An actor over a fresh store in `dir`.
fn start(dir: &std::path::Path) -> TasksHandle {
    start_keeping(dir, 1_000_000).0
}

/// An actor over a fresh store in `dir` that keeps `keep` events, and the store's reader (for
/// the tests here and those of `event_feed`).
pub(crate) fn start_keeping(
    dir: &std::path::Path,
    keep: u64,
) -> (TasksHandle, crate::store::StoreReader) {
    let store = Store::open(dir, None).unwrap();
    let reader = store.reader();
    let now = Timestamp::now();
    let table = TaskTable::recover(crate::store::Records::default(), 1, Vec::new(), now, &store);
    let events = EventLog::recover(1, None, keep);
    let (tasks, _failed) =
        TasksHandle::new(table, AddKeys::default(), Schedules::new(), store, events);
    (tasks, reader)
}

/// An origin on connection `conn` for request `request`, pushing into `sink`.
fn origin(conn: u64, request: u64, sink: &PushSink) -> Origin {
    Origin {
        conn: ConnId(conn),
        request: RequestId(request),
        pushes: sink.clone(),
    }
}

fn specs(n: u64) -> Vec<TaskSpec> {
    (0..n)
        .map(|i| TaskSpec::call("tasks:square", format!("[{i}]"), "{}"))
        .collect()
}

fn add(tasks: Vec<TaskSpec>, key: Option<AddKey>, watch: bool) -> Command {
    Command::Add {
        tasks,
        play: false,
        key,
        watch,
    }
}

/// Two sends of one key, in one round or in later ones, get the same ids; the table holds the
/// tasks once.
#[tokio::test]
async fn a_key_sent_twice_adds_once() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    let key = Some(AddKey([3; 16]));
    let (first, second) = tokio::join!(
        tasks.command(add(specs(4), key, false), origin(1, 1, &sink)),
        tasks.command(add(specs(4), key, false), origin(2, 1, &sink)),
    );
    assert_eq!(first, second);
    let again = tasks
        .command(add(specs(4), key, false), origin(1, 2, &sink))
        .await;
    assert_eq!(again, first);
    match tasks
        .command(
            Command::List {
                states: Vec::new(),
                queue: None,
                after: None,
                limit: 0,
            },
            origin(1, 3, &sink),
        )
        .await
    {
        Reply::Tasks { tasks, .. } => assert_eq!(tasks.len(), 4),
        other => panic!("{other:?}"),
    }
}

/// Tasks of a watched add that finish together come as one `Finished` for the request; a
/// `Watch` of finished tasks pushes them at once; a forgotten connection gets nothing more.
#[tokio::test]
async fn watched_tasks_are_pushed_once_per_round() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, mut pushed) = mpsc::unbounded_channel();
    let ids = match tasks
        .command(add(specs(3), None, true), origin(1, 10, &sink))
        .await
    {
        Reply::Added(ids) => ids,
        other => panic!("{other:?}"),
    };
    let killed = tasks
        .command(Command::Kill(Selection::All), origin(1, 11, &sink))
        .await;
    assert!(matches!(killed, Reply::Changed { .. }), "{killed:?}");
    let frame = pushed.recv().await.unwrap();
    assert_eq!(frame.request, RequestId(10));
    match frame.reply {
        Reply::Finished(infos) => {
            assert_eq!(infos.iter().map(|i| i.id).collect::<Vec<_>>(), ids);
            assert!(infos.iter().all(|i| i.state == TaskState::Killed));
        }
        other => panic!("{other:?}"),
    }
    assert!(pushed.try_recv().is_err(), "one frame for the round");

    let watching = tasks
        .command(Command::Watch(ids.clone()), origin(1, 12, &sink))
        .await;
    assert_eq!(watching, Reply::Watching);
    let frame = pushed.recv().await.unwrap();
    assert_eq!(frame.request, RequestId(12));

    let unknown = tasks
        .command(Command::Watch(vec![TaskId(99)]), origin(1, 13, &sink))
        .await;
    match unknown {
        Reply::Error(failure) => assert_eq!(failure.kind, FailureKind::UnknownTask),
        other => panic!("{other:?}"),
    }

    // A connection that ended: its watch of a new task is forgotten before the task finishes.
    let (other_sink, mut other_pushed) = mpsc::unbounded_channel();
    let fresh = match tasks
        .command(add(specs(1), None, true), origin(2, 1, &other_sink))
        .await
    {
        Reply::Added(ids) => ids,
        other => panic!("{other:?}"),
    };
    tasks.forget(ConnId(2)).await;
    drop(other_sink);
    tasks
        .command(Command::Kill(Selection::Ids(fresh)), origin(1, 14, &sink))
        .await;
    assert!(
        other_pushed.recv().await.is_none(),
        "the forgotten connection got a push"
    );
}

/// A bad function name is refused as a bad request, naming it, and adds nothing.
#[tokio::test]
async fn a_bad_function_is_a_bad_request() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    let mut bad = specs(3);
    bad[1].function = format!("{}-not-python", "x".repeat(10_000));
    bad[2].function = "nope".into();
    match tasks
        .command(add(bad, Some(AddKey([1; 16])), false), origin(1, 1, &sink))
        .await
    {
        Reply::Error(failure) => {
            assert_eq!(failure.kind, FailureKind::BadRequest);
            assert!(failure.message.len() < 400, "{}", failure.message);
            assert!(failure.message.contains("1 more"), "{}", failure.message);
        }
        other => panic!("{other:?}"),
    }
    // The key was not recorded: the same key with good tasks adds them.
    match tasks
        .command(
            add(specs(3), Some(AddKey([1; 16])), false),
            origin(1, 2, &sink),
        )
        .await
    {
        Reply::Added(ids) => assert_eq!(ids.len(), 3),
        other => panic!("{other:?}"),
    }
}

/// A permit standing in for a worker connection's bound on queued items.
async fn held() -> Held {
    std::sync::Arc::new(tokio::sync::Semaphore::new(1))
        .acquire_owned()
        .await
        .unwrap()
}

/// Registers a worker of `slots` slots and returns its id and the frames sent to it.
async fn worker(
    tasks: &TasksHandle,
    name: &str,
    slots: u32,
) -> (WorkerId, mpsc::UnboundedReceiver<ToWorker>) {
    let (sender, frames) = mpsc::unbounded_channel();
    let hello = WorkerHello {
        name: name.into(),
        slots,
        python: "3.11.7".into(),
        queues: vec!["default".into()],
        async_concurrency: 1,
    };
    let (id, held_off) = tasks.register(hello, "a".into(), sender).await.unwrap();
    assert_eq!(held_off, None);
    tasks.wake().await;
    (id, frames)
}

/// The next frame sent to a worker, within a bound.
async fn next_frame(frames: &mut mpsc::UnboundedReceiver<ToWorker>) -> ToWorker {
    tokio::time::timeout(std::time::Duration::from_secs(5), frames.recv())
        .await
        .expect("a frame within 5 s")
        .expect("the actor keeps the sender")
}

fn keys(run: &[Assignment]) -> Vec<(TaskId, Attempt)> {
    run.iter().map(|a| (a.task, a.attempt)).collect()
}

/// Through the actor: a worker with one slot gets one task for its slot and one queued; when
/// a second worker comes idle with nothing ready, the first is asked to give the queued one
/// back, and once it has, the task runs on the second with a new attempt, no crash counted.
#[tokio::test]
async fn an_idle_worker_gets_a_busy_workers_queue() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    let (a, mut to_a) = worker(&tasks, "a", 1).await;
    let added = tasks
        .command(
            Command::Add {
                tasks: specs(2),
                play: true,
                key: None,
                watch: false,
            },
            origin(1, 1, &sink),
        )
        .await;
    assert_eq!(added, Reply::Added(vec![TaskId(1), TaskId(2)]));
    let ToWorker::Run(run) = next_frame(&mut to_a).await else {
        panic!("a run first")
    };
    let first = (TaskId(1), Attempt(1));
    assert_eq!(keys(&run), vec![first, (TaskId(2), Attempt(1))]);
    tasks.started(a, vec![first], held().await).await;

    let (b, mut to_b) = worker(&tasks, "b", 1).await;
    let taken = next_frame(&mut to_a).await;
    assert_eq!(taken, ToWorker::TakeBack(vec![(TaskId(2), Attempt(1))]));
    tasks
        .returned(a, vec![(TaskId(2), Attempt(1))], held().await)
        .await;
    let ToWorker::Run(run) = next_frame(&mut to_b).await else {
        panic!("a run")
    };
    assert_eq!(keys(&run), vec![(TaskId(2), Attempt(2))]);
    let workers = tasks.list_workers().await;
    let load: Vec<_> = workers
        .iter()
        .map(|w| (w.id, w.running, w.queued))
        .collect();
    assert_eq!(load, vec![(a, 1, 0), (b, 1, 1)]);
    match tasks
        .command(Command::Show(TaskId(2)), origin(1, 2, &sink))
        .await
    {
        Reply::Task(info) => assert_eq!((info.crashes, info.worker.as_deref()), (0, Some("b"))),
        other => panic!("{other:?}"),
    }
}

/// At-most-once tasks are never queued behind a busy slot: with one slot taken, the next
/// at-most-once task waits for a free slot while at-least-once work would be prefetched.
#[tokio::test]
async fn at_most_once_tasks_are_not_prefetched() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    let (a, mut to_a) = worker(&tasks, "a", 1).await;
    let mut once = specs(2);
    for spec in &mut once {
        spec.policy.at_most_once = true;
    }
    let add = Command::Add {
        tasks: once,
        play: true,
        key: None,
        watch: false,
    };
    tasks.command(add, origin(1, 1, &sink)).await;
    let ToWorker::Run(run) = next_frame(&mut to_a).await else {
        panic!("a run")
    };
    assert_eq!(keys(&run), vec![(TaskId(1), Attempt(1))]);
    let workers = tasks.list_workers().await;
    assert_eq!((workers[0].running, workers[0].queued), (1, 1));
    // The slot's report frees it: the second task goes to it then.
    let report = Report {
        task: TaskId(1),
        attempt: Attempt(1),
        outcome: tatzelwurm_proto::task::Outcome::Completed { result: "1".into() },
        output: Default::default(),
    };
    tasks.reports(a, vec![report], held().await).await;
    let mut next = None;
    while next.is_none() {
        if let ToWorker::Run(run) = next_frame(&mut to_a).await {
            next = Some(keys(&run));
        }
    }
    // Its first attempt: prefetch never took and gave back the task on its way.
    let second = next.unwrap()[0];
    assert_eq!(second, (TaskId(2), Attempt(1)));
}

/// A long prefetch of tasks with large arguments is cut into `Run` frames within a quarter of
/// the frame limit each, in order, none empty.
#[test]
fn run_frames_stay_within_the_frame_limit() {
    let big = "x".repeat(RUN_FRAME_BYTES / 3);
    let run: Vec<Assignment> = (1..=7)
        .map(|n| Assignment {
            task: TaskId(n),
            attempt: Attempt(1),
            spec: TaskSpec::call("m:f", big.clone(), "{}"),
        })
        .collect();
    let frames = run_frames(run);
    let sizes: Vec<Vec<u64>> = frames
        .iter()
        .map(|f| match f {
            ToWorker::Run(run) => run.iter().map(|a| a.task.0).collect(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, vec![vec![1, 2], vec![3, 4], vec![5, 6], vec![7]]);
    assert!(run_frames(Vec::new()).is_empty());
}

/// The flush rule: only at-least-once tasks that were durable before the round and every
/// round in flight (ids below `early_below`), with their durable record current, go before the
/// flush.
#[test]
fn only_existing_at_least_once_runs_go_before_the_flush() {
    let assignment = |id: u64, at_most_once: bool| {
        let mut spec = specs(1).remove(0);
        spec.policy.at_most_once = at_most_once;
        Assignment {
            task: TaskId(id),
            attempt: Attempt(1),
            spec,
        }
    };
    let early_below = 10;
    assert!(before_flush(&assignment(9, false), early_below, true));
    assert!(!before_flush(&assignment(9, false), early_below, false));
    assert!(!before_flush(&assignment(9, true), early_below, true));
    assert!(!before_flush(&assignment(10, false), early_below, true));
    assert!(!before_flush(&assignment(11, true), early_below, true));
}

mod held;
mod queues;

mod operations;

/// A round ends once its messages carry `ROUND_NEW_TASKS` new tasks (after the `Add` that
/// reaches it, never inside one), or `ROUND_ITEMS` items of any kind.
#[test]
fn a_round_takes_a_few_thousand_new_tasks_at_most() {
    let (sink, _pushed) = mpsc::unbounded_channel();
    let adding = |n: u64| {
        let (reply, _) = oneshot::channel();
        TaskMsg::Command {
            command: add(specs(n), None, false),
            origin: origin(1, 1, &sink),
            reply,
            _held: None,
        }
    };
    let mut budget = Budget::default();
    budget.take(&adding(1_000));
    assert!(!budget.spent(), "1,000 new tasks leave room");
    budget.take(&adding(999));
    assert!(!budget.spent());
    budget.take(&adding(1));
    assert!(budget.spent(), "ROUND_NEW_TASKS reached");

    let mut big = Budget::default();
    big.take(&adding(50_000));
    assert!(big.spent(), "one large add is a round of its own, whole");

    let mut kills = Budget::default();
    let (reply, _) = oneshot::channel();
    let ids = (1..=ROUND_ITEMS as u64).map(TaskId).collect();
    kills.take(&TaskMsg::Command {
        command: Command::Kill(Selection::Ids(ids)),
        origin: origin(1, 2, &sink),
        reply,
        _held: None,
    });
    assert!(kills.spent(), "ROUND_ITEMS of other items end a round too");
}
