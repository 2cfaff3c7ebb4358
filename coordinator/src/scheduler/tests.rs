//! Rules of the scheduler, tested without channels, sockets or a table: least-loaded choice with
//! prefetch, draining, hold-off, the duration average, prefetch sizing and the take-back choice.

use super::*;

const F: &str = "tasks:square";
const T0: Timestamp = Timestamp(0);
/// The queue of the tests that are not about queues.
const Q: QueueId = QueueId(0);

/// `Scheduler::choose` for a task of `function` in queue `Q`.
fn choose(s: &mut Scheduler, function: &str, now: Timestamp) -> Option<WorkerId> {
    let function = s.function(function);
    s.choose(Q, function, now)
}

/// `Scheduler::hand` of a task of `function` in queue `Q`.
fn hand(s: &mut Scheduler, worker: WorkerId, key: Key, function: &str, bytes: usize) {
    let function = s.function(function);
    s.hand(worker, key, Q, function, bytes);
}

fn hello(name: &str, slots: u32) -> WorkerHello {
    WorkerHello {
        name: name.into(),
        slots,
        python: "3.11.7".into(),
        queues: vec!["default".into()],
        async_concurrency: 1,
    }
}

fn scheduler(slots: &[u32]) -> Scheduler {
    let mut s = Scheduler::default();
    for (i, n) in slots.iter().enumerate() {
        s.register(hello(&format!("w{i}"), *n), vec![Q], "a".into(), T0);
    }
    s
}

/// A task counter standing in for the table: each hand gets a fresh task id, attempt 1.
struct Tasks(u64);

impl Tasks {
    /// Hands up to `want` tasks of `function` the way the task actor does, one choice at a
    /// time; returns (worker id, key) per hand.
    fn dispatch(
        &mut self,
        s: &mut Scheduler,
        function: &str,
        want: usize,
        now: Timestamp,
    ) -> Vec<(u64, Key)> {
        let mut handed = Vec::new();
        for _ in 0..want {
            let Some(worker) = choose(s, function, now) else {
                break;
            };
            self.0 += 1;
            let key = (TaskId(self.0), Attempt(1));
            hand(s, worker, key, function, 10);
            handed.push((worker.0, key));
        }
        handed
    }
}

/// How many of `handed` went to each worker, by worker id.
fn counts(handed: &[(u64, Key)]) -> Vec<(u64, usize)> {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for (worker, _) in handed {
        *counts.entry(*worker).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// Teaches the scheduler that `function` takes `ms` per attempt (ten samples), through a
/// throwaway worker.
fn learn(s: &mut Scheduler, function: &str, ms: u64) {
    let (id, _) = s.register(hello("teacher", 1), vec![Q], "a".into(), T0);
    for n in 0..10 {
        let key = (TaskId(u64::MAX - n), Attempt(1));
        hand(s, id, key, function, 10);
        s.started(id, &[key], Timestamp(1_000));
        assert!(s.report(id, key, true, Timestamp(1_000 + ms)));
    }
    s.remove(id, Timestamp(1_000_000));
}

/// With an unknown function, a batch spreads evenly over equal workers and each gets one
/// queued attempt per slot beyond its slots, never more.
#[test]
fn batch_spreads_over_workers_with_one_prefetched_per_slot() {
    let mut s = scheduler(&[2, 2]);
    let handed = Tasks(0).dispatch(&mut s, F, 200, T0);
    assert_eq!(counts(&handed), vec![(1, 4), (2, 4)]);
    assert!(choose(&mut s, F, T0).is_none());
    let list = s.list();
    assert_eq!((list[0].running, list[0].queued), (4, 4));
}

/// Load is assigned / slots: a worker with more slots takes proportionally more, and each
/// worker's room is its slots times (1 + depth).
#[test]
fn load_is_relative_to_slots() {
    let mut s = scheduler(&[1, 3]);
    let mut tasks = Tasks(0);
    assert_eq!(
        counts(&tasks.dispatch(&mut s, F, 2, T0)),
        vec![(1, 1), (2, 1)]
    );
    assert_eq!(counts(&tasks.dispatch(&mut s, F, 1, T0)), vec![(2, 1)]);
    assert_eq!(
        counts(&tasks.dispatch(&mut s, F, 100, T0)),
        vec![(1, 1), (2, 4)]
    );
}

/// Ties rotate: single tasks alternate between idle workers instead of always the first.
#[test]
fn ties_rotate() {
    let mut s = scheduler(&[4, 4]);
    let mut tasks = Tasks(0);
    let first = tasks.dispatch(&mut s, F, 1, T0)[0];
    assert!(s.report(WorkerId(first.0), first.1, true, T0));
    let second = tasks.dispatch(&mut s, F, 1, T0)[0];
    assert_ne!(first.0, second.0);
}

/// A report frees the slot and counts as done only from the worker that holds the attempt; a
/// removed worker gets nothing and gives back what it held, with whether it had started.
#[test]
fn report_and_remove() {
    let mut s = scheduler(&[1, 1]);
    let handed = Tasks(0).dispatch(&mut s, F, 2, T0);
    let (a, b) = (handed[0], handed[1]);
    assert!(!s.report(WorkerId(b.0), a.1, true, T0), "not its attempt");
    assert!(s.report(WorkerId(a.0), a.1, true, T0));
    assert!(!s.report(WorkerId(a.0), a.1, true, T0), "reported twice");
    assert_eq!(s.started(WorkerId(b.0), &[b.1, a.1], T0), 1);
    assert_eq!(s.remove(WorkerId(b.0), T0), vec![(b.1, true)]);
    assert_eq!(s.holder(b.1), None);
    let list = s.list();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].running, list[0].done), (0, 1));
    assert_eq!(counts(&Tasks(10).dispatch(&mut s, F, 5, T0)), vec![(1, 2)]);
}

/// A draining worker gets nothing new, even with free slots, while it still counts what it
/// holds; the others take the work.
#[test]
fn a_draining_worker_gets_nothing_new() {
    let mut s = scheduler(&[2, 2]);
    let mut tasks = Tasks(0);
    assert_eq!(
        counts(&tasks.dispatch(&mut s, F, 2, T0)),
        vec![(1, 1), (2, 1)]
    );
    assert_eq!(s.drain(WorkerId(1)), Some(1));
    assert_eq!(s.drain(WorkerId(9)), None);
    assert_eq!(counts(&tasks.dispatch(&mut s, F, 9, T0)), vec![(2, 3)]);
    let list = s.list();
    assert!(list[0].draining && !list[1].draining, "{list:?}");
}

/// A name that dropped twice quickly is registered held off: nothing until the hold-off ends,
/// and the list says until when; another name is served meanwhile.
#[test]
fn a_flapping_name_is_held_off() {
    let mut s = Scheduler::default();
    for at in [0, 100] {
        let (id, _) = s.register(hello("flap", 4), vec![Q], "a".into(), Timestamp(at));
        s.remove(id, Timestamp(at + 50));
    }
    let (flap, until) = s.register(hello("flap", 4), vec![Q], "a".into(), Timestamp(200));
    let until = until.expect("held off");
    assert_eq!(until, Timestamp(150 + crate::flaps::BASE_MS));
    let (real, none) = s.register(hello("real", 1), vec![Q], "a".into(), Timestamp(200));
    assert_eq!(none, None);
    let mut tasks = Tasks(0);
    assert_eq!(
        counts(&tasks.dispatch(&mut s, F, 5, Timestamp(300))),
        vec![(real.0, 2)]
    );
    assert_eq!(s.list()[0].held_off_until, Some(until));
    assert_eq!(
        counts(&tasks.dispatch(&mut s, F, 100, until)),
        vec![(flap.0, 8)]
    );
}

/// The depth: one per slot for a function never measured; enough to cover ~30 ms per slot;
/// at least one, at most 512, and at most 2^samples while the average rests on few samples;
/// none for a function of a second or more.
#[test]
fn prefetch_depth_follows_the_average() {
    let many = 100;
    assert_eq!(prefetch::depth(None), 1);
    assert_eq!(prefetch::depth(Some((0.0, many))), prefetch::MAX_PER_SLOT);
    assert_eq!(prefetch::depth(Some((0.1, many))), 300);
    assert_eq!(prefetch::depth(Some((3.0, many))), 10);
    assert_eq!(prefetch::depth(Some((30.0, many))), 1);
    assert_eq!(prefetch::depth(Some((999.0, many))), 1);
    assert_eq!(prefetch::depth(Some((1000.0, many))), 0);
    assert_eq!(prefetch::depth(Some((60_000.0, 1))), 0);
    assert_eq!(prefetch::depth(Some((0.0, 1))), 2);
    assert_eq!(prefetch::depth(Some((0.0, 5))), 32);
    assert_eq!(prefetch::depth(Some((3.0, 3))), 8);
}

/// The average is measured from `Started` to the report, per function; the first sample sets
/// it, later ones move it a tenth of the way; kills and never-started attempts are not counted.
#[test]
fn duration_average_per_function() {
    let mut s = scheduler(&[1]);
    let w = WorkerId(1);
    let key = |n| (TaskId(n), Attempt(1));
    hand(&mut s, w, key(1), "m:slow", 10);
    s.started(w, &[key(1)], Timestamp(100));
    s.report(w, key(1), true, Timestamp(2_100));
    assert_eq!(s.average("m:slow"), Some(2_000.0));
    assert_eq!(s.average("m:other"), None);
    hand(&mut s, w, key(2), "m:slow", 10);
    s.started(w, &[key(2)], Timestamp(3_000));
    s.report(w, key(2), true, Timestamp(4_000));
    assert_eq!(s.average("m:slow"), Some(1_900.0));
    // A kill and an attempt reported without a `Started` leave the average alone.
    hand(&mut s, w, key(3), "m:slow", 10);
    s.started(w, &[key(3)], Timestamp(5_000));
    s.report(w, key(3), false, Timestamp(5_001));
    hand(&mut s, w, key(4), "m:slow", 10);
    s.report(w, key(4), true, Timestamp(9_000));
    assert_eq!(s.average("m:slow"), Some(1_900.0));
}

/// Long functions are never hoarded: a worker gets one per slot only; short ones fill the
/// prefetch depth; the function of the next task decides.
#[test]
fn long_tasks_are_not_prefetched_and_short_ones_are() {
    let mut s = scheduler(&[1, 1]);
    learn(&mut s, "m:long", 5_000);
    learn(&mut s, "m:short", 1);
    let mut tasks = Tasks(0);
    assert_eq!(
        counts(&tasks.dispatch(&mut s, "m:long", 10, T0)),
        vec![(1, 1), (2, 1)]
    );
    assert!(choose(&mut s, "m:long", T0).is_none());
    let short = tasks.dispatch(&mut s, "m:short", 1000, T0);
    assert_eq!(counts(&short), vec![(1, 30), (2, 30)]);
}

/// When a worker is idle with nothing ready, the fullest worker with queued attempts its own
/// slots will not start is asked for its newest ones (half its surplus, at least enough for the
/// idle slots); no second take-back goes to it before its `Returned`; what it returns leaves
/// its load, unstarted ones only.
#[test]
fn take_back_chooses_the_newest_queued_of_the_fullest() {
    let mut s = scheduler(&[1, 1]);
    learn(&mut s, "m:short", 1);
    let (a, b) = (WorkerId(1), WorkerId(2));
    let key = |n| (TaskId(n), Attempt(1));
    // Worker a holds ten: one started, nine queued; worker b is idle.
    for n in 1..=10 {
        hand(&mut s, a, key(n), "m:short", 10);
    }
    s.started(a, &[key(1)], T0);
    assert_eq!(s.list()[0].queued, 9);
    let orders = s.take_backs(T0, |_| true, |_| true);
    assert_eq!(
        orders,
        vec![TakeBack {
            worker: a,
            attempts: vec![key(10), key(9), key(8), key(7), key(6)],
        }]
    );
    assert!(
        s.take_backs(T0, |_| true, |_| true).is_empty(),
        "one take-back at a time"
    );
    // Meanwhile key 6 started: the worker returns the other four.
    s.started(a, &[key(2)], T0);
    let given = s.returned(a, &[key(10), key(9), key(8), key(7), key(1)], |_| false);
    assert_eq!(given, vec![key(10), key(9), key(8), key(7)]);
    let list = s.list();
    assert_eq!((list[0].running, list[0].queued), (6, 4));
    assert_eq!(s.holder(key(10)), None);
    assert_eq!(s.holder(key(6)), Some(a));
    // b is still idle (nothing was dispatched): a may be asked again.
    assert_eq!(s.take_backs(T0, |_| true, |_| true).len(), 1);
    assert_eq!(b, WorkerId(2));
}

/// No take-back without an idle worker, none of attempts a worker's own free slots are about
/// to start, and none for a draining worker's idle slots.
#[test]
fn no_take_back_without_idle_slots_or_surplus() {
    let mut s = scheduler(&[2, 1]);
    let key = |n| (TaskId(n), Attempt(1));
    // Worker 1 (2 slots) holds two unstarted: its own slots start them.
    hand(&mut s, WorkerId(1), key(1), F, 10);
    hand(&mut s, WorkerId(1), key(2), F, 10);
    assert!(s.take_backs(T0, |_| true, |_| true).is_empty());
    // A third is a surplus; worker 2 is idle.
    hand(&mut s, WorkerId(1), key(3), F, 10);
    assert_eq!(
        s.take_backs(T0, |_| true, |_| true)[0].attempts,
        vec![key(3)]
    );
    s.returned(WorkerId(1), &[], |_| false);
    // Worker 2 drains: its idle slot does not count.
    s.drain(WorkerId(2));
    assert!(s.take_backs(T0, |_| true, |_| true).is_empty());
}

/// A heartbeat naming attempts the worker does not hold is answered with those to stop.
#[test]
fn stale_heartbeat_attempts() {
    let mut s = scheduler(&[1, 1]);
    let key = |n| (TaskId(n), Attempt(1));
    hand(&mut s, WorkerId(1), key(1), F, 10);
    hand(&mut s, WorkerId(2), key(2), F, 10);
    assert!(s.stale(WorkerId(1), &[key(1)]).is_empty());
    assert_eq!(
        s.stale(WorkerId(1), &[key(1), key(2), key(3)]),
        vec![key(2), key(3)]
    );
}

/// `choose_slot` only picks a worker with a free slot (the least loaded of them), never a
/// queue: what at-most-once tasks get.
#[test]
fn choose_slot_needs_a_free_slot() {
    let mut s = scheduler(&[2, 1]);
    let key = |n| (TaskId(n), Attempt(1));
    hand(&mut s, WorkerId(1), key(1), F, 10);
    assert_eq!(s.choose_slot(Q, None, T0), Some(WorkerId(2)));
    hand(&mut s, WorkerId(2), key(2), F, 10);
    assert_eq!(s.choose_slot(Q, None, T0), Some(WorkerId(1)));
    hand(&mut s, WorkerId(1), key(3), F, 10);
    assert_eq!(s.choose_slot(Q, None, T0), None);
    assert!(choose(&mut s, F, T0).is_some(), "prefetch room is left");
}

/// Tasks with large specs are not hoarded: prefetch stops once a worker's queued specs reach
/// `MAX_QUEUED_BYTES_PER_SLOT` per slot, while a free slot is always filled.
#[test]
fn prefetch_stops_at_the_queued_bytes_budget() {
    let mut s = scheduler(&[1]);
    learn(&mut s, "m:short", 1);
    let w = WorkerId(1);
    let big = (prefetch::MAX_QUEUED_BYTES_PER_SLOT / 2) as usize;
    let key = |n| (TaskId(n), Attempt(1));
    hand(&mut s, w, key(1), "m:short", big);
    s.started(w, &[key(1)], T0);
    hand(&mut s, w, key(2), "m:short", big);
    assert_eq!(choose(&mut s, "m:short", T0), Some(w));
    hand(&mut s, w, key(3), "m:short", big);
    assert_eq!(
        choose(&mut s, "m:short", T0),
        None,
        "two queued fill the budget"
    );
    s.started(w, &[key(2)], T0);
    assert_eq!(
        choose(&mut s, "m:short", T0),
        Some(w),
        "one started frees its bytes"
    );
}

mod held;
mod named;
mod queues;
