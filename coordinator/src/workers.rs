//! The worker actor: the one owner of the `WorkerTable`, reached through `WorkersHandle`.
//!
//! Worker connections register and leave through it, the task actor reserves and releases
//! slots through it, and actioners list workers through it. It never waits on another actor,
//! so the task actor may wait on it without risk of a cycle.

use crate::worker_table::{Grant, WorkerTable};
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::handshake::WorkerHello;
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::worker::ToWorker;
use tatzelwurm_proto::WorkerId;
use tokio::sync::{mpsc, oneshot};

/// How the coordinator reaches one worker connection's writer. Unbounded because what it
/// carries is bounded by the worker's slots (runs, kills and acknowledgements of at most that
/// many attempts), and because a stalled worker must never block the actor that sends to it.
pub type WorkerSender = mpsc::UnboundedSender<ToWorker>;

enum WorkersMsg {
    Register {
        hello: WorkerHello,
        address: String,
        sender: WorkerSender,
        reply: oneshot::Sender<(WorkerId, Option<Timestamp>)>,
    },
    Remove {
        id: WorkerId,
        reply: oneshot::Sender<()>,
    },
    Reserve {
        want: usize,
        reply: oneshot::Sender<Vec<Grant<WorkerSender>>>,
    },
    Release(Vec<WorkerId>),
    Unreserve(WorkerId, u32),
    Drain {
        id: WorkerId,
        reply: oneshot::Sender<Option<u32>>,
    },
    List(oneshot::Sender<Vec<WorkerInfo>>),
}

/// A cheap, cloneable way to talk to the worker actor. The actor stops when every handle is
/// dropped.
#[derive(Clone)]
pub struct WorkersHandle {
    sender: mpsc::Sender<WorkersMsg>,
}

struct WorkersActor {
    receiver: mpsc::Receiver<WorkersMsg>,
    table: WorkerTable<WorkerSender>,
}

impl WorkersHandle {
    /// Starts the worker actor. (No `Default`: creating a handle spawns a task.)
    #[allow(clippy::new_without_default)]
    pub fn new() -> WorkersHandle {
        let (sender, receiver) = mpsc::channel(1024);
        let actor = WorkersActor {
            receiver,
            table: WorkerTable::default(),
        };
        tokio::spawn(actor.run());
        WorkersHandle { sender }
    }

    /// Adds a worker and returns its connection id, and until when it gets no task if its name
    /// keeps dropping its connections.
    pub async fn register(
        &self,
        hello: WorkerHello,
        address: String,
        sender: WorkerSender,
    ) -> Option<(WorkerId, Option<Timestamp>)> {
        let (reply, answer) = oneshot::channel();
        self.send(WorkersMsg::Register {
            hello,
            address,
            sender,
            reply,
        })
        .await;
        answer.await.ok()
    }

    /// Forgets a worker; returns once it will get no further grant.
    pub async fn remove(&self, id: WorkerId) {
        let (reply, answer) = oneshot::channel();
        self.send(WorkersMsg::Remove { id, reply }).await;
        let _ = answer.await;
    }

    /// Reserves up to `want` slots on the least-loaded workers.
    pub async fn reserve(&self, want: usize) -> Vec<Grant<WorkerSender>> {
        let (reply, answer) = oneshot::channel();
        self.send(WorkersMsg::Reserve { want, reply }).await;
        answer.await.unwrap_or_default()
    }

    /// Frees one slot per entry (a worker may appear several times).
    pub async fn release(&self, workers: Vec<WorkerId>) {
        if !workers.is_empty() {
            self.send(WorkersMsg::Release(workers)).await;
        }
    }

    /// Gives back reserved slots that were not used.
    pub async fn unreserve(&self, worker: WorkerId, count: u32) {
        self.send(WorkersMsg::Unreserve(worker, count)).await;
    }

    /// Grants nothing more to a worker that is shutting down gently; returns how many attempts
    /// it still holds (`None` if it is gone).
    pub async fn drain(&self, id: WorkerId) -> Option<u32> {
        let (reply, answer) = oneshot::channel();
        self.send(WorkersMsg::Drain { id, reply }).await;
        answer.await.ok().flatten()
    }

    /// The connected workers.
    pub async fn list(&self) -> Vec<WorkerInfo> {
        let (reply, answer) = oneshot::channel();
        self.send(WorkersMsg::List(reply)).await;
        answer.await.unwrap_or_default()
    }

    async fn send(&self, msg: WorkersMsg) {
        // The actor lives as long as any handle, so this fails only during shutdown, when
        // there is nobody left to tell.
        let _ = self.sender.send(msg).await;
    }
}

impl WorkersActor {
    async fn run(mut self) {
        while let Some(msg) = self.receiver.recv().await {
            self.handle(msg);
        }
    }

    fn handle(&mut self, msg: WorkersMsg) {
        match msg {
            WorkersMsg::Register {
                hello,
                address,
                sender,
                reply,
            } => {
                let id = self
                    .table
                    .register(hello, address, sender, Timestamp::now());
                let _ = reply.send((id, self.table.held_off_until(id)));
            }
            WorkersMsg::Remove { id, reply } => {
                self.table.remove(id, Timestamp::now());
                let _ = reply.send(());
            }
            WorkersMsg::Reserve { want, reply } => {
                let _ = reply.send(self.table.reserve(want, Timestamp::now()));
            }
            WorkersMsg::Release(ids) => ids.into_iter().for_each(|id| self.table.release(id)),
            WorkersMsg::Unreserve(id, count) => self.table.unreserve(id, count),
            WorkersMsg::Drain { id, reply } => {
                let _ = reply.send(self.table.drain(id));
            }
            WorkersMsg::List(reply) => {
                let _ = reply.send(self.table.list());
            }
        }
    }
}
