//! Conformance tests of `StoreReader`: it reads what the store applied, from another thread,
//! and does not keep the database open once the `Store` is gone. Instantiated per backend by
//! `conformance!`.

use super::*;

/// A reader cloned before a batch sees the batch from another thread; once the `Store` is
/// dropped the directory opens again while the reader still exists, and the old reader answers
/// `Closed` in one sentence instead of reading a database it no longer holds.
pub(super) async fn a_reader_does_not_hold_the_database(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(kind)).unwrap();
    let reader = store.reader();
    let mut done = in_state(1, TaskState::Completed);
    done.finished_at = Some(Timestamp(7));
    store
        .apply(Batch {
            tasks: vec![done.clone()],
            outputs: vec![(TaskId(1), printed("one"))],
            events: events::events(1..=2),
            ..Batch::default()
        })
        .await
        .unwrap();
    let elsewhere = reader.clone();
    let seen = std::thread::spawn(move || {
        (
            elsewhere.get(TaskId(1)).unwrap(),
            elsewhere.output(TaskId(1)).unwrap(),
            elsewhere.events(0, 10).unwrap().len(),
            elsewhere.finished_ids(Timestamp(8), &[], None, 10).unwrap(),
        )
    })
    .join()
    .unwrap();
    assert_eq!(seen, (Some(done), printed("one"), 2, vec![TaskId(1)]));
    assert!(reader.disk_bytes() > 0);
    drop(store);
    let again = reopen(dir.path(), kind);
    let err = reader.get(TaskId(1)).expect_err("closed");
    assert!(matches!(err, StoreError::Closed), "{err}");
    assert!(err.to_string().contains("closed"), "{err}");
    assert_eq!(again.reader().events(0, 10).unwrap().len(), 2);
}
