//! The event log's rules without an actor: numbering, what a round's events are made of,
//! trimming, and the fan-out's lag rule.

use super::*;
use crate::record::TaskRecord;
use tatzelwurm_proto::task::{TaskError, TaskInfo, TaskSpec};

const NOW: Timestamp = Timestamp(1_000);

fn record(id: u64, state: TaskState) -> TaskRecord {
    let mut spec = TaskSpec::call("tasks:square", "[1]", "{}");
    spec.queue = "q".into();
    let mut info = TaskInfo::new(TaskId(id), spec, state, NOW);
    info.attempts = Attempt(2);
    info.worker = Some("w1".into());
    info.error = Some(TaskError {
        kind: "ValueError".into(),
        message: "bad".into(),
        traceback: String::new(),
    });
    info
}

/// `log.stamp` of whole records.
fn stamp(log: &mut EventLog, records: &[TaskRecord], purged: u64, now: Timestamp) -> Vec<Event> {
    log.stamp(records.iter().map(WrittenRecord::from), purged, now)
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// Every event that names a queue or a worker holds the one shared copy of that name, whether
/// it came from a record or a hand-out, across rounds.
#[test]
fn events_share_their_names() {
    let mut log = EventLog::recover(1, None, 100);
    log.handed(TaskId(9), "q", Attempt(1), "w1");
    let first = stamp(&mut log, &[record(1, TaskState::Running)], 0, NOW);
    let second = stamp(&mut log, &[record(2, TaskState::Completed)], 0, NOW);
    let names: Vec<(Arc<str>, Arc<str>)> = first
        .iter()
        .chain(&second)
        .map(|event| match &event.kind {
            EventKind::Task {
                queue,
                worker: Some(worker),
                ..
            } => (queue.clone(), worker.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names.len(), 3);
    for (queue, worker) in &names {
        assert_eq!((&**queue, &**worker), ("q", "w1"));
        assert!(Arc::ptr_eq(queue, &names[0].0) && Arc::ptr_eq(worker, &names[0].1));
    }
}

/// A round's events are its worker events, one per written record, its unwritten hand-outs and
/// one `Purged`, numbered on from where the last round stopped, across a restart too.
#[test]
fn rounds_are_numbered_on() {
    let mut log = EventLog::recover(1, None, 100);
    assert!(
        stamp(&mut log, &[], 0, NOW).is_empty(),
        "an idle round has none"
    );
    log.worker(WorkerId(4), "w1", WorkerChange::Joined);
    log.handed(TaskId(9), "q", Attempt(1), "w1");
    let records = [record(1, TaskState::Ready), record(2, TaskState::Failed)];
    let events = stamp(&mut log, &records, 3, NOW);
    assert_eq!(seqs(&events), [1, 2, 3, 4, 5]);
    assert!(events.iter().all(|e| e.at == NOW));
    assert!(matches!(
        events[0].kind,
        EventKind::Worker {
            change: WorkerChange::Joined,
            ..
        }
    ));
    match &events[1].kind {
        EventKind::Task {
            id, state, error, ..
        } => {
            assert_eq!((*id, *state), (TaskId(1), TaskState::Ready));
            assert_eq!(*error, None, "only a failed or waiting task names an error");
        }
        other => panic!("{other:?}"),
    }
    match &events[2].kind {
        EventKind::Task {
            queue,
            attempt,
            worker,
            error,
            ..
        } => {
            assert_eq!(&**queue, "q");
            assert_eq!(*attempt, Attempt(2));
            assert_eq!(worker.as_deref(), Some("w1"));
            assert_eq!(error.as_deref(), Some("ValueError"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        events[3].kind,
        EventKind::Task {
            state: TaskState::Running,
            ..
        }
    ));
    assert_eq!(events[4].kind, EventKind::Purged { count: 3 });
    assert_eq!(
        log.position(),
        Position {
            last: 5,
            oldest: Some(1)
        }
    );
    let events = stamp(&mut log, &[record(3, TaskState::Completed)], 0, NOW);
    assert_eq!(seqs(&events), [6], "what was noted went with its round");
    let mut again = EventLog::recover(7, Some(1), 100);
    assert_eq!(
        seqs(&stamp(&mut again, &[record(4, TaskState::Ready)], 0, NOW)),
        [7]
    );
}

/// The log is trimmed back to `keep` once it holds a tenth more, not at every round.
#[test]
fn trims_a_tenth_past_keep() {
    let mut log = EventLog::recover(1, None, 100);
    let ready: Vec<TaskRecord> = (1..=110).map(|id| record(id, TaskState::Ready)).collect();
    stamp(&mut log, &ready, 0, NOW);
    assert_eq!(log.trim(), None, "110 events are within a tenth of 100");
    stamp(&mut log, &ready[..1], 0, NOW);
    assert_eq!(log.trim(), Some(11), "111 go back to the newest 100");
    assert_eq!(log.position().oldest, Some(12));
    assert_eq!(log.trim(), None);
    let mut none = EventLog::recover(50, Some(40), 0);
    assert_eq!(none.trim(), Some(49), "--keep-events 0 keeps nothing");
    assert_eq!(none.position().oldest, None);
    assert_eq!(none.trim(), None);
    stamp(&mut none, &ready[..2], 0, NOW);
    assert_eq!(none.position().oldest, Some(50));
}

/// Every subscriber gets each round once, from its subscription on; one that stops reading is
/// dropped with `Lagged` naming the last event it was sent, and the others go on.
#[tokio::test]
async fn a_slow_subscriber_is_dropped() {
    let mut log = EventLog::recover(1, None, 1_000_000);
    stamp(&mut log, &[record(1, TaskState::Ready)], 0, NOW);
    let (fast, mut fast_feed) = subscription();
    let (slow, mut slow_feed) = subscription();
    assert_eq!(log.subscribe(fast).last, 1);
    assert_eq!(log.subscribe(slow).last, 1);
    let chunk: Vec<TaskRecord> = (0..10_000).map(|id| record(id, TaskState::Ready)).collect();
    let mut sent = 0;
    while log.has_subscribers() && sent < 2 * LAG_EVENTS {
        let events: Arc<[Event]> = stamp(&mut log, &chunk, 0, NOW).into();
        sent += events.len();
        log.fan_out(events);
        let got = fast_feed.recv().await.unwrap().unwrap();
        assert_eq!(got.len(), chunk.len());
        if log.subscribers.len() == 1 {
            break;
        }
    }
    assert_eq!(
        log.subscribers.len(),
        1,
        "the slow one is gone, the fast one stays"
    );
    let mut last = 1;
    let failure = loop {
        match slow_feed.recv().await.unwrap() {
            Ok(events) => {
                assert_eq!(events[0].seq, last + 1, "no gap before the drop");
                last = events.last().unwrap().seq;
            }
            Err(failure) => break failure,
        }
    };
    assert_eq!(failure.kind, FailureKind::Lagged);
    assert!(
        failure.message.contains(&format!("--since {last}")),
        "{}",
        failure.message
    );
    assert!(
        last as usize <= LAG_EVENTS + chunk.len() + 1,
        "dropped once past the bound"
    );
    drop(fast_feed);
    let events = stamp(&mut log, &chunk[..1], 0, NOW);
    log.fan_out(events.into());
    assert!(!log.has_subscribers(), "a feed that is gone is forgotten");
}

/// A subscription taken while earlier rounds are still flushing starts after their events:
/// when those rounds land and are fanned out, the new subscriber is skipped (it reads them from
/// the store, up to its position), while an older one gets them; the next round reaches both.
#[tokio::test]
async fn a_subscriber_gets_no_round_stamped_before_it_subscribed() {
    let mut log = EventLog::recover(1, None, 1_000);
    let (old, mut old_feed) = subscription();
    assert_eq!(log.subscribe(old).last, 0);
    let flying: Arc<[Event]> = stamp(&mut log, &[record(1, TaskState::Ready)], 0, NOW).into();
    let (new, mut new_feed) = subscription();
    assert_eq!(log.subscribe(new).last, 1, "past the round in flight");
    log.fan_out(flying);
    assert_eq!(seqs(&old_feed.recv().await.unwrap().unwrap()), [1]);
    let next: Arc<[Event]> = stamp(&mut log, &[record(2, TaskState::Ready)], 0, NOW).into();
    log.fan_out(next);
    assert_eq!(seqs(&old_feed.recv().await.unwrap().unwrap()), [2]);
    assert_eq!(
        seqs(&new_feed.recv().await.unwrap().unwrap()),
        [2],
        "its first round is the one after its position"
    );
}
