//! `WorkerTable`: the connected workers and the dispatch choice, as a plain struct.
//!
//! It counts a slot as taken from the moment a task is assigned (not when the worker reports
//! back), so that a batch of ready tasks spreads over all workers instead of piling onto the one
//! that happened to be asked first. Only the worker actor (`workers.rs`) holds one.

use crate::flaps::Flaps;
use std::collections::BTreeMap;
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::handshake::WorkerHello;
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::WorkerId;

/// One connected worker. `S` is how to reach its connection (a channel in the server, a unit
/// in tests), so that the dispatch rules are tested without channels.
#[derive(Debug)]
pub struct WorkerEntry<S> {
    /// What it said in its hello.
    pub hello: WorkerHello,
    /// Where it connected from.
    pub address: String,
    /// When it connected.
    pub connected_at: Timestamp,
    /// Attempts assigned to it and not yet reported.
    pub assigned: u32,
    /// Attempts it reported since it connected.
    pub done: u64,
    /// It is shutting down gently: it finishes what it holds and gets nothing new.
    pub draining: bool,
    /// Its name keeps dropping its connections (see `flaps`): no grant before this time.
    pub held_off_until: Option<Timestamp>,
    /// Its connection's outgoing queue.
    pub sender: S,
}

/// Permission to hand `count` tasks to one worker; its slots are already counted as taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<S> {
    /// The worker.
    pub worker: WorkerId,
    /// Its name, recorded on the tasks it gets.
    pub name: String,
    /// How many tasks it takes.
    pub count: usize,
    /// Its connection's outgoing queue.
    pub sender: S,
}

/// The workers and the dispatch choice. See the module comment.
#[derive(Debug)]
pub struct WorkerTable<S> {
    workers: BTreeMap<WorkerId, WorkerEntry<S>>,
    next_id: u64,
    /// The worker chosen last; ties in load go to the next one after it, so they rotate.
    last_chosen: WorkerId,
    /// Names that keep connecting and dropping, held off for a while.
    flaps: Flaps,
}

impl<S: Clone> Default for WorkerTable<S> {
    fn default() -> Self {
        WorkerTable {
            workers: BTreeMap::new(),
            next_id: 1,
            last_chosen: WorkerId(0),
            flaps: Flaps::default(),
        }
    }
}

impl<S: Clone> WorkerTable<S> {
    /// Adds a worker with a fresh id (ids are per connection, never reused while running).
    pub fn register(
        &mut self,
        hello: WorkerHello,
        address: String,
        sender: S,
        now: Timestamp,
    ) -> WorkerId {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        let held_off_until = self.flaps.held_until(&hello.name, now);
        self.workers.insert(
            id,
            WorkerEntry {
                hello,
                address,
                connected_at: now,
                assigned: 0,
                done: 0,
                draining: false,
                held_off_until,
                sender,
            },
        );
        id
    }

    /// Until when a registered worker gets no task (its name keeps dropping), if it is held.
    pub fn held_off_until(&self, id: WorkerId) -> Option<Timestamp> {
        self.workers.get(&id)?.held_off_until
    }

    /// Forgets a worker whose connection ended at `now`; a quick end without a drain counts
    /// against its name (`flaps`).
    pub fn remove(&mut self, id: WorkerId, now: Timestamp) {
        if let Some(entry) = self.workers.remove(&id) {
            self.flaps
                .ended(&entry.hello.name, entry.connected_at, now, entry.draining);
        }
    }

    /// Chooses workers for up to `want` tasks, one slot at a time, always the least-loaded
    /// worker (running / slots) with a free slot; ties go to the next worker after the last one
    /// chosen. Never grants more than a worker's free slots, nor anything to a worker that is
    /// draining or held off at `now`.
    pub fn reserve(&mut self, want: usize, now: Timestamp) -> Vec<Grant<S>> {
        let mut counts: BTreeMap<WorkerId, usize> = BTreeMap::new();
        for _ in 0..want {
            let Some(id) = self.least_loaded(now) else {
                break;
            };
            self.workers.get_mut(&id).expect("chosen exists").assigned += 1;
            self.last_chosen = id;
            *counts.entry(id).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(id, count)| {
                let entry = &self.workers[&id];
                Grant {
                    worker: id,
                    name: entry.hello.name.clone(),
                    count,
                    sender: entry.sender.clone(),
                }
            })
            .collect()
    }

    /// A reported attempt frees its slot and counts as done.
    pub fn release(&mut self, id: WorkerId) {
        if let Some(entry) = self.workers.get_mut(&id) {
            entry.assigned = entry.assigned.saturating_sub(1);
            entry.done += 1;
        }
    }

    /// Marks a worker as draining: no further grant goes to it. Returns how many attempts it
    /// still holds, or `None` if it is not connected.
    pub fn drain(&mut self, id: WorkerId) -> Option<u32> {
        let entry = self.workers.get_mut(&id)?;
        entry.draining = true;
        Some(entry.assigned)
    }

    /// Gives back slots that were reserved but not used (the tasks went away meanwhile).
    pub fn unreserve(&mut self, id: WorkerId, count: u32) {
        if let Some(entry) = self.workers.get_mut(&id) {
            entry.assigned = entry.assigned.saturating_sub(count);
        }
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
                done: w.done,
                python: w.hello.python.clone(),
                connected_at: w.connected_at,
                draining: w.draining,
                held_off_until: w.held_off_until,
            })
            .collect()
    }

    /// The worker with a free slot and the lowest load, draining ones aside; among equals, the
    /// first after `last_chosen` in id order (wrapping around).
    fn least_loaded(&self, now: Timestamp) -> Option<WorkerId> {
        let free = self.workers.iter().filter(|(_, w)| {
            !w.draining
                && w.assigned < w.hello.slots
                && w.held_off_until.is_none_or(|until| until <= now)
        });
        let after = free
            .clone()
            .filter(|(id, _)| **id > self.last_chosen)
            .chain(free.filter(|(id, _)| **id <= self.last_chosen));
        let mut best: Option<(WorkerId, &WorkerEntry<S>)> = None;
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
        best.map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(name: &str, slots: u32) -> WorkerHello {
        WorkerHello {
            name: name.into(),
            slots,
            python: "3.11.7".into(),
        }
    }

    fn table(slots: &[u32]) -> WorkerTable<()> {
        let mut table = WorkerTable::default();
        for (i, s) in slots.iter().enumerate() {
            table.register(hello(&format!("w{i}"), *s), "a".into(), (), Timestamp(0));
        }
        table
    }

    fn counts(grants: &[Grant<()>]) -> Vec<(u64, usize)> {
        grants.iter().map(|g| (g.worker.0, g.count)).collect()
    }

    /// A batch spreads evenly over equal workers and never exceeds their free slots.
    #[test]
    fn batch_spreads_over_workers() {
        let mut workers = table(&[2, 2]);
        assert_eq!(
            counts(&workers.reserve(200, Timestamp(0))),
            vec![(1, 2), (2, 2)]
        );
        assert!(workers.reserve(1, Timestamp(0)).is_empty());
    }

    /// Load is running / slots: a worker with more slots takes proportionally more.
    #[test]
    fn load_is_relative_to_slots() {
        let mut workers = table(&[1, 3]);
        assert_eq!(
            counts(&workers.reserve(2, Timestamp(0))),
            vec![(1, 1), (2, 1)]
        );
        assert_eq!(counts(&workers.reserve(1, Timestamp(0))), vec![(2, 1)]);
    }

    /// Ties rotate: single tasks alternate between idle workers instead of always the first.
    #[test]
    fn ties_rotate() {
        let mut workers = table(&[4, 4]);
        let first = workers.reserve(1, Timestamp(0))[0].worker;
        workers.release(first);
        let second = workers.reserve(1, Timestamp(0))[0].worker;
        assert_ne!(first, second);
    }

    /// A released slot is free again and counted as done; a removed worker gets nothing.
    #[test]
    fn release_and_remove() {
        let mut workers = table(&[1, 1]);
        workers.reserve(2, Timestamp(0));
        workers.release(WorkerId(1));
        workers.remove(WorkerId(2), Timestamp(0));
        assert_eq!(counts(&workers.reserve(5, Timestamp(0))), vec![(1, 1)]);
        let list = workers.list();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].running, list[0].done), (1, 1));
    }

    /// A draining worker gets no grant, even with free slots, while it still counts what it
    /// holds; the others take the work.
    #[test]
    fn a_draining_worker_gets_nothing_new() {
        let mut workers = table(&[2, 2]);
        assert_eq!(
            counts(&workers.reserve(2, Timestamp(0))),
            vec![(1, 1), (2, 1)]
        );
        assert_eq!(workers.drain(WorkerId(1)), Some(1));
        assert_eq!(workers.drain(WorkerId(9)), None);
        assert_eq!(counts(&workers.reserve(5, Timestamp(0))), vec![(2, 1)]);
        workers.release(WorkerId(1));
        assert!(workers.reserve(5, Timestamp(0)).is_empty());
        let list = workers.list();
        assert!(list[0].draining && !list[1].draining, "{list:?}");
    }

    /// A name that dropped twice quickly is registered held off: no grant until the hold-off
    /// ends, and the list says until when; another name is served meanwhile.
    #[test]
    fn a_flapping_name_is_held_off() {
        let mut workers: WorkerTable<()> = WorkerTable::default();
        for at in [0, 100] {
            let id = workers.register(hello("flap", 4), "a".into(), (), Timestamp(at));
            workers.remove(id, Timestamp(at + 50));
        }
        let flap = workers.register(hello("flap", 4), "a".into(), (), Timestamp(200));
        let until = workers.held_off_until(flap).expect("held off");
        assert_eq!(until, Timestamp(150 + crate::flaps::BASE_MS));
        let real = workers.register(hello("real", 1), "a".into(), (), Timestamp(200));
        assert_eq!(
            counts(&workers.reserve(5, Timestamp(300))),
            vec![(real.0, 1)]
        );
        assert_eq!(workers.list()[0].held_off_until, Some(until));
        assert_eq!(counts(&workers.reserve(5, until)), vec![(flap.0, 4)]);
    }
}
