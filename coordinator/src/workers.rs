//! `WorkersHandle`: what worker connections and actioners ask about workers.
//!
//! Workers are the `Scheduler`'s, which the task actor holds (dispatch has one owner, so no
//! slot count is kept in step between two actors). This handle is the worker-facing face of
//! the task actor: register, drain and list go to it as messages; a connection's end goes as
//! `TasksHandle::worker_lost`, which forgets the worker and requeues what it held in one step.

use crate::tasks::TasksHandle;
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::handshake::WorkerHello;
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::worker::ToWorker;
use tatzelwurm_proto::WorkerId;
use tokio::sync::mpsc;

/// How the coordinator reaches one worker connection's writer. Unbounded because what it
/// carries answers what the worker sent or holds (runs within its slots and prefetch depth,
/// kills, take-backs and acknowledgements), and because a stalled worker must never block the
/// actor that sends to it; a worker that does not read for a lease is dropped (`worker_conn`).
pub type WorkerSender = mpsc::UnboundedSender<ToWorker>;

/// A cheap, cloneable way to reach the workers' part of the task actor.
#[derive(Clone)]
pub struct WorkersHandle {
    tasks: TasksHandle,
}

impl WorkersHandle {
    /// The workers' face of `tasks`.
    pub fn new(tasks: TasksHandle) -> WorkersHandle {
        WorkersHandle { tasks }
    }

    /// Adds a worker and returns its connection id, and until when it gets no task if its name
    /// keeps dropping its connections; `None` if the coordinator is stopping.
    pub async fn register(
        &self,
        hello: WorkerHello,
        address: String,
        sender: WorkerSender,
    ) -> Option<(WorkerId, Option<Timestamp>)> {
        self.tasks.register(hello, address, sender).await
    }

    /// Gives nothing more to a worker that is shutting down gently; returns how many attempts
    /// it still holds (`None` if it is gone).
    pub async fn drain(&self, id: WorkerId) -> Option<u32> {
        self.tasks.drain(id).await
    }

    /// The connected workers.
    pub async fn list(&self) -> Vec<WorkerInfo> {
        self.tasks.list_workers().await
    }
}
