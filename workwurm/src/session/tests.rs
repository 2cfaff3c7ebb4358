//! Tests of the whole worker (`run_until`) against a small fake coordinator built from proto's
//! real `Connection`, with real Python slots: the session code runs exactly as in production.

use crate::slot_process::SlotProgram;
use crate::stop::Stop;
use crate::{interpreter, run_until, Config};
use std::path::Path;
use std::time::{Duration, Instant};
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role, Welcome, WorkerHello};
use tatzelwurm_proto::task::{Outcome, TaskSpec};
use tatzelwurm_proto::worker::{Assignment, FromWorker, Report, ToWorker};
use tatzelwurm_proto::{Attempt, Connection, TaskId, WorkerId};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Long enough for a cold Python start on a busy machine; every wait is bounded by it.
const PATIENCE: Duration = Duration::from_secs(30);

type WorkerConnection = Connection<FromWorker, ToWorker>;

struct Worker {
    stop: watch::Sender<Stop>,
    done: JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    fn start(coordinator: String, slots: u32) -> Worker {
        Worker::start_with(coordinator, slots, |_| {})
    }

    /// Like `start`, with the config changed by `change` first.
    fn start_with(coordinator: String, slots: u32, change: impl FnOnce(&mut Config)) -> Worker {
        let mut config = Config {
            coordinator,
            slots,
            paths: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")],
            name: "test-worker".into(),
            python: interpreter::resolve(None).expect("python3 on PATH"),
            program: SlotProgram::Carried,
            keep_children: false,
            drain_timeout: Duration::from_secs(30),
            token: None,
            queues: vec!["default".into()],
            async_concurrency: 1,
            reload: true,
            max_memory: None,
            tls: None,
        };
        change(&mut config);
        let (stop, stopped) = watch::channel(Stop::Running);
        let done = tokio::spawn(run_until(config, stopped));
        Worker { stop, done }
    }

    /// Stops at once and waits for the worker to end.
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(Stop::Now);
        self.ended().await
    }

    /// Waits for the worker to end by itself.
    async fn ended(mut self) -> anyhow::Result<()> {
        timeout(PATIENCE, &mut self.done)
            .await
            .expect("the worker stops")
            .unwrap()
    }
}

/// Accepts the worker's next connection and welcomes it.
async fn accept(listener: &TcpListener) -> WorkerConnection {
    accept_hello(listener).await.0
}

/// Accepts the worker's next connection, welcomes it, and returns what it said of itself.
async fn accept_hello(listener: &TcpListener) -> (WorkerConnection, WorkerHello) {
    let (stream, _) = timeout(PATIENCE, listener.accept())
        .await
        .expect("the worker connects")
        .unwrap();
    let mut connection = Connection::<Hello, HelloReply>::new(stream).unwrap();
    let hello = connection.recv().await.unwrap().expect("a hello");
    hello.check().unwrap();
    let Role::Worker(worker) = hello.role else {
        panic!("expected a worker hello")
    };
    let said = worker.clone();
    assert_eq!((worker.name.as_str(), worker.slots), ("test-worker", 1));
    assert!(worker.python.starts_with("3."), "{}", worker.python);
    connection
        .send(&HelloReply::Welcome(Welcome {
            worker_id: Some(WorkerId(7)),
            heartbeat_ms: 50,
        }))
        .await
        .unwrap();
    (connection.retype(), said)
}

fn assignment(task: u64, attempt: u32, function: &str, args: &str) -> Assignment {
    Assignment {
        task: TaskId(task),
        attempt: Attempt(attempt),
        spec: TaskSpec {
            function: function.into(),
            args: args.into(),
            kwargs: "{}".into(),
            policy: tatzelwurm_proto::task::TaskPolicy::default(),
            ..TaskSpec::default()
        },
    }
}

/// Reads frames until one of `Reports` names `task`, and returns that report.
async fn report_of(connection: &mut WorkerConnection, task: u64) -> Report {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = timeout(left, connection.recv())
            .await
            .expect("a report in time")
            .unwrap();
        if let Some(FromWorker::Reports(reports)) = frame {
            if let Some(report) = reports.into_iter().find(|r| r.task == TaskId(task)) {
                return report;
            }
        }
    }
}

/// Reads frames until a heartbeat satisfies `condition`.
async fn heartbeat_where(
    connection: &mut WorkerConnection,
    condition: impl Fn(&[(TaskId, Attempt)]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = timeout(left, connection.recv())
            .await
            .expect("a heartbeat in time")
            .unwrap();
        if let Some(FromWorker::Heartbeat { running }) = frame {
            if condition(&running) {
                return;
            }
        }
    }
}

/// A run comes back as a report with the assignment's attempt; an unacknowledged report is sent
/// again after a reconnect; a kill ends a sleeping task with a `Killed` report; a shutdown ends
/// the worker cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_reports_resends_and_kills() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start(listener.local_addr().unwrap().to_string(), 1);
    let mut connection = accept(&listener).await;

    connection
        .send(&ToWorker::Run(vec![assignment(
            1,
            3,
            "tasks:add",
            "[20, 22]",
        )]))
        .await
        .unwrap();
    let report = report_of(&mut connection, 1).await;
    assert_eq!(report.attempt, Attempt(3));
    assert_eq!(
        report.outcome,
        Outcome::Completed {
            result: "42".into()
        }
    );

    // Drop the connection without acknowledging: the report comes again on the next one.
    drop(connection);
    let mut connection = accept(&listener).await;
    let again = report_of(&mut connection, 1).await;
    assert_eq!(again, report);
    connection
        .send(&ToWorker::Recorded(vec![(TaskId(1), Attempt(3))]))
        .await
        .unwrap();

    connection
        .send(&ToWorker::Run(vec![assignment(
            2,
            1,
            "tasks:nap",
            "[3600]",
        )]))
        .await
        .unwrap();
    heartbeat_where(&mut connection, |running| {
        running == [(TaskId(2), Attempt(1))]
    })
    .await;
    let asked = Instant::now();
    connection
        .send(&ToWorker::Kill(vec![(TaskId(2), Attempt(1))]))
        .await
        .unwrap();
    let killed = report_of(&mut connection, 2).await;
    assert_eq!(killed.outcome, Outcome::Killed);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "kill took {:?}",
        asked.elapsed()
    );
    heartbeat_where(&mut connection, <[_]>::is_empty).await;

    worker.stop().await.expect("a shutdown is a clean exit");
    let closed = timeout(PATIENCE, async {
        while let Ok(Some(_)) = connection.recv().await {}
    })
    .await;
    assert!(closed.is_ok(), "the worker closed its connection");
}

/// Prefetch: a run longer than the free slots waits here; `Started` names an attempt only once
/// a slot got it; heartbeats name the queued attempts too; a take-back returns exactly the
/// queued ones it names, and what a slot got runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_attempts_start_in_a_slot_and_can_be_taken_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start(listener.local_addr().unwrap().to_string(), 1);
    let mut connection = accept(&listener).await;
    let run = vec![
        assignment(1, 1, "tasks:nap", "[1]"),
        assignment(2, 1, "tasks:add", "[1, 1]"),
        assignment(3, 1, "tasks:add", "[2, 2]"),
    ];
    connection.send(&ToWorker::Run(run)).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut started = Vec::new();
    let mut heard_all = false;
    while !heard_all || started.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, connection.recv())
            .await
            .expect("frames")
            .unwrap()
        {
            Some(FromWorker::Started(attempts)) => started.extend(attempts),
            Some(FromWorker::Heartbeat { running }) => heard_all |= running.len() == 3,
            _ => {}
        }
    }
    assert_eq!(
        started,
        [(TaskId(1), Attempt(1))],
        "only the slot's task started"
    );
    // 1 is in the slot, 3 is queued, 9 is unknown.
    let asked = vec![
        (TaskId(1), Attempt(1)),
        (TaskId(3), Attempt(1)),
        (TaskId(9), Attempt(1)),
    ];
    connection.send(&ToWorker::TakeBack(asked)).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    let returned = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, connection.recv())
            .await
            .expect("frames")
            .unwrap()
        {
            Some(FromWorker::Returned(returned)) => break returned,
            Some(FromWorker::Started(attempts)) => started.extend(attempts),
            _ => {}
        }
    };
    assert_eq!(returned, [(TaskId(3), Attempt(1))]);
    // Both reports may share a frame.
    let mut reports = std::collections::BTreeMap::new();
    let deadline = Instant::now() + PATIENCE;
    while reports.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(FromWorker::Reports(frame)) = timeout(left, connection.recv())
            .await
            .expect("reports")
            .unwrap()
        {
            reports.extend(frame.into_iter().map(|r| (r.task.0, r.outcome)));
        }
    }
    assert!(
        matches!(reports[&1], Outcome::Completed { .. }),
        "{reports:?}"
    );
    assert_eq!(reports[&2], Outcome::Completed { result: "2".into() });
    assert!(!reports.contains_key(&3), "3 was given back");
    heartbeat_where(&mut connection, <[_]>::is_empty).await;
    worker.stop().await.expect("a shutdown is a clean exit");
}

/// A drain tells the coordinator `Draining`, lets the running task finish and report, waits
/// for `Recorded`, and only then closes the connection and ends the worker cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_finishes_the_running_task_then_leaves() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start(listener.local_addr().unwrap().to_string(), 1);
    let mut connection = accept(&listener).await;
    connection
        .send(&ToWorker::Run(vec![assignment(5, 2, "tasks:nap", "[0.5]")]))
        .await
        .unwrap();
    heartbeat_where(&mut connection, |running| {
        running == [(TaskId(5), Attempt(2))]
    })
    .await;

    worker.stop.send(Stop::Draining).unwrap();
    let mut said_draining = false;
    let report = loop {
        match timeout(PATIENCE, connection.recv())
            .await
            .expect("a frame in time")
        {
            Ok(Some(FromWorker::Draining)) => said_draining = true,
            Ok(Some(FromWorker::Reports(reports))) => break reports[0].clone(),
            Ok(Some(
                FromWorker::Heartbeat { .. } | FromWorker::Started(_) | FromWorker::Usage(_),
            )) => {}
            other => panic!("the worker ended before it reported: {other:?}"),
        }
    };
    assert!(said_draining, "the report came before Draining");
    assert_eq!((report.task, report.attempt), (TaskId(5), Attempt(2)));
    assert!(
        matches!(report.outcome, Outcome::Completed { .. }),
        "{report:?}"
    );
    // Not gone yet: the report is not recorded. Heartbeats go on meanwhile.
    heartbeat_where(&mut connection, <[_]>::is_empty).await;
    assert!(
        !worker.done.is_finished(),
        "left before its report was recorded"
    );
    connection
        .send(&ToWorker::Recorded(vec![(TaskId(5), Attempt(2))]))
        .await
        .unwrap();
    worker.ended().await.expect("a drain is a clean exit");
    let closed = timeout(PATIENCE, async {
        while let Ok(Some(_)) = connection.recv().await {}
    })
    .await;
    assert!(closed.is_ok(), "the worker closed its connection");
}

/// A lost connection kills the running attempt (and the process it started) without reporting
/// it, and the worker reconnects and serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_kills_running_tasks() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start(listener.local_addr().unwrap().to_string(), 1);
    let mut connection = accept(&listener).await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let args = serde_json::to_string(&[pid_file.to_str().unwrap()]).unwrap();
    connection
        .send(&ToWorker::Run(vec![assignment(
            5,
            1,
            "tasks:sleep_with_child",
            &args,
        )]))
        .await
        .unwrap();
    heartbeat_where(&mut connection, |running| {
        running == [(TaskId(5), Attempt(1))]
    })
    .await;
    let deadline = Instant::now() + PATIENCE;
    while !pid_file.exists() {
        assert!(
            Instant::now() < deadline,
            "the task did not start its child"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pids: Vec<i32> = std::fs::read_to_string(&pid_file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();

    drop(connection);
    let mut connection = accept(&listener).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while !pids.iter().all(|&pid| crate::slots::tests::gone(pid)) {
        assert!(
            Instant::now() < deadline,
            "the abandoned task's processes lived on"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    heartbeat_where(&mut connection, <[_]>::is_empty).await;
    connection
        .send(&ToWorker::Run(vec![assignment(
            6,
            1,
            "tasks:add",
            "[1, 2]",
        )]))
        .await
        .unwrap();
    let report = report_of(&mut connection, 6).await;
    assert_eq!(report.outcome, Outcome::Completed { result: "3".into() });
    worker.stop().await.unwrap();
}

/// A coordinator that is not there yet is retried until it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_coordinator_that_is_not_up_yet() {
    let address = {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        probe.local_addr().unwrap()
    };
    let worker = Worker::start(address.to_string(), 1);
    // Let a few connection attempts fail first (this is the situation under test, not a sync).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let listener = TcpListener::bind(address).await.unwrap();
    let mut connection = accept(&listener).await;
    heartbeat_where(&mut connection, <[_]>::is_empty).await;
    worker.stop().await.unwrap();
}

/// A refusal ends the worker with the coordinator's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_ends_the_worker() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start(listener.local_addr().unwrap().to_string(), 1);
    let (stream, _) = timeout(PATIENCE, listener.accept()).await.unwrap().unwrap();
    let mut connection = Connection::<Hello, HelloReply>::new(stream).unwrap();
    connection.recv().await.unwrap().expect("a hello");
    connection
        .send(&HelloReply::Refused {
            reason: "this coordinator takes no workers today".into(),
        })
        .await
        .unwrap();
    let result = timeout(PATIENCE, worker.done)
        .await
        .expect("the worker ends")
        .unwrap();
    let err = result.expect_err("a refusal is an error");
    assert!(
        err.to_string()
            .ends_with("refused this worker: this coordinator takes no workers today"),
        "{err}"
    );
}

/// Not a test of behaviour: tasks per second through the whole worker (TCP, session, pool, one
/// slot) when a coordinator hands out the next task as soon as a report arrives
/// (`cargo test -p workwurm --release -- --ignored --nocapture session_throughput`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn session_throughput() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start(listener.local_addr().unwrap().to_string(), 1);
    let mut connection = accept(&listener).await;
    connection
        .send(&ToWorker::Run(vec![assignment(0, 1, "tasks:noop", "[0]")]))
        .await
        .unwrap();
    report_of(&mut connection, 0).await;
    let n = 10_000u64;
    let started = Instant::now();
    connection
        .send(&ToWorker::Run(vec![assignment(1, 1, "tasks:noop", "[1]")]))
        .await
        .unwrap();
    let mut done = 0;
    while done < n {
        let frame = timeout(PATIENCE, connection.recv()).await.unwrap().unwrap();
        if let Some(FromWorker::Reports(reports)) = frame {
            let acks = reports.iter().map(|r| (r.task, r.attempt)).collect();
            done += reports.len() as u64;
            if done < n {
                connection
                    .send(&ToWorker::Run(vec![assignment(
                        done + 1,
                        1,
                        "tasks:noop",
                        "[1]",
                    )]))
                    .await
                    .unwrap();
            }
            connection.send(&ToWorker::Recorded(acks)).await.unwrap();
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{n} tasks through one worker slot in {:.2} s = {:.0} tasks/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    worker.stop().await.unwrap();
}

/// The hello names the worker's queues (default: `default`) and async concurrency; a function
/// found to be `async def` is named in `Coroutines` before its task's report, once per
/// connection, and again first thing on the next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_concurrency_and_coroutines_reach_the_coordinator() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start(listener.local_addr().unwrap().to_string(), 1);
    let (connection, hello) = accept_hello(&listener).await;
    assert_eq!(
        (hello.queues, hello.async_concurrency),
        (vec!["default".to_string()], 1)
    );
    drop(connection);
    worker.stop().await.unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start_with(listener.local_addr().unwrap().to_string(), 1, |config| {
        config.queues = vec!["gpu".into(), "io".into()];
        config.async_concurrency = 8;
    });
    let (mut connection, hello) = accept_hello(&listener).await;
    assert_eq!(
        (hello.queues, hello.async_concurrency),
        (vec!["gpu".to_string(), "io".to_string()], 8)
    );
    for id in [1, 2] {
        connection
            .send(&ToWorker::Run(vec![assignment(
                id,
                1,
                "aio:wait",
                r#"[0, "x"]"#,
            )]))
            .await
            .unwrap();
    }
    // Frames until both reports: the function is named once, before the first report.
    let mut frames = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while frames
        .iter()
        .filter(|f| matches!(f, FromWorker::Reports(_)))
        .flat_map(|f| match f {
            FromWorker::Reports(r) => r.clone(),
            _ => Vec::new(),
        })
        .count()
        < 2
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = timeout(left, connection.recv())
            .await
            .expect("frames in time")
            .unwrap();
        frames.push(frame.expect("the connection stays open"));
    }
    let named: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f, FromWorker::Coroutines(names) if names == &["aio:wait"]))
        .map(|(i, _)| i)
        .collect();
    let first_report = frames
        .iter()
        .position(|f| matches!(f, FromWorker::Reports(_)))
        .unwrap();
    assert_eq!(named.len(), 1, "{frames:?}");
    assert!(named[0] < first_report, "{frames:?}");
    drop(connection);
    let mut connection = accept(&listener).await;
    let first = timeout(PATIENCE, connection.recv()).await.unwrap().unwrap();
    assert_eq!(first, Some(FromWorker::Coroutines(vec!["aio:wait".into()])));
    worker.stop().await.unwrap();
}

/// The coordinator's `Drain` does what the first SIGTERM does: `Draining`, the running task
/// finishes and is reported, and the worker leaves cleanly once the report is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinators_drain_drains_as_sigterm_does() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start(listener.local_addr().unwrap().to_string(), 1);
    let mut connection = accept(&listener).await;
    connection
        .send(&ToWorker::Run(vec![assignment(5, 1, "tasks:nap", "[0.5]")]))
        .await
        .unwrap();
    heartbeat_where(&mut connection, |running| {
        running == [(TaskId(5), Attempt(1))]
    })
    .await;
    connection.send(&ToWorker::Drain).await.unwrap();
    let mut said_draining = false;
    loop {
        match timeout(PATIENCE, connection.recv())
            .await
            .expect("a frame in time")
        {
            Ok(Some(FromWorker::Draining)) => said_draining = true,
            Ok(Some(FromWorker::Reports(reports))) => {
                assert!(said_draining, "the report came before Draining");
                assert!(matches!(reports[0].outcome, Outcome::Completed { .. }));
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("the worker ended before it reported: {other:?}"),
        }
    }
    assert!(
        !worker.done.is_finished(),
        "left before its report was recorded"
    );
    connection
        .send(&ToWorker::Recorded(vec![(TaskId(5), Attempt(1))]))
        .await
        .unwrap();
    worker.ended().await.expect("a drain is a clean exit");
}

/// `Usage` comes with the heartbeats, one entry per slot with its pid and memory, and the limit
/// of --max-memory; what a running task prints comes in `Output` frames before its report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_live_output_reach_the_coordinator() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = Worker::start_with(listener.local_addr().unwrap().to_string(), 1, |config| {
        config.max_memory = Some(512 * 1024 * 1024);
    });
    let mut connection = accept(&listener).await;
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let args = serde_json::json!([gate, 60]).to_string();
    connection
        .send(&ToWorker::Run(vec![assignment(
            9,
            1,
            "tasks:print_until",
            &args,
        )]))
        .await
        .unwrap();
    let mut usage = None;
    let mut printed = String::new();
    let deadline = Instant::now() + PATIENCE;
    while usage.is_none() || !printed.contains("first line") {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, connection.recv())
            .await
            .expect("usage and output in time")
        {
            Ok(Some(FromWorker::Usage(seen))) => usage = Some(seen),
            Ok(Some(FromWorker::Output(chunks))) => {
                for chunk in chunks {
                    assert_eq!((chunk.task, chunk.attempt), (TaskId(9), Attempt(1)));
                    printed.push_str(&chunk.text);
                }
            }
            Ok(Some(FromWorker::Reports(reports))) => {
                panic!("reported before its output: {reports:?}")
            }
            Ok(Some(_)) => {}
            other => panic!("the connection ended: {other:?}"),
        }
    }
    let usage = usage.unwrap();
    assert_eq!(usage.slots.len(), 1);
    assert!(
        usage.slots.iter().all(|s| s.pid > 0 && s.rss > 1024 * 1024),
        "{usage:?}"
    );
    assert_eq!(usage.max_memory, Some(512 * 1024 * 1024));
    std::fs::write(&gate, "open").unwrap();
    let report = report_of(&mut connection, 9).await;
    assert_eq!(report.output.stdout, "first line\nafter the gate\n");
    worker.stop().await.unwrap();
}
