//! The rules of tasks run together (coroutine functions), without processes: packing, the
//! concurrency limit, sync tasks taking whole slots, kills and timeouts by cancel, the grace
//! after which a slot is replaced, crashes.

use super::super::tests::{actions, completed, id, ready_with, task, Did};
use super::*;
use tatzelwurm_proto::task::TaskError;

const CO: &str = "m:co";

/// A table of `count` ready slots running up to `concurrency` together tasks, which knows `CO`
/// as a coroutine function.
fn knowing(count: usize, concurrency: usize, now: Instant) -> SlotTable {
    let mut table = ready_with(count, concurrency, now);
    table.coroutines(0, vec![CO.into()], now);
    assert_eq!(table.take_coroutines(), [CO]);
    table
}

fn co(task_id: u64) -> Assignment {
    task(task_id, CO)
}

fn cancelled(task_id: u64) -> Report {
    Report {
        task: TaskId(task_id),
        attempt: Attempt(1),
        outcome: Outcome::Failed {
            error: TaskError {
                kind: "CancelledError".into(),
                message: String::new(),
                traceback: String::new(),
            },
        },
        output: TaskOutput {
            stdout: "said before the cancel\n".into(),
            stderr: String::new(),
        },
    }
}

use tatzelwurm_proto::task::TaskOutput;
use tatzelwurm_proto::{Attempt, TaskId};

/// Each function is named once, whichever slot finds it, however often.
#[test]
fn a_coroutine_function_is_learned_once() {
    let now = Instant::now();
    let mut table = knowing(2, 2, now);
    table.coroutines(1, vec![CO.into(), "m:other".into()], now);
    table.coroutines(0, vec!["m:other".into()], now);
    assert_eq!(table.take_coroutines(), ["m:other"]);
    assert!(table.take_coroutines().is_empty());
}

/// Together tasks fill one slot up to the concurrency before the next slot gets any (as the
/// coordinator counts them); a report makes room for the next queued one in that slot; all are
/// begun when handed, and named in `running`.
#[test]
fn together_tasks_pack_up_to_the_concurrency() {
    let now = Instant::now();
    let mut table = knowing(2, 3, now);
    table.run((1..=7).map(co).collect(), now);
    assert_eq!(
        actions(&mut table),
        [
            Did::Together(0, vec![1, 2, 3]),
            Did::Together(1, vec![4, 5, 6])
        ]
    );
    assert_eq!(table.take_started(), (1..=6).map(id).collect::<Vec<_>>());
    assert_eq!(table.queued(), 1);
    let mut running = table.running();
    running.sort();
    assert_eq!(running, (1..=7).map(id).collect::<Vec<_>>());
    // They end in any order.
    table.done(0, vec![completed(2)], now);
    assert_eq!(
        actions(&mut table),
        [Did::Report(2, "completed", None), Did::Together(0, vec![7])]
    );
    table.done(1, vec![completed(6), completed(4)], now);
    assert_eq!(
        actions(&mut table),
        [
            Did::Report(6, "completed", None),
            Did::Report(4, "completed", None)
        ]
    );
    // Slot 1 runs one now and slot 0 three: the next goes to slot 1, the fuller one with room.
    table.run(vec![co(8), co(9)], now);
    assert_eq!(actions(&mut table), [Did::Together(1, vec![8, 9])]);
}

/// The first tasks of a function not known to be a coroutine function go out like sync ones:
/// alone, in order; once the slot says what it is, the rest run together.
#[test]
fn the_first_task_of_an_unknown_coroutine_runs_alone() {
    let now = Instant::now();
    let mut table = ready_with(1, 4, now);
    table.run(vec![co(1), co(2), co(3)], now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![1])]);
    table.coroutines(0, vec![CO.into()], now);
    assert_eq!(table.take_coroutines(), [CO]);
    // The slot runs task 1 to its end first; nothing goes beside a sequential hand.
    assert_eq!(actions(&mut table), []);
    table.done(0, vec![completed(1)], now);
    assert_eq!(
        actions(&mut table),
        [
            Did::Report(1, "completed", None),
            Did::Together(0, vec![2, 3])
        ]
    );
}

/// A sync task takes a whole idle slot and never goes beside together tasks; while it waits,
/// together tasks behind it pass it into slots with room, except the slot running the fewest,
/// which empties for it.
#[test]
fn a_sync_task_takes_a_whole_slot_and_one_slot_empties_for_it() {
    let now = Instant::now();
    let mut table = knowing(3, 3, now);
    table.run(vec![co(1), co(2), co(3), co(4), task(10, "m:sync")], now);
    assert_eq!(
        actions(&mut table),
        [
            Did::Hand(2, vec![10]),
            Did::Together(0, vec![1, 2, 3]),
            Did::Together(1, vec![4])
        ]
    );
    table.done(0, vec![completed(3)], now);
    actions(&mut table);
    // No idle slot for task 11: slot 1 (one running) is kept for it, slot 0 (two) takes 12.
    table.run(vec![task(11, "m:sync"), co(12), co(13)], now);
    assert_eq!(actions(&mut table), [Did::Together(0, vec![12])]);
    assert_eq!(table.queued(), 2);
    table.done(1, vec![completed(4)], now);
    assert_eq!(
        actions(&mut table),
        [Did::Report(4, "completed", None), Did::Hand(1, vec![11])]
    );
    // Task 13 waits: slot 0 is full, slots 1 and 2 run sync tasks.
    assert_eq!(table.queued(), 1);
    table.done(2, vec![completed(10)], now);
    assert_eq!(
        actions(&mut table),
        [
            Did::Report(10, "completed", None),
            Did::Together(2, vec![13])
        ]
    );
}

/// Tasks of a coroutine function are never held behind another as fast ones are.
#[test]
fn coroutine_tasks_are_not_batched_as_fast() {
    let now = Instant::now();
    let mut table = ready_with(1, 1, now);
    super::super::tests::learn_fast(&mut table, CO, now);
    table.coroutines(0, vec![CO.into()], now);
    table.run(vec![co(1), co(2)], now);
    assert_eq!(actions(&mut table), [Did::Together(0, vec![1])]);
    table.done(0, vec![completed(1)], now);
    assert_eq!(
        actions(&mut table),
        [Did::Report(1, "completed", None), Did::Together(0, vec![2])]
    );
}

/// A kill cancels exactly the one task; it is reported `Killed` with what it wrote once the slot
/// says it ended, even if it ended on its own meanwhile; the others run on, and the slot takes
/// nothing new while a cancel is open.
#[test]
fn kill_cancels_exactly_one_together_task() {
    let now = Instant::now();
    let mut table = knowing(1, 3, now);
    table.run(vec![co(1), co(2), co(3), co(4)], now);
    actions(&mut table);
    table.kill(&[id(2)], now);
    assert_eq!(actions(&mut table), [Did::Interrupt(0, vec![2])]);
    // A second kill of it sends nothing more.
    table.kill(&[id(2)], now);
    assert_eq!(actions(&mut table), []);
    table.done(0, vec![completed(1)], now);
    // Room, but a cancel is open: task 4 waits.
    assert_eq!(actions(&mut table), [Did::Report(1, "completed", None)]);
    let mut report = None;
    table.done(0, vec![cancelled(2)], now);
    while let Some(action) = table.next_action() {
        match action {
            Action::Report { report: r, .. } => report = Some(r),
            Action::Hand { count, .. } => assert_eq!(count, 1),
            other => panic!("unexpected {other:?}"),
        }
    }
    let report = report.expect("task 2 is reported");
    assert_eq!(report.outcome, Outcome::Killed);
    assert_eq!(report.output.stdout, "said before the cancel\n");
    // A task that finished as its kill was sent is reported killed too.
    table.kill(&[id(3)], now);
    table.done(0, vec![completed(3)], now);
    assert_eq!(
        actions(&mut table),
        [Did::Interrupt(0, vec![3]), Did::Report(3, "killed", None)]
    );
    let mut running = table.running();
    running.sort();
    assert_eq!(running, [id(4)]);
}

/// A timeout cancels the task; when it does not end within the grace, the slot is replaced: the
/// task is reported timed out, another still running beside it fails naming it, and one the
/// slot reported before its exit keeps its result.
#[test]
fn timeout_cancels_and_the_grace_replaces_the_slot() {
    let now = Instant::now();
    let mut table = knowing(1, 3, now);
    let mut slow = co(1);
    slow.spec.policy.timeout_ms = Some(1_000);
    table.run(vec![slow, co(2), co(3)], now);
    actions(&mut table);
    let limit = now + Duration::from_secs(1);
    assert_eq!(table.next_deadline(), Some(limit));
    table.time_out(limit - Duration::from_millis(1));
    assert_eq!(actions(&mut table), []);
    table.time_out(limit);
    assert_eq!(actions(&mut table), [Did::Interrupt(0, vec![1])]);
    assert_eq!(table.next_deadline(), Some(limit + GRACE));
    table.time_out(limit + GRACE);
    assert_eq!(actions(&mut table), [Did::Kill(0)]);
    // Nothing more to time while the process dies (task 2 has no timeout; task 1 is settled
    // by the exit).
    assert_eq!(table.next_deadline(), None);
    // A frame still in the pipe: task 3 had finished.
    table.done(0, vec![completed(3)], limit + GRACE);
    assert_eq!(actions(&mut table), [Did::Report(3, "completed", None)]);
    table.exited(0, "was killed by signal 9", limit + GRACE);
    assert_eq!(
        actions(&mut table),
        [
            Did::Report(1, "timeout", Some(0)),
            Did::Report(2, "replaced", Some(0)),
            Did::Start(0)
        ]
    );
    assert!(table.running().is_empty());
}

/// A kill of a task being cancelled for its timeout makes it a kill.
#[test]
fn a_kill_during_a_timeout_cancel_is_a_kill() {
    let now = Instant::now();
    let mut table = knowing(1, 2, now);
    let mut slow = co(1);
    slow.spec.policy.timeout_ms = Some(10);
    table.run(vec![slow], now);
    actions(&mut table);
    table.time_out(now + Duration::from_millis(10));
    assert_eq!(actions(&mut table), [Did::Interrupt(0, vec![1])]);
    table.kill(&[id(1)], now + Duration::from_millis(11));
    table.done(0, vec![cancelled(1)], now + Duration::from_millis(12));
    assert_eq!(actions(&mut table), [Did::Report(1, "killed", None)]);
}

/// A slot that dies fails every task it ran together; one that died before it read its
/// together tasks gives them back to the queue.
#[test]
fn crashes_and_failed_hand_outs() {
    let now = Instant::now();
    let mut table = knowing(1, 3, now);
    table.run(vec![co(1), co(2)], now);
    actions(&mut table);
    table.exited(0, "was killed by signal 11", now);
    assert_eq!(
        actions(&mut table),
        [
            Did::Report(1, "crashed", Some(0)),
            Did::Report(2, "crashed", Some(0)),
            Did::Start(0)
        ]
    );
    table.process_started(0, Ok(()));
    table.hello(0, now);
    table.run(vec![co(3), co(4)], now);
    assert_eq!(actions(&mut table), [Did::Together(0, vec![3, 4])]);
    table.hand_failed(0, 2, true, now);
    assert_eq!(actions(&mut table), [Did::Kill(0)]);
    assert_eq!(table.queued(), 2);
    table.exited(0, "exited with code 1", now);
    assert_eq!(actions(&mut table), [Did::Start(0)]);
    table.process_started(0, Ok(()));
    table.hello(0, now);
    assert_eq!(actions(&mut table), [Did::Together(0, vec![3, 4])]);
}

/// A lost connection kills a slot running together tasks without reporting them; a shutdown
/// forgets them too.
#[test]
fn abandon_and_shutdown_forget_together_tasks() {
    let now = Instant::now();
    let mut table = knowing(2, 2, now);
    table.run(vec![co(1), co(2), co(3)], now);
    actions(&mut table);
    table.abandon();
    assert_eq!(actions(&mut table), [Did::Kill(0), Did::Kill(1)]);
    assert!(table.running().is_empty());
    table.exited(0, "was killed by signal 9", now);
    table.exited(1, "was killed by signal 9", now);
    assert_eq!(actions(&mut table), [Did::Start(0), Did::Start(1)]);
    table.shutdown();
    assert!(table.running().is_empty());
}
