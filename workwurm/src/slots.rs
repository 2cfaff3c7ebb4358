//! The slot pool actor: the worker's slot processes around the rules of `slot_table`.
//!
//! `session` talks to it through [`SlotsHandle`] (started, run, kill, take back, abandon,
//! running, shutdown) and reads [`News`] (attempts that reached a slot, and finished attempts'
//! reports) from the channel [`SlotsHandle::start`] returns. The pool is one actor: it alone
//! owns the slot processes, so nothing else may kill or reuse one. Which slot runs what, the
//! queue, kills, timeouts, crashes and take-backs are decided by the pure [`SlotTable`]; this
//! file only carries out its [`Action`]s and feeds it what the processes do. It never waits for
//! Python: starting a process happens in a task of its own, and what a slot says or does comes
//! back as an [`Event`] from its watcher (`slot_process`).
//!
//! Under `--max-memory` it measures every live slot's resident memory every [`MEMORY_EVERY`]
//! and lets the table judge (`slot_table/memory.rs`); it answers the session's usage question
//! with each slot's pid and running count ([`SlotsHandle::usage`]); and it names the task that
//! wrote what a slot's watcher read from its capture files, as [`News::Output`] (see
//! `live_output`).
//!
//! Before it acts on the task a slot runs (a kill, a timeout, a memory sample), it reads what the
//! slots wrote that their watchers have not read yet (`Pool::catch_up`, see `doorbell`).
//!
//! Per turn of its loop it handles one command, or every slot event that is ready (carrying out
//! the table's actions after each, so that a frame is written before the next event of its slot
//! is looked at), then sends one [`News::Started`] with every attempt handed to a slot in that
//! turn, so that a burst of tasks costs one `Started` frame, not one per task.

use crate::captured::Captured;
use crate::live_output;
use crate::slot_channel::{encode_cancel, encode_interrupt, FromSlot};
use crate::slot_process::{
    self, describe_exit, kill_group, Event, EventKind, SlotCommand, SlotFrames, SlotWriter,
    StartedBox,
};
use crate::slot_table::{Action, MemoryCounts, SlotTable};
use crate::usage::{self, SlotsSnapshot};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tatzelwurm_proto::task::TaskOutput;
#[cfg(test)]
use tatzelwurm_proto::worker::OutputStream;
use tatzelwurm_proto::worker::{Assignment, OutputChunk, Report};
use tatzelwurm_proto::{Attempt, TaskId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

pub use crate::slot_table::AttemptId;

/// How many commands may wait for the pool; the session waits when it is full.
const COMMAND_QUEUE: usize = 1024;

/// Most slot events handled in one turn before the table's actions are carried out.
const EVENTS_PER_TURN: usize = 1024;

/// Where the pool's timer starts; it is not polled until a running task has a deadline.
const NO_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// How often the slots' resident memory is measured under `--max-memory`.
pub const MEMORY_EVERY: Duration = Duration::from_millis(100);

/// What the pool tells the session.
#[derive(Debug)]
pub enum News {
    /// These attempts reached a slot (the coordinator's `Started`).
    Started(Vec<AttemptId>),
    /// An attempt ended.
    Report(Report),
    /// A slot found these functions to be coroutine functions; each is named once for the life
    /// of the pool (the coordinator's `Coroutines`, which the session repeats on every new
    /// connection).
    Coroutines(Vec<String>),
    /// Held tasks given back unasked: a task they run after did not complete here (the
    /// coordinator's `Returned`; see `slot_table/waits`).
    Returned(Vec<AttemptId>),
    /// What running tasks wrote since the last such news (see `live_output`), for the
    /// coordinator's `Output`.
    Output(Vec<OutputChunk>),
    /// `--max-memory` replaced a slot or failed a task: worth a `Usage` now rather than at the
    /// next heartbeat.
    MemoryActed,
}

/// The session's way to the slot pool. Cheap to clone; the pool kills its slots and stops when
/// the last handle is dropped.
#[derive(Clone)]
pub struct SlotsHandle {
    commands: mpsc::Sender<Command>,
}

enum Command {
    Run(Vec<Assignment>),
    Kill(Vec<AttemptId>),
    TakeBack(Vec<AttemptId>, oneshot::Sender<Vec<AttemptId>>),
    Abandon,
    Running(oneshot::Sender<Vec<AttemptId>>),
    WhenStarted(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
    Usage(oneshot::Sender<SlotsSnapshot>),
}

impl SlotsHandle {
    /// Starts `count` slots running `command`, each running up to `async_concurrency` tasks of
    /// coroutine functions at once, and returns the handle and the channel of its news
    /// (unbounded: at most one report per assigned task is ever outstanding, and the pool must
    /// never wait for the session).
    pub fn start(
        command: SlotCommand,
        count: usize,
        async_concurrency: usize,
    ) -> (SlotsHandle, mpsc::UnboundedReceiver<News>) {
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let (news, news_inbox) = mpsc::unbounded_channel();
        let (events, event_inbox) = mpsc::unbounded_channel();
        let max_memory = command.max_memory;
        let mut pool = Pool {
            command,
            table: SlotTable::new(count, async_concurrency).with_max_memory(max_memory),
            processes: (0..count).map(|_| Process::default()).collect(),
            news,
            events,
            stopping: None,
            starting: Vec::new(),
            memory_told: MemoryCounts::default(),
        };
        pool.memory_told = pool.table.memory_counts();
        pool.apply(Instant::now());
        tokio::spawn(pool.serve(inbox, event_inbox));
        (SlotsHandle { commands }, news_inbox)
    }

    /// Runs these attempts: they wait in the worker's queue until a slot takes them.
    pub async fn run(&self, assignments: Vec<Assignment>) {
        self.send(Command::Run(assignments)).await;
    }

    /// Stops these attempts (queued or running, with every process they started) and reports
    /// each `Killed`; attempts not here are ignored.
    pub async fn kill(&self, attempts: Vec<AttemptId>) {
        self.send(Command::Kill(attempts)).await;
    }

    /// Drops those of these attempts that no slot has got yet and returns exactly those.
    pub async fn take_back(&self, attempts: Vec<AttemptId>) -> Vec<AttemptId> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::TakeBack(attempts, reply)).await;
        answer.await.unwrap_or_default()
    }

    /// Forgets every attempt: kills the running ones and drops the queued ones, for a lost
    /// connection, after which the coordinator requeues them all anyway. Only a result that was
    /// already on its way from a slot is still reported (the coordinator fences it).
    pub async fn abandon(&self) {
        self.send(Command::Abandon).await;
    }

    /// The attempts assigned here and not yet reported, queued ones too, for the heartbeat.
    pub async fn running(&self) -> Vec<AttemptId> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Running(reply)).await;
        answer.await.unwrap_or_default()
    }

    /// Returns once every slot has started and said hello once, so that the worker offers the
    /// coordinator only slots that can take a task now (a cold Python start takes ~100 ms, in
    /// which a task would wait here while another worker sat idle). A slot that keeps failing
    /// to start makes this wait forever: bound it with a timeout.
    pub async fn started(&self) {
        let (reply, answer) = oneshot::channel();
        self.send(Command::WhenStarted(reply)).await;
        let _ = answer.await;
    }

    /// Each slot's process id and running count, and what `--max-memory` did, for the
    /// coordinator's `Usage` (the session measures the processes, see `usage`).
    pub async fn usage(&self) -> SlotsSnapshot {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Usage(reply)).await;
        answer.await.unwrap_or_default()
    }

    /// Kills every slot and returns once all slot processes are gone.
    pub async fn shutdown(&self) {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Shutdown(reply)).await;
        let _ = answer.await;
    }

    async fn send(&self, command: Command) {
        // The pool only stops after a shutdown; a command after that has nothing left to do.
        let _ = self.commands.send(command).await;
    }
}

/// The pool actor's state.
struct Pool {
    /// What every slot process runs.
    command: SlotCommand,
    /// The rules: queue, hands, kills, timeouts, crashes.
    table: SlotTable,
    /// Each slot's process, by index.
    processes: Vec<Process>,
    /// Where attempts that reached a slot and finished attempts go (to the session).
    news: mpsc::UnboundedSender<News>,
    /// Handed to start tasks and watchers; keeps the event channel open while the pool lives.
    events: mpsc::UnboundedSender<Event>,
    /// Set by a shutdown: who waits for every slot to be gone.
    stopping: Option<Vec<oneshot::Sender<()>>>,
    /// Who waits for every slot to have said hello once ([`SlotsHandle::started`]).
    starting: Vec<oneshot::Sender<()>>,
    /// The memory counts last told to the session ([`News::MemoryActed`]).
    memory_told: MemoryCounts,
}

/// One slot's process as the actor holds it.
#[derive(Default)]
struct Process {
    /// Counts the slot's processes; events from an older one are stale.
    generation: u64,
    /// A start in progress (abort it to cancel it), or the live process.
    state: ProcessState,
}

#[derive(Default)]
enum ProcessState {
    #[default]
    None,
    Starting(AbortHandle),
    Live(Live),
}

/// A live slot process.
struct Live {
    /// Its pid and process group.
    pid: i32,
    /// Frames to it.
    to_slot: SlotWriter,
    /// Its capture files, opened once it said hello; read when it dies running a task.
    captured: Option<Captured>,
    /// What it wrote, shared with its watcher: read before a kill or a timeout (`catch_up`).
    frames: Arc<Mutex<SlotFrames>>,
    /// The process has exited (its pid may be reused): never signal it again.
    exited: bool,
}

impl Live {
    /// What the task running in this slot wrote so far (empty if the files could not be opened).
    fn output(&self) -> TaskOutput {
        self.captured
            .as_ref()
            .map(Captured::tail)
            .unwrap_or_default()
    }
}

impl Pool {
    async fn serve(
        mut self,
        mut inbox: mpsc::Receiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let timer = tokio::time::sleep(NO_DEADLINE);
        tokio::pin!(timer);
        // Polled only under --max-memory while some slot is ready.
        let mut measure = tokio::time::interval(MEMORY_EVERY);
        measure.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let measuring = self.table.wants_memory_samples();
            // The timer is polled only while some running task has a deadline, and then set to
            // the earliest one.
            let next = self.table.next_deadline();
            if let Some(at) = next.filter(|at| *at != timer.deadline()) {
                timer.as_mut().reset(at);
            }
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(command) => {
                        if matches!(command, Command::Kill(_)) {
                            // Kill the task the slot runs, not one that ended a moment ago.
                            self.catch_up(&mut events);
                        }
                        self.on_command(command);
                    }
                    // Every handle is gone; `Drop` kills what is left.
                    None => return,
                },
                Some(event) = events.recv() => {
                    self.on_event(event);
                    for _ in 1..EVENTS_PER_TURN {
                        // Each event's actions are carried out before the next event: a task
                        // handed to a slot is written before that slot's exit is looked at.
                        self.apply(Instant::now());
                        match events.try_recv() {
                            Ok(event) => self.on_event(event),
                            Err(_) => break,
                        }
                    }
                }
                () = &mut timer, if next.is_some() => {
                    // A task that ended within its time is reported, not timed out.
                    self.catch_up(&mut events);
                    self.table.time_out(Instant::now());
                }
                _ = measure.tick(), if measuring => {
                    self.catch_up(&mut events);
                    self.measure();
                }
            }
            self.apply(Instant::now());
            self.tell_started();
            let memory = self.table.memory_counts();
            if memory != self.memory_told {
                self.memory_told = memory;
                let _ = self.news.send(News::MemoryActed);
            }
            if self.stopping.is_some() && self.table.all_dead() {
                for waiter in self.stopping.take().unwrap_or_default() {
                    let _ = waiter.send(());
                }
                return;
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Run(assignments) => self.table.run(assignments, now),
            Command::Kill(attempts) => self.table.kill(&attempts, now),
            Command::TakeBack(attempts, reply) => {
                let _ = reply.send(self.table.take_back(&attempts));
            }
            Command::Abandon => self.table.abandon(),
            Command::Running(reply) => {
                let _ = reply.send(self.table.running());
            }
            Command::WhenStarted(reply) => {
                self.starting.push(reply);
                self.answer_started();
            }
            Command::Shutdown(reply) => {
                self.stopping.get_or_insert_with(Vec::new).push(reply);
                self.table.shutdown();
            }
            Command::Usage(reply) => {
                let _ = reply.send(self.snapshot());
            }
        }
    }

    /// Brings the table up to what the slots wrote so far, before it decides on the task a slot
    /// runs (a kill, a timeout, `--max-memory`): a slot rings its doorbell only now and then in a
    /// stream of fast tasks (see `doorbell`), so its watcher may not have read its last `done`s
    /// yet. Takes each live slot's frames under their lock, and first the events its watcher
    /// sent before (the watcher sends while holding it), so that every message is handled in
    /// the order the slot wrote it.
    fn catch_up(&mut self, events: &mut mpsc::UnboundedReceiver<Event>) {
        for index in 0..self.processes.len() {
            let (frames, generation, pid) = match &self.processes[index].state {
                ProcessState::Live(live) if !live.exited => (
                    Arc::clone(&live.frames),
                    self.processes[index].generation,
                    live.pid,
                ),
                _ => continue,
            };
            let mut frames = frames.lock().unwrap_or_else(|e| e.into_inner());
            while let Ok(event) = events.try_recv() {
                self.on_event(event);
                self.apply(Instant::now());
            }
            if self.processes[index].generation != generation {
                // Replaced by an event just handled; its new process has its own frames.
                continue;
            }
            let (_, messages, error) = frames.read();
            for message in messages {
                self.on_event(Event {
                    slot: index,
                    generation,
                    kind: EventKind::Message(message),
                });
                self.apply(Instant::now());
            }
            if let Some(err) = error {
                // The watcher sees the exit that follows.
                warn!("replacing slot {index}: {err}");
                kill_group(pid);
            }
        }
    }

    /// Measures the resident memory of every live slot process for `--max-memory`.
    fn measure(&mut self) {
        let now = Instant::now();
        for index in 0..self.processes.len() {
            let ProcessState::Live(live) = &self.processes[index].state else {
                continue;
            };
            if live.exited {
                continue;
            }
            if let Some(rss) = usage::resident(live.pid) {
                self.table.measured(index, rss, now);
            }
        }
    }

    /// What the coordinator's `Usage` needs from the pool.
    fn snapshot(&self) -> SlotsSnapshot {
        let memory = self.table.memory_counts();
        SlotsSnapshot {
            slots: self
                .processes
                .iter()
                .enumerate()
                .map(|(index, process)| {
                    let pid = match &process.state {
                        ProcessState::Live(live) if !live.exited => Some(live.pid),
                        _ => None,
                    };
                    (pid, self.table.running_in(index))
                })
                .collect(),
            max_memory: memory.limit,
            memory_replaced: memory.replaced,
            memory_killed: memory.killed,
        }
    }

    /// Carries out what the table decided.
    fn apply(&mut self, now: Instant) {
        while let Some(action) = self.table.next_action() {
            match action {
                Action::Start { slot, delay } => self.start_slot(slot, delay),
                Action::Hand {
                    slot,
                    count,
                    together,
                    frame,
                } => {
                    let sent = match &self.processes[slot].state {
                        ProcessState::Live(live) => live.to_slot.send(frame),
                        _ => false,
                    };
                    if !sent {
                        self.table.hand_failed(slot, count, together, now);
                    }
                }
                Action::Interrupt { slot, attempts } => {
                    if let ProcessState::Live(live) = &self.processes[slot].state {
                        // A failed write means the process is gone; its exit settles the rest.
                        let _ = live.to_slot.send(encode_interrupt(&attempts));
                    }
                }
                Action::Cancel { slot, attempts } => {
                    if let ProcessState::Live(live) = &self.processes[slot].state {
                        // A failed write means the process is gone; its exit settles the rest.
                        let _ = live.to_slot.send(encode_cancel(&attempts));
                    }
                }
                Action::Kill { slot } => {
                    let process = &mut self.processes[slot];
                    match &process.state {
                        ProcessState::Live(live) if !live.exited => kill_group(live.pid),
                        ProcessState::Live(_) => {}
                        ProcessState::Starting(starter) => {
                            starter.abort();
                            // A start that finished meanwhile is stale now, and killed.
                            process.generation += 1;
                            process.state = ProcessState::None;
                        }
                        ProcessState::None => {}
                    }
                }
                Action::Report {
                    mut report,
                    output_of,
                } => {
                    if let Some(slot) = output_of {
                        if let ProcessState::Live(live) = &self.processes[slot].state {
                            report.output = live.output();
                        }
                    }
                    let _ = self.news.send(News::Report(report));
                }
            }
        }
    }

    /// Tells the session which attempts reached a slot in this turn, in one message.
    fn tell_started(&mut self) {
        let started = self.table.take_started();
        if !started.is_empty() {
            let _ = self.news.send(News::Started(started));
        }
        let returned = self.table.take_returned();
        if !returned.is_empty() {
            let _ = self.news.send(News::Returned(returned));
        }
    }

    /// Answers those waiting for every slot's first hello, once all have said it.
    fn answer_started(&mut self) {
        if self.table.all_announced() {
            for waiter in self.starting.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// Starts a fresh process for `index` after `delay`; its old process, if any, is gone.
    fn start_slot(&mut self, index: usize, delay: Duration) {
        let process = &mut self.processes[index];
        process.generation += 1;
        let (command, events, generation) = (
            self.command.clone(),
            self.events.clone(),
            process.generation,
        );
        let starter = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let started = slot_process::spawn(&command).await;
            let _ = events.send(Event {
                slot: index,
                generation,
                kind: EventKind::Started(started.map(|s| StartedBox(Box::new(s)))),
            });
        });
        process.state = ProcessState::Starting(starter.abort_handle());
    }

    fn on_event(&mut self, event: Event) {
        let Event {
            slot: index,
            generation,
            kind,
        } = event;
        if self.processes[index].generation != generation {
            // News from a process that was already replaced; only a fresh process matters.
            if let EventKind::Started(Ok(StartedBox(started))) = kind {
                kill_group(started.pid);
            }
            return;
        }
        let now = Instant::now();
        match kind {
            EventKind::Started(Ok(StartedBox(started))) => {
                let live = Live {
                    pid: started.pid,
                    to_slot: started.to_slot.clone(),
                    captured: None,
                    frames: Arc::clone(&started.frames),
                    exited: false,
                };
                slot_process::watch(*started, index, generation, self.events.clone());
                self.processes[index].state = ProcessState::Live(live);
                self.table.process_started(index, Ok(()));
            }
            EventKind::Started(Err(err)) => {
                self.processes[index].state = ProcessState::None;
                let why = format!(
                    "cannot start slot {index} with {}: {err}",
                    self.command.python.display()
                );
                self.table.process_started(index, Err(why));
            }
            EventKind::Message(FromSlot::Hello(hello)) => {
                if let ProcessState::Live(live) = &mut self.processes[index].state {
                    if live.captured.is_none() {
                        live.captured = hello.capture.and_then(|fds| {
                            Captured::open(live.pid, fds)
                                .inspect_err(|err| debug!("slot {index}: cannot open its capture files ({err}); output of a task it dies running is lost"))
                                .ok()
                        });
                    }
                }
                if self.table.hello(index, now) {
                    info!(
                        "slot {index} ready: Python {} at {} (pid {})",
                        hello.python, hello.executable, hello.pid
                    );
                    self.answer_started();
                } else {
                    debug!("slot {index} ready again (pid {})", hello.pid);
                }
            }
            EventKind::Message(FromSlot::Done(done)) => {
                let reports = done.into_iter().map(|d| d.into_report()).collect();
                self.table.done(index, reports, now);
            }
            EventKind::Message(FromSlot::Skipped(skipped)) => {
                let ids: Vec<AttemptId> = skipped
                    .into_iter()
                    .map(|(task, attempt)| (TaskId(task), Attempt(attempt)))
                    .collect();
                self.table.skipped(index, &ids);
            }
            EventKind::Message(FromSlot::Unmet(unmet)) => {
                let ids: Vec<AttemptId> = unmet
                    .into_iter()
                    .map(|(task, attempt)| (TaskId(task), Attempt(attempt)))
                    .collect();
                self.table.unmet(index, &ids, now);
            }
            EventKind::Message(FromSlot::Outgrown(rss)) => self.table.outgrown(index, rss, now),
            EventKind::Output(texts) => {
                // Written by the task the slot runs now (see `live_output`); none: dropped,
                // the report carries it.
                if let Some(attempt) = self.table.live_target(index) {
                    let chunks: Vec<OutputChunk> = texts
                        .into_iter()
                        .enumerate()
                        .filter_map(|(which, text)| Some(live_output::chunk(attempt, which, text?)))
                        .collect();
                    let _ = self.news.send(News::Output(chunks));
                }
            }
            EventKind::Message(FromSlot::Coroutines(names)) => {
                self.table.coroutines(index, names, now);
                // At once, ahead of the reports of this turn: the coordinator counts the
                // function's tasks as shares of a slot from then on.
                let learned = self.table.take_coroutines();
                if !learned.is_empty() {
                    let _ = self.news.send(News::Coroutines(learned));
                }
            }
            EventKind::Exited(status) => {
                if let ProcessState::Live(live) = &mut self.processes[index].state {
                    live.exited = true;
                }
                self.table.exited(index, &describe_exit(status), now);
            }
        }
    }
}

impl Drop for Pool {
    /// The pool ends after a shutdown, when its handles are gone, or with the runtime: in every
    /// case no slot process may outlive it.
    fn drop(&mut self) {
        for process in &self.processes {
            match &process.state {
                ProcessState::Live(live) if !live.exited => kill_group(live.pid),
                ProcessState::Starting(starter) => starter.abort(),
                ProcessState::Live(_) | ProcessState::None => {}
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod together_tests;

#[cfg(test)]
mod reload_tests;

#[cfg(test)]
mod held_tests;

#[cfg(test)]
mod usage_tests;

#[cfg(test)]
mod fast_path_tests;
