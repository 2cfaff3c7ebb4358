//! Tests of the operations requests against the scripted coordinator: streamed events and
//! output, resuming events after a reconnect, purge chunking, drain by name.

use super::*;
use crate::fake_coordinator::{FakeCoordinator, Greeting, Seen, Step};
use crate::options::{ConnectOptions, Tuning};
use crate::stream::STREAM_FRAMES;
use crate::{ErrorClass, Polled};
use std::time::Duration;
use tatzelwurm_proto::actioner::{Failure, FailureKind};
use tatzelwurm_proto::event::{Event, EventKind};
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::worker::{OutputChunk, OutputStream};
use tatzelwurm_proto::Attempt;

fn opts(addr: &str, reconnect: bool) -> ConnectOptions {
    let mut opts = ConnectOptions::from_env(Some(addr), "test");
    opts.token = None;
    opts.connect_timeout = Duration::from_secs(2);
    opts.reconnect = reconnect;
    opts
}

async fn connect(addr: &str, reconnect: bool) -> Client {
    let tuning = Tuning {
        reconnect_limit: Duration::from_secs(3),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        adds_in_flight: 2,
    };
    Client::connect_tuned(opts(addr, reconnect), tuning)
        .await
        .unwrap()
}

fn events(seqs: &[u64], more: bool) -> Reply {
    Reply::Events {
        events: seqs
            .iter()
            .map(|seq| Event {
                seq: *seq,
                at: Timestamp(1_000 * seq),
                kind: EventKind::Purged { count: *seq },
            })
            .collect(),
        more,
    }
}

fn seqs(batch: &[Event]) -> Vec<u64> {
    batch.iter().map(|e| e.seq).collect()
}

/// Bounds a stream read so a routing bug fails the test instead of hanging it.
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("an answer within 5 s")
}

/// An events answer in frames comes out batch by batch (empty frames skipped), remembers the
/// last seq, and ends after the frame without `more`; the request carries from, follow, filter.
#[tokio::test]
async fn events_come_batch_by_batch() {
    let fake = FakeCoordinator::start(|_| {
        vec![
            Step::Reply(events(&[1, 2], true)),
            Step::Reply(events(&[], true)),
            Step::Reply(events(&[3], false)),
        ]
    })
    .await;
    let client = connect(&fake.addr, false).await;
    let filter = EventFilter {
        task: Some(TaskId(4)),
        queue: None,
    };
    let mut stream = client.events(EventsFrom::After(0), false, filter.clone());
    assert_eq!(seqs(&within(stream.next()).await.unwrap().unwrap()), [1, 2]);
    assert_eq!(stream.last_seq(), Some(2));
    assert_eq!(seqs(&within(stream.next()).await.unwrap().unwrap()), [3]);
    assert!(within(stream.next()).await.is_none());
    assert!(matches!(stream.try_next(), Polled::Ended));
    assert_eq!(stream.last_seq(), Some(3));
    drop(client);
    let seen = fake.requests().await;
    assert_eq!(
        seen[0].command,
        Command::Events {
            from: EventsFrom::After(0),
            follow: false,
            filter
        }
    );
}

/// A refusal (events gone) is the stream's one item, with its class, and then the end.
#[tokio::test]
async fn events_gone_is_the_first_item() {
    let fake = FakeCoordinator::start(|_| {
        vec![Step::Reply(Reply::Error(Failure::new(
            FailureKind::EventsGone,
            "the oldest event kept is 50",
        )))]
    })
    .await;
    let client = connect(&fake.addr, false).await;
    let mut stream = client.events(EventsFrom::After(3), true, EventFilter::default());
    let err = within(stream.next()).await.unwrap().unwrap_err();
    assert_eq!(err.class(), ErrorClass::EventsGone);
    assert_eq!(err.to_string(), "the oldest event kept is 50");
    assert!(within(stream.next()).await.is_none());
}

/// With reconnect, a followed stream whose connection drops is asked again after the last
/// event it handed out, under its same request id: nothing twice, nothing missed.
#[tokio::test]
async fn followed_events_resume_after_a_reconnect() {
    let fake = FakeCoordinator::serve(Greeting::Welcome, 2, |seen: Seen<'_>| {
        match seen.connection {
            0 => vec![Step::Reply(events(&[1, 2], true)), Step::Close],
            _ => {
                assert_eq!(
                    seen.message.command,
                    Command::Events {
                        from: EventsFrom::After(2),
                        follow: true,
                        filter: EventFilter::default(),
                    }
                );
                vec![Step::Reply(events(&[3], true)), Step::Close]
            }
        }
    })
    .await;
    let client = connect(&fake.addr, true).await;
    let mut stream = client.events(EventsFrom::Start, true, EventFilter::default());
    assert_eq!(seqs(&within(stream.next()).await.unwrap().unwrap()), [1, 2]);
    assert_eq!(seqs(&within(stream.next()).await.unwrap().unwrap()), [3]);
    client.close().await;
    let err = within(stream.next()).await.unwrap().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Internal, "{err}");
    drop(client);
    let seen = fake.requests().await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].request, seen[1].request);
}

fn chunk(task: u64, stream: OutputStream, text: &str) -> OutputChunk {
    OutputChunk {
        task: TaskId(task),
        attempt: Attempt(1),
        stream,
        text: text.into(),
    }
}

/// A task's output comes page by page; the page with `done` ends it, with the task's state.
#[tokio::test]
async fn logs_come_page_by_page() {
    let fake = FakeCoordinator::start(|command| {
        assert_eq!(
            command,
            &Command::Logs {
                task: TaskId(7),
                follow: true
            }
        );
        vec![
            Step::Reply(Reply::Logs {
                chunks: vec![chunk(7, OutputStream::Stdout, "one\n")],
                done: None,
            }),
            Step::Reply(Reply::Logs {
                chunks: vec![chunk(7, OutputStream::Stderr, "two\n")],
                done: Some(TaskState::Completed),
            }),
        ]
    })
    .await;
    let client = connect(&fake.addr, false).await;
    let mut stream = client.logs(TaskId(7), true);
    let first = within(stream.next()).await.unwrap().unwrap();
    assert_eq!(first.chunks[0].text, "one\n");
    assert_eq!(first.done, None);
    let last = within(stream.next()).await.unwrap().unwrap();
    assert_eq!(last.chunks[0].stream, OutputStream::Stderr);
    assert_eq!(last.done, Some(TaskState::Completed));
    assert!(within(stream.next()).await.is_none());
}

/// A followed output stream that has begun ends with a sentence when the connection drops,
/// even with reconnect (asking again would repeat its output), and the client goes on.
#[tokio::test]
async fn a_drop_ends_begun_logs() {
    let fake = FakeCoordinator::serve(Greeting::Welcome, 2, |seen: Seen<'_>| {
        match (seen.connection, &seen.message.command) {
            (0, Command::Logs { .. }) => vec![
                Step::Reply(Reply::Logs {
                    chunks: vec![chunk(7, OutputStream::Stdout, "one\n")],
                    done: None,
                }),
                Step::Close,
            ],
            (_, Command::Workers) => vec![Step::Reply(Reply::Workers(Vec::new()))],
            (_, other) => panic!("unexpected {other:?}"),
        }
    })
    .await;
    let client = connect(&fake.addr, true).await;
    let mut stream = client.logs(TaskId(7), true);
    assert!(within(stream.next()).await.unwrap().is_ok());
    let err = within(stream.next()).await.unwrap().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unavailable, "{err}");
    assert!(within(client.workers()).await.unwrap().is_empty());
}

/// A stream nobody reads is cut off with `Lagged` once the client holds too many of its
/// frames, with where to follow on; other requests keep working meanwhile.
#[tokio::test]
async fn an_unread_stream_is_cut_off() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::Events { .. } => (1..=STREAM_FRAMES as u64 + 10)
            .map(|seq| Step::Reply(events(&[seq], true)))
            .collect(),
        Command::Workers => vec![Step::Reply(Reply::Workers(Vec::new()))],
        other => panic!("unexpected {other:?}"),
    })
    .await;
    let client = connect(&fake.addr, false).await;
    let mut stream = client.events(EventsFrom::Start, true, EventFilter::default());
    // The workers answer comes after every events frame, so the stream is full by then.
    assert!(within(client.workers()).await.unwrap().is_empty());
    let mut read = 0;
    let err = loop {
        match within(stream.next()).await.unwrap() {
            Ok(batch) => read += batch.len(),
            Err(err) => break err,
        }
    };
    assert_eq!(read, STREAM_FRAMES - 1);
    assert_eq!(err.class(), ErrorClass::Lagged);
    let last = STREAM_FRAMES - 1;
    assert!(
        err.to_string()
            .contains(&format!("after event {last}; follow again from there")),
        "{err}"
    );
    assert!(within(stream.next()).await.is_none());
    assert!(within(client.workers()).await.unwrap().is_empty());
}

/// A purge of more ids than a request carries goes as several, their counts added up; a
/// finished-before purge is one request.
#[tokio::test]
async fn purge_is_chunked_and_summed() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::Purge(PurgeSelection::Ids(ids)) => vec![Step::Reply(Reply::Purged {
            purged: ids.len() as u64 - 1,
            unchanged: vec![(ids[0], Some(TaskState::Running))],
        })],
        Command::Purge(PurgeSelection::FinishedBefore { .. }) => {
            vec![Step::Reply(Reply::Purged {
                purged: 5,
                unchanged: Vec::new(),
            })]
        }
        other => panic!("unexpected {other:?}"),
    })
    .await;
    let client = connect(&fake.addr, false).await;
    let ids: Vec<TaskId> = (1..=MAX_IDS_PER_REQUEST as u64 + 1).map(TaskId).collect();
    let purged = client.purge(PurgeSelection::Ids(ids)).await.unwrap();
    assert_eq!(purged.purged, MAX_IDS_PER_REQUEST as u64 - 1);
    assert_eq!(
        purged.unchanged,
        vec![
            (TaskId(1), Some(TaskState::Running)),
            (
                TaskId(MAX_IDS_PER_REQUEST as u64 + 1),
                Some(TaskState::Running)
            )
        ]
    );
    let before = PurgeSelection::FinishedBefore {
        before: Timestamp(9),
        states: vec![TaskState::Failed],
    };
    assert_eq!(client.purge(before).await.unwrap().purged, 5);
    drop(client);
    assert_eq!(fake.requests().await.len(), 3);
}

/// Drain by name answers with the drained workers; an unknown name is `UnknownWorker`.
#[tokio::test]
async fn drain_worker_by_name() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::DrainWorker(name) if name == "nobody" => {
            vec![Step::Reply(Reply::Error(Failure::new(
                FailureKind::UnknownWorker,
                "no connected worker is named nobody",
            )))]
        }
        Command::DrainWorker(_) => vec![Step::Reply(Reply::Workers(Vec::new()))],
        other => panic!("unexpected {other:?}"),
    })
    .await;
    let client = connect(&fake.addr, false).await;
    assert!(client.drain_worker("box").await.unwrap().is_empty());
    let err = client.drain_worker("nobody").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::UnknownWorker);
}

/// A stream asked of a closed client ends at once with the closed sentence.
#[tokio::test]
async fn a_closed_client_ends_streams_at_once() {
    let fake = FakeCoordinator::start(|_| Vec::new()).await;
    let client = connect(&fake.addr, false).await;
    client.close().await;
    let mut stream = client.logs(TaskId(1), false);
    let err = within(stream.next()).await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::ClientClosed { .. }), "{err}");
}

/// A streamed frame for a request that asked for one answer is a coordinator of another
/// build: the caller is told so instead of waiting.
#[tokio::test]
async fn a_stray_stream_frame_fails_a_plain_request() {
    let fake = FakeCoordinator::start(|_| vec![Step::Reply(events(&[1], true))]).await;
    let client = connect(&fake.addr, false).await;
    let err = within(client.workers()).await.unwrap_err();
    assert!(matches!(err, ClientError::Unexpected { .. }), "{err}");
    assert!(err.to_string().contains("answered Events"), "{err}");
}
