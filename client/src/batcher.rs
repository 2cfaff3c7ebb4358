//! `Batcher`: the rules of pipelined submission as a plain struct (no channel, no socket),
//! tested alone like workwurm's outbox. The pipeline's handles and the session share it behind
//! a mutex.
//!
//! A submit takes a ticket and joins the queue at once. The session takes the whole queue (up
//! to a frame's worth, and only tasks of one `play`) as one batch while fewer than
//! `max_in_flight` batches are in flight, so submits made while frames are in flight go
//! together in the next one. `window` bounds the tickets taken but not yet acknowledged
//! (queued or in flight); a submit beyond it is refused, and the caller waits for room.

use std::collections::{BTreeMap, VecDeque};
use tatzelwurm_proto::task::TaskSpec;

/// A pipeline's number for one submitted task: from 1, increasing by 1.
pub type Ticket = u64;

/// Most tasks in one batch: one frame of ordinary tasks.
pub(crate) const BATCH_TASKS: usize = 50_000;
/// Most bytes of function and arguments in one batch (a larger task goes alone).
pub(crate) const BATCH_BYTES: usize = tatzelwurm_proto::MAX_FRAME_LEN / 4;

/// The bytes a spec adds to a frame, about.
pub(crate) fn weight(spec: &TaskSpec) -> usize {
    spec.function.len() + spec.args.len() + spec.kwargs.len() + 32
}

/// Tasks sent as one `Add`.
#[derive(Debug, PartialEq)]
pub(crate) struct Batch {
    /// The ticket of the first task; the others follow in order.
    pub first: Ticket,
    /// The tasks.
    pub specs: Vec<TaskSpec>,
    /// Whether they start `ready`.
    pub play: bool,
}

/// The queue, the window and the batches in flight.
#[derive(Debug)]
pub(crate) struct Batcher {
    /// Most tickets not yet acknowledged.
    window: usize,
    /// Most batches in flight.
    max_in_flight: usize,
    /// The next ticket to hand out.
    next: Ticket,
    /// Submitted, not yet sent; the first has ticket `next - queue.len()`.
    queue: VecDeque<(TaskSpec, bool)>,
    /// Sent, not yet acknowledged: first ticket and count.
    in_flight: BTreeMap<Ticket, usize>,
    /// Tickets in flight, the sum of `in_flight`'s counts.
    flying: usize,
    /// A `submit_many` is adding its tasks: other submits wait, so its tickets follow each other.
    bulk: bool,
    /// Whether the session was already asked to take a batch (and has not yet done so).
    pub kicked: bool,
}

impl Batcher {
    /// An empty pipeline of this window (at least 1) and this many batches in flight.
    pub fn new(window: usize, max_in_flight: usize) -> Batcher {
        Batcher {
            window: window.max(1),
            max_in_flight: max_in_flight.max(1),
            next: 1,
            queue: VecDeque::new(),
            in_flight: BTreeMap::new(),
            flying: 0,
            bulk: false,
            kicked: false,
        }
    }

    /// Sets the window (when the pipeline is handed out).
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(1);
    }

    /// Queues a task and returns its ticket; gives it back when the window is full (or a
    /// `submit_many` of another caller is under way and `bulk` is false). The spec comes back
    /// by value, unboxed: the caller retries with it, and a move of it costs less than the
    /// allocation a box would add to every submit.
    #[allow(clippy::result_large_err)]
    pub fn try_submit(
        &mut self,
        spec: TaskSpec,
        play: bool,
        bulk: bool,
    ) -> Result<Ticket, TaskSpec> {
        if self.unacknowledged() >= self.window || (self.bulk && !bulk) {
            return Err(spec);
        }
        self.queue.push_back((spec, play));
        let ticket = self.next;
        self.next += 1;
        Ok(ticket)
    }

    /// Starts or ends a `submit_many`; starting fails while another one is under way.
    pub fn set_bulk(&mut self, on: bool) -> bool {
        if on && self.bulk {
            return false;
        }
        self.bulk = on;
        true
    }

    /// Makes room in the queue for `more` tasks at once (a `submit_many` part), rather than
    /// by doubling as they come.
    pub fn reserve(&mut self, more: usize) {
        self.queue.reserve(more);
    }

    /// Tickets queued, not yet sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Tickets queued or in flight.
    pub fn unacknowledged(&self) -> usize {
        self.queue.len() + self.flying
    }

    /// The next batch to send, if one may be sent now: the queue's head, up to a frame's worth
    /// (less at the start of a burst: `proto::batch::add_cap` of the tasks in flight) and only
    /// as long as `play` is the same.
    pub fn take_batch(&mut self) -> Option<Batch> {
        if self.in_flight.len() >= self.max_in_flight {
            return None;
        }
        let play = self.queue.front()?.1;
        let first = self.next - self.queue.len() as u64;
        // Small while little is in flight (a burst starts), so that the first tasks are
        // durable, and run, while the larger batches behind them are written.
        let most = tatzelwurm_proto::batch::add_cap(self.flying, BATCH_TASKS);
        // Counted first, then moved into a vector of that size: grown by doubling, a batch of
        // thousands of specs was copied a dozen times into fresh pages (in W1 through
        // `submit_many`, a fifth of the client's page faults).
        let mut count = 0;
        let mut bytes = 0;
        for (spec, p) in &self.queue {
            let size = weight(spec);
            let full = count >= most || bytes + size > BATCH_BYTES;
            if *p != play || (count > 0 && full) {
                break;
            }
            bytes += size;
            count += 1;
        }
        let specs: Vec<TaskSpec> = self.queue.drain(..count).map(|(spec, _)| spec).collect();
        self.in_flight.insert(first, specs.len());
        self.flying += specs.len();
        Some(Batch { first, specs, play })
    }

    /// The batch starting at `first` was acknowledged (added or refused).
    pub fn acknowledged(&mut self, first: Ticket) {
        if let Some(count) = self.in_flight.remove(&first) {
            self.flying -= count;
        }
    }

    /// Every ticket below this one is acknowledged.
    pub fn settled_below(&self) -> Ticket {
        let queued = self.next - self.queue.len() as u64;
        let flying = self.in_flight.keys().next().copied().unwrap_or(queued);
        flying.min(queued)
    }

    /// The next ticket to be handed out: a flush waits until everything below it settled.
    pub fn next_ticket(&self) -> Ticket {
        self.next
    }

    /// Removes everything queued as batches (the client is closing: they fail unsent).
    pub fn take_all(&mut self) -> Vec<Batch> {
        let mut batches = Vec::new();
        let limit = self.max_in_flight;
        self.max_in_flight = usize::MAX;
        while let Some(batch) = self.take_batch() {
            batches.push(batch);
        }
        self.max_in_flight = limit;
        batches
    }
}

#[cfg(test)]
mod tests;
