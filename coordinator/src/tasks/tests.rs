//! The task actor with a real store and no network: keyed adds, watches and pushes as an
//! actioner connection sees them through its `Origin` and push sink.

use super::*;
use tatzelwurm_proto::actioner::{AddKey, Selection};
use tatzelwurm_proto::task::{TaskSpec, TaskState};

/// An actor over a fresh store in `dir`.
fn start(dir: &std::path::Path) -> TasksHandle {
    let store = Store::open(dir, None).unwrap();
    let table = TaskTable::recover(Vec::new(), 1, Timestamp::now());
    let (tasks, _failed) = TasksHandle::new(table, AddKeys::default(), store, WorkersHandle::new());
    tasks
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
        .map(|i| TaskSpec {
            function: "tasks:square".into(),
            args: format!("[{i}]"),
            kwargs: "{}".into(),
            policy: Default::default(),
        })
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
