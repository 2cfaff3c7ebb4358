//! Property tests of the frame codec, the fuzz target of the wire format: whatever bytes a peer
//! sends, decoding yields a message or an error — never a panic, a hang, or an allocation the
//! bytes do not justify — and every message a peer can send decodes back to itself.
//!
//! Inputs are arbitrary bytes and valid encodings damaged by flipped bytes, inserted huge
//! lengths and truncation; the stream tests feed them in random chunks through a real
//! `Connection` over loopback. The number of cases is bounded (`CASES`, `STREAM_CASES`) so the
//! whole module runs in a few seconds as part of `cargo test --workspace`.
//!
//! The test binary's global allocator (below) records the largest single allocation of each
//! thread, which is how "never allocates absurdly" is checked.

use crate::actioner::{
    AddKey, Command, Failure, FailureKind, FromActioner, Reply, Selection, TaskEnd, ToActioner,
    WaitSummary, WorkerInfo,
};
use crate::codec::{decode, encode};
use crate::handshake::{Hello, HelloReply, Role, Welcome, WorkerHello};
use crate::ids::{Attempt, RequestId, TaskId, WorkerId};
use crate::queue::{QueueChange, QueueInfo};
use crate::schedule::{ScheduleChange, ScheduleInfo, ScheduleSpec, Trigger};
use crate::task::{
    Outcome, TaskError, TaskInfo, TaskOutput, TaskPolicy, TaskSpec, TaskState, Timestamp, When,
};
use crate::worker::{Assignment, FromWorker, Report, ToWorker};
use crate::{Connection, ProtoError, MAX_HELLO_LEN};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Cases of each decoding property: a few seconds in a debug build on 2 cores.
const CASES: u32 = 2000;
/// Cases of the stream test, each a loopback connection.
const STREAM_CASES: u32 = 200;
/// The largest single allocation a decode of a few KiB may make. serde preallocates at most
/// 1 MiB for a sequence whatever length the bytes claim (`size_hint::cautious`); anything near
/// a claimed length of megabytes or gigabytes would be far above this.
const MAX_DECODE_ALLOC: usize = 2 * 1024 * 1024;
/// How long one `recv` may take on a socket whose writer has already finished.
const RECV_LIMIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Allocation tracking.

/// The system allocator, noting the largest request made on each thread.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: during thread teardown the slot may be gone; then nothing is noted.
    let _ = LARGEST.try_with(|largest| {
        if largest.get() < size {
            largest.set(size);
        }
    });
}

// SAFETY: every call is passed on unchanged to the system allocator; noting a size touches only
// a const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns its value with the largest single allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    let value = f();
    (value, LARGEST.with(Cell::get))
}

// ---------------------------------------------------------------------------------------------
// Strategies for every message on the wire.

fn text() -> impl Strategy<Value = String> {
    "(?s).{0,12}"
}

fn task_id() -> impl Strategy<Value = TaskId> {
    any::<u64>().prop_map(TaskId)
}

fn attempt() -> impl Strategy<Value = Attempt> {
    any::<u32>().prop_map(Attempt)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    any::<u64>().prop_map(Timestamp)
}

fn state() -> impl Strategy<Value = TaskState> {
    proptest::sample::select(TaskState::ALL.to_vec())
}

fn policy() -> impl Strategy<Value = TaskPolicy> {
    (
        any::<bool>(),
        any::<u32>(),
        any::<u64>(),
        any::<Option<u64>>(),
        any::<u32>(),
    )
        .prop_map(
            |(at_most_once, retries, backoff_ms, timeout_ms, crash_limit)| TaskPolicy {
                at_most_once,
                retries,
                backoff_ms,
                timeout_ms,
                crash_limit,
            },
        )
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        any::<u64>().prop_map(When::Delay),
        timestamp().prop_map(When::At)
    ]
}

fn spec() -> impl Strategy<Value = TaskSpec> {
    (
        (text(), text(), text(), policy()),
        (
            text(),
            any::<i8>(),
            proptest::option::of(when()),
            vec(task_id(), 0..3),
        ),
    )
        .prop_map(
            |((function, args, kwargs, policy), (queue, priority, run_at, after))| TaskSpec {
                function,
                args,
                kwargs,
                policy,
                queue,
                priority,
                run_at,
                after,
            },
        )
}

fn trigger() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        any::<u64>().prop_map(Trigger::Every),
        (text(), proptest::option::of(text())).prop_map(|(line, tz)| Trigger::Cron { line, tz })
    ]
}

fn schedule_spec() -> impl Strategy<Value = ScheduleSpec> {
    (text(), trigger(), spec()).prop_map(|(name, trigger, task)| ScheduleSpec {
        name,
        trigger,
        task,
    })
}

fn queue_change() -> impl Strategy<Value = QueueChange> {
    prop_oneof![
        Just(QueueChange::Pause),
        Just(QueueChange::Resume),
        any::<u32>().prop_map(QueueChange::Limit)
    ]
}

fn schedule_change() -> impl Strategy<Value = ScheduleChange> {
    prop_oneof![
        Just(ScheduleChange::Pause),
        Just(ScheduleChange::Resume),
        Just(ScheduleChange::Remove)
    ]
}

fn selection() -> impl Strategy<Value = Selection> {
    prop_oneof![
        vec(task_id(), 0..4).prop_map(Selection::Ids),
        Just(Selection::All)
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            vec(spec(), 0..3),
            any::<bool>(),
            proptest::option::of(any::<[u8; 16]>()),
            any::<bool>()
        )
            .prop_map(|(tasks, play, key, watch)| Command::Add {
                tasks,
                play,
                key: key.map(AddKey),
                watch
            }),
        selection().prop_map(Command::Play),
        selection().prop_map(Command::Pause),
        selection().prop_map(Command::Kill),
        (
            vec(state(), 0..4),
            proptest::option::of(text()),
            proptest::option::of(task_id()),
            any::<u32>()
        )
            .prop_map(|(states, queue, after, limit)| Command::List {
                states,
                queue,
                after,
                limit
            }),
        task_id().prop_map(Command::Show),
        selection().prop_map(Command::Wait),
        Just(Command::Workers),
        vec(task_id(), 0..4).prop_map(Command::Watch),
        Just(Command::Queues),
        (text(), queue_change()).prop_map(|(name, change)| Command::Queue { name, change }),
        schedule_spec().prop_map(Command::AddSchedule),
        proptest::option::of(text()).prop_map(Command::Schedules),
        (text(), schedule_change()).prop_map(|(name, change)| Command::Schedule { name, change }),
    ]
}

fn from_actioner() -> impl Strategy<Value = FromActioner> {
    (any::<u64>(), command()).prop_map(|(request, command)| FromActioner {
        request: RequestId(request),
        command,
    })
}

fn task_error() -> impl Strategy<Value = TaskError> {
    (text(), text(), text()).prop_map(|(kind, message, traceback)| TaskError {
        kind,
        message,
        traceback,
    })
}

fn output() -> impl Strategy<Value = TaskOutput> {
    (text(), text()).prop_map(|(stdout, stderr)| TaskOutput { stdout, stderr })
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        text().prop_map(|result| Outcome::Completed { result }),
        task_error().prop_map(|error| Outcome::Failed { error }),
        Just(Outcome::Killed),
    ]
}

fn report() -> impl Strategy<Value = Report> {
    (task_id(), attempt(), outcome(), output()).prop_map(|(task, attempt, outcome, output)| {
        Report {
            task,
            attempt,
            outcome,
            output,
        }
    })
}

fn from_worker() -> impl Strategy<Value = FromWorker> {
    prop_oneof![
        vec(report(), 0..3).prop_map(FromWorker::Reports),
        vec((task_id(), attempt()), 0..4).prop_map(|running| FromWorker::Heartbeat { running }),
        Just(FromWorker::Draining),
        vec((task_id(), attempt()), 0..4).prop_map(FromWorker::Started),
        vec((task_id(), attempt()), 0..4).prop_map(FromWorker::Returned),
        vec(text(), 0..3).prop_map(FromWorker::Coroutines),
    ]
}

fn to_worker() -> impl Strategy<Value = ToWorker> {
    let assignment = (task_id(), attempt(), spec()).prop_map(|(task, attempt, spec)| Assignment {
        task,
        attempt,
        spec,
    });
    prop_oneof![
        vec(assignment, 0..3).prop_map(ToWorker::Run),
        vec((task_id(), attempt()), 0..4).prop_map(ToWorker::Kill),
        vec((task_id(), attempt()), 0..4).prop_map(ToWorker::Recorded),
        vec((task_id(), attempt()), 0..4).prop_map(ToWorker::TakeBack),
    ]
}

fn task_info() -> impl Strategy<Value = TaskInfo> {
    let head = (
        task_id(),
        state(),
        spec(),
        proptest::option::of(text()),
        proptest::option::of(task_error()),
        proptest::option::of(text()),
        attempt(),
    );
    let tail = (
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(timestamp()),
        timestamp(),
        proptest::option::of(timestamp()),
        proptest::option::of(timestamp()),
        proptest::option::of(output()),
    );
    (head, tail).prop_map(
        |(
            (id, state, spec, result, error, worker, attempts),
            (failures, crashes, retry_at, created_at, started_at, finished_at, output),
        )| TaskInfo {
            id,
            state,
            spec,
            result,
            error,
            worker,
            attempts,
            failures,
            crashes,
            retry_at,
            created_at,
            started_at,
            finished_at,
            output,
        },
    )
}

fn worker_info() -> impl Strategy<Value = WorkerInfo> {
    (
        any::<u64>(),
        text(),
        text(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        text(),
        (timestamp(), any::<bool>()),
    )
        .prop_map(
            |(id, name, address, slots, running, done, python, (connected_at, draining))| {
                WorkerInfo {
                    id: WorkerId(id),
                    name,
                    address,
                    slots,
                    running,
                    queued: running / 2,
                    done,
                    python,
                    connected_at,
                    held_off_until: draining.then_some(connected_at),
                    usage: None,
                    draining,
                    queues: vec!["q".repeat(slots as usize % 3)],
                    async_concurrency: slots / 3,
                }
            },
        )
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        vec(task_id(), 0..4).prop_map(Reply::Added),
        (vec(task_id(), 0..3), vec((task_id(), state()), 0..3))
            .prop_map(|(changed, unchanged)| Reply::Changed { changed, unchanged }),
        (vec(task_info(), 0..2), any::<bool>())
            .prop_map(|(tasks, more)| Reply::Tasks { tasks, more }),
        task_info().prop_map(|info| Reply::Task(Box::new(info))),
        (
            vec((state(), any::<u64>()), 0..3),
            vec(task_info(), 0..2),
            any::<u64>()
        )
            .prop_map(|(counts, unsuccessful, earlier_unsuccessful)| {
                Reply::Waited(WaitSummary {
                    counts,
                    unsuccessful,
                    earlier_unsuccessful,
                })
            }),
        vec(worker_info(), 0..2).prop_map(Reply::Workers),
        Just(Reply::Watching),
        vec(task_info(), 0..2)
            .prop_map(|infos| Reply::Finished(infos.iter().map(TaskEnd::from).collect())),
        (failure_kind(), text())
            .prop_map(|(kind, message)| Reply::Error(Failure { kind, message })),
        vec(queue_info(), 0..2).prop_map(Reply::Queues),
        vec(schedule_info(), 0..2).prop_map(Reply::Schedules),
    ]
}

fn queue_info() -> impl Strategy<Value = QueueInfo> {
    (
        text(),
        any::<bool>(),
        any::<u32>(),
        vec((state(), any::<u64>()), 0..3),
        vec(text(), 0..2),
    )
        .prop_map(|(name, paused, limit, counts, workers)| QueueInfo {
            name,
            paused,
            limit,
            counts,
            workers,
        })
}

fn schedule_info() -> impl Strategy<Value = ScheduleInfo> {
    (
        schedule_spec(),
        any::<bool>(),
        timestamp(),
        proptest::option::of(timestamp()),
        any::<u64>(),
        vec((task_id(), timestamp()), 0..3),
    )
        .prop_map(
            |(spec, paused, created_at, next_at, fired, last)| ScheduleInfo {
                spec,
                paused,
                created_at,
                next_at,
                fired,
                last,
            },
        )
}

fn failure_kind() -> impl Strategy<Value = FailureKind> {
    prop_oneof![
        Just(FailureKind::UnknownTask),
        Just(FailureKind::BadRequest),
        Just(FailureKind::TooLarge),
        Just(FailureKind::Stopping),
        Just(FailureKind::Internal),
        Just(FailureKind::UnknownQueue),
        Just(FailureKind::UnknownSchedule),
        Just(FailureKind::ScheduleExists),
    ]
}

fn to_actioner() -> impl Strategy<Value = ToActioner> {
    (any::<u64>(), reply()).prop_map(|(request, reply)| ToActioner {
        request: RequestId(request),
        reply,
    })
}

fn hello() -> impl Strategy<Value = Hello> {
    let worker = (
        text(),
        any::<u32>(),
        text(),
        vec(text(), 0..3),
        any::<u32>(),
    )
        .prop_map(|(name, slots, python, queues, async_concurrency)| {
            Role::Worker(WorkerHello {
                name,
                slots,
                python,
                queues,
                async_concurrency,
            })
        });
    let role = prop_oneof![worker, text().prop_map(|name| Role::Actioner { name })];
    (any::<[u8; 4]>(), any::<u32>(), role, text()).prop_map(|(magic, version, role, token)| Hello {
        magic,
        version,
        role,
        token,
    })
}

fn hello_reply() -> impl Strategy<Value = HelloReply> {
    prop_oneof![
        (proptest::option::of(any::<u64>()), any::<u64>()).prop_map(|(id, heartbeat_ms)| {
            HelloReply::Welcome(Welcome {
                worker_id: id.map(WorkerId),
                heartbeat_ms,
            })
        }),
        text().prop_map(|reason| HelloReply::Refused { reason }),
    ]
}

/// The encoding of any message of any type: the raw material of the damaged inputs.
fn any_encoding() -> impl Strategy<Value = Vec<u8>> {
    fn bytes<T: Serialize>(message: T) -> Vec<u8> {
        encode(&message)
            .expect("every generated message encodes")
            .to_vec()
    }
    prop_oneof![
        hello().prop_map(bytes),
        hello_reply().prop_map(bytes),
        from_worker().prop_map(bytes),
        to_worker().prop_map(bytes),
        from_actioner().prop_map(bytes),
        to_actioner().prop_map(bytes),
    ]
}

/// One way of damaging an encoding.
#[derive(Debug, Clone)]
enum Damage {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Insert a varint claiming a huge length or count (bincode: 0xFC = u32 follows, 0xFD = u64).
    HugeLength(Index, bool),
    /// Drop everything from here on.
    Truncate(Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => (any::<Index>(), 1..=255u8).prop_map(|(at, mask)| Damage::Flip(at, mask)),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(at, wide)| Damage::HugeLength(at, wide)),
        1 => any::<Index>().prop_map(Damage::Truncate),
    ]
}

/// A valid encoding with one to eight kinds of damage applied, in order.
fn damaged_encoding() -> impl Strategy<Value = Vec<u8>> {
    (any_encoding(), vec(damage(), 1..8)).prop_map(|(mut bytes, damages)| {
        for damage in damages {
            if bytes.is_empty() {
                break;
            }
            match damage {
                Damage::Flip(at, mask) => {
                    let at = at.index(bytes.len());
                    bytes[at] ^= mask;
                }
                Damage::HugeLength(at, wide) => {
                    let at = at.index(bytes.len() + 1);
                    let huge: &[u8] = if wide {
                        &[0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
                    } else {
                        &[0xFC, 0xFF, 0xFF, 0xFF, 0x7F]
                    };
                    bytes.splice(at..at, huge.iter().copied());
                }
                Damage::Truncate(at) => bytes.truncate(at.index(bytes.len())),
            }
        }
        bytes
    })
}

/// Arbitrary bytes, or a damaged valid encoding, up to a few KiB.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..4096), damaged_encoding()]
}

// ---------------------------------------------------------------------------------------------
// Decoding never panics and never allocates absurdly.

/// Decodes `bytes` as a `T`, checking the largest allocation; `Ok` or `Err` are both fine.
fn decode_bounded<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (_, largest) = largest_allocation(|| decode::<T>(bytes).map(drop));
    prop_assert!(
        largest <= MAX_DECODE_ALLOC,
        "decoding {} bytes as {} allocated {largest} bytes at once",
        bytes.len(),
        std::any::type_name::<T>()
    );
    Ok(())
}

/// `CASES` cases, and no regression files written into the source tree: a failure prints its
/// minimal input, which is what to turn into a plain unit test.
fn config(cases: u32) -> Config {
    Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    /// Arbitrary and damaged bytes decode as each message type to a message or an error,
    /// without a panic and without an allocation of more than `MAX_DECODE_ALLOC` at once.
    #[test]
    fn hostile_bytes_decode_to_a_message_or_an_error(bytes in hostile_bytes()) {
        decode_bounded::<Hello>(&bytes)?;
        decode_bounded::<HelloReply>(&bytes)?;
        decode_bounded::<FromWorker>(&bytes)?;
        decode_bounded::<ToWorker>(&bytes)?;
        decode_bounded::<FromActioner>(&bytes)?;
        decode_bounded::<ToActioner>(&bytes)?;
    }

    /// Every request of an actioner encodes and decodes back to itself.
    #[test]
    fn from_actioner_round_trips(message in from_actioner()) {
        prop_assert_eq!(round_trip(&message)?, message);
    }

    /// Every message of a worker encodes and decodes back to itself.
    #[test]
    fn from_worker_round_trips(message in from_worker()) {
        prop_assert_eq!(round_trip(&message)?, message);
    }

    /// Every message to a worker or an actioner, and both sides of the handshake, encode and
    /// decode back to themselves.
    #[test]
    fn replies_and_hellos_round_trip(
        to_worker in to_worker(),
        to_actioner in to_actioner(),
        hello in hello(),
        hello_reply in hello_reply(),
    ) {
        prop_assert_eq!(round_trip(&to_worker)?, to_worker);
        prop_assert_eq!(round_trip(&to_actioner)?, to_actioner);
        prop_assert_eq!(round_trip(&hello)?, hello);
        prop_assert_eq!(round_trip(&hello_reply)?, hello_reply);
    }
}

fn round_trip<T: Serialize + DeserializeOwned>(message: &T) -> Result<T, TestCaseError> {
    let bytes = encode(message).map_err(|e| TestCaseError::fail(e.to_string()))?;
    decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e} in {bytes:?}")))
}

/// A length prefix of 40 MiB on a connection capped for a hello is refused from the prefix,
/// without reserving the announced size.
#[test]
fn a_huge_prefix_before_the_hello_reserves_nothing() {
    // The length codec reserves room for a frame's announced length as soon as it accepts the
    // prefix (after a welcome, up to MAX_FRAME_LEN per connection); the hello cap is what keeps
    // that small before a peer has introduced itself.
    let runtime = runtime();
    runtime.block_on(async {
        let (mut server, mut client) = pair().await;
        server.set_max_frame_len(MAX_HELLO_LEN);
        let mut bytes = (40u32 << 20).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 2, 3]);
        client.write_all(&bytes).await.unwrap();
        // A current-thread runtime polls `recv` on this thread, so its allocations are counted.
        LARGEST.with(|largest| largest.set(0));
        let err = tokio::time::timeout(RECV_LIMIT, server.recv()).await;
        let largest = LARGEST.with(Cell::get);
        let err = err.expect("recv answers at once").unwrap_err();
        assert!(matches!(err, ProtoError::FrameTooLarge), "{err}");
        assert!(
            largest < 1 << 20,
            "reserved {largest} bytes for a refused frame"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// A real connection fed in random chunks never hangs.

/// What the peer sends in one stream case.
#[derive(Debug, Clone)]
enum Stream {
    /// Arbitrary bytes, or frames of arbitrary or damaged bodies.
    Hostile(Vec<u8>),
    /// Valid frames of these messages, cut after `cut` bytes when given.
    Valid {
        messages: Vec<FromWorker>,
        cut: Option<Index>,
    },
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

fn stream() -> impl Strategy<Value = Stream> {
    let frames = vec(hostile_bytes(), 1..4).prop_map(|bodies| {
        let mut bytes = Vec::new();
        for body in bodies {
            bytes.extend(framed(&body));
        }
        bytes
    });
    prop_oneof![
        vec(any::<u8>(), 0..4096).prop_map(Stream::Hostile),
        frames.prop_map(Stream::Hostile),
        (
            vec(from_worker(), 0..5),
            proptest::option::of(any::<Index>())
        )
            .prop_map(|(messages, cut)| Stream::Valid { messages, cut }),
    ]
}

/// The bytes of a valid stream, and how many whole frames survive the cut.
fn valid_bytes(messages: &[FromWorker], cut: Option<Index>) -> (Vec<u8>, usize, bool) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for message in messages {
        bytes.extend(framed(&encode(message).unwrap()));
        ends.push(bytes.len());
    }
    let Some(cut) = cut else {
        return (bytes, messages.len(), true);
    };
    let len = cut.index(bytes.len() + 1);
    bytes.truncate(len);
    let whole = ends.iter().filter(|&&end| end <= len).count();
    // A cut exactly between frames (or before any) is a clean close.
    let clean = len == 0 || ends.contains(&len);
    (bytes, whole, clean)
}

async fn pair() -> (Connection<FromWorker, ToWorker>, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (Connection::new(server).unwrap(), client)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `bytes` in chunks of the given sizes (cycled), then closes the socket; a write the
/// reader refused by closing is fine.
async fn send_in_chunks(mut client: TcpStream, bytes: Vec<u8>, chunks: Vec<usize>) {
    let mut rest = &bytes[..];
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap()).min(rest.len());
        if client.write_all(&rest[..size]).await.is_err() {
            return;
        }
        rest = &rest[size..];
        tokio::task::yield_now().await;
    }
    let _ = client.shutdown().await;
}

/// Receives until the stream ends; each `recv` must answer within `RECV_LIMIT`. Returns the
/// messages and how the stream ended (`Ok` for a clean close).
async fn receive_all(
    server: &mut Connection<FromWorker, ToWorker>,
) -> Result<(Vec<FromWorker>, Result<(), String>), TestCaseError> {
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(RECV_LIMIT, server.recv()).await {
            Err(_) => {
                return Err(TestCaseError::fail(format!(
                "recv hung for {RECV_LIMIT:?} after the peer closed, having received {received:?}"
            )))
            }
            Ok(Ok(Some(message))) => received.push(message),
            Ok(Ok(None)) => return Ok((received, Ok(()))),
            Ok(Err(err)) => return Ok((received, Err(err.to_string()))),
        }
    }
}

/// Random chunked byte streams through a real `Connection` over loopback: `recv` always
/// returns a message, an error or the end within `RECV_LIMIT`; valid frames arrive intact
/// however they are chunked, and a stream cut inside a frame ends in an error, not a clean close.
#[test]
fn chunked_streams_through_a_connection_never_hang() {
    let runtime = runtime();
    let mut runner = TestRunner::new(config(STREAM_CASES));
    let case = (stream(), vec(1..97usize, 1..8), any::<bool>());
    runner
        .run(&case, |(stream, chunks, hello_cap)| {
            runtime.block_on(async {
                let (mut server, client) = pair().await;
                if hello_cap {
                    server.set_max_frame_len(MAX_HELLO_LEN);
                }
                let (bytes, expect) = match &stream {
                    Stream::Hostile(bytes) => (bytes.clone(), None),
                    Stream::Valid { messages, cut } => {
                        let (bytes, whole, clean) = valid_bytes(messages, *cut);
                        let fits = bytes.len() <= MAX_HELLO_LEN || !hello_cap;
                        (bytes, fits.then(|| (messages[..whole].to_vec(), clean)))
                    }
                };
                let writer = tokio::spawn(send_in_chunks(client, bytes, chunks));
                let (received, end) = receive_all(&mut server).await?;
                drop(server);
                writer.await.expect("the writer task does not panic");
                if let Some((expected, clean)) = expect {
                    prop_assert_eq!(&received, &expected);
                    prop_assert_eq!(
                        end.is_ok(),
                        clean,
                        "a stream cut inside a frame must end in an error: {:?}",
                        end
                    );
                }
                Ok(())
            })
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}

/// A peer that closes right after a frame's length prefix, before any byte of its body, has
/// cut the frame short, which `recv` reports as an error like any other truncation, not as a
/// clean close between frames.
#[test]
fn a_close_right_after_a_length_prefix_is_an_error() {
    // The stream test above finds this case now and then by chance; here it is every time.
    let runtime = runtime();
    runtime.block_on(async {
        let (mut server, mut client) = pair().await;
        client.write_all(&[0, 0, 0, 2]).await.unwrap();
        drop(client);
        let received = tokio::time::timeout(RECV_LIMIT, server.recv())
            .await
            .expect("recv answers once the peer has closed");
        assert!(
            received.is_err(),
            "a frame announced as 2 bytes and closed before its body was read as {received:?}"
        );
    });
}

/// A string length that lies about a short body costs an allocation bounded by the body, not
/// by `MAX_FRAME_LEN` (the fuzz test's minimal input: 16 bytes that allocated 60 MB as a
/// `ToWorker`); large valid messages, of long strings or of many small integers, still decode.
#[test]
fn a_lying_string_length_allocates_in_proportion_to_the_body() {
    let found = [
        0, 1, 249, 0, 252, 135, 195, 190, 3, 198, 122, 252, 0, 0, 1, 0,
    ];
    let (result, largest) = largest_allocation(|| decode::<ToWorker>(&found));
    assert!(result.is_err(), "{result:?}");
    assert!(
        largest <= 64 << 10,
        "16 bytes allocated {largest} bytes at once"
    );

    let big = ToWorker::Run(
        (0..2_000)
            .map(|n| Assignment {
                task: TaskId(n),
                attempt: Attempt(1),
                spec: TaskSpec {
                    policy: TaskPolicy::default(),
                    ..TaskSpec::call(
                        "examples/tasks.py:word_count",
                        format!("[{:?}]", "word ".repeat(500)),
                        "{}",
                    )
                },
            })
            .collect(),
    );
    let body = encode(&big).unwrap();
    assert!(body.len() > 4 << 20, "{} bytes", body.len());
    assert_eq!(decode::<ToWorker>(&body).unwrap(), big);

    // Small integers count 8 bytes each against bincode's limit, 2-3 bytes on the wire.
    for count in [1, 100, 10_000, 1_000_000] {
        let ids = ToActioner {
            request: RequestId(1),
            reply: Reply::Added((0..count).map(TaskId).collect()),
        };
        let body = encode(&ids).unwrap();
        assert_eq!(decode::<ToActioner>(&body).unwrap(), ids, "{count} ids");
    }
}

/// The damaged inputs really are damaged often enough to matter: most of them fail to decode,
/// so the decoding property is not just re-testing valid messages.
#[test]
fn damaged_encodings_mostly_fail_to_decode() {
    let mut runner = TestRunner::deterministic();
    let strategy = damaged_encoding();
    let mut failed = 0;
    for _ in 0..500 {
        let bytes = strategy.new_tree(&mut runner).unwrap().current();
        let ok = decode::<FromWorker>(&bytes).is_ok()
            || decode::<FromActioner>(&bytes).is_ok()
            || decode::<ToActioner>(&bytes).is_ok();
        if !ok {
            failed += 1;
        }
    }
    assert!(
        failed > 250,
        "only {failed} of 500 damaged encodings were refused"
    );
}
