//! `Scheduler`: the one owner of dispatch, as a plain struct with `now` passed in.
//!
//! It holds the connected workers (hello, slots, draining, held off, done counts) and the
//! flights: every attempt handed to a worker and not yet reported, with whether a slot has
//! started it. From those it decides who gets the next ready task (the least-loaded worker with
//! room, where room includes a prefetch depth sized from the function's average duration,
//! `prefetch` and `durations`), which queued attempts to take back when a worker sits idle with
//! nothing ready, and whether a report, heartbeat or `Started` names an attempt its worker
//! holds. The `TaskTable` owns the tasks and is told what the scheduler decided; the task actor
//! (`tasks.rs`) holds both, so a slot's count lives in one place and no message goes back and
//! forth between actors to keep two counts in step. Tested without channels or sockets
//! (`scheduler/tests.rs`), as HyperQueue tests tako's core.

mod durations;
pub mod prefetch;
#[cfg(test)]
mod tests;

use crate::flaps::Flaps;
use durations::{Durations, FunctionId};
use std::collections::{BTreeMap, HashMap};
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::handshake::WorkerHello;
use tatzelwurm_proto::limits::MAX_ATTEMPTS_PER_FRAME;
use tatzelwurm_proto::task::Timestamp;
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
}

impl Worker {
    /// Whether it may be given work at `now`.
    fn open(&self, now: Timestamp) -> bool {
        !self.draining && self.held_off_until.is_none_or(|until| until <= now)
    }

    /// Slots with nothing in them, not even an attempt about to start.
    fn free_slots(&self) -> u32 {
        self.hello.slots.saturating_sub(self.assigned)
    }

    /// Queued attempts that its own free slots will not start: what another worker could run.
    fn surplus(&self) -> u32 {
        let started = self.assigned - self.unstarted;
        let idle = self.hello.slots.saturating_sub(started);
        self.unstarted.saturating_sub(idle)
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
        }
    }
}

impl Scheduler {
    /// Adds a worker with a fresh id; returns it with until when the worker gets nothing (its
    /// name keeps dropping its connections), if it is held off.
    pub fn register(
        &mut self,
        hello: WorkerHello,
        address: String,
        now: Timestamp,
    ) -> (WorkerId, Option<Timestamp>) {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        let held_off_until = self.flaps.held_until(&hello.name, now);
        self.workers.insert(
            id,
            Worker {
                hello,
                address,
                connected_at: now,
                assigned: 0,
                unstarted: 0,
                unstarted_bytes: 0,
                done: 0,
                draining: false,
                held_off_until,
                taking_back: false,
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
        if worker.assigned == 0 {
            return Vec::new();
        }
        let mut lost = Vec::with_capacity(worker.assigned as usize);
        self.flights.retain(|key, flight| {
            let held = flight.worker == id;
            if held {
                lost.push((*key, flight.started_at.is_some()));
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

    /// A worker's name, recorded on the tasks it gets.
    pub fn name(&self, id: WorkerId) -> Option<&str> {
        self.workers.get(&id).map(|w| w.hello.name.as_str())
    }

    /// Chooses the worker for the next ready task when it must start now (it may not wait in
    /// a queue, or nobody's queue has room for it): the least-loaded open worker with a free
    /// slot (see `pick`). `None`: every slot is taken.
    pub fn choose_slot(&mut self, now: Timestamp) -> Option<WorkerId> {
        self.pick(now, |w| w.free_slots() > 0)
    }

    /// Chooses the worker for the next ready task, which runs `function`, free slots or
    /// prefetch: the least-loaded open worker with room, where room is a free slot, or a queue
    /// shorter than `slots × depth` (the function's prefetch depth) whose specs take less than
    /// `slots × MAX_QUEUED_BYTES_PER_SLOT`. `None`: every worker is full for this function.
    pub fn choose(&mut self, function: &str, now: Timestamp) -> Option<WorkerId> {
        let depth = prefetch::depth(self.durations.measured(function));
        self.pick(now, |w| {
            let slots = u64::from(w.hello.slots);
            let capacity = slots * (1 + u64::from(depth));
            w.free_slots() > 0
                || (u64::from(w.assigned) < capacity
                    && w.unstarted_bytes < slots * prefetch::MAX_QUEUED_BYTES_PER_SLOT)
        })
    }

    /// Among the workers that are neither draining nor held off at `now` and pass `room`, the
    /// least loaded (assigned / slots); among equals, the first after the one chosen last, so
    /// that ties rotate.
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
                // a/b < c/d  <=>  a*d < c*b, with slots > 0.
                Some((_, b)) => {
                    u64::from(w.assigned) * u64::from(b.hello.slots)
                        < u64::from(b.assigned) * u64::from(w.hello.slots)
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

    /// Records that `worker` was handed attempt `key` of `function`, whose spec takes `bytes`:
    /// it counts toward the worker's load, queued until a slot starts it.
    pub fn hand(&mut self, worker: WorkerId, key: Key, function: &str, bytes: usize) {
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        w.assigned += 1;
        w.unstarted += 1;
        w.unstarted_bytes += u64::from(bytes);
        let function = self.durations.intern(function);
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
        if let Some(w) = self.workers.get_mut(&worker) {
            w.assigned -= 1;
            if flight.started_at.is_none() {
                w.unstarted -= 1;
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

    /// Chooses what to take back, called when nothing is ready: if some open worker has free
    /// slots while others hold queued attempts their own slots will not start soon, each such
    /// worker (the fullest first, none with a take-back already under way) is asked for its
    /// newest queued attempts: half of its surplus, or enough for the idle slots if that is
    /// more, until the idle slots are covered. Those attempts stay in flight until `returned`.
    pub fn take_backs(&mut self, now: Timestamp) -> Vec<TakeBack> {
        let idle: u32 = self
            .workers
            .values()
            .filter(|w| w.open(now))
            .map(Worker::free_slots)
            .sum();
        if idle == 0 {
            return Vec::new();
        }
        let mut victims: Vec<(u32, WorkerId)> = self
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
            let count = surplus
                .div_ceil(2)
                .max(idle.min(surplus))
                .min(MAX_ATTEMPTS_PER_FRAME as u32);
            let mut queued: Vec<(u64, Key)> = self
                .flights
                .iter()
                .filter(|(_, f)| f.worker == id && f.started_at.is_none())
                .map(|(key, f)| (f.seq, *key))
                .collect();
            queued.sort_unstable_by(|a, b| b.cmp(a));
            queued.truncate(count as usize);
            if queued.is_empty() {
                continue;
            }
            covered += queued.len() as u32;
            self.workers
                .get_mut(&id)
                .expect("a victim exists")
                .taking_back = true;
            orders.push(TakeBack {
                worker: id,
                attempts: queued.into_iter().map(|(_, key)| key).collect(),
            });
        }
        orders
    }

    /// The worker answered a take-back with the attempts it dropped unstarted: their flights
    /// end (no slot was used, nothing counts as done) and they are returned for the table's
    /// `returned`. Attempts it does not hold queued are left out. A further take-back may go to
    /// it from now on.
    pub fn returned(&mut self, worker: WorkerId, attempts: &[Key]) -> Vec<Key> {
        let Some(w) = self.workers.get_mut(&worker) else {
            return Vec::new();
        };
        w.taking_back = false;
        let mut given = Vec::with_capacity(attempts.len());
        for key in attempts {
            match self.flights.get(key) {
                Some(f) if f.worker == worker && f.started_at.is_none() => {
                    w.assigned -= 1;
                    w.unstarted -= 1;
                    w.unstarted_bytes -= u64::from(f.bytes);
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
                draining: w.draining,
                held_off_until: w.held_off_until,
            })
            .collect()
    }

    /// The average duration of `function` in ms, if measured (for tests and the log).
    pub fn average(&self, function: &str) -> Option<f64> {
        self.durations.average(function)
    }
}
