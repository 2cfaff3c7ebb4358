//! One suite of store tests, run against every backend: `conformance!` instantiates each test
//! for one `StoreKind`, so a new backend gets the whole suite by one more line at the bottom.
//! Schema 6's event log is tested in `conformance/events.rs`, purges and compaction in
//! `conformance/purge.rs`, `StoreReader` in `conformance/reader.rs`.

mod events;
mod purge;
mod reader;

use super::*;
use crate::add_keys::{KeyChange, KeyedAdd};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tatzelwurm_proto::schedule::{ScheduleSpec, Trigger};
use tatzelwurm_proto::task::{TaskError, TaskSpec, TaskState, When, DEFAULT_QUEUE};
use tatzelwurm_proto::Attempt;

fn record(id: u64) -> TaskRecord {
    let spec = TaskSpec::call("m:f", "[1]", "{}");
    TaskRecord::new(TaskId(id), spec, TaskState::Created, Timestamp(5))
}

fn printed(text: &str) -> TaskOutput {
    TaskOutput {
        stdout: text.into(),
        stderr: String::new(),
    }
}

/// Opens `dir` with `kind`, retrying a held lock for a while: sled's flusher thread may hold it
/// a moment after the previous `Db` of this process was dropped (a new process never sees this).
pub(super) fn reopen(dir: &Path, kind: StoreKind) -> Store {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(dir, Some(kind)) {
            Ok(store) => return store,
            Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => panic!("reopen failed: {err}"),
        }
    }
}

/// What a batch wrote is what a later open loads (outputs apart), and the id counter survives.
async fn batch_survives_reopen(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        assert_eq!(store.kind(), kind);
        let batch = Batch {
            tasks: vec![record(1), record(2)],
            outputs: vec![(TaskId(2), printed("two"))],
            next_task_id: Some(10),
            ..Batch::default()
        };
        store.apply(batch).await.unwrap();
    }
    let store = reopen(dir.path(), kind);
    let loaded = store.load_all().unwrap();
    assert_eq!(loaded.tasks, vec![record(1), record(2)]);
    assert_eq!(loaded.next_task_id, 10);
    assert!(loaded.add_keys.is_empty());
    assert_eq!(store.output(TaskId(2)).unwrap(), printed("two"));
    assert_eq!(store.output(TaskId(1)).unwrap(), TaskOutput::default());
}

/// `record` encoded as the task table encodes a live one (borrowed, `EncodedRecords`).
fn encoded(records: &[TaskRecord]) -> EncodedRecords {
    let mut encoded = EncodedRecords::default();
    for record in records {
        let bytes = encode(record).unwrap();
        encoded.push(&decode_ref(&bytes).unwrap()).unwrap();
    }
    encoded
}

/// Encoded records land as whole ones do: by state in `live` or `finished` (a finished one
/// leaves `live`), read back equal, counted by a purge as what they leave the task as; and a
/// batch's records read back merged in id order.
async fn encoded_records_land_as_whole_ones(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(kind)).unwrap();
    let mut waiting = record(2);
    waiting.state = TaskState::Waiting;
    waiting.attempts = Attempt(1);
    waiting.worker = Some("w1".into());
    waiting.error = Some(TaskError {
        kind: "ValueError".into(),
        message: "no".into(),
        traceback: String::new(),
    });
    waiting.spec.after = vec![TaskId(1)];
    let batch = Batch {
        tasks: vec![record(3)],
        encoded: encoded(&[record(1), waiting.clone(), record(4)]),
        next_task_id: Some(5),
        ..Batch::default()
    };
    assert_eq!(batch.record_count(), 4);
    let ids: Vec<u64> = batch.records().map(|r| r.id().0).collect();
    assert_eq!(ids, vec![1, 2, 3, 4], "merged in id order");
    let merged: Vec<TaskRecord> = batch.records().map(|r| r.to_record().unwrap()).collect();
    assert_eq!(merged[1], waiting);
    let second = batch.records().nth(1).unwrap();
    assert_eq!(
        (second.queue(), second.worker(), second.attempts()),
        (DEFAULT_QUEUE, Some("w1"), Attempt(1))
    );
    assert_eq!(second.error_kind().as_deref(), Some("ValueError"));
    assert_eq!(batch.records().next().unwrap().error_kind(), None);
    store.apply(batch).await.unwrap();
    let mut done = record(1);
    done.state = TaskState::Completed;
    done.result = Some("1".into());
    let mut killed = record(4);
    killed.state = TaskState::Killed;
    store
        .apply(Batch {
            encoded: encoded(&[done.clone(), killed.clone()]),
            // 4 finishes and is purged; 3 is live and stays.
            purge: vec![TaskId(3), TaskId(4)],
            ..Batch::default()
        })
        .await
        .unwrap();
    drop(store);
    let store = reopen(dir.path(), kind);
    let live = store.load().unwrap().tasks.decode_all().unwrap();
    assert_eq!(live, vec![waiting.clone(), record(3)]);
    let all = store.load_all().unwrap();
    assert_eq!(all.tasks, vec![done, waiting, record(3)]);
    assert_eq!(all.next_task_id, 5);
}

/// A record written again replaces the first, outputs are replaced apart from records, and
/// the id counter never goes below the id after the last record.
async fn later_batches_replace(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(kind)).unwrap();
    let fresh = store.load_all().unwrap();
    assert!(fresh.tasks.is_empty());
    assert_eq!(fresh.next_task_id, 1);
    store
        .apply(Batch {
            tasks: vec![record(1), record(7)],
            outputs: vec![(TaskId(1), printed("old"))],
            next_task_id: Some(3),
            ..Batch::default()
        })
        .await
        .unwrap();
    let mut done = record(1);
    done.state = TaskState::Completed;
    done.result = Some("42".into());
    store
        .apply(Batch {
            tasks: vec![done.clone()],
            outputs: vec![(TaskId(1), printed("new"))],
            ..Batch::default()
        })
        .await
        .unwrap();
    drop(store);
    let store = reopen(dir.path(), kind);
    let loaded = store.load_all().unwrap();
    assert_eq!(loaded.tasks, vec![done, record(7)]);
    assert_eq!(
        loaded.next_task_id, 8,
        "never below the last record's id + 1"
    );
    assert_eq!(store.output(TaskId(1)).unwrap(), printed("new"));
}

/// Batches sent back to back without waiting: a read through the `Store` sees each at once
/// (it waits for the write, not the flush), they become durable in the order sent (once the
/// last has landed, every earlier one has), and all of them survive a reopen.
async fn batches_in_flight(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(kind)).unwrap();
    let mut flushing = Vec::new();
    for id in 1..=40 {
        flushing.push(store.send(Batch {
            tasks: vec![record(id)],
            next_task_id: Some(id + 1),
            events: events::events(id..=id),
            ..Batch::default()
        }));
        assert_eq!(
            store.get(TaskId(id)).unwrap(),
            Some(record(id)),
            "read once sent"
        );
    }
    let last = flushing.pop().unwrap();
    last.await.unwrap();
    for earlier in flushing {
        let landed = tokio::time::timeout(Duration::ZERO, earlier).await;
        assert!(matches!(landed, Ok(Ok(()))), "landed before the last one");
    }
    assert_eq!(
        store.reader().events(0, 100).unwrap(),
        events::events(1..=40)
    );
    drop(store);
    let store = reopen(dir.path(), kind);
    let loaded = store.load_all().unwrap();
    assert_eq!(loaded.tasks, (1..=40).map(record).collect::<Vec<_>>());
    assert_eq!(loaded.next_task_id, 41);
}

/// Add keys are written with their tasks, removed later, and what is left survives a reopen.
async fn add_keys_survive(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let add = |first: u64| KeyedAdd {
        first: TaskId(first),
        count: 1,
        at: Timestamp(first * 10),
    };
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        store
            .apply(Batch {
                tasks: vec![record(1), record(2)],
                next_task_id: Some(3),
                add_keys: vec![
                    KeyChange::Put(AddKey([1; 16]), add(1)),
                    KeyChange::Put(AddKey([2; 16]), add(2)),
                ],
                ..Batch::default()
            })
            .await
            .unwrap();
        store
            .apply(Batch {
                add_keys: vec![KeyChange::Remove(AddKey([1; 16]))],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let store = reopen(dir.path(), kind);
    let loaded = store.load_all().unwrap();
    assert_eq!(loaded.add_keys, vec![(AddKey([2; 16]), add(2))]);
    assert_eq!(loaded.tasks.len(), 2);
    assert_eq!(loaded.next_task_id, 3);
}

/// A database of a newer schema is refused with a sentence about the schema version.
fn newer_schema_is_refused(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        store.force_schema(SCHEMA_VERSION + 1).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match Store::open(dir.path(), Some(kind)) {
            Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => break other.err().expect("must refuse"),
        }
    };
    assert!(matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1));
    assert!(err.to_string().contains("schema version"), "{err}");
}

/// A database another open `Store` holds is refused as in use.
fn locked_is_refused(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), Some(kind)).unwrap();
    let err = Store::open(dir.path(), Some(kind))
        .err()
        .expect("must refuse");
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
}

/// The other backend's directory is refused in one sentence naming both; without `--store`
/// the directory's own backend opens it and keeps what was written.
async fn other_backend_is_refused(kind: StoreKind) {
    let other = match kind {
        StoreKind::Sled => StoreKind::Fjall,
        StoreKind::Fjall => StoreKind::Sled,
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        store
            .apply(Batch {
                tasks: vec![record(1)],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let err = Store::open(dir.path(), Some(other))
        .err()
        .expect("must refuse");
    assert!(matches!(err, StoreError::OtherBackend { .. }), "{err}");
    let sentence = err.to_string();
    assert!(!sentence.contains('\n'), "{sentence}");
    assert!(
        sentence.contains(kind.name()) && sentence.contains(other.name()),
        "{sentence}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let store = loop {
        match Store::open(dir.path(), None) {
            Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => break other.expect("opens with its own backend"),
        }
    };
    assert_eq!(store.kind(), kind);
    assert_eq!(store.load_all().unwrap().tasks, vec![record(1)]);
}

fn in_state(id: u64, state: TaskState) -> TaskRecord {
    let mut record = record(id);
    record.state = state;
    record
}

fn ids(records: &[TaskRecord]) -> Vec<u64> {
    records.iter().map(|t| t.id.0).collect()
}

/// Live and finished records are kept apart: a start loads only the live ones, a record
/// written finished leaves the live part, `get` finds either, and the id counter counts the
/// finished ones too.
async fn live_and_finished_apart(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        let tasks = vec![
            in_state(1, TaskState::Created),
            in_state(2, TaskState::Ready),
            in_state(3, TaskState::Running),
            in_state(4, TaskState::Waiting),
            in_state(5, TaskState::Ready),
        ];
        store
            .apply(Batch {
                tasks,
                next_task_id: Some(6),
                ..Batch::default()
            })
            .await
            .unwrap();
        let mut done = in_state(3, TaskState::Completed);
        done.result = Some("3".into());
        store
            .apply(Batch {
                tasks: vec![done, in_state(5, TaskState::Killed)],
                ..Batch::default()
            })
            .await
            .unwrap();
        // Finished and added in one batch: never live on disk.
        store
            .apply(Batch {
                tasks: vec![in_state(6, TaskState::Failed)],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let store = reopen(dir.path(), kind);
    let live = store.load().unwrap();
    let live_tasks = live.tasks.decode_all().unwrap();
    assert_eq!(ids(&live_tasks), vec![1, 2, 4]);
    assert_eq!(live.next_task_id, 7, "past the last finished id too");
    assert_eq!(
        ids(&store.load_all().unwrap().tasks),
        vec![1, 2, 3, 4, 5, 6]
    );
    let three = store.get(TaskId(3)).unwrap().unwrap();
    assert_eq!(
        (three.state, three.result.as_deref()),
        (TaskState::Completed, Some("3"))
    );
    assert_eq!(
        store.get(TaskId(2)).unwrap().unwrap().state,
        TaskState::Ready
    );
    assert_eq!(store.get(TaskId(7)).unwrap(), None);
}

/// Live ids spread wider than one reading thread takes are read in two halves, and come back
/// whole, in order, with the id at the cut once.
async fn a_wide_live_range_loads_whole(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(kind)).unwrap();
    let wide = [1, 2, 50_000, 100_000, 100_001, 150_000, 200_001];
    let tasks = wide
        .iter()
        .map(|id| in_state(*id, TaskState::Ready))
        .collect();
    store
        .apply(Batch {
            tasks,
            next_task_id: Some(200_002),
            ..Batch::default()
        })
        .await
        .unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(ids(&loaded.tasks.decode_all().unwrap()), wide.to_vec());
}

/// A scan returns one part's (or both parts') records above `after`, of the asked states, in
/// id order, at most `limit`.
async fn scan_pages(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(kind)).unwrap();
    let states = [TaskState::Ready, TaskState::Completed, TaskState::Failed];
    let tasks = (1..=30)
        .map(|id| in_state(id, states[id as usize % 3]))
        .collect();
    store
        .apply(Batch {
            tasks,
            next_task_id: Some(31),
            ..Batch::default()
        })
        .await
        .unwrap();
    let page = |part, after: Option<u64>, limit, states: &[TaskState]| {
        ids(&store.scan(part, after.map(TaskId), limit, states).unwrap())
    };
    assert_eq!(page(Part::All, None, 5, &[]), vec![1, 2, 3, 4, 5]);
    assert_eq!(page(Part::All, Some(27), 5, &[]), vec![28, 29, 30]);
    assert_eq!(page(Part::Live, None, 4, &[]), vec![3, 6, 9, 12]);
    assert_eq!(page(Part::Finished, Some(3), 4, &[]), vec![4, 5, 7, 8]);
    let failed = [TaskState::Failed];
    assert_eq!(page(Part::Finished, Some(10), 3, &failed), vec![11, 14, 17]);
    assert_eq!(page(Part::All, Some(10), 3, &failed), vec![11, 14, 17]);
    assert_eq!(page(Part::Live, None, 10, &failed), Vec::<u64>::new());
    assert_eq!(page(Part::All, None, 0, &[]), Vec::<u64>::new());
    assert_eq!(page(Part::All, Some(u64::MAX), 10, &[]), Vec::<u64>::new());
    assert_eq!(page(Part::All, None, usize::MAX, &[]).len(), 30);
}

/// A schema 3 database (every record in `records`, in schema 4's layout) opens as schema 5
/// with its live and finished records apart, converted, counted into the default queue, and
/// `records` gone; a stale copy that an interrupted earlier move left in `live` (of a task
/// finished since) does not survive, and a second open changes nothing.
async fn schema_3_is_split(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut done = in_state(2, TaskState::Completed);
    done.result = Some("2".into());
    let records = vec![
        in_state(1, TaskState::Ready),
        done.clone(),
        in_state(3, TaskState::Waiting),
    ];
    let stale = vec![in_state(2, TaskState::Running)];
    write_schema_3(dir.path(), kind, &records, &stale);
    for _ in 0..2 {
        let store = reopen(dir.path(), kind);
        assert_eq!(store.backend.schema().unwrap(), SCHEMA_VERSION);
        let live = store.load().unwrap();
        let live_tasks = live.tasks.decode_all().unwrap();
        assert_eq!(ids(&live_tasks), vec![1, 3]);
        assert_eq!(live.next_task_id, 10, "the stored counter");
        assert_eq!(store.get(TaskId(2)).unwrap(), Some(done.clone()));
        let all = store.load_all().unwrap();
        assert_eq!(all.tasks, records);
        assert_eq!(all.queues, vec![default_queue(1, 0, 0)]);
        assert_eq!(
            store
                .backend
                .get(Space::Records, &task_key(TaskId(1)))
                .unwrap(),
            None
        );
    }
}

/// The default queue's record as a migration leaves it: the finished counts, no settings.
fn default_queue(completed: u64, failed: u64, killed: u64) -> (String, QueueRecord) {
    let record = QueueRecord {
        completed,
        failed,
        killed,
        ..QueueRecord::default()
    };
    (DEFAULT_QUEUE.to_string(), record)
}

/// Writes a database as a schema 3 coordinator left it (`records` holding every record in
/// schema 4's layout, the counter at 10), plus `stale_live` records in a `live` key space as
/// an interrupted move of an older coordinator might have left them.
fn write_schema_3(dir: &Path, kind: StoreKind, records: &[TaskRecord], stale_live: &[TaskRecord]) {
    let entries = |list: &[TaskRecord]| -> Vec<([u8; 8], Vec<u8>)> {
        list.iter()
            .map(|r| (task_key(r.id), encode(&super::v4::downgrade(r)).unwrap()))
            .collect()
    };
    write_backend_file(dir, kind).unwrap();
    match kind {
        StoreKind::Sled => {
            let db = ::sled::open(dir).unwrap();
            let meta = db.open_tree("meta").unwrap();
            meta.insert(SCHEMA_KEY, &3u32.to_be_bytes()).unwrap();
            meta.insert(NEXT_ID_KEY, &10u64.to_be_bytes()).unwrap();
            db.open_tree("add_keys").unwrap();
            db.open_tree("outputs").unwrap();
            let tree = db.open_tree("records").unwrap();
            for (key, value) in entries(records) {
                tree.insert(key, value).unwrap();
            }
            let live = db.open_tree("live").unwrap();
            for (key, value) in entries(stale_live) {
                live.insert(key, value).unwrap();
            }
            db.flush().unwrap();
        }
        StoreKind::Fjall => {
            let keyspace = ::fjall::Config::new(dir.join(super::fjall::KEYSPACE_DIR))
                .open()
                .unwrap();
            let partition = |name: &str| {
                keyspace
                    .open_partition(name, ::fjall::PartitionCreateOptions::default())
                    .unwrap()
            };
            let meta = partition("meta");
            meta.insert(SCHEMA_KEY, 3u32.to_be_bytes()).unwrap();
            meta.insert(NEXT_ID_KEY, 10u64.to_be_bytes()).unwrap();
            partition("add_keys");
            partition("outputs");
            let tree = partition("records");
            for (key, value) in entries(records) {
                tree.insert(key, value).unwrap();
            }
            let live = partition("live");
            for (key, value) in entries(stale_live) {
                live.insert(key, value).unwrap();
            }
            keyspace.persist(::fjall::PersistMode::SyncAll).unwrap();
        }
    }
}

/// Opens `kind`'s backend alone on `dir` (writing the `backend` file of a new one), retrying a
/// lock held a moment by the previous `Db` of this process.
fn open_backend(dir: &Path, kind: StoreKind) -> Arc<dyn Backend> {
    write_backend_file(dir, kind).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let opened: Result<Arc<dyn Backend>, StoreError> = match kind {
            StoreKind::Sled => super::sled::SledBackend::open(dir).map(|b| Arc::new(b) as _),
            StoreKind::Fjall => super::fjall::FjallBackend::open(dir).map(|b| Arc::new(b) as _),
        };
        match opened {
            Ok(backend) => return backend,
            Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => panic!("opening the backend failed: {err}"),
        }
    }
}

/// Tasks of every schema 4 state, live and finished ids interleaved, with the fields a
/// migration must keep (results, errors, times, attempts, policies), as schema 5 holds them.
fn schema_4_tasks(count: u64) -> Vec<TaskRecord> {
    let states = [
        TaskState::Created,
        TaskState::Ready,
        TaskState::Running,
        TaskState::Waiting,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Killed,
    ];
    (1..=count)
        .map(|id| {
            let mut task = in_state(id, states[id as usize % states.len()]);
            task.spec.policy.retries = id as u32;
            task.spec.policy.timeout_ms = Some(id * 1000);
            task.attempts = tatzelwurm_proto::Attempt(id as u32 % 3);
            task.worker = Some(format!("w{id}"));
            match task.state {
                TaskState::Waiting => task.retry_at = Some(Timestamp(id + 100)),
                TaskState::Completed => task.result = Some(id.to_string()),
                TaskState::Failed => {
                    task.error = Some(TaskError {
                        kind: "ValueError".into(),
                        message: format!("bad {id}"),
                        traceback: "Traceback ...".into(),
                    })
                }
                _ => {}
            }
            if task.state.is_finished() {
                task.finished_at = Some(Timestamp(id + 200));
            }
            task
        })
        .collect()
}

/// The default queue's record the finished ones of `tasks` should give.
fn counted(tasks: &[TaskRecord]) -> (String, QueueRecord) {
    let count = |state| tasks.iter().filter(|t| t.state == state).count() as u64;
    default_queue(
        count(TaskState::Completed),
        count(TaskState::Failed),
        count(TaskState::Killed),
    )
}

/// Writes, through the backend itself, a database as a schema 4 coordinator left it: `tasks`
/// in schema 4's layout in `live` or `finished` by state, an output of task 1, an add key and
/// the counter at `tasks.len() + 5`.
fn write_schema_4(dir: &Path, kind: StoreKind, tasks: &[TaskRecord]) {
    let backend = open_backend(dir, kind);
    let next = tasks.len() as u64 + 5;
    let mut writes: Vec<RawWrite> = vec![
        (
            Space::Meta,
            SCHEMA_KEY.to_vec(),
            Some(4u32.to_be_bytes().to_vec()),
        ),
        (
            Space::Meta,
            NEXT_ID_KEY.to_vec(),
            Some(next.to_be_bytes().to_vec()),
        ),
        (
            Space::Outputs,
            task_key(TaskId(1)).to_vec(),
            Some(encode(&printed("one")).unwrap()),
        ),
    ];
    let add = KeyedAdd {
        first: TaskId(1),
        count: tasks.len() as u64,
        at: Timestamp(3),
    };
    let change = KeyChange::Put(AddKey([4; 16]), add);
    let (key, value) = add_key_write(&change);
    writes.push((Space::AddKeys, key.to_vec(), value.map(|v| v.to_vec())));
    for task in tasks {
        let space = if task.state.is_finished() {
            Space::Finished
        } else {
            Space::Live
        };
        let value = encode(&super::v4::downgrade(task)).unwrap();
        writes.push((space, task_key(task.id).to_vec(), Some(value)));
    }
    backend.apply(&writes.into_iter().collect()).unwrap();
}

/// Checks that `dir` holds what `write_schema_4(dir, kind, tasks)` wrote, at schema 5: every
/// task converted (live ones loaded at a start, read in place), the default queue counting the
/// finished ones, the output, the add key and the counter kept, and no migration mark left.
fn assert_migrated(dir: &Path, kind: StoreKind, tasks: &[TaskRecord]) {
    let store = reopen(dir, kind);
    assert_eq!(store.backend.schema().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store
            .backend
            .get(Space::Meta, super::rewrite::MARK_KEY)
            .unwrap(),
        None
    );
    let all = store.load_all().unwrap();
    assert_eq!(all.tasks, tasks);
    assert_eq!(all.queues, vec![counted(tasks)]);
    assert!(all.schedules.is_empty());
    assert_eq!(all.next_task_id, tasks.len() as u64 + 5);
    assert_eq!(all.add_keys.len(), 1);
    assert_eq!(store.output(TaskId(1)).unwrap(), printed("one"));
    let live = store.load().unwrap();
    let in_place: Vec<TaskRecord> = live.tasks.refs().map(|r| r.to_record()).collect();
    let expected: Vec<TaskRecord> = tasks
        .iter()
        .filter(|t| !t.state.is_finished())
        .cloned()
        .collect();
    assert_eq!(in_place, expected);
}

/// A schema 4 database (records of the old layout in `live` and `finished`, written through
/// the backend) opens as schema 5: every record converted in place, the default queue counting
/// the finished tasks, everything else kept; a second open changes nothing.
async fn schema_4_is_rewritten(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let tasks = schema_4_tasks(30);
    write_schema_4(dir.path(), kind, &tasks);
    for _ in 0..2 {
        assert_migrated(dir.path(), kind, &tasks);
    }
}

/// A backend that fails every write after its first `left`, as if the process died there
/// (each write of a backend is atomic, so a crash falls between two of them).
struct CrashAfter {
    inner: Arc<dyn Backend>,
    left: AtomicUsize,
}

impl Backend for CrashAfter {
    fn schema(&self) -> Result<u32, StoreError> {
        self.inner.schema()
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(space, key)
    }

    fn visit(&self, space: Space, from: &[u8], visit: &mut Visitor<'_>) -> Result<(), StoreError> {
        self.inner.visit(space, from, visit)
    }

    fn last_key(&self, space: Space) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.last_key(space)
    }

    fn write(&self, writes: &Writes) -> Result<(), StoreError> {
        let left = self.left.load(Ordering::Relaxed);
        if left == 0 {
            return Err(StoreError::Failed("crashed (simulated)".into()));
        }
        self.left.store(left - 1, Ordering::Relaxed);
        self.inner.write(writes)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }

    fn drop_records(&self) -> Result<(), StoreError> {
        self.inner.drop_records()
    }
}

/// A migration from schema 4 that crashes after any of its writes, and again one chunk into
/// the next try, leaves a schema 4 database that the next open finishes: every record converted
/// exactly once (none decoded in the wrong layout) and every finished one counted exactly once.
async fn schema_4_rewrite_survives_crashes(kind: StoreKind) {
    let tasks = schema_4_tasks(23);
    let chunk = 4;
    for crash_after in 0.. {
        let dir = tempfile::tempdir().unwrap();
        write_schema_4(dir.path(), kind, &tasks);
        let finished = {
            let backend = open_backend(dir.path(), kind);
            let crashing = CrashAfter {
                inner: backend.clone(),
                left: AtomicUsize::new(crash_after),
            };
            let outcome = super::rewrite::rewrite_records(&crashing, chunk);
            if outcome.is_err() {
                assert_eq!(backend.schema().unwrap(), 4, "still schema 4 after a crash");
                // Resumes, and (unless only the last write was left) crashes again.
                crashing.left.store(1, Ordering::Relaxed);
                if super::rewrite::rewrite_records(&crashing, chunk).is_err() {
                    assert_eq!(backend.schema().unwrap(), 4, "and after the second");
                }
            }
            outcome.is_ok()
        };
        assert_migrated(dir.path(), kind, &tasks);
        if finished {
            assert!(
                crash_after > 6,
                "it took {crash_after} writes, so chunks were used"
            );
            break;
        }
    }
}

/// Queues' records and schedules are written with a batch, loaded by name at a start,
/// replaced, and (schedules) removed, across reopens.
async fn queues_and_schedules_survive(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let schedule = |name: &str, every: u64, fired: u64| ScheduleInfo {
        spec: ScheduleSpec {
            name: name.into(),
            trigger: Trigger::Every(every),
            task: TaskSpec::call("m:tick", "[]", "{}"),
        },
        paused: false,
        created_at: Timestamp(1),
        next_at: Some(Timestamp(every)),
        fired,
        last: (1..=fired)
            .rev()
            .map(|id| (TaskId(id), Timestamp(id)))
            .collect(),
    };
    let cron = ScheduleInfo {
        spec: ScheduleSpec {
            name: "nightly".into(),
            trigger: Trigger::Cron {
                line: "0 3 * * *".into(),
                tz: Some("Europe/Berlin".into()),
            },
            task: TaskSpec::call("m:clean", "[]", "{}"),
        },
        paused: true,
        created_at: Timestamp(2),
        next_at: None,
        fired: 0,
        last: Vec::new(),
    };
    let gpu = QueueRecord {
        paused: true,
        limit: 2,
        ..QueueRecord::default()
    };
    let resumed = QueueRecord {
        paused: false,
        ..gpu.clone()
    };
    let default = QueueRecord {
        completed: 1,
        ..QueueRecord::default()
    };
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        let mut done = record(1);
        done.state = TaskState::Completed;
        store
            .apply(Batch {
                tasks: vec![done],
                queues: vec![
                    ("gpu".into(), gpu.clone()),
                    (DEFAULT_QUEUE.into(), default.clone()),
                ],
                schedules: vec![
                    ("nightly".into(), Some(cron.clone())),
                    ("often".into(), Some(schedule("often", 1_000, 1))),
                ],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    {
        let store = reopen(dir.path(), kind);
        let loaded = store.load().unwrap();
        let by_name = vec![
            (DEFAULT_QUEUE.to_string(), default.clone()),
            ("gpu".to_string(), gpu.clone()),
        ];
        assert_eq!(loaded.queues, by_name);
        assert_eq!(
            loaded.schedules,
            vec![cron.clone(), schedule("often", 1_000, 1)]
        );
        store
            .apply(Batch {
                queues: vec![("gpu".into(), resumed.clone())],
                schedules: vec![
                    ("nightly".into(), None),
                    ("often".into(), Some(schedule("often", 1_000, 2))),
                ],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let store = reopen(dir.path(), kind);
    let loaded = store.load_all().unwrap();
    let by_name = vec![
        (DEFAULT_QUEUE.to_string(), default),
        ("gpu".to_string(), resumed),
    ];
    assert_eq!(loaded.queues, by_name);
    assert_eq!(loaded.schedules, vec![schedule("often", 1_000, 2)]);
}

/// A record with every field of schema 5 set (queue, priority, start time, dependencies, a new
/// state) survives a reopen whole, and a start reads it in place with the same fields.
async fn new_fields_survive(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = TaskSpec::call("m:after", "[]", "{\"x\": 1}");
    spec.queue = "gpu".into();
    spec.priority = -7;
    spec.run_at = Some(When::At(Timestamp(99)));
    spec.after = vec![TaskId(1), TaskId(2)];
    let waiting = TaskRecord::new(TaskId(3), spec, TaskState::Blocked, Timestamp(4));
    let states = [TaskState::Scheduled, TaskState::Paused];
    let mut tasks = vec![record(1), record(2), waiting];
    tasks.extend(
        states
            .iter()
            .zip(4..)
            .map(|(state, id)| in_state(id, *state)),
    );
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        store
            .apply(Batch {
                tasks: tasks.clone(),
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let store = reopen(dir.path(), kind);
    let loaded = store.load().unwrap();
    let in_place: Vec<TaskRecord> = loaded.tasks.refs().map(|r| r.to_record()).collect();
    assert_eq!(in_place, tasks);
    let third = loaded.tasks.refs().nth(2).unwrap();
    assert_eq!(
        (
            third.spec.queue,
            third.spec.priority,
            third.spec.after.len()
        ),
        ("gpu", -7, 2)
    );
    assert_eq!(store.get(TaskId(3)).unwrap().as_ref(), Some(&tasks[2]));
}

/// The environment variables of the crash child: the directory and the backend.
const CRASH_DIR_ENV: &str = "TATZELWURM_STORE_CRASH_DIR";
const CRASH_KIND_ENV: &str = "TATZELWURM_STORE_CRASH_KIND";

/// A process killed (SIGKILL) at a moment of its own choosing while it applies batch after
/// batch loses nothing it acknowledged: every id it printed as applied is there after a reopen,
/// and the counter is past it; and a batch is all or nothing: the default queue's count of
/// completed tasks and the batch's event, written with each batch, match the tasks there. The
/// child is this test binary, running `crash_child`.
fn kill_loses_nothing_acknowledged(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "--nocapture",
            "store::conformance::crash_child",
        ])
        .env(CRASH_DIR_ENV, dir.path())
        .env(CRASH_KIND_ENV, kind.name())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = 0u64;
    let mut seen = 0;
    // Kill it mid-stream: after some acknowledgements, while it is writing more.
    while seen < 40 {
        let line = lines.next().expect("the child stopped early").unwrap();
        if let Some(id) = line.strip_prefix("acked ") {
            acked = id.parse().unwrap();
            seen += 1;
        }
    }
    child.kill().unwrap();
    // Lines already in the pipe were acknowledged before the kill too.
    for line in lines.map_while(Result::ok) {
        if let Some(id) = line.strip_prefix("acked ") {
            acked = id.parse().unwrap();
        }
    }
    child.wait().unwrap();
    let store = reopen(dir.path(), kind);
    let loaded = store.load_all().unwrap();
    let ids: Vec<u64> = loaded.tasks.iter().map(|t| t.id.0).collect();
    assert!(
        ids.len() as u64 >= acked,
        "{} records, {acked} acknowledged",
        ids.len()
    );
    assert_eq!(&ids[..acked as usize], &(1..=acked).collect::<Vec<_>>()[..]);
    assert!(loaded.next_task_id > acked);
    assert_eq!(loaded.queues, vec![default_queue(ids.len() as u64, 0, 0)]);
    let batches = ids.len() as u64 / 10;
    let logged = store.reader().events(0, usize::MAX).unwrap();
    assert_eq!(logged, events::events(1..=batches), "one event per batch");
    assert_eq!(store.load().unwrap().events.next_seq, batches + 1);
}

/// The child of `kill_loses_nothing_acknowledged`: applies batches of 10 completed records
/// with the default queue's count of them and one event forever, printing `acked N` once the
/// batch up to id N is applied. Does nothing when run by hand.
#[tokio::test]
#[ignore]
async fn crash_child() {
    let (Ok(dir), Ok(kind)) = (std::env::var(CRASH_DIR_ENV), std::env::var(CRASH_KIND_ENV)) else {
        return;
    };
    let kind = match kind.as_str() {
        "sled" => StoreKind::Sled,
        _ => StoreKind::Fjall,
    };
    let store = Store::open(Path::new(&dir), Some(kind)).unwrap();
    let mut next = 1u64;
    loop {
        let tasks = (next..next + 10)
            .map(|id| in_state(id, TaskState::Completed))
            .collect();
        next += 10;
        store
            .apply(Batch {
                tasks,
                next_task_id: Some(next),
                queues: vec![default_queue(next - 1, 0, 0)],
                events: vec![events::event((next - 1) / 10)],
                ..Batch::default()
            })
            .await
            .unwrap();
        println!("acked {}", next - 1);
    }
}

/// Every test above, for one backend.
macro_rules! conformance {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn batch_survives_reopen() {
                super::batch_survives_reopen($kind).await;
            }

            #[tokio::test]
            async fn encoded_records_land_as_whole_ones() {
                super::encoded_records_land_as_whole_ones($kind).await;
            }

            #[tokio::test]
            async fn later_batches_replace() {
                super::later_batches_replace($kind).await;
            }

            #[tokio::test]
            async fn batches_in_flight() {
                super::batches_in_flight($kind).await;
            }

            #[tokio::test]
            async fn add_keys_survive() {
                super::add_keys_survive($kind).await;
            }

            #[test]
            fn newer_schema_is_refused() {
                super::newer_schema_is_refused($kind);
            }

            #[test]
            fn locked_is_refused() {
                super::locked_is_refused($kind);
            }

            #[tokio::test]
            async fn other_backend_is_refused() {
                super::other_backend_is_refused($kind).await;
            }

            #[tokio::test]
            async fn live_and_finished_apart() {
                super::live_and_finished_apart($kind).await;
            }

            #[tokio::test]
            async fn a_wide_live_range_loads_whole() {
                super::a_wide_live_range_loads_whole($kind).await;
            }

            #[tokio::test]
            async fn scan_pages() {
                super::scan_pages($kind).await;
            }

            #[tokio::test]
            async fn schema_3_is_split() {
                super::schema_3_is_split($kind).await;
            }

            #[tokio::test]
            async fn schema_4_is_rewritten() {
                super::schema_4_is_rewritten($kind).await;
            }

            #[tokio::test]
            async fn schema_4_rewrite_survives_crashes() {
                super::schema_4_rewrite_survives_crashes($kind).await;
            }

            #[tokio::test]
            async fn queues_and_schedules_survive() {
                super::queues_and_schedules_survive($kind).await;
            }

            #[tokio::test]
            async fn new_fields_survive() {
                super::new_fields_survive($kind).await;
            }

            #[test]
            fn kill_loses_nothing_acknowledged() {
                super::kill_loses_nothing_acknowledged($kind);
            }

            #[test]
            fn a_new_log_starts_at_one() {
                super::events::a_new_log_starts_at_one($kind);
            }

            #[tokio::test]
            async fn events_survive_reopen() {
                super::events::events_survive_reopen($kind).await;
            }

            #[tokio::test]
            async fn trims_keep_seqs_going() {
                super::events::trims_keep_seqs_going($kind).await;
            }

            #[tokio::test]
            async fn schema_5_gains_events() {
                super::events::schema_5_gains_events($kind).await;
            }

            #[tokio::test]
            async fn a_reader_does_not_hold_the_database() {
                super::reader::a_reader_does_not_hold_the_database($kind).await;
            }

            #[tokio::test]
            async fn purge_removes_finished_only() {
                super::purge::purge_removes_finished_only($kind).await;
            }

            #[tokio::test]
            async fn finished_ids_by_age() {
                super::purge::finished_ids_by_age($kind).await;
            }

            #[tokio::test]
            async fn purged_disk_is_given_back_or_reused() {
                super::purge::purged_disk_is_given_back_or_reused($kind).await;
            }
        }
    };
}

conformance!(sled, StoreKind::Sled);
conformance!(fjall, StoreKind::Fjall);
