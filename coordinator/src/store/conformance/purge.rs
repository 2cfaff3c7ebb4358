//! Conformance tests of purging finished tasks: what a purge removes and what it never
//! touches, the scan that finds candidates by age, and the disk given back afterwards.
//! Instantiated per backend by `conformance!`.

use super::*;

/// A finished record at `finished` ms, created 10 ms before, in `state`.
fn finished_at(id: u64, state: TaskState, finished: u64) -> TaskRecord {
    let spec = TaskSpec::call("m:f", "[1]", "{}");
    let mut task = TaskRecord::new(TaskId(id), spec, state, Timestamp(finished - 10));
    task.finished_at = Some(Timestamp(finished));
    task
}

/// A purge removes finished records with their outputs, and nothing else: a live id in it
/// stays, an unknown one is no error; a task finished and purged in one batch is stored
/// nowhere; all of it across a reopen.
pub(super) async fn purge_removes_finished_only(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        let tasks = vec![
            in_state(1, TaskState::Completed),
            in_state(2, TaskState::Failed),
            in_state(3, TaskState::Running),
            in_state(4, TaskState::Killed),
            in_state(5, TaskState::Ready),
        ];
        let outputs = (1..=5).map(|id| (TaskId(id), printed("out"))).collect();
        store
            .apply(Batch {
                tasks,
                outputs,
                next_task_id: Some(6),
                ..Batch::default()
            })
            .await
            .unwrap();
        store
            .apply(Batch {
                tasks: vec![in_state(5, TaskState::Completed)],
                outputs: vec![(TaskId(5), printed("five"))],
                purge: vec![TaskId(1), TaskId(3), TaskId(4), TaskId(5), TaskId(99)],
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let store = reopen(dir.path(), kind);
    let loaded = store.load().unwrap();
    assert_eq!(ids(&loaded.tasks.decode_all().unwrap()), vec![3], "live");
    assert_eq!(loaded.next_task_id, 6, "the counter is kept");
    assert_eq!(ids(&store.load_all().unwrap().tasks), vec![2, 3]);
    let reader = store.reader();
    for purged in [1, 4, 5] {
        assert_eq!(reader.get(TaskId(purged)).unwrap(), None, "task {purged}");
        assert_eq!(
            reader.output(TaskId(purged)).unwrap(),
            TaskOutput::default()
        );
    }
    assert_eq!(reader.output(TaskId(2)).unwrap(), printed("out"));
    assert_eq!(
        reader.output(TaskId(3)).unwrap(),
        printed("out"),
        "live kept"
    );
    assert_eq!(
        reader.get(TaskId(3)).unwrap().unwrap().state,
        TaskState::Running
    );
}

/// `finished_ids` finds finished tasks that finished before a time, of the asked states (any
/// finished state when none is asked), above `after`, in id order, at most `limit`.
pub(super) async fn finished_ids_by_age(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(kind)).unwrap();
    let states = [TaskState::Completed, TaskState::Failed, TaskState::Killed];
    // Task i finished at 100 * i: 1..=20 from 100 to 2000; 21 is live.
    let mut tasks: Vec<TaskRecord> = (1..=20)
        .map(|id| finished_at(id, states[id as usize % 3], 100 * id))
        .collect();
    tasks.push(in_state(21, TaskState::Ready));
    store
        .apply(Batch {
            tasks,
            next_task_id: Some(22),
            ..Batch::default()
        })
        .await
        .unwrap();
    let reader = store.reader();
    let find = |before: u64, states: &[TaskState], after: Option<u64>, limit: usize| {
        reader
            .finished_ids(Timestamp(before), states, after.map(TaskId), limit)
            .unwrap()
            .into_iter()
            .map(|id| id.0)
            .collect::<Vec<u64>>()
    };
    assert_eq!(find(601, &[], None, 100), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        find(600, &[], None, 100),
        vec![1, 2, 3, 4, 5],
        "strictly before"
    );
    assert_eq!(find(601, &[], Some(2), 2), vec![3, 4]);
    assert_eq!(find(u64::MAX, &[], Some(18), 100), vec![19, 20]);
    let failed = [TaskState::Failed];
    assert_eq!(find(1_001, &failed, None, 100), vec![1, 4, 7, 10]);
    assert_eq!(
        find(u64::MAX, &[TaskState::Ready], None, 100),
        Vec::<u64>::new()
    );
    assert_eq!(find(u64::MAX, &[], None, 0), Vec::<u64>::new());
    assert_eq!(find(u64::MAX, &[], Some(u64::MAX), 10), Vec::<u64>::new());
    assert_eq!(find(50, &[], None, 100), Vec::<u64>::new());
}

/// Writes `count` finished tasks with ids from `first`, each with an output of about 1 KiB
/// (what a task printing a few lines keeps), in batches of 5,000 as a busy round writes them.
async fn write_finished(store: &Store, first: u64, count: u64) {
    let text = "a line a task printed while it ran\n".repeat(30);
    for start in (first..first + count).step_by(5_000) {
        let end = (start + 5_000).min(first + count);
        let tasks = (start..end)
            .map(|id| finished_at(id, TaskState::Completed, 1_000 + id))
            .collect();
        let outputs = (start..end)
            .map(|id| (TaskId(id), printed(&format!("{id}\n{text}"))))
            .collect();
        store
            .apply(Batch {
                tasks,
                outputs,
                next_task_id: Some(end),
                ..Batch::default()
            })
            .await
            .unwrap();
    }
}

/// Purges every finished task, found by `finished_ids` page by page as the coordinator does.
async fn purge_all(store: &Store) -> u64 {
    let reader = store.reader();
    let mut purged = 0;
    loop {
        let page = reader
            .finished_ids(Timestamp(u64::MAX), &[], None, 10_000)
            .unwrap();
        if page.is_empty() {
            return purged;
        }
        purged += page.len() as u64;
        store
            .apply(Batch {
                purge: page,
                ..Batch::default()
            })
            .await
            .unwrap();
    }
}

/// 20,000 finished tasks with outputs (about 25 MB), purged, then compacted: fjall gives
/// the disk back (the database takes less than half of what it took with them); sled keeps its
/// file and reuses it: 20,000 more tasks written after the purge leave it no bigger than it was
/// with the first 20,000 (by a quarter at most), where without the purge it would double. A
/// reopen finds none of the purged ones.
pub(super) async fn purged_disk_is_given_back_or_reused(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(kind)).unwrap();
    write_finished(&store, 1, 20_000).await;
    store.compact().unwrap();
    let before = store.disk_bytes();
    assert!(before > 20_000_000, "{before} bytes with 20k outputs");
    assert_eq!(purge_all(&store).await, 20_000);
    store.compact().unwrap();
    let after = store.disk_bytes();
    eprintln!("{kind}: {before} bytes with 20k tasks, {after} after the purge and a compaction");
    write_finished(&store, 20_001, 20_000).await;
    store.compact().unwrap();
    let again = store.disk_bytes();
    eprintln!("{kind}: {again} bytes with 20k new tasks after the purge");
    match kind {
        StoreKind::Fjall => assert!(
            after < before / 2,
            "{kind}: {before} bytes before the purge, {after} after it and a compaction"
        ),
        StoreKind::Sled => assert!(
            again < before + before / 4,
            "{kind}: {before} bytes before the purge, {again} with as many new tasks after it"
        ),
    }
    drop(store);
    let store = reopen(dir.path(), kind);
    let all = store.load_all().unwrap().tasks;
    assert_eq!((all.len(), all[0].id), (20_000, TaskId(20_001)));
    assert_eq!(store.load().unwrap().next_task_id, 40_001);
}

/// With fjall the disk shrinks after a purge without anyone asking: once the store is idle the
/// key spaces the purge removed from are compacted on their own, and the journals the purge
/// wrote are deleted although `finished` and `outputs` end with no table at all (bounded waits,
/// polled).
#[tokio::test]
async fn fjall_compacts_on_its_own_after_a_purge() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(StoreKind::Fjall)).unwrap();
    write_finished(&store, 1, 20_000).await;
    store.compact().unwrap();
    let before = store.disk_bytes();
    assert_eq!(purge_all(&store).await, 20_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now = store.disk_bytes();
    while now >= before / 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = store.disk_bytes();
    }
    assert!(
        now < before / 2,
        "{before} bytes before the purge, still {now} 30 s after it"
    );
    let journals = dir.path().join("keyspace").join("journals");
    let mut kept = dir_disk_bytes(&journals);
    while kept > JOURNALS_LEFT && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        kept = dir_disk_bytes(&journals);
    }
    eprintln!("journals: {kept} bytes after the purge's compaction");
    assert!(
        kept <= JOURNALS_LEFT,
        "{kept} bytes of journals kept after the purge"
    );
}

/// The journals an idle fjall store keeps: the active one, with at most the few writes since.
/// The purge of `fjall_compacts_on_its_own_after_a_purge` wrote about 1 MB to them, which the
/// order fixed in `fjall/compaction.rs` used to keep.
const JOURNALS_LEFT: u64 = 256 * 1024;
