//! `Scheduler`: the one owner of dispatch, as a plain struct with `now` passed in.
//!
//! It holds the connected workers (hello, the queues they serve, slots, draining, held off,
//! done counts, which functions are coroutines there) and the flights: every attempt handed to
//! a worker and not yet reported, with its queue and whether a slot has started it. From those
//! it decides who gets the next ready task of a queue (the least-loaded worker serving that
//! queue with room, where room includes a prefetch depth sized from the function's average
//! duration, `prefetch` and `durations`), how many tasks of each queue are assigned (for queue
//! limits), which queued attempts to take back when a worker sits idle with nothing ready in
//! its queues, and whether a report, heartbeat or `Started` names an attempt its worker holds.
//!
//! Load is counted in units: a slot is `async_concurrency` units; a task takes a whole slot,
//! except a task of a function the worker has found to be a coroutine function
//! (`FromWorker::Coroutines`), which takes one unit, so that a slot's event loop runs up to
//! `async_concurrency` of them at once. With the default concurrency of 1, a unit is a slot.
//! Prefetch room is counted in the same units (`slots × units per slot × (1 + depth)`).
//!
//! The `TaskTable` owns the tasks and is told what the scheduler decided; the task actor
//! (`tasks.rs`) holds both, so a slot's count lives in one place and no message goes back and
//! forth between actors to keep two counts in step. Tested without channels or sockets
//! (`scheduler/tests.rs`), as HyperQueue tests tako's core.

mod durations;
pub mod prefetch;
#[cfg(test)]
mod tests;

use crate::flaps::Flaps;
use crate::queues::QueueId;
use durations::Durations;
pub use durations::FunctionId;
use rustc_hash::FxHashSet;
use std::collections::{BTreeMap, HashMap};
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::handshake::WorkerHello;
use tatzelwurm_proto::limits::MAX_ATTEMPTS_PER_FRAME;
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::worker::WorkerUsage;
use tatzelwurm_proto::{Attempt, TaskId, WorkerId};

/// An attempt, as flights, reports and take-backs name it.
pub type Key = (TaskId, Attempt);

/// One connected worker.
#[derive(Debug)]
struct Worker {
    /// What it said in its hello.
    hello: WorkerHello,
    /// Where it connected from.
    address: String,
    /// The queues it serves, sorted.
    queues: Vec<QueueId>,
    /// Units of one slot: its `async_concurrency`, at least 1.
    per_slot: u32,
    /// Units of load it holds (see the module comment).
    load: u64,
    /// Of `load`, the units of attempts no slot has started yet.
    unstarted_load: u64,
    /// When it connected.
    connected_at: Timestamp,
    /// Attempts it holds (running or queued): its load.
    assigned: u32,
    /// Of `assigned`, those no slot has started yet (queued in the worker).
    unstarted: u32,
    /// The spec bytes of the unstarted ones (see `prefetch::MAX_QUEUED_BYTES_PER_SLOT`).
    unstarted_bytes: u64,
    /// Attempts it reported since it connected.
    done: u64,
    /// It is shutting down gently: it finishes what it holds and gets nothing new.
    draining: bool,
    /// Its name keeps dropping its connections (see `flaps`): nothing before this time.
    held_off_until: Option<Timestamp>,
    /// A `TakeBack` was sent and its `Returned` has not come: no second one meanwhile.
    taking_back: bool,
    /// Functions it found to be coroutine functions (`FromWorker::Coroutines`).
    coroutines: FxHashSet<FunctionId>,
    /// What its slots use, as it last said (`FromWorker::Usage`), for `worker list`.
    usage: Option<WorkerUsage>,
}

impl Worker {
    /// Whether it may be given work at `now`.
    fn open(&self, now: Timestamp) -> bool {
        !self.draining && self.held_off_until.is_none_or(|until| until <= now)
    }

    /// Whether it serves `queue`.
    fn serves(&self, queue: QueueId) -> bool {
        self.queues.binary_search(&queue).is_ok()
    }

    /// Its slots in units.
    fn capacity(&self) -> u64 {
        u64::from(self.hello.slots) * u64::from(self.per_slot)
    }

    /// Units with nothing in them, not even an attempt about to start.
    fn free_units(&self) -> u64 {
        self.capacity().saturating_sub(self.load)
    }

    /// The units a task of `function` takes here: one for a coroutine function it named, a
    /// whole slot otherwise (`None`: no worker named any, so a slot).
    fn cost(&self, function: Option<FunctionId>) -> u64 {
        match function {
            Some(f) if !self.coroutines.is_empty() && self.coroutines.contains(&f) => 1,
            _ => u64::from(self.per_slot),
        }
    }

    /// Whether it has room for one more task of `function` (prefetch `depth`): free units for
    /// it, or a load short of `capacity × (1 + depth)` with queued specs of less than
    /// `slots × MAX_QUEUED_BYTES_PER_SLOT`.
    fn has_room(&self, function: FunctionId, depth: u32) -> bool {
        let cost = self.cost(Some(function));
        let room = self.capacity() * (1 + u64::from(depth));
        self.free_units() >= cost
            || (self.load + cost <= room
                && self.unstarted_bytes
                    < u64::from(self.hello.slots) * prefetch::MAX_QUEUED_BYTES_PER_SLOT)
    }

    /// Units of queued attempts that its own free units will not start: what another worker
    /// could run.
    fn surplus(&self) -> u64 {
        let started = self.load - self.unstarted_load;
        let idle = self.capacity().saturating_sub(started);
        self.unstarted_load.saturating_sub(idle)
    }
}

/// An attempt handed to a worker and not yet reported.
#[derive(Debug, Clone, Copy)]
struct Flight {
    /// The worker connection that holds it.
    worker: WorkerId,
    /// When a slot started it (`Started`, or its report); `None` while queued. Only a started
    /// attempt counts as a crash when its worker is lost, and only it is measured.
    started_at: Option<Timestamp>,
    /// The function it runs, for the duration average.
    function: FunctionId,
    /// The order it was handed in: a take-back takes the newest.
    seq: u64,
    /// The size of its spec, counted in its worker's `unstarted_bytes` until it starts.
    bytes: u32,
    /// Its task's queue, for the queue's assigned count.
    queue: QueueId,
    /// The units of load it takes on its worker.
    units: u32,
}

/// A `TakeBack` to send: `worker` gives back `attempts` if no slot has started them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeBack {
    /// The worker that holds them queued.
    pub worker: WorkerId,
    /// Its newest queued attempts.
    pub attempts: Vec<Key>,
}

/// The workers, the flights and the dispatch rules. See the module comment.
#[derive(Debug)]
pub struct Scheduler {
    workers: BTreeMap<WorkerId, Worker>,
    flights: HashMap<Key, Flight>,
    /// The next worker connection id (per connection, never reused while running).
    next_id: u64,
    /// The next flight's `seq`.
    next_seq: u64,
    /// The worker chosen last; ties in load go to the next one after it, so they rotate.
    last_chosen: WorkerId,
    /// Names that keep connecting and dropping, held off for a while.
    flaps: Flaps,
    /// How long each function's attempts take.
    durations: Durations,
    /// Attempts in flight per queue (queued or running), for queue limits; by `QueueId`.
    assigned_by_queue: Vec<u32>,
    /// Connected workers that named a coroutine function: while there are none, a dispatch
    /// needs no function to choose a slot.
    coroutine_workers: usize,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            workers: BTreeMap::new(),
            flights: HashMap::new(),
            next_id: 1,
            next_seq: 0,
            last_chosen: WorkerId(0),
            flaps: Flaps::default(),
            durations: Durations::default(),
            assigned_by_queue: Vec::new(),
            coroutine_workers: 0,
        }
    }
}

impl Scheduler {
    /// Adds a worker serving `queues` (its hello's, numbered by the task table) with a fresh
    /// id; returns it with until when the worker gets nothing (its name keeps dropping its
    /// connections), if it is held off.
    pub fn register(
        &mut self,
        hello: WorkerHello,
        mut queues: Vec<QueueId>,
        address: String,
        now: Timestamp,
    ) -> (WorkerId, Option<Timestamp>) {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        let held_off_until = self.flaps.held_until(&hello.name, now);
        queues.sort_unstable();
        queues.dedup();
        let per_slot = hello.async_concurrency.max(1);
        self.workers.insert(
            id,
            Worker {
                hello,
                address,
                queues,
                per_slot,
                load: 0,
                unstarted_load: 0,
                connected_at: now,
                assigned: 0,
                unstarted: 0,
                unstarted_bytes: 0,
                done: 0,
                draining: false,
                held_off_until,
                taking_back: false,
                coroutines: Default::default(),
                usage: None,
            },
        );
        (id, held_off_until)
    }

    /// Forgets a worker whose connection ended at `now` (a quick end without a drain counts
    /// against its name, `flaps`) and returns the attempts it held, each with whether a slot
    /// had started it, for the table's `lost`.
    pub fn remove(&mut self, id: WorkerId, now: Timestamp) -> Vec<(Key, bool)> {
        let Some(worker) = self.workers.remove(&id) else {
            return Vec::new();
        };
        self.flaps.ended(
            &worker.hello.name,
            worker.connected_at,
            now,
            worker.draining,
        );
        if !worker.coroutines.is_empty() {
            self.coroutine_workers -= 1;
        }
        if worker.assigned == 0 {
            return Vec::new();
        }
        let mut lost = Vec::with_capacity(worker.assigned as usize);
        let by_queue = &mut self.assigned_by_queue;
        self.flights.retain(|key, flight| {
            let held = flight.worker == id;
            if held {
                lost.push((*key, flight.started_at.is_some()));
                by_queue[flight.queue.index()] -= 1;
            }
            !held
        });
        lost.sort_unstable();
        lost
    }

    /// Marks a worker as draining: nothing new goes to it. Returns how many attempts it still
    /// holds, or `None` if it is not connected.
    pub fn drain(&mut self, id: WorkerId) -> Option<u32> {
        let worker = self.workers.get_mut(&id)?;
        worker.draining = true;
        Some(worker.assigned)
    }

    /// Records what `worker`'s slots use now (its latest `FromWorker::Usage`), which
    /// `worker list` shows; `false` if it is not connected. Only the latest is kept.
    pub fn set_usage(&mut self, worker: WorkerId, usage: WorkerUsage) -> bool {
        match self.workers.get_mut(&worker) {
            Some(w) => {
                w.usage = Some(usage);
                true
            }
            None => false,
        }
    }

    /// The connected workers that `name_or_id` names, in connection order: those of that name
    /// (several connections may share one), or the one with that connection id when it is a
    /// number no worker is named (`actionwurm worker drain NAME`).
    pub fn named(&self, name_or_id: &str) -> Vec<WorkerId> {
        let by_name: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.hello.name == name_or_id)
            .map(|(id, _)| *id)
            .collect();
        if !by_name.is_empty() {
            return by_name;
        }
        match name_or_id.trim().parse::<u64>() {
            Ok(id) if self.workers.contains_key(&WorkerId(id)) => vec![WorkerId(id)],
            _ => Vec::new(),
        }
    }

    /// A worker's name, recorded on the tasks it gets.
    pub fn name(&self, id: WorkerId) -> Option<&str> {
        self.workers.get(&id).map(|w| w.hello.name.as_str())
    }

    /// The interned id of `function`, which `choose`, `choose_slot` and `hand` take (one
    /// lookup per task).
    pub fn function(&mut self, function: &str) -> FunctionId {
        self.durations.intern(function)
    }

    /// Whether some connected worker named a coroutine function: only then does the choice of
    /// a free slot depend on the task's function (`choose_slot`).
    pub fn has_coroutines(&self) -> bool {
        self.coroutine_workers > 0
    }

    /// Chooses the worker for the next ready task of `queue`, which runs `function` (`None`
    /// when no worker has coroutines), when it must start now (it may not wait in a worker's
    /// queue, or nobody's has room for it): the least-loaded open worker serving `queue` with
    /// free units for it (see `pick`). `None`: every slot of that queue's workers is taken.
    pub fn choose_slot(
        &mut self,
        queue: QueueId,
        function: Option<FunctionId>,
        now: Timestamp,
    ) -> Option<WorkerId> {
        self.pick(now, |w| {
            w.serves(queue) && w.free_units() >= w.cost(function)
        })
    }

    /// Chooses the worker for the next ready task of `queue`, which runs `function`, free
    /// slots or prefetch: the least-loaded open worker serving `queue` with room, where room
    /// is free units for it, or a load short of `capacity × (1 + depth)` (the function's
    /// prefetch depth) with queued specs of less than `slots × MAX_QUEUED_BYTES_PER_SLOT`.
    /// `None`: every worker of the queue is full for this function.
    pub fn choose(
        &mut self,
        queue: QueueId,
        function: FunctionId,
        now: Timestamp,
    ) -> Option<WorkerId> {
        let depth = prefetch::depth(self.durations.measured_id(function));
        self.pick(now, |w| w.serves(queue) && w.has_room(function, depth))
    }

    /// Whether `worker` may take one more attempt of `queue`'s tasks running `function` the
    /// way `choose` decides (open, serving `queue`, with room), for a held task, which can go
    /// only to the worker that holds its dependencies (`TaskTable::hold_target`).
    pub fn room_on(
        &self,
        worker: WorkerId,
        queue: QueueId,
        function: FunctionId,
        now: Timestamp,
    ) -> bool {
        let Some(w) = self.workers.get(&worker) else {
            return false;
        };
        let depth = prefetch::depth(self.durations.measured_id(function));
        w.open(now) && w.serves(queue) && w.has_room(function, depth)
    }

    /// How many attempts of `queue`'s tasks are in flight (queued on a worker or running), for
    /// the queue's limit.
    pub fn assigned_in(&self, queue: QueueId) -> u32 {
        self.assigned_by_queue
            .get(queue.index())
            .copied()
            .unwrap_or(0)
    }

    /// Whether a connected worker serves `queue` (which makes the queue known).
    pub fn serves(&self, queue: QueueId) -> bool {
        self.workers.values().any(|w| w.serves(queue))
    }

    /// The names of the connected workers that serve `queue`, in connection order.
    pub fn workers_of(&self, queue: QueueId) -> Vec<String> {
        self.workers
            .values()
            .filter(|w| w.serves(queue))
            .map(|w| w.hello.name.clone())
            .collect()
    }

    /// Every queue some connected worker serves.
    pub fn served(&self) -> Vec<QueueId> {
        let mut queues: Vec<QueueId> = self
            .workers
            .values()
            .flat_map(|w| w.queues.iter().copied())
            .collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }

    /// Among the workers that are neither draining nor held off at `now` and pass `room`, the
    /// least loaded (load / capacity, in units); among equals, the first after the one chosen
    /// last, so that ties rotate.
    fn pick(&mut self, now: Timestamp, room: impl Fn(&Worker) -> bool) -> Option<WorkerId> {
        let open = self.workers.iter().filter(|(_, w)| w.open(now) && room(w));
        let after = open
            .clone()
            .filter(|(id, _)| **id > self.last_chosen)
            .chain(open.filter(|(id, _)| **id <= self.last_chosen));
        let mut best: Option<(WorkerId, &Worker)> = None;
        for (id, w) in after {
            let lighter = match best {
                None => true,
                // a/b < c/d  <=>  a*d < c*b, with capacities > 0.
                Some((_, b)) => {
                    u128::from(w.load) * u128::from(b.capacity())
                        < u128::from(b.load) * u128::from(w.capacity())
                }
            };
            if lighter {
                best = Some((*id, w));
            }
        }
        let (id, _) = best?;
        self.last_chosen = id;
        Some(id)
    }

    /// Records that `worker` was handed attempt `key` of a task of `queue` running
    /// `function`, whose spec takes `bytes`: it counts toward the worker's load (its units
    /// there) and the queue's assigned count, queued until a slot starts it.
    pub fn hand(
        &mut self,
        worker: WorkerId,
        key: Key,
        queue: QueueId,
        function: FunctionId,
        bytes: usize,
    ) {
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let units = w.cost(Some(function));
        w.assigned += 1;
        w.unstarted += 1;
        w.load += units;
        w.unstarted_load += units;
        w.unstarted_bytes += u64::from(bytes);
        if self.assigned_by_queue.len() <= queue.index() {
            self.assigned_by_queue.resize(queue.index() + 1, 0);
        }
        self.assigned_by_queue[queue.index()] += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.flights.insert(
            key,
            Flight {
                worker,
                started_at: None,
                function,
                seq,
                bytes,
                queue,
                units: units as u32,
            },
        );
    }

    /// The worker says slots start these attempts now: from here on, losing the worker counts
    /// as a crash of their tasks, and their duration is measured. Returns how many are not
    /// handed to it (ignored).
    pub fn started(&mut self, worker: WorkerId, attempts: &[Key], now: Timestamp) -> usize {
        let mut ignored = 0;
        for key in attempts {
            match self.flights.get_mut(key) {
                Some(flight) if flight.worker == worker => {
                    if flight.started_at.is_none() {
                        flight.started_at = Some(now);
                        if let Some(w) = self.workers.get_mut(&worker) {
                            w.unstarted -= 1;
                            w.unstarted_load -= u64::from(flight.units);
                            w.unstarted_bytes -= u64::from(flight.bytes);
                        }
                    }
                }
                _ => ignored += 1,
            }
        }
        ignored
    }

    /// A worker reported attempt `key`: whether it held it (then the flight ends, its slot is
    /// free and it counts as done). `measure` adds the attempt's duration to its function's
    /// average (an attempt that ran to its end; not a kill).
    pub fn report(&mut self, worker: WorkerId, key: Key, measure: bool, now: Timestamp) -> bool {
        match self.flights.get(&key) {
            Some(flight) if flight.worker == worker => {}
            _ => return false,
        }
        let flight = self.flights.remove(&key).expect("checked above");
        self.assigned_by_queue[flight.queue.index()] -= 1;
        if let Some(w) = self.workers.get_mut(&worker) {
            w.assigned -= 1;
            w.load -= u64::from(flight.units);
            if flight.started_at.is_none() {
                w.unstarted -= 1;
                w.unstarted_load -= u64::from(flight.units);
                w.unstarted_bytes -= u64::from(flight.bytes);
            }
            w.done += 1;
        }
        if let (true, Some(started)) = (measure, flight.started_at) {
            self.durations
                .sample(flight.function, now.0.saturating_sub(started.0));
        }
        true
    }

    /// `worker` found `functions` to be coroutine functions: their tasks take one unit of a
    /// slot there from now on (attempts it already holds keep what they took).
    pub fn coroutines(&mut self, worker: WorkerId, functions: &[String]) {
        let ids: Vec<FunctionId> = functions
            .iter()
            .map(|function| self.durations.intern(function))
            .collect();
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        if w.coroutines.is_empty() && !ids.is_empty() {
            self.coroutine_workers += 1;
        }
        w.coroutines.extend(ids);
    }

    /// The worker that holds attempt `key`, where a kill of it must go.
    pub fn holder(&self, key: Key) -> Option<WorkerId> {
        self.flights.get(&key).map(|f| f.worker)
    }

    /// Checks a worker's heartbeat: the attempts it names that it does not hold (fenced or
    /// unknown), which it should stop.
    pub fn stale(&self, worker: WorkerId, running: &[Key]) -> Vec<Key> {
        running
            .iter()
            .filter(|key| self.holder(**key) != Some(worker))
            .copied()
            .collect()
    }

    /// Chooses what to take back: if some open worker has a free slot while the queues it
    /// serves have nothing to give it (`nothing_ready`), and other workers hold queued attempts
    /// of those queues that their own slots will not start soon, each such worker (the
    /// fullest first, none with a take-back already under way) is asked for its newest queued
    /// attempts of those queues that `may_take` allows (not held tasks nor their dependencies): half of its surplus, or enough for the idle slots if that is
    /// more, until the idle slots are covered. Those attempts stay in flight until `returned`.
    pub fn take_backs(
        &mut self,
        now: Timestamp,
        nothing_ready: impl Fn(QueueId) -> bool,
        may_take: impl Fn(Key) -> bool,
    ) -> Vec<TakeBack> {
        let mut idle: u64 = 0;
        let mut wanted: Vec<QueueId> = Vec::new();
        for w in self.workers.values() {
            let free = w.free_units() / u64::from(w.per_slot);
            if free == 0 || !w.open(now) {
                continue;
            }
            let before = wanted.len();
            wanted.extend(w.queues.iter().copied().filter(|q| nothing_ready(*q)));
            if wanted.len() > before {
                idle += free;
            }
        }
        if idle == 0 {
            return Vec::new();
        }
        wanted.sort_unstable();
        wanted.dedup();
        let mut victims: Vec<(u64, WorkerId)> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.taking_back && w.surplus() > 0)
            .map(|(id, w)| (w.surplus(), *id))
            .collect();
        if victims.is_empty() {
            return Vec::new();
        }
        victims.sort_unstable_by(|a, b| b.cmp(a));
        let mut orders = Vec::new();
        let mut covered = 0;
        for (surplus, id) in victims {
            if covered >= idle {
                break;
            }
            let per_slot = u64::from(self.workers[&id].per_slot);
            let units = surplus.div_ceil(2).max((idle * per_slot).min(surplus));
            let mut queued: Vec<(u64, Key, u32)> = self
                .flights
                .iter()
                .filter(|(_, f)| {
                    f.worker == id
                        && f.started_at.is_none()
                        && wanted.binary_search(&f.queue).is_ok()
                })
                .filter(|(key, _)| may_take(**key))
                .map(|(key, f)| (f.seq, *key, f.units))
                .collect();
            queued.sort_unstable_by(|a, b| b.cmp(a));
            let mut taken = 0u64;
            let mut attempts = Vec::new();
            for (_, key, units_of) in queued {
                if taken >= units || attempts.len() >= MAX_ATTEMPTS_PER_FRAME {
                    break;
                }
                taken += u64::from(units_of);
                attempts.push(key);
            }
            if attempts.is_empty() {
                continue;
            }
            covered += taken.div_ceil(per_slot);
            self.workers
                .get_mut(&id)
                .expect("a victim exists")
                .taking_back = true;
            orders.push(TakeBack {
                worker: id,
                attempts,
            });
        }
        orders
    }

    /// The worker answered a take-back with the attempts it dropped unstarted: their flights
    /// end (no slot was used, nothing counts as done) and they are returned for the table's
    /// `returned`. A worker gives back held tasks whose dependencies did not complete there
    /// unasked, in the same message. Attempts it does not hold queued are left out, except
    /// started ones that `held` allows (those of tasks that run after others: a held task a slot skipped because a dependency did not complete there goes
    /// back to the worker's queue). A further take-back may go to it from now on.
    pub fn returned(
        &mut self,
        worker: WorkerId,
        attempts: &[Key],
        held: impl Fn(Key) -> bool,
    ) -> Vec<Key> {
        let Some(w) = self.workers.get_mut(&worker) else {
            return Vec::new();
        };
        w.taking_back = false;
        let mut given = Vec::with_capacity(attempts.len());
        for key in attempts {
            match self.flights.get(key) {
                // A started one only if `held` allows (a held task its slot skipped because a
                // dependency did not complete there); a worker returns only what no slot runs.
                Some(f) if f.worker == worker && (f.started_at.is_none() || held(*key)) => {
                    w.assigned -= 1;
                    w.load -= u64::from(f.units);
                    if f.started_at.is_none() {
                        w.unstarted -= 1;
                        w.unstarted_load -= u64::from(f.units);
                        w.unstarted_bytes -= u64::from(f.bytes);
                    }
                    self.assigned_by_queue[f.queue.index()] -= 1;
                    self.flights.remove(key);
                    given.push(*key);
                }
                _ => {}
            }
        }
        given
    }

    /// What `worker list` shows.
    pub fn list(&self) -> Vec<WorkerInfo> {
        self.workers
            .iter()
            .map(|(id, w)| WorkerInfo {
                id: *id,
                name: w.hello.name.clone(),
                address: w.address.clone(),
                slots: w.hello.slots,
                running: w.assigned,
                queued: w.unstarted,
                done: w.done,
                python: w.hello.python.clone(),
                connected_at: w.connected_at,
                queues: w.hello.queues.clone(),
                async_concurrency: w.hello.async_concurrency,
                draining: w.draining,
                held_off_until: w.held_off_until,
                usage: w.usage.clone(),
            })
            .collect()
    }

    /// The average duration of `function` in ms, if measured (for tests and the log).
    pub fn average(&self, function: &str) -> Option<f64> {
        self.durations.average(function)
    }
}
