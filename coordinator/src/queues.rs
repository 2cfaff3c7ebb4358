//! `Queues`: what the coordinator knows of each queue beyond its ready lanes: its settings
//! (paused, limit), how many of its tasks finished in each way, and how many of its live tasks
//! are in each state.
//!
//! Settings and finished counts are a `QueueRecord` per queue, written through `Batch.queues`
//! in the batch that changes them (the batch of a `queue pause|resume|limit`, or of the round
//! in which a task of the queue finished, or was purged: a purged task no longer counts), so
//! that they survive a restart; finished tasks are
//! not in memory, so counting them at every `queue list` would read the whole history. Live
//! counts are kept as tasks move (`TaskTable` reports every move of a live task), so `queue
//! list` reads no task. The task table owns this table; queue names are interned by its
//! `Names` (a `QueueId` per name) and the scheduler knows which workers serve which queue.
//!
//! A queue is known when a live task, a connected worker, a setting or a finished count names
//! it; a change to an unknown queue fails with `UnknownQueue` and the sentence names the known
//! ones (`unknown_queue`).

use crate::record::QueueRecord;
use tatzelwurm_proto::actioner::{Failure, FailureKind};
use tatzelwurm_proto::queue::{QueueChange, QueueInfo};
use tatzelwurm_proto::task::TaskState;

/// A queue's number while the coordinator runs (interned by `task_table`'s `Names`): the
/// ready lanes, the queue table and the scheduler index by it instead of hashing names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct QueueId(pub u32);

impl QueueId {
    /// As an index into per-queue vectors.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// How many states a task has.
const STATES: usize = TaskState::ALL.len();

/// The place of `state` in `TaskState::ALL` (a match, not a search: it runs at every move).
fn slot(state: TaskState) -> usize {
    match state {
        TaskState::Created => 0,
        TaskState::Blocked => 1,
        TaskState::Scheduled => 2,
        TaskState::Paused => 3,
        TaskState::Ready => 4,
        TaskState::Running => 5,
        TaskState::Waiting => 6,
        TaskState::Completed => 7,
        TaskState::Failed => 8,
        TaskState::Killed => 9,
    }
}

/// One queue's entry.
#[derive(Debug, Default, Clone)]
struct Entry {
    /// Settings and finished counts, as stored.
    record: QueueRecord,
    /// Live tasks per state, by place in `TaskState::ALL` (finished states stay 0).
    live: [u64; STATES],
    /// `record` changed since the last `take_changes`.
    dirty: bool,
}

/// The queue table. See the module comment.
#[derive(Debug, Default)]
pub struct Queues {
    /// By `QueueId`; grown as queues are named.
    entries: Vec<Entry>,
    /// Queues whose record changed since the last `take_changes`.
    dirty: Vec<QueueId>,
}

impl Queues {
    fn entry(&mut self, queue: QueueId) -> &mut Entry {
        if self.entries.len() <= queue.index() {
            self.entries.resize_with(queue.index() + 1, Entry::default);
        }
        &mut self.entries[queue.index()]
    }

    fn mark(&mut self, queue: QueueId) {
        let entry = self.entry(queue);
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(queue);
        }
    }

    /// How many tasks of every queue together failed or were killed (and were not purged
    /// since), from the durable counts: what a `wait -a` reports as having ended badly
    /// before it began, without reading a finished record.
    pub fn unsuccessful(&self) -> u64 {
        self.entries
            .iter()
            .map(|entry| entry.record.failed + entry.record.killed)
            .sum()
    }

    /// Sets a queue's stored record, at start.
    pub fn restore(&mut self, queue: QueueId, record: QueueRecord) {
        self.entry(queue).record = record;
    }

    /// A live task of `queue` moved from state `from` to `to` (`None`: it was not live
    /// before, or is not live any more). Finished states are counted by `finished`.
    pub fn moved(&mut self, queue: QueueId, from: Option<TaskState>, to: Option<TaskState>) {
        let entry = self.entry(queue);
        if let Some(from) = from.filter(|s| !s.is_finished()) {
            let count = &mut entry.live[slot(from)];
            *count = count.saturating_sub(1);
        }
        if let Some(to) = to.filter(|s| !s.is_finished()) {
            entry.live[slot(to)] += 1;
        }
    }

    /// A task of `queue` finished in `state`: counted durably.
    pub fn finished(&mut self, queue: QueueId, state: TaskState) {
        let record = &mut self.entry(queue).record;
        match state {
            TaskState::Completed => record.completed += 1,
            TaskState::Failed => record.failed += 1,
            TaskState::Killed => record.killed += 1,
            _ => return,
        }
        self.mark(queue);
    }

    /// A finished task of `queue` in `state` was purged: it no longer counts.
    pub fn unfinished(&mut self, queue: QueueId, state: TaskState) {
        let record = &mut self.entry(queue).record;
        let count = match state {
            TaskState::Completed => &mut record.completed,
            TaskState::Failed => &mut record.failed,
            TaskState::Killed => &mut record.killed,
            _ => return,
        };
        *count = count.saturating_sub(1);
        self.mark(queue);
    }

    /// Whether dispatch from `queue` is paused.
    pub fn paused(&self, queue: QueueId) -> bool {
        self.entries
            .get(queue.index())
            .is_some_and(|e| e.record.paused)
    }

    /// At most this many of `queue`'s tasks may be assigned at once; 0 for no limit.
    pub fn limit(&self, queue: QueueId) -> u32 {
        self.entries
            .get(queue.index())
            .map_or(0, |e| e.record.limit)
    }

    /// Applies a `queue pause|resume|limit`; written with the next batch.
    pub fn change(&mut self, queue: QueueId, change: QueueChange) {
        let record = &mut self.entry(queue).record;
        match change {
            QueueChange::Pause => record.paused = true,
            QueueChange::Resume => record.paused = false,
            QueueChange::Limit(limit) => record.limit = limit,
        }
        self.mark(queue);
    }

    /// Whether a live task, a setting or a finished count names `queue` (the caller adds
    /// whether a worker serves it).
    pub fn known(&self, queue: QueueId) -> bool {
        self.entries
            .get(queue.index())
            .is_some_and(|e| e.live.iter().any(|n| *n > 0) || e.record != QueueRecord::default())
    }

    /// `queue` as `queue list` shows it, named `name` and served by `workers`.
    pub fn info(&self, queue: QueueId, name: &str, workers: Vec<String>) -> QueueInfo {
        let entry = self.entries.get(queue.index()).cloned().unwrap_or_default();
        let counts = TaskState::ALL
            .iter()
            .map(|state| {
                let count = match state {
                    TaskState::Completed => entry.record.completed,
                    TaskState::Failed => entry.record.failed,
                    TaskState::Killed => entry.record.killed,
                    live => entry.live[slot(*live)],
                };
                (*state, count)
            })
            .collect();
        QueueInfo {
            name: name.to_string(),
            paused: entry.record.paused,
            limit: entry.record.limit,
            counts,
            workers,
        }
    }

    /// The records changed since the last call, to write with the batch.
    pub fn take_changes(&mut self) -> Vec<(QueueId, QueueRecord)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|queue| {
                let entry = &mut self.entries[queue.index()];
                entry.dirty = false;
                (queue, entry.record.clone())
            })
            .collect()
    }
}

/// The refusal of a change to queue `name`, which nothing names; `known` are the queues that
/// exist, by name.
pub fn unknown_queue(name: &str, known: &[String]) -> Failure {
    let list = if known.is_empty() {
        "there are no queues yet (a queue exists once a task, a worker or a setting names it)"
            .to_string()
    } else {
        format!("the queues are: {}", known.join(", "))
    };
    Failure::new(
        FailureKind::UnknownQueue,
        format!("there is no queue `{}`; {list}", name.escape_debug()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: QueueId = QueueId(2);

    /// Live counts follow moves, finished counts are counted and marked for the store, and
    /// `info` lists every state in life order.
    #[test]
    fn counts_follow_tasks() {
        let mut queues = Queues::default();
        assert!(!queues.known(Q));
        queues.moved(Q, None, Some(TaskState::Ready));
        queues.moved(Q, None, Some(TaskState::Ready));
        queues.moved(Q, Some(TaskState::Ready), Some(TaskState::Running));
        assert!(queues.known(Q));
        assert!(
            queues.take_changes().is_empty(),
            "live counts are not stored"
        );
        queues.moved(Q, Some(TaskState::Running), None);
        queues.finished(Q, TaskState::Completed);
        queues.finished(Q, TaskState::Completed);
        let info = queues.info(Q, "q", vec!["w".into()]);
        assert_eq!(info.count(TaskState::Ready), 1);
        assert_eq!(info.count(TaskState::Running), 0);
        assert_eq!(info.count(TaskState::Completed), 2);
        assert_eq!(info.counts.len(), TaskState::ALL.len());
        assert_eq!(info.counts[0].0, TaskState::Created);
        let changes = queues.take_changes();
        assert_eq!(changes.len(), 1, "one write per queue per batch");
        assert_eq!(changes[0].1.completed, 2);
        assert!(queues.take_changes().is_empty());
    }

    /// `slot` follows `TaskState::ALL`.
    #[test]
    fn slots_follow_the_life_order() {
        for (n, state) in TaskState::ALL.iter().enumerate() {
            assert_eq!(slot(*state), n);
        }
    }

    /// Settings change durably; a queue with only a setting or a finished count is known.
    #[test]
    fn settings_are_stored_and_make_a_queue_known() {
        let mut queues = Queues::default();
        queues.change(Q, QueueChange::Pause);
        queues.change(Q, QueueChange::Limit(3));
        assert!(queues.paused(Q) && queues.limit(Q) == 3 && queues.known(Q));
        assert!(!queues.paused(QueueId(0)) && queues.limit(QueueId(7)) == 0);
        let changes = queues.take_changes();
        assert_eq!(
            changes,
            vec![(
                Q,
                QueueRecord {
                    paused: true,
                    limit: 3,
                    ..QueueRecord::default()
                }
            )]
        );
        queues.change(Q, QueueChange::Resume);
        queues.change(Q, QueueChange::Limit(0));
        assert!(!queues.known(Q));
        let mut restored = Queues::default();
        restored.restore(
            QueueId(0),
            QueueRecord {
                failed: 1,
                ..QueueRecord::default()
            },
        );
        assert!(restored.known(QueueId(0)));
    }

    /// The refusal names the queue and lists the known ones.
    #[test]
    fn unknown_queue_sentence() {
        let failure = unknown_queue("x", &["a".into(), "b".into()]);
        assert_eq!(failure.kind, FailureKind::UnknownQueue);
        assert_eq!(
            failure.message,
            "there is no queue `x`; the queues are: a, b"
        );
        assert!(unknown_queue("x", &[]).message.contains("no queues yet"));
    }
}
