//! Conformance tests of schema 6's event log: appending, reading pages, trimming, where a start
//! continues, and the move of a schema 5 database to 6. Instantiated per backend by
//! `conformance!`.

use super::*;
use tatzelwurm_proto::event::{Event, EventKind, WorkerChange};
use tatzelwurm_proto::{Attempt, WorkerId};

/// An event of task `seq` (a task event) or, every third, of a worker.
pub(super) fn event(seq: u64) -> Event {
    let kind = if seq % 3 == 0 {
        EventKind::Worker {
            id: WorkerId(seq),
            name: format!("w{seq}"),
            change: WorkerChange::Joined,
        }
    } else {
        EventKind::Task {
            id: TaskId(seq),
            queue: DEFAULT_QUEUE.into(),
            state: TaskState::Failed,
            attempt: Attempt(2),
            worker: Some("w1".into()),
            error: Some("ValueError".into()),
        }
    };
    Event {
        seq,
        at: Timestamp(1_000 + seq),
        kind,
    }
}

/// The events of `seqs`, as `event` makes them.
pub(super) fn events(seqs: std::ops::RangeInclusive<u64>) -> Vec<Event> {
    seqs.map(event).collect()
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// A new database has an empty log that starts at seq 1.
pub(super) fn a_new_log_starts_at_one(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(kind)).unwrap();
    let meta = store.load().unwrap().events;
    assert_eq!(
        meta,
        EventsMeta {
            next_seq: 1,
            oldest: None
        }
    );
    assert!(store.reader().events(0, 10).unwrap().is_empty());
}

/// Events written with a batch's tasks survive a reopen whole, read back in pages of seq >
/// after, ascending, and a start continues after the last one.
pub(super) async fn events_survive_reopen(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        store
            .apply(Batch {
                tasks: vec![record(1)],
                next_task_id: Some(2),
                events: events(1..=4),
                ..Batch::default()
            })
            .await
            .unwrap();
        store
            .apply(Batch {
                events: events(5..=7),
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let store = reopen(dir.path(), kind);
    let meta = store.load().unwrap().events;
    assert_eq!(
        meta,
        EventsMeta {
            next_seq: 8,
            oldest: Some(1)
        }
    );
    let reader = store.reader();
    assert_eq!(reader.events(0, 100).unwrap(), events(1..=7), "whole");
    assert_eq!(seqs(&reader.events(2, 3).unwrap()), vec![3, 4, 5]);
    assert_eq!(seqs(&reader.events(6, 3).unwrap()), vec![7]);
    assert!(reader.events(7, 3).unwrap().is_empty());
    assert!(reader.events(u64::MAX, 3).unwrap().is_empty());
    assert!(reader.events(0, 0).unwrap().is_empty());
}

/// A trim removes the oldest events up to its seq and nothing after; an event of the trimming
/// batch at or below it is not written; a log trimmed empty still continues after the highest
/// seq ever written, across a reopen.
pub(super) async fn trims_keep_seqs_going(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Some(kind)).unwrap();
        store
            .apply(Batch {
                events: events(1..=10),
                ..Batch::default()
            })
            .await
            .unwrap();
        store
            .apply(Batch {
                events: events(11..=12),
                trim_events_through: Some(4),
                ..Batch::default()
            })
            .await
            .unwrap();
        assert_eq!(
            seqs(&store.reader().events(0, 100).unwrap()),
            (5..=12).collect::<Vec<_>>()
        );
        let meta = store.load().unwrap().events;
        assert_eq!((meta.next_seq, meta.oldest), (13, Some(5)));
        // The trim reaches past the stored log, into this batch's own events.
        store
            .apply(Batch {
                events: events(13..=14),
                trim_events_through: Some(13),
                ..Batch::default()
            })
            .await
            .unwrap();
        assert_eq!(seqs(&store.reader().events(0, 100).unwrap()), vec![14]);
        store
            .apply(Batch {
                trim_events_through: Some(14),
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let store = reopen(dir.path(), kind);
    let meta = store.load().unwrap().events;
    assert_eq!(
        meta,
        EventsMeta {
            next_seq: 15,
            oldest: None
        },
        "never starts over"
    );
    // A lower trim later does not lower the mark.
    store
        .apply(Batch {
            events: events(15..=15),
            trim_events_through: Some(3),
            ..Batch::default()
        })
        .await
        .unwrap();
    drop(store);
    let store = reopen(dir.path(), kind);
    let meta = store.load().unwrap().events;
    assert_eq!((meta.next_seq, meta.oldest), (16, Some(15)));
}

/// Writes a database as a schema 5 coordinator left it, with the backend's own crate (no
/// `events` key space at all): one live task, one finished with its output, the counter at 3.
fn write_schema_5(dir: &Path, kind: StoreKind) {
    let mut done = in_state(2, TaskState::Completed);
    done.result = Some("2".into());
    let entries: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("meta", SCHEMA_KEY.to_vec(), 5u32.to_be_bytes().to_vec()),
        ("meta", NEXT_ID_KEY.to_vec(), 3u64.to_be_bytes().to_vec()),
        (
            "live",
            task_key(TaskId(1)).to_vec(),
            encode(&record(1)).unwrap(),
        ),
        (
            "finished",
            task_key(TaskId(2)).to_vec(),
            encode(&done).unwrap(),
        ),
        (
            "outputs",
            task_key(TaskId(2)).to_vec(),
            encode(&printed("two")).unwrap(),
        ),
    ];
    let names = [
        "meta",
        "live",
        "finished",
        "outputs",
        "add_keys",
        "queues",
        "schedules",
    ];
    write_backend_file(dir, kind).unwrap();
    match kind {
        StoreKind::Sled => {
            let db = ::sled::open(dir).unwrap();
            for name in names {
                db.open_tree(name).unwrap();
            }
            for (tree, key, value) in entries {
                db.open_tree(tree).unwrap().insert(key, value).unwrap();
            }
            db.flush().unwrap();
        }
        StoreKind::Fjall => {
            let keyspace = ::fjall::Config::new(dir.join(super::super::fjall::KEYSPACE_DIR))
                .open()
                .unwrap();
            let partition = |name: &str| {
                keyspace
                    .open_partition(name, ::fjall::PartitionCreateOptions::default())
                    .unwrap()
            };
            for name in names {
                partition(name);
            }
            for (name, key, value) in entries {
                partition(name).insert(key, value).unwrap();
            }
            keyspace.persist(::fjall::PersistMode::SyncAll).unwrap();
        }
    }
}

/// A schema 5 database opens as schema 6 with everything kept and an empty log; one where a
/// first try stopped after the `events` space was made (the backend opened alone: the crash
/// point of the move) opens the same; and the events written after survive reopens.
pub(super) async fn schema_5_gains_events(kind: StoreKind) {
    for interrupted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_schema_5(dir.path(), kind);
        if interrupted {
            let backend = open_backend(dir.path(), kind);
            assert_eq!(
                backend.schema().unwrap(),
                5,
                "the space alone changes no version"
            );
        }
        {
            let store = reopen(dir.path(), kind);
            assert_eq!(store.backend.schema().unwrap(), SCHEMA_VERSION);
            let loaded = store.load().unwrap();
            assert_eq!(ids(&loaded.tasks.decode_all().unwrap()), vec![1]);
            assert_eq!(loaded.next_task_id, 3);
            assert_eq!(
                loaded.events,
                EventsMeta {
                    next_seq: 1,
                    oldest: None
                }
            );
            assert_eq!(
                store.get(TaskId(2)).unwrap().unwrap().state,
                TaskState::Completed
            );
            assert_eq!(store.output(TaskId(2)).unwrap(), printed("two"));
            store
                .apply(Batch {
                    events: events(1..=3),
                    ..Batch::default()
                })
                .await
                .unwrap();
        }
        for _ in 0..2 {
            let store = reopen(dir.path(), kind);
            assert_eq!(store.backend.schema().unwrap(), SCHEMA_VERSION);
            assert_eq!(store.reader().events(0, 10).unwrap(), events(1..=3));
            assert_eq!(store.load().unwrap().events.next_seq, 4);
        }
    }
}
