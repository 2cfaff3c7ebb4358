//! The coordinator's side of `task logs` over raw protocol connections, with a stand-in worker
//! that sends exactly the output frames a test wants: a follower gets what was written before
//! it came, then each piece as it arrives, then what only the report's kept output holds, each
//! byte once, and `done`; a request without follow gets what was written so far (between
//! attempts: the last attempt's kept output); a finished
//! task's logs are its kept output; an unknown id fails with `UnknownTask`. Needs no workwurm
//! and no actionwurm, so it proves the coordinator alone.

use std::time::Duration;
use tatzelwurm_e2e::Cluster;
use tatzelwurm_proto::actioner::{Command, FailureKind, FromActioner, Reply, ToActioner};
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role, WorkerHello};
use tatzelwurm_proto::task::{Outcome, TaskOutput, TaskSpec, TaskState};
use tatzelwurm_proto::worker::{FromWorker, OutputChunk, OutputStream, Report, ToWorker};
use tatzelwurm_proto::{Attempt, Connection, RequestId, TaskId};

/// How long one frame may take on a loaded machine (a round is one flush).
const FRAME_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs a test's `body` on a current-thread runtime; the test starts its cluster before and
/// drops it after (starting and stopping processes block).
fn block_on<F: std::future::Future>(body: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(body)
}

/// Says hello as `role` on a fresh connection to `addr`.
async fn connect<In, Out>(addr: &str, role: Role) -> Connection<In, Out>
where
    In: serde::de::DeserializeOwned + Send + 'static,
    Out: serde::Serialize,
{
    connect_with_buffer(addr, role, None).await
}

/// `connect`, with the socket's receive buffer set to `buffer` bytes if given (the kernel
/// doubles it), so that a reader that stops reading holds little in its socket.
async fn connect_with_buffer<In, Out>(
    addr: &str,
    role: Role,
    buffer: Option<u32>,
) -> Connection<In, Out>
where
    In: serde::de::DeserializeOwned + Send + 'static,
    Out: serde::Serialize,
{
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    if let Some(size) = buffer {
        socket
            .set_recv_buffer_size(size)
            .expect("set the receive buffer");
    }
    let addr: std::net::SocketAddr = addr.parse().expect("the cluster's address");
    let stream = tokio::time::timeout(FRAME_TIMEOUT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut conn: Connection<HelloReply, Hello> = Connection::new(stream).expect("a connection");
    conn.send(&Hello::new(role)).await.expect("send the hello");
    match tokio::time::timeout(FRAME_TIMEOUT, conn.recv()).await {
        Ok(Ok(Some(HelloReply::Welcome(_)))) => {}
        other => panic!("no welcome: {other:?}"),
    }
    conn.retype::<In, Out>()
}

/// The next frame on `conn`, within `FRAME_TIMEOUT`.
async fn next<In, Out>(conn: &mut Connection<In, Out>) -> In
where
    In: serde::de::DeserializeOwned + Send + std::fmt::Debug + 'static,
    Out: serde::Serialize,
{
    match tokio::time::timeout(FRAME_TIMEOUT, conn.recv()).await {
        Ok(Ok(Some(frame))) => frame,
        other => panic!("no frame within {FRAME_TIMEOUT:?}: {other:?}"),
    }
}

/// One actioner connection that sorts the `Logs` frames it reads by request.
struct Actioner {
    conn: Connection<ToActioner, FromActioner>,
    /// Frames read for other requests than the one awaited, in order.
    parked: Vec<ToActioner>,
}

impl Actioner {
    async fn send(&mut self, request: u64, command: Command) {
        let frame = FromActioner {
            request: RequestId(request),
            command,
        };
        self.conn.send(&frame).await.expect("send a request");
    }

    /// The next frame answering `request`.
    async fn recv(&mut self, request: u64) -> Reply {
        if let Some(at) = self
            .parked
            .iter()
            .position(|f| f.request == RequestId(request))
        {
            return self.parked.remove(at).reply;
        }
        loop {
            let frame = next(&mut self.conn).await;
            if frame.request == RequestId(request) {
                return frame.reply;
            }
            self.parked.push(frame);
        }
    }

    /// Reads `request`'s `Logs` frames until `want` returns true of the text gathered so far
    /// (stdout and stderr apart) or `done` comes; returns the texts and `done`.
    async fn logs_until(
        &mut self,
        request: u64,
        gathered: &mut (String, String),
        want: impl Fn(&(String, String)) -> bool,
    ) -> Option<TaskState> {
        self.attempts_until(request, gathered, want, |attempt| {
            assert_eq!(attempt, Attempt(1))
        })
        .await
    }

    /// A `Logs` request without follow as `request`: the output it shows, stdout and stderr
    /// apart, and the state its `done` names.
    async fn logs_now(
        &mut self,
        request: u64,
        task: TaskId,
    ) -> ((String, String), Option<TaskState>) {
        let follow = false;
        self.send(request, Command::Logs { task, follow }).await;
        let mut shown = (String::new(), String::new());
        let done = self.logs_until(request, &mut shown, |_| false).await;
        (shown, done)
    }

    /// `logs_until`, handing each chunk's attempt to `saw`.
    async fn attempts_until(
        &mut self,
        request: u64,
        gathered: &mut (String, String),
        want: impl Fn(&(String, String)) -> bool,
        mut saw: impl FnMut(Attempt),
    ) -> Option<TaskState> {
        while !want(gathered) {
            match self.recv(request).await {
                Reply::Logs { chunks, done } => {
                    for chunk in chunks {
                        saw(chunk.attempt);
                        match chunk.stream {
                            OutputStream::Stdout => gathered.0.push_str(&chunk.text),
                            OutputStream::Stderr => gathered.1.push_str(&chunk.text),
                        }
                    }
                    if done.is_some() {
                        return done;
                    }
                }
                other => panic!("expected Logs for request {request}, got {other:?}"),
            }
        }
        None
    }
}

fn chunk(task: TaskId, text: &str) -> FromWorker {
    chunk_of(task, Attempt(1), text)
}

fn chunk_of(task: TaskId, attempt: Attempt, text: &str) -> FromWorker {
    FromWorker::Output(vec![OutputChunk {
        task,
        attempt,
        stream: OutputStream::Stdout,
        text: text.into(),
    }])
}

/// A coordinator, a stand-in worker with one slot and an actioner, all connected; the
/// actioner's receive buffer is `buffer` bytes if given.
struct Setup {
    worker: Connection<ToWorker, FromWorker>,
    actioner: Actioner,
}

impl Setup {
    async fn connect(cluster: &Cluster, buffer: Option<u32>) -> Setup {
        let hello = WorkerHello {
            name: "stand-in".into(),
            slots: 1,
            python: "3".into(),
            queues: Vec::new(),
            async_concurrency: 1,
        };
        let worker = connect(cluster.addr(), Role::Worker(hello)).await;
        let role = Role::Actioner {
            name: "logs-test".into(),
        };
        let actioner = Actioner {
            conn: connect_with_buffer(cluster.addr(), role, buffer).await,
            parked: Vec::new(),
        };
        Setup { worker, actioner }
    }

    /// Adds and plays one task with `spec` (request 1) and returns its id.
    async fn add(&mut self, spec: TaskSpec) -> TaskId {
        let add = Command::Add {
            tasks: vec![spec],
            play: true,
            key: None,
            watch: false,
        };
        self.actioner.send(1, add).await;
        match self.actioner.recv(1).await {
            Reply::Added(ids) => ids[0],
            other => panic!("expected Added, got {other:?}"),
        }
    }

    /// Waits for the worker's next `Run` and says its slot starts it.
    async fn started(&mut self) -> (TaskId, Attempt) {
        let key = loop {
            if let ToWorker::Run(run) = next(&mut self.worker).await {
                break (run[0].task, run[0].attempt);
            }
        };
        self.worker
            .send(&FromWorker::Started(vec![key]))
            .await
            .unwrap();
        key
    }

    /// Reports attempt `key` with `outcome` and kept `stdout`.
    async fn report(&mut self, key: (TaskId, Attempt), outcome: Outcome, stdout: &str) {
        let report = Report {
            task: key.0,
            attempt: key.1,
            outcome,
            output: TaskOutput {
                stdout: stdout.into(),
                stderr: String::new(),
            },
        };
        self.worker
            .send(&FromWorker::Reports(vec![report]))
            .await
            .unwrap();
    }
}

/// A follower sees what was written before it came, then each piece live, then the part of
/// the kept output no piece carried and `done: completed`, every byte once; a logs request
/// without follow meanwhile gets what was written so far with `done: running`; afterwards
/// the kept output; an unknown id fails `UnknownTask`.
#[test]
fn follow_over_the_protocol() {
    let cluster = Cluster::start();
    block_on(async {
        let mut setup = Setup::connect(&cluster, None).await;
        let task = setup.add(TaskSpec::call("m:f", "[]", "{}")).await;
        let key = setup.started().await;
        assert_eq!(key, (task, Attempt(1)));
        let Setup { worker, actioner } = &mut setup;
        worker.send(&chunk(task, "hello 1\n")).await.unwrap();

        let follow = Command::Logs { task, follow: true };
        actioner.send(2, follow).await;
        let mut followed = (String::new(), String::new());
        let has = |text: &'static str| move |g: &(String, String)| g.0.contains(text);
        actioner
            .logs_until(2, &mut followed, has("hello 1\n"))
            .await;
        worker.send(&chunk(task, "hello 2\n")).await.unwrap();
        let heartbeat = FromWorker::Heartbeat { running: vec![key] };
        worker.send(&heartbeat).await.unwrap();
        actioner
            .logs_until(2, &mut followed, has("hello 2\n"))
            .await;
        assert_eq!(followed.0, "hello 1\nhello 2\n");

        let (so_far, done) = actioner.logs_now(3, task).await;
        assert_eq!(done, Some(TaskState::Running));
        assert_eq!(so_far.0, "hello 1\nhello 2\n");

        let output = TaskOutput {
            stdout: "hello 1\nhello 2\nbye\n".into(),
            stderr: "warn\n".into(),
        };
        let report = Report {
            task,
            attempt: Attempt(1),
            outcome: Outcome::Completed { result: "1".into() },
            output: output.clone(),
        };
        worker
            .send(&FromWorker::Reports(vec![report]))
            .await
            .unwrap();
        let done = actioner.logs_until(2, &mut followed, |_| false).await;
        assert_eq!(done, Some(TaskState::Completed));
        assert_eq!(followed, (output.stdout.clone(), output.stderr.clone()));

        let (kept, done) = actioner.logs_now(4, task).await;
        assert_eq!(done, Some(TaskState::Completed));
        assert_eq!(kept, (output.stdout, output.stderr));

        actioner
            .send(
                5,
                Command::Logs {
                    task: TaskId(999),
                    follow: true,
                },
            )
            .await;
        match actioner.recv(5).await {
            Reply::Error(failure) => {
                assert_eq!(failure.kind, FailureKind::UnknownTask, "{failure:?}")
            }
            other => panic!("expected UnknownTask, got {other:?}"),
        }
    });
}

/// A task whose first attempt fails and is retried: a follower gets the first attempt's
/// output under attempt 1 (completed by its report's kept output) and the second's under
/// attempt 2, then `done: completed`.
#[test]
fn a_retry_is_a_stream_of_its_own() {
    let cluster = Cluster::start();
    block_on(async {
        let mut setup = Setup::connect(&cluster, None).await;
        let mut spec = TaskSpec::call("m:f", "[]", "{}");
        spec.policy.retries = 1;
        spec.policy.backoff_ms = 10;
        let task = setup.add(spec).await;
        let first = setup.started().await;
        assert_eq!(first, (task, Attempt(1)));
        setup
            .worker
            .send(&chunk_of(task, Attempt(1), "one\n"))
            .await
            .unwrap();
        // Following from here: the hub holds attempt 1's first line.
        let follow = Command::Logs { task, follow: true };
        setup.actioner.send(2, follow).await;
        let mut gathered = (String::new(), String::new());
        let mut attempts = Vec::new();
        let has_one = |g: &(String, String)| g.0 == "one\n";
        setup
            .actioner
            .attempts_until(2, &mut gathered, has_one, |a| attempts.push(a))
            .await;
        let error = tatzelwurm_proto::task::TaskError {
            kind: "RuntimeError".into(),
            message: "on purpose".into(),
            traceback: String::new(),
        };
        setup
            .report(first, Outcome::Failed { error }, "one\nlast of one\n")
            .await;
        let second = setup.started().await;
        assert_eq!(second, (task, Attempt(2)));
        setup
            .worker
            .send(&chunk_of(task, Attempt(2), "two\n"))
            .await
            .unwrap();
        let completed = Outcome::Completed { result: "2".into() };
        setup.report(second, completed, "two\n").await;

        let done = setup
            .actioner
            .attempts_until(2, &mut gathered, |_| false, |a| attempts.push(a))
            .await;
        assert_eq!(done, Some(TaskState::Completed));
        assert_eq!(gathered.0, "one\nlast of one\ntwo\n");
        attempts.dedup();
        assert_eq!(attempts, [Attempt(1), Attempt(2)]);
    });
}

/// A follower whose actioner stops reading while a task prints megabytes is dropped by the
/// hub and catches up: what it shows is in order, has no line twice, says in notes how many
/// bytes it missed (with what it shows, exactly all that was written), and ends with the
/// task's last line.
#[test]
fn a_reader_that_falls_behind_catches_up() {
    const LINES: usize = 1_000_000;
    const PER_CHUNK: usize = 300;
    let cluster = Cluster::start();
    block_on(async {
        let mut setup = Setup::connect(&cluster, Some(4096)).await;
        let task = setup.add(TaskSpec::call("m:f", "[]", "{}")).await;
        let key = setup.started().await;
        setup
            .actioner
            .send(2, Command::Logs { task, follow: true })
            .await;
        let line = |i: usize| format!("line {i:07}\n");
        for first in (0..LINES).step_by(PER_CHUNK) {
            let text: String = (first..first + PER_CHUNK).map(line).collect();
            setup.worker.send(&chunk(task, &text)).await.unwrap();
            if first % (100 * PER_CHUNK) == 0 {
                let heartbeat = FromWorker::Heartbeat { running: vec![key] };
                setup.worker.send(&heartbeat).await.unwrap();
            }
        }
        let kept_from = LINES - 20_000;
        let kept: String = format!("[tatzelwurm: {} earlier bytes not kept]\n", kept_from * 13)
            + &(kept_from..LINES).map(line).collect::<String>();
        let completed = Outcome::Completed { result: "0".into() };
        setup.report(key, completed, &kept).await;

        let mut gathered = (String::new(), String::new());
        let done = setup.actioner.logs_until(2, &mut gathered, |_| false).await;
        assert_eq!(done, Some(TaskState::Completed));
        // Every byte is either shown or counted in a note; whole lines come in order, none
        // twice, and jump only after a note (the catch-up may begin inside a line).
        let mut bytes = 0usize;
        let mut last: Option<usize> = None;
        let mut after_note = false;
        let mut missed_notes = 0;
        for text in gathered.0.split_inclusive('\n') {
            if text.starts_with("[tatzelwurm: ") {
                let missed: usize = text
                    .split_whitespace()
                    .find_map(|word| word.parse().ok())
                    .unwrap_or_else(|| panic!("a note with a count: {text}"));
                bytes += missed;
                missed_notes += 1;
                after_note = true;
                continue;
            }
            bytes += text.len();
            let whole = text.len() == 13;
            match text.strip_prefix("line ").filter(|_| whole) {
                Some(n) => {
                    let n: usize = n.trim_end().parse().expect("a line number");
                    let next = last.map_or(0, |last| last + 1);
                    assert!(n >= next, "line {n} after {last:?}: in order, none twice");
                    assert!(
                        after_note || n == next,
                        "line {n} after {last:?} with no note"
                    );
                    last = Some(n);
                    after_note = false;
                }
                None => assert!(after_note, "a cut line only right after a note: {text:?}"),
            }
        }
        assert_eq!(bytes, LINES * 13, "every byte shown or counted as missed");
        assert_eq!(last, Some(LINES - 1));
        assert!(missed_notes >= 1, "the reader fell behind and was told so");
    });
}

/// A task waiting for its retry shows its failed attempt's kept output, without and with
/// follow; a follower of it ends with `done: killed` when the task is killed, having shown
/// that output once.
#[test]
fn between_attempts_and_killed() {
    let cluster = Cluster::start();
    block_on(async {
        let mut setup = Setup::connect(&cluster, None).await;
        let mut spec = TaskSpec::call("m:f", "[]", "{}");
        spec.policy.retries = 1;
        spec.policy.backoff_ms = 600_000;
        let task = setup.add(spec).await;
        let first = setup.started().await;
        let error = tatzelwurm_proto::task::TaskError {
            kind: "RuntimeError".into(),
            message: "on purpose".into(),
            traceback: String::new(),
        };
        let kept = "tried once\n";
        setup.report(first, Outcome::Failed { error }, kept).await;
        // The report is applied (and the task waiting) once its acknowledgement comes.
        loop {
            if let ToWorker::Recorded(_) = next(&mut setup.worker).await {
                break;
            }
        }

        let (once, done) = setup.actioner.logs_now(2, task).await;
        assert_eq!(done, Some(TaskState::Waiting));
        assert_eq!(once.0, kept);

        setup
            .actioner
            .send(3, Command::Logs { task, follow: true })
            .await;
        let mut followed = (String::new(), String::new());
        let shown = |g: &(String, String)| g.0 == "tried once\n";
        setup.actioner.logs_until(3, &mut followed, shown).await;
        let kill = Command::Kill(tatzelwurm_proto::actioner::Selection::Ids(vec![task]));
        setup.actioner.send(4, kill).await;
        let done = setup.actioner.logs_until(3, &mut followed, |_| false).await;
        assert_eq!(done, Some(TaskState::Killed));
        assert_eq!(followed.0, kept, "shown once");
    });
}
