//! The routing rules alone: pages, errors, strays, pushes before and after `Added`, resends.

use super::*;
use tatzelwurm_proto::actioner::Failure;
use tatzelwurm_proto::task::{TaskSpec, TaskState};

fn info(id: u64) -> TaskInfo {
    crate::fake_coordinator::task(id, TaskState::Completed)
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
        routes.on_reply(frame(1, Reply::Finished(vec![info(4), info(6)]))),
        Routed::Finished(vec![info(4)])
    );
    assert!(matches!(
        routes.on_reply(frame(1, Reply::Watching)),
        Routed::Answer { .. }
    ));
    assert_eq!(
        routes.on_reply(frame(1, Reply::Finished(vec![info(4)]))),
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
        routes.on_reply(frame(1, Reply::Finished(vec![info(11)]))),
        Routed::Nothing
    );
    assert_eq!(
        routes.on_reply(frame(1, Reply::Added(vec![TaskId(10), TaskId(11)]))),
        Routed::Answer {
            to: 7,
            answer: Ok(Reply::Added(vec![TaskId(10), TaskId(11)])),
            finished: vec![info(11)],
            watch_again: vec![]
        }
    );
    assert_eq!(routes.watched(), vec![TaskId(10)]);
    assert_eq!(
        routes.on_reply(frame(1, Reply::Finished(vec![info(10)]))),
        Routed::Finished(vec![info(10)])
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
