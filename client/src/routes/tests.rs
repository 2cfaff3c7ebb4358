//! The routing rules alone: pages, errors, strays, pushes before and after `Added`, resends.

use super::*;
use tatzelwurm_proto::actioner::Failure;
use tatzelwurm_proto::task::{TaskSpec, TaskState};

fn info(id: u64) -> TaskInfo {
    crate::fake_coordinator::task(id, TaskState::Completed)
}

fn end(id: u64) -> TaskEnd {
    TaskEnd::from(&info(id))
}

fn watching_add() -> Command {
    Command::Add {
        tasks: vec![TaskSpec {
            function: "m:f".into(),
            args: "[]".into(),
            kwargs: "{}".into(),
            ..TaskSpec::default()
        }],
        play: true,
        key: None,
        watch: true,
    }
}

fn frame(request: u64, reply: Reply) -> ToActioner {
    ToActioner {
        request: RequestId(request),
        reply,
    }
}

fn ids(infos: &[TaskInfo]) -> Vec<u64> {
    infos.iter().map(|i| i.id.0).collect()
}

/// Requests are numbered from 1; a list's pages come back as one answer to the right caller.
#[test]
fn pages_are_gathered() {
    let mut routes = Routes::new();
    let first = routes.add(
        Command::List {
            states: vec![],
            queue: None,
            after: None,
            limit: 0,
        },
        "list",
        None,
    );
    let second = routes.add(Command::Workers, "workers", None);
    assert_eq!(
        (first.request, second.request),
        (RequestId(1), RequestId(2))
    );
    let page = |ids: &[u64], more| Reply::Tasks {
        tasks: ids.iter().map(|i| info(*i)).collect(),
        more,
    };
    assert_eq!(
        routes.on_reply(frame(1, page(&[1, 2], true))),
        Routed::Nothing
    );
    assert!(matches!(
        routes.on_reply(frame(2, Reply::Workers(vec![]))),
        Routed::Answer { to: "workers", .. }
    ));
    let Routed::Answer {
        to,
        answer: Ok(Reply::Tasks { tasks, more: false }),
        ..
    } = routes.on_reply(frame(1, page(&[3], false)))
    else {
        panic!("no whole list");
    };
    assert_eq!((to, ids(&tasks)), ("list", vec![1, 2, 3]));
    assert_eq!(routes.len(), 0);
}

/// An error ends a request with the failure; an answer to no request is a stray.
#[test]
fn errors_and_strays() {
    let mut routes = Routes::new();
    routes.add(Command::Show(TaskId(9)), 1, None);
    let failure = Failure::unknown_task("there is no task 9");
    assert_eq!(
        routes.on_reply(frame(1, Reply::Error(failure.clone()))),
        Routed::Answer {
            to: 1,
            answer: Err(failure),
            finished: vec![],
            watch_again: vec![]
        }
    );
    assert_eq!(
        routes.on_reply(frame(1, Reply::Workers(vec![]))),
        Routed::Stray(RequestId(1))
    );
}

/// A watched task's end is forwarded once; an unwatched one's not at all.
#[test]
fn ends_are_forwarded_once() {
    let mut routes: Routes<u8> = Routes::new();
    routes.add(Command::Watch(vec![TaskId(4), TaskId(5)]), 0, None);
    assert_eq!(
        routes.on_reply(frame(1, Reply::Finished(vec![end(4), end(6)]))),
        Routed::Finished(vec![end(4)])
    );
    assert!(matches!(
        routes.on_reply(frame(1, Reply::Watching)),
        Routed::Answer { .. }
    ));
    assert_eq!(
        routes.on_reply(frame(1, Reply::Finished(vec![end(4)]))),
        Routed::Nothing
    );
    assert_eq!(routes.watched(), vec![TaskId(5)]);
}

/// An end pushed before its add's `Added` is handed out right after that `Added`, and the
/// add's other tasks are watched from then on.
#[test]
fn an_end_before_added_follows_it() {
    let mut routes: Routes<u8> = Routes::new();
    routes.add(watching_add(), 7, None);
    assert_eq!(
        routes.on_reply(frame(1, Reply::Finished(vec![end(11)]))),
        Routed::Nothing
    );
    assert_eq!(
        routes.on_reply(frame(1, Reply::Added(vec![TaskId(10), TaskId(11)]))),
        Routed::Answer {
            to: 7,
            answer: Ok(Reply::Added(vec![TaskId(10), TaskId(11)])),
            finished: vec![end(11)],
            watch_again: vec![]
        }
    );
    assert_eq!(routes.watched(), vec![TaskId(10)]);
    assert_eq!(
        routes.on_reply(frame(1, Reply::Finished(vec![end(10)]))),
        Routed::Finished(vec![end(10)])
    );
}

/// After a drop, requests wait from the drop; on the next connection they are sent again in
/// order (abandoned ones forgotten), and a re-sent watching add asks to watch its tasks again.
#[test]
fn resend_after_a_drop() {
    let mut routes: Routes<&str> = Routes::new();
    let t0 = Instant::now();
    routes.add(Command::Workers, "gone", None);
    routes.add(watching_add(), "add", None);
    routes.add(
        Command::List {
            states: vec![],
            queue: None,
            after: None,
            limit: 0,
        },
        "list",
        None,
    );
    routes.on_reply(frame(
        3,
        Reply::Tasks {
            tasks: vec![info(1)],
            more: true,
        },
    ));
    routes.lost(t0);
    assert_eq!(
        routes.next_expiry(Duration::from_secs(30)),
        Some(t0 + Duration::from_secs(30))
    );
    let again = routes.resend(|to| *to == "gone");
    let sent: Vec<u64> = again.iter().map(|m| m.request.0).collect();
    assert_eq!(sent, vec![2, 3]);
    assert_eq!(routes.next_expiry(Duration::from_secs(30)), None);
    let Routed::Answer { watch_again, .. } =
        routes.on_reply(frame(2, Reply::Added(vec![TaskId(1)])))
    else {
        panic!("no answer");
    };
    assert_eq!(watch_again, vec![TaskId(1)]);
    // The page before the drop was dropped: only the new pages make the list.
    let Routed::Answer {
        answer: Ok(Reply::Tasks { tasks, .. }),
        ..
    } = routes.on_reply(frame(
        3,
        Reply::Tasks {
            tasks: vec![info(1), info(2)],
            more: false,
        },
    ))
    else {
        panic!("no list");
    };
    assert_eq!(ids(&tasks), vec![1, 2]);
}

/// A request that waited the limit for a connection expires; one that waited less does not.
#[test]
fn stalled_requests_expire() {
    let mut routes: Routes<u8> = Routes::new();
    let t0 = Instant::now();
    let limit = Duration::from_secs(30);
    routes.add(Command::Workers, 1, Some(t0));
    routes.add(Command::Workers, 2, Some(t0 + Duration::from_secs(10)));
    assert!(routes
        .expired(t0 + Duration::from_secs(29), limit)
        .is_empty());
    assert_eq!(routes.expired(t0 + limit, limit), vec![1]);
    assert_eq!(routes.drain(), vec![2]);
}

/// A failed watch registers nothing.
#[test]
fn failed_watch_unwatches() {
    let mut routes: Routes<u8> = Routes::new();
    routes.add(Command::Watch(vec![TaskId(3)]), 1, None);
    routes.on_reply(frame(1, Reply::Error(Failure::unknown_task("no task 3"))));
    assert!(routes.watched().is_empty());
}

fn events_reply(seqs: &[u64], more: bool) -> Reply {
    use tatzelwurm_proto::event::{Event, EventKind};
    Reply::Events {
        events: seqs
            .iter()
            .map(|seq| Event {
                seq: *seq,
                at: tatzelwurm_proto::task::Timestamp(0),
                kind: EventKind::Purged { count: 1 },
            })
            .collect(),
        more,
    }
}

fn follow_events() -> Command {
    Command::Events {
        from: EventsFrom::Start,
        follow: true,
        filter: Default::default(),
    }
}

/// Events frames with `more` are handed on one by one as pieces; the last one (or an error)
/// ends the request.
#[test]
fn event_frames_are_pieces_until_the_last() {
    let mut routes = Routes::new();
    routes.add(follow_events(), "events", None);
    let Routed::Piece { request, reply } = routes.on_reply(frame(1, events_reply(&[1, 2], true)))
    else {
        panic!("not a piece");
    };
    assert_eq!(request, RequestId(1));
    assert_eq!(reply, events_reply(&[1, 2], true));
    assert_eq!(routes.receiver(RequestId(1)), Some(&"events"));
    assert!(matches!(
        routes.on_reply(frame(1, events_reply(&[3], false))),
        Routed::Answer {
            to: "events",
            answer: Ok(Reply::Events { more: false, .. }),
            ..
        }
    ));
    assert_eq!(routes.len(), 0);
    routes.add(follow_events(), "again", None);
    let lagged = Failure::new(tatzelwurm_proto::actioner::FailureKind::Lagged, "slow");
    assert!(matches!(
        routes.on_reply(frame(2, Reply::Error(lagged))),
        Routed::Answer {
            to: "again",
            answer: Err(_),
            ..
        }
    ));
}

/// Output frames without `done` are pieces; the one with `done` is the answer.
#[test]
fn log_frames_are_pieces_until_done() {
    let mut routes = Routes::new();
    routes.add(
        Command::Logs {
            task: TaskId(4),
            follow: true,
        },
        "logs",
        None,
    );
    let piece = Reply::Logs {
        chunks: Vec::new(),
        done: None,
    };
    assert!(matches!(
        routes.on_reply(frame(1, piece)),
        Routed::Piece { .. }
    ));
    let last = Reply::Logs {
        chunks: Vec::new(),
        done: Some(TaskState::Completed),
    };
    assert!(matches!(
        routes.on_reply(frame(1, last)),
        Routed::Answer {
            to: "logs",
            answer: Ok(_),
            ..
        }
    ));
}

/// After a drop, an events request is re-sent from after the last event handed on; a logs
/// stream that had begun is given back to be failed, one that had not is re-sent as it was.
#[test]
fn streams_across_a_drop() {
    let mut routes: Routes<&str> = Routes::new();
    routes.add(follow_events(), "events", None);
    let logs = |task| Command::Logs {
        task: TaskId(task),
        follow: true,
    };
    routes.add(logs(7), "begun", None);
    routes.add(logs(8), "fresh", None);
    routes.on_reply(frame(1, events_reply(&[5, 6], true)));
    routes.on_reply(frame(1, events_reply(&[], true)));
    routes.on_reply(frame(
        2,
        Reply::Logs {
            chunks: Vec::new(),
            done: None,
        },
    ));
    assert_eq!(routes.lost(Instant::now()), vec!["begun"]);
    let again = routes.resend(|_| false);
    let commands: Vec<&Command> = again.iter().map(|m| &m.command).collect();
    assert_eq!(
        commands,
        vec![
            &Command::Events {
                from: EventsFrom::After(6),
                follow: true,
                filter: Default::default(),
            },
            &logs(8),
        ]
    );
    assert_eq!(again[0].request, RequestId(1));
}

/// A forgotten stream's later frames are strays.
#[test]
fn forgotten_streams_are_strays() {
    let mut routes: Routes<&str> = Routes::new();
    routes.add(follow_events(), "events", None);
    assert_eq!(routes.forget(RequestId(1)), Some("events"));
    assert_eq!(
        routes.on_reply(frame(1, events_reply(&[1], true))),
        Routed::Stray(RequestId(1))
    );
}
