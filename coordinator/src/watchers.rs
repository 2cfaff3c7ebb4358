//! `Watchers`: which actioner requests want to hear when which tasks finish (an `Add` with
//! `watch`, a `Watch`). Held by the task actor; what it returns is pushed as `Finished` frames
//! only after the store flush that made those final states durable.
//!
//! A registration is (connection, request) per task. When tasks finish, `finished` groups them
//! by registration, so each request gets one frame per round with every task of it that
//! finished in that round. A registration fires once and is gone; a connection that ends takes
//! its registrations with it (`forget`). So the pushes still owed are at most one per
//! registered (task, request): that bounds the memory a slow or stalled actioner can cost.
//!
//! Two forms, one meaning. A watched add names the ids it just created, consecutive: such a
//! run of ids is kept as one `Run` (its first and last id and a bit per task still owed), found
//! by its first id, so that watching and finishing a task of it costs a bit, not two hash-map
//! entries and a `Vec` (the Python client watches every task it submits: with per-task entries
//! the watchers were ~0.6 µs of the coordinator's CPU per task in W1). Runs never overlap: a
//! run that would overlap one already kept (a re-sent add, a `Watch` of a range) is kept per
//! task instead, in `by_task`, as short runs are. A task may be in a run and in `by_task`
//! (two requests watch it): `finished` looks in both. Plain data, no channels: the tests below
//! drive it directly.

use crate::id_bits::IdBits;
use std::collections::{BTreeMap, HashMap, HashSet};
use tatzelwurm_proto::{RequestId, TaskId};

/// One actioner connection, numbered by the coordinator as it accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Tasks of one request that finished: push them as one `Finished` frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Push {
    /// The connection to push to.
    pub conn: ConnId,
    /// The request the frame answers.
    pub request: RequestId,
    /// The tasks, in id order.
    pub tasks: Vec<TaskId>,
}

/// Runs shorter than this are kept per task: a run's bitset and lookup would cost more.
const MIN_RUN: usize = 16;

/// A run of consecutive ids one request watches (see the module).
#[derive(Debug)]
struct Run {
    /// The last id of the run (the first is its key in `Watchers::runs`).
    last: TaskId,
    /// Who watches it.
    conn: ConnId,
    request: RequestId,
    /// The tasks of the run still owed a push; the run goes when none is.
    owed: IdBits,
}

/// The open registrations. See the module comment.
#[derive(Debug, Default)]
pub struct Watchers {
    /// Runs of consecutive ids, by first id; they never overlap.
    runs: BTreeMap<TaskId, Run>,
    /// For each connection, the first ids of its runs.
    runs_by_conn: HashMap<ConnId, Vec<TaskId>>,
    /// For each watched unfinished task kept per task, the requests that watch it.
    by_task: HashMap<TaskId, Vec<(ConnId, RequestId)>>,
    /// For each connection, the tasks it watches per task, so that its end forgets them all.
    by_conn: HashMap<ConnId, HashSet<TaskId>>,
}

impl Watchers {
    /// Registers `request` of `conn` for each of `tasks` (all unfinished).
    pub fn watch(&mut self, conn: ConnId, request: RequestId, tasks: &[TaskId]) {
        let mut start = 0;
        while start < tasks.len() {
            let mut end = start + 1;
            while end < tasks.len() && tasks[end].0 == tasks[end - 1].0 + 1 {
                end += 1;
            }
            let run = &tasks[start..end];
            if run.len() < MIN_RUN || !self.add_run(conn, request, run[0], run[run.len() - 1]) {
                self.watch_each(conn, request, run);
            }
            start = end;
        }
    }

    /// Keeps `first..=last` as one run, unless it overlaps a run already kept (false).
    fn add_run(&mut self, conn: ConnId, request: RequestId, first: TaskId, last: TaskId) -> bool {
        let before = self.runs.range(..=last).next_back();
        if before.is_some_and(|(_, run)| run.last >= first) {
            return false;
        }
        self.runs.insert(
            first,
            Run {
                last,
                conn,
                request,
                owed: IdBits::all(first, last),
            },
        );
        self.runs_by_conn.entry(conn).or_default().push(first);
        true
    }

    /// Registers `request` of `conn` for each of `tasks`, one entry per task.
    fn watch_each(&mut self, conn: ConnId, request: RequestId, tasks: &[TaskId]) {
        let mine = self.by_conn.entry(conn).or_default();
        for task in tasks {
            mine.insert(*task);
            self.by_task.entry(*task).or_default().push((conn, request));
        }
    }

    /// Notes that `ids` finished; returns one push per request that watched any of them, and
    /// forgets those registrations.
    pub fn finished(&mut self, ids: &[TaskId]) -> Vec<Push> {
        let mut grouped: BTreeMap<(ConnId, RequestId), Vec<TaskId>> = BTreeMap::new();
        let mut emptied = Vec::new();
        for id in ids {
            if let Some((first, run)) = self.runs.range_mut(..=*id).next_back() {
                if run.owed.take(*id) {
                    grouped
                        .entry((run.conn, run.request))
                        .or_default()
                        .push(*id);
                    if run.owed.is_empty() {
                        emptied.push(*first);
                    }
                }
            }
            if self.by_task.is_empty() {
                continue;
            }
            let Some(watches) = self.by_task.remove(id) else {
                continue;
            };
            for (conn, request) in watches {
                if let Some(mine) = self.by_conn.get_mut(&conn) {
                    mine.remove(id);
                    if mine.is_empty() {
                        self.by_conn.remove(&conn);
                    }
                }
                grouped.entry((conn, request)).or_default().push(*id);
            }
        }
        for first in emptied {
            if let Some(run) = self.runs.remove(&first) {
                self.forget_run(run.conn, first);
            }
        }
        grouped
            .into_iter()
            .map(|((conn, request), mut tasks)| {
                tasks.sort_unstable();
                tasks.dedup();
                Push {
                    conn,
                    request,
                    tasks,
                }
            })
            .collect()
    }

    /// Drops `first` from the runs of `conn`.
    fn forget_run(&mut self, conn: ConnId, first: TaskId) {
        if let Some(firsts) = self.runs_by_conn.get_mut(&conn) {
            firsts.retain(|f| *f != first);
            if firsts.is_empty() {
                self.runs_by_conn.remove(&conn);
            }
        }
    }

    /// Forgets every registration of `conn` (its connection ended or cannot be reached).
    pub fn forget(&mut self, conn: ConnId) {
        for first in self.runs_by_conn.remove(&conn).unwrap_or_default() {
            self.runs.remove(&first);
        }
        let Some(tasks) = self.by_conn.remove(&conn) else {
            return;
        };
        for task in tasks {
            if let Some(watches) = self.by_task.get_mut(&task) {
                watches.retain(|(c, _)| *c != conn);
                if watches.is_empty() {
                    self.by_task.remove(&task);
                }
            }
        }
    }

    /// How many (task, request) registrations are open.
    pub fn len(&self) -> usize {
        let runs: usize = self.runs.values().map(|run| run.owed.len()).sum();
        runs + self.by_task.values().map(Vec::len).sum::<usize>()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.by_task.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &[u64]) -> Vec<TaskId> {
        raw.iter().map(|id| TaskId(*id)).collect()
    }

    fn range(first: u64, last: u64) -> Vec<TaskId> {
        (first..=last).map(TaskId).collect()
    }

    /// The push of `tasks` to request `request` of `conn`.
    fn push(conn: ConnId, request: u64, tasks: &[u64]) -> Push {
        Push {
            conn,
            request: RequestId(request),
            tasks: ids(tasks),
        }
    }

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);

    /// Tasks finishing together make one push per request, each with its own tasks only.
    #[test]
    fn one_push_per_request_per_round() {
        let mut watchers = Watchers::default();
        watchers.watch(A, RequestId(1), &ids(&[1, 2, 3]));
        watchers.watch(A, RequestId(2), &ids(&[3, 4]));
        watchers.watch(B, RequestId(1), &ids(&[2]));
        let pushes = watchers.finished(&ids(&[3, 2, 9]));
        assert_eq!(
            pushes,
            vec![push(A, 1, &[2, 3]), push(A, 2, &[3]), push(B, 1, &[2])]
        );
        assert_eq!(watchers.len(), 2, "tasks 1 and 4 are still watched");
        assert!(
            watchers.finished(&ids(&[2, 3])).is_empty(),
            "a watch fires once"
        );
        let last = watchers.finished(&ids(&[1, 4]));
        assert_eq!(last.len(), 2);
        assert!(watchers.is_empty() && watchers.by_conn.is_empty());
    }

    /// A connection's end forgets its registrations and leaves the others'.
    #[test]
    fn forget_drops_one_connection() {
        let mut watchers = Watchers::default();
        watchers.watch(A, RequestId(1), &ids(&[1, 2]));
        watchers.watch(B, RequestId(7), &ids(&[2]));
        watchers.forget(A);
        assert_eq!(watchers.len(), 1);
        assert!(watchers.finished(&ids(&[1])).is_empty());
        assert_eq!(watchers.finished(&ids(&[2])), vec![push(B, 7, &[2])]);
        watchers.forget(A);
        assert!(watchers.is_empty() && watchers.by_conn.is_empty());
    }

    /// A task watched twice by one request is pushed once.
    #[test]
    fn a_repeated_id_is_pushed_once() {
        let mut watchers = Watchers::default();
        watchers.watch(A, RequestId(1), &ids(&[5, 5]));
        let pushes = watchers.finished(&ids(&[5]));
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0].tasks, ids(&[5]));
    }

    /// An add's run of ids is kept as one run: each task is pushed once, in the round it
    /// finished, and the run goes with its last task.
    #[test]
    fn a_run_fires_each_task_once() {
        let mut watchers = Watchers::default();
        watchers.watch(A, RequestId(1), &range(100, 229));
        assert_eq!((watchers.runs.len(), watchers.by_task.len()), (1, 0));
        assert_eq!(watchers.len(), 130);
        let first = watchers.finished(&ids(&[100, 163, 164, 229, 99, 230]));
        assert_eq!(first, vec![push(A, 1, &[100, 163, 164, 229])]);
        assert!(
            watchers.finished(&ids(&[100, 229])).is_empty(),
            "fires once"
        );
        let rest: Vec<TaskId> = range(101, 228)
            .into_iter()
            .filter(|id| id.0 != 163 && id.0 != 164)
            .collect();
        let pushes = watchers.finished(&rest);
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0].tasks, rest);
        assert!(watchers.is_empty() && watchers.runs_by_conn.is_empty());
    }

    /// Runs that would overlap (a re-sent add, a watch of a range) are kept per task: every
    /// request still hears of every task it watches.
    #[test]
    fn overlapping_runs_fall_back_to_tasks() {
        let mut watchers = Watchers::default();
        watchers.watch(A, RequestId(1), &range(1, 40));
        watchers.watch(B, RequestId(2), &range(30, 80));
        assert_eq!((watchers.runs.len(), watchers.by_task.len()), (1, 51));
        let pushes = watchers.finished(&ids(&[35, 70]));
        assert_eq!(pushes, vec![push(A, 1, &[35]), push(B, 2, &[35, 70])]);
        watchers.forget(B);
        assert_eq!(watchers.len(), 39);
        watchers.forget(A);
        assert!(watchers.is_empty() && watchers.runs_by_conn.is_empty());
    }

    /// Ids with gaps make several runs (and short ones per-task entries); all are pushed.
    #[test]
    fn gaps_split_runs() {
        let mut watchers = Watchers::default();
        let mut watched = range(1, 20);
        watched.extend(range(30, 32));
        watched.extend(range(40, 99));
        watchers.watch(A, RequestId(3), &watched);
        assert_eq!((watchers.runs.len(), watchers.by_task.len()), (2, 3));
        let pushes = watchers.finished(&range(1, 120));
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0].tasks, watched);
        assert!(watchers.is_empty());
    }
}
