//! Bytes that are not the protocol on the coordinator's port: each such connection is closed
//! (with a `Refused` reply where a hello could be read), and the workers and the CLI are unaffected.

use crate::TASK_TIMEOUT;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};
use tatzelwurm_e2e::{example, Cluster, WorkerSpec};
use tatzelwurm_proto::codec::{decode, encode};
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role};
use tatzelwurm_proto::PROTOCOL_VERSION;

/// How many tasks complete while the port is flooded.
const TASKS: usize = 100;
/// How long the coordinator may take to close a connection that broke the protocol.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Garbage, an oversized length prefix, an HTTP request and wrong hellos are turned away while
/// 100 tasks complete, and the coordinator serves its worker and the CLI on.
#[test]
fn garbage_on_the_port_leaves_everything_else_working() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let worker_id = cluster.workers()[0]["id"].clone();
    let addr = cluster.addr().to_string();
    // Half a length prefix, then silence: a stalled peer must not hold anyone else up.
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled.write_all(&[0, 0]).unwrap();

    let lines = vec!["[0.01]".to_string(); TASKS];
    cluster.add_from_file(&example("sleep"), &lines, true);
    thread::scope(|s| {
        let flood = s.spawn(|| {
            for round in 0..10u64 {
                probe_all(&addr, round);
            }
        });
        let wait = ["task", "wait", "-a", "--timeout", "120"];
        cluster.action_within(&wait, TASK_TIMEOUT * 5).ok();
        flood.join().expect("every probe was turned away");
    });

    assert_eq!(cluster.list(&["completed"]).len(), TASKS);
    let workers = cluster.workers();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(
        workers[0]["id"], worker_id,
        "the worker kept its connection"
    );
    let next = cluster.add(&example("square"), "[6]");
    assert_eq!(cluster.wait_completed(next, TASK_TIMEOUT)["result"], 36);
    drop(stalled);
}

/// One round of every kind of bad peer.
fn probe_all(addr: &str, round: u64) {
    let mut body = noise(round, 256);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.append(&mut body);
    assert_closed(addr, "a frame of random bytes", &frame);

    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend(noise(round + 1000, 64));
    assert_closed(addr, "a 4 GiB length prefix", &huge);

    let http = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_closed(addr, "an HTTP request", http);

    let old = Hello {
        version: PROTOCOL_VERSION + 100,
        ..actioner_hello()
    };
    let reason = assert_refused(addr, "a hello of another protocol version", &old);
    assert!(reason.contains("version"), "refusal: {reason}");

    let stranger = Hello {
        magic: *b"NOPE",
        ..actioner_hello()
    };
    assert_refused(addr, "a hello with the wrong magic", &stranger);

    assert_closed_after_welcome(addr, round);
}

fn actioner_hello() -> Hello {
    Hello::new(Role::Actioner {
        name: "garbage-test".to_string(),
    })
}

/// Sends `bytes` and expects the coordinator to close the connection (it may reply first).
fn assert_closed(addr: &str, what: &str, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).unwrap();
    send_ignoring_close(&mut stream, bytes);
    read_until_closed(&mut stream, what);
}

/// Sends `hello` and expects a `Refused` reply, then the close; returns the reason.
fn assert_refused(addr: &str, what: &str, hello: &Hello) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    send_frame(&mut stream, &encode(hello).unwrap());
    let reply: HelloReply = read_frame(&mut stream, what);
    let HelloReply::Refused { reason } = reply else {
        panic!("{what} was answered with {reply:?}, not Refused");
    };
    read_until_closed(&mut stream, what);
    reason
}

/// A correct hello is welcomed; a garbage frame after it closes that connection.
fn assert_closed_after_welcome(addr: &str, round: u64) {
    let what = "a garbage frame after a welcome";
    let mut stream = TcpStream::connect(addr).unwrap();
    send_frame(&mut stream, &encode(&actioner_hello()).unwrap());
    let reply: HelloReply = read_frame(&mut stream, what);
    assert!(matches!(reply, HelloReply::Welcome(_)), "{reply:?}");
    send_ignoring_close(&mut stream, &{
        let mut frame = 64u32.to_be_bytes().to_vec();
        frame.extend(noise(round + 2000, 64));
        frame
    });
    read_until_closed(&mut stream, what);
}

fn send_frame(stream: &mut TcpStream, body: &[u8]) {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    stream.write_all(&frame).unwrap();
}

/// Writes `bytes`; the coordinator may already have closed the connection, which is what the
/// test expects anyway.
fn send_ignoring_close(stream: &mut TcpStream, bytes: &[u8]) {
    if let Err(e) = stream.write_all(bytes) {
        assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "writing failed unexpectedly: {e}"
        );
    }
}

/// Reads one frame and decodes it, within the close timeout.
fn read_frame<T: serde::de::DeserializeOwned>(stream: &mut TcpStream, what: &str) -> T {
    stream.set_read_timeout(Some(CLOSE_TIMEOUT)).unwrap();
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .unwrap_or_else(|e| panic!("no reply to {what}: {e}"));
    let len = u32::from_be_bytes(len) as usize;
    assert!(len < 1 << 20, "a reply of {len} bytes to {what}");
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    decode(&body).unwrap_or_else(|e| panic!("the reply to {what} does not decode: {e}"))
}

/// Reads (and drops) whatever comes until the coordinator closes the connection.
fn read_until_closed(stream: &mut TcpStream, what: &str) {
    let start = Instant::now();
    stream.set_read_timeout(Some(CLOSE_TIMEOUT)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!(
                "the coordinator kept the connection open {:?} after {what}: {e}",
                start.elapsed()
            ),
        }
        assert!(
            start.elapsed() < CLOSE_TIMEOUT,
            "the coordinator kept talking after {what}"
        );
    }
}

/// `len` bytes of deterministic noise (xorshift), different for each seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
