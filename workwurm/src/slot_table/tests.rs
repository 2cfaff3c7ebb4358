//! The slot table's rules, without processes: prefetch queue, hand-out, kill, cancel, timeout,
//! crash, take-back, abandon and shutdown.

use super::hand_out::HAND_LOW;
use super::*;
use tatzelwurm_proto::task::{TaskPolicy, TaskSpec};

pub(super) fn task(id: u64, function: &str) -> Assignment {
    Assignment {
        task: TaskId(id),
        attempt: Attempt(1),
        spec: TaskSpec {
            function: function.into(),
            args: "[]".into(),
            kwargs: "{}".into(),
            policy: TaskPolicy::default(),
            ..TaskSpec::default()
        },
    }
}

pub(super) fn id(task: u64) -> AttemptId {
    (TaskId(task), Attempt(1))
}

pub(super) fn completed(task: u64) -> Report {
    Report {
        task: TaskId(task),
        attempt: Attempt(1),
        outcome: Outcome::Completed { result: "1".into() },
        output: TaskOutput::default(),
    }
}

/// What the actor would do, simplified for assertions.
#[derive(Debug, PartialEq)]
pub(super) enum Did {
    Start(usize),
    /// A run frame of tasks to run in order.
    Hand(usize, Vec<u64>),
    /// A run frame of tasks to run together.
    Together(usize, Vec<u64>),
    Cancel(usize, Vec<u64>),
    Interrupt(usize, Vec<u64>),
    Kill(usize),
    Report(u64, &'static str, Option<usize>),
}

pub(super) fn actions(table: &mut SlotTable) -> Vec<Did> {
    let mut did = Vec::new();
    while let Some(action) = table.next_action() {
        did.push(match action {
            Action::Start { slot, .. } => Did::Start(slot),
            Action::Hand {
                slot,
                frame,
                count,
                together,
            } => {
                let value: serde_json::Value = serde_json::from_slice(&frame[4..]).unwrap();
                let tasks = value["run"].as_array().unwrap();
                // Each task is [task, attempt, function, args, kwargs, needs, together].
                let ids: Vec<u64> = tasks.iter().map(|t| t[0].as_u64().unwrap()).collect();
                assert_eq!(ids.len(), count);
                for t in tasks {
                    assert_eq!(t[6].as_bool().unwrap_or(false), together);
                }
                if together {
                    Did::Together(slot, ids)
                } else {
                    Did::Hand(slot, ids)
                }
            }
            Action::Interrupt { slot, attempts } => {
                Did::Interrupt(slot, attempts.iter().map(|a| a.0 .0).collect())
            }
            Action::Cancel { slot, attempts } => {
                Did::Cancel(slot, attempts.iter().map(|a| a.0 .0).collect())
            }
            Action::Kill { slot } => Did::Kill(slot),
            Action::Report { report, output_of } => Did::Report(
                report.task.0,
                match report.outcome {
                    Outcome::Completed { .. } => "completed",
                    Outcome::Killed => "killed",
                    Outcome::Failed { error } if error.kind == "Timeout" => "timeout",
                    Outcome::Failed { error } if error.message.contains("did not stop within") => {
                        "replaced"
                    }
                    Outcome::Failed { error } if error.kind == "SlotCrashed" => "crashed",
                    Outcome::Failed { .. } => "failed",
                },
                output_of,
            ),
        });
    }
    did
}

/// A table of `count` slots, all started and ready.
pub(super) fn ready(count: usize, now: Instant) -> SlotTable {
    ready_with(count, 1, now)
}

/// A table of `count` slots running up to `concurrency` together tasks each, all ready.
pub(super) fn ready_with(count: usize, concurrency: usize, now: Instant) -> SlotTable {
    let mut table = SlotTable::new(count, concurrency);
    for slot in 0..count {
        table.process_started(slot, Ok(()));
        table.hello(slot, now);
    }
    assert_eq!(
        actions(&mut table),
        (0..count).map(Did::Start).collect::<Vec<_>>()
    );
    table
}

/// Teaches the table that `function` is fast by running one task of it on slot 0.
pub(super) fn learn_fast(table: &mut SlotTable, function: &str, now: Instant) {
    table.run(vec![task(900, function)], now);
    table.done(0, vec![completed(900)], now + Duration::from_micros(50));
    actions(table);
    table.take_started();
}

/// More tasks than free slots wait in the queue without complaint; an unknown function goes one
/// at a time per slot; each hand-out is named once in `take_started`; a report makes the next
/// task begin.
#[test]
fn prefetched_tasks_queue_and_unknown_functions_go_one_at_a_time() {
    let now = Instant::now();
    let mut table = ready(2, now);
    table.run((1..=5).map(|i| task(i, "m:slow")).collect(), now);
    assert_eq!(
        actions(&mut table),
        [Did::Hand(0, vec![1]), Did::Hand(1, vec![2])]
    );
    assert_eq!(table.take_started(), [id(1), id(2)]);
    assert_eq!(table.queued(), 3);
    let mut running = table.running();
    running.sort();
    assert_eq!(running, (1..=5).map(id).collect::<Vec<_>>());
    // It took 3 s: still one at a time.
    table.done(1, vec![completed(2)], now + Duration::from_secs(3));
    assert_eq!(
        actions(&mut table),
        [Did::Report(2, "completed", None), Did::Hand(1, vec![3])]
    );
    assert_eq!(table.take_started(), [id(3)]);
    assert!(table.take_started().is_empty());
}

/// Tasks of a function seen fast go several to a slot in one frame, spread over the slots, up
/// to `HAND_MAX` each; a slot is topped up only when its hand ran low.
#[test]
fn fast_tasks_are_handed_in_batches() {
    let now = Instant::now();
    let mut table = ready(2, now);
    learn_fast(&mut table, "m:noop", now);
    let n = 2 * HAND_MAX as u64 + 10;
    table.run((1..=n).map(|i| task(i, "m:noop")).collect(), now);
    let did = actions(&mut table);
    let [Did::Hand(0, first), Did::Hand(1, second)] = &did[..] else {
        panic!("{did:?}")
    };
    assert_eq!((first.len(), second.len()), (HAND_MAX, HAND_MAX));
    assert_eq!((first[0], first[1], second[0]), (1, 3, 2), "spread evenly");
    assert_eq!(table.queued(), 10);
    // One report leaves the hand far from low: nothing more is handed.
    table.done(0, vec![completed(1)], now);
    assert_eq!(actions(&mut table), [Did::Report(1, "completed", None)]);
    let reports: Vec<Report> = first[1..HAND_MAX - HAND_LOW]
        .iter()
        .map(|&t| completed(t))
        .collect();
    table.done(0, reports, now);
    let did = actions(&mut table);
    assert!(
        matches!(did.last(), Some(Did::Hand(0, more)) if more.len() == 10),
        "{did:?}"
    );
}

/// A slow front, or one that has run long, gets nothing behind it.
#[test]
fn nothing_waits_behind_a_slow_or_old_task() {
    let now = Instant::now();
    let mut table = ready(1, now);
    learn_fast(&mut table, "m:noop", now);
    table.run(vec![task(1, "m:sleep"), task(2, "m:noop")], now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![1])]);
    table.done(0, vec![completed(1)], now + Duration::from_secs(3));
    assert_eq!(
        actions(&mut table),
        [Did::Report(1, "completed", None), Did::Hand(0, vec![2])]
    );
    // The noop is front now; one more noop may go behind it only while it is young.
    table.run(vec![task(3, "m:noop")], now + Duration::from_secs(4));
    assert!(actions(&mut table).is_empty());
    assert_eq!(table.queued(), 1);
}

/// A task of a short function waits one deep (never two) behind a young short front, so that
/// the slot begins it without a round trip; not behind a front that ran `SHORT`, nor behind one
/// of a function not known to be short.
#[test]
fn one_short_task_waits_behind_a_young_short_front() {
    let ms = Duration::from_millis;
    let now = Instant::now();
    let mut table = ready(1, now);
    table.run(vec![task(900, "m:sleep")], now);
    table.done(0, vec![completed(900)], now + ms(50));
    actions(&mut table);
    let t = now + ms(60);
    table.run((1..=3).map(|i| task(i, "m:sleep")).collect(), t);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![1, 2])]);
    assert_eq!(table.queued(), 1);
    // 2 begins as 1 is reported; 3 goes behind it.
    table.done(0, vec![completed(1)], t + ms(50));
    assert_eq!(
        actions(&mut table),
        [Did::Report(1, "completed", None), Did::Hand(0, vec![3])]
    );
    // 3 begins; one that arrives once it ran `SHORT` waits in the queue.
    table.done(0, vec![completed(2)], t + ms(100));
    actions(&mut table);
    table.run(vec![task(4, "m:sleep")], t + ms(100) + SHORT);
    assert!(actions(&mut table).is_empty());
    table.done(0, vec![completed(3)], t + ms(150) + SHORT);
    assert_eq!(
        actions(&mut table),
        [Did::Report(3, "completed", None), Did::Hand(0, vec![4])]
    );
    // Nothing goes behind a front of a function not known to be short.
    table.done(0, vec![completed(4)], t + ms(200) + SHORT);
    actions(&mut table);
    let later = t + ms(300) + SHORT;
    table.run(vec![task(5, "m:slow"), task(6, "m:sleep")], later);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![5])]);
    assert_eq!(table.queued(), 1);
}

/// A take-back returns exactly the named attempts that are still queued; handed ones stay.
#[test]
fn take_back_returns_only_queued_attempts() {
    let now = Instant::now();
    let mut table = ready(1, now);
    table.run((1..=4).map(|i| task(i, "m:f")).collect(), now);
    actions(&mut table);
    let returned = table.take_back(&[id(1), id(3), id(4), id(9)]);
    assert_eq!(returned, [id(3), id(4)]);
    assert_eq!(table.queued(), 1);
    assert_eq!(table.running(), [id(1), id(2)]);
}

/// A kill of a queued attempt reports it at once; of a running one kills its slot and reports it
/// when the process is gone, with its output; the slot is restarted.
#[test]
fn kill_of_queued_and_running_attempts() {
    let now = Instant::now();
    let mut table = ready(1, now);
    table.run((1..=3).map(|i| task(i, "m:f")).collect(), now);
    actions(&mut table);
    table.kill(&[id(2), id(7)], now);
    assert_eq!(actions(&mut table), [Did::Report(2, "killed", None)]);
    table.kill(&[id(1)], now);
    assert_eq!(actions(&mut table), [Did::Kill(0)]);
    assert_eq!(table.running(), [id(1), id(3)]);
    // Its result, if it crossed the kill, is not reported: the kill stands (its output went with
    // that result).
    table.done(0, vec![completed(1)], now);
    assert_eq!(actions(&mut table), []);
    table.exited(0, "was killed by signal 9", now);
    assert_eq!(
        actions(&mut table),
        [Did::Report(1, "killed", None), Did::Start(0)]
    );
    table.process_started(0, Ok(()));
    table.hello(0, now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![3])]);
}

/// A kill of a task handed to a slot but not begun reports it at once and asks the slot to skip
/// it; the slot's `skipped` removes it, and the task behind it begins after the front's report.
#[test]
fn kill_of_a_handed_task_cancels_it_in_the_slot() {
    let now = Instant::now();
    let mut table = ready(1, now);
    learn_fast(&mut table, "m:noop", now);
    table.run((1..=3).map(|i| task(i, "m:noop")).collect(), now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![1, 2, 3])]);
    table.kill(&[id(2)], now);
    assert_eq!(
        actions(&mut table),
        [Did::Cancel(0, vec![2]), Did::Report(2, "killed", None)]
    );
    assert_eq!(table.running(), [id(1), id(3)]);
    // Killing it again changes nothing.
    table.kill(&[id(2)], now);
    assert_eq!(actions(&mut table), []);
    table.skipped(0, &[id(2)]);
    table.done(0, vec![completed(1)], now);
    assert_eq!(actions(&mut table), [Did::Report(1, "completed", None)]);
    assert_eq!(table.running(), [id(3)]);
    table.done(0, vec![completed(3)], now);
    assert_eq!(actions(&mut table), [Did::Report(3, "completed", None)]);
    assert!(table.running().is_empty());
}

/// When the cancel crossed the front's report (the slot began the cancelled task), the slot is
/// killed at once; the tasks behind it go back to the queue and run on the fresh slot.
#[test]
fn a_cancelled_task_the_slot_began_is_killed() {
    let now = Instant::now();
    let mut table = ready(1, now);
    learn_fast(&mut table, "m:noop", now);
    table.run((1..=3).map(|i| task(i, "m:noop")).collect(), now);
    actions(&mut table);
    table.kill(&[id(2)], now);
    actions(&mut table);
    table.done(0, vec![completed(1)], now);
    assert_eq!(
        actions(&mut table),
        [Did::Report(1, "completed", None), Did::Kill(0)]
    );
    assert_eq!(table.running(), [id(3)]);
    table.exited(0, "was killed by signal 9", now);
    assert_eq!(
        actions(&mut table),
        [Did::Start(0)],
        "2 was reported already"
    );
    assert_eq!(table.queued(), 1, "3 never began");
    table.process_started(0, Ok(()));
    table.hello(0, now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![3])]);
}

/// A timeout runs from the moment the task begins in its slot (not while it is queued or held
/// behind another), and leaves with its attempt.
#[test]
fn timeout_runs_from_the_start_in_the_slot() {
    let now = Instant::now();
    let mut table = ready(1, now);
    // One that ends in time takes its deadline with it: the next task is not hit.
    let mut quick = task(7, "m:f");
    quick.spec.policy.timeout_ms = Some(600);
    table.run(vec![quick, task(8, "m:f")], now);
    actions(&mut table);
    assert_eq!(
        table.next_deadline(),
        Some(now + Duration::from_millis(600))
    );
    table.done(0, vec![completed(7)], now + Duration::from_millis(100));
    assert_eq!(table.next_deadline(), None);
    table.time_out(now + Duration::from_secs(1));
    table.done(0, vec![completed(8)], now + Duration::from_secs(2));
    assert_eq!(
        actions(&mut table),
        [
            Did::Report(7, "completed", None),
            Did::Hand(0, vec![8]),
            Did::Report(8, "completed", None)
        ]
    );
    let mut timed = task(2, "m:f");
    timed.spec.policy.timeout_ms = Some(600);
    table.run(vec![task(1, "m:f"), timed], now);
    actions(&mut table);
    assert_eq!(table.next_deadline(), None, "the running task has none");
    let later = now + Duration::from_secs(5);
    table.done(0, vec![completed(1)], later);
    actions(&mut table);
    assert_eq!(
        table.next_deadline(),
        Some(later + Duration::from_millis(600))
    );
    table.time_out(later + Duration::from_millis(599));
    assert_eq!(actions(&mut table), []);
    table.time_out(later + Duration::from_millis(600));
    assert_eq!(actions(&mut table), [Did::Kill(0)]);
    assert_eq!(table.next_deadline(), None);
    // A kill during the timeout's stop turns it into the kill that was asked for.
    table.kill(&[id(2)], later);
    table.exited(0, "was killed by signal 9", later);
    assert_eq!(
        actions(&mut table),
        [Did::Report(2, "killed", Some(0)), Did::Start(0)]
    );
}

/// A slot that dies under a task reports it crashed with its output, gives the tasks it held
/// back to the queue, and is restarted; one dying between tasks is restarted with a back-off.
#[test]
fn crash_reports_the_front_and_requeues_the_rest() {
    let now = Instant::now();
    let mut table = ready(1, now);
    learn_fast(&mut table, "m:noop", now);
    table.run((1..=3).map(|i| task(i, "m:noop")).collect(), now);
    actions(&mut table);
    table.exited(0, "exited with code 3", now);
    assert_eq!(
        actions(&mut table),
        [Did::Report(1, "crashed", Some(0)), Did::Start(0)]
    );
    assert_eq!(table.queued(), 2);
    table.process_started(0, Ok(()));
    table.hello(0, now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![2, 3])]);
    table.done(0, vec![completed(2), completed(3)], now);
    actions(&mut table);
    table.exited(0, "was killed by signal 9", now);
    assert!(matches!(actions(&mut table)[..], [Did::Start(0)]));
    assert_eq!(
        table.slots[0].failures, 1,
        "between tasks counts as a failure"
    );
}

/// A hand-out whose write failed (the process is gone) goes back to the queue; the slot gets
/// nothing more until its exit, and then serves again.
#[test]
fn failed_hand_out_goes_back_to_the_queue() {
    let now = Instant::now();
    let mut table = ready(1, now);
    table.run(vec![task(1, "m:f"), task(2, "m:f")], now);
    actions(&mut table);
    table.hand_failed(0, 1, false, now);
    assert_eq!(actions(&mut table), [Did::Kill(0)]);
    assert_eq!(table.queued(), 2);
    table.exited(0, "was killed by signal 9", now);
    assert!(matches!(actions(&mut table)[..], [Did::Start(0)]));
    table.process_started(0, Ok(()));
    table.hello(0, now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![1])]);
}

/// Abandoning kills running attempts without reports and drops queued ones; a result that was
/// already on its way is still reported.
#[test]
fn abandon_forgets_everything() {
    let now = Instant::now();
    let mut table = ready(2, now);
    table.run((1..=3).map(|i| task(i, "m:f")).collect(), now);
    actions(&mut table);
    table.abandon();
    assert_eq!(actions(&mut table), [Did::Kill(0), Did::Kill(1)]);
    assert!(table.running().is_empty());
    table.done(0, vec![completed(1)], now);
    assert_eq!(actions(&mut table), [Did::Report(1, "completed", None)]);
    table.exited(0, "was killed by signal 9", now);
    table.exited(1, "was killed by signal 9", now);
    assert_eq!(actions(&mut table), [Did::Start(0), Did::Start(1)]);
}

/// A shutdown kills every process and starts none; it is complete once every exit arrived.
#[test]
fn shutdown_kills_and_restarts_nothing() {
    let now = Instant::now();
    let mut table = ready(2, now);
    table.run(vec![task(1, "m:f")], now);
    actions(&mut table);
    table.shutdown();
    assert_eq!(actions(&mut table), [Did::Kill(0), Did::Kill(1)]);
    assert!(!table.all_dead());
    table.exited(0, "was killed by signal 9", now);
    table.exited(1, "was killed by signal 9", now);
    assert_eq!(actions(&mut table), []);
    assert!(table.all_dead());
    table.run(vec![task(2, "m:f")], now);
    assert_eq!(actions(&mut table), []);
}

/// A slot that cannot be started is retried with growing pauses, and a task waits meanwhile.
#[test]
fn failed_starts_back_off() {
    let now = Instant::now();
    let mut table = SlotTable::new(1, 1);
    actions(&mut table);
    table.run(vec![task(1, "m:f")], now);
    for expected in [100, 200, 400] {
        table.process_started(0, Err("no such file".into()));
        let Some(Action::Start { delay, .. }) = table.next_action() else {
            panic!("a restart")
        };
        assert_eq!(delay, Duration::from_millis(expected));
    }
    assert_eq!(table.running(), [id(1)]);
}

/// A kill of a running task whose `done` crossed the kill: the slot went on to the next task it
/// held, so that one may have begun when the SIGKILL landed. It is reported crashed (never run
/// again unasked: it may be at-most-once); one that ran to its end before is reported as it
/// ended; the rest never began and go back to the queue.
#[test]
fn a_kill_that_crossed_the_slots_progress_runs_nothing_twice() {
    let now = Instant::now();
    let mut table = ready(1, now);
    learn_fast(&mut table, "m:noop", now);
    table.run((1..=4).map(|i| task(i, "m:noop")).collect(), now);
    actions(&mut table);
    table.kill(&[id(1)], now);
    assert_eq!(actions(&mut table), [Did::Kill(0)]);
    // Already in the pipe when the kill was sent: 1 and 2 ended, 3 had begun.
    table.done(0, vec![completed(1)], now);
    table.done(0, vec![completed(2)], now);
    assert_eq!(actions(&mut table), [Did::Report(2, "completed", None)]);
    assert_eq!(table.running(), [id(1), id(3), id(4)]);
    table.exited(0, "was killed by signal 9", now);
    assert_eq!(
        actions(&mut table),
        [
            Did::Report(1, "killed", None),
            Did::Report(3, "crashed", Some(0)),
            Did::Start(0)
        ]
    );
    assert_eq!(table.queued(), 1);
    assert_eq!(table.running(), [id(4)]);
}

/// A kill of a running task with fast tasks behind it: they had not begun (the slot begins the
/// next only after reporting the front), so they all go back to the queue at the exit.
#[test]
fn a_kill_requeues_the_tasks_held_behind_the_front() {
    let now = Instant::now();
    let mut table = ready(1, now);
    learn_fast(&mut table, "m:noop", now);
    table.run((1..=3).map(|i| task(i, "m:noop")).collect(), now);
    actions(&mut table);
    table.kill(&[id(1)], now);
    table.exited(0, "was killed by signal 9", now);
    assert_eq!(
        actions(&mut table),
        [
            Did::Kill(0),
            Did::Report(1, "killed", Some(0)),
            Did::Start(0)
        ]
    );
    assert_eq!(table.queued(), 2);
}

/// A hand-out that fails after the slot's exit was handled in the same turn changes nothing:
/// the exit settled the hand already.
#[test]
fn a_late_failed_hand_out_is_ignored() {
    let now = Instant::now();
    let mut table = ready(1, now);
    table.run(vec![task(1, "m:f"), task(2, "m:f")], now);
    table.exited(0, "was killed by signal 9", now);
    let did = actions(&mut table);
    assert_eq!(did.last(), Some(&Did::Start(0)), "{did:?}");
    table.hand_failed(0, 1, false, now);
    assert_eq!(actions(&mut table), []);
    assert_eq!(table.queued(), 1, "2 waits; 1 was reported crashed");
}
