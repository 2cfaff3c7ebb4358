//! Peers that break the protocol in ways `garbage` does not cover: silence and a hello dripped
//! too slowly (the handshake timeout), a valid frame of the other role, thousands of idle
//! connections at once, and frames cut short or announced as 4 GiB after a welcome. Each such
//! connection is closed (with a `Refused` reply where the hello was the problem), memory stays
//! bounded, and the coordinator keeps serving its real worker and the CLI.

use crate::TASK_TIMEOUT;
use serde::de::DeserializeOwned;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};
use tatzelwurm_e2e::{example, open_fds, wait_for, Cluster, WorkerSpec};
use tatzelwurm_proto::actioner::{Command, FromActioner, Selection};
use tatzelwurm_proto::codec::{decode, encode};
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role, WorkerHello};
use tatzelwurm_proto::task::{Outcome, TaskOutput, DEFAULT_QUEUE};
use tatzelwurm_proto::worker::{FromWorker, Report};
use tatzelwurm_proto::{Attempt, RequestId, TaskId};

/// The handshake timeout of the clusters here, in seconds, as passed on the command line.
const HANDSHAKE_TIMEOUT: &str = "0.5";
/// How long after connecting a peer that never completes its hello may still be connected: the
/// handshake timeout of 0.5 s with room for a loaded machine.
const SILENT_CLOSE_LIMIT: Duration = Duration::from_secs(2);
/// How long the coordinator may take to close a connection that broke the protocol after its
/// welcome (no timeout involved: it should be at once).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections opened at once.
const IDLE_CONNECTIONS: usize = 2_000;
/// The handshake timeout of the idle-connections test: long enough to open them all, measure,
/// and use the cluster while all of them are open, on a machine running the rest of the suite.
const IDLE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How much the coordinator's resident memory may grow with `IDLE_CONNECTIONS` open.
const MAX_RSS_GROWTH_KB: u64 = 100 * 1024;

/// A client that connects and sends nothing, one that sends half a length prefix, and one that
/// stops in the middle of its hello are each closed within 2 s by a coordinator with a 0.5 s
/// handshake timeout, and the coordinator still answers the CLI.
#[test]
fn silent_and_stalled_clients_are_closed_after_the_handshake_timeout() {
    let cluster = Cluster::start_with_args(&["--handshake-timeout", HANDSHAKE_TIMEOUT]);
    let addr = cluster.addr();
    let hello = encode(&actioner_hello()).unwrap();
    let mut half_hello = frame(&hello);
    half_hello.truncate(4 + hello.len() / 2);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a client that sends nothing", Vec::new()),
        ("a client that sends half a length prefix", vec![0, 0]),
        ("a client that stops in the middle of its hello", half_hello),
    ];
    let start = Instant::now();
    let mut streams: Vec<(&str, TcpStream)> = cases
        .into_iter()
        .map(|(what, bytes)| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(&bytes).unwrap();
            (what, stream)
        })
        .collect();
    for (what, stream) in &mut streams {
        let closed_after = expect_refused_or_closed(stream, what, start, SILENT_CLOSE_LIMIT);
        println!("{what}: closed {closed_after:?} after connecting");
        assert!(
            closed_after >= Duration::from_millis(400),
            "{what} was closed after {closed_after:?}, before the 0.5 s handshake timeout"
        );
    }
    assert!(cluster.list(&[]).is_empty());
}

/// A client that sends a valid hello one byte every 150 ms (so it would take seconds to finish)
/// is closed once the 0.5 s handshake timeout has passed: the limit is on the whole hello, not
/// on each read.
#[test]
fn a_hello_dripped_slowly_is_closed_after_the_handshake_timeout() {
    let cluster = Cluster::start_with_args(&["--handshake-timeout", HANDSHAKE_TIMEOUT]);
    let hello = frame(&encode(&actioner_hello()).unwrap());
    let drip = Duration::from_millis(150);
    assert!(
        drip * hello.len() as u32 > SILENT_CLOSE_LIMIT,
        "the drip must outlast the limit"
    );
    let start = Instant::now();
    let mut stream = TcpStream::connect(cluster.addr()).unwrap();
    // The read timeout paces the drip: each byte goes out after a read found nothing for 150 ms.
    stream.set_read_timeout(Some(drip)).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let closed_after = 'drip: {
        for &byte in &hello {
            if stream.write_all(&[byte]).is_err() {
                break 'drip start.elapsed();
            }
            match stream.read(&mut buf) {
                Ok(0) => break 'drip start.elapsed(),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if is_reset(&e) => break 'drip start.elapsed(),
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("reading failed unexpectedly: {e}"),
            }
            assert!(
                start.elapsed() < SILENT_CLOSE_LIMIT,
                "a hello dripped for {:?} is still being read; received so far {received:?}",
                start.elapsed()
            );
        }
        panic!(
            "the whole hello was dripped in {:?} without the coordinator closing",
            start.elapsed()
        );
    };
    println!("a hello dripped at one byte per {drip:?}: closed after {closed_after:?}");
    assert!(closed_after < SILENT_CLOSE_LIMIT, "{closed_after:?}");
    if !received.is_empty() {
        let reply: HelloReply = decode_frame(&received, "the dripped hello");
        assert!(matches!(reply, HelloReply::Refused { .. }), "{reply:?}");
    }
    assert!(cluster.list(&[]).is_empty());
}

/// A well-formed worker report sent on an actioner's connection, and a well-formed actioner
/// request sent on a worker's connection, each close that connection without acting on it: the
/// forged result is not recorded, the forged kill kills nothing, and the real worker runs on.
#[test]
fn a_valid_frame_of_the_wrong_role_closes_the_connection() {
    let cluster = Cluster::start_with_args(&["--handshake-timeout", HANDSHAKE_TIMEOUT]);
    let _worker = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let worker_id = cluster.workers()[0]["id"].clone();
    // Not played, so no worker can be given it while the forged frames arrive.
    let target = cluster.add_created(&example("square"), "[7]");

    let forged_report = FromWorker::Reports(vec![Report {
        task: TaskId(target),
        attempt: Attempt(1),
        outcome: Outcome::Completed {
            result: "666".to_string(),
        },
        output: TaskOutput::default(),
    }]);
    let body = encode(&forged_report).unwrap();
    assert!(
        decode::<FromActioner>(&body).is_err(),
        "the forged report must not also be a valid actioner request, or this test proves nothing"
    );
    let mut actioner = handshake(cluster.addr(), actioner_hello());
    send_ignoring_close(&mut actioner, &frame(&body));
    expect_closed(
        &mut actioner,
        "a worker's report on an actioner's connection",
    );

    let forged_kill = FromActioner {
        request: RequestId(1),
        command: Command::Kill(Selection::All),
    };
    let body = encode(&forged_kill).unwrap();
    assert!(
        decode::<FromWorker>(&body).is_err(),
        "the forged request must not also be a valid worker message, or this test proves nothing"
    );
    let mut imposter = handshake(cluster.addr(), worker_hello("imposter"));
    send_ignoring_close(&mut imposter, &frame(&body));
    expect_closed(
        &mut imposter,
        "an actioner's request on a worker's connection",
    );

    let task = cluster.show(target);
    assert_eq!(task["state"], "created", "the forged frames changed {task}");
    assert_eq!(task["result"], serde_json::Value::Null, "{task}");
    wait_for("the imposter to leave `worker list`", CLOSE_TIMEOUT, || {
        let workers = cluster.workers();
        (workers.len() == 1).then_some(workers)
    });
    assert_eq!(
        cluster.workers()[0]["id"],
        worker_id,
        "w1 kept its connection"
    );
    cluster.action(&["task", "play", &target.to_string()]).ok();
    assert_eq!(cluster.wait_completed(target, TASK_TIMEOUT)["result"], 49);
}

/// 2,000 connections that send nothing or half a length prefix, open at once, cost the
/// coordinator less than 100 MB of resident memory; meanwhile its worker completes tasks and
/// `task add` and `task list` answer; once the handshake timeout has passed every one of them
/// has been closed.
#[test]
fn thousands_of_idle_connections_keep_memory_bounded() {
    raise_open_file_limit(IDLE_CONNECTIONS as u64 * 2 + 1024);
    let timeout = IDLE_HANDSHAKE_TIMEOUT.as_secs_f64().to_string();
    let mut cluster = Cluster::start_with_args(&["--handshake-timeout", &timeout]);
    let pid = cluster.coordinator().proc.pid();
    let _worker = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let warm = cluster.add_from_file(&example("sleep"), &vec!["[0.001]".to_string(); 20], true);
    cluster.wait_completed(*warm.last().unwrap(), TASK_TIMEOUT);
    let rss_before = vm_rss_kb(pid);
    let fds_before = open_fds(pid);

    // Tasks that keep the worker busy while the connections are opened.
    let busy = cluster.add_from_file(&example("sleep"), &vec!["[0.01]".to_string(); 100], true);
    let opened_at = Instant::now();
    let mut idle = open_idle_connections(cluster.addr(), pid, fds_before);
    println!(
        "{IDLE_CONNECTIONS} idle connections opened and accepted in {:?}",
        opened_at.elapsed()
    );
    let rss_with = vm_rss_kb(pid);
    println!(
        "coordinator VmRSS: {rss_before} kB before, {rss_with} kB with {IDLE_CONNECTIONS} idle \
         connections open ({:+} kB); {} fds before, {} with",
        rss_with as i64 - rss_before as i64,
        fds_before,
        open_fds(pid)
    );
    assert!(
        rss_with < rss_before + MAX_RSS_GROWTH_KB,
        "{IDLE_CONNECTIONS} idle connections grew the coordinator from {rss_before} kB to {rss_with} kB"
    );

    // The cluster works while they are all open.
    let more = cluster.add_from_file(&example("square"), &crate::number_lines(0..20), true);
    assert!(cluster.list(&[]).len() >= busy.len() + more.len());
    let wait = ["task", "wait", "-a", "--timeout", "60"];
    cluster.action_within(&wait, TASK_TIMEOUT * 2).ok();
    assert_eq!(cluster.show(more[19])["result"], 361);
    assert_eq!(
        cluster.list(&["completed"]).len(),
        warm.len() + busy.len() + more.len()
    );
    let still_open = open_fds(pid);
    assert!(
        still_open >= fds_before + IDLE_CONNECTIONS,
        "the idle connections were gone ({still_open} fds) before the work was done after \
         {:?}, so this test did not use the cluster while they were open",
        opened_at.elapsed()
    );

    // After the handshake timeout, every one of them has been closed by the coordinator.
    let deadline = opened_at + IDLE_HANDSHAKE_TIMEOUT + Duration::from_secs(10);
    for (i, stream) in idle.iter_mut().enumerate() {
        let what = format!("idle connection {i}");
        expect_refused_or_closed(stream, &what, opened_at, deadline - opened_at);
    }
    println!(
        "all {IDLE_CONNECTIONS} idle connections closed {:?} after they were opened",
        opened_at.elapsed()
    );
    drop(idle);
    wait_for(
        "the coordinator to release the idle connections' fds",
        CLOSE_TIMEOUT,
        || (open_fds(pid) < fds_before + 10).then_some(()),
    );
}

/// After a welcome, a frame cut short by a close and a 4 GiB length prefix each close that
/// connection, for an actioner and for a worker; the real worker keeps its connection and the
/// CLI keeps working.
#[test]
fn a_cut_frame_or_a_4_gib_prefix_after_the_hello_closes_that_connection() {
    let cluster = Cluster::start_with_args(&["--handshake-timeout", HANDSHAKE_TIMEOUT]);
    let _worker = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let worker_id = cluster.workers()[0]["id"].clone();
    let first = cluster.add(&example("square"), "[3]");
    cluster.wait_completed(first, TASK_TIMEOUT);

    // A frame of 100 bytes of which 10 arrive, then the client closes its side.
    let mut cut = 100u32.to_be_bytes().to_vec();
    cut.extend([7u8; 10]);
    // A frame announced within MAX_FRAME_LEN (60 MiB) that stops after 1 KiB.
    let mut big_cut = (60u32 << 20).to_be_bytes().to_vec();
    big_cut.extend([7u8; 1024]);
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend([7u8; 64]);
    let cases: [(&str, &[u8], bool); 3] = [
        ("a frame cut short after 10 of its 100 bytes", &cut, true),
        ("a 60 MiB frame cut short after 1 KiB", &big_cut, true),
        ("a 4 GiB length prefix", &huge, false),
    ];
    for (what, bytes, close_ours) in cases {
        for (role, hello) in [
            ("an actioner", actioner_hello()),
            ("a worker", worker_hello("cut-short")),
        ] {
            let what = format!("{what} from {role}");
            let mut stream = handshake(cluster.addr(), hello);
            send_ignoring_close(&mut stream, bytes);
            if close_ours {
                let _ = stream.shutdown(Shutdown::Write);
            }
            expect_closed(&mut stream, &what);
        }
    }

    wait_for(
        "the fake workers to leave `worker list`",
        CLOSE_TIMEOUT,
        || {
            let workers = cluster.workers();
            (workers.len() == 1).then_some(workers)
        },
    );
    assert_eq!(
        cluster.workers()[0]["id"],
        worker_id,
        "w1 kept its connection"
    );
    let next = cluster.add(&example("square"), "[9]");
    assert_eq!(cluster.wait_completed(next, TASK_TIMEOUT)["result"], 81);
}

/// Opens `IDLE_CONNECTIONS` connections to the coordinator `pid` listening on `addr`; every
/// second one sends half a length prefix, the others nothing. They are opened in batches that
/// fit the listen backlog, each batch once the coordinator has accepted the one before (seen in
/// its open fds): a burst beyond the backlog makes the kernel drop SYNs, and each dropped one
/// costs its connect a second, which would measure the backlog rather than the coordinator.
fn open_idle_connections(addr: &str, pid: i32, fds_before: usize) -> Vec<TcpStream> {
    const BATCH: usize = 100;
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    while idle.len() < IDLE_CONNECTIONS {
        for _ in 0..BATCH.min(IDLE_CONNECTIONS - idle.len()) {
            let i = idle.len();
            let mut stream = TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("idle connection {i} could not connect: {e}"));
            if i % 2 == 1 {
                stream.write_all(&[0, 0]).unwrap();
            }
            idle.push(stream);
        }
        let opened = idle.len();
        wait_for(
            &format!("the coordinator to accept {opened} idle connections"),
            CLOSE_TIMEOUT,
            || (open_fds(pid) >= fds_before + opened).then_some(()),
        );
    }
    idle
}

// ---------------------------------------------------------------------------------------------
// Talking to the coordinator byte by byte.

fn actioner_hello() -> Hello {
    Hello::new(Role::Actioner {
        name: "bad-input-test".to_string(),
    })
}

fn worker_hello(name: &str) -> Hello {
    Hello::new(Role::Worker(WorkerHello {
        name: name.to_string(),
        slots: 1,
        python: "3.0.0".to_string(),
        queues: vec![DEFAULT_QUEUE.to_string()],
        async_concurrency: 1,
    }))
}

/// A frame: the 4-byte big-endian length, then `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// Connects, sends `hello` and expects a `Welcome`.
fn handshake(addr: &str, hello: Hello) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(&frame(&encode(&hello).unwrap())).unwrap();
    stream.set_read_timeout(Some(CLOSE_TIMEOUT)).unwrap();
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .unwrap_or_else(|e| panic!("no reply to {hello:?}: {e}"));
    let len = u32::from_be_bytes(len) as usize;
    assert!(len < 1 << 16, "a hello reply of {len} bytes");
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    let reply: HelloReply = decode(&body).unwrap();
    assert!(
        matches!(reply, HelloReply::Welcome(_)),
        "{hello:?} got {reply:?}"
    );
    stream
}

/// Writes `bytes`; the coordinator may already have closed the connection, which is what the
/// tests expect anyway.
fn send_ignoring_close(stream: &mut TcpStream, bytes: &[u8]) {
    if let Err(e) = stream.write_all(bytes) {
        assert!(is_reset(&e), "writing failed unexpectedly: {e}");
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads until the coordinator closes the connection, within `CLOSE_TIMEOUT`; whatever it sends
/// first (such as an error reply) is dropped.
fn expect_closed(stream: &mut TcpStream, what: &str) {
    let start = Instant::now();
    read_to_close(stream, what, start, CLOSE_TIMEOUT);
}

/// Reads until the connection, opened at `opened`, is closed no later than `limit` after that;
/// if anything came before the close it must be one `Refused` hello reply. Returns how long
/// after `opened` the close came.
fn expect_refused_or_closed(
    stream: &mut TcpStream,
    what: &str,
    opened: Instant,
    limit: Duration,
) -> Duration {
    let received = read_to_close(stream, what, opened, limit);
    if !received.is_empty() {
        let reply: HelloReply = decode_frame(&received, what);
        assert!(
            matches!(reply, HelloReply::Refused { .. }),
            "{what} was answered with {reply:?}"
        );
    }
    opened.elapsed()
}

/// Reads until EOF or a reset, failing once `limit` after `opened` has passed; returns the bytes
/// received.
fn read_to_close(stream: &mut TcpStream, what: &str, opened: Instant, limit: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(opened.elapsed());
        assert!(
            !left.is_zero(),
            "the coordinator kept {what} open for {:?} (limit {limit:?}); it sent {} bytes",
            opened.elapsed(),
            received.len()
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if is_reset(&e) => return received,
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("reading {what} failed unexpectedly: {e}"),
        }
    }
}

/// Decodes `bytes` as exactly one frame of a `T`.
fn decode_frame<T: DeserializeOwned + std::fmt::Debug>(bytes: &[u8], what: &str) -> T {
    assert!(bytes.len() >= 4, "{what}: {} stray bytes", bytes.len());
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(
        bytes.len(),
        4 + len,
        "{what}: received {} bytes, not one frame of {len}",
        bytes.len()
    );
    decode(&bytes[4..]).unwrap_or_else(|e| panic!("the reply to {what} does not decode: {e}"))
}

// ---------------------------------------------------------------------------------------------
// What /proc says about the coordinator.

/// `VmRSS` of `pid` in kB, from `/proc/<pid>/status`.
fn vm_rss_kb(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Raises this process's soft limit of open files to at least `wanted` (within the hard limit),
/// before the coordinator is started, so that both ends of every idle connection fit: the
/// coordinator inherits the limit.
fn raise_open_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur >= wanted {
            return;
        }
        assert!(
            limit.rlim_max >= wanted,
            "the hard limit of open files ({}) is below the {wanted} this test needs",
            limit.rlim_max
        );
        limit.rlim_cur = wanted;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}
