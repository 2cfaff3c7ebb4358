//! Tests of `Client` against the scripted coordinator in `fake_coordinator`: real sockets, real
//! frames, real handshake.

use super::*;
use crate::fake_coordinator::{task, FakeCoordinator, Greeting, Step};
use tatzelwurm_proto::task::TaskState;

fn spec(n: u32) -> TaskSpec {
    TaskSpec {
        function: "m:f".into(),
        args: format!("[{n}]"),
        kwargs: "{}".into(),
        policy: tatzelwurm_proto::task::TaskPolicy::default(),
    }
}

/// The handshake succeeds and each request carries a new, increasing id that the reply echoes.
#[tokio::test]
async fn requests_carry_increasing_ids() {
    let mut next = 0;
    let fake = FakeCoordinator::start(move |command| {
        next += 1;
        match command {
            Command::Add { tasks, .. } => {
                let ids = (0..tasks.len() as u64)
                    .map(|i| TaskId(next * 10 + i))
                    .collect();
                vec![Step::Reply(Reply::Added(ids))]
            }
            other => panic!("unexpected {other:?}"),
        }
    })
    .await;
    let mut client = Client::connect(&fake.addr, "test", None).await.unwrap();
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
    assert_eq!(
        seen[1].command,
        Command::Add {
            tasks: vec![spec(3)],
            play: true,
            key: None,
            watch: false,
        }
    );
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
    let mut client = Client::connect(&fake.addr, "test", None).await.unwrap();
    let tasks = client.list(vec![TaskState::Ready]).await.unwrap();
    let ids: Vec<u64> = tasks.iter().map(|t| t.id.0).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    // The connection is still in step: a second request gets its own answer.
    let again = client.list(vec![]).await.unwrap();
    assert_eq!(again.len(), 3);
}

/// The coordinator's error sentence is what the caller reads, unchanged.
#[tokio::test]
async fn error_reply_is_the_coordinators_sentence() {
    let fake = FakeCoordinator::start(|_| {
        vec![Step::Reply(Reply::Error(
            tatzelwurm_proto::actioner::Failure::unknown_task("there is no task 7"),
        ))]
    })
    .await;
    let mut client = Client::connect(&fake.addr, "test", None).await.unwrap();
    let err = client.show(TaskId(7)).await.unwrap_err();
    assert!(matches!(err, ClientError::Rejected(_)));
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
    let err = Client::connect(&fake.addr, "test", None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("protocol version 9"), "{err}");
}

/// A server that takes the connection but never answers the hello fails within the limit.
#[tokio::test]
async fn silent_server_times_out() {
    let fake = FakeCoordinator::greeting(Greeting::Silent, |_| vec![]).await;
    let err = Client::connect_within(&fake.addr, "test", None, Duration::from_millis(200))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Silent { .. }), "{err}");
}

/// A coordinator that closes mid-request is reported in one sentence, without a hang.
#[tokio::test]
async fn close_mid_request_is_reported() {
    let fake = FakeCoordinator::start(|_| vec![Step::Close]).await;
    let mut client = Client::connect(&fake.addr, "test", None).await.unwrap();
    let err = client.workers().await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("the coordinator at {} closed the connection before answering; check that it is running", fake.addr)
    );
}

/// A late reply to an older request is skipped; a reply to a request never sent is an error.
#[tokio::test]
async fn reply_ids_are_checked() {
    let mut first = true;
    let fake = FakeCoordinator::start(move |_| {
        if std::mem::take(&mut first) {
            vec![
                Step::ReplyAs(0, Reply::Workers(vec![])),
                Step::Reply(Reply::Added(vec![TaskId(5)])),
            ]
        } else {
            vec![Step::ReplyAs(99, Reply::Added(vec![]))]
        }
    })
    .await;
    let mut client = Client::connect(&fake.addr, "test", None).await.unwrap();
    assert_eq!(
        client.add(vec![spec(1)], false).await.unwrap(),
        vec![TaskId(5)]
    );
    let err = client.add(vec![spec(2)], false).await.unwrap_err();
    assert!(matches!(err, ClientError::Unexpected { .. }), "{err}");
    assert!(err.to_string().contains("request 99"), "{err}");
}

/// A reply of the wrong kind names both kinds instead of being misread.
#[tokio::test]
async fn wrong_reply_kind_is_named() {
    let fake = FakeCoordinator::start(|_| vec![Step::Reply(Reply::Workers(vec![]))]).await;
    let mut client = Client::connect(&fake.addr, "test", None).await.unwrap();
    let err = client.wait(Selection::All).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("answered Workers where Waited was expected"),
        "{err}"
    );
}

/// Nothing listening at the address reads as "connection refused".
#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = Client::connect(&addr, "test", None).await.err().unwrap();
    assert!(err.is_unreachable());
    assert_eq!(
        err.to_string(),
        format!("cannot reach the coordinator at {addr} (connection refused)")
    );
}

/// Something that answers our hello like an HTTP server is named as not a coordinator at once.
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
    let err = Client::connect(&addr, "test", None).await.err().unwrap();
    assert!(matches!(err, ClientError::NotCoordinator { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("did not answer like a tatzelwurm coordinator"),
        "{err}"
    );
    server.await.unwrap();
}
