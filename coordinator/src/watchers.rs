//! `Watchers`: which actioner requests want to hear when which tasks finish (an `Add` with
//! `watch`, a `Watch`). Held by the task actor; what it returns is pushed as `Finished` frames
//! only after the store flush that made those final states durable.
//!
//! A registration is (connection, request) per task. When tasks finish, `finished` groups them
//! by registration, so each request gets one frame per round with every task of it that
//! finished in that round. A registration fires once and is gone; a connection that ends takes
//! its registrations with it (`forget`). So the pushes still owed are at most one per
//! registered (task, request): that bounds the memory a slow or stalled actioner can cost.
//! Plain data, no channels: the tests below drive it directly.

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

/// The open registrations. See the module comment.
#[derive(Debug, Default)]
pub struct Watchers {
    /// For each watched unfinished task, the requests that watch it.
    by_task: HashMap<TaskId, Vec<(ConnId, RequestId)>>,
    /// For each connection, the tasks it watches, so that its end forgets them all.
    by_conn: HashMap<ConnId, HashSet<TaskId>>,
}

impl Watchers {
    /// Registers `request` of `conn` for each of `tasks` (all unfinished).
    pub fn watch(&mut self, conn: ConnId, request: RequestId, tasks: &[TaskId]) {
        if tasks.is_empty() {
            return;
        }
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
        for id in ids {
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

    /// Forgets every registration of `conn` (its connection ended or cannot be reached).
    pub fn forget(&mut self, conn: ConnId) {
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
        self.by_task.values().map(Vec::len).sum()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.by_task.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &[u64]) -> Vec<TaskId> {
        raw.iter().map(|id| TaskId(*id)).collect()
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
            vec![
                Push {
                    conn: A,
                    request: RequestId(1),
                    tasks: ids(&[2, 3])
                },
                Push {
                    conn: A,
                    request: RequestId(2),
                    tasks: ids(&[3])
                },
                Push {
                    conn: B,
                    request: RequestId(1),
                    tasks: ids(&[2])
                },
            ]
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
        assert_eq!(
            watchers.finished(&ids(&[2])),
            vec![Push {
                conn: B,
                request: RequestId(7),
                tasks: ids(&[2])
            }]
        );
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
}
