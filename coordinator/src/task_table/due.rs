//! `Due`: one index of the times at which live tasks become ready on their own: a `scheduled`
//! task's start time (`run_at`) and a `waiting` task's retry (`retry_at`).
//!
//! The task actor sleeps until the earliest of these and of the next schedule firing
//! (`Schedules::next_due`), then the table promotes every task that is due. Entries are not
//! taken out when a task leaves its timed state some other way (killed, paused, failed by a
//! dependency); the table checks, as an entry comes due, that the task still waits for exactly
//! that time, and skips it otherwise. A set keeps one entry per (time, task), so playing a
//! paused task twice does not double it.

use std::collections::BTreeSet;
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::TaskId;

/// Timed tasks by the time they are due. See the module comment.
#[derive(Debug, Default)]
pub struct Due {
    entries: BTreeSet<(Timestamp, TaskId)>,
}

impl Due {
    /// `task` becomes ready at `at`.
    pub fn insert(&mut self, at: Timestamp, task: TaskId) {
        self.entries.insert((at, task));
    }

    /// The earliest time an entry is due, if any.
    pub fn next(&self) -> Option<Timestamp> {
        self.entries.first().map(|(at, _)| *at)
    }

    /// Takes the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, TaskId)> {
        match self.entries.first() {
            Some((at, _)) if *at <= now => self.entries.pop_first(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries come due in time order, then id order, only once their time has come; one
    /// entry per (time, task).
    #[test]
    fn entries_come_due_in_order() {
        let mut due = Due::default();
        due.insert(Timestamp(30), TaskId(1));
        due.insert(Timestamp(10), TaskId(3));
        due.insert(Timestamp(10), TaskId(2));
        due.insert(Timestamp(10), TaskId(2));
        assert_eq!(due.entries.len(), 3);
        assert_eq!(due.next(), Some(Timestamp(10)));
        assert_eq!(due.pop_due(Timestamp(9)), None);
        assert_eq!(due.pop_due(Timestamp(10)), Some((Timestamp(10), TaskId(2))));
        assert_eq!(due.pop_due(Timestamp(10)), Some((Timestamp(10), TaskId(3))));
        assert_eq!(due.pop_due(Timestamp(29)), None);
        assert_eq!(due.next(), Some(Timestamp(30)));
        assert_eq!(
            due.pop_due(Timestamp(100)),
            Some((Timestamp(30), TaskId(1)))
        );
        assert_eq!(due.next(), None);
    }
}
