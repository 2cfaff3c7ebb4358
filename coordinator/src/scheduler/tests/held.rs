//! The scheduler's part in held dependents: room on one given worker, take-backs that leave
//! held tasks and their dependencies alone, and the return of a held task a slot skipped.

use super::*;

fn key(n: u64) -> Key {
    (TaskId(n), Attempt(1))
}

/// `room_on` decides for one worker as `choose` does: open, serving the queue, with a free slot
/// or prefetch room for the function's depth.
#[test]
fn room_on_one_worker_follows_prefetch_depth() {
    let mut s = scheduler(&[1, 1]);
    let (a, b) = (WorkerId(1), WorkerId(2));
    let f = s.function(F);
    assert!(s.room_on(a, Q, f, T0), "a free slot");
    hand(&mut s, a, key(1), F, 10);
    assert!(
        s.room_on(a, Q, f, T0),
        "one queued per slot for an unmeasured function"
    );
    hand(&mut s, a, key(2), F, 10);
    assert!(!s.room_on(a, Q, f, T0), "full");
    assert!(
        !s.room_on(b, QueueId(9), f, T0),
        "does not serve that queue"
    );
    assert!(!s.room_on(WorkerId(7), Q, f, T0), "no such worker");
    s.drain(b);
    assert!(!s.room_on(b, Q, f, T0), "draining");
}

/// A take-back for an idle worker skips what `may_take` refuses (held tasks and their
/// dependencies), and a held task a slot skipped may be returned although it started.
#[test]
fn take_backs_leave_held_tasks_alone_and_skipped_ones_come_back() {
    let mut s = scheduler(&[1, 1]);
    learn(&mut s, "m:short", 1);
    let a = WorkerId(1);
    for n in 1..=6 {
        hand(&mut s, a, key(n), "m:short", 10);
    }
    s.started(a, &[key(1)], T0);
    let orders = s.take_backs(T0, |_| true, |k| k.0 .0 % 2 == 0);
    assert_eq!(orders[0].attempts, vec![key(6), key(4), key(2)]);
    s.returned(a, &[], |_| false);
    assert!(s.take_backs(T0, |_| true, |_| false).is_empty());
    // Task 2 reached a slot, which skipped it: it comes back only as a task that may be held.
    s.started(a, &[key(2)], T0);
    assert_eq!(s.returned(a, &[key(2)], |_| false), Vec::<Key>::new());
    assert_eq!(s.returned(a, &[key(2)], |k| k == key(2)), vec![key(2)]);
    let list = s.list();
    assert_eq!((list[0].running, list[0].queued), (5, 4));
    assert_eq!(s.holder(key(2)), None);
}
