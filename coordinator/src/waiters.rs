//! `Waiters`: actioners waiting for tasks to finish (`task wait`), answered when the last of
//! their tasks finishes. Held by the task actor; the replies leave only after the store flush
//! that made those tasks' final states durable.

use tatzelwurm_proto::actioner::Reply;
use tatzelwurm_proto::TaskId;
use tokio::sync::oneshot;

struct Wait {
    /// Every task of the wait, in the order asked, for the answer.
    tasks: Vec<TaskId>,
    /// How many of them have not finished yet.
    remaining: usize,
    reply: oneshot::Sender<Reply>,
}

/// Open waits below which no sweep for abandoned ones is made.
const FIRST_SWEEP: usize = 64;

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
    next: u64,
    sweep_at: usize,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters {
            waits: IdMap::default(),
            by_task: IdMap::default(),
            next: 0,
            sweep_at: FIRST_SWEEP,
        }
    }
}

/// A wait whose tasks have all finished: answer `reply` with the final states of `tasks`.
pub struct Answer {
    /// The tasks to describe.
    pub tasks: Vec<TaskId>,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Reply>,
}

impl Waiters {
    /// Registers a wait for `pending` (the unfinished ones among `tasks`).
    pub fn add(&mut self, tasks: Vec<TaskId>, pending: Vec<TaskId>, reply: oneshot::Sender<Reply>) {
        if self.waits.len() >= self.sweep_at {
            self.drop_abandoned();
            self.sweep_at = (2 * self.waits.len()).max(FIRST_SWEEP);
        }
        let key = self.next;
        self.next += 1;
        self.by_task.reserve(pending.len());
        for id in &pending {
            self.by_task
                .entry(*id)
                .and_modify(|keys| keys.push(key))
                .or_insert(Keys::One(key));
        }
        self.waits.insert(
            key,
            Wait {
                tasks,
                remaining: pending.len(),
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
            for id in &wait.tasks {
                if let Some(keys) = self.by_task.get_mut(id) {
                    if keys.remove(key) {
                        self.by_task.remove(id);
                    }
                }
            }
        }
    }

    /// Notes that these tasks finished; returns the waits that are now complete.
    pub fn finished(&mut self, ids: &[TaskId]) -> Vec<Answer> {
        let mut answers = Vec::new();
        for id in ids {
            let Some(keys) = self.by_task.remove(id) else {
                continue;
            };
            for &key in keys.as_slice() {
                let Some(wait) = self.waits.get_mut(&key) else {
                    continue;
                };
                wait.remaining -= 1;
                if wait.remaining == 0 {
                    let wait = self.waits.remove(&key).expect("present");
                    answers.push(Answer {
                        tasks: wait.tasks,
                        reply: wait.reply,
                    });
                }
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

    #[test]
    fn a_wait_is_answered_when_its_last_task_finishes() {
        let mut waiters = Waiters::default();
        let (tx, mut rx) = oneshot::channel();
        waiters.add(ids(&[1, 2, 3]), ids(&[2, 3]), tx);
        assert!(waiters.finished(&ids(&[2])).is_empty());
        let answers = waiters.finished(&ids(&[3]));
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].tasks, ids(&[1, 2, 3]));
        answers
            .into_iter()
            .for_each(|a| a.reply.send(Reply::Waited(vec![])).unwrap());
        assert!(rx.try_recv().is_ok());
        assert!(waiters.waits.is_empty() && waiters.by_task.is_empty());
    }

    #[test]
    fn abandoned_waits_are_swept_and_live_ones_kept() {
        let mut waiters = Waiters::default();
        let mut live = Vec::new();
        // Many abandoned waits on a task that never finishes, a few live ones among them.
        for n in 0..10 * FIRST_SWEEP {
            let (tx, rx) = oneshot::channel();
            waiters.add(ids(&[7]), ids(&[7]), tx);
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
        let answers = waiters.finished(&ids(&[7]));
        // Every live wait is answered; abandoned ones not yet swept may be answered too, harmlessly.
        assert!(answers.len() >= live.len());
        for answer in answers {
            let _ = answer.reply.send(Reply::Waited(vec![]));
        }
        for mut rx in live {
            assert!(rx.try_recv().is_ok(), "a live wait was dropped");
        }
    }
}
