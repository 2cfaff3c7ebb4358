//! Tests of `Client` and `Pipeline` against the scripted coordinator in `fake_coordinator`:
//! real sockets, real frames, real handshake.

use super::*;
use crate::fake_coordinator::{task, FakeCoordinator, Greeting, Seen, Step};
use crate::{ErrorClass, Event};
use std::time::Duration;
use tatzelwurm_proto::actioner::{Failure, FromActioner, TaskEnd};

fn spec(n: u32) -> TaskSpec {
    TaskSpec {
        function: "m:f".into(),
        args: format!("[{n}]"),
        kwargs: "{}".into(),
        ..TaskSpec::default()
    }
}

fn opts(addr: &str, reconnect: bool) -> ConnectOptions {
    ConnectOptions {
        address: addr.into(),
        token: None,
        name: "test".into(),
        connect_timeout: Duration::from_secs(2),
        reconnect,
        tls: None,
        tls_error: None,
    }
}

fn fast() -> Tuning {
    Tuning {
        reconnect_limit: Duration::from_secs(3),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        adds_in_flight: 2,
    }
}

async fn connect(addr: &str) -> Client {
    Client::connect(opts(addr, false)).await.unwrap()
}

/// Answers adds with ids counting from `base`.
fn added(tasks: usize, base: u64) -> Reply {
    Reply::Added((0..tasks as u64).map(|i| TaskId(base + i)).collect())
}

/// The next event, within 5 s.
async fn next(events: &mut UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the events channel is open")
}

/// Each request carries a new, increasing id that the reply echoes, and an add carries a key.
#[tokio::test]
async fn requests_carry_increasing_ids_and_adds_a_key() {
    let mut next = 0;
    let fake = FakeCoordinator::start(move |command| {
        next += 1;
        match command {
            Command::Add { tasks, .. } => vec![Step::Reply(added(tasks.len(), next * 10))],
            other => panic!("unexpected {other:?}"),
        }
    })
    .await;
    let client = connect(&fake.addr).await;
    assert_eq!(
        client.add(vec![spec(1), spec(2)], false).await.unwrap(),
        vec![TaskId(10), TaskId(11)]
    );
    assert_eq!(
        client.add(vec![spec(3)], true).await.unwrap(),
        vec![TaskId(20)]
    );
    drop(client);
    let seen = fake.requests().await;
    let ids: Vec<u64> = seen.iter().map(|m| m.request.0).collect();
    assert_eq!(ids, vec![1, 2]);
    let keys: Vec<Option<AddKey>> = seen
        .iter()
        .map(|m| match &m.command {
            Command::Add {
                key, watch: false, ..
            } => *key,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(keys[0].is_some() && keys[1].is_some() && keys[0] != keys[1]);
}

/// A list answered in three pages comes back as one vector, in order.
#[tokio::test]
async fn list_collects_every_page() {
    let fake = FakeCoordinator::start(|_| {
        vec![
            Step::Reply(Reply::Tasks {
                tasks: vec![task(1, TaskState::Ready)],
                more: true,
            }),
            Step::Reply(Reply::Tasks {
                tasks: vec![],
                more: true,
            }),
            Step::Reply(Reply::Tasks {
                tasks: vec![task(2, TaskState::Running), task(3, TaskState::Completed)],
                more: false,
            }),
        ]
    })
    .await;
    let client = connect(&fake.addr).await;
    let tasks = client.list(vec![TaskState::Ready]).await.unwrap();
    let ids: Vec<u64> = tasks.iter().map(|t| t.id.0).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(client.list(vec![]).await.unwrap().len(), 3);
}

/// The coordinator's error sentence is what the caller reads, with the class of its kind.
#[tokio::test]
async fn error_reply_is_the_coordinators_sentence() {
    let fake = FakeCoordinator::start(|_| {
        vec![Step::Reply(Reply::Error(Failure::unknown_task(
            "there is no task 7",
        )))]
    })
    .await;
    let client = connect(&fake.addr).await;
    let err = client.show(TaskId(7)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::UnknownTask);
    assert_eq!(err.to_string(), "there is no task 7");
}

/// A refused handshake reports the coordinator's reason.
#[tokio::test]
async fn refusal_carries_the_reason() {
    let fake = FakeCoordinator::greeting(
        Greeting::Refuse("protocol version 9 is not supported".into()),
        |_| vec![],
    )
    .await;
    let err = Client::connect(opts(&fake.addr, true)).await.err().unwrap();
    assert_eq!(err.class(), ErrorClass::Refused);
    assert!(err.to_string().contains("protocol version 9"), "{err}");
}

/// A server that takes the connection but never answers the hello fails within the limit.
#[tokio::test]
async fn silent_server_times_out() {
    let fake = FakeCoordinator::greeting(Greeting::Silent, |_| vec![]).await;
    let mut options = opts(&fake.addr, false);
    options.connect_timeout = Duration::from_millis(200);
    let err = Client::connect(options).await.err().unwrap();
    assert!(matches!(err, ClientError::Silent { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Unavailable);
}

/// Without reconnect, a coordinator that closes mid-request is reported at once in one
/// sentence, and so is every later request.
#[tokio::test]
async fn close_mid_request_is_reported() {
    let fake = FakeCoordinator::start(|_| vec![Step::Close]).await;
    let client = connect(&fake.addr).await;
    let err = client.workers().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the coordinator at {} closed the connection before answering; check that it is running", fake.addr)
    );
    assert_eq!(err.class(), ErrorClass::Unavailable);
    assert_eq!(client.workers().await.unwrap_err(), err);
}

/// A reply to no request under way is skipped; the real answer still arrives.
#[tokio::test]
async fn stray_replies_are_skipped() {
    let fake = FakeCoordinator::start(|_| {
        vec![
            Step::ReplyAs(99, Reply::Workers(vec![])),
            Step::Reply(Reply::Added(vec![TaskId(5)])),
        ]
    })
    .await;
    let client = connect(&fake.addr).await;
    assert_eq!(
        client.add(vec![spec(1)], false).await.unwrap(),
        vec![TaskId(5)]
    );
}

/// A reply of the wrong kind names both kinds instead of being misread.
#[tokio::test]
async fn wrong_reply_kind_is_named() {
    let fake = FakeCoordinator::start(|_| vec![Step::Reply(Reply::Workers(vec![]))]).await;
    let client = connect(&fake.addr).await;
    let err = client.wait(Selection::All).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("answered Workers where Waited was expected"),
        "{err}"
    );
}

/// Nothing listening at the address: one sentence naming it and TATZELWURM_COORDINATOR,
/// within the connect timeout.
#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = Client::connect(opts(&addr, true)).await.err().unwrap();
    assert!(err.is_unreachable());
    assert_eq!(err.class(), ErrorClass::Unavailable);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot reach the coordinator at {addr} (connection refused)"
        )) && text.contains("TATZELWURM_COORDINATOR"),
        "{text}"
    );
}

/// Something that answers our hello like an HTTP server is named as not a coordinator.
#[tokio::test]
async fn http_server_is_not_a_coordinator() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = stream.read(&mut buf).await;
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let err = Client::connect(opts(&addr, false)).await.err().unwrap();
    assert!(matches!(err, ClientError::NotCoordinator { .. }), "{err}");
    server.await.unwrap();
}

/// Requests share the connection: a wait sent first is answered after a later request, and
/// each caller gets its own answer.
#[tokio::test]
async fn requests_are_multiplexed() {
    let mut wait_id = None;
    let fake = FakeCoordinator::serve(Greeting::Welcome, 1, move |seen: Seen<'_>| {
        match &seen.message.command {
            Command::Wait(_) => {
                wait_id = Some(seen.message.request.0);
                vec![]
            }
            Command::Workers => vec![
                Step::Reply(Reply::Workers(vec![])),
                Step::ReplyAs(
                    wait_id.expect("the wait came first"),
                    Reply::Waited(WaitSummary {
                        counts: vec![(TaskState::Failed, 1)],
                        unsuccessful: vec![task(1, TaskState::Failed)],
                        earlier_unsuccessful: 0,
                    }),
                ),
            ],
            other => panic!("{other:?}"),
        }
    })
    .await;
    let client = connect(&fake.addr).await;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.wait(Selection::All).await })
    };
    // Let the wait reach the coordinator first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(client.workers().await.unwrap().is_empty());
    let waited = waiter.await.unwrap().unwrap();
    assert_eq!(waited.total(), 1);
    assert_eq!(waited.unsuccessful[0].id, TaskId(1));
}

/// An add whose connection drops before its answer is sent again, with the same key, on the
/// next connection, and its caller gets the ids once.
#[tokio::test]
async fn a_dropped_add_is_resent_with_its_key() {
    let fake = FakeCoordinator::serve(Greeting::Welcome, 2, |seen: Seen<'_>| {
        match (seen.connection, &seen.message.command) {
            (0, Command::Add { .. }) => vec![Step::Close],
            (1, Command::Add { tasks, .. }) => vec![Step::Reply(added(tasks.len(), 40))],
            other => panic!("{:?}", other.1),
        }
    })
    .await;
    let client = Client::connect_tuned(opts(&fake.addr, true), fast())
        .await
        .unwrap();
    let ids = client.add(vec![spec(1), spec(2)], true).await.unwrap();
    assert_eq!(ids, vec![TaskId(40), TaskId(41)]);
    client.close().await;
    let seen: Vec<FromActioner> = fake.requests().await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].command, seen[1].command, "the same add, same key");
    assert!(matches!(seen[0].command, Command::Add { key: Some(_), .. }));
}

/// A request whose connection does not come back within the limit fails `Unavailable`, in
/// a sentence naming the address and the limit.
#[tokio::test]
async fn a_connection_that_stays_away_fails_the_request() {
    let fake = FakeCoordinator::start(|_| vec![Step::Close]).await;
    let mut tuning = fast();
    tuning.reconnect_limit = Duration::from_millis(300);
    let client = Client::connect_tuned(opts(&fake.addr, true), tuning)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = client.workers().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{err}");
    assert_eq!(err.class(), ErrorClass::Unavailable);
    assert!(
        err.to_string().contains(&fake.addr)
            && err.to_string().contains("did not come back within"),
        "{err}"
    );
}

/// A request over the frame limit is refused before anything is sent, and the connection
/// stays usable.
#[tokio::test]
async fn a_request_too_large_is_refused_before_sending() {
    let fake = FakeCoordinator::start(|_| vec![Step::Reply(Reply::Workers(vec![]))]).await;
    let client = connect(&fake.addr).await;
    let mut huge = spec(0);
    huge.args = format!("[\"{}\"]", "x".repeat(70_000_000));
    let err = client.add(vec![huge], true).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::TooLarge);
    assert!(err.to_string().contains("64 MiB"), "{err}");
    client.workers().await.unwrap();
    drop(client);
    let seen = fake.requests().await;
    assert_eq!(seen.len(), 1, "only the workers request was sent");
}

/// Submits become watched, keyed adds; a task's end pushed before its add's `Added` comes
/// out after it; flush returns once everything is acknowledged.
#[tokio::test]
async fn pipeline_reports_ids_then_ends() {
    let mut base = 100;
    let fake = FakeCoordinator::start(move |command| match command {
        Command::Add {
            tasks,
            watch: true,
            key: Some(_),
            ..
        } => {
            let reply = added(tasks.len(), base);
            let first = TaskEnd::from(&task(base, TaskState::Completed));
            base += 100;
            vec![
                Step::Reply(Reply::Finished(vec![first])),
                Step::Reply(reply),
            ]
        }
        other => panic!("{other:?}"),
    })
    .await;
    let client = connect(&fake.addr).await;
    let (pipeline, mut events) = client.pipeline(1000).unwrap();
    assert!(client.pipeline(10).is_none(), "one pipeline per client");
    let mut tickets = Vec::new();
    for n in 0..50 {
        tickets.push(pipeline.submit(spec(n), true).await.unwrap());
    }
    assert_eq!(tickets, (1..=50).collect::<Vec<u64>>());
    pipeline.flush().await.unwrap();
    let mut named = 0;
    let mut ended = Vec::new();
    while named < 50 {
        match next(&mut events).await {
            Event::Added { first, ids } => {
                assert_eq!(first, named as u64 + 1);
                named += ids.len();
                assert!(ids.iter().all(|id| !ended.contains(id)));
            }
            Event::Finished(infos) => ended.extend(infos.iter().map(|i| i.id)),
            other => panic!("{other:?}"),
        }
    }
    drop((client, pipeline));
    let adds = fake.requests().await.len();
    assert!(
        adds < 50,
        "{adds} adds for 50 submits: submits were not batched"
    );
}

/// The window refuses a submit while that many are unacknowledged; blocking submits from a
/// thread go on once room is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_holds_back_submits() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::Add { tasks, .. } => vec![Step::Reply(added(tasks.len(), 1))],
        other => panic!("{other:?}"),
    })
    .await;
    let client = connect(&fake.addr).await;
    let (pipeline, _events) = client.pipeline(2).unwrap();
    let blocking = pipeline.clone();
    let first = tokio::task::spawn_blocking(move || {
        blocking.submit_many_blocking((0..20).map(spec).collect(), false)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(first, 1);
    pipeline.flush().await.unwrap();
    // Fill the window with tasks the coordinator will not answer quickly enough to matter.
    let _ = pipeline.try_submit(spec(1), true).unwrap();
    let _ = pipeline.try_submit(spec(2), true);
    let mut refused = false;
    for n in 0..100 {
        if pipeline.try_submit(spec(n), true).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the window of 2 never filled");
    pipeline.flush().await.unwrap();
}

/// A `Bulk` sends each part as it is pushed: its first add reaches the coordinator while the
/// caller still holds the bulk and has not written the next part. Its tickets follow each
/// other, and a submit from another thread takes the ticket after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_sends_each_part_as_it_is_pushed() {
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let fake = FakeCoordinator::start(move |command| match command {
        Command::Add { tasks, .. } => {
            let _ = seen_tx.send(tasks.len());
            vec![Step::Reply(added(tasks.len(), 1))]
        }
        other => panic!("{other:?}"),
    })
    .await;
    let client = connect(&fake.addr).await;
    let (pipeline, mut events) = client.pipeline(1_000).unwrap();
    let (bulk_side, other_side) = (pipeline.clone(), pipeline.clone());
    let (first, other) = tokio::task::spawn_blocking(move || {
        let mut bulk = bulk_side.bulk();
        bulk.push((0..3).map(spec).collect(), true).unwrap();
        let sent = seen_rx.recv_timeout(Duration::from_secs(5));
        assert_eq!(
            sent,
            Ok(3),
            "the first part was not sent while the bulk went on"
        );
        // Not played: it never joins the bulk's last add, whenever it is queued.
        let other = std::thread::spawn(move || other_side.submit_blocking(spec(99), false));
        bulk.push((3..5).map(spec).collect(), true).unwrap();
        let first = bulk.first();
        drop(bulk);
        (first, other.join().unwrap().unwrap())
    })
    .await
    .unwrap();
    assert_eq!((first, other), (1, 6));
    let mut added = Vec::new();
    while added.len() < 3 {
        match next(&mut events).await {
            Event::Added { first, ids } => added.push((first, ids.len())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(added, vec![(1, 3), (4, 2), (6, 1)]);
}

/// A watch registers; its ends come as events; after a dropped connection the watch is made
/// again, and the end that happened meanwhile arrives once.
#[tokio::test]
async fn watches_survive_a_reconnect() {
    let fake = FakeCoordinator::serve(Greeting::Welcome, 2, |seen: Seen<'_>| {
        match (seen.connection, &seen.message.command) {
            (0, Command::Watch(ids)) => {
                assert_eq!(ids, &vec![TaskId(5), TaskId(6)]);
                vec![
                    Step::Reply(Reply::Watching),
                    Step::Reply(Reply::Finished(vec![TaskEnd::from(&task(
                        6,
                        TaskState::Failed,
                    ))])),
                ]
            }
            (0, Command::Workers) => vec![Step::Close],
            (1, Command::Workers) => vec![Step::Reply(Reply::Workers(vec![]))],
            (1, Command::Watch(ids)) => {
                assert_eq!(ids, &vec![TaskId(5)], "only the unfinished one again");
                vec![
                    Step::Reply(Reply::Watching),
                    Step::Reply(Reply::Finished(vec![TaskEnd::from(&task(
                        5,
                        TaskState::Completed,
                    ))])),
                    Step::Reply(Reply::Finished(vec![TaskEnd::from(&task(
                        5,
                        TaskState::Completed,
                    ))])),
                ]
            }
            other => panic!("{:?}", other.1),
        }
    })
    .await;
    let client = Client::connect_tuned(opts(&fake.addr, true), fast())
        .await
        .unwrap();
    let (pipeline, mut events) = client.pipeline(10).unwrap();
    pipeline.watch(vec![TaskId(5), TaskId(6)]).await.unwrap();
    let Event::Finished(first) = next(&mut events).await else {
        panic!("not an end");
    };
    assert_eq!(first[0].id, TaskId(6));
    client.workers().await.unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|e| matches!(e, Event::Finished(_))) {
        seen.push(next(&mut events).await);
    }
    assert!(matches!(seen[0], Event::Disconnected(_)), "{seen:?}");
    assert_eq!(seen[1], Event::Reconnected);
    let Event::Finished(infos) = &seen[2] else {
        panic!("{seen:?}");
    };
    assert_eq!(infos[0].id, TaskId(5));
    client.close().await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.recv())
            .await
            .map_or(true, |e| e.is_none()),
        "the repeated end was not forwarded"
    );
}

/// `close` fails what is under way and every later request, and ends the connection.
#[tokio::test]
async fn close_fails_what_is_under_way() {
    let fake = FakeCoordinator::start(|_| vec![]).await;
    let client = connect(&fake.addr).await;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.wait(Selection::All).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.close().await;
    let err = waiter.await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::ClientClosed { .. }), "{err}");
    assert!(client.workers().await.is_err());
    assert_eq!(fake.requests().await.len(), 1);
}

/// A pipeline add whose connection drops is re-sent with its same key after the reconnect;
/// its tickets are acknowledged once, after `Disconnected` and `Reconnected`.
#[tokio::test]
async fn pipeline_adds_survive_a_reconnect() {
    let fake = FakeCoordinator::serve(Greeting::Welcome, 2, |seen: Seen<'_>| {
        match (seen.connection, &seen.message.command) {
            (0, Command::Add { .. }) => vec![Step::Close],
            (1, Command::Add { tasks, .. }) => vec![Step::Reply(added(tasks.len(), 70))],
            // Watching the re-sent add's tasks again, in case ends were missed.
            (1, Command::Watch(_)) => vec![Step::Reply(Reply::Watching)],
            other => panic!("{:?}", other.1),
        }
    })
    .await;
    let client = Client::connect_tuned(opts(&fake.addr, true), fast())
        .await
        .unwrap();
    let (pipeline, mut events) = client.pipeline(100).unwrap();
    assert_eq!(pipeline.submit(spec(1), true).await.unwrap(), 1);
    pipeline.flush().await.unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(300), events.recv()).await
    {
        seen.push(event);
    }
    assert!(matches!(seen[0], Event::Disconnected(_)), "{seen:?}");
    assert_eq!(
        &seen[1..],
        &[
            Event::Reconnected,
            Event::Added {
                first: 1,
                ids: vec![TaskId(70)]
            }
        ]
    );
    client.close().await;
    let requests = fake.requests().await;
    let adds: Vec<&Command> = requests
        .iter()
        .map(|m| &m.command)
        .filter(|c| matches!(c, Command::Add { .. }))
        .collect();
    assert_eq!(adds.len(), 2);
    assert_eq!(adds[0], adds[1], "the same add, same key");
}

/// A listing longer than one request may answer is read request by request, each after the
/// last id of the one before, and a limit stops it early.
#[tokio::test]
async fn long_listings_are_read_page_by_page() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::List { after, limit, .. } => {
            let from = after.map_or(1, |id| id.0 + 1);
            // 10,003 tasks in all.
            let to = (from + u64::from(*limit)).min(10_004);
            vec![Step::Reply(Reply::Tasks {
                tasks: (from..to)
                    .map(|id| task(id, TaskState::Completed))
                    .collect(),
                more: false,
            })]
        }
        other => panic!("sent {other:?}"),
    })
    .await;
    let client = connect(&fake.addr).await;
    let all = client.list(vec![]).await.unwrap();
    assert_eq!(all.len(), 10_003);
    assert!(all.windows(2).all(|w| w[0].id.0 + 1 == w[1].id.0));
    let some = client
        .list_page(vec![], None, Some(TaskId(10)), 5)
        .await
        .unwrap();
    let ids: Vec<u64> = some.iter().map(|t| t.id.0).collect();
    assert_eq!(ids, vec![11, 12, 13, 14, 15]);
    drop(client);
    let asked: Vec<(Option<TaskId>, u32)> = fake
        .requests()
        .await
        .into_iter()
        .filter_map(|seen| match seen.command {
            Command::List { after, limit, .. } => Some((after, limit)),
            _ => None,
        })
        .collect();
    assert_eq!(
        asked,
        vec![
            (None, 10_000),
            (Some(TaskId(10_000)), 10_000),
            (Some(TaskId(10)), 5)
        ]
    );
}
