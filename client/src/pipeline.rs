//! `Pipeline`: pipelined, watched submission for the Python client. A submit never waits for
//! the network: it takes a ticket and queues (`Batcher`); the session sends the queue as one
//! `Add { watch: true, key }` per batch while at most `Tuning::adds_in_flight` adds are in
//! flight, and reports as `Event`s which tickets got which ids and which tasks finished.
//! `window` bounds the tickets not yet acknowledged; submits wait (or are refused, with
//! `try_submit`) while it is full.

use crate::batcher::Ticket;
use crate::client::Client;
use crate::error::ClientError;
use crate::session::ToSession;
use tatzelwurm_proto::actioner::{Command, Reply, TaskEnd};
use tatzelwurm_proto::task::TaskSpec;
use tatzelwurm_proto::TaskId;

/// What the pipeline tells, in order: a task's `Added` always comes before its `Finished`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Tickets `first..first + ids.len()` got these ids, durably.
    Added { first: Ticket, ids: Vec<TaskId> },
    /// Tickets `first..first + count` were not added: refused (a bad request; nothing was
    /// created), or, with an `Unavailable` error, the connection did not come back in time
    /// (the coordinator may or may not have created them).
    AddFailed {
        first: Ticket,
        count: usize,
        error: ClientError,
    },
    /// These watched tasks finished: how each ended (final state, result or error).
    Finished(Vec<TaskEnd>),
    /// The connection dropped (the sentence says why); handles stay valid.
    Disconnected(String),
    /// The connection is back; what was under way was sent again.
    Reconnected,
}

/// The pipeline's handle: `Clone + Send + Sync`.
#[derive(Clone)]
pub struct Pipeline {
    client: Client,
}

impl Pipeline {
    pub(crate) fn new(client: Client) -> Pipeline {
        Pipeline { client }
    }

    /// Queues a task; never blocks. Gives the spec back when the window is full (unboxed, as
    /// `Batcher::try_submit` explains).
    #[allow(clippy::result_large_err)]
    pub fn try_submit(&self, spec: TaskSpec, play: bool) -> Result<Ticket, TaskSpec> {
        let mut batcher = self.client.shared().batcher();
        let ticket = batcher.try_submit(spec, play, false)?;
        let kick = !std::mem::replace(&mut batcher.kicked, true);
        drop(batcher);
        if kick {
            let _ = self.client.send(ToSession::Kick);
        }
        Ok(ticket)
    }

    /// Queues a task, blocking the calling thread while the window is full. For threads
    /// outside the runtime (it would block a runtime thread).
    pub fn submit_blocking(&self, spec: TaskSpec, play: bool) -> Result<Ticket, ClientError> {
        self.submit_many_blocking(vec![spec], play)
    }

    /// Queues every task in order under consecutive tickets, blocking as needed; returns the
    /// first ticket (the next one to be handed out when `specs` is empty).
    pub fn submit_many_blocking(
        &self,
        specs: Vec<TaskSpec>,
        play: bool,
    ) -> Result<Ticket, ClientError> {
        let mut bulk = self.bulk();
        bulk.push(specs, play)?;
        Ok(bulk.first())
    }

    /// Starts queuing tasks a part at a time under consecutive tickets (see `Bulk`), blocking
    /// the calling thread while another caller's `Bulk` is under way.
    pub fn bulk(&self) -> Bulk<'_> {
        let shared = self.client.shared();
        let mut batcher = shared.batcher();
        while !batcher.set_bulk(true) {
            batcher = shared.room.wait(batcher).unwrap_or_else(|e| e.into_inner());
        }
        Bulk {
            pipeline: self,
            first: None,
        }
    }

    /// Queues a task, waiting (asynchronously) while the window is full.
    pub async fn submit(&self, spec: TaskSpec, play: bool) -> Result<Ticket, ClientError> {
        let mut spec = spec;
        loop {
            let notified = self.client.shared().progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_submit(spec, play) {
                Ok(ticket) => return Ok(ticket),
                Err(back) => spec = back,
            }
            notified.await;
        }
    }

    /// Returns once every ticket handed out before the call is acknowledged (its `Added` or
    /// `AddFailed` event sent).
    pub async fn flush(&self) -> Result<(), ClientError> {
        let target = self.client.shared().batcher().next_ticket();
        loop {
            let notified = self.client.shared().progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.client.shared().batcher().settled_below() >= target {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Watches existing tasks: their ends come as `Event::Finished` (at once for finished
    /// ones). An id that was never handed out fails the whole watch with `UnknownTask`.
    /// More ids than one request may carry are watched in several requests.
    pub async fn watch(&self, ids: Vec<TaskId>) -> Result<(), ClientError> {
        let cap = tatzelwurm_proto::limits::MAX_IDS_PER_REQUEST;
        for ids in crate::client::chunks(ids, cap) {
            match self.client.request(Command::Watch(ids)).await? {
                Reply::Watching => {}
                other => return Err(self.client.unexpected(&other, "Watching")),
            }
        }
        Ok(())
    }
}

/// A `submit_many` under way: tasks queued a part at a time (`push`) under consecutive
/// tickets, each part sent while the caller prepares the next (the Python client writes a long
/// list's JSON a part at a time, and its first add leaves after the first part instead of the
/// whole list). Other submits wait until it is dropped, so that no ticket of theirs falls
/// between its parts.
pub struct Bulk<'a> {
    pipeline: &'a Pipeline,
    /// The ticket of its first task, once one is queued.
    first: Option<Ticket>,
}

impl Bulk<'_> {
    /// Queues `specs` in order after the parts before, blocking the calling thread while the
    /// window is full, and has the session send them. On an error (the client was closed) the
    /// tasks not yet queued are dropped.
    pub fn push(&mut self, specs: Vec<TaskSpec>, play: bool) -> Result<(), ClientError> {
        let shared = self.pipeline.client.shared();
        let mut batcher = shared.batcher();
        batcher.reserve(specs.len());
        let mut result = Ok(());
        'specs: for spec in specs {
            let mut spec = spec;
            loop {
                match batcher.try_submit(spec, play, true) {
                    Ok(ticket) => {
                        self.first.get_or_insert(ticket);
                        break;
                    }
                    Err(back) => spec = back,
                }
                // Full: let the session send what is queued, then wait for room.
                if !std::mem::replace(&mut batcher.kicked, true) {
                    if let Err(err) = self.pipeline.client.send(ToSession::Kick) {
                        result = Err(err);
                        break 'specs;
                    }
                }
                batcher = shared.room.wait(batcher).unwrap_or_else(|e| e.into_inner());
            }
        }
        let kick = !std::mem::replace(&mut batcher.kicked, true);
        drop(batcher);
        if kick {
            self.pipeline.client.send(ToSession::Kick)?;
        }
        result
    }

    /// The ticket of its first task (the next one to be handed out when none was queued).
    pub fn first(&self) -> Ticket {
        match self.first {
            Some(ticket) => ticket,
            None => self.pipeline.client.shared().batcher().next_ticket(),
        }
    }
}

impl Drop for Bulk<'_> {
    /// Lets other submits queue again.
    fn drop(&mut self) {
        let shared = self.pipeline.client.shared();
        shared.batcher().set_bulk(false);
        shared.wake();
    }
}
