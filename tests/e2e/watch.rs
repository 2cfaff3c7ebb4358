//! Protocol v3 as an actioner speaks it, over a raw `tatzelwurm_proto::Connection` to the real
//! coordinator: adds with `watch` and `Watch` get `Finished` pushes, unknown ids fail with
//! `UnknownTask`, a keyed add re-sent (also across a `kill -9` of the coordinator) creates
//! nothing twice, and many requests in flight on one connection are answered by request id.

use crate::raw_actioner::Raw;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tatzelwurm_e2e::{example, Cluster, Stop, WorkerSpec};
use tatzelwurm_proto::actioner::{
    AddKey, Command, FailureKind, Reply, Selection, TaskEnd, ToActioner,
};
use tatzelwurm_proto::task::{TaskInfo, TaskSpec, TaskState};
use tatzelwurm_proto::{RequestId, TaskId};

/// How long one reply may take on a loaded machine (a round is one flush).
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

impl Raw {
    /// Connects to `addr` and says hello as an actioner.
    fn connect_actioner(addr: &str) -> Raw {
        Raw::connect(addr, "watch-test", None, REPLY_TIMEOUT)
    }

    /// The next frame; panics if none comes within `REPLY_TIMEOUT` or the connection closes.
    fn recv(&mut self) -> ToActioner {
        self.recv_within(REPLY_TIMEOUT)
    }

    /// Sends `command` and returns the one reply to it; any other frame is a failure.
    fn ask(&mut self, request: u64, command: Command) -> Reply {
        self.send(request, command);
        let frame = self.recv();
        assert_eq!(frame.request, RequestId(request), "{frame:?}");
        frame.reply
    }

    /// Adds `tasks` and returns their ids.
    fn add(&mut self, request: u64, tasks: Vec<TaskSpec>, key: Option<AddKey>) -> Vec<TaskId> {
        let command = Command::Add {
            tasks,
            play: false,
            key,
            watch: false,
        };
        match self.ask(request, command) {
            Reply::Added(ids) => ids,
            other => panic!("expected Added, got {other:?}"),
        }
    }

    /// Every task, read over all pages of a `List`.
    fn list(&mut self, request: u64) -> Vec<TaskInfo> {
        self.send(
            request,
            Command::List {
                states: Vec::new(),
                queue: None,
                after: None,
                limit: 0,
            },
        );
        let mut tasks = Vec::new();
        loop {
            let frame = self.recv();
            assert_eq!(frame.request, RequestId(request));
            match frame.reply {
                Reply::Tasks { tasks: page, more } => {
                    tasks.extend(page);
                    if !more {
                        return tasks;
                    }
                }
                other => panic!("expected Tasks, got {other:?}"),
            }
        }
    }
}

/// A task calling `function` with `[n]`.
fn spec(function: &str, n: u64) -> TaskSpec {
    TaskSpec::call(function, format!("[{n}]"), "{}")
}

/// The failure kind of an `Error` reply; panics on any other reply.
fn failure(reply: Reply) -> (FailureKind, String) {
    match reply {
        Reply::Error(failure) => (failure.kind, failure.message),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// An add with `watch` is answered `Added` and, as a worker runs its tasks, `Finished` frames
/// under the same request id carry every task completed with its result and without output;
/// a later `Watch` of those finished tasks is answered `Watching` and pushes them at once.
#[test]
fn an_add_with_watch_gets_added_then_finished() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(2));
    let mut raw = Raw::connect_actioner(cluster.addr());
    let square = example("square");
    let tasks = (1..=5).map(|n| spec(&square, n)).collect();
    raw.send(
        7,
        Command::Add {
            tasks,
            play: true,
            key: Some(AddKey([1; 16])),
            watch: true,
        },
    );
    let mut added = None;
    let mut finished: BTreeMap<TaskId, TaskEnd> = BTreeMap::new();
    let mut frames = 0;
    while added.is_none() || finished.len() < 5 {
        let frame = raw.recv();
        frames += 1;
        assert_eq!(frame.request, RequestId(7), "{frame:?}");
        match frame.reply {
            Reply::Added(ids) => {
                assert!(added.is_none(), "a second Added");
                added = Some(ids);
            }
            Reply::Finished(infos) => {
                assert!(!infos.is_empty(), "an empty Finished");
                for info in infos {
                    assert!(finished.insert(info.id, info).is_none(), "pushed twice");
                }
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            frames <= 6,
            "more frames than Added and one Finished per task"
        );
    }
    let ids = added.unwrap();
    assert_eq!(ids.len(), 5);
    assert_eq!(
        finished.keys().copied().collect::<Vec<_>>(),
        ids,
        "every added task is pushed"
    );
    for (n, id) in (1..=5u64).zip(&ids) {
        let info = &finished[id];
        assert_eq!(info.state, TaskState::Completed);
        assert_eq!(info.result.as_deref(), Some((n * n).to_string().as_str()));
        assert_eq!(info.attempts.0, 1);
    }

    raw.send(8, Command::Watch(ids.clone()));
    let mut watching = false;
    let mut pushed = Vec::new();
    while !watching || pushed.len() < ids.len() {
        let frame = raw.recv();
        assert_eq!(frame.request, RequestId(8), "{frame:?}");
        match frame.reply {
            Reply::Watching => watching = true,
            Reply::Finished(infos) => pushed.extend(infos.into_iter().map(|i| i.id)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        pushed, ids,
        "finished tasks are pushed in one frame, in id order"
    );
}

/// A watch naming an id that was never handed out (0, or past the last) fails at once with
/// `UnknownTask`, names a few ids however many were asked, and registers nothing: the known
/// task it also named is not pushed when it finishes.
#[test]
fn a_watch_of_an_unknown_id_fails_at_once() {
    let cluster = Cluster::start();
    let mut raw = Raw::connect_actioner(cluster.addr());
    let (kind, message) = failure(raw.ask(1, Command::Watch(vec![TaskId(424242)])));
    assert_eq!(kind, FailureKind::UnknownTask);
    assert!(message.contains("424242"), "{message}");

    let many: Vec<TaskId> = (1_000_000..1_010_000).map(TaskId).collect();
    let (kind, message) = failure(raw.ask(2, Command::Watch(many)));
    assert_eq!(kind, FailureKind::UnknownTask);
    assert!(
        message.contains("1000000, 1000001, 1000002 and 9997 more"),
        "{message}"
    );
    assert!(
        message.len() < 200,
        "the message grew with the request: {message}"
    );

    let ids = raw.add(3, vec![spec(&example("square"), 3)], None);
    let (kind, _) = failure(raw.ask(4, Command::Watch(vec![ids[0], TaskId(0)])));
    assert_eq!(kind, FailureKind::UnknownTask);
    let reply = raw.ask(5, Command::Kill(Selection::Ids(ids.clone())));
    assert!(matches!(reply, Reply::Changed { .. }), "{reply:?}");
    // The kill's round is over once this later request is answered; nothing was pushed for
    // request 4 in between.
    let reply = raw.ask(6, Command::Show(ids[0]));
    match reply {
        Reply::Task(info) => assert_eq!(info.state, TaskState::Killed),
        other => panic!("expected the task, got {other:?}"),
    }
}

/// A keyed add sent again (on the same connection, on a new one, and after the coordinator was
/// killed with SIGKILL and started again) is answered with the ids of the first and creates
/// nothing; the same key with other tasks is refused; the table holds each task once.
#[test]
fn a_keyed_add_sent_again_returns_the_same_ids() {
    let mut cluster = Cluster::start();
    let square = example("square");
    let three: Vec<TaskSpec> = (1..=3).map(|n| spec(&square, n)).collect();
    let two: Vec<TaskSpec> = (4..=5).map(|n| spec(&square, n)).collect();
    let (first_key, second_key) = (AddKey([7; 16]), AddKey([8; 16]));

    let mut raw = Raw::connect_actioner(cluster.addr());
    let first = raw.add(1, three.clone(), Some(first_key));
    assert_eq!(first.len(), 3);
    assert_eq!(raw.add(2, three.clone(), Some(first_key)), first);
    let mut other = Raw::connect_actioner(cluster.addr());
    assert_eq!(other.add(1, three.clone(), Some(first_key)), first);
    let second = other.add(2, two.clone(), Some(second_key));
    assert_eq!(second.len(), 2);
    assert!(second[0] > first[2], "a new key adds new tasks");
    let (kind, message) = failure(other.ask(
        3,
        Command::Add {
            tasks: two.clone(),
            play: false,
            key: Some(first_key),
            watch: false,
        },
    ));
    assert_eq!(kind, FailureKind::BadRequest, "{message}");
    drop((raw, other));

    cluster.restart_coordinator(Stop::Kill);
    let mut raw = Raw::connect_actioner(cluster.addr());
    assert_eq!(raw.add(1, three, Some(first_key)), first);
    assert_eq!(raw.add(2, two, Some(second_key)), second);
    let listed: Vec<TaskId> = raw.list(3).into_iter().map(|t| t.id).collect();
    let expected: Vec<TaskId> = first.iter().chain(&second).copied().collect();
    assert_eq!(listed, expected, "the table holds each task once");
}

/// Requests sent on one connection before any answer is read — a wait that stays open, two
/// hundred adds, then a show of each added task — are each answered once under their own
/// request id with their own task, and the open wait holds none of them up.
#[test]
fn many_requests_in_flight_are_answered_by_request_id() {
    let cluster = Cluster::start();
    let mut raw = Raw::connect_actioner(cluster.addr());
    let square = example("square");
    let held = raw.add(1, vec![spec(&square, 0)], None)[0];
    raw.send(2, Command::Wait(Selection::Ids(vec![held])));

    const N: u64 = 200;
    for n in 1..=N {
        let command = Command::Add {
            tasks: vec![spec(&square, n)],
            play: false,
            key: None,
            watch: false,
        };
        raw.send(1_000 + n, command);
    }
    let mut added: BTreeMap<u64, TaskId> = BTreeMap::new();
    for _ in 0..N {
        let frame = raw.recv();
        let n = frame.request.0 - 1_000;
        assert!((1..=N).contains(&n), "an answer to no add: {frame:?}");
        match frame.reply {
            Reply::Added(ids) => {
                assert_eq!(ids.len(), 1);
                assert!(
                    added.insert(n, ids[0]).is_none(),
                    "request {n} answered twice"
                );
            }
            other => panic!("expected Added, got {other:?}"),
        }
    }
    let distinct: BTreeSet<TaskId> = added.values().copied().collect();
    assert_eq!(distinct.len(), N as usize, "every add got its own task");

    for (n, id) in &added {
        raw.send(2_000 + n, Command::Show(*id));
    }
    let mut shown = BTreeSet::new();
    for _ in 0..N {
        let frame = raw.recv();
        let n = frame.request.0 - 2_000;
        match frame.reply {
            Reply::Task(info) => {
                assert_eq!(info.id, added[&n], "request {n} got another task");
                assert_eq!(info.spec.args, format!("[{n}]"));
                assert!(shown.insert(n), "request {n} answered twice");
            }
            other => panic!(
                "expected a task for request {}, got {other:?}",
                frame.request.0
            ),
        }
    }

    raw.send(3, Command::Kill(Selection::Ids(vec![held])));
    let mut answered = BTreeSet::new();
    while answered.len() < 2 {
        let frame = raw.recv();
        match (frame.request.0, frame.reply) {
            (2, Reply::Waited(summary)) => {
                assert_eq!(summary.counts, vec![(TaskState::Killed, 1)]);
                assert_eq!(summary.unsuccessful.len(), 1);
                assert_eq!(summary.unsuccessful[0].id, held);
                assert_eq!(summary.unsuccessful[0].state, TaskState::Killed);
            }
            (3, Reply::Changed { changed, .. }) => assert_eq!(changed, vec![held]),
            other => panic!("unexpected {other:?}"),
        }
        answered.insert(frame.request.0);
    }
}
