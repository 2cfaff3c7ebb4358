//! The slot pool: the worker's slot processes, the tasks waiting for one, and the reports of the
//! tasks that ended.
//!
//! `session` talks to it through [`SlotsHandle`] (started, run, kill, abandon, running, shutdown) and reads
//! finished [`Report`]s from the channel [`SlotsHandle::start`] returns. The pool is one actor:
//! it alone owns every slot's state, so nothing else may kill or reuse a slot. It never waits for
//! Python: starting a process happens in a task of its own, and what a slot says or does comes
//! back as an [`Event`] from its watcher (`slot_process`). The pool hands each slot one task at
//! a time; a task with no free slot waits in a local queue.
//!
//! A task's timeout (`policy.timeout_ms`) runs from the moment its slot gets it, not while it
//! waits in the queue. The deadline lives in the slot's `Busy` state with the attempt it belongs
//! to, so it leaves with that attempt and can never hit a later task; one timer in the pool's loop
//! is set to the earliest deadline. A task past its deadline is stopped like a kill (SIGKILL to the
//! slot's process group) and reported `Failed` with kind `Timeout`, with the output it wrote so
//! far (`captured`); then a fresh slot is started.

use crate::captured::Captured;
use crate::failures;
use crate::slot_channel::{encode_run, FromSlot};
use crate::slot_process::{
    self, describe_exit, kill_group, Event, EventKind, SlotCommand, SlotWriter, StartedBox,
};
use std::collections::VecDeque;
use std::process::ExitStatus;
use std::time::Duration;
use tatzelwurm_proto::backoff::Curve;
use tatzelwurm_proto::task::{Outcome, TaskOutput};
use tatzelwurm_proto::worker::{Assignment, Report};
use tatzelwurm_proto::{Attempt, TaskId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Waits before restarting a slot that keeps dying without running a task: 100 ms doubling to
/// 5 s, so a broken interpreter is retried slowly instead of in a hot loop.
const RESTART: Curve = Curve {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};
/// How many commands may wait for the pool; the session waits when it is full.
const COMMAND_QUEUE: usize = 1024;

/// A running attempt: the fencing pair the coordinator knows it by.
type AttemptId = (TaskId, Attempt);

/// Where the pool's timer starts; it is not polled until a running task has a deadline.
const NO_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// The session's way to the slot pool. Cheap to clone; the pool kills its slots and stops when
/// the last handle is dropped.
#[derive(Clone)]
pub struct SlotsHandle {
    commands: mpsc::Sender<Command>,
}

enum Command {
    Run(Vec<Assignment>),
    Kill(Vec<AttemptId>),
    Abandon,
    Running(oneshot::Sender<Vec<AttemptId>>),
    WhenStarted(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

impl SlotsHandle {
    /// Starts `count` slots running `command` and returns the handle and the channel on which
    /// every finished attempt's report arrives (unbounded: at most one report per slot and per
    /// assigned task is ever outstanding, and the pool must never wait for the session).
    pub fn start(
        command: SlotCommand,
        count: usize,
    ) -> (SlotsHandle, mpsc::UnboundedReceiver<Report>) {
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let (reports, finished) = mpsc::unbounded_channel();
        let (events, event_inbox) = mpsc::unbounded_channel();
        let mut pool = Pool {
            command,
            slots: (0..count).map(|_| Slot::default()).collect(),
            queue: VecDeque::new(),
            reports,
            events,
            stopping: None,
            starting: Vec::new(),
        };
        for index in 0..count {
            pool.start_slot(index);
        }
        tokio::spawn(pool.serve(inbox, event_inbox));
        (SlotsHandle { commands }, finished)
    }

    /// Runs these attempts: each goes to a free slot, or waits for one here.
    pub async fn run(&self, assignments: Vec<Assignment>) {
        self.send(Command::Run(assignments)).await;
    }

    /// Stops these attempts (queued or running, with every process they started) and reports
    /// each `Killed`; attempts not here are ignored.
    pub async fn kill(&self, attempts: Vec<AttemptId>) {
        self.send(Command::Kill(attempts)).await;
    }

    /// Forgets every attempt: kills the running ones and drops the queued ones, for a lost
    /// connection, after which the coordinator requeues them all anyway. Only a result that was
    /// already on its way from a slot is still reported (the coordinator fences it).
    pub async fn abandon(&self) {
        self.send(Command::Abandon).await;
    }

    /// The attempts assigned here and not yet reported, for the heartbeat.
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
    /// One entry per slot, by index.
    slots: Vec<Slot>,
    /// Assigned attempts waiting for a slot, oldest first.
    queue: VecDeque<Assignment>,
    /// Where finished attempts go (to the session).
    reports: mpsc::UnboundedSender<Report>,
    /// Handed to start tasks and watchers; keeps the event channel open while the pool lives.
    events: mpsc::UnboundedSender<Event>,
    /// Set by a shutdown: who waits for every slot to be gone.
    stopping: Option<Vec<oneshot::Sender<()>>>,
    /// Who waits for every slot to have said hello once ([`SlotsHandle::started`]).
    starting: Vec<oneshot::Sender<()>>,
}

/// One slot: its current process and how it has fared.
#[derive(Default)]
struct Slot {
    /// Counts the slot's processes; events from an older one are stale.
    generation: u64,
    /// What the slot is doing.
    state: State,
    /// Times in a row the slot died without running a task; decides the back-off of a restart.
    failures: u32,
    /// Whether this slot has announced itself in the log (the first time at info, later debug).
    announced: bool,
}

/// A slot's process as the pool sees it.
#[derive(Default)]
enum State {
    /// A process is being started (perhaps after a back-off); abort the task to cancel it.
    Starting(AbortHandle),
    /// The process runs but has not said hello yet.
    Booting(Live),
    /// Ready for a task.
    Idle(Live),
    /// Running one attempt, which must end by the deadline if its task has a timeout.
    Busy(Live, AttemptId, Option<Deadline>),
    /// SIGKILL sent; waiting for the exit. Holds the attempt to report then, if any, and how it
    /// ended (`Killed`, or `Failed` for a timeout).
    Killing(Live, Option<(AttemptId, Outcome)>),
    /// No process and none coming (after a shutdown).
    #[default]
    Dead,
}

/// A live slot process.
struct Live {
    /// Its pid and process group.
    pid: i32,
    /// Frames to it.
    to_slot: SlotWriter,
    /// Its capture files, opened once it said hello; read when it dies running a task.
    captured: Option<Captured>,
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

/// When a running attempt has to end.
struct Deadline {
    /// The moment: when the slot got the task, plus its timeout.
    at: Instant,
    /// The timeout, for the error message.
    limit: Duration,
}

impl Pool {
    async fn serve(
        mut self,
        mut inbox: mpsc::Receiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let timer = tokio::time::sleep(NO_DEADLINE);
        tokio::pin!(timer);
        loop {
            // The timer is polled only while some running task has a deadline, and then set to
            // the earliest one.
            let next = self.next_deadline();
            if let Some(at) = next.filter(|at| *at != timer.deadline()) {
                timer.as_mut().reset(at);
            }
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(command) => self.on_command(command),
                    // Every handle is gone; `Drop` kills what is left.
                    None => return,
                },
                Some(event) = events.recv() => self.on_event(event),
                () = &mut timer, if next.is_some() => self.time_out(Instant::now()),
            }
            if self.stopping.is_some() && self.slots.iter().all(|s| matches!(s.state, State::Dead))
            {
                for waiter in self.stopping.take().into_iter().flatten() {
                    let _ = waiter.send(());
                }
                return;
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Run(assignments) => self.run(assignments),
            Command::Kill(attempts) => {
                for attempt in attempts {
                    self.kill(attempt);
                }
            }
            Command::Abandon => self.abandon(),
            Command::Running(reply) => {
                let _ = reply.send(self.running());
            }
            Command::WhenStarted(reply) => {
                self.starting.push(reply);
                self.answer_started();
            }
            Command::Shutdown(reply) => self.shutdown(reply),
        }
    }

    fn run(&mut self, assignments: Vec<Assignment>) {
        if self.stopping.is_some() {
            return;
        }
        // Slots the coordinator counts as free: all but those with an attempt not yet reported.
        let free = self
            .slots
            .iter()
            .filter(|s| !matches!(s.state, State::Busy(..) | State::Killing(_, Some(_))))
            .count();
        let waiting = self.queue.len() + assignments.len();
        if waiting > free {
            warn!(
                "the coordinator assigned {} more tasks than this worker has free slots; they wait here for a slot",
                waiting - free
            );
        }
        self.queue.extend(assignments);
        self.dispatch();
    }

    /// Hands queued attempts to idle slots, oldest first.
    fn dispatch(&mut self) {
        while !self.queue.is_empty() {
            let Some((index, live)) = self.take_idle() else {
                return;
            };
            let Some(assignment) = self.queue.pop_front() else {
                self.slots[index].state = State::Idle(live);
                return;
            };
            let slot = &mut self.slots[index];
            if !live.to_slot.send(encode_run([&assignment])) {
                // The process died idle and its exit is still on the way: the task never reached
                // it, so it waits for another slot; this one is restarted when the exit arrives.
                warn!("slot {index} died between tasks");
                slot.failures += 1;
                kill_group(live.pid);
                slot.state = State::Killing(live, None);
                self.queue.push_front(assignment);
                continue;
            }
            debug!(task = %assignment.task, attempt = %assignment.attempt, pid = live.pid, "task handed to slot {index}");
            // The timeout runs from now, when the task reaches its slot. One too large to reach
            // is no timeout.
            let deadline = assignment.spec.policy.timeout_ms.and_then(|ms| {
                let limit = Duration::from_millis(ms);
                Some(Deadline {
                    at: Instant::now().checked_add(limit)?,
                    limit,
                })
            });
            slot.state = State::Busy(live, (assignment.task, assignment.attempt), deadline);
        }
    }

    /// Takes the first idle slot's process out of its state, to be put back as busy.
    fn take_idle(&mut self) -> Option<(usize, Live)> {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if matches!(slot.state, State::Idle(_)) {
                if let State::Idle(live) = std::mem::take(&mut slot.state) {
                    return Some((index, live));
                }
            }
        }
        None
    }

    fn kill(&mut self, target: AttemptId) {
        if let Some(at) = self
            .queue
            .iter()
            .position(|a| (a.task, a.attempt) == target)
        {
            self.queue.remove(at);
            self.report(target, Outcome::Killed, TaskOutput::default());
            return;
        }
        for slot in &mut self.slots {
            match &mut slot.state {
                State::Busy(_, running, _) if *running == target => {}
                // Being stopped for its timeout: the kill is what the coordinator asked for.
                State::Killing(_, Some((stopping, outcome))) if *stopping == target => {
                    *outcome = Outcome::Killed;
                    return;
                }
                _ => continue,
            }
            if let State::Busy(live, running, _) = std::mem::take(&mut slot.state) {
                kill_group(live.pid);
                debug!(task = %target.0, attempt = %target.1, pid = live.pid, "killing a running task");
                slot.state = State::Killing(live, Some((running, Outcome::Killed)));
                return;
            }
        }
        debug!(task = %target.0, attempt = %target.1, "asked to kill an attempt that is not running here");
    }

    fn abandon(&mut self) {
        let dropped = self.queue.len();
        self.queue.clear();
        let mut killed = 0;
        for slot in &mut self.slots {
            slot.state = match std::mem::take(&mut slot.state) {
                State::Busy(live, ..) | State::Killing(live, _) => {
                    kill_group(live.pid);
                    killed += 1;
                    State::Killing(live, None)
                }
                other => other,
            };
        }
        if killed + dropped > 0 {
            info!("stopped {killed} running and dropped {dropped} waiting tasks; the coordinator hands them out again");
        }
    }

    /// Answers those waiting for every slot's first hello, once all have said it.
    fn answer_started(&mut self) {
        if self.slots.iter().all(|slot| slot.announced) {
            for waiter in self.starting.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn running(&self) -> Vec<AttemptId> {
        let in_slots = self.slots.iter().filter_map(|s| match &s.state {
            State::Busy(_, running, _) | State::Killing(_, Some((running, _))) => Some(*running),
            _ => None,
        });
        let queued = self.queue.iter().map(|a| (a.task, a.attempt));
        in_slots.chain(queued).collect()
    }

    fn shutdown(&mut self, reply: oneshot::Sender<()>) {
        self.stopping.get_or_insert_with(Vec::new).push(reply);
        self.queue.clear();
        for slot in &mut self.slots {
            slot.state = match std::mem::take(&mut slot.state) {
                State::Starting(starter) => {
                    starter.abort();
                    State::Dead
                }
                State::Booting(live)
                | State::Idle(live)
                | State::Busy(live, ..)
                | State::Killing(live, _) => {
                    kill_group(live.pid);
                    State::Killing(live, None)
                }
                State::Dead => State::Dead,
            };
        }
    }

    /// The earliest deadline of a running attempt, if any has one.
    fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|slot| match &slot.state {
                State::Busy(_, _, Some(deadline)) => Some(deadline.at),
                _ => None,
            })
            .min()
    }

    /// Stops every attempt whose deadline is `now` or past, to be reported as timed out when its
    /// slot's exit arrives.
    fn time_out(&mut self, now: Instant) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if !matches!(&slot.state, State::Busy(_, _, Some(deadline)) if deadline.at <= now) {
                continue;
            }
            if let State::Busy(live, running, Some(deadline)) = std::mem::take(&mut slot.state) {
                kill_group(live.pid);
                let error = failures::timed_out(deadline.limit);
                info!(
                    "task {} (attempt {}) in slot {index}: {}",
                    running.0, running.1, error.message
                );
                slot.state = State::Killing(live, Some((running, Outcome::Failed { error })));
            }
        }
    }

    /// Starts a fresh process for `index`, after a back-off if the slot keeps dying without
    /// running a task; returns the back-off.
    fn start_slot(&mut self, index: usize) -> Duration {
        let slot = &mut self.slots[index];
        slot.generation += 1;
        let delay = RESTART.delay(slot.failures);
        let (command, events, generation) =
            (self.command.clone(), self.events.clone(), slot.generation);
        let starter = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let started = slot_process::spawn(&command).await;
            let _ = events.send(Event {
                slot: index,
                generation,
                kind: EventKind::Started(started.map(|s| StartedBox(Box::new(s)))),
            });
        });
        slot.state = State::Starting(starter.abort_handle());
        delay
    }

    /// Replaces the process of a slot that lost it, unless the pool is stopping; `why`, if any,
    /// is logged in one line with the back-off.
    fn restart(&mut self, index: usize, why: Option<String>) {
        if self.stopping.is_some() {
            self.slots[index].state = State::Dead;
            return;
        }
        let delay = self.start_slot(index);
        match why {
            Some(why) if delay.is_zero() => warn!("{why}; starting a fresh slot"),
            Some(why) => warn!(
                "{why}; starting a fresh slot in {:.1} s",
                delay.as_secs_f64()
            ),
            None => {}
        }
    }

    fn on_event(&mut self, event: Event) {
        let Event {
            slot: index,
            generation,
            kind,
        } = event;
        if self.slots[index].generation != generation {
            // News from a process that was already replaced; only a fresh process matters.
            if let EventKind::Started(Ok(StartedBox(started))) = kind {
                kill_group(started.pid);
            }
            return;
        }
        match kind {
            EventKind::Started(Ok(StartedBox(started))) => {
                let live = Live {
                    pid: started.pid,
                    to_slot: started.to_slot.clone(),
                    captured: None,
                };
                slot_process::watch(*started, index, generation, self.events.clone());
                self.slots[index].state = if self.stopping.is_some() {
                    kill_group(live.pid);
                    State::Killing(live, None)
                } else {
                    State::Booting(live)
                };
            }
            EventKind::Started(Err(err)) => {
                self.slots[index].failures += 1;
                let why = format!(
                    "cannot start slot {index} with {}: {err}",
                    self.command.python.display()
                );
                self.restart(index, Some(why));
            }
            EventKind::Message(FromSlot::Hello(hello)) => {
                let slot = &mut self.slots[index];
                if let State::Booting(mut live) = std::mem::take(&mut slot.state) {
                    live.captured = hello.capture.and_then(|fds| {
                        Captured::open(live.pid, fds)
                            .inspect_err(|err| debug!("slot {index}: cannot open its capture files ({err}); output of a task it dies running is lost"))
                            .ok()
                    });
                    slot.state = State::Idle(live);
                } else {
                    warn!("slot {index} said hello twice");
                }
                if !slot.announced {
                    slot.announced = true;
                    info!(
                        "slot {index} ready: Python {} at {} (pid {})",
                        hello.python, hello.executable, hello.pid
                    );
                    self.answer_started();
                } else {
                    debug!("slot {index} ready again (pid {})", hello.pid);
                }
                self.dispatch();
            }
            EventKind::Message(FromSlot::Done(done)) => {
                for done in done {
                    self.on_done(index, done.into_report());
                }
                self.dispatch();
            }
            EventKind::Exited(status) => self.on_exit(index, status),
        }
    }

    fn on_done(&mut self, index: usize, report: Report) {
        let slot = &mut self.slots[index];
        match std::mem::take(&mut slot.state) {
            State::Busy(live, running, _) if running == (report.task, report.attempt) => {
                slot.state = State::Idle(live);
                slot.failures = 0;
                let _ = self.reports.send(report);
            }
            // Abandoned (the connection dropped) or shut down after it finished: the result is
            // true, so it is reported; the coordinator records it only if this attempt is still
            // the task's current one, and otherwise logs it as ignored.
            State::Killing(live, None) => {
                slot.state = State::Killing(live, None);
                let _ = self.reports.send(report);
            }
            // Killed on request while it finished: the kill is what the coordinator asked for.
            state @ State::Killing(..) => slot.state = state,
            state => {
                warn!(task = %report.task, attempt = %report.attempt, "slot {index} reported a task it was not running");
                slot.state = state;
            }
        }
    }

    fn on_exit(&mut self, index: usize, status: ExitStatus) {
        let how = describe_exit(status);
        let slot = &mut self.slots[index];
        let why = match std::mem::take(&mut slot.state) {
            State::Busy(live, running, _) => {
                let error = failures::slot_crashed(&how);
                self.report(running, Outcome::Failed { error }, live.output());
                Some(format!(
                    "slot {index} {how} while running task {} (attempt {})",
                    running.0, running.1
                ))
            }
            State::Killing(live, stopped) => {
                if let Some((attempt, outcome)) = stopped {
                    self.report(attempt, outcome, live.output());
                }
                None
            }
            State::Booting(_) => {
                slot.failures += 1;
                Some(format!(
                    "slot {index} {how} before it was ready (its output above may say why)"
                ))
            }
            State::Idle(_) => {
                slot.failures += 1;
                Some(format!("slot {index} {how} between tasks"))
            }
            State::Starting(_) | State::Dead => {
                debug!("slot {index} reported an exit in no running state");
                None
            }
        };
        self.restart(index, why);
    }

    fn report(&mut self, (task, attempt): AttemptId, outcome: Outcome, output: TaskOutput) {
        let _ = self.reports.send(Report {
            task,
            attempt,
            outcome,
            output,
        });
    }
}

impl Drop for Pool {
    /// The pool ends after a shutdown, when its handles are gone, or with the runtime: in every
    /// case no slot process may outlive it.
    fn drop(&mut self) {
        for slot in &self.slots {
            match &slot.state {
                State::Booting(live)
                | State::Idle(live)
                | State::Busy(live, ..)
                | State::Killing(live, _) => kill_group(live.pid),
                State::Starting(starter) => starter.abort(),
                State::Dead => {}
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
