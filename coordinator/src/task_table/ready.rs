//! `Ready`: the tasks waiting for a slot, in lanes per queue and priority.
//!
//! Each queue keeps one first-in-first-out lane per priority it has seen, highest priority
//! first; a queue's head is the front of its highest non-empty lane. A task that comes back
//! without having run (requeued with its lost worker, given back after a take-back) goes to the
//! front of its lane, ahead of newer tasks of its priority. Across queues, the best head wins:
//! higher priority, then lower task id (`Head`'s order), which is what a worker serving several
//! queues takes next and what dispatch hands first (`heads`, `TaskTable::ready_heads`).
//!
//! One queue with one priority, the common case, is a single `VecDeque`: a push and a pop
//! cost what they cost before queues existed. The task table keeps the lanes exact (a task
//! killed or paused while ready is taken out), so the lengths count ready tasks.

use crate::queues::QueueId;
use std::cmp::Ordering;
use std::collections::VecDeque;
use tatzelwurm_proto::TaskId;

/// The ready lanes of every queue. See the module comment.
#[derive(Debug, Default)]
pub struct Ready {
    /// By `QueueId`; grown when a queue first has a ready task.
    queues: Vec<Lanes>,
    /// Ready tasks in all queues.
    len: usize,
}

/// One queue's lanes.
#[derive(Debug, Default)]
struct Lanes {
    /// (priority, tasks), highest priority first; lanes stay when empty (a queue has few).
    lanes: Vec<(i8, VecDeque<TaskId>)>,
    /// Ready tasks in this queue.
    len: usize,
}

/// The task a queue would hand next, ordered so that the best head is the greatest: higher
/// priority first, then the lower task id (the older task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The head task's priority.
    pub priority: i8,
    /// The head task.
    pub task: TaskId,
    /// Its queue.
    pub queue: QueueId,
}

impl Ord for Head {
    fn cmp(&self, other: &Head) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.task.cmp(&self.task))
            .then_with(|| other.queue.cmp(&self.queue))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Lanes {
    /// The lane of `priority`, made if new (in its place by priority).
    fn lane(&mut self, priority: i8) -> &mut VecDeque<TaskId> {
        let at = match self.lanes.iter().position(|(p, _)| *p <= priority) {
            Some(at) if self.lanes[at].0 == priority => at,
            Some(at) => {
                self.lanes.insert(at, (priority, VecDeque::new()));
                at
            }
            None => {
                self.lanes.push((priority, VecDeque::new()));
                self.lanes.len() - 1
            }
        };
        &mut self.lanes[at].1
    }

    /// The highest non-empty lane.
    fn best(&self) -> Option<&(i8, VecDeque<TaskId>)> {
        if self.len == 0 {
            return None;
        }
        self.lanes.iter().find(|(_, lane)| !lane.is_empty())
    }
}

impl Ready {
    fn lanes(&mut self, queue: QueueId) -> &mut Lanes {
        if self.queues.len() <= queue.index() {
            self.queues.resize_with(queue.index() + 1, Lanes::default);
        }
        &mut self.queues[queue.index()]
    }

    /// Queues `task` behind the others of its queue and priority.
    pub fn push_back(&mut self, queue: QueueId, priority: i8, task: TaskId) {
        let lanes = self.lanes(queue);
        lanes.lane(priority).push_back(task);
        lanes.len += 1;
        self.len += 1;
    }

    /// Queues `task` ahead of the others of its queue and priority: it was ready before and
    /// came back without running.
    pub fn push_front(&mut self, queue: QueueId, priority: i8, task: TaskId) {
        let lanes = self.lanes(queue);
        lanes.lane(priority).push_front(task);
        lanes.len += 1;
        self.len += 1;
    }

    /// The task `queue` hands next, if it has one.
    pub fn head(&self, queue: QueueId) -> Option<Head> {
        let (priority, lane) = self.queues.get(queue.index())?.best()?;
        Some(Head {
            priority: *priority,
            task: *lane.front()?,
            queue,
        })
    }

    /// Takes the task `queue` hands next.
    pub fn pop(&mut self, queue: QueueId) -> Option<TaskId> {
        let lanes = self.queues.get_mut(queue.index())?;
        if lanes.len == 0 {
            return None;
        }
        let task = lanes
            .lanes
            .iter_mut()
            .find(|(_, lane)| !lane.is_empty())?
            .1
            .pop_front()?;
        lanes.len -= 1;
        self.len -= 1;
        Some(task)
    }

    /// The head of every queue that has a ready task and passes `open`; the greatest is the
    /// best of them (what a worker serving those queues takes next).
    pub fn heads(&self, open: impl Fn(QueueId) -> bool) -> Vec<Head> {
        (0..self.queues.len())
            .map(|q| QueueId(q as u32))
            .filter(|q| open(*q))
            .filter_map(|q| self.head(q))
            .collect()
    }

    /// Takes out the tasks of lane (`queue`, `priority`) that `keep` refuses (killed, paused).
    pub fn retain(&mut self, queue: QueueId, priority: i8, keep: impl FnMut(&TaskId) -> bool) {
        let Some(lanes) = self.queues.get_mut(queue.index()) else {
            return;
        };
        let Some((_, lane)) = lanes.lanes.iter_mut().find(|(p, _)| *p == priority) else {
            return;
        };
        let before = lane.len();
        lane.retain(keep);
        let gone = before - lane.len();
        lanes.len -= gone;
        self.len -= gone;
    }

    /// Ready tasks in all queues.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Ready tasks in `queue`.
    pub fn len_of(&self, queue: QueueId) -> usize {
        self.queues.get(queue.index()).map_or(0, |lanes| lanes.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: QueueId = QueueId(0);
    const B: QueueId = QueueId(1);

    fn drain(ready: &mut Ready, queue: QueueId) -> Vec<u64> {
        std::iter::from_fn(|| ready.pop(queue))
            .map(|t| t.0)
            .collect()
    }

    /// Higher priority first; first in, first out within a priority; a task that comes back
    /// goes to the front of its own priority, not ahead of higher ones.
    #[test]
    fn priority_then_fifo_and_requeued_first_in_their_priority() {
        let mut ready = Ready::default();
        ready.push_back(A, 0, TaskId(1));
        ready.push_back(A, 5, TaskId(2));
        ready.push_back(A, 0, TaskId(3));
        ready.push_back(A, -3, TaskId(4));
        ready.push_back(A, 5, TaskId(5));
        ready.push_front(A, 0, TaskId(9));
        assert_eq!(ready.len(), 6);
        assert_eq!(ready.len_of(A), 6);
        assert_eq!(
            ready.head(A),
            Some(Head {
                priority: 5,
                task: TaskId(2),
                queue: A
            })
        );
        assert_eq!(drain(&mut ready, A), vec![2, 5, 9, 1, 3, 4]);
        assert_eq!(ready.len(), 0);
        assert_eq!(ready.head(A), None);
    }

    /// Across queues the best head wins: higher priority, then the older task; a worker
    /// that serves only some queues sees only theirs.
    #[test]
    fn the_best_head_among_a_workers_queues() {
        let mut ready = Ready::default();
        ready.push_back(A, 0, TaskId(3));
        ready.push_back(B, 0, TaskId(2));
        ready.push_back(B, -1, TaskId(1));
        let best = |ready: &Ready, queues: &[QueueId]| {
            ready.heads(|q| queues.contains(&q)).into_iter().max()
        };
        assert_eq!(best(&ready, &[A, B]).map(|h| h.task), Some(TaskId(2)));
        assert_eq!(best(&ready, &[A]).map(|h| h.task), Some(TaskId(3)));
        ready.push_back(A, 1, TaskId(7));
        assert_eq!(best(&ready, &[A, B]).map(|h| h.task), Some(TaskId(7)));
        assert_eq!(best(&ready, &[QueueId(9)]), None);
        let mut heads = ready.heads(|q| q != B);
        heads.sort();
        assert_eq!(heads.iter().map(|h| h.task.0).collect::<Vec<_>>(), vec![7]);
        let mut heads = ready.heads(|_| true);
        heads.sort();
        // Greatest last: B's head (0, id 2) is below A's (1, id 7).
        assert_eq!(
            heads.iter().map(|h| h.task.0).collect::<Vec<_>>(),
            vec![2, 7]
        );
    }

    /// Retain takes tasks out of one lane and keeps the counts exact.
    #[test]
    fn retain_takes_out_and_counts() {
        let mut ready = Ready::default();
        for id in 1..=4 {
            ready.push_back(A, 2, TaskId(id));
        }
        ready.push_back(B, 2, TaskId(5));
        ready.retain(A, 2, |t| t.0 % 2 == 0);
        ready.retain(A, 7, |_| false);
        assert_eq!(ready.len(), 3);
        assert_eq!(ready.len_of(A), 2);
        assert_eq!(drain(&mut ready, A), vec![2, 4]);
        assert_eq!(drain(&mut ready, B), vec![5]);
    }
}
