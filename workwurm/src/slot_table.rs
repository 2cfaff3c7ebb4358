//! The slot table: the rules of the worker's slots, as a plain struct with `now` passed in.
//!
//! It owns the worker's queue of attempts the coordinator handed it (prefetch: the queue may be
//! longer than the free slots), what each slot holds, and what happens on a kill, a timeout, a
//! crash, a take-back, a lost connection and a shutdown. It touches no process and no channel:
//! each call leaves [`Action`]s for the pool actor (`slots`) to carry out (start, hand tasks to,
//! cancel in, or kill a slot's process; send a report), and the attempts that reached a slot
//! since the last turn ([`SlotTable::take_started`]), which the session tells the coordinator in
//! one `Started` frame per turn. So every rule is tested in `slot_table/tests.rs` without Python.
//!
//! Which queued attempt goes to which slot, and how many a slot may hold, is decided in
//! `hand_out` (a part of this table in its own file).
//!
//! A slot's *hand* is what its process holds, oldest first; the front is the task it runs, the
//! rest wait in the slot's own queue (slot.py) so that it never waits a round trip for its next
//! task. Only tasks of functions this worker has seen end fast go behind another, and only
//! behind a front that is itself fast and young (many deep), or short and young (one deep), so
//! a slow task never holds others back for long (they would not be given back: a handed task
//! counts as started). The table learns
//! that a slot began the next task when the slot reports the previous one: slot.py sends each
//! `done` before it begins the next task. A task's timeout runs from that moment.
//!
//! A kill of a task handed but not begun reports it `Killed` at once and asks the slot to skip
//! it (`cancel`); slot.py answers `skipped` before the `done` that would make it the front. If
//! the slot began it anyway (the cancel crossed the `done`), the table kills the slot's process
//! as soon as it learns so.
//!
//! When a slot's process is killed (a kill, a timeout, a cancelled task it began), the tasks it
//! held behind the one killed stay in its hand until the exit: frames still in the pipe may show
//! that the slot had gone on. Those it reported ended are reported as they ended; the one it may
//! have begun when the SIGKILL landed is reported crashed (running it again unasked could run an
//! at-most-once task twice); only the rest, never begun, go back to the queue.
//!
//! A task whose spec names tasks it runs after (`after`) may arrive while this worker still holds
//! some of them (the coordinator hands a chain to one worker ahead of completion): it starts only
//! once each of those completed here, may wait in a slot's hand right behind them with the
//! condition that they complete there (the slot skips it otherwise), and is given back unasked
//! if one of them does not complete (see `waits`).
//!
//! Under `--max-memory`, a slot past the limit after a task is replaced (the result stands) and
//! one past it during a task is killed, failing it `MemoryLimit` (see `memory`).
//!
//! Tasks of coroutine functions (`async def`) that the table knows as such run *together*: up to
//! `async_concurrency` of them at once in one slot, on its event loop, each begun when handed and
//! ended on its own (see `together`). A slot either runs a sequential hand (sync tasks, and tasks
//! of functions not known to be coroutines) or a set of together tasks, never both.

use crate::failures;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;
use std::time::Duration;
use tatzelwurm_proto::backoff::Curve;
use tatzelwurm_proto::task::{Outcome, TaskOutput};
use tatzelwurm_proto::worker::{Assignment, Report};
use tatzelwurm_proto::{Attempt, TaskId};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// An attempt: the fencing pair the coordinator knows it by.
pub type AttemptId = (TaskId, Attempt);

/// Waits before restarting a slot that keeps dying without running a task: 100 ms doubling to
/// 5 s, so a broken interpreter is retried slowly instead of in a hot loop.
const RESTART: Curve = Curve {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// What the pool actor must do for the table.
#[derive(Debug)]
pub enum Action {
    /// Start a fresh process for `slot` after `delay`; the old one, if any, is gone.
    Start { slot: usize, delay: Duration },
    /// Write this run frame (of `count` tasks, run together or in order) to `slot`; if the write
    /// fails, call [`SlotTable::hand_failed`] with the same `count` and `together`.
    Hand {
        slot: usize,
        count: usize,
        together: bool,
        frame: Vec<u8>,
    },
    /// Ask `slot` to cancel these tasks it runs together (their asyncio tasks); each is reported
    /// when the slot says it ended, or when the slot is replaced after `together::GRACE`.
    Interrupt {
        slot: usize,
        attempts: Vec<AttemptId>,
    },
    /// Ask `slot` to skip these tasks it holds and has not begun.
    Cancel {
        slot: usize,
        attempts: Vec<AttemptId>,
    },
    /// SIGKILL `slot`'s process group (or stop a start in progress).
    Kill { slot: usize },
    /// Send this report to the session; when `output_of` names a slot, its output is what the
    /// task wrote in that slot's capture files (the slot died under it).
    Report {
        report: Report,
        output_of: Option<usize>,
    },
}

/// The worker's slots and queue.
#[derive(Debug)]
pub struct SlotTable {
    /// One entry per slot, by index.
    slots: Vec<Slot>,
    /// Assigned attempts not handed to a slot yet, oldest first.
    queue: VecDeque<Assignment>,
    /// Set by a shutdown: slots are not restarted and nothing is handed out.
    stopping: bool,
    /// Attempts handed to a slot since the last `take_started`.
    started: Vec<AttemptId>,
    /// What the actor has to do, in order.
    actions: VecDeque<Action>,
    /// Average time a task of each function took here, from its start in the slot to its report.
    /// FxHash: looked up for every hand-out decision (a few times per task) and learned once per
    /// task, where SipHash of a ~40-byte name cost ~5 % of workwurm's CPU in W1; the names come
    /// from the coordinator and the map holds at most `MAX_FUNCTIONS`.
    durations: FxHashMap<String, Duration>,
    /// How many together tasks one slot may run at once (`--async-concurrency`, at least 1).
    concurrency: usize,
    /// The functions the slots found to be coroutine functions: their tasks run together.
    coroutines: FxHashSet<String>,
    /// Coroutine functions learned since the last `take_coroutines`, for the coordinator.
    learned: Vec<String>,
    /// Held tasks waiting for others held here to complete (see `waits`).
    waits: Waits,
    /// Doomed held tasks given back unasked since the last `take_returned` (see `waits`).
    returned: Vec<AttemptId>,
    /// `--max-memory` and what it did (see `memory`).
    memory: MemoryCounts,
}

/// One slot.
#[derive(Debug, Default)]
struct Slot {
    /// What its process is doing.
    phase: Phase,
    /// The tasks its process holds, oldest first (only while `Ready`).
    hand: VecDeque<Handed>,
    /// When the front task began, as far as the table knows.
    began: Option<Instant>,
    /// A write to the process failed: it is dying, and gets nothing more until its exit.
    broken: bool,
    /// Times in a row the slot died without running a task; decides the back-off of a restart.
    failures: u32,
    /// Whether the slot has said hello once.
    announced: bool,
    /// The tasks it runs together on its event loop (only while `Ready` and its hand is empty,
    /// or while it is being killed), in the order they were handed.
    together: Vec<Together>,
    /// The together task whose failed cancellation made the table replace this slot's process:
    /// the other together tasks still running at its exit fail naming it.
    replaced_for: Option<AttemptId>,
    /// Its process has reported a task: past `--max-memory` while idle, it is replaced (a
    /// fresh one is not, see `memory`).
    ran: bool,
    /// The task it ran when it was last measured past `--max-memory` (see `memory`).
    over: Option<AttemptId>,
}

/// A slot's process as the table sees it.
#[derive(Debug, Default)]
enum Phase {
    /// A process is being started (perhaps after a back-off).
    Starting,
    /// The process runs but has not said hello yet.
    Booting,
    /// Ready for tasks: idle with an empty hand, busy otherwise.
    Ready,
    /// SIGKILL sent; waiting for the exit. Holds what the kill was for, if it was for a task;
    /// the tasks behind it stay in the hand until the exit, when it is known which of them began.
    Killing(Option<Stop>),
    /// No process and none coming (after a shutdown).
    #[default]
    Dead,
}

/// The task a slot is being killed for.
#[derive(Debug)]
struct Stop {
    /// The front when the kill was sent.
    target: AttemptId,
    /// Its report once the process is gone (`Killed`, or `Failed` for a timeout); `None` when it
    /// was reported already (a cancelled task the slot began anyway).
    outcome: Option<Outcome>,
    /// The slot reported `target` after all (its `done` crossed the kill): it went on to the next
    /// task it held, which may have begun before the SIGKILL landed and must not run again
    /// unasked.
    passed: bool,
}

/// A task in a slot's hand.
#[derive(Debug)]
struct Handed {
    assignment: Assignment,
    /// Killed before it began: reported already, asked to be skipped.
    cancelled: bool,
    /// Attempts ahead of it in the same hand that must have completed for it to run (a held
    /// task, see `waits`); the slot skips it otherwise (`unmet`).
    needs: Vec<AttemptId>,
}

impl Handed {
    fn id(&self) -> AttemptId {
        (self.assignment.task, self.assignment.attempt)
    }
}

impl SlotTable {
    /// A table of `count` slots, each being started, each running up to `concurrency` tasks of
    /// coroutine functions at once.
    pub fn new(count: usize, concurrency: usize) -> SlotTable {
        let mut table = SlotTable {
            slots: (0..count).map(|_| Slot::default()).collect(),
            queue: VecDeque::new(),
            stopping: false,
            started: Vec::new(),
            actions: VecDeque::new(),
            durations: FxHashMap::default(),
            concurrency: concurrency.max(1),
            coroutines: FxHashSet::default(),
            learned: Vec::new(),
            waits: Waits::default(),
            returned: Vec::new(),
            memory: MemoryCounts::default(),
        };
        for slot in 0..count {
            table.start(slot);
        }
        table
    }

    /// The next thing the actor has to do.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Held tasks the worker gives back unasked since the last call (a task they run after did
    /// not complete here, see `waits`), for a `Returned` frame.
    pub fn take_returned(&mut self) -> Vec<AttemptId> {
        std::mem::take(&mut self.returned)
    }

    /// The attempts handed to a slot since the last call, for one `Started` frame.
    pub fn take_started(&mut self) -> Vec<AttemptId> {
        std::mem::take(&mut self.started)
    }

    /// Queues these attempts and hands out what the slots can take. A queue longer than the
    /// free slots is normal (the coordinator prefetches).
    pub fn run(&mut self, assignments: Vec<Assignment>, now: Instant) {
        let waiting = assignments.iter().any(|a| !a.spec.after.is_empty());
        for assignment in &assignments {
            self.waits.again(assignment.task);
        }
        let from = self.queue.len();
        self.queue.extend(assignments);
        if waiting {
            // Held tasks (see `waits`): what each waits for among those held here, those of
            // this frame included.
            let held = self.held_tasks();
            for assignment in self.queue.range(from..) {
                self.waits.arrive(assignment, |id| held.contains(&id));
            }
        }
        self.dispatch(now);
    }

    /// Drops the named attempts that are still queued (never handed to a slot) and returns
    /// exactly those; handed ones run on and are reported as usual.
    pub fn take_back(&mut self, attempts: &[AttemptId]) -> Vec<AttemptId> {
        let mut returned = Vec::new();
        self.queue.retain(|a| {
            let id = (a.task, a.attempt);
            let named = attempts.contains(&id);
            if named {
                returned.push(id);
            }
            !named
        });
        if !self.waits.is_empty() || !returned.is_empty() {
            let now = Instant::now();
            for (task, _) in &returned {
                // Given back: what waits for it here never starts here, and goes back too.
                self.waits.ended(*task, false, Some(now));
            }
            self.dispatch(now);
        }
        returned
    }

    /// Stops these attempts, queued, handed or running, and reports each `Killed`; attempts not
    /// here are ignored.
    pub fn kill(&mut self, attempts: &[AttemptId], now: Instant) {
        for &target in attempts {
            if !self.kill_together(target, now) {
                self.kill_one(target);
            }
        }
        self.dispatch(now);
    }

    fn kill_one(&mut self, target: AttemptId) {
        if let Some(at) = self
            .queue
            .iter()
            .position(|a| (a.task, a.attempt) == target)
        {
            self.queue.remove(at);
            self.report(target, Outcome::Killed, None);
            return;
        }
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let ready = match &mut slot.phase {
                // Being stopped already (say for its timeout): the kill is what the coordinator
                // asked for.
                Phase::Killing(Some(stop)) if stop.target == target => {
                    if stop.outcome.is_some() {
                        stop.outcome = Some(Outcome::Killed);
                    }
                    return;
                }
                Phase::Ready => true,
                Phase::Killing(Some(_)) => false,
                _ => continue,
            };
            let Some(at) = slot.hand.iter().position(|h| h.id() == target) else {
                continue;
            };
            if slot.hand[at].cancelled {
                return;
            }
            if ready && at == 0 {
                debug!(task = %target.0, attempt = %target.1, "killing a running task in slot {index}");
                self.stop_front(index, Outcome::Killed);
                return;
            }
            slot.hand[at].cancelled = true;
            if ready {
                self.actions.push_back(Action::Cancel {
                    slot: index,
                    attempts: vec![target],
                });
            }
            self.report(target, Outcome::Killed, None);
            return;
        }
        debug!(task = %target.0, attempt = %target.1, "asked to kill an attempt that is not here");
    }

    /// Kills the process of `index` under its front task, to be reported with `outcome` when it
    /// is gone; the tasks behind the front wait for the exit (see [`SlotTable::exited`]).
    fn stop_front(&mut self, index: usize, outcome: Outcome) {
        let slot = &mut self.slots[index];
        let Some(front) = slot.hand.pop_front() else {
            return;
        };
        slot.began = None;
        slot.phase = Phase::Killing(Some(Stop {
            target: front.id(),
            outcome: Some(outcome),
            passed: false,
        }));
        self.actions.push_back(Action::Kill { slot: index });
    }

    /// Puts the tasks of a slot's hand (never begun) back at the queue's front, in order; those
    /// cancelled were reported already and are dropped.
    fn requeue_hand(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.began = None;
        for handed in slot.hand.drain(..).rev() {
            if !handed.cancelled {
                self.queue.push_front(handed.assignment);
            }
        }
    }

    /// Forgets every attempt (a lost connection): kills the running ones and drops the queued
    /// and handed ones, which the coordinator hands out again anyway. A result already on its way
    /// from a slot is still reported (the coordinator fences it).
    pub fn abandon(&mut self) {
        let dropped = self.queue.len();
        self.queue.clear();
        self.waits.clear();
        self.returned.clear();
        let mut killed = 0;
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            let busy = match &slot.phase {
                Phase::Ready => !slot.hand.is_empty() || !slot.together.is_empty(),
                Phase::Killing(Some(_)) => true,
                Phase::Killing(None) => !slot.together.is_empty(),
                _ => false,
            };
            if busy {
                killed += slot.together.len().max(1);
                slot.hand.clear();
                slot.together.clear();
                slot.replaced_for = None;
                slot.began = None;
                slot.phase = Phase::Killing(None);
                self.actions.push_back(Action::Kill { slot: index });
            }
        }
        if killed + dropped > 0 {
            info!("stopped {killed} running and dropped {dropped} waiting tasks; the coordinator hands them out again");
        }
    }

    /// Kills every slot for good.
    pub fn shutdown(&mut self) {
        self.stopping = true;
        self.queue.clear();
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            slot.hand.clear();
            slot.together.clear();
            slot.phase = match std::mem::take(&mut slot.phase) {
                Phase::Dead => Phase::Dead,
                Phase::Starting => {
                    self.actions.push_back(Action::Kill { slot: index });
                    Phase::Dead
                }
                _ => {
                    self.actions.push_back(Action::Kill { slot: index });
                    Phase::Killing(None)
                }
            };
        }
    }

    /// Whether a shutdown is complete: no slot has a process.
    pub fn all_dead(&self) -> bool {
        self.slots.iter().all(|s| matches!(s.phase, Phase::Dead))
    }

    /// Whether every slot has said hello once.
    pub fn all_announced(&self) -> bool {
        self.slots.iter().all(|s| s.announced)
    }

    /// The attempts assigned here and not yet reported (queued ones too), for the heartbeat.
    pub fn running(&self) -> Vec<AttemptId> {
        let mut running = Vec::new();
        for slot in &self.slots {
            running.extend(slot.together.iter().map(|t| t.id()));
            match &slot.phase {
                Phase::Ready => {
                    running.extend(slot.hand.iter().filter(|h| !h.cancelled).map(Handed::id))
                }
                Phase::Killing(Some(stop)) => {
                    if stop.outcome.is_some() {
                        running.push(stop.target);
                    }
                    running.extend(slot.hand.iter().filter(|h| !h.cancelled).map(Handed::id));
                }
                _ => {}
            }
        }
        running.extend(self.queue.iter().map(|a| (a.task, a.attempt)));
        running
    }

    /// How many attempts wait in the queue, not handed to any slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// A start finished: the process runs (`Ok`) or could not be started (`Err`, why).
    pub fn process_started(&mut self, index: usize, started: Result<(), String>) {
        let slot = &mut self.slots[index];
        match started {
            Ok(()) if self.stopping => {
                slot.phase = Phase::Killing(None);
                self.actions.push_back(Action::Kill { slot: index });
            }
            Ok(()) => slot.phase = Phase::Booting,
            Err(why) => {
                slot.failures += 1;
                self.restart(index, Some(why));
            }
        }
    }

    /// The slot said hello: it is ready for tasks. Returns whether this was its first hello.
    pub fn hello(&mut self, index: usize, now: Instant) -> bool {
        let slot = &mut self.slots[index];
        if matches!(slot.phase, Phase::Booting) {
            slot.phase = Phase::Ready;
        } else {
            warn!("slot {index} said hello twice");
        }
        let first = !slot.announced;
        slot.announced = true;
        self.dispatch(now);
        first
    }

    /// The slot skipped these tasks it was asked to cancel (reported `Killed` already).
    pub fn skipped(&mut self, index: usize, attempts: &[AttemptId]) {
        let slot = &mut self.slots[index];
        if !matches!(slot.phase, Phase::Ready | Phase::Killing(Some(_))) {
            return;
        }
        let mut back = Vec::new();
        slot.hand.retain_mut(|h| {
            if !attempts.contains(&h.id()) {
                return true;
            }
            if !h.cancelled {
                // Not asked for: slot.py skips only what it was told to; run it elsewhere.
                warn!(task = %h.assignment.task, "slot {index} skipped a task it was not asked to");
                back.push(h.assignment.clone());
            }
            false
        });
        for assignment in back.into_iter().rev() {
            self.queue.push_front(assignment);
        }
    }

    /// The slot skipped these held tasks, in order, because a task their `needs` named had not
    /// completed there (see `waits`); each was the front of its hand, in place of a `done`, and
    /// the next one begins now. They go back to the queue, where they wait as before (doomed by
    /// the report of the task that did not complete) until the coordinator kills them or takes
    /// them back.
    pub fn unmet(&mut self, index: usize, attempts: &[AttemptId], now: Instant) {
        let mut back = Vec::new();
        for &id in attempts {
            let slot = &mut self.slots[index];
            if !matches!(slot.phase, Phase::Ready | Phase::Killing(Some(_))) {
                continue;
            }
            let Some(at) = slot.hand.iter().position(|h| h.id() == id) else {
                warn!(task = %id.0, "slot {index} skipped a task it does not hold");
                continue;
            };
            if at != 0 {
                warn!(task = %id.0, "slot {index} skipped a task that was not its next");
            }
            let handed = slot.hand.remove(at).expect("the index is in the hand");
            slot.began = None;
            if !handed.cancelled {
                back.push(handed.assignment);
            }
        }
        for assignment in back.into_iter().rev() {
            self.queue.push_front(assignment);
        }
        self.settle(index, now);
        self.dispatch(now);
    }

    /// The slot reported these tasks, in order; each was the front of its hand, and the next one
    /// begins now.
    pub fn done(&mut self, index: usize, reports: Vec<Report>, now: Instant) {
        self.slots[index].ran = true;
        for report in reports {
            self.done_one(index, report, now);
        }
        self.settle(index, now);
        self.dispatch(now);
    }

    fn done_one(&mut self, index: usize, report: Report, now: Instant) {
        let id = (report.task, report.attempt);
        let Some(report) = self.done_together(index, report) else {
            return;
        };
        let slot = &mut self.slots[index];
        match &mut slot.phase {
            Phase::Ready if slot.hand.front().map(Handed::id) == Some(id) => {
                let handed = slot.hand.pop_front().expect("the front was just seen");
                if let Some(began) = slot.began.take() {
                    hand_out::learn(
                        &mut self.durations,
                        &handed.assignment.spec.function,
                        now.saturating_duration_since(began),
                    );
                }
                slot.failures = 0;
                // The next task begins now; its `began` is set by `settle`.
                self.push_report(report, None);
            }
            // Abandoned (the connection dropped) or shut down after it finished: the result is
            // true, so it is reported; the coordinator records it only if this attempt is still
            // the task's current one, and otherwise logs it as ignored.
            Phase::Killing(None) => self.push_report(report, None),
            Phase::Killing(Some(stop)) => {
                if stop.target == id {
                    // It finished as the kill was sent: the kill stands, but the slot went on.
                    stop.passed = true;
                } else if stop.passed && slot.hand.front().map(Handed::id) == Some(id) {
                    // A task behind it ran to its end before the SIGKILL landed: a true result.
                    let handed = slot.hand.pop_front().expect("the front was just seen");
                    if !handed.cancelled {
                        self.push_report(report, None);
                    }
                } else {
                    warn!(task = %report.task, attempt = %report.attempt, "slot {index} reported a task it was not running");
                }
            }
            _ => {
                warn!(task = %report.task, attempt = %report.attempt, "slot {index} reported a task it was not running");
            }
        }
    }

    /// After a slot's report: its next task has begun. One cancelled after the slot began it
    /// must be stopped now.
    fn settle(&mut self, index: usize, now: Instant) {
        let slot = &mut self.slots[index];
        if !matches!(slot.phase, Phase::Ready) {
            return;
        }
        match slot.hand.front() {
            None => slot.began = None,
            Some(front) if front.cancelled => {
                debug!(task = %front.assignment.task, "slot {index} began a task cancelled meanwhile; killing it");
                let target = front.id();
                slot.hand.pop_front();
                slot.began = None;
                slot.phase = Phase::Killing(Some(Stop {
                    target,
                    outcome: None,
                    passed: false,
                }));
                self.actions.push_back(Action::Kill { slot: index });
            }
            Some(_) => {
                if slot.began.is_none() {
                    slot.began = Some(now);
                }
            }
        }
    }

    /// The last `count` tasks handed to `index` (`together` or in order, as the `Hand` said) did
    /// not reach it: its process is gone (its exit is on the way). They go back to the queue.
    pub fn hand_failed(&mut self, index: usize, count: usize, together: bool, now: Instant) {
        if together {
            self.together_hand_failed(index, count, now);
            return;
        }
        let slot = &mut self.slots[index];
        if !matches!(slot.phase, Phase::Ready) || slot.broken || slot.hand.len() < count {
            // Its exit or a kill came first (in the same turn) and settles the hand.
            return;
        }
        let keep = slot.hand.len().saturating_sub(count);
        let lost: Vec<Handed> = slot.hand.drain(keep..).collect();
        for handed in lost.into_iter().rev() {
            self.queue.push_front(handed.assignment);
        }
        warn!("slot {index} died between tasks");
        if slot.hand.is_empty() {
            slot.began = None;
            slot.failures += 1;
            slot.phase = Phase::Killing(None);
        } else {
            // Its front was running: the exit reports it crashed.
            slot.broken = true;
        }
        self.actions.push_back(Action::Kill { slot: index });
        self.dispatch(now);
    }

    /// The slot's process is gone (`how`: as `describe_exit` says it). Reports what it was
    /// running, gives what it held back to the queue, and starts a fresh process.
    pub fn exited(&mut self, index: usize, how: &str, now: Instant) {
        let together = self.together_exited(index, how);
        let slot = &mut self.slots[index];
        let why = match std::mem::take(&mut slot.phase) {
            Phase::Ready if together > 0 => Some(format!(
                "slot {index} {how} while running {together} task{} together",
                if together == 1 { "" } else { "s" }
            )),
            Phase::Ready => match slot.hand.pop_front() {
                Some(front) => {
                    let id = front.id();
                    self.requeue_hand(index);
                    let error = failures::slot_crashed(how);
                    self.report(id, Outcome::Failed { error }, Some(index));
                    Some(format!(
                        "slot {index} {how} while running task {} (attempt {})",
                        id.0, id.1
                    ))
                }
                None => {
                    slot.failures += 1;
                    Some(format!("slot {index} {how} between tasks"))
                }
            },
            Phase::Killing(None) => {
                self.requeue_hand(index);
                None
            }
            Phase::Killing(Some(stop)) => {
                if let Some(outcome) = stop.outcome {
                    // Once the slot passed it, the capture files hold the next task's output.
                    let output_of = (!stop.passed).then_some(index);
                    self.report(stop.target, outcome, output_of);
                }
                if stop.passed {
                    // The slot went on to its next task, which may have begun: killed with the
                    // slot, it is reported crashed rather than run again unasked.
                    if let Some(next) = self.slots[index].hand.pop_front() {
                        if !next.cancelled {
                            let error = failures::slot_crashed(how);
                            self.report(next.id(), Outcome::Failed { error }, Some(index));
                        }
                    }
                }
                self.requeue_hand(index);
                None
            }
            Phase::Booting => {
                slot.failures += 1;
                Some(format!(
                    "slot {index} {how} before it was ready (its output above may say why)"
                ))
            }
            phase @ (Phase::Starting | Phase::Dead) => {
                debug!("slot {index} reported an exit in no running state");
                slot.phase = phase;
                return;
            }
        };
        self.restart(index, why);
        self.dispatch(now);
    }

    /// The earliest deadline of a running task, if any has one.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|slot| deadline(slot).map(|(at, _)| at))
            .chain(self.slots.iter().filter_map(together::next_deadline))
            .min()
    }

    /// Stops every task whose deadline is `now` or past, to be reported as timed out when its
    /// slot's exit arrives.
    pub fn time_out(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            self.time_out_together(index, now);
            let Some((at, limit)) = deadline(&self.slots[index]) else {
                continue;
            };
            if at > now {
                continue;
            }
            let error = failures::timed_out(limit);
            if let Some(front) = self.slots[index].hand.front() {
                info!(
                    "task {} (attempt {}) in slot {index}: {}",
                    front.assignment.task, front.assignment.attempt, error.message
                );
            }
            self.stop_front(index, Outcome::Failed { error });
        }
        self.dispatch(now);
    }

    /// Starts a fresh process for `index` after the back-off its failures call for.
    fn start(&mut self, index: usize) -> Duration {
        let slot = &mut self.slots[index];
        let delay = RESTART.delay(slot.failures);
        slot.phase = Phase::Starting;
        slot.hand.clear();
        slot.together.clear();
        slot.replaced_for = None;
        slot.began = None;
        slot.broken = false;
        slot.ran = false;
        slot.over = None;
        self.actions.push_back(Action::Start { slot: index, delay });
        delay
    }

    /// Replaces the process of a slot that lost it, unless the pool is stopping; `why`, if any,
    /// is logged in one line with the back-off.
    fn restart(&mut self, index: usize, why: Option<String>) {
        if self.stopping {
            self.slots[index].phase = Phase::Dead;
            return;
        }
        let delay = self.start(index);
        match why {
            Some(why) if delay.is_zero() => warn!("{why}; starting a fresh slot"),
            Some(why) => warn!(
                "{why}; starting a fresh slot in {:.1} s",
                delay.as_secs_f64()
            ),
            None => {}
        }
    }

    fn report(&mut self, (task, attempt): AttemptId, outcome: Outcome, output_of: Option<usize>) {
        let report = Report {
            task,
            attempt,
            outcome,
            output: TaskOutput::default(),
        };
        self.push_report(report, output_of);
    }

    /// Queues `report` for the session; the tasks waiting for its task learn how it ended
    /// (`waits`). Every report goes through here.
    fn push_report(&mut self, report: Report, output_of: Option<usize>) {
        if matches!(report.outcome, Outcome::Completed { .. }) {
            self.waits.ended(report.task, true, None);
        } else {
            self.waits.ended(report.task, false, Some(Instant::now()));
        }
        self.actions.push_back(Action::Report { report, output_of });
    }
}

/// When the front task of `slot` must end, and its timeout.
fn deadline(slot: &Slot) -> Option<(Instant, Duration)> {
    if !matches!(slot.phase, Phase::Ready) {
        return None;
    }
    let front = slot.hand.front()?;
    let limit = Duration::from_millis(front.assignment.spec.policy.timeout_ms?);
    // One too large to reach is no timeout.
    Some((slot.began?.checked_add(limit)?, limit))
}

mod hand_out;
mod memory;
mod together;
mod waits;

pub use memory::MemoryCounts;

pub use hand_out::{FAST, HAND_MAX, SHORT};
use together::Together;
pub use together::GRACE;
use waits::Waits;

#[cfg(test)]
mod tests;
