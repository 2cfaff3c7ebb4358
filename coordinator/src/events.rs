//! `EventLog`: the event log as the task actor keeps it: the next sequence number, the oldest
//! event the store still keeps, the events a round noted before its batch is built, and the
//! live subscribers.
//!
//! Events come out of the round. While it runs, the actor notes what the store will not show
//! by itself: workers that joined, drain or left, and attempts handed out whose task record is
//! not written (an at-least-once hand-out costs no write, see `TaskTable::assign_from`). When
//! the round's batch is built, `stamp` turns each task record it writes into an
//! `EventKind::Task`, adds the noted events and one `Purged` for the tasks the round purged,
//! and numbers them all; they go into the same batch (`Batch.events`), so an event is durable
//! exactly when the change it describes is. `trim` keeps the log near `--keep-events`: once it
//! holds a tenth more, the batch also removes the oldest (`Batch.trim_events_through`), so a
//! trim costs one range removal every `keep / 10` events.
//!
//! After the flush, `fan_out` hands the round's events to every subscriber (`event_feed` reads
//! them from there) as one shared slice, except to subscribers that subscribed after the round
//! was stamped: a subscription taken while earlier rounds flush is answered, with the round it
//! came in, at a position past their events, which the subscriber reads from the store. A subscriber's channel is unbounded but counted: one
//! that still holds more than `LAG_EVENTS` unread events when a round comes is sent `Lagged`
//! (naming the last sequence number it was sent) instead and forgotten, so a slow watcher costs
//! bounded memory (`LAG_EVENTS` and one round) and never slows a round. Filters are applied by
//! the feed, off the actor.
//!
//! A task event names its queue and its worker, and W1 makes three events per task: each name
//! is an `Arc<str>` taken from `SharedNames`, one per distinct name, rather than a fresh
//! `String` per event (five allocations per task, freed again on the store thread after the
//! events were written).
//!
//! Plain data apart from the subscribers' channels: the tests below drive it directly.

use crate::store::WrittenRecord;
use rustc_hash::FxHashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tatzelwurm_proto::actioner::{Failure, FailureKind};
use tatzelwurm_proto::event::{Event, EventKind, WorkerChange};
use tatzelwurm_proto::task::{TaskState, Timestamp};
use tatzelwurm_proto::{Attempt, TaskId, WorkerId};
use tokio::sync::mpsc;

/// Unread events past which a subscriber is dropped with `Lagged` when the next round comes:
/// about a second of a busy coordinator's events (two or three per task), some 5 MB, shared by
/// all subscribers of the same rounds. One round may hold more (an add of 100,000 tasks): a
/// subscriber that keeps up gets it whole.
pub const LAG_EVENTS: usize = 50_000;

/// What the actor sends a subscriber: a round's events (every kind, unfiltered), or the
/// failure that ends its feed.
pub type Live = Result<Arc<[Event]>, Failure>;

/// The actor's end of one subscriber's channel.
#[derive(Debug)]
pub struct Subscriber {
    /// Where its rounds go.
    sender: mpsc::UnboundedSender<Live>,
    /// Events sent and not yet read (the feed subtracts what it reads).
    queued: Arc<AtomicUsize>,
    /// The last sequence number sent to it (its subscription point before the first).
    last_sent: u64,
}

/// The feed's end of a subscription.
#[derive(Debug)]
pub struct Subscription {
    /// The rounds, in order.
    pub receiver: mpsc::UnboundedReceiver<Live>,
    /// Shared with the actor: events received and not yet read.
    queued: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next round's events (or the failure that ends the feed); `None` once the actor has
    /// forgotten the subscription (it stopped).
    pub async fn recv(&mut self) -> Option<Live> {
        let live = self.receiver.recv().await?;
        if let Ok(events) = &live {
            self.queued.fetch_sub(events.len(), Ordering::Relaxed);
        }
        Some(live)
    }
}

/// A new subscription's two ends.
pub fn subscription() -> (Subscriber, Subscription) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let subscriber = Subscriber {
        sender,
        queued: queued.clone(),
        last_sent: 0,
    };
    (subscriber, Subscription { receiver, queued })
}

/// Where the log stands, as a subscriber is told when it subscribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The last durable sequence number (0 before the first event): the subscriber gets every
    /// event after it, and only those.
    pub last: u64,
    /// The oldest event the store keeps, if any.
    pub oldest: Option<u64>,
}

/// The event log's state in the task actor. See the module comment.
#[derive(Debug)]
pub struct EventLog {
    /// The sequence number the next event gets (1 for an empty log).
    next_seq: u64,
    /// The oldest sequence number the store keeps (`None`: it keeps none).
    oldest: Option<u64>,
    /// How many events the store keeps (`--keep-events`), give or take a tenth.
    keep: u64,
    /// Worker events noted this round, in the order they happened.
    workers: Vec<EventKind>,
    /// Hand-outs noted this round whose task record the batch does not write.
    handed: Vec<EventKind>,
    /// The live subscribers.
    subscribers: Vec<Subscriber>,
    /// The queue and worker names its events hold.
    names: SharedNames,
}

/// Most names `SharedNames` keeps; past it, it starts over (a name an event still holds stays
/// alive there; the next event of that name gets a new one).
const MAX_SHARED_NAMES: usize = 4_096;

/// One `Arc<str>` per queue or worker name, handed to every event that names it (see the
/// module). FxHash: the names are the coordinator's own (queues it accepted, workers it
/// welcomed), and the set is bounded.
#[derive(Debug, Default)]
struct SharedNames(FxHashSet<Arc<str>>);

impl SharedNames {
    /// The shared `name`.
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return Arc::clone(known);
        }
        if self.0.len() >= MAX_SHARED_NAMES {
            self.0.clear();
        }
        let name: Arc<str> = name.into();
        self.0.insert(Arc::clone(&name));
        name
    }
}

impl EventLog {
    /// The log as the store left it (`next_seq`: 1 for an empty log), keeping `keep` events.
    pub fn recover(next_seq: u64, oldest: Option<u64>, keep: u64) -> EventLog {
        EventLog {
            next_seq: next_seq.max(1),
            oldest,
            keep,
            workers: Vec::new(),
            handed: Vec::new(),
            subscribers: Vec::new(),
            names: SharedNames::default(),
        }
    }

    /// Notes that worker `id` named `name` joined, drains or left.
    pub fn worker(&mut self, id: WorkerId, name: &str, change: WorkerChange) {
        self.workers.push(EventKind::Worker {
            id,
            name: name.to_string(),
            change,
        });
    }

    /// Notes that `attempt` of task `id` of `queue` went to the worker named `worker`, for a
    /// hand-out whose record this round does not write (one that does shows in its record).
    pub fn handed(&mut self, id: TaskId, queue: &str, attempt: Attempt, worker: &str) {
        self.handed.push(EventKind::Task {
            id,
            queue: self.names.get(queue),
            state: TaskState::Running,
            attempt,
            worker: Some(self.names.get(worker)),
            error: None,
        });
    }

    /// The round's events, numbered: the worker events noted, one per task record in
    /// `records` (what the round's batch writes), the hand-outs noted, and one `Purged` if the
    /// round purged `purged` tasks. Clears what was noted.
    pub fn stamp<'a>(
        &mut self,
        records: impl ExactSizeIterator<Item = WrittenRecord<'a>>,
        purged: u64,
        now: Timestamp,
    ) -> Vec<Event> {
        let count =
            self.workers.len() + records.len() + self.handed.len() + usize::from(purged > 0);
        if count == 0 {
            return Vec::new();
        }
        let mut events = Vec::with_capacity(count);
        let mut seq = self.next_seq;
        let mut push = |kind: EventKind| {
            events.push(Event { seq, at: now, kind });
            seq += 1;
        };
        self.workers.drain(..).for_each(&mut push);
        let names = &mut self.names;
        records
            .map(|record| task_event(&record, names))
            .for_each(&mut push);
        self.handed.drain(..).for_each(&mut push);
        if purged > 0 {
            push(EventKind::Purged { count: purged });
        }
        self.oldest.get_or_insert(self.next_seq);
        self.next_seq = seq;
        events
    }

    /// The sequence number through which the store should drop events now, if the log has
    /// grown a tenth past `keep` (then it keeps exactly `keep`); the caller puts it in the
    /// batch of the events just stamped.
    pub fn trim(&mut self) -> Option<u64> {
        let oldest = self.oldest?;
        let held = self.next_seq - oldest;
        if held <= self.keep.saturating_add(self.keep / 10) {
            return None;
        }
        let through = self.next_seq - 1 - self.keep;
        self.oldest = (self.keep > 0).then_some(through + 1);
        Some(through)
    }

    /// Where the log stands for a subscriber that subscribes now, within a round: the last
    /// event stamped so far. Rounds still flushing may hold some of them, so the actor tells a
    /// subscriber its position only with this round, once they are all durable.
    pub fn position(&self) -> Position {
        Position {
            last: self.next_seq - 1,
            oldest: self.oldest,
        }
    }

    /// Adds a subscriber; it gets every event stamped from now on (and none stamped before,
    /// even if the round that holds it is fanned out later).
    pub fn subscribe(&mut self, mut subscriber: Subscriber) -> Position {
        let position = self.position();
        subscriber.last_sent = position.last;
        self.subscribers.push(subscriber);
        position
    }

    /// Whether anyone listens (only then does a round keep a copy of its events).
    pub fn has_subscribers(&self) -> bool {
        !self.subscribers.is_empty()
    }

    /// Hands a round's durable `events` to every subscriber. One that holds more than
    /// `LAG_EVENTS` unread is sent `Lagged` instead and forgotten; one whose feed is gone is
    /// forgotten.
    pub fn fan_out(&mut self, events: Arc<[Event]>) {
        let Some(last) = events.last().map(|e| e.seq) else {
            return;
        };
        self.subscribers.retain_mut(|sub| {
            if sub.last_sent >= last {
                // Subscribed after this round was stamped (a subscription falls between two
                // rounds' events): it reads these from the store.
                return true;
            }
            if sub.queued.load(Ordering::Relaxed) > LAG_EVENTS {
                let _ = sub.sender.send(Err(lagged(sub.last_sent)));
                return false;
            }
            sub.queued.fetch_add(events.len(), Ordering::Relaxed);
            sub.last_sent = last;
            sub.sender.send(Ok(events.clone())).is_ok()
        });
    }
}

/// The event of a written task record: its state, latest attempt and worker, and for a failed
/// task (or one waiting to retry a failed attempt) the error's kind.
fn task_event(record: &WrittenRecord<'_>, names: &mut SharedNames) -> EventKind {
    let state = record.state();
    let error = match state {
        TaskState::Failed | TaskState::Waiting => record.error_kind(),
        _ => None,
    };
    EventKind::Task {
        id: record.id(),
        queue: names.get(record.queue()),
        state,
        attempt: record.attempts(),
        worker: record.worker().map(|worker| names.get(worker)),
        error,
    }
}

/// The failure that ends a subscriber's feed when it fell `LAG_EVENTS` behind.
pub fn lagged(last_sent: u64) -> Failure {
    Failure::new(
        FailureKind::Lagged,
        format!(
            "this event watcher read more slowly than events came and was dropped more than {LAG_EVENTS} events behind; the last event it was sent is {last_sent}: reconnect with --since {last_sent} to go on from there"
        ),
    )
}

#[cfg(test)]
mod tests;
