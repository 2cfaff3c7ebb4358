//! The task actor: the one owner of the `TaskTable`, the `Scheduler` and the `Schedules`,
//! reached through `TasksHandle`, by actioner and worker connections alike.
//!
//! It works in rounds, which is how group commit happens: it takes every message already
//! waiting (up to `MAX_ROUND`), applies them to the table and the scheduler, hands ready tasks
//! to workers (free slots and prefetch, `scheduler`), takes queued attempts back for idle
//! workers when nothing is ready, and sends everything that changed to the store as one batch.
//! What the round must tell (answers to actioners, acknowledgements and at-most-once work for
//! workers, waiters woken, `Finished` pushes to watchers) is worked out then and kept with the
//! round, a `Flight`, until the store says the batch is flushed; only then is it told. Rounds
//! land in the order they were sent. The actor does not wait for the flush: it takes the next
//! messages and applies the next round while this one flushes (up to `MAX_FLIGHTS` rounds in
//! flight), and the store thread joins batches that queued up meanwhile under one flush.
//! It sleeps until a message comes, a flush lands, or the earliest due time passes, of a
//! scheduled task, a retry or a schedule firing; a round then makes due tasks ready and adds
//! the tasks of due schedules (ready, written in the round's batch with the schedules' new
//! state). Runs of at-least-once tasks whose records were durable before the round leave at
//! once (the flush rule: see `Round::early` and DESIGN.md). Actioner and worker connections
//! send to it; it waits on nobody but the store. It never waits on an actioner: pushes go into
//! each connection's unbounded push sink (see `watchers` for what bounds it).
//!
//! Events come out of the round (see `events`): each task record the batch writes becomes an
//! event, with the round's worker events, the hand-outs it does not write and a `Purged` for
//! what it purged, all numbered and written in the same batch; after the flush they go to the
//! event subscribers, never before, and never with a wait (a slow one is dropped, `Lagged`).
//!
//! The commands of actioners are applied in `tasks/command.rs` (queue commands in
//! `tasks/queue_command.rs`, purge and worker drain in `tasks/operations.rs`), dispatch in
//! `tasks/dispatch.rs`; the rest of a round is here.
//!
//! If a flush fails, the actor tells nothing of that round nor of any after it, reports the
//! error to `run` (which returns it; the binary exits 2) and stops: every later request is
//! answered `Stopping`.

use crate::add_keys::AddKeys;
use crate::events::{EventLog, Position, Subscriber};
use crate::log_limit::{self, Decision, LogLimit};
use crate::paging;
use crate::queues::QueueId;
use crate::scheduler::Scheduler;
use crate::schedules::Schedules;
use crate::store::Flushing;
use crate::store::{Store, StoreError};
use crate::task_table::TaskTable;
use crate::waiters::{Tally, Waiters};
use crate::watchers::{ConnId, Watchers};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use tatzelwurm_proto::actioner::{
    Command, Failure, FailureKind, Reply, ToActioner, WaitSummary, WorkerInfo,
};
use tatzelwurm_proto::event::{Event, WorkerChange};
use tatzelwurm_proto::handshake::WorkerHello;
use tatzelwurm_proto::task::{Outcome, TaskOutput, TaskState, Timestamp};
use tatzelwurm_proto::worker::{Assignment, Report, ToWorker, WorkerUsage};
use tatzelwurm_proto::{Attempt, RequestId, TaskId, WorkerId};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

/// Where the task actor pushes `Finished` frames for one actioner connection. Unbounded, so
/// that a push never waits; what is queued is bounded by the connection's watches (each
/// registration is pushed once).
pub type PushSink = mpsc::UnboundedSender<ToActioner>;

/// How the coordinator reaches one worker connection's writer. Unbounded because what it
/// carries answers what the worker sent or holds (runs within its slots and prefetch depth,
/// kills, take-backs and acknowledgements), and because a stalled worker must never block the
/// actor that sends to it; a worker that does not read for a lease is dropped (`worker_conn`).
pub type WorkerSender = mpsc::UnboundedSender<ToWorker>;

/// Who sent a command: the connection, the request, and the connection's push sink.
#[derive(Clone)]
pub struct Origin {
    /// The actioner connection.
    pub conn: ConnId,
    /// The request the command came in.
    pub request: RequestId,
    /// Where pushes for this connection go.
    pub pushes: PushSink,
}

/// A connection's permit for the items of one message, given back when the actor has applied
/// it: a connection's reader waits for permits, so what one peer has queued here is bounded
/// (see `worker_conn` and `actioner_conn`) however fast it sends.
pub type Held = tokio::sync::OwnedSemaphorePermit;

/// Receives the store error that stopped the task actor, if one does.
pub type Failed = oneshot::Receiver<StoreError>;

/// How many messages one round takes at most, so that replies are never held back for long.
const MAX_ROUND: usize = 4096;

/// Rounds whose batches may be flushing at once: while that many are, the actor waits for the
/// oldest to land before it takes more messages, so what waits to be told stays bounded.
const MAX_FLIGHTS: usize = 4;

/// How many items (ids, tasks, reports, attempts) one round takes at most: a round ends after
/// the message that passes it. With every message capped (`proto::limits`), no round holds the
/// actor for long however many large messages are queued; the rest form the next rounds.
const ROUND_ITEMS: usize = 20_000;

/// New tasks one round takes at most: a round ends after the `Add` that reaches it. A round's
/// new tasks may run only once the round is durable (the flush rule), and its flush grows with
/// them (a few µs each), so a round that took 10,000 adds kept every slot waiting ~50 ms for
/// work that was already there (W1); adds of a few thousand are durable, and running, within
/// ~10 ms, while the next ones flush. One `Add` is never split (its key and ids are one change).
const ROUND_NEW_TASKS: usize = 2_000;

/// How long the log aggregates repeated warnings of one worker and kind (see `log_limit`).
const LOG_INTERVAL_MS: u64 = 10_000;

/// Workers whose warnings are tracked one by one; more share one count.
const LOG_KEYS: usize = 64;

enum TaskMsg {
    Command {
        command: Command,
        origin: Origin,
        reply: oneshot::Sender<Reply>,
        _held: Option<Held>,
    },
    Forget(ConnId),
    Register {
        hello: WorkerHello,
        address: String,
        sender: WorkerSender,
        reply: oneshot::Sender<(WorkerId, Option<Timestamp>)>,
    },
    Drain {
        worker: WorkerId,
        reply: oneshot::Sender<Option<u32>>,
    },
    ListWorkers(oneshot::Sender<Vec<WorkerInfo>>),
    Reports {
        worker: WorkerId,
        reports: Vec<Report>,
        _held: Held,
    },
    Heartbeat {
        worker: WorkerId,
        running: Vec<(TaskId, Attempt)>,
        _held: Held,
    },
    Started {
        worker: WorkerId,
        attempts: Vec<(TaskId, Attempt)>,
        _held: Held,
    },
    Returned {
        worker: WorkerId,
        attempts: Vec<(TaskId, Attempt)>,
        _held: Held,
    },
    Coroutines {
        worker: WorkerId,
        functions: Vec<String>,
        _held: Held,
    },
    WorkerLost(WorkerId),
    Wake,
    Subscribe {
        subscriber: Subscriber,
        reply: oneshot::Sender<Position>,
    },
    Usage {
        worker: WorkerId,
        usage: WorkerUsage,
    },
    PurgeFound {
        found: Vec<(TaskId, String, TaskState)>,
        reply: oneshot::Sender<Reply>,
    },
}

/// What a round has taken so far, against `ROUND_ITEMS` and `ROUND_NEW_TASKS`.
#[derive(Debug, Default)]
struct Budget {
    items: usize,
    new_tasks: usize,
}

impl Budget {
    /// Counts `msg` into the round.
    fn take(&mut self, msg: &TaskMsg) {
        self.items += msg.items();
        self.new_tasks += msg.new_tasks();
    }

    /// Whether the round takes no more messages.
    fn spent(&self) -> bool {
        self.items >= ROUND_ITEMS || self.new_tasks >= ROUND_NEW_TASKS
    }
}

impl TaskMsg {
    /// How many new tasks the message adds, for the round's budget (`ROUND_NEW_TASKS`).
    fn new_tasks(&self) -> usize {
        match self {
            TaskMsg::Command {
                command: Command::Add { tasks, .. },
                ..
            } => tasks.len(),
            _ => 0,
        }
    }

    /// How many items the message carries, for the round's budget (`ROUND_ITEMS`).
    fn items(&self) -> usize {
        match self {
            TaskMsg::Command { command, .. } => match command {
                Command::Add { tasks, .. } => tasks.len(),
                Command::Play(sel)
                | Command::Pause(sel)
                | Command::Kill(sel)
                | Command::Wait(sel) => match sel {
                    tatzelwurm_proto::actioner::Selection::Ids(ids) => ids.len(),
                    tatzelwurm_proto::actioner::Selection::All => 1,
                },
                Command::Watch(ids) => ids.len(),
                Command::Purge(tatzelwurm_proto::actioner::PurgeSelection::Ids(ids)) => ids.len(),
                _ => 1,
            },
            TaskMsg::PurgeFound { found, .. } => found.len(),
            TaskMsg::Reports { reports, .. } => reports.len(),
            TaskMsg::Heartbeat { running, .. } => running.len(),
            TaskMsg::Started { attempts, .. } | TaskMsg::Returned { attempts, .. } => {
                attempts.len()
            }
            TaskMsg::Coroutines { functions, .. } => functions.len(),
            _ => 1,
        }
        .max(1)
    }
}

/// The kinds of warning the task actor aggregates per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ignored {
    Report,
    Heartbeat,
    Started,
    Returned,
    /// Not a warning: the info line of a lost worker's requeued tasks.
    Lost,
    /// Not a warning: the info line of tasks a worker gave back for idle ones.
    TakenBack,
}

impl Ignored {
    fn what(self) -> &'static str {
        match self {
            Ignored::Report => "ignored report",
            Ignored::Heartbeat => "ignored heartbeat",
            Ignored::Started => "ignored start",
            Ignored::Returned => "ignored return",
            Ignored::Lost => "lost worker",
            Ignored::TakenBack => "take-back",
        }
    }
}

/// A cheap, cloneable way to talk to the task actor. The actor stops when every handle is
/// dropped.
#[derive(Clone)]
pub struct TasksHandle {
    sender: mpsc::Sender<TaskMsg>,
    /// Held by each purge while it runs (`retention`, `task purge ID...`): a page of finished
    /// tasks found off the actor is then still stored when the actor takes it, so no task is
    /// taken off its queue's counts twice.
    purging: Arc<tokio::sync::Mutex<()>>,
}

/// What one worker gets at the end of a round.
#[derive(Default)]
struct Outgoing {
    run: Vec<Assignment>,
    kill: Vec<(TaskId, Attempt)>,
    recorded: Vec<(TaskId, Attempt)>,
    /// Queued attempts to give back; after the runs, so that a take-back never reaches the
    /// worker before the `Run` of an attempt it names.
    take_back: Vec<(TaskId, Attempt)>,
}

impl Outgoing {
    /// The frames to send, acknowledgements first (they free the worker's memory), then kills,
    /// runs and take-backs.
    fn into_frames(self) -> impl Iterator<Item = ToWorker> {
        [ToWorker::Recorded(self.recorded), ToWorker::Kill(self.kill)]
            .into_iter()
            .chain(run_frames(self.run))
            .chain([ToWorker::TakeBack(self.take_back)])
            .filter(|frame| match frame {
                ToWorker::Recorded(list) | ToWorker::Kill(list) | ToWorker::TakeBack(list) => {
                    !list.is_empty()
                }
                ToWorker::Run(list) => !list.is_empty(),
                ToWorker::Drain => true,
            })
    }
}

/// Everything a round must tell once its changes are durable, and what it sends before.
#[derive(Default)]
struct Round {
    replies: Vec<(oneshot::Sender<Reply>, Reply)>,
    outgoing: BTreeMap<WorkerId, Outgoing>,
    /// Frames sent before the round's flush (the flush rule): `Run`s of at-least-once tasks
    /// that were durable before this round and every round still in flight (never a held
    /// task's: its dependency's `Run` may be waiting for a flush, and must reach the worker
    /// first). A crash before the flush at worst runs such a task once more, which
    /// at-least-once allows; a task added by this round or one in flight is not among them,
    /// since a crash would forget it (and could give its id to another task).
    early: BTreeMap<WorkerId, Vec<Assignment>>,
    /// Tasks with this id or above were added this round.
    fresh_from: u64,
    /// Tasks with this id or above were added by this round or one still in flight: not
    /// durable, so never sent early (`before_flush`).
    early_below: u64,
    may_dispatch: bool,
    /// Watched tasks that were finished already when watched: pushed with the round's others.
    pushes: BTreeMap<(ConnId, RequestId), Vec<TaskId>>,
    /// Subscriptions taken this round and where the log stood: told once the round lands.
    subscribed: Vec<(oneshot::Sender<Position>, Position)>,
    /// The round's events, for the subscribers after the flush (only when there are some).
    events: Option<Arc<[Event]>>,
    /// `Finished` frames for watching connections, worked out when the round closed.
    finished: Vec<(ConnId, ToActioner)>,
    /// The table's number for the round's batch (`TaskTable::flushed` once it landed).
    batch: u64,
}

/// A round whose batch the store is flushing, with what it tells once that is done.
struct Flight {
    round: Round,
    flushing: Flushing,
    sent: std::time::Instant,
}

struct TasksActor {
    receiver: mpsc::Receiver<TaskMsg>,
    table: TaskTable,
    /// The workers and the attempts they hold: who gets what.
    scheduler: Scheduler,
    /// The schedules, which add tasks when they come due.
    schedules: Schedules,
    /// The keys of recent adds, written with the tasks they created.
    add_keys: AddKeys,
    store: Store,
    waiters: Waiters,
    /// Which requests watch which tasks.
    watchers: Watchers,
    /// The push sinks of connections that watch (or watched) tasks, until they end.
    sinks: HashMap<ConnId, PushSink>,
    /// How to reach each registered worker.
    senders: HashMap<WorkerId, WorkerSender>,
    /// Where a failed flush is reported; taken when used.
    failed: Option<oneshot::Sender<StoreError>>,
    /// Aggregates repeated warnings per worker and kind.
    log_limit: LogLimit<(Ignored, WorkerId)>,
    /// The event log: numbering, trimming, subscribers.
    events: EventLog,
}

impl TasksHandle {
    /// Starts the task actor over a table, add keys, schedules and the event log's position
    /// recovered from `store`. The receiver gets the store error that stops the actor, if one
    /// does.
    pub fn new(
        table: TaskTable,
        add_keys: AddKeys,
        schedules: Schedules,
        store: Store,
        events: EventLog,
    ) -> (TasksHandle, Failed) {
        let (sender, receiver) = mpsc::channel(4096);
        let (failed, failure) = oneshot::channel();
        let actor = TasksActor {
            receiver,
            table,
            scheduler: Scheduler::default(),
            schedules,
            add_keys,
            store,
            waiters: Waiters::default(),
            watchers: Watchers::default(),
            sinks: HashMap::new(),
            senders: HashMap::new(),
            failed: Some(failed),
            log_limit: LogLimit::new(LOG_INTERVAL_MS, LOG_KEYS),
            events,
        };
        tokio::spawn(actor.run());
        let handle = TasksHandle {
            sender,
            purging: Arc::default(),
        };
        (handle, failure)
    }

    /// Carries out an actioner's command; the answer comes once its effects are durable.
    /// Pushes for its watches go to `origin`'s sink.
    pub async fn command(&self, command: Command, origin: Origin) -> Reply {
        self.command_held(command, origin, None).await
    }

    /// `command`, with the connection's permit for its items, given back once it is applied.
    pub async fn command_held(
        &self,
        command: Command,
        origin: Origin,
        held: Option<Held>,
    ) -> Reply {
        self.send_command(command, origin, held).await.await
    }

    /// Queues `command` at the actor now and returns its answer to await later. A connection
    /// queues its requests in the order they arrived, so that the adds of one client are
    /// applied (and get their ids, and are dispatched) in the order it sent them, while their
    /// answers are still awaited side by side.
    pub async fn send_command(
        &self,
        command: Command,
        origin: Origin,
        held: Option<Held>,
    ) -> impl std::future::Future<Output = Reply> {
        let (reply, answer) = oneshot::channel();
        let msg = TaskMsg::Command {
            command,
            origin,
            reply,
            _held: held,
        };
        let sent = self.sender.send(msg).await.is_ok();
        async move {
            if !sent {
                return stopping();
            }
            answer.await.unwrap_or_else(|_| stopping())
        }
    }

    /// An actioner connection ended: forget its watches and its push sink.
    pub async fn forget(&self, conn: ConnId) {
        let _ = self.sender.send(TaskMsg::Forget(conn)).await;
    }

    /// Adds a worker whose frames go to `sender`; returns its connection id and until when it
    /// gets no task if its name keeps dropping its connections. `None` if the actor stopped.
    pub async fn register(
        &self,
        hello: WorkerHello,
        address: String,
        sender: WorkerSender,
    ) -> Option<(WorkerId, Option<Timestamp>)> {
        let (reply, answer) = oneshot::channel();
        let msg = TaskMsg::Register {
            hello,
            address,
            sender,
            reply,
        };
        self.sender.send(msg).await.ok()?;
        answer.await.ok()
    }

    /// Gives nothing more to a worker that is shutting down gently; returns how many attempts
    /// it still holds (`None` if it is gone).
    pub async fn drain(&self, worker: WorkerId) -> Option<u32> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(TaskMsg::Drain { worker, reply })
            .await
            .ok()?;
        answer.await.ok().flatten()
    }

    /// The connected workers.
    pub async fn list_workers(&self) -> Vec<WorkerInfo> {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(TaskMsg::ListWorkers(reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Hands over a worker's reports; their acknowledgement goes back after the flush.
    pub async fn reports(&self, worker: WorkerId, reports: Vec<Report>, held: Held) {
        let _ = self
            .sender
            .send(TaskMsg::Reports {
                worker,
                reports,
                _held: held,
            })
            .await;
    }

    /// A worker's heartbeat: attempts it runs that are no longer its own are stopped.
    pub async fn heartbeat(&self, worker: WorkerId, running: Vec<(TaskId, Attempt)>, held: Held) {
        let _ = self
            .sender
            .send(TaskMsg::Heartbeat {
                worker,
                running,
                _held: held,
            })
            .await;
    }

    /// A worker gave these queued attempts back unstarted (its answer to a `TakeBack`).
    pub async fn returned(&self, worker: WorkerId, attempts: Vec<(TaskId, Attempt)>, held: Held) {
        let _ = self
            .sender
            .send(TaskMsg::Returned {
                worker,
                attempts,
                _held: held,
            })
            .await;
    }

    /// A worker says these attempts start now in its slots (see `Scheduler::started`).
    pub async fn started(&self, worker: WorkerId, attempts: Vec<(TaskId, Attempt)>, held: Held) {
        let _ = self
            .sender
            .send(TaskMsg::Started {
                worker,
                attempts,
                _held: held,
            })
            .await;
    }

    /// A worker found these functions to be coroutine functions (`async def`): their tasks
    /// count as a fraction of a slot there (see `Scheduler::coroutines`).
    pub async fn coroutines(&self, worker: WorkerId, functions: Vec<String>, held: Held) {
        let _ = self
            .sender
            .send(TaskMsg::Coroutines {
                worker,
                functions,
                _held: held,
            })
            .await;
    }

    /// A worker's connection ended: forget it and requeue what it held.
    pub async fn worker_lost(&self, worker: WorkerId) {
        let _ = self.sender.send(TaskMsg::WorkerLost(worker)).await;
    }

    /// Slots may have become free (a worker joined, a hold-off ended): try to dispatch.
    pub async fn wake(&self) {
        let _ = self.sender.send(TaskMsg::Wake).await;
    }

    /// Subscribes to the live events (see `event_feed`): returns where the log stands; every
    /// event after `Position::last` follows through the subscriber's channel, round by round,
    /// once durable. `None` if the actor stopped.
    pub async fn subscribe(&self, subscriber: Subscriber) -> Option<Position> {
        let (reply, answer) = oneshot::channel();
        let msg = TaskMsg::Subscribe { subscriber, reply };
        self.sender.send(msg).await.ok()?;
        answer.await.ok()
    }

    /// What a worker's slots use now (`FromWorker::Usage`), for `worker list`.
    pub async fn usage(&self, worker: WorkerId, usage: WorkerUsage) {
        let _ = self.sender.send(TaskMsg::Usage { worker, usage }).await;
    }

    /// Purges finished tasks a scan of the store found, each with its queue and state as
    /// stored (`retention`; the caller holds `purge_lock`). Returns how many were purged, once
    /// that is durable; `None` if the actor stopped.
    pub async fn purge_found(&self, found: Vec<(TaskId, String, TaskState)>) -> Option<u64> {
        let (reply, answer) = oneshot::channel();
        let msg = TaskMsg::PurgeFound { found, reply };
        self.sender.send(msg).await.ok()?;
        match answer.await.ok()? {
            Reply::Purged { purged, .. } => Some(purged),
            _ => None,
        }
    }

    /// The lock every purge holds while it runs (see the field's comment).
    pub fn purge_lock(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.purging.clone()
    }
}

fn stopping() -> Reply {
    Reply::Error(Failure::new(
        FailureKind::Stopping,
        "the coordinator is stopping; try again once it is back",
    ))
}

impl TasksActor {
    async fn run(mut self) {
        let mut flights: VecDeque<Flight> = VecDeque::new();
        loop {
            // Sleep until the oldest flush lands, a message arrives or the earliest due time
            // passes (a scheduled task, a retry, a schedule's firing), whichever is first; with
            // `MAX_FLIGHTS` rounds in flight, only until the oldest lands.
            let due = earliest(self.table.next_due(), self.schedules.next_due());
            let room = flights.len() < MAX_FLIGHTS;
            let first = tokio::select! {
                biased;
                landed = oldest(&mut flights) => {
                    if let Some(flight) = flights.pop_front() {
                        if !self.land(flight, landed) {
                            return;
                        }
                    }
                    continue;
                }
                msg = self.receiver.recv(), if room => match msg {
                    Some(msg) => Some(msg),
                    None => {
                        // Every handle is gone: tell what is in flight, then stop.
                        while let Some(mut flight) = flights.pop_front() {
                            let landed = (&mut flight.flushing).await;
                            if !self.land(flight, landed) {
                                return;
                            }
                        }
                        return;
                    }
                },
                () = sleep_until(due), if room => None,
            };
            let early_below = flights
                .front()
                .map_or(self.table.next_id(), |flight| flight.round.fresh_from);
            let (round, batch) = self.round(first, early_below);
            flights.push_back(Flight {
                round,
                flushing: self.store.send(batch),
                sent: std::time::Instant::now(),
            });
        }
    }

    /// Applies `first` and the messages already waiting after it, within the round's budget,
    /// then what is due, dispatch and early sends; closes the round (`close`) and returns it
    /// with its batch.
    fn round(&mut self, first: Option<TaskMsg>, early_below: u64) -> (Round, crate::store::Batch) {
        let mut round = Round {
            fresh_from: self.table.next_id(),
            early_below,
            ..Round::default()
        };
        let now = Timestamp::now();
        let mut budget = Budget::default();
        if let Some(first) = first {
            budget.take(&first);
            self.handle(first, &mut round, now);
        }
        for _ in 1..MAX_ROUND {
            if budget.spent() {
                break;
            }
            match self.receiver.try_recv() {
                Ok(msg) => {
                    budget.take(&msg);
                    self.handle(msg, &mut round, now);
                }
                Err(_) => break,
            }
        }
        self.sweep_log();
        if self.table.promote_due(now) > 0 {
            round.may_dispatch = true;
        }
        self.fire_schedules(&mut round, now);
        self.order_held(&mut round);
        if round.may_dispatch {
            self.dispatch(&mut round, now);
        }
        self.send_early(&mut round);
        self.add_keys.prune(now);
        let batch = self.close(&mut round, now);
        (round, batch)
    }

    /// Ends the round: works out what it tells once durable while memory still has the
    /// records it finished (the waiters it wakes, the `Finished` pushes of its watchers), then
    /// takes its batch (the table's changes, which those records move into, add keys,
    /// schedules, stamped events).
    fn close(&mut self, round: &mut Round, now: Timestamp) -> crate::store::Batch {
        let finished = self.table.take_finished();
        let table = &self.table;
        let answers = self
            .waiters
            .finished(&finished, |id| table.describe(id).map(|(state, _)| state));
        for answer in answers {
            let summary = self.wait_summary(answer.tally);
            round.replies.push((answer.reply, Reply::Waited(summary)));
        }
        let pushes = std::mem::take(&mut round.pushes);
        round.finished = self.push_frames(pushes, &finished);
        let mut batch = self.table.take_changes();
        round.batch = self.table.last_batch();
        batch.add_keys = self.add_keys.take_changes();
        batch.schedules = self.schedules.take_changes();
        self.count(&batch, round.fresh_from);
        let events = self
            .events
            .stamp(batch.records(), batch.purge.len() as u64, now);
        crate::telemetry::events_written(events.len() as u64);
        if self.events.has_subscribers() && !events.is_empty() {
            round.events = Some(events.as_slice().into());
        }
        batch.events = events;
        batch.trim_events_through = self.events.trim();
        batch
    }

    /// A flight landed with `landed`: tells what its round must tell and returns `true`; on a
    /// failed flush, reports the error and returns `false` (the actor stops).
    fn land(&mut self, flight: Flight, landed: Result<(), StoreError>) -> bool {
        crate::telemetry::store_flush(flight.sent.elapsed());
        if let Err(err) = landed {
            // Nothing of this round may be told: it is not durable. Stopping is the only
            // honest answer; a restart recovers the last durable state.
            error!("{err}; stopping so that no unrecorded change is acknowledged");
            if let Some(failed) = self.failed.take() {
                let _ = failed.send(err);
            }
            return false;
        }
        self.table.flushed(flight.round.batch);
        self.deliver(flight.round);
        true
    }

    fn handle(&mut self, msg: TaskMsg, round: &mut Round, now: Timestamp) {
        match msg {
            TaskMsg::Command {
                command,
                origin,
                reply,
                ..
            } => {
                if let Some(answer) = self.command(command, origin, reply, round, now) {
                    round.replies.push(answer);
                }
            }
            TaskMsg::Forget(conn) => {
                self.watchers.forget(conn);
                self.sinks.remove(&conn);
            }
            TaskMsg::Register {
                hello,
                address,
                sender,
                reply,
            } => {
                // Not durable state: answered at once. The connection wakes dispatch once it
                // has welcomed the worker.
                let queues = self.worker_queues(&hello);
                let name = hello.name.clone();
                let (id, held_off_until) = self.scheduler.register(hello, queues, address, now);
                self.events.worker(id, &name, WorkerChange::Joined);
                self.senders.insert(id, sender);
                let _ = reply.send((id, held_off_until));
            }
            TaskMsg::Drain { worker, reply } => {
                let _ = reply.send(self.drain_worker(worker));
            }
            TaskMsg::ListWorkers(reply) => {
                let _ = reply.send(self.scheduler.list());
            }
            TaskMsg::Reports {
                worker, reports, ..
            } => {
                let out = round.outgoing.entry(worker).or_default();
                for report in reports {
                    let key = (report.task, report.attempt);
                    let measure = !matches!(report.outcome, Outcome::Killed);
                    let held = self.scheduler.report(worker, key, measure, now);
                    round.may_dispatch |= held;
                    let effect = self.table.report(report, held, now);
                    if effect.stale {
                        if let Some(note) = self.loud(Ignored::Report, worker) {
                            warn!(
                                "ignored report of task {} attempt {} from worker {worker}: {}{note}",
                                key.0,
                                key.1,
                                self.why_not_current(key.0)
                            );
                        }
                    }
                    out.recorded.push(key);
                }
            }
            TaskMsg::Heartbeat {
                worker, running, ..
            } => {
                let stale = self.scheduler.stale(worker, &running);
                if !stale.is_empty() {
                    for (task, attempt) in &stale {
                        if let Some(note) = self.loud(Ignored::Heartbeat, worker) {
                            warn!(
                                "ignored heartbeat for task {task} attempt {attempt} from worker {worker}: {}; telling the worker to stop it{note}",
                                self.why_not_current(*task)
                            );
                        }
                    }
                    round.outgoing.entry(worker).or_default().kill.extend(stale);
                }
            }
            TaskMsg::Started {
                worker, attempts, ..
            } => {
                let ignored = self.scheduler.started(worker, &attempts, now);
                if ignored > 0 {
                    if let Some(note) = self.loud(Ignored::Started, worker) {
                        warn!("ignored {ignored} of {} attempts worker {worker} said it started: they are not handed to it{note}", attempts.len());
                    }
                }
            }
            TaskMsg::Returned {
                worker, attempts, ..
            } => {
                let table = &self.table;
                let given = self
                    .scheduler
                    .returned(worker, &attempts, |key| table.may_give_back_started(key.0));
                let requeued = self.table.returned(&given);
                if given.len() < attempts.len() {
                    if let Some(note) = self.loud(Ignored::Returned, worker) {
                        warn!("ignored {} of {} attempts worker {worker} gave back: they are not queued there{note}", attempts.len() - given.len(), attempts.len());
                    }
                }
                if requeued > 0 {
                    if let Some(note) = self.loud(Ignored::TakenBack, WorkerId(0)) {
                        info!(%worker, requeued, "worker gave back queued tasks (asked to, for idle workers, or held ones whose dependency did not complete there); they are ready again, first in line, or blocked{note}");
                    }
                }
                round.may_dispatch = true;
            }
            TaskMsg::Coroutines {
                worker, functions, ..
            } => {
                self.scheduler.coroutines(worker, &functions);
                // Its slots may hold more of them now.
                round.may_dispatch = true;
            }
            TaskMsg::WorkerLost(worker) => {
                if let Some(name) = self.scheduler.name(worker) {
                    self.events.worker(worker, name, WorkerChange::Left);
                }
                self.senders.remove(&worker);
                round.outgoing.remove(&worker);
                round.early.remove(&worker);
                let held = self.scheduler.remove(worker, now);
                let lost = self.table.lost(held, now);
                if lost.requeued > 0 || lost.failed > 0 {
                    // One key for every worker: connections that come and go get new ids.
                    if let Some(note) = self.loud(Ignored::Lost, WorkerId(0)) {
                        info!(
                            %worker,
                            requeued = lost.requeued,
                            unstarted = lost.unstarted,
                            failed = lost.failed,
                            "worker lost; its tasks are ready again unless at-most-once or past their crash limit{note}"
                        );
                    }
                }
                // Its slots are gone, but a take-back it owed may now be asked of another.
                round.may_dispatch = true;
            }
            TaskMsg::Wake => round.may_dispatch = true,
            TaskMsg::Subscribe { subscriber, reply } => {
                // Answered with the round: the events stamped so far are durable by then.
                let position = self.events.subscribe(subscriber);
                round.subscribed.push((reply, position));
            }
            TaskMsg::Usage { worker, usage } => {
                self.scheduler.set_usage(worker, usage);
            }
            TaskMsg::PurgeFound { found, reply } => {
                let purged = self.table.purge_found(found);
                let answer = Reply::Purged {
                    purged,
                    unchanged: Vec::new(),
                };
                round.replies.push((reply, answer));
            }
        }
    }

    /// Feeds the counters of what a round wrote (`telemetry`): tasks added (ids from
    /// `fresh_from` on) and tasks finished, per final state. One pass over the batch's records,
    /// a few atomic adds per round.
    fn count(&self, batch: &crate::store::Batch, fresh_from: u64) {
        crate::telemetry::tasks_added(self.table.next_id().saturating_sub(fresh_from));
        let mut finished = [0u64; 3];
        for record in batch.records() {
            match record.state() {
                TaskState::Completed => finished[0] += 1,
                TaskState::Failed => finished[1] += 1,
                TaskState::Killed => finished[2] += 1,
                _ => {}
            }
        }
        let states = [TaskState::Completed, TaskState::Failed, TaskState::Killed];
        for (state, n) in states.into_iter().zip(finished) {
            crate::telemetry::tasks_finished(state, n);
        }
    }

    /// The numbers of the queues a worker serves (the default queue if its hello names none).
    fn worker_queues(&mut self, hello: &WorkerHello) -> Vec<QueueId> {
        if hello.queues.is_empty() {
            return vec![self.table.queue_id(tatzelwurm_proto::task::DEFAULT_QUEUE)];
        }
        hello
            .queues
            .iter()
            .map(|name| self.table.queue_id(name))
            .collect()
    }

    /// Adds the task of every schedule due at `now`, `ready`, in this round's batch together
    /// with the schedule's new state (its next time, its last tasks).
    fn fire_schedules(&mut self, round: &mut Round, now: Timestamp) {
        if self.schedules.next_due().is_none_or(|due| due > now) {
            return;
        }
        for (name, spec) in self.schedules.due(now) {
            match self.table.add(vec![spec], true, now, &self.store) {
                Ok(ids) => {
                    if let Some(id) = ids.first() {
                        self.schedules.fired(&name, *id, now);
                    }
                    round.may_dispatch = true;
                }
                // A schedule's task runs after nothing, so only a store failure ends here.
                Err(err) => error!("schedule `{name}` could not add its task: {err}"),
            }
        }
    }

    /// Tells the workers that hold held tasks whose dependencies did not complete to kill or
    /// give back their attempts (`task_table/held.rs`), after the round's flush like any kill.
    fn order_held(&mut self, round: &mut Round) {
        let orders = self.table.take_orders();
        for key in orders.kill {
            if let Some(worker) = self.scheduler.holder(key) {
                round.outgoing.entry(worker).or_default().kill.push(key);
            }
        }
        for key in orders.take_back {
            if let Some(worker) = self.scheduler.holder(key) {
                round
                    .outgoing
                    .entry(worker)
                    .or_default()
                    .take_back
                    .push(key);
            }
        }
    }

    /// Sends the frames that need no flush (see `Round::early`).
    fn send_early(&mut self, round: &mut Round) {
        for (worker, run) in std::mem::take(&mut round.early) {
            if let Some(sender) = self.senders.get(&worker) {
                for frame in run_frames(run) {
                    // If the connection is closing, its WorkerLost requeues what it held.
                    let _ = sender.send(frame);
                }
            }
        }
    }

    /// Tells everyone what the round did; called only after the store flush.
    fn deliver(&mut self, round: Round) {
        for (reply, answer) in round.replies {
            let _ = reply.send(answer);
        }
        for (reply, position) in round.subscribed {
            let _ = reply.send(position);
        }
        if let Some(events) = round.events {
            self.events.fan_out(events);
        }
        for (worker, out) in round.outgoing {
            let Some(sender) = self.senders.get(&worker) else {
                continue;
            };
            for frame in out.into_frames() {
                if sender.send(frame).is_err() {
                    // The connection is closing; its WorkerLost will requeue what it held.
                    warn!(%worker, "could not reach worker; its tasks are requeued when its connection ends");
                    break;
                }
            }
        }
        let mut gone = Vec::new();
        for (conn, frame) in round.finished {
            let sent = self
                .sinks
                .get(&conn)
                .is_some_and(|sink| sink.send(frame).is_ok());
            if !sent {
                gone.push(conn);
            }
        }
        for conn in gone {
            self.watchers.forget(conn);
            self.sinks.remove(&conn);
        }
    }

    /// The `Finished` frames of a round, one per request (cut only if it would not fit a
    /// frame) with every task of it that finished this round or was finished when watched,
    /// for connections that still have a sink.
    fn push_frames(
        &mut self,
        mut pushes: BTreeMap<(ConnId, RequestId), Vec<TaskId>>,
        finished: &[TaskId],
    ) -> Vec<(ConnId, ToActioner)> {
        for push in self.watchers.finished(finished) {
            pushes
                .entry((push.conn, push.request))
                .or_default()
                .extend(push.tasks);
        }
        let mut frames = Vec::new();
        for ((conn, request), mut ids) in pushes {
            if !self.sinks.contains_key(&conn) {
                continue;
            }
            ids.sort_unstable();
            ids.dedup();
            let ends = self.table.ends(&ids, &self.store);
            for page in paging::end_pages(ends) {
                let frame = ToActioner {
                    request,
                    reply: Reply::Finished(page),
                };
                frames.push((conn, frame));
            }
        }
        frames
    }

    /// What task `id`'s latest reported attempt printed: this round's report if there is one,
    /// else the store's.
    fn output_of(&self, id: TaskId) -> Result<TaskOutput, StoreError> {
        match self.table.unsaved_output(id) {
            Some(output) => Ok(output.clone()),
            None => self.store.output(id),
        }
    }

    /// Whether a warning of `kind` about `worker` is logged now: `Some` with the note to add
    /// (how many like it were left out), `None` to count it only.
    fn loud(&mut self, kind: Ignored, worker: WorkerId) -> Option<String> {
        match self.log_limit.check(&(kind, worker), log_limit::now_ms()) {
            Decision::Log { left_out } => Some(log_limit::left_out_note(left_out, LOG_INTERVAL_MS)),
            Decision::Quiet => None,
        }
    }

    /// Logs the counts of warnings left out for workers that went quiet.
    fn sweep_log(&mut self) {
        if self.log_limit.is_empty() {
            return;
        }
        for (key, count) in self.log_limit.sweep(log_limit::now_ms()) {
            match key {
                Some((Ignored::Lost, _)) => info!(
                    "{count} more lines about lost workers' tasks were not logged in the last {} s",
                    LOG_INTERVAL_MS / 1000
                ),
                Some((Ignored::TakenBack, _)) => info!(
                    "{count} more lines about returned tasks were not logged in the last {} s",
                    LOG_INTERVAL_MS / 1000
                ),
                Some((kind, worker)) => warn!(
                    "{count} more lines of an {} from worker {worker} were not logged in the last {} s",
                    kind.what(),
                    LOG_INTERVAL_MS / 1000
                ),
                None => warn!(
                    "{count} more warnings about other workers were not logged in the last {} s",
                    LOG_INTERVAL_MS / 1000
                ),
            }
        }
    }

    /// Why a message about `task` names an attempt that is not current, for the log.
    fn why_not_current(&self, task: TaskId) -> String {
        match self.table.describe(task) {
            Some((state, attempt)) => {
                format!("the task is {state} with attempt {attempt} current")
            }
            None => "no such task".into(),
        }
    }

    fn summaries(&self, ids: &[TaskId]) -> Vec<tatzelwurm_proto::task::TaskInfo> {
        self.table.infos(ids, &self.store)
    }

    /// The answer to a wait whose tasks ended as `tally` counts: the counts, and the tasks
    /// that did not complete described (from memory, or the store for earlier rounds).
    fn wait_summary(&self, tally: Tally) -> WaitSummary {
        let counts = tally.counts();
        let mut unsuccessful = tally.unsuccessful;
        unsuccessful.sort_unstable();
        WaitSummary {
            counts,
            unsuccessful: self.summaries(&unsuccessful),
            earlier_unsuccessful: tally.earlier_unsuccessful,
        }
    }
}

/// The flush rule: whether `assignment` may be sent before its round's flush. Only an
/// at-least-once task that was durable before the round and every round still in flight (ids
/// from `early_below` on were added by one of them) and whose durable record was current when
/// it was handed out (`current`, see `TaskTable::may_start_early`: `ready`, or `blocked` and
/// released in this round) may: a crash before the flush at worst runs it once more, and the
/// restarted table counts the attempt number as used (`TaskTable::recover`). An at-most-once
/// task must be durably running before it may start; a fresh one is not durable at all yet.
fn before_flush(assignment: &Assignment, early_below: u64, current: bool) -> bool {
    !assignment.spec.policy.at_most_once && assignment.task.0 < early_below && current
}

/// Completes with the flush outcome of the oldest flight; never, when there is none (the
/// caller's `select!` then waits for the other branches).
async fn oldest(flights: &mut VecDeque<Flight>) -> Result<(), StoreError> {
    match flights.front_mut() {
        Some(flight) => (&mut flight.flushing).await,
        None => std::future::pending().await,
    }
}

/// Spec bytes one `Run` frame carries at most: a quarter of a frame, like a page of a listing,
/// so that prefetch of tasks with large arguments never makes a frame the codec refuses.
const RUN_FRAME_BYTES: usize = tatzelwurm_proto::MAX_FRAME_LEN / 4;

/// `run` cut into `Run` frames of at most `RUN_FRAME_BYTES` of specs (a larger single task
/// gets a frame of its own: it came in a frame too) and `MAX_ATTEMPTS_PER_FRAME` tasks.
fn run_frames(run: Vec<Assignment>) -> Vec<ToWorker> {
    let mut frames = Vec::new();
    let mut frame = Vec::new();
    let mut bytes = 0;
    for assignment in run {
        let spec = &assignment.spec;
        let size = 64 + spec.function.len() + spec.args.len() + spec.kwargs.len();
        let full = bytes + size > RUN_FRAME_BYTES
            || frame.len() >= tatzelwurm_proto::limits::MAX_ATTEMPTS_PER_FRAME;
        if full && !frame.is_empty() {
            frames.push(ToWorker::Run(std::mem::take(&mut frame)));
            bytes = 0;
        }
        bytes += size;
        frame.push(assignment);
    }
    if !frame.is_empty() {
        frames.push(ToWorker::Run(frame));
    }
    frames
}

/// The earlier of two optional times.
fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Completes at the wall-clock time `due`, or never when there is none.
async fn sleep_until(due: Option<Timestamp>) {
    match due {
        Some(due) => {
            let wait = due.0.saturating_sub(Timestamp::now().0);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}

mod command;
mod dispatch;
mod operations;
mod queue_command;
#[cfg(test)]
pub(crate) mod tests;
