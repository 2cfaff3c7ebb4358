//! The memory limit's rules without processes: a slot outgrown after a task is replaced with
//! its result standing and its hand requeued; one measured past the limit while a task runs is
//! killed and the task fails `MemoryLimit`; idle and fresh slots; the counts.

use super::super::tests::{actions, completed, id, learn_fast, ready_with, task, Did};
use super::super::*;
use std::time::Duration;

const MB: u64 = 1024 * 1024;

fn limited(count: usize, concurrency: usize, now: Instant) -> SlotTable {
    ready_with(count, concurrency, now).with_max_memory(Some(100 * MB))
}

/// The reports among the table's actions, with their error kinds and messages.
fn reports(table: &mut SlotTable) -> (Vec<Did>, Vec<(u64, String, String)>) {
    let mut did = Vec::new();
    let mut failed = Vec::new();
    while let Some(action) = table.next_action() {
        match action {
            Action::Report { report, .. } => match report.outcome {
                Outcome::Failed { error } => {
                    failed.push((report.task.0, error.kind, error.message))
                }
                other => did.push(Did::Report(
                    report.task.0,
                    if matches!(other, Outcome::Completed { .. }) {
                        "completed"
                    } else {
                        "killed"
                    },
                    None,
                )),
            },
            Action::Kill { slot } => did.push(Did::Kill(slot)),
            Action::Start { slot, .. } => did.push(Did::Start(slot)),
            Action::Hand { slot, count, .. } => did.push(Did::Hand(slot, vec![count as u64])),
            _ => {}
        }
    }
    (did, failed)
}

/// A slot that says `outgrown` after a task keeps that task's result, its prefetched hand goes
/// back to the queue (to the other slot), and it is killed and started afresh; counted once.
#[test]
fn outgrown_after_a_task_replaces_the_slot_and_keeps_the_result() {
    let now = Instant::now();
    let mut table = limited(2, 1, now);
    learn_fast(&mut table, "m:fast", now);
    table.run((1..=4).map(|i| task(i, "m:fast")).collect(), now);
    actions(&mut table);
    // Slot 0 reports task 1 and is then past the limit.
    let later = now + Duration::from_micros(100);
    table.done(0, vec![completed(1)], later);
    let did = actions(&mut table);
    assert!(did.contains(&Did::Report(1, "completed", None)), "{did:?}");
    table.outgrown(0, 150 * MB, later);
    let did = actions(&mut table);
    assert_eq!(did[0], Did::Kill(0));
    // What it held may go to the other slot at once, never back to slot 0.
    assert!(
        did[1..].iter().all(|d| matches!(d, Did::Hand(1, _))),
        "{did:?}"
    );
    assert_eq!(table.memory_counts().replaced, 1);
    assert_eq!(table.memory_counts().killed, 0);
    table.exited(0, "was killed by signal 9", later);
    assert_eq!(actions(&mut table), [Did::Start(0)]);
    // Nothing of slot 0's hand was lost: every task but 1 is still held.
    let mut held = table.running();
    held.sort();
    let ids: Vec<AttemptId> = held.into_iter().filter(|a| a.0 .0 < 900).collect();
    assert_eq!(ids, [id(2), id(3), id(4)]);
}

/// Measured past the limit twice in a row while its task runs, a slot is killed; at its exit the
/// task fails `MemoryLimit` naming the limit and the RSS, and the count of killed tasks is 1.
/// Under the limit, or past it once between two measurements under it, nothing happens.
#[test]
fn past_the_limit_during_a_task_fails_it_with_memory_limit() {
    let now = Instant::now();
    let mut table = limited(1, 1, now);
    table.run(vec![task(1, "m:big"), task(2, "m:big")], now);
    actions(&mut table);
    table.measured(0, 99 * MB, now);
    assert!(actions(&mut table).is_empty());
    assert_eq!(table.running_in(0), 1);
    assert_eq!(table.live_target(0), Some(id(1)));
    table.measured(0, 250 * MB, now);
    table.measured(0, 90 * MB, now);
    table.measured(0, 250 * MB, now);
    assert!(actions(&mut table).is_empty());
    table.measured(0, 250 * MB, now);
    assert_eq!(actions(&mut table), [Did::Kill(0)]);
    assert_eq!(table.live_target(0), None);
    table.exited(0, "was killed by signal 9", now);
    let (did, failed) = reports(&mut table);
    assert_eq!(did, [Did::Start(0)]);
    assert_eq!(failed.len(), 1);
    let (task_id, kind, message) = &failed[0];
    assert_eq!((*task_id, kind.as_str()), (1, "MemoryLimit"));
    assert!(
        message.contains("250 MB") && message.contains("--max-memory 100 MB"),
        "{message}"
    );
    assert_eq!(
        table.memory_counts(),
        MemoryCounts {
            limit: Some(100 * MB),
            replaced: 0,
            killed: 1
        }
    );
    // Task 2 waits for the fresh slot.
    let mut running = table.running();
    running.sort();
    assert_eq!(running, [id(2)]);
}

/// Every task a slot runs together fails `MemoryLimit` when the slot passes the limit, each
/// counted.
#[test]
fn together_tasks_all_fail_with_memory_limit() {
    let now = Instant::now();
    let mut table = limited(1, 4, now);
    table.coroutines(0, vec!["m:co".into()], now);
    table.run((1..=3).map(|i| task(i, "m:co")).collect(), now);
    actions(&mut table);
    assert_eq!(table.running_in(0), 3);
    assert_eq!(table.live_target(0), None);
    table.measured(0, 101 * MB, now);
    table.measured(0, 101 * MB, now);
    assert_eq!(actions(&mut table), [Did::Kill(0)]);
    table.exited(0, "was killed by signal 9", now);
    let (_, failed) = reports(&mut table);
    let kinds: Vec<(u64, &str)> = failed.iter().map(|(t, k, _)| (*t, k.as_str())).collect();
    assert_eq!(
        kinds,
        [(1, "MemoryLimit"), (2, "MemoryLimit"), (3, "MemoryLimit")]
    );
    assert_eq!(table.memory_counts().killed, 3);
}

/// An idle slot past the limit is replaced once it has run a task, never while fresh (a
/// too-small limit would otherwise replace slots forever); no limit, no action.
#[test]
fn idle_slots_are_replaced_only_after_a_task() {
    let now = Instant::now();
    let mut table = limited(1, 1, now);
    table.measured(0, 500 * MB, now);
    assert!(actions(&mut table).is_empty());
    table.run(vec![task(1, "m:f")], now);
    table.done(0, vec![completed(1)], now);
    actions(&mut table);
    table.measured(0, 500 * MB, now);
    assert_eq!(actions(&mut table), [Did::Kill(0)]);
    assert_eq!(table.memory_counts().replaced, 1);
    // Measurements of a slot being replaced change nothing.
    table.measured(0, 500 * MB, now);
    table.outgrown(0, 500 * MB, now);
    assert!(actions(&mut table).is_empty());
    assert_eq!(table.memory_counts().replaced, 1);

    let mut unlimited = ready_with(1, 1, now);
    unlimited.run(vec![task(1, "m:f")], now);
    actions(&mut unlimited);
    unlimited.measured(0, u64::MAX, now);
    assert!(actions(&mut unlimited).is_empty());
    assert!(!unlimited.wants_memory_samples());
    assert!(table.wants_memory_samples() || matches!(table.slots[0].phase, Phase::Killing(_)));
}

/// A task past the limit at one measurement that then ends is not killed: the next task is a
/// new one, and past the limit once under it is again only a first look.
#[test]
fn a_task_that_passes_the_limit_as_it_ends_is_judged_after_it() {
    let now = Instant::now();
    let mut table = limited(1, 1, now);
    table.run(vec![task(1, "m:f"), task(2, "m:f")], now);
    actions(&mut table);
    table.measured(0, 150 * MB, now);
    table.done(0, vec![completed(1)], now);
    actions(&mut table);
    table.measured(0, 150 * MB, now);
    let did = actions(&mut table);
    assert!(!did.contains(&Did::Kill(0)), "{did:?}");
    assert_eq!(table.memory_counts().killed, 0);
}
