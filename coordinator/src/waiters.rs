//! `Waiters`: actioners waiting for tasks to finish (`task wait`), answered when the last of
//! their tasks finishes. Held by the task actor; the replies leave only after the store flush
//! that made those tasks' final states durable.

use std::collections::HashMap;
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

/// The open waits, indexed by the tasks they wait for.
#[derive(Default)]
pub struct Waiters {
    waits: HashMap<u64, Wait>,
    by_task: HashMap<TaskId, Vec<u64>>,
    next: u64,
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
        let key = self.next;
        self.next += 1;
        for id in &pending {
            self.by_task.entry(*id).or_default().push(key);
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

    /// Notes that these tasks finished; returns the waits that are now complete.
    pub fn finished(&mut self, ids: &[TaskId]) -> Vec<Answer> {
        let mut answers = Vec::new();
        for id in ids {
            let Some(keys) = self.by_task.remove(id) else {
                continue;
            };
            for key in keys {
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
