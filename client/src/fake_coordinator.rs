//! A scripted coordinator for tests: the real protocol on a real socket, with made-up answers.
//!
//! Used by this crate's tests and (with the `fake-coordinator` feature) by actionwurm's. It
//! speaks through proto's `Connection` on `127.0.0.1:0`, so a test exercises the handshake,
//! framing and request ids for real; only the answers come from a script instead of a task
//! table. It serves a given number of connections one after the other (more than one to test
//! reconnects) and records every request it received.

use tatzelwurm_proto::actioner::{Command, FromActioner, Reply, ToActioner};
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role, Welcome};
use tatzelwurm_proto::queue::QueueInfo;
use tatzelwurm_proto::schedule::{ScheduleInfo, ScheduleSpec, Trigger};
use tatzelwurm_proto::task::{
    TaskError, TaskInfo, TaskOutput, TaskSpec, TaskState, Timestamp, When,
};
use tatzelwurm_proto::{Attempt, Connection, RequestId, TaskId};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the fake answers the hello.
pub enum Greeting {
    /// Welcomes the actioner, as a real coordinator does.
    Welcome,
    /// Refuses it with this reason.
    Refuse(String),
    /// Reads the hello and never answers.
    Silent,
}

/// One thing the fake does in answer to a request.
pub enum Step {
    /// Answers with this reply under the request's own id.
    Reply(Reply),
    /// Answers under another request id, as a confused or late peer would (or to answer an
    /// earlier request late).
    ReplyAs(u64, Reply),
    /// Closes the connection without answering.
    Close,
}

/// A running fake; `requests` ends it and tells what it received.
pub struct FakeCoordinator {
    /// Where to connect.
    pub addr: String,
    served: JoinHandle<Vec<FromActioner>>,
}

/// What a script is shown of a request: on which connection (0 for the first) and what.
pub struct Seen<'a> {
    /// The number of the connection, 0 for the first.
    pub connection: usize,
    /// The request.
    pub message: &'a FromActioner,
}

impl FakeCoordinator {
    /// A fake that welcomes one actioner and answers each command with what `script` returns.
    pub async fn start<S>(mut script: S) -> FakeCoordinator
    where
        S: FnMut(&Command) -> Vec<Step> + Send + 'static,
    {
        FakeCoordinator::serve(Greeting::Welcome, 1, move |seen| {
            script(&seen.message.command)
        })
        .await
    }

    /// A fake that answers one hello as `greeting` says, then follows `script`.
    pub async fn greeting<S>(greeting: Greeting, mut script: S) -> FakeCoordinator
    where
        S: FnMut(&Command) -> Vec<Step> + Send + 'static,
    {
        FakeCoordinator::serve(greeting, 1, move |seen| script(&seen.message.command)).await
    }

    /// A fake that serves `connections` connections one after the other, greeting each as
    /// `greeting` says, and answers each request with what `script` returns.
    pub async fn serve<S>(greeting: Greeting, connections: usize, script: S) -> FakeCoordinator
    where
        S: FnMut(Seen<'_>) -> Vec<Step> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let served = tokio::spawn(serve(listener, greeting, connections, script));
        FakeCoordinator { addr, served }
    }

    /// Every request received, once the clients have gone (or the script closed).
    pub async fn requests(self) -> Vec<FromActioner> {
        self.served.await.expect("fake coordinator panicked")
    }
}

async fn serve<S>(
    listener: TcpListener,
    greeting: Greeting,
    connections: usize,
    mut script: S,
) -> Vec<FromActioner>
where
    S: FnMut(Seen<'_>) -> Vec<Step>,
{
    let mut seen = Vec::new();
    for connection in 0..connections {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut conn: Connection<Hello, HelloReply> = Connection::new(stream).expect("frame");
        let hello = conn.recv().await.expect("hello").expect("hello frame");
        assert!(matches!(hello.role, Role::Actioner { .. }), "{hello:?}");
        hello.check().expect("a valid hello");
        let answer = match &greeting {
            Greeting::Welcome => HelloReply::Welcome(Welcome {
                worker_id: None,
                heartbeat_ms: 1000,
            }),
            Greeting::Refuse(reason) => HelloReply::Refused {
                reason: reason.clone(),
            },
            Greeting::Silent => {
                // Hold the connection open until the client gives up.
                while let Ok(Some(_)) = conn.recv().await {}
                continue;
            }
        };
        conn.send(&answer).await.expect("send hello reply");
        let mut conn: Connection<FromActioner, ToActioner> = conn.retype();
        'conn: while let Ok(Some(message)) = conn.recv().await {
            let steps = script(Seen {
                connection,
                message: &message,
            });
            let request = message.request;
            seen.push(message);
            for step in steps {
                let (id, reply) = match step {
                    Step::Reply(reply) => (request, reply),
                    Step::ReplyAs(id, reply) => (RequestId(id), reply),
                    Step::Close => break 'conn,
                };
                if conn.send(&ToActioner { request: id, reply }).await.is_err() {
                    break 'conn;
                }
            }
        }
    }
    seen
}

/// A plausible task in `state`, with times, a worker, a result or error and counters to match
/// (a `waiting` one has failed once and is due again at 01:40:16; a `scheduled` one runs at
/// 01:45:12; a `blocked` one runs after tasks 1 and 2), so that tests of rendering and of
/// commands have something realistic to show.
pub fn task(id: u64, state: TaskState) -> TaskInfo {
    let started = !matches!(
        state,
        TaskState::Created
            | TaskState::Blocked
            | TaskState::Scheduled
            | TaskState::Paused
            | TaskState::Ready
    );
    // A waiting task keeps the error of the attempt that failed, as the coordinator does.
    let failed = matches!(state, TaskState::Failed | TaskState::Waiting);
    TaskInfo {
        id: TaskId(id),
        state,
        spec: TaskSpec {
            function: "examples.words:count".into(),
            args: r#"["a b c", 2]"#.into(),
            kwargs: r#"{"lower":true}"#.into(),
            run_at: (state == TaskState::Scheduled)
                .then_some(When::At(Timestamp(1_795_484_712_000))),
            after: match state {
                TaskState::Blocked => vec![TaskId(1), TaskId(2)],
                _ => Vec::new(),
            },
            ..TaskSpec::default()
        },
        result: (state == TaskState::Completed).then(|| r#"{"words":3}"#.into()),
        error: failed.then(|| TaskError {
            kind: "ValueError".into(),
            message: "bad value".into(),
            traceback:
                "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad value"
                    .into(),
        }),
        worker: started.then(|| "host:42".into()),
        failures: u32::from(failed),
        crashes: 0,
        retry_at: (state == TaskState::Waiting).then_some(Timestamp(1_795_484_416_000)),
        attempts: Attempt(u32::from(started)),
        created_at: Timestamp(1_795_484_412_000),
        started_at: started.then_some(Timestamp(1_795_484_413_000)),
        finished_at: state.is_finished().then_some(Timestamp(1_795_484_414_200)),
        output: None,
    }
}

/// `task(id, state)` with captured output, as `Show` answers.
pub fn shown_task(id: u64, state: TaskState) -> TaskInfo {
    let mut info = task(id, state);
    info.output = Some(TaskOutput {
        stdout: "counting\n".into(),
        stderr: "warning: slow\n".into(),
    });
    info
}

/// A plausible queue: `name`, not paused, no limit, 2 ready, 1 running and 5 completed tasks,
/// served by worker `host:42`.
pub fn queue(name: &str) -> QueueInfo {
    let counts = TaskState::ALL
        .into_iter()
        .map(|state| {
            let n = match state {
                TaskState::Ready => 2,
                TaskState::Running => 1,
                TaskState::Completed => 5,
                _ => 0,
            };
            (state, n)
        })
        .collect();
    QueueInfo {
        name: name.into(),
        paused: false,
        limit: 0,
        counts,
        workers: vec!["host:42".into()],
    }
}

/// A plausible schedule: `name` runs `examples.words:count` every 5 minutes, added at
/// 01:40:12, fired twice (tasks 8 and 7, newest first), next at 01:50:12.
pub fn schedule(name: &str) -> ScheduleInfo {
    ScheduleInfo {
        spec: ScheduleSpec {
            name: name.into(),
            trigger: Trigger::Every(300_000),
            task: TaskSpec::call("examples.words:count", r#"["a b c"]"#, "{}"),
        },
        paused: false,
        created_at: Timestamp(1_795_484_412_000),
        next_at: Some(Timestamp(1_795_485_012_000)),
        fired: 2,
        last: vec![
            (TaskId(8), Timestamp(1_795_484_712_000)),
            (TaskId(7), Timestamp(1_795_484_412_000)),
        ],
    }
}
