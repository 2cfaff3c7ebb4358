//! Held dependents (`held.rs`): a blocked task handed to the worker that holds its unfinished
//! dependencies, and every way such a task comes back: a completion, a failure for good, a
//! retry, a lost worker, a return, a kill and a restart.

use super::*;
use tatzelwurm_proto::task::DEPENDENCY_FAILED;

/// A task that runs after `ids`, with `policy`.
fn after_with(n: u32, ids: &[u64], policy: TaskPolicy) -> TaskSpec {
    TaskSpec {
        after: ids.iter().map(|id| TaskId(*id)).collect(),
        policy,
        ..spec(n)
    }
}

fn after(n: u32, ids: &[u64]) -> TaskSpec {
    after_with(n, ids, TaskPolicy::default())
}

impl Sim {
    /// Where candidate `id` may be held, by the flights kept here.
    fn target(&self, id: u64) -> HoldTarget {
        self.table
            .hold_target(TaskId(id), |key| self.flights.get(&key).map(|f| f.0))
    }

    /// Holds every candidate that may be held, the oldest first, as dispatch does (no room
    /// limit); returns the held ids.
    fn hold_all(&mut self, name: &str) -> Vec<u64> {
        let mut held = Vec::new();
        let mut cursor = TaskId(0);
        while let Some(id) = self.table.next_holdable(cursor) {
            cursor = id;
            match self.target(id.0) {
                HoldTarget::Drop => self.table.drop_holdable(id),
                HoldTarget::On { worker, .. } => {
                    let a = self.table.hold(id, name, NOW).expect("a blocked task");
                    self.flights.insert((a.task, a.attempt), (worker, false));
                    held.push(id.0);
                }
            }
        }
        held
    }
}

/// Tasks 1, 2 after 1, 3 after 2, with 1 handed to W1 and 2 and 3 held there.
fn chain() -> Sim {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    add_chain(&mut table, vec![spec(1), after(2, &[1]), after(3, &[2])]);
    assert_eq!(table.assign(W1, "w1", 1, NOW)[0].task, TaskId(1));
    assert_eq!(table.hold_all("w1"), vec![2, 3]);
    table
}

/// A chain is held link after link on the worker of its head; each link is `running`, held
/// while its dependency has not completed, and runs on as an ordinary task once it has.
#[test]
fn a_chain_is_held_on_the_worker_of_its_head() {
    let mut table = chain();
    let shown = table.show(TaskId(2)).unwrap();
    assert_eq!(
        (shown.state, shown.attempts, shown.worker),
        (TaskState::Blocked, Attempt(0), None),
        "a held task shows as waiting for its dependency"
    );
    let info = table
        .queues()
        .info(table.queue_of(TaskId(1)).unwrap(), "default", Vec::new());
    assert!(info.counts.contains(&(TaskState::Blocked, 2)), "{info:?}");
    assert!(info.counts.contains(&(TaskState::Running, 1)), "{info:?}");
    assert!(table.is_held(TaskId(2)) && table.is_held(TaskId(3)));
    assert!(table.holds_or_is_held(TaskId(1)), "1 has a held dependent");
    table.report(W1, done(TaskId(1), Attempt(1), "1"), Timestamp(NOW.0 + 5));
    assert!(!table.is_held(TaskId(2)), "its dependency completed");
    let shown = table.show(TaskId(2)).unwrap();
    assert_eq!(
        (shown.state, shown.attempts, shown.started_at),
        (TaskState::Running, Attempt(1), Some(Timestamp(NOW.0 + 5))),
        "running from its release"
    );
    assert!(table.is_held(TaskId(3)));
    table.report(W1, done(TaskId(2), Attempt(1), "2"), NOW);
    table.report(W1, done(TaskId(3), Attempt(1), "3"), NOW);
    for id in 1..=3 {
        assert_eq!(state(&table, TaskId(id)), TaskState::Completed);
    }
    assert_eq!(table.take_orders(), HeldOrders::default());
}

/// Only a blocked, at-least-once task whose unfinished dependencies all run on one worker is
/// held; the others are dropped as candidates.
#[test]
fn only_tasks_whose_dependencies_run_on_one_worker_are_held() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    let once = TaskPolicy {
        at_most_once: true,
        ..TaskPolicy::default()
    };
    table.add(vec![spec(1), spec(2)], true, NOW);
    table.add(
        vec![after_with(3, &[1], once), after(4, &[1, 2]), after(5, &[2])],
        true,
        NOW,
    );
    table.assign(W1, "w1", 1, NOW);
    assert_eq!(table.target(3), HoldTarget::Drop, "at-most-once");
    assert_eq!(table.target(4), HoldTarget::Drop, "2 is still ready");
    table.assign(W2, "w2", 1, NOW);
    assert_eq!(table.target(4), HoldTarget::Drop, "1 and 2 on two workers");
    assert!(matches!(
        table.target(5),
        HoldTarget::On { worker, .. } if worker == W2
    ));
    assert_eq!(table.hold_all("w2"), vec![5]);
}

/// A dependency that fails for good fails its held dependents down the chain
/// (`DependencyFailed`) and orders their attempts killed; the worker's `Killed` confirms.
#[test]
fn a_failed_dependency_kills_its_held_dependents() {
    let mut table = chain();
    table.report(W1, failed(TaskId(1), Attempt(1)), NOW);
    for id in [2, 3] {
        assert_eq!(state(&table, TaskId(id)), TaskState::Failed);
        assert_eq!(error_kind(&table, id), DEPENDENCY_FAILED);
    }
    let orders = table.take_orders();
    assert_eq!(
        orders.kill,
        vec![(TaskId(2), Attempt(1)), (TaskId(3), Attempt(1))]
    );
    assert!(orders.take_back.is_empty());
    let killed = Report {
        outcome: Outcome::Killed,
        ..done(TaskId(2), Attempt(1), "")
    };
    let (held, effect) = table.report(W1, killed, NOW);
    assert!(held && !effect.stale && !effect.recorded, "{effect:?}");
    assert_eq!(error_kind(&table, 2), DEPENDENCY_FAILED);
}

/// A dependency that will be retried takes its held dependents back; returned, they are
/// `blocked` again, never `ready`, and are held again when it is handed out again.
#[test]
fn a_retried_dependency_takes_its_held_dependents_back() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    let retry = TaskPolicy {
        retries: 1,
        backoff_ms: 10,
        ..TaskPolicy::default()
    };
    let mut head = spec(1);
    head.policy = retry;
    add_chain(&mut table, vec![head, after(2, &[1]), after(3, &[2])]);
    table.assign(W1, "w1", 1, NOW);
    assert_eq!(table.hold_all("w1"), vec![2, 3]);
    table.started(W1, &[(TaskId(1), Attempt(1)), (TaskId(2), Attempt(1))]);
    table.report(W1, failed(TaskId(1), Attempt(1)), NOW);
    assert_eq!(state(&table, TaskId(1)), TaskState::Waiting);
    let orders = table.take_orders();
    assert!(orders.kill.is_empty());
    let mut back = orders.take_back.clone();
    back.sort();
    assert_eq!(back, vec![(TaskId(2), Attempt(1)), (TaskId(3), Attempt(1))]);
    for key in &back {
        table.flights.remove(key);
    }
    assert_eq!(table.returned(&back), 2);
    assert_eq!(state(&table, TaskId(2)), TaskState::Blocked);
    assert_eq!(state(&table, TaskId(3)), TaskState::Blocked);
    assert_eq!(table.ready_len(), 0);
    assert_eq!(table.promote_due(Timestamp(NOW.0 + 1_000)), 1);
    assert_eq!(table.assign(W2, "w2", 1, NOW)[0].task, TaskId(1));
    assert_eq!(table.hold_all("w2"), vec![2, 3]);
    assert_eq!(table.assign(W2, "w2", 1, NOW), Vec::new(), "nothing ready");
}

/// A lost worker that held a chain puts its head back to `ready` and the held links to
/// `blocked`, a started one with a crash counted.
#[test]
fn a_lost_worker_puts_held_tasks_back_to_blocked() {
    let mut table = chain();
    table.started(W1, &[(TaskId(1), Attempt(1)), (TaskId(2), Attempt(1))]);
    let effect = table.worker_lost(W1, NOW);
    assert_eq!((effect.requeued, effect.failed), (3, 0));
    assert_eq!(state(&table, TaskId(1)), TaskState::Ready);
    assert_eq!(state(&table, TaskId(2)), TaskState::Blocked);
    assert_eq!(state(&table, TaskId(3)), TaskState::Blocked);
    assert_eq!(table.ready_len(), 1);
    assert_eq!(table.show(TaskId(2)).unwrap().crashes, 1);
    // Its take-back orders name attempts nobody holds any more: the actor drops them.
    assert_eq!(hand_ids(&mut table), vec![1]);
}

/// A take-back for idle workers or a kill of a held link: given back, a held task whose
/// dependency has completed meanwhile is `ready`; a killed held link fails what runs after it.
#[test]
fn returns_and_kills_of_held_links() {
    let mut table = chain();
    table.report(W1, done(TaskId(1), Attempt(1), "1"), NOW);
    table.flights.remove(&(TaskId(2), Attempt(1)));
    assert_eq!(table.returned(&[(TaskId(2), Attempt(1))]), 1);
    assert_eq!(state(&table, TaskId(2)), TaskState::Ready, "1 completed");
    assert_eq!(
        table.take_orders().take_back,
        vec![(TaskId(3), Attempt(1))],
        "3 runs after 2, which goes back"
    );
    let mut table = chain();
    let (_, orders) = table.kill(&Selection::Ids(vec![TaskId(2)]), NOW).unwrap();
    assert_eq!(orders, vec![(W1, TaskId(2), Attempt(1))]);
    assert_eq!(state(&table, TaskId(3)), TaskState::Failed);
    assert_eq!(table.take_orders().kill, vec![(TaskId(3), Attempt(1))]);
}

/// A held task stored `running` (its record was written while held) comes back `blocked` after
/// a restart while its dependency is unfinished; its head is `ready`.
#[test]
fn a_restart_puts_a_held_task_back_to_blocked() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    add_chain(&mut table, vec![spec(1), after(2, &[1])]);
    table.restart(NOW);
    // Both records are current with a reserved attempt: the hold writes 2 as `running`.
    table.assign(W1, "w1", 1, NOW);
    assert_eq!(table.hold_all("w1"), vec![2]);
    let batch = table.take_changes();
    let stored = written(&batch)
        .into_iter()
        .find(|r| r.id == TaskId(2))
        .unwrap();
    assert_eq!(
        (stored.state, stored.attempts, stored.worker.clone()),
        (TaskState::Blocked, Attempt(2), None),
        "stored blocked with the attempt number it holds"
    );
    // Written borrowed, it is the owned record with the hold hidden as it always was.
    let held = table.tasks.get(TaskId(2)).unwrap();
    let mut owned = held.record(TaskId(2), &table.names);
    assert_eq!(owned.state, TaskState::Running, "running in memory");
    (owned.state, owned.worker, owned.started_at) = (TaskState::Blocked, None, None);
    assert_eq!(stored, owned);
    table.restart(NOW);
    assert_eq!(state(&table, TaskId(1)), TaskState::Ready);
    assert_eq!(state(&table, TaskId(2)), TaskState::Blocked);
    assert_eq!(table.ready_len(), 1);
    assert_eq!(hand_ids(&mut table), vec![1]);
}

/// Adds and plays the specs one add each (a task may only name tasks added before).
fn add_chain(table: &mut Sim, specs: Vec<TaskSpec>) {
    for spec in specs {
        table.add(vec![spec], true, NOW);
    }
}

fn error_kind(table: &Sim, id: u64) -> String {
    table.show(TaskId(id)).unwrap().error.unwrap().kind
}

/// The ids `assign` hands out to W1 until nothing is ready.
fn hand_ids(table: &mut Sim) -> Vec<u64> {
    std::iter::from_fn(|| table.assign(W1, "w1", 1, NOW).pop())
        .map(|a| a.task.0)
        .collect()
}
