//! The start condition of held tasks, without processes: the pure `Waits` and the slot table's
//! use of it (passing waiting tasks over, handing them behind their dependencies with `needs`,
//! a slot's `unmet`, kills and take-backs of waiting tasks).

use super::super::tests::{actions, completed, id, learn_fast, ready, task, Did};
use super::*;
use crate::slot_table::Action;
use tatzelwurm_proto::task::{Outcome, TaskError, TaskOutput};
use tatzelwurm_proto::worker::Report;
use tatzelwurm_proto::Attempt;

fn after(id: u64, function: &str, deps: &[u64]) -> Assignment {
    let mut assignment = task(id, function);
    assignment.spec.after = deps.iter().map(|d| TaskId(*d)).collect();
    assignment
}

fn failed(task: u64) -> Report {
    Report {
        task: TaskId(task),
        attempt: Attempt(1),
        outcome: Outcome::Failed {
            error: TaskError {
                kind: "ValueError".into(),
                message: "no".into(),
                traceback: String::new(),
            },
        },
        output: TaskOutput::default(),
    }
}

/// A run frame as (slot, [(task, [ids of the tasks its `needs` names])]).
type Frame = (usize, Vec<(u64, Vec<u64>)>);

/// The run frames the table asked for, in order.
fn frames(table: &mut SlotTable) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(action) = table.next_action() {
        if let Action::Hand { slot, frame, .. } = action {
            let value: serde_json::Value = serde_json::from_slice(&frame[4..]).unwrap();
            let tasks = value["run"].as_array().unwrap();
            out.push((
                slot,
                tasks
                    .iter()
                    .map(|t| {
                        // [task, attempt, function, args, kwargs, needs, together]
                        let needs = t[5]
                            .as_array()
                            .map(|n| n.iter().map(|p| p[0].as_u64().unwrap()).collect())
                            .unwrap_or_default();
                        (t[0].as_u64().unwrap(), needs)
                    })
                    .collect(),
            ));
        }
    }
    out
}

/// A task waits for the held tasks it names until each completed here; ids not held count as
/// done; one that ends otherwise dooms it; a task with nothing to wait for is never noted.
#[test]
fn waits_tick_off_completions_and_doom_on_anything_else() {
    let now = Instant::now();
    let mut waits = Waits::default();
    let held = |id: TaskId| id.0 == 1 || id.0 == 2;
    waits.arrive(&task(9, "m:f"), held);
    waits.arrive(&after(3, "m:f", &[1, 2, 77]), held);
    waits.arrive(&after(4, "m:f", &[1]), held);
    waits.arrive(&after(5, "m:f", &[77]), held);
    assert!(waits.startable(TaskId(9)) && waits.startable(TaskId(5)));
    assert!(!waits.startable(TaskId(3)) && !waits.startable(TaskId(4)));
    assert_eq!(
        waits.condition(TaskId(3)),
        Some(&[TaskId(1), TaskId(2)][..])
    );
    waits.ended(TaskId(1), true, None);
    assert!(waits.startable(TaskId(4)), "its only dependency completed");
    assert_eq!(waits.condition(TaskId(3)), Some(&[TaskId(2)][..]));
    waits.ended(TaskId(2), false, Some(now));
    assert!(!waits.startable(TaskId(3)), "doomed: it never starts here");
    assert_eq!(
        waits.condition(TaskId(3)),
        None,
        "and never goes behind anything"
    );
    // A Run that names task 2 after it ended here without completing is doomed at once (it was
    // sent before the coordinator heard of the end).
    waits.arrive(&after(6, "m:f", &[2]), |_| false);
    assert!(!waits.startable(TaskId(6)));
    // Ending (killed, given back) forgets a waiting task itself.
    waits.ended(TaskId(3), false, Some(now));
    waits.ended(TaskId(6), false, Some(now));
    assert!(waits.is_empty());
    waits.clear();
    waits.arrive(&after(7, "m:f", &[2]), |_| false);
    assert!(
        waits.startable(TaskId(7)),
        "a lost connection forgets what ended"
    );
}

/// Remembered failures are forgotten after `UNMET_KEEP`, once many have piled up.
#[test]
fn old_unmet_ends_are_swept() {
    let now = Instant::now();
    let mut waits = Waits::default();
    waits.ended(TaskId(1), false, Some(now));
    let later = now + UNMET_KEEP + Duration::from_secs(1);
    for n in 0..UNMET_SWEEP as u64 {
        waits.ended(TaskId(100 + n), false, Some(later));
    }
    assert!(!waits.unmet.contains_key(&TaskId(1)));
    assert!(waits.unmet.contains_key(&TaskId(100)));
}

/// A held task of a function not known to be fast waits in the queue until its dependency
/// completed here, and tasks behind it pass it meanwhile.
#[test]
fn a_held_task_starts_after_its_dependency_completed() {
    let now = Instant::now();
    let mut table = ready(2, now);
    table.run(vec![task(1, "m:slow")], now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![1])]);
    table.run(vec![after(2, "m:slow", &[1]), task(3, "m:slow")], now);
    assert_eq!(actions(&mut table), [Did::Hand(1, vec![3])], "3 passes 2");
    let later = now + Duration::from_secs(3);
    table.done(1, vec![completed(3)], later);
    assert_eq!(
        actions(&mut table),
        [Did::Report(3, "completed", None)],
        "2 still waits for 1, though slot 1 is idle"
    );
    table.done(0, vec![completed(1)], later);
    assert_eq!(
        actions(&mut table),
        [Did::Report(1, "completed", None), Did::Hand(0, vec![2])]
    );
}

/// A held task whose dependency failed here never starts: it is given back unasked, and so is
/// what waits for it in turn; a kill or take-back of it afterwards finds nothing.
#[test]
fn a_failed_dependency_gives_its_dependents_back() {
    let now = Instant::now();
    let mut table = ready(1, now);
    table.run(vec![task(1, "m:slow")], now);
    table.run(
        vec![after(2, "m:slow", &[1]), after(3, "m:slow", &[2])],
        now,
    );
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![1])]);
    assert!(table.take_returned().is_empty());
    table.done(0, vec![failed(1)], now);
    assert_eq!(actions(&mut table), [Did::Report(1, "failed", None)]);
    assert_eq!(table.take_returned(), [id(2), id(3)]);
    assert_eq!(table.queued(), 0, "neither started");
    assert_eq!(table.take_back(&[id(2)]), []);
    table.kill(&[id(3)], now);
    assert!(actions(&mut table).is_empty());
    // A task sent before the coordinator heard of the failure is given back on arrival...
    table.run(vec![after(4, "m:slow", &[1])], now);
    assert_eq!(table.take_returned(), [id(4)]);
    assert!(actions(&mut table).is_empty());
    // ...until a new attempt of the failed task arrives: then it waits for that one.
    let mut retry = task(1, "m:slow");
    retry.attempt = Attempt(2);
    table.run(vec![retry, after(5, "m:slow", &[1])], now);
    // (The failure at `now` taught the table that m:slow is fast: 5 goes behind 1.)
    assert_eq!(frames(&mut table), [(0, vec![(1, vec![]), (5, vec![1])])]);
    assert!(table.take_returned().is_empty());
}

/// A task that names tasks this worker does not hold starts at once (they completed
/// elsewhere, or the coordinator would not have sent it).
#[test]
fn ids_not_held_count_as_done() {
    let now = Instant::now();
    let mut table = ready(1, now);
    table.run(vec![after(5, "m:slow", &[1, 2])], now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![5])]);
}

/// Held tasks of a fast function go behind their dependency in its slot's hand, each with the
/// condition naming the attempt it runs after, as a chain; a slot that skips one (`unmet`)
/// puts it back, where it stays unstartable (its dependency failed) until taken back.
#[test]
fn a_chain_goes_behind_its_head_with_conditions() {
    let now = Instant::now();
    let mut table = ready(2, now);
    learn_fast(&mut table, "m:noop", now);
    table.run(vec![task(1, "m:noop")], now);
    table.run(
        vec![
            after(2, "m:noop", &[1]),
            after(3, "m:noop", &[2]),
            task(4, "m:noop"),
        ],
        now,
    );
    let did = frames(&mut table);
    assert_eq!(
        did,
        [
            (0, vec![(1, vec![])]),
            (0, vec![(2, vec![1]), (3, vec![2])]),
            (1, vec![(4, vec![])]),
        ]
    );
    assert_eq!(table.take_started(), [id(1), id(2), id(3), id(4)]);
    // Task 1 fails in the slot, which then skips 2 and 3 in place of their `done`s: they
    // come back and are given back unasked, never handed again.
    table.done(0, vec![failed(1)], now);
    assert!(table.take_returned().is_empty(), "still in the slot's hand");
    table.unmet(0, &[id(2), id(3)], now);
    assert_eq!(actions(&mut table), [Did::Report(1, "failed", None)]);
    assert_eq!(table.take_returned(), [id(2), id(3)]);
    assert_eq!(table.queued(), 0);
    table.done(1, vec![completed(4)], now);
    assert_eq!(actions(&mut table), [Did::Report(4, "completed", None)]);
}

/// When the dependency completes, the conditioned task is simply the next one in the slot.
#[test]
fn a_conditioned_task_runs_on_after_its_dependency_completed() {
    let now = Instant::now();
    let mut table = ready(1, now);
    learn_fast(&mut table, "m:noop", now);
    table.run(vec![task(1, "m:noop"), after(2, "m:noop", &[1])], now);
    assert_eq!(frames(&mut table), [(0, vec![(1, vec![]), (2, vec![1])])]);
    table.done(0, vec![completed(1), completed(2)], now);
    assert_eq!(
        actions(&mut table),
        [
            Did::Report(1, "completed", None),
            Did::Report(2, "completed", None)
        ]
    );
    assert_eq!(table.queued(), 0);
    assert!(table.waits.is_empty());
}

/// A task whose dependencies are in two slots' hands waits; once only one is left, it may go
/// behind that one, with the condition naming just it.
#[test]
fn dependencies_in_two_slots_are_waited_for() {
    let now = Instant::now();
    let mut table = ready(2, now);
    learn_fast(&mut table, "m:noop", now);
    table.run(vec![task(1, "m:noop"), task(2, "m:noop")], now);
    table.run(vec![after(3, "m:noop", &[1, 2])], now);
    assert_eq!(
        frames(&mut table),
        [(0, vec![(1, vec![])]), (1, vec![(2, vec![])])],
        "not behind either"
    );
    table.done(0, vec![completed(1)], now);
    let did = frames(&mut table);
    assert_eq!(did, [(1, vec![(3, vec![2])])]);
}

/// A take-back of a dependency gives back what waits for it too; abandon forgets everything.
#[test]
fn a_dependency_given_back_dooms_its_dependents() {
    let now = Instant::now();
    let mut table = ready(1, now);
    table.run(vec![task(1, "m:slow"), task(2, "m:slow")], now);
    table.run(vec![after(3, "m:slow", &[2])], now);
    assert_eq!(actions(&mut table), [Did::Hand(0, vec![1])]);
    assert_eq!(table.take_back(&[id(2)]), [id(2)]);
    assert_eq!(table.take_returned(), [id(3)], "3 never starts here");
    table.done(0, vec![completed(1)], now);
    assert_eq!(actions(&mut table), [Did::Report(1, "completed", None)]);
    assert_eq!(table.queued(), 0);
    table.run(vec![task(6, "m:slow"), task(7, "m:slow")], now);
    table.run(vec![after(8, "m:slow", &[7])], now);
    table.abandon();
    assert!(table.waits.is_empty());
}
