//! The scheduler with queues and coroutines: dispatch only to workers that serve a task's
//! queue (least-loaded among them), per-queue assigned counts for limits, take-backs only for
//! queues an idle worker serves, and coroutine tasks counting a fraction of a slot.

use super::*;

const A: QueueId = QueueId(1);
const B: QueueId = QueueId(2);

fn with_queues(s: &mut Scheduler, name: &str, slots: u32, queues: &[QueueId]) -> WorkerId {
    s.register(hello(name, slots), queues.to_vec(), "a".into(), T0)
        .0
}

fn key(n: u64) -> Key {
    (TaskId(n), Attempt(1))
}

/// A task goes only to a worker serving its queue, the least loaded of those; a queue nobody
/// serves gets nothing, and `workers_of`/`serves` say who serves what.
#[test]
fn dispatch_follows_the_queues_workers_serve() {
    let mut s = Scheduler::default();
    let only_a = with_queues(&mut s, "a", 1, &[A]);
    let both = with_queues(&mut s, "ab", 2, &[B, A, B]);
    let f = s.function(F);
    assert_eq!(s.choose_slot(B, None, T0), Some(both));
    s.hand(both, key(1), B, f, 10);
    // `a` is idle (0/1), `ab` holds 1/2: `a` is less loaded.
    assert_eq!(s.choose_slot(A, None, T0), Some(only_a));
    s.hand(only_a, key(2), A, f, 10);
    assert_eq!(s.choose_slot(A, None, T0), Some(both));
    s.hand(both, key(3), A, f, 10);
    assert_eq!(
        s.choose_slot(A, None, T0),
        None,
        "every slot of A's workers is taken"
    );
    assert_eq!(s.choose_slot(QueueId(7), None, T0), None);
    assert_eq!(s.choose(QueueId(7), f, T0), None);
    assert!(s.serves(A) && s.serves(B) && !s.serves(QueueId(7)));
    assert_eq!(s.workers_of(A), vec!["a".to_string(), "ab".to_string()]);
    assert_eq!(s.workers_of(B), vec!["ab".to_string()]);
    assert_eq!(s.served(), vec![A, B]);
    let list = s.list();
    assert_eq!(
        list[1].queues,
        vec!["default".to_string()],
        "as its hello said"
    );
}

/// Each queue counts its attempts in flight, queued or running, until they are reported,
/// given back or lost with their worker.
#[test]
fn assigned_counts_per_queue() {
    let mut s = Scheduler::default();
    let w = with_queues(&mut s, "w", 4, &[A, B]);
    let f = s.function(F);
    for n in 1..=3 {
        s.hand(w, key(n), A, f, 10);
    }
    s.hand(w, key(4), B, f, 10);
    assert_eq!((s.assigned_in(A), s.assigned_in(B)), (3, 1));
    assert!(s.report(w, key(1), true, T0));
    assert_eq!(s.assigned_in(A), 2);
    assert_eq!(s.returned(w, &[key(2)], |_| false), vec![key(2)]);
    assert_eq!(s.assigned_in(A), 1);
    assert_eq!(s.remove(w, T0).len(), 2);
    assert_eq!((s.assigned_in(A), s.assigned_in(B)), (0, 0));
    assert_eq!(s.assigned_in(QueueId(9)), 0);
}

/// A worker with async concurrency 10 and one slot holds ten tasks of a function it named a
/// coroutine function at once (each a tenth of its slot), but a plain task only in a wholly
/// free slot; its load and the least-loaded choice count the same units.
#[test]
fn coroutines_take_a_fraction_of_a_slot() {
    let mut s = Scheduler::default();
    let mut async_hello = hello("async", 1);
    async_hello.async_concurrency = 10;
    let w = s.register(async_hello, vec![A], "a".into(), T0).0;
    let plain = s.function(F);
    let co = s.function("m:co");
    assert!(!s.has_coroutines());
    s.coroutines(w, &["m:co".to_string()]);
    assert!(s.has_coroutines());
    for n in 1..=10 {
        assert_eq!(s.choose_slot(A, Some(co), T0), Some(w), "coroutine {n}");
        s.hand(w, key(n), A, co, 10);
        s.started(w, &[key(n)], T0);
    }
    assert_eq!(
        s.choose_slot(A, Some(co), T0),
        None,
        "its event loop is full"
    );
    assert!(s.report(w, key(1), true, T0));
    assert_eq!(
        s.choose_slot(A, Some(plain), T0),
        None,
        "a plain task needs the whole slot"
    );
    assert_eq!(s.choose_slot(A, Some(co), T0), Some(w));
    for n in 2..=10 {
        assert!(s.report(w, key(n), true, T0));
    }
    assert_eq!(s.choose_slot(A, Some(plain), T0), Some(w));
    s.hand(w, key(11), A, plain, 10);
    assert_eq!(
        s.choose_slot(A, Some(co), T0),
        None,
        "the plain task fills the slot"
    );
    assert_eq!(s.list()[0].async_concurrency, 10);
    s.remove(w, T0);
    assert!(!s.has_coroutines());
}

/// Least loaded counts units: a coroutine-heavy worker with room is less loaded than a plain
/// one with the same number of tasks.
#[test]
fn load_counts_units() {
    let mut s = Scheduler::default();
    let mut async_hello = hello("async", 1);
    async_hello.async_concurrency = 4;
    let fast = s.register(async_hello, vec![A], "a".into(), T0).0;
    let plain = with_queues(&mut s, "plain", 2, &[A]);
    let co = s.function("m:co");
    s.coroutines(fast, &["m:co".to_string()]);
    s.hand(fast, key(1), A, co, 10);
    s.hand(plain, key(2), A, co, 10);
    // fast: 1 of 4 units; plain: 1 of 2 slots.
    assert_eq!(s.choose_slot(A, Some(co), T0), Some(fast));
}

/// A take-back is asked only for queues the idle worker serves and that have nothing ready
/// for it: attempts of other queues stay where they are.
#[test]
fn take_backs_follow_the_idle_workers_queues() {
    let mut s = Scheduler::default();
    let busy = with_queues(&mut s, "busy", 1, &[A, B]);
    let _idle = with_queues(&mut s, "idle", 1, &[B]);
    let f = s.function(F);
    for n in 1..=4 {
        s.hand(busy, key(n), A, f, 10);
    }
    s.started(busy, &[key(1)], T0);
    assert!(
        s.take_backs(T0, |_| true, |_| true).is_empty(),
        "the idle worker does not serve A"
    );
    s.hand(busy, key(5), B, f, 10);
    s.hand(busy, key(6), B, f, 10);
    assert!(
        s.take_backs(T0, |q| q != B, |_| true).is_empty(),
        "B has ready tasks"
    );
    let orders = s.take_backs(T0, |_| true, |_| true);
    assert_eq!(orders.len(), 1);
    assert!(
        orders[0]
            .attempts
            .iter()
            .all(|k| *k == key(5) || *k == key(6)),
        "{orders:?}"
    );
}
