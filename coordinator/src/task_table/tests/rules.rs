//! The scheduling and control rules of the table, tested as the rest of it is (`Sim`):
//! priorities and queues, start times and the due index, dependencies and their cascade, pause
//! and play, kill from every state, queue counts, and all of it across a restart.

use super::*;
use tatzelwurm_proto::queue::QueueChange;
use tatzelwurm_proto::task::{When, DEPENDENCY_FAILED};

/// A task of queue `queue` with priority `priority`.
fn placed(n: u32, queue: &str, priority: i8) -> TaskSpec {
    TaskSpec {
        queue: queue.into(),
        priority,
        ..spec(n)
    }
}

/// A task that runs after `ids`.
fn after(n: u32, ids: &[u64]) -> TaskSpec {
    TaskSpec {
        after: ids.iter().map(|id| TaskId(*id)).collect(),
        ..spec(n)
    }
}

/// A task that starts not before `when`.
fn timed(n: u32, when: When) -> TaskSpec {
    TaskSpec {
        run_at: Some(when),
        ..spec(n)
    }
}

/// The ids `assign` hands out, one by one, until nothing is ready.
fn hand_all(table: &mut Sim) -> Vec<u64> {
    std::iter::from_fn(|| table.assign(W1, "w1", 1, NOW).pop())
        .map(|a| a.task.0)
        .collect()
}

fn error_of(table: &Sim, id: u64) -> TaskError {
    table.show(TaskId(id)).unwrap().error.unwrap()
}

/// Higher priority first, first in first out within one; across queues the better head wins.
#[test]
fn priorities_order_the_ready_tasks() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(
        vec![
            placed(1, "default", 0),
            placed(2, "default", 5),
            placed(3, "other", 0),
            placed(4, "default", 5),
            placed(5, "other", 9),
            placed(6, "default", -2),
        ],
        true,
        NOW,
    );
    assert_eq!(table.ready_len(), 6);
    assert_eq!(hand_all(&mut table), vec![5, 2, 4, 1, 3, 6]);
}

/// A task given back or lost unstarted goes to the front of its own priority: ahead of newer
/// tasks of that priority, behind higher ones.
#[test]
fn requeued_tasks_go_first_in_their_priority() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(
        vec![placed(1, "default", 0), placed(2, "default", 0)],
        true,
        NOW,
    );
    let handed = table.assign(W1, "w1", 1, NOW);
    assert_eq!(handed[0].task, TaskId(1));
    table.add(vec![placed(3, "default", 1)], true, NOW);
    assert_eq!(table.worker_lost(W1, NOW).unstarted, 1);
    assert_eq!(hand_all(&mut table), vec![3, 1, 2]);
}

/// A delay becomes the time it means at the add, stored so; the task is scheduled until the
/// due index says it is due, then ready. A start time in the past is ready at once.
#[test]
fn delays_and_start_times() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    let ids = table.add(
        vec![
            timed(1, When::Delay(5_000)),
            timed(2, When::At(Timestamp(NOW.0 - 1))),
            timed(3, When::At(Timestamp(NOW.0 + 2_000))),
        ],
        true,
        NOW,
    );
    let first = table.show(ids[0]).unwrap();
    assert_eq!(first.state, TaskState::Scheduled);
    assert_eq!(first.spec.run_at, Some(When::At(Timestamp(NOW.0 + 5_000))));
    assert_eq!(state(&table, ids[1]), TaskState::Ready);
    assert_eq!(table.next_due(), Some(Timestamp(NOW.0 + 2_000)));
    assert_eq!(table.promote_due(Timestamp(NOW.0 + 1_999)), 0);
    assert_eq!(table.promote_due(Timestamp(NOW.0 + 2_000)), 1);
    assert_eq!(table.next_due(), Some(Timestamp(NOW.0 + 5_000)));
    assert_eq!(table.promote_due(Timestamp(NOW.0 + 9_000)), 1);
    assert_eq!(table.next_due(), None);
    assert_eq!(hand_all(&mut table), vec![2, 3, 1]);
    // Without play it stays created, and play schedules it then.
    let later = table.add(vec![timed(4, When::Delay(1_000))], false, NOW);
    assert_eq!(state(&table, later[0]), TaskState::Created);
    table.play(&Selection::Ids(later.clone())).unwrap();
    assert_eq!(state(&table, later[0]), TaskState::Scheduled);
}

/// A start time that passed while the coordinator was down makes the task ready at the first
/// round after the start; one still ahead stays scheduled.
#[test]
fn a_restart_keeps_start_times() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(
        vec![timed(1, When::Delay(1_000)), timed(2, When::Delay(60_000))],
        true,
        NOW,
    );
    let later = Timestamp(NOW.0 + 10_000);
    table.restart(later);
    assert_eq!(state(&table, TaskId(1)), TaskState::Scheduled);
    assert_eq!(table.promote_due(later), 1);
    assert_eq!(state(&table, TaskId(1)), TaskState::Ready);
    assert_eq!(state(&table, TaskId(2)), TaskState::Scheduled);
    assert_eq!(table.next_due(), Some(Timestamp(NOW.0 + 60_000)));
}

/// Pause applies to created, ready and scheduled tasks; play takes them on, a scheduled one
/// with its time kept; a paused task is never handed out nor waited for by `wait -a`.
#[test]
fn pause_and_play() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(vec![spec(1)], false, NOW);
    table.add(
        vec![spec(2), timed(3, When::Delay(5_000)), spec(4)],
        true,
        NOW,
    );
    table.add(vec![after(5, &[4])], true, NOW);
    let running = table.assign(W1, "w1", 1, NOW);
    assert_eq!(running[0].task, TaskId(2));
    let outcome = table.table.pause(&Selection::All, &table.store).unwrap();
    assert_eq!(outcome.changed, vec![TaskId(1), TaskId(3), TaskId(4)]);
    let outcome = table
        .table
        .pause(&Selection::Ids(vec![TaskId(2), TaskId(5)]), &table.store)
        .unwrap();
    assert_eq!(
        outcome.unchanged,
        vec![
            (TaskId(2), TaskState::Running),
            (TaskId(5), TaskState::Blocked)
        ]
    );
    assert_eq!(state(&table, TaskId(3)), TaskState::Paused);
    assert_eq!(table.ready_len(), 0, "a paused task leaves its lane");
    assert_eq!(table.promote_due(Timestamp(NOW.0 + 9_000)), 0);
    assert_eq!(
        table.wait_targets(&Selection::All).unwrap(),
        vec![TaskId(2), TaskId(5)]
    );
    let outcome = table.play(&Selection::All).unwrap();
    assert_eq!(outcome.changed, vec![TaskId(1), TaskId(3), TaskId(4)]);
    assert_eq!(state(&table, TaskId(3)), TaskState::Scheduled);
    assert_eq!(table.next_due(), Some(Timestamp(NOW.0 + 5_000)));
    assert_eq!(hand_all(&mut table), vec![1, 4]);
    let changes = table.take_changes();
    assert!(changes.records().any(|r| r.id() == TaskId(3)));
}

/// A dependent waits `blocked` until its last dependency completes, then runs.
#[test]
fn a_completion_releases_the_dependents() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(vec![spec(1), spec(2)], true, NOW);
    table.add(vec![after(3, &[1, 2, 1])], true, NOW);
    table.add(
        vec![TaskSpec {
            run_at: Some(When::Delay(1_000)),
            ..after(4, &[3])
        }],
        true,
        NOW,
    );
    assert_eq!(state(&table, TaskId(3)), TaskState::Blocked);
    let handed = table.assign(W1, "w1", 5, NOW);
    assert_eq!(handed.len(), 2, "only the dependencies run");
    table.report(W1, done(TaskId(1), Attempt(1), "1"), NOW);
    assert_eq!(state(&table, TaskId(3)), TaskState::Blocked);
    table.report(W1, done(TaskId(2), Attempt(1), "2"), NOW);
    assert_eq!(state(&table, TaskId(3)), TaskState::Ready);
    let handed = table.assign(W1, "w1", 5, NOW);
    assert_eq!(handed[0].task, TaskId(3));
    table.report(W1, done(TaskId(3), Attempt(1), "3"), NOW);
    assert_eq!(
        state(&table, TaskId(4)),
        TaskState::Scheduled,
        "released into its start time"
    );
}

/// A failure fails the dependents with `DependencyFailed` naming it, and theirs in turn; a
/// kill does the same, saying so.
#[test]
fn a_failure_cascades_down_the_chain() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(vec![spec(1)], true, NOW);
    table.add(vec![after(2, &[1])], true, NOW);
    table.add(vec![after(3, &[2])], false, NOW);
    table.add(vec![spec(4)], true, NOW);
    table.add(vec![after(5, &[4])], true, NOW);
    let handed = table.assign(W1, "w1", 1, NOW);
    table.report(W1, failed(handed[0].task, Attempt(1)), NOW);
    assert_eq!(state(&table, TaskId(2)), TaskState::Failed);
    assert_eq!(state(&table, TaskId(3)), TaskState::Failed);
    let error = error_of(&table, 2);
    assert_eq!(error.kind, DEPENDENCY_FAILED);
    assert_eq!(error.message, "task 1, which this task runs after, failed");
    assert_eq!(
        error_of(&table, 3).message,
        "task 2, which this task runs after, failed"
    );
    assert_eq!(table.take_finished().len(), 3);
    table.kill(&Selection::Ids(vec![TaskId(4)]), NOW).unwrap();
    assert_eq!(
        error_of(&table, 5).message,
        "task 4, which this task runs after, was killed"
    );
}

/// A kill of a dependency and its dependent together kills both; neither is failed.
#[test]
fn a_kill_of_both_kills_both() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(vec![spec(1)], true, NOW);
    table.add(vec![after(2, &[1])], true, NOW);
    let (outcome, _) = table.kill(&Selection::All, NOW).unwrap();
    assert_eq!(outcome.changed, vec![TaskId(1), TaskId(2)]);
    assert_eq!(state(&table, TaskId(2)), TaskState::Killed);
}

/// `after` naming an id never handed out fails the whole add and adds nothing; a dependency
/// that already failed (read from the store) fails the dependent at once; one that completed
/// counts nothing.
#[test]
fn dependencies_must_exist_and_finished_ones_decide_at_once() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(vec![spec(1), spec(2)], true, NOW);
    let handed = table.assign(W1, "w1", 2, NOW);
    table.report(W1, failed(handed[0].task, Attempt(1)), NOW);
    table.report(W1, done(handed[1].task, Attempt(1), "2"), NOW);
    table.flush();
    let refused = table
        .table
        .add(vec![spec(3), after(4, &[2, 99])], true, NOW, &table.store);
    let err = refused.unwrap_err();
    assert_eq!(err.failure().kind, FailureKind::UnknownTask);
    assert!(err.to_string().contains("99"), "{err}");
    assert_eq!(table.next_id(), 3, "nothing added");
    let ids = table.add(vec![after(3, &[2]), after(4, &[1, 2])], true, NOW);
    assert_eq!(state(&table, ids[0]), TaskState::Ready);
    assert_eq!(state(&table, ids[1]), TaskState::Failed);
    assert_eq!(
        error_of(&table, 4).message,
        "task 1, which this task runs after, failed"
    );
}

/// The dependency index is rebuilt at start: a live dependency is still waited for, and a
/// chain still releases and cascades after the restart.
#[test]
fn dependencies_survive_a_restart() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(vec![spec(1)], true, NOW);
    table.add(vec![after(2, &[1])], true, NOW);
    table.add(vec![after(3, &[2])], true, NOW);
    table.add(vec![spec(4)], true, NOW);
    table.add(vec![after(5, &[4])], false, NOW);
    table.restart(NOW);
    assert_eq!(state(&table, TaskId(2)), TaskState::Blocked);
    let handed = table.assign(W1, "w1", 5, NOW);
    assert_eq!(
        handed.iter().map(|a| a.task.0).collect::<Vec<_>>(),
        vec![1, 4]
    );
    table.report(W1, done(TaskId(1), handed[0].attempt, "1"), NOW);
    assert_eq!(state(&table, TaskId(2)), TaskState::Ready);
    table.report(W1, failed(TaskId(4), handed[1].attempt), NOW);
    table.restart(NOW);
    assert_eq!(state(&table, TaskId(5)), TaskState::Failed);
    assert_eq!(state(&table, TaskId(2)), TaskState::Ready);
    assert_eq!(state(&table, TaskId(3)), TaskState::Blocked);
}

/// A dependency that failed while its dependent's record was older (a store written by
/// another path) fails the dependent at the start.
#[test]
fn a_restart_fails_dependents_of_failed_dependencies() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(vec![spec(1)], true, NOW);
    let handed = table.assign(W1, "w1", 1, NOW);
    table.report(W1, failed(handed[0].task, Attempt(1)), NOW);
    table.flush();
    // A blocked record naming the failed task, as if the cascade had not been written.
    let blocked = TaskRecord::new(TaskId(2), after(2, &[1]), TaskState::Blocked, NOW);
    let batch = Batch {
        tasks: vec![blocked],
        next_task_id: Some(3),
        ..Batch::default()
    };
    table.runtime.block_on(table.store.apply(batch)).unwrap();
    table.restart(NOW);
    assert_eq!(state(&table, TaskId(2)), TaskState::Failed);
    assert_eq!(error_of(&table, 2).kind, DEPENDENCY_FAILED);
}

/// Kill ends a task in any unfinished state.
#[test]
fn kill_from_every_state() {
    // Task 1 retries once: it will be waiting.
    let mut table = with_policy(TaskPolicy {
        retries: 1,
        backoff_ms: 60_000,
        ..TaskPolicy::default()
    });
    table.add(vec![spec(2), spec(3)], true, NOW);
    let handed = table.assign(W1, "w1", 2, NOW);
    assert_eq!(handed.len(), 2);
    table.report(W1, failed(TaskId(1), Attempt(1)), NOW);
    table.add(vec![spec(4)], false, NOW);
    table.add(
        vec![
            after(5, &[2]),
            timed(6, When::Delay(9_000)),
            spec(7),
            spec(8),
        ],
        true,
        NOW,
    );
    table
        .table
        .pause(&Selection::Ids(vec![TaskId(7)]), &table.store)
        .unwrap();
    let states: Vec<TaskState> = (1..=8).map(|id| state(&table, TaskId(id))).collect();
    assert_eq!(
        states,
        vec![
            TaskState::Waiting,
            TaskState::Running,
            TaskState::Ready,
            TaskState::Created,
            TaskState::Blocked,
            TaskState::Scheduled,
            TaskState::Paused,
            TaskState::Ready,
        ]
    );
    let (outcome, orders) = table.kill(&Selection::All, NOW).unwrap();
    assert_eq!(outcome.changed.len(), 8);
    assert_eq!(orders, vec![(W1, TaskId(2), Attempt(1))]);
    assert!((1..=8).all(|id| state(&table, TaskId(id)) == TaskState::Killed));
    assert_eq!(table.ready_len(), 0);
    assert_eq!(table.promote_due(Timestamp(u64::MAX)), 0);
}

/// Queues count their live tasks by state and their finished ones durably, and a listing
/// can be limited to one queue.
#[test]
fn queues_count_and_filter() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(
        vec![placed(1, "a", 0), placed(2, "b", 0), placed(3, "a", 0)],
        true,
        NOW,
    );
    table.add(vec![placed(4, "a", 0)], false, NOW);
    let a = table.find_queue("a").unwrap();
    let handed = table.assign(W1, "w1", 1, NOW);
    table.report(W1, done(handed[0].task, Attempt(1), "1"), NOW);
    let info = table.queues().info(a, "a", Vec::new());
    assert_eq!(info.count(TaskState::Created), 1);
    assert_eq!(info.count(TaskState::Ready), 1);
    assert_eq!(info.count(TaskState::Completed), 1);
    let batch = table.take_changes();
    assert_eq!(batch.queues.len(), 1);
    assert_eq!(batch.queues[0].0, "a");
    assert_eq!(batch.queues[0].1.completed, 1);
    table.flush();
    let listed = |table: &Sim, queue: &str, states: &[TaskState]| -> Vec<u64> {
        let infos = table
            .table
            .list(states, Some(queue), None, 10, &table.store)
            .unwrap();
        infos.iter().map(|t| t.id.0).collect()
    };
    assert_eq!(listed(&table, "a", &[]), vec![1, 3, 4]);
    assert_eq!(listed(&table, "b", &[]), vec![2]);
    assert_eq!(listed(&table, "a", &[TaskState::Completed]), vec![1]);
    assert_eq!(listed(&table, "nowhere", &[]), Vec::<u64>::new());
    // Settings and counts come back at a restart.
    table.queues_mut().change(a, QueueChange::Limit(2));
    table.restart(NOW);
    let a = table.find_queue("a").unwrap();
    assert_eq!(table.queues().limit(a), 2);
    let info = table.queues().info(a, "a", Vec::new());
    assert_eq!(info.count(TaskState::Completed), 1);
    assert_eq!(info.count(TaskState::Ready), 1);
}

/// A paused queue offers no head to dispatch; its tasks stay ready.
#[test]
fn a_paused_queue_offers_nothing() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(vec![placed(1, "a", 0), placed(2, "b", 0)], true, NOW);
    let a = table.find_queue("a").unwrap();
    table.queues_mut().change(a, QueueChange::Pause);
    let heads: Vec<u64> = table.ready_heads().iter().map(|h| h.task.0).collect();
    assert_eq!(heads, vec![2]);
    assert_eq!(table.ready_in(a), 1);
    table.queues_mut().change(a, QueueChange::Resume);
    assert_eq!(table.ready_heads().len(), 2);
}

/// A dependent released from a durable `blocked` record may start before the round's flush;
/// one whose record changed otherwise in the round (played in it) may not; after a crash
/// that lost such a round the attempt number it may have used is skipped, and its next
/// assignment is written before its run.
#[test]
fn a_released_dependent_may_start_before_the_flush() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(vec![spec(1), spec(2)], true, NOW);
    table.add(vec![after(3, &[1])], true, NOW);
    table.add(vec![after(4, &[2])], false, NOW);
    table.take_changes();
    let handed = table.assign(W1, "w1", 2, NOW);
    table.take_changes();
    // Round: 1 completes (3 is released from its durable blocked record); 4 is played in
    // the same round as 2 completes.
    table.report(W1, done(TaskId(1), handed[0].attempt, "1"), NOW);
    table.play(&Selection::Ids(vec![TaskId(4)])).unwrap();
    table.report(W1, done(TaskId(2), handed[1].attempt, "2"), NOW);
    assert!(table.may_start_early(TaskId(3)));
    assert!(!table.may_start_early(TaskId(4)), "its record says created");
    let early = table.assign(W1, "w1", 2, NOW);
    assert_eq!(early[0].task, TaskId(3));
    assert_eq!(early[0].attempt, Attempt(1));
    assert!(table.may_start_early(TaskId(3)), "handed in the same round");
    // The round's flush is lost: the store still has 3 blocked at attempt 0.
    table.table.take_changes();
    table.table.take_changes();
    let loaded = table.store.load().unwrap();
    let mut after_crash = TaskTable::recover(
        loaded.tasks,
        loaded.next_task_id,
        loaded.queues,
        NOW,
        &table.store,
    );
    assert_eq!(
        after_crash.show(TaskId(3), &table.store).unwrap().state,
        TaskState::Blocked
    );
    assert!(
        !after_crash.may_start_early(TaskId(3)),
        "its number was skipped"
    );
    let again = after_crash.assign("w1", 2, NOW);
    assert_eq!(again.len(), 2, "1 and 2 run again");
    for assignment in again {
        after_crash.report(done(assignment.task, assignment.attempt, "x"), true, NOW);
    }
    let handed = after_crash.assign("w1", 1, NOW);
    assert_eq!(
        (handed[0].task, handed[0].attempt),
        (TaskId(3), Attempt(2)),
        "attempt 1 may have run before the crash"
    );
    assert!(after_crash.is_dirty(TaskId(3)), "written before its run");
}

/// A task whose record a batch still in flight wrote (here: requeued when its worker was
/// lost) may not start before a flush until that batch is flushed, even in a later round
/// where it did not change: a crash would leave its older record, whose attempt number the
/// restarted table would hand out again. A later batch writing it again keeps it so until
/// that one is flushed too. Tasks new in a batch are the caller's to hold back by id.
#[test]
fn a_record_in_flight_is_not_current_until_flushed() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(2), true, NOW);
    table.take_changes();
    let added = table.last_batch();
    table.flushed(added);
    assert!(table.may_start_early(TaskId(1)), "durable since its add");
    table.assign(W1, "w1", 1, NOW);
    table.take_changes();
    assert_eq!(table.worker_lost(W1, NOW).requeued, 1);
    table.take_changes();
    let requeued = table.last_batch();
    assert!(!table.is_dirty(TaskId(1)), "not changed in this round");
    assert!(
        !table.may_start_early(TaskId(1)),
        "its requeue is still in flight"
    );
    assert!(
        table.may_start_early(TaskId(2)),
        "untouched since it was flushed"
    );
    let handed = table.assign(W2, "w2", 1, NOW);
    assert_eq!(handed[0].task, TaskId(1));
    table.take_changes();
    assert_eq!(table.worker_lost(W2, NOW).requeued, 1);
    table.take_changes();
    let again = table.last_batch();
    table.flushed(requeued);
    assert!(
        !table.may_start_early(TaskId(1)),
        "a later batch in flight wrote it too"
    );
    table.flushed(again);
    assert!(
        table.may_start_early(TaskId(1)),
        "its last write is durable"
    );
    table.add(specs(1), true, NOW);
    table.take_changes();
    assert!(
        table.may_start_early(TaskId(3)),
        "new in a batch in flight: held back by id (`Round::early_below`), not here"
    );
}
