//! One suite of store tests, run against every backend: `conformance!` instantiates each test
//! for one `StoreKind`, so a new backend gets the whole suite by one more line at the bottom.

use super::*;
use crate::add_keys::{KeyChange, KeyedAdd};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tatzelwurm_proto::task::{TaskSpec, TaskState};

fn record(id: u64) -> TaskRecord {
    let spec = TaskSpec {
        function: "m:f".into(),
        args: "[1]".into(),
        kwargs: "{}".into(),
        policy: tatzelwurm_proto::task::TaskPolicy::default(),
    };
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
            add_keys: Vec::new(),
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

/// A schema 3 database (every record in `records`) opens as schema 4 with its live and
/// finished records apart and `records` gone; a stale copy that an interrupted earlier move
/// left in `live` (of a task finished since) does not survive, and a second open changes
/// nothing.
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
        assert_eq!(store.load_all().unwrap().tasks, records);
        assert_eq!(
            store
                .backend
                .get(Space::Records, &task_key(TaskId(1)))
                .unwrap(),
            None
        );
    }
}

/// Writes a database as a schema 3 coordinator left it (`records` holding every record, the
/// counter at 10), plus `stale_live` records in a `live` key space as an interrupted move
/// might have left them.
fn write_schema_3(dir: &Path, kind: StoreKind, records: &[TaskRecord], stale_live: &[TaskRecord]) {
    let entries = |list: &[TaskRecord]| -> Vec<([u8; 8], Vec<u8>)> {
        list.iter()
            .map(|r| (task_key(r.id), encode(r).unwrap()))
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

/// The environment variables of the crash child: the directory and the backend.
const CRASH_DIR_ENV: &str = "TATZELWURM_STORE_CRASH_DIR";
const CRASH_KIND_ENV: &str = "TATZELWURM_STORE_CRASH_KIND";

/// A process killed (SIGKILL) at a moment of its own choosing while it applies batch after
/// batch loses nothing it acknowledged: every id it printed as applied is there after a reopen,
/// and the counter is past it. The child is this test binary, running `crash_child`.
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
}

/// The child of `kill_loses_nothing_acknowledged`: applies batches of 10 records forever,
/// printing `acked N` once the batch up to id N is applied. Does nothing when run by hand.
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
        let tasks = (next..next + 10).map(record).collect();
        next += 10;
        store
            .apply(Batch {
                tasks,
                next_task_id: Some(next),
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
            async fn later_batches_replace() {
                super::later_batches_replace($kind).await;
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

            #[test]
            fn kill_loses_nothing_acknowledged() {
                super::kill_loses_nothing_acknowledged($kind);
            }
        }
    };
}

conformance!(sled, StoreKind::Sled);
conformance!(fjall, StoreKind::Fjall);
