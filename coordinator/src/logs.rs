//! The live output hub: an actor apart from the task actor, so that what running tasks print
//! never slows a round. Reached through `LogsHandle`.
//!
//! Worker connections (`worker_conn`) hand it the `FromWorker::Output` chunks they read, and,
//! after forwarding a report to the task actor, the reports of the attempts that had sent
//! output (`ended`); when a worker connection ends, its attempts are forgotten
//! (`worker_gone`). `task logs` requests (`log_follow`) take a snapshot of what a running task
//! has written so far, or follow it: they get every later piece through a bounded channel of
//! their own. The rules (what is kept, offsets, bounds) are the plain struct `logs::Hub`.
//!
//! The actor only appends to strings and hands out copies, one message at a time; it waits on
//! nobody: a follower whose channel is full is dropped (its channel closes, and it takes a new
//! snapshot to catch up), so a slow `task logs --follow` costs the hub nothing.

mod hub;
#[cfg(test)]
mod tests;

pub use hub::{FollowerId, Hub, Piece, PieceSink, KEEP_BYTES};
use tatzelwurm_proto::task::TaskOutput;
use tatzelwurm_proto::worker::OutputChunk;
use tatzelwurm_proto::{Attempt, TaskId, WorkerId};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// Pieces one follower may have waiting before the hub drops it. Workers coalesce output into
/// a few frames a second, so a follower that reads at all keeps up.
pub const FOLLOWER_QUEUE: usize = 256;

/// Messages waiting at the hub before worker connections wait to hand it more: output is
/// coalesced by workers, so this is many seconds of it.
const QUEUE: usize = 1024;

/// A follower's end of the hub: pieces as they are written; `None` once the hub dropped it
/// (it fell behind) or stopped.
pub type Follower = mpsc::Receiver<Piece>;

impl PieceSink for mpsc::Sender<Piece> {
    fn offer(&mut self, piece: Piece) -> bool {
        self.try_send(piece).is_ok()
    }
}

enum LogsMsg {
    Output {
        worker: WorkerId,
        most: usize,
        chunks: Vec<OutputChunk>,
    },
    Ended {
        worker: WorkerId,
        ended: Vec<(TaskId, Attempt, TaskOutput)>,
    },
    WorkerGone(WorkerId),
    Snapshot {
        task: TaskId,
        reply: oneshot::Sender<Vec<Piece>>,
    },
    Follow {
        task: TaskId,
        sink: mpsc::Sender<Piece>,
        reply: oneshot::Sender<(FollowerId, Vec<Piece>)>,
    },
    Unfollow {
        task: TaskId,
        follower: FollowerId,
        reply: Option<oneshot::Sender<()>>,
    },
}

/// A cheap, cloneable way to reach the live output hub. The hub stops when every handle is
/// dropped.
#[derive(Clone)]
pub struct LogsHandle {
    sender: mpsc::Sender<LogsMsg>,
}

impl Default for LogsHandle {
    fn default() -> Self {
        LogsHandle::new()
    }
}

impl LogsHandle {
    /// Starts the hub (on the current tokio runtime).
    pub fn new() -> LogsHandle {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(receiver));
        LogsHandle { sender }
    }

    /// What `worker` read from its running tasks' stdout and stderr; it holds at most `most`
    /// attempts at once (its units of slots, with room for the next attempt of each).
    pub async fn output(&self, worker: WorkerId, most: usize, chunks: Vec<OutputChunk>) {
        let msg = LogsMsg::Output {
            worker,
            most,
            chunks,
        };
        let _ = self.sender.send(msg).await;
    }

    /// `worker` reported these attempts, which had sent output, with their kept output:
    /// their followers get the rest of it and the hub forgets them. Call it after the report
    /// went to the task actor.
    pub async fn ended(&self, worker: WorkerId, ended: Vec<(TaskId, Attempt, TaskOutput)>) {
        let _ = self.sender.send(LogsMsg::Ended { worker, ended }).await;
    }

    /// `worker`'s connection ended: forget what its attempts wrote.
    pub async fn worker_gone(&self, worker: WorkerId) {
        let _ = self.sender.send(LogsMsg::WorkerGone(worker)).await;
    }

    /// What `task`'s running attempts have written so far and the hub still holds (each
    /// stream's last `KEEP_BYTES`), per attempt in order; empty if the hub stopped.
    pub async fn snapshot(&self, task: TaskId) -> Vec<Piece> {
        let (reply, answer) = oneshot::channel();
        if self
            .sender
            .send(LogsMsg::Snapshot { task, reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Follows `task`: returns the follower's id, what is held so far, and the pieces written
    /// from then on (none falls between). The channel closes when the follower falls more
    /// than `FOLLOWER_QUEUE` pieces behind; follow again to catch up. `None` if the hub stopped.
    pub async fn follow(&self, task: TaskId) -> Option<(FollowerId, Vec<Piece>, Follower)> {
        let (sink, pieces) = mpsc::channel(FOLLOWER_QUEUE);
        let (reply, answer) = oneshot::channel();
        let msg = LogsMsg::Follow { task, sink, reply };
        self.sender.send(msg).await.ok()?;
        let (id, snapshot) = answer.await.ok()?;
        Some((id, snapshot, pieces))
    }

    /// Stops following and returns once the hub has handed the follower every piece it took
    /// before this call: output a worker sent before a report the task actor has applied is
    /// then in the follower's channel.
    pub async fn unfollow(&self, task: TaskId, follower: FollowerId) {
        let (reply, answer) = oneshot::channel();
        let msg = LogsMsg::Unfollow {
            task,
            follower,
            reply: Some(reply),
        };
        if self.sender.send(msg).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// `unfollow` without waiting, for a follower dropped midway (its request was cancelled).
    pub fn leave(&self, task: TaskId, follower: FollowerId) {
        let msg = LogsMsg::Unfollow {
            task,
            follower,
            reply: None,
        };
        if let Err(mpsc::error::TrySendError::Full(msg)) = self.sender.try_send(msg) {
            let sender = self.sender.clone();
            tokio::spawn(async move {
                let _ = sender.send(msg).await;
            });
        }
    }
}

/// The actor's loop: one message at a time until every handle is gone.
async fn run(mut receiver: mpsc::Receiver<LogsMsg>) {
    let mut hub: Hub<mpsc::Sender<Piece>> = Hub::default();
    // Workers warned about output the hub dropped: once per connection, so the log stays short.
    let mut warned = std::collections::HashSet::new();
    while let Some(msg) = receiver.recv().await {
        match msg {
            LogsMsg::Output {
                worker,
                most,
                chunks,
            } => {
                let dropped = hub.output(worker, most, chunks);
                if dropped > 0 && warned.insert(worker) {
                    warn!(%worker, dropped, "worker sent output of more attempts than it can run, or of another worker's; that output is not shown live (said once per connection)");
                }
            }
            LogsMsg::Ended { worker, ended } => hub.ended(worker, ended),
            LogsMsg::WorkerGone(worker) => {
                hub.worker_gone(worker);
                warned.remove(&worker);
            }
            LogsMsg::Snapshot { task, reply } => {
                let _ = reply.send(hub.snapshot(task));
            }
            LogsMsg::Follow { task, sink, reply } => {
                let (id, snapshot) = hub.follow(task, sink);
                if reply.send((id, snapshot)).is_err() {
                    hub.unfollow(task, id);
                }
            }
            LogsMsg::Unfollow {
                task,
                follower,
                reply,
            } => {
                hub.unfollow(task, follower);
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
        }
    }
}
