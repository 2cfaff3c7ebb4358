//! `Waiters`: actioners waiting for tasks to finish (`task wait`), answered when the last of
//! their tasks finishes. Held by the task actor; the replies leave only after the store flush
//! that made those tasks' final states durable.
//!
//! A wait counts its tasks' final states as they finish (`Tally`) instead of keeping their ids
//! for the answer: the answer is the counts and the few tasks that did not complete, so that
//! a `task wait -a` of a million tasks neither reads a million finished records back from the
//! store nor builds a reply of all of them.
//!
//! A wait's pending tasks are indexed by task (a hash map from task to waits), except for a
//! wide, dense wait such as W1's `task wait -a`: a bit per id over the range its tasks span, so
//! that each finishing task costs a bit test instead of a removal from a hash map of every
//! task (3% of the coordinator's samples in W1) and a wait of a million tasks holds 125 KB.

use crate::id_bits::IdBits;
use tatzelwurm_proto::actioner::Reply;
use tatzelwurm_proto::task::TaskState;
use tatzelwurm_proto::TaskId;
use tokio::sync::oneshot;

/// The final states of a wait's tasks so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Tasks that completed.
    pub completed: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Tasks that were killed.
    pub killed: u64,
    /// The failed and killed ones (described in the answer, so their ids are kept).
    pub unsuccessful: Vec<TaskId>,
    /// For a wait of every task: the tasks that had failed or been killed before it began.
    pub earlier_unsuccessful: u64,
}

impl Tally {
    /// Counts task `id`, finished in `state`.
    pub fn count(&mut self, id: TaskId, state: TaskState) {
        match state {
            TaskState::Completed => self.completed += 1,
            TaskState::Failed => self.failed += 1,
            _ => self.killed += 1,
        }
        if state != TaskState::Completed {
            self.unsuccessful.push(id);
        }
    }

    /// The counts by state, as `WaitSummary` carries them (states none ended in left out).
    pub fn counts(&self) -> Vec<(TaskState, u64)> {
        [
            (TaskState::Completed, self.completed),
            (TaskState::Failed, self.failed),
            (TaskState::Killed, self.killed),
        ]
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .collect()
    }
}

struct Wait {
    /// The tasks it waits for, as it keeps them.
    pending: Pending,
    /// The final states of its tasks that finished so far.
    tally: Tally,
    /// How many of them have not finished yet.
    remaining: usize,
    reply: oneshot::Sender<Reply>,
}

/// Open waits below which no sweep for abandoned ones is made.
const FIRST_SWEEP: usize = 64;

/// Tasks a wait must have at least to be kept as bits (`Pending::Bits`).
const BITS_FROM: usize = 1024;

/// The tasks a wait waits for.
enum Pending {
    /// Indexed in `Waiters::by_task`; these are the tasks it waited for when it began, to
    /// forget them there when it is abandoned.
    Indexed(Vec<TaskId>),
    /// Not indexed: the tasks still pending, as bits over the range they span (for waits of
    /// at least `BITS_FROM` tasks spanning at most 8 ids per task, so the bits take at most a
    /// byte per task).
    Bits(IdBits),
}

impl Pending {
    /// `tasks` as bits if they are many and dense enough, else as a list to index.
    fn of(tasks: Vec<TaskId>) -> Pending {
        let (Some(low), Some(high)) = (tasks.iter().min(), tasks.iter().max()) else {
            return Pending::Indexed(tasks);
        };
        let span = high.0 - low.0 + 1;
        if tasks.len() < BITS_FROM || span > 8 * tasks.len() as u64 {
            return Pending::Indexed(tasks);
        }
        Pending::Bits(IdBits::of(low.0, span, &tasks))
    }

    /// Clears task `id` if it is kept as a pending bit; whether it was.
    fn take_bit(&mut self, id: TaskId) -> bool {
        match self {
            Pending::Bits(bits) => bits.take(id),
            Pending::Indexed(_) => false,
        }
    }
}

/// The waits of one task: almost always one (a `task wait`), kept without an allocation.
enum Keys {
    One(u64),
    Many(Vec<u64>),
}

impl Keys {
    fn push(&mut self, key: u64) {
        match self {
            Keys::One(first) => *self = Keys::Many(vec![*first, key]),
            Keys::Many(keys) => keys.push(key),
        }
    }

    fn as_slice(&self) -> &[u64] {
        match self {
            Keys::One(key) => std::slice::from_ref(key),
            Keys::Many(keys) => keys,
        }
    }

    /// Drops `key`; whether none is left.
    fn remove(&mut self, key: u64) -> bool {
        match self {
            Keys::One(only) => *only == key,
            Keys::Many(keys) => {
                keys.retain(|k| *k != key);
                keys.is_empty()
            }
        }
    }
}

/// Maps keyed by task ids and wait keys: integers this process chose, not a peer, so FxHash's
/// one multiply instead of SipHash (a `wait -a` indexes every task).
type IdMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// The open waits, indexed by the tasks they wait for.
///
/// A wait whose actioner went away (its reply channel closed) is dropped at the next sweep, so
/// that abandoned waits (a `task wait --timeout` that gave up, a client that died) on tasks that
/// run for days cannot pile up. A sweep runs when the open waits have doubled since the last
/// one, which keeps its cost amortised to O(1) per wait.
pub struct Waiters {
    waits: IdMap<u64, Wait>,
    by_task: IdMap<TaskId, Keys>,
    /// The open waits kept as bits (`Pending::Bits`), looked at for every finished task.
    with_bits: Vec<u64>,
    next: u64,
    sweep_at: usize,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters {
            waits: IdMap::default(),
            by_task: IdMap::default(),
            with_bits: Vec::new(),
            next: 0,
            sweep_at: FIRST_SWEEP,
        }
    }
}

/// A wait whose tasks have all finished: answer `reply` with `tally`.
pub struct Answer {
    /// The final states of its tasks.
    pub tally: Tally,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Reply>,
}

impl Waiters {
    /// Registers a wait for `pending`, unfinished tasks; `tally` counts the tasks of the wait
    /// that had finished already.
    pub fn add(&mut self, tally: Tally, pending: Vec<TaskId>, reply: oneshot::Sender<Reply>) {
        if self.waits.len() >= self.sweep_at {
            self.drop_abandoned();
            self.sweep_at = (2 * self.waits.len()).max(FIRST_SWEEP);
        }
        let key = self.next;
        self.next += 1;
        let remaining = pending.len();
        let pending = Pending::of(pending);
        match &pending {
            Pending::Indexed(tasks) => {
                self.by_task.reserve(tasks.len());
                for id in tasks {
                    self.by_task
                        .entry(*id)
                        .and_modify(|keys| keys.push(key))
                        .or_insert(Keys::One(key));
                }
            }
            Pending::Bits(_) => self.with_bits.push(key),
        }
        self.waits.insert(
            key,
            Wait {
                tally,
                remaining,
                pending,
                reply,
            },
        );
    }

    /// Forgets every wait whose actioner no longer listens, and its entries in `by_task`.
    fn drop_abandoned(&mut self) {
        let abandoned: Vec<u64> = self
            .waits
            .iter()
            .filter(|(_, wait)| wait.reply.is_closed())
            .map(|(key, _)| *key)
            .collect();
        for key in abandoned {
            let wait = self.waits.remove(&key).expect("listed above");
            match wait.pending {
                Pending::Indexed(tasks) => {
                    for id in &tasks {
                        if let Some(keys) = self.by_task.get_mut(id) {
                            if keys.remove(key) {
                                self.by_task.remove(id);
                            }
                        }
                    }
                }
                Pending::Bits(_) => self.with_bits.retain(|k| *k != key),
            }
        }
    }

    /// Notes that these tasks finished, each in the state `state_of` says (a task it knows
    /// nothing of counts as killed, which only a purge in the same round can cause); returns
    /// the waits that are now complete.
    pub fn finished(
        &mut self,
        ids: &[TaskId],
        state_of: impl Fn(TaskId) -> Option<TaskState>,
    ) -> Vec<Answer> {
        let mut answers = Vec::new();
        if self.by_task.is_empty() && self.with_bits.is_empty() {
            return answers;
        }
        let mut complete = Vec::new();
        for id in ids {
            let indexed = self.by_task.remove(id);
            let mut state = None;
            let mut count = |wait: &mut Wait, key: u64| {
                let state =
                    *state.get_or_insert_with(|| state_of(*id).unwrap_or(TaskState::Killed));
                wait.tally.count(*id, state);
                wait.remaining -= 1;
                if wait.remaining == 0 {
                    complete.push(key);
                }
            };
            for &key in indexed.as_ref().map_or(&[][..], Keys::as_slice) {
                if let Some(wait) = self.waits.get_mut(&key) {
                    count(wait, key);
                }
            }
            for &key in &self.with_bits {
                if let Some(wait) = self.waits.get_mut(&key) {
                    if wait.pending.take_bit(*id) {
                        count(wait, key);
                    }
                }
            }
        }
        for key in complete {
            if let Some(wait) = self.waits.remove(&key) {
                if matches!(wait.pending, Pending::Bits(_)) {
                    self.with_bits.retain(|k| *k != key);
                }
                answers.push(Answer {
                    tally: wait.tally,
                    reply: wait.reply,
                });
            }
        }
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &[u64]) -> Vec<TaskId> {
        raw.iter().map(|id| TaskId(*id)).collect()
    }

    fn completed(_: TaskId) -> Option<TaskState> {
        Some(TaskState::Completed)
    }

    /// A wait is answered when its last task finishes, with the states of all its tasks
    /// counted (those that had finished before it began included) and the unsuccessful named.
    #[test]
    fn a_wait_is_answered_when_its_last_task_finishes() {
        let mut waiters = Waiters::default();
        let (tx, mut rx) = oneshot::channel();
        let mut before = Tally::default();
        before.count(TaskId(1), TaskState::Completed);
        waiters.add(before, ids(&[2, 3, 4]), tx);
        assert!(waiters.finished(&ids(&[2]), completed).is_empty());
        let failed = |id: TaskId| {
            Some(if id == TaskId(3) {
                TaskState::Failed
            } else {
                TaskState::Killed
            })
        };
        assert!(waiters.finished(&ids(&[3]), failed).is_empty());
        let answers = waiters.finished(&ids(&[4, 9]), failed);
        assert_eq!(answers.len(), 1);
        let tally = &answers[0].tally;
        assert_eq!((tally.completed, tally.failed, tally.killed), (2, 1, 1));
        assert_eq!(tally.unsuccessful, ids(&[3, 4]));
        assert_eq!(
            tally.counts(),
            vec![
                (TaskState::Completed, 2),
                (TaskState::Failed, 1),
                (TaskState::Killed, 1)
            ]
        );
        answers
            .into_iter()
            .for_each(|a| a.reply.send(Reply::Waited(Default::default())).unwrap());
        assert!(rx.try_recv().is_ok());
        assert!(waiters.waits.is_empty() && waiters.by_task.is_empty());
    }

    /// Two waits on the same task both count it, and each is answered with its own tally.
    #[test]
    fn overlapping_waits_each_count_a_shared_task() {
        let mut waiters = Waiters::default();
        let (tx1, _rx1) = oneshot::channel();
        let (tx2, _rx2) = oneshot::channel();
        waiters.add(Tally::default(), ids(&[1, 2]), tx1);
        waiters.add(Tally::default(), ids(&[2]), tx2);
        let answers = waiters.finished(&ids(&[2]), completed);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].tally.completed, 1);
        let answers = waiters.finished(&ids(&[1]), completed);
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].tally.completed, 2);
        assert!(answers[0].tally.counts().len() == 1);
    }

    /// A wait of many tasks kept as bits is answered like an indexed one, counting each of its
    /// tasks once (however often reported) and none it does not wait for, beside an indexed
    /// wait on some of the same tasks; both leave nothing behind.
    #[test]
    fn a_wide_wait_kept_as_bits_counts_each_task_once() {
        let mut waiters = Waiters::default();
        let (wide, _wide_rx) = oneshot::channel();
        let (narrow, _narrow_rx) = oneshot::channel();
        // Every other id of 10..4010: dense enough for bits.
        let tasks: Vec<TaskId> = (0..2000).map(|n| TaskId(10 + 2 * n)).collect();
        waiters.add(Tally::default(), tasks.clone(), wide);
        waiters.add(Tally::default(), ids(&[10, 12]), narrow);
        assert!(matches!(waiters.waits[&0].pending, Pending::Bits(_)));
        assert_eq!(waiters.by_task.len(), 2, "only the narrow wait is indexed");
        let failed_12 = |id: TaskId| {
            Some(if id == TaskId(12) {
                TaskState::Failed
            } else {
                TaskState::Completed
            })
        };
        let answers = waiters.finished(&ids(&[9, 10, 11, 12, 12, 5000]), failed_12);
        assert_eq!(answers.len(), 1, "the narrow wait is complete");
        assert_eq!(answers[0].tally.unsuccessful, ids(&[12]));
        let rest: Vec<TaskId> = tasks[2..].to_vec();
        let (half, other) = rest.split_at(1000);
        assert!(waiters.finished(half, completed).is_empty());
        assert!(
            waiters.finished(half, completed).is_empty(),
            "a repeat counts nothing"
        );
        let answers = waiters.finished(other, completed);
        assert_eq!(answers.len(), 1);
        let tally = &answers[0].tally;
        assert_eq!((tally.completed, tally.failed), (1999, 1));
        assert!(waiters.waits.is_empty() && waiters.by_task.is_empty());
        assert!(waiters.with_bits.is_empty());
    }

    /// Waits whose actioner went away are swept; live waits stay and are answered.
    #[test]
    fn abandoned_waits_are_swept_and_live_ones_kept() {
        let mut waiters = Waiters::default();
        let mut live = Vec::new();
        // Many abandoned waits on a task that never finishes, a few live ones among them.
        for n in 0..10 * FIRST_SWEEP {
            let (tx, rx) = oneshot::channel();
            waiters.add(Tally::default(), ids(&[7]), tx);
            if n % 100 == 0 {
                live.push(rx);
            }
        }
        assert!(
            waiters.waits.len() < 2 * FIRST_SWEEP + live.len(),
            "{} waits still open with {} live",
            waiters.waits.len(),
            live.len()
        );
        assert!(waiters.by_task[&TaskId(7)].as_slice().len() == waiters.waits.len());
        let answers = waiters.finished(&ids(&[7]), completed);
        // Every live wait is answered; abandoned ones not yet swept may be answered too, harmlessly.
        assert!(answers.len() >= live.len());
        for answer in answers {
            let _ = answer.reply.send(Reply::Waited(Default::default()));
        }
        for mut rx in live {
            assert!(rx.try_recv().is_ok(), "a live wait was dropped");
        }
    }
}
