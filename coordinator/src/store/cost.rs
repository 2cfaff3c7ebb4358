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
                .apply(&[(Space::Meta, SCHEMA_KEY.to_vec(), Some(version))])
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
                backend.apply(&writes).unwrap();
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
