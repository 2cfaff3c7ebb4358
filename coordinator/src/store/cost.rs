//! What the store costs per record, for every backend side by side in one run. A measurement,
//! not a check: `cargo test -p tatzelwurm --release -- --ignored --nocapture store_cost`.

use super::*;
use tatzelwurm_proto::task::{TaskSpec, TaskState};

/// Applies `batches` batches of `size` new records (~150 bytes each, with an add key every
/// batch when `keyed`) and returns the records per second.
async fn records_per_second(
    store: &Store,
    next: &mut u64,
    size: u64,
    batches: u32,
    keyed: bool,
) -> f64 {
    records_per_second_as(store, next, size, batches, keyed, TaskState::Ready).await
}

/// `records_per_second` with records of `state`: a finished one also leaves the live part.
async fn records_per_second_as(
    store: &Store,
    next: &mut u64,
    size: u64,
    batches: u32,
    keyed: bool,
    state: TaskState,
) -> f64 {
    let spec = TaskSpec::call(
        "tasks:square",
        "[12345, \"a few more bytes of arguments to make about 150 in all\"]",
        "{}",
    );
    let start = std::time::Instant::now();
    for round in 0..batches {
        let tasks: Vec<TaskRecord> = (*next..*next + size)
            .map(|id| TaskRecord::new(TaskId(id), spec.clone(), state, Timestamp(1)))
            .collect();
        let add_keys = if keyed {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&round.to_be_bytes());
            vec![KeyChange::Put(
                AddKey(key),
                KeyedAdd {
                    first: TaskId(*next),
                    count: size,
                    at: Timestamp(1),
                },
            )]
        } else {
            Vec::new()
        };
        *next += size;
        let batch = Batch {
            tasks,
            next_task_id: Some(*next),
            add_keys,
            ..Batch::default()
        };
        store.apply(batch).await.unwrap();
    }
    (size * u64::from(batches)) as f64 / start.elapsed().as_secs_f64()
}

/// Records per second of each backend: big batches (an `--args-file` add), keyed and not, and
/// rounds of 10 records (one flush each, as a busy coordinator's rounds are).
#[tokio::test]
#[ignore]
async fn store_cost_per_backend() {
    for kind in [StoreKind::Sled, StoreKind::Fjall] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        let mut next = 1u64;
        let plain = records_per_second(&store, &mut next, 10_000, 10, false).await;
        let keyed = records_per_second(&store, &mut next, 10_000, 10, true).await;
        let rounds = records_per_second(&store, &mut next, 10, 500, false).await;
        // The same ids again, completed: each leaves `live` for `finished`.
        let mut again = 1u64;
        let done = TaskState::Completed;
        let finishing = records_per_second_as(&store, &mut again, 10, 500, false, done).await;
        println!(
            "{kind:>5}: batches of 10,000: {plain:>9.0} records/s ({keyed:>9.0} keyed); \
             rounds of 10: {rounds:>7.0} records/s ({:.2} ms per flush); \
             rounds of 10 finishing: {finishing:>7.0} records/s",
            10_000.0 / rounds
        );
    }
}

/// CPU time of the whole process (every thread: the store thread, fjall's flush and
/// compaction threads) so far.
fn process_cpu() -> std::time::Duration {
    // SAFETY: getrusage fills the struct it is given; nothing else is touched.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The store's part of W1 (100,000 `noop(x)` through two workers), replayed against each
/// backend: the add in batches of 10,000 records with an event each, then rounds of
/// `$TATZELWURM_W1_ROUND` tasks (default 50), each finishing that many (record to
/// `finished`, out of `live`, an event, the queue's count) and handing out as many more (an
/// event each, as an at-least-once hand-out writes), one flush per round. Every batch is built
/// before the clock starts, so the CPU time printed is the store's alone: the store thread
/// and the backend's own threads, per task, with the wall time beside it, and the disk used.
/// `cargo test -p tatzelwurm --release -- --ignored --nocapture w1_store_cost`
#[tokio::test]
#[ignore]
async fn w1_store_cost() {
    use tatzelwurm_proto::event::{Event, EventKind};
    use tatzelwurm_proto::Attempt;
    let tasks: u64 = std::env::var("TATZELWURM_W1_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let round: u64 = std::env::var("TATZELWURM_W1_ROUND")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let kinds = match std::env::var("TATZELWURM_W1_STORE").as_deref() {
        Ok("sled") => vec![StoreKind::Sled],
        Ok("fjall") => vec![StoreKind::Fjall],
        _ => vec![StoreKind::Sled, StoreKind::Fjall],
    };
    let mut seq = 0u64;
    let mut event = |id: u64, state: TaskState, worker: Option<&str>| {
        seq += 1;
        Event {
            seq,
            at: Timestamp(1_700_000_000_000 + seq),
            kind: EventKind::Task {
                id: TaskId(id),
                queue: DEFAULT_QUEUE_NAME.into(),
                state,
                attempt: Attempt(u32::from(worker.is_some())),
                worker: worker.map(Into::into),
                error: None,
            },
        }
    };
    let record = |id: u64, state: TaskState| {
        let spec = TaskSpec::call("tasks:noop", format!("[{id}]"), "{}");
        TaskRecord::new(TaskId(id), spec, state, Timestamp(1_700_000_000_000))
    };
    let mut batches = Vec::new();
    for first in (1..=tasks).step_by(10_000) {
        let ids = first..(first + 10_000).min(tasks + 1);
        batches.push(Batch {
            tasks: ids.clone().map(|id| record(id, TaskState::Ready)).collect(),
            next_task_id: Some(ids.end),
            events: ids.map(|id| event(id, TaskState::Ready, None)).collect(),
            ..Batch::default()
        });
    }
    let mut finished = 0u64;
    for first in (1..=tasks).step_by(round as usize) {
        let ids = first..(first + round).min(tasks + 1);
        finished += ids.end - ids.start;
        let mut events: Vec<Event> = ids
            .clone()
            .map(|id| event(id, TaskState::Completed, Some("a")))
            .collect();
        let next = ids.end..(ids.end + round).min(tasks + 1);
        events.extend(next.map(|id| event(id, TaskState::Running, Some("b"))));
        let queue = QueueRecord {
            completed: finished,
            ..QueueRecord::default()
        };
        batches.push(Batch {
            tasks: ids.map(|id| record(id, TaskState::Completed)).collect(),
            queues: vec![(DEFAULT_QUEUE_NAME.to_string(), queue)],
            events,
            ..Batch::default()
        });
    }
    for kind in kinds {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        let batches: Vec<Batch> = batches.iter().map(clone_batch).collect();
        let count = batches.len();
        let (cpu, wall) = (process_cpu(), std::time::Instant::now());
        for batch in batches {
            store.apply(batch).await.unwrap();
        }
        let (cpu, wall) = (process_cpu() - cpu, wall.elapsed());
        // What the backend's threads still do for these writes (flushes, compactions).
        let settle = process_cpu();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let after = process_cpu() - settle;
        println!(
            "{kind:>5}: {tasks} tasks in {count} batches (rounds of {round}): \
             {:.2} µs CPU per task while applying, {:.2} µs more in the 2 s after; \
             {:.2} s wall; {} bytes on disk",
            cpu.as_secs_f64() * 1e6 / tasks as f64,
            after.as_secs_f64() * 1e6 / tasks as f64,
            wall.as_secs_f64(),
            store.disk_bytes()
        );
    }
}

/// The name of the default queue, as the coordinator writes it.
const DEFAULT_QUEUE_NAME: &str = tatzelwurm_proto::task::DEFAULT_QUEUE;

/// A copy of `batch`'s records, queues and events (what `w1_store_cost` writes).
fn clone_batch(batch: &Batch) -> Batch {
    Batch {
        tasks: batch.tasks.clone(),
        encoded: batch.encoded.clone(),
        next_task_id: batch.next_task_id,
        queues: batch.queues.clone(),
        events: batch.events.clone(),
        ..Batch::default()
    }
}

/// What a start costs with the database at `$TATZELWURM_LOAD_DB` (copy one a coordinator left,
/// it is opened for writing): the time to read the live records, to check them, and to build
/// the task table from them.
/// `TATZELWURM_LOAD_DB=DIR cargo test -p tatzelwurm --release -- --ignored --nocapture load_cost`
#[test]
#[ignore]
fn load_cost() {
    let Ok(dir) = std::env::var("TATZELWURM_LOAD_DB") else {
        return;
    };
    let start = std::time::Instant::now();
    let store = Store::open(Path::new(&dir), None).unwrap();
    let opened = start.elapsed();
    let loaded = store.load().unwrap();
    let read = start.elapsed();
    let count = loaded.tasks.len();

    let table = crate::task_table::TaskTable::recover(
        loaded.tasks,
        loaded.next_task_id,
        loaded.queues,
        Timestamp(1),
        &store,
    );
    let built = start.elapsed();
    println!(
        "{count} live tasks: opened {opened:?}, read and checked {:?}, table built {:?} ({} live)",
        read - opened,
        built - read,
        table.live_len()
    );
}

/// What the migration from schema 4 costs: a schema 4 database of `$TATZELWURM_MIGRATE_TASKS`
/// records (default 200,000; every fourth finished) is written through each backend, then
/// opened, which rewrites every record in schema 5's layout.
/// `cargo test -p tatzelwurm --release -- --ignored --nocapture migration_cost`
#[test]
#[ignore]
fn migration_cost() {
    let count: u64 = std::env::var("TATZELWURM_MIGRATE_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let spec = TaskSpec::call(
        "tasks:square",
        "[12345, \"a few more bytes of arguments to make about 150 in all\"]",
        "{}",
    );
    for kind in [StoreKind::Sled, StoreKind::Fjall] {
        let dir = tempfile::tempdir().unwrap();
        write_backend_file(dir.path(), kind).unwrap();
        {
            let backend: Box<dyn Backend> = match kind {
                StoreKind::Sled => Box::new(sled::SledBackend::open(dir.path()).unwrap()),
                StoreKind::Fjall => Box::new(fjall::FjallBackend::open(dir.path()).unwrap()),
            };
            let version = 4u32.to_be_bytes().to_vec();
            backend
                .apply(
                    &[(Space::Meta, SCHEMA_KEY.to_vec(), Some(version))]
                        .into_iter()
                        .collect(),
                )
                .unwrap();
            for first in (1..=count).step_by(10_000) {
                let writes: Vec<RawWrite> = (first..(first + 10_000).min(count + 1))
                    .map(|id| {
                        let state = if id % 4 == 0 {
                            TaskState::Completed
                        } else {
                            TaskState::Ready
                        };
                        let task = TaskRecord::new(TaskId(id), spec.clone(), state, Timestamp(1));
                        let space = if state.is_finished() {
                            Space::Finished
                        } else {
                            Space::Live
                        };
                        let value = encode(&v4::downgrade(&task)).unwrap();
                        (space, task_key(task.id).to_vec(), Some(value))
                    })
                    .collect();
                backend.apply(&writes.into_iter().collect()).unwrap();
            }
        }
        let start = std::time::Instant::now();
        let store = super::conformance::reopen(dir.path(), kind);
        let took = start.elapsed();
        assert_eq!(store.backend.schema().unwrap(), SCHEMA_VERSION);
        println!(
            "{kind:>5}: {count} schema 4 records rewritten in {took:?} ({:.0} records/s)",
            count as f64 / took.as_secs_f64()
        );
    }
}
