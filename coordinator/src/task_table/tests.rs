//! Rules of the task state machine, tested without channels or sockets. The flights (which
//! worker holds which attempt) are the scheduler's; `Sim` keeps them here the way the scheduler
//! does, so that the tests read as the worker sees it. `Sim` also keeps a store in a temporary
//! directory and applies every batch it takes to it, as the task actor does, so that finished
//! tasks the table has let go of are read back from there.

use super::*;
use crate::store::Store;
use std::collections::HashMap;
use tatzelwurm_proto::actioner::Selection;
use tatzelwurm_proto::task::{TaskError, TaskInfo, TaskOutput, TaskPolicy};
use tatzelwurm_proto::WorkerId;

/// Kill orders: the worker that holds each attempt to stop.
type Orders = Vec<(WorkerId, TaskId, Attempt)>;

/// A table with the flights the scheduler would keep beside it: attempt -> (worker, started),
/// and the store the task actor would write its batches to.
struct Sim {
    table: TaskTable,
    flights: HashMap<(TaskId, Attempt), (WorkerId, bool)>,
    store: Store,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Sim {
    type Target = TaskTable;
    fn deref(&self) -> &TaskTable {
        &self.table
    }
}

impl std::ops::DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut TaskTable {
        &mut self.table
    }
}

impl Sim {
    fn recover(records: Vec<TaskRecord>, next_id: u64, now: Timestamp) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        Sim {
            table: TaskTable::recover(records, next_id, Vec::new(), now, &store),
            flights: HashMap::new(),
            store,
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    /// The table's changes, also applied to the store (as a round's flush).
    fn take_changes(&mut self) -> Batch {
        let batch = self.table.take_changes();
        let copy = Batch {
            tasks: batch.tasks.clone(),
            encoded: batch.encoded.clone(),
            outputs: batch.outputs.clone(),
            next_task_id: batch.next_task_id,
            queues: batch.queues.clone(),
            schedules: batch.schedules.clone(),
            ..Batch::default()
        };
        self.runtime.block_on(self.store.apply(copy)).unwrap();
        batch
    }

    /// A restart: the table rebuilt from what the store holds (after this round's flush), as
    /// `run` rebuilds it, at `now`.
    fn restart(&mut self, now: Timestamp) {
        self.take_changes();
        let loaded = self.store.load().unwrap();
        self.table = TaskTable::recover(
            loaded.tasks,
            loaded.next_task_id,
            loaded.queues,
            now,
            &self.store,
        );
        self.flights.clear();
    }

    /// Two rounds' flushes: whatever finished is then only in the store.
    fn flush(&mut self) {
        self.take_changes();
        self.take_changes();
    }

    fn show(&self, id: TaskId) -> Result<TaskInfo, TableError> {
        self.table.show(id, &self.store)
    }

    fn play(&mut self, selection: &Selection) -> Result<Changed, TableError> {
        self.table.play(selection, &self.store, NOW)
    }

    fn add(&mut self, specs: Vec<TaskSpec>, play: bool, now: Timestamp) -> Vec<TaskId> {
        self.table.add(specs, play, now, &self.store).unwrap()
    }

    fn list(&self, states: &[TaskState], after: Option<u64>, limit: usize) -> Vec<u64> {
        let infos = self
            .table
            .list(states, None, after.map(TaskId), limit, &self.store);
        infos.unwrap().iter().map(|t| t.id.0).collect()
    }

    fn assign(
        &mut self,
        worker: WorkerId,
        name: &str,
        count: usize,
        now: Timestamp,
    ) -> Vec<Assignment> {
        let handed = self.table.assign(name, count, now);
        for a in &handed {
            self.flights.insert((a.task, a.attempt), (worker, false));
        }
        handed
    }

    /// A report from `worker`: held if the flight is its own (then dropped). Returns whether
    /// it was held (the slot it frees) and what the table did.
    fn report(&mut self, worker: WorkerId, report: Report, now: Timestamp) -> (bool, ReportEffect) {
        let key = (report.task, report.attempt);
        let held = self.flights.get(&key).map(|f| f.0) == Some(worker);
        if held {
            self.flights.remove(&key);
        }
        (held, self.table.report(report, held, now))
    }

    fn started(&mut self, worker: WorkerId, attempts: &[(TaskId, Attempt)]) -> usize {
        let mut ignored = 0;
        for key in attempts {
            match self.flights.get_mut(key) {
                Some(flight) if flight.0 == worker => flight.1 = true,
                _ => ignored += 1,
            }
        }
        ignored
    }

    fn worker_lost(&mut self, worker: WorkerId, now: Timestamp) -> LostEffect {
        let lost: Vec<((TaskId, Attempt), bool)> = self
            .flights
            .iter()
            .filter(|(_, f)| f.0 == worker)
            .map(|(key, f)| (*key, f.1))
            .collect();
        self.flights.retain(|_, f| f.0 != worker);
        self.table.lost(lost, now)
    }

    fn stale_attempts(
        &self,
        worker: WorkerId,
        running: &[(TaskId, Attempt)],
    ) -> Vec<(TaskId, Attempt)> {
        running
            .iter()
            .filter(|key| {
                self.flights.get(key).map(|f| f.0) != Some(worker)
                    || !self.table.is_current(key.0, key.1) && !self.table.is_finished(key.0)
            })
            .copied()
            .collect()
    }

    /// A kill, with each order routed to the worker that holds the attempt.
    fn kill(
        &mut self,
        selection: &Selection,
        now: Timestamp,
    ) -> Result<(Changed, Orders), TableError> {
        let (changed, running) = self.table.kill(selection, &self.store, now)?;
        let orders = running
            .into_iter()
            .filter_map(|key| self.flights.get(&key).map(|f| (f.0, key.0, key.1)))
            .collect();
        Ok((changed, orders))
    }
}

const W1: WorkerId = WorkerId(1);
const W2: WorkerId = WorkerId(2);
const NOW: Timestamp = Timestamp(1_000);

fn spec(n: u32) -> TaskSpec {
    TaskSpec::call("tasks:square", format!("[{n}]"), "{}")
}

fn specs(n: u32) -> Vec<TaskSpec> {
    (0..n).map(spec).collect()
}

fn done(task: TaskId, attempt: Attempt, result: &str) -> Report {
    Report {
        task,
        attempt,
        outcome: Outcome::Completed {
            result: result.into(),
        },
        output: TaskOutput::default(),
    }
}

fn printed(text: &str) -> TaskOutput {
    TaskOutput {
        stdout: text.into(),
        stderr: String::new(),
    }
}

/// The records `batch` writes (whole and encoded), owned, in id order.
fn written(batch: &Batch) -> Vec<TaskRecord> {
    batch
        .records()
        .map(|record| record.to_record().unwrap())
        .collect()
}

fn state(table: &Sim, id: TaskId) -> TaskState {
    table.show(id).unwrap().state
}

/// Ids increase from 1, `--play` makes tasks ready, and both are marked for the store.
#[test]
fn add_hands_out_increasing_ids() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    let created = table.add(specs(2), false, NOW);
    let ready = table.add(specs(1), true, NOW);
    assert_eq!(created, vec![TaskId(1), TaskId(2)]);
    assert_eq!(ready, vec![TaskId(3)]);
    assert_eq!(state(&table, TaskId(1)), TaskState::Created);
    assert_eq!(state(&table, TaskId(3)), TaskState::Ready);
    let batch = table.take_changes();
    assert_eq!(batch.record_count(), 3);
    assert!(batch.tasks.is_empty(), "live records are written encoded");
    assert_eq!(batch.next_task_id, Some(4));
    assert!(table.take_changes().is_empty());
}

/// Play moves only created tasks; others are named with their state, unknown ids change nothing.
#[test]
fn play_moves_created_to_ready() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(2), false, NOW);
    table.add(specs(1), true, NOW);
    let err = table
        .play(&Selection::Ids(vec![TaskId(1), TaskId(9)]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "there is no task 9; the ids handed out so far are 1 to 3"
    );
    assert_eq!(err.failure().kind, FailureKind::UnknownTask);
    assert_eq!(state(&table, TaskId(1)), TaskState::Created);
    let changed = table
        .play(&Selection::Ids(vec![TaskId(1), TaskId(3)]))
        .unwrap();
    assert_eq!(changed.changed, vec![TaskId(1)]);
    assert_eq!(changed.unchanged, vec![(TaskId(3), TaskState::Ready)]);
    let all = table.play(&Selection::All).unwrap();
    assert_eq!(all.changed, vec![TaskId(2)]);
    assert_eq!(table.ready_len(), 3);
}

/// Assignment takes the oldest ready tasks and gives each a new attempt number.
#[test]
fn assign_takes_oldest_and_numbers_attempts() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(3), true, NOW);
    let handed = table.assign(W1, "w1", 2, NOW);
    let ids: Vec<TaskId> = handed.iter().map(|a| a.task).collect();
    assert_eq!(ids, vec![TaskId(1), TaskId(2)]);
    assert!(handed.iter().all(|a| a.attempt == Attempt(1)));
    assert_eq!(state(&table, TaskId(1)), TaskState::Running);
    assert_eq!(table.ready_len(), 1);
    assert_eq!(table.show(TaskId(1)).unwrap().worker.as_deref(), Some("w1"));
}

/// A report of the current attempt records the result and frees the slot.
#[test]
fn report_records_current_attempt() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(1), true, NOW);
    table.assign(W1, "w1", 1, NOW);
    let (held, effect) = table.report(W1, done(TaskId(1), Attempt(1), "4"), NOW);
    assert!(held);
    assert_eq!(
        effect,
        ReportEffect {
            recorded: true,
            stale: false
        }
    );
    let info = table.show(TaskId(1)).unwrap();
    assert_eq!(info.state, TaskState::Completed);
    assert_eq!(info.result.as_deref(), Some("4"));
    assert_eq!(table.take_finished(), vec![TaskId(1)]);
}

/// A lost worker's tasks go back to ready, first in line; the old attempt's late report is
/// fenced (ignored) and the new attempt's is recorded.
#[test]
fn lost_worker_requeues_and_fences_old_attempt() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(3), true, NOW);
    table.assign(W1, "w1", 2, NOW);
    assert_eq!(table.worker_lost(W1, NOW).requeued, 2);
    assert_eq!(state(&table, TaskId(1)), TaskState::Ready);
    let handed = table.assign(W2, "w2", 3, NOW);
    let order: Vec<(TaskId, Attempt)> = handed.iter().map(|a| (a.task, a.attempt)).collect();
    assert_eq!(
        order,
        vec![
            (TaskId(1), Attempt(2)),
            (TaskId(2), Attempt(2)),
            (TaskId(3), Attempt(1))
        ]
    );
    let (held, stale) = table.report(W1, done(TaskId(1), Attempt(1), "\"old\""), NOW);
    assert!(!stale.recorded && !held);
    let (_, replayed) = table.report(W2, done(TaskId(1), Attempt(1), "\"old\""), NOW);
    assert!(!replayed.recorded);
    assert_eq!(state(&table, TaskId(1)), TaskState::Running);
    assert!(
        table
            .report(W2, done(TaskId(1), Attempt(2), "1"), NOW)
            .1
            .recorded
    );
    assert_eq!(table.show(TaskId(1)).unwrap().result.as_deref(), Some("1"));
}

/// Killing a running task marks it killed at once and orders its worker to stop it; the slot
/// is freed only when the worker confirms, and the confirmation does not change the state
/// (it only brings what the attempt printed).
#[test]
fn kill_running_orders_worker_and_keeps_slot_until_confirmed() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(2), true, NOW);
    table.assign(W1, "w1", 1, NOW);
    let (changed, orders) = table.kill(&Selection::All, NOW).unwrap();
    assert_eq!(changed.changed, vec![TaskId(1), TaskId(2)]);
    assert_eq!(orders, vec![(W1, TaskId(1), Attempt(1))]);
    assert_eq!(table.ready_len(), 0);
    table.take_changes();
    let killed = Report {
        task: TaskId(1),
        attempt: Attempt(1),
        outcome: Outcome::Killed,
        output: printed("until the kill"),
    };
    let (held, effect) = table.report(W1, killed, NOW);
    assert!(held && !effect.recorded);
    assert_eq!(state(&table, TaskId(1)), TaskState::Killed);
    // The record is final already; only what the killed attempt printed is written.
    let batch = table.take_changes();
    assert_eq!(batch.record_count(), 0);
    assert_eq!(batch.outputs, vec![(TaskId(1), printed("until the kill"))]);
    let (again, _) = table.kill(&Selection::Ids(vec![TaskId(1)]), NOW).unwrap();
    assert_eq!(again.unchanged, vec![(TaskId(1), TaskState::Killed)]);
}

/// A failure keeps the error; a task that failed is finished for waiters.
#[test]
fn failure_is_recorded_with_error() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(1), true, NOW);
    table.assign(W1, "w1", 1, NOW);
    let report = Report {
        task: TaskId(1),
        attempt: Attempt(1),
        outcome: Outcome::Failed {
            error: TaskError {
                kind: "ValueError".into(),
                message: "bad".into(),
                traceback: "Traceback...".into(),
            },
        },
        output: TaskOutput::default(),
    };
    assert!(table.report(W1, report, NOW).1.recorded);
    let info = table.show(TaskId(1)).unwrap();
    assert_eq!(info.state, TaskState::Failed);
    assert_eq!(info.error.unwrap().kind, "ValueError");
    assert!(table.is_finished(TaskId(1)));
}

/// After a restart, running tasks are ready again and the id sequence continues.
#[test]
fn recovery_requeues_running_and_continues_ids() {
    let mut before = Sim::recover(Vec::new(), 1, NOW);
    before.add(specs(3), true, NOW);
    before.assign(W1, "w1", 1, NOW);
    let records = written(&before.take_changes());
    let mut after = Sim::recover(records, 4, NOW);
    assert_eq!(state(&after, TaskId(1)), TaskState::Ready);
    assert_eq!(after.ready_len(), 3);
    assert_eq!(after.add(specs(1), false, NOW), vec![TaskId(4)]);
    let handed = after.assign(W2, "w2", 1, NOW);
    assert_eq!(handed[0].attempt, Attempt(2));
}

/// An at-least-once assignment is not written (its `Run` may leave before the flush), so a
/// restart from the stored `ready` record counts that attempt number as used: no two runs of a
/// task ever share one.
#[test]
fn an_unwritten_attempt_number_is_never_handed_out_again() {
    let mut before = Sim::recover(Vec::new(), 1, NOW);
    before.add(specs(1), true, NOW);
    let records = written(&before.take_changes());
    assert!(!before.is_dirty(TaskId(1)));
    let early = before.assign(W1, "w1", 1, NOW);
    assert_eq!(early[0].attempt, Attempt(1));
    assert!(
        !before.is_dirty(TaskId(1)),
        "an at-least-once assignment is not written"
    );
    let mut after = Sim::recover(records.clone(), 2, NOW);
    assert!(
        after.is_dirty(TaskId(1)),
        "its record is behind: no early Run"
    );
    let handed = after.assign(W2, "w2", 1, NOW);
    assert_eq!(handed[0].attempt, Attempt(2));
    // A second crash: that assignment was written (`running`, attempt 2), so the next
    // number is 3 and no skip is needed; without the write it would have been 2 again.
    let stored = written(&after.take_changes());
    assert_eq!(stored.len(), 1, "the assignment after a skip is written");
    assert_eq!(stored[0].attempts, Attempt(2));
    let mut again = Sim::recover(stored, 2, NOW);
    assert_eq!(again.assign(W1, "w1", 1, NOW)[0].attempt, Attempt(3));
}

/// `wait -a` is about tasks that are neither finished nor created.
#[test]
fn wait_all_skips_created_and_finished() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(1), false, NOW);
    table.add(specs(2), true, NOW);
    table.assign(W1, "w1", 1, NOW);
    table.report(W1, done(TaskId(2), Attempt(1), "0"), NOW);
    assert_eq!(
        table.wait_targets(&Selection::All).unwrap(),
        vec![TaskId(3)]
    );
}

fn failed(task: TaskId, attempt: Attempt) -> Report {
    Report {
        task,
        attempt,
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

fn with_policy(policy: TaskPolicy) -> Sim {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    let mut task = spec(1);
    task.policy = policy;
    table.add(vec![task], true, NOW);
    table
}

/// A failure with retries left waits for its backoff, then is ready again and runs with the
/// next attempt; when the retries are used up the task fails with the last error.
#[test]
fn failure_waits_then_retries_until_retries_run_out() {
    let mut table = with_policy(TaskPolicy {
        retries: 1,
        backoff_ms: 100,
        ..TaskPolicy::default()
    });
    table.assign(W1, "w1", 1, NOW);
    table.report(W1, failed(TaskId(1), Attempt(1)), NOW);
    let info = table.show(TaskId(1)).unwrap();
    assert_eq!(info.state, TaskState::Waiting);
    let due = info.retry_at.expect("a waiting task has a retry time");
    assert!(due.0 >= NOW.0 + 50 && due.0 < NOW.0 + 150, "{due:?}");
    assert_eq!(table.next_due(), Some(due));
    assert!(!table.is_finished(TaskId(1)));
    assert_eq!(table.promote_due(Timestamp(due.0 - 1)), 0);
    assert_eq!(table.promote_due(due), 1);
    let handed = table.assign(W1, "w1", 1, due);
    assert_eq!(handed[0].attempt, Attempt(2));
    table.report(W1, failed(TaskId(1), Attempt(2)), due);
    let info = table.show(TaskId(1)).unwrap();
    assert_eq!((info.state, info.failures), (TaskState::Failed, 2));
    assert_eq!(info.error.unwrap().kind, "ValueError");
    assert_eq!(table.next_due(), None);
}

/// A waiting task can be killed, and its due retry then does nothing.
#[test]
fn waiting_task_can_be_killed() {
    let mut table = with_policy(TaskPolicy {
        retries: 3,
        ..TaskPolicy::default()
    });
    table.assign(W1, "w1", 1, NOW);
    table.report(W1, failed(TaskId(1), Attempt(1)), NOW);
    let (killed, orders) = table.kill(&Selection::All, NOW).unwrap();
    assert_eq!((killed.changed, orders), (vec![TaskId(1)], vec![]));
    assert_eq!(table.promote_due(Timestamp(u64::MAX)), 0);
    assert_eq!(state(&table, TaskId(1)), TaskState::Killed);
}

/// An at-most-once task lost with its worker fails instead of running again.
#[test]
fn at_most_once_task_fails_when_its_worker_is_lost() {
    let mut table = with_policy(TaskPolicy {
        at_most_once: true,
        ..TaskPolicy::default()
    });
    start_all(&mut table, W1, "w1", 1);
    let lost = table.worker_lost(W1, NOW);
    assert_eq!((lost.requeued, lost.failed), (0, 1));
    let info = table.show(TaskId(1)).unwrap();
    assert_eq!(info.state, TaskState::Failed);
    assert_eq!(info.error.unwrap().kind, "WorkerLost");
    assert_eq!(table.ready_len(), 0);
}

/// Every loss counts as a crash; at the crash limit the task fails and says so.
#[test]
fn crash_limit_ends_a_task_that_keeps_losing_its_worker() {
    let mut table = with_policy(TaskPolicy {
        crash_limit: 2,
        ..TaskPolicy::default()
    });
    start_all(&mut table, W1, "w1", 1);
    assert_eq!(table.worker_lost(W1, NOW).requeued, 1);
    start_all(&mut table, W2, "w2", 1);
    assert_eq!(table.worker_lost(W2, NOW).failed, 1);
    let info = table.show(TaskId(1)).unwrap();
    assert_eq!((info.state, info.crashes), (TaskState::Failed, 2));
    assert_eq!(info.error.unwrap().kind, "CrashLimitReached");
}

/// A restart fails at-most-once tasks that were running and keeps waiting tasks waiting.
#[test]
fn recovery_fails_running_at_most_once_and_keeps_waiting() {
    let mut before = Sim::recover(Vec::new(), 1, NOW);
    let mut once = spec(1);
    once.policy.at_most_once = true;
    let mut retried = spec(2);
    retried.policy.retries = 2;
    before.add(vec![once, retried], true, NOW);
    before.assign(W1, "w1", 2, NOW);
    before.report(W1, failed(TaskId(2), Attempt(1)), NOW);
    let due = before.next_due().unwrap();
    let after = Sim::recover(written(&before.take_changes()), 3, NOW);
    assert_eq!(state(&after, TaskId(1)), TaskState::Failed);
    assert_eq!(state(&after, TaskId(2)), TaskState::Waiting);
    assert_eq!(after.next_due(), Some(due));
}

/// A heartbeat naming an attempt that is not this worker's is reported as stale; a fenced
/// report is marked stale, while the confirmation of a requested kill is not.
#[test]
fn stale_heartbeats_and_reports_are_flagged() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(2), true, NOW);
    table.assign(W1, "w1", 2, NOW);
    let running = [(TaskId(1), Attempt(1)), (TaskId(2), Attempt(1))];
    assert!(table.stale_attempts(W1, &running).is_empty());
    table.worker_lost(W1, NOW);
    table.assign(W2, "w2", 1, NOW);
    assert_eq!(table.stale_attempts(W1, &running).len(), 2);
    assert!(
        table
            .report(W1, done(TaskId(1), Attempt(1), "1"), NOW)
            .1
            .stale
    );
    table.kill(&Selection::Ids(vec![TaskId(1)]), NOW).unwrap();
    let confirmation = Report {
        task: TaskId(1),
        attempt: Attempt(2),
        outcome: Outcome::Killed,
        output: TaskOutput::default(),
    };
    let (held, effect) = table.report(W2, confirmation, NOW);
    assert!(held && !effect.stale);
}

/// A report's output goes to the store with the round's batch and is not kept in the table;
/// until that batch is taken, `unsaved_output` has it. A fenced report's output is dropped, and
/// a first attempt's empty output is not written.
#[test]
fn outputs_go_to_the_store_not_into_the_table() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(1), true, NOW);
    table.assign(W1, "w1", 1, NOW);
    table.take_changes();
    let mut report = done(TaskId(1), Attempt(1), "1");
    report.output = printed("hello");
    table.report(W1, report, NOW);
    assert_eq!(table.unsaved_output(TaskId(1)), Some(&printed("hello")));
    let batch = table.take_changes();
    assert_eq!(batch.outputs, vec![(TaskId(1), printed("hello"))]);
    assert_eq!(batch.record_count(), 1);
    assert_eq!(table.unsaved_output(TaskId(1)), None);
    assert_eq!(table.show(TaskId(1)).unwrap().output, None);

    let mut late = done(TaskId(1), Attempt(1), "1");
    late.output = printed("again");
    table.report(W2, late, NOW);
    assert!(table.take_changes().is_empty());

    // A first attempt that printed nothing writes no output: there is none to replace.
    table.add(specs(1), true, NOW);
    table.assign(W1, "w1", 1, NOW);
    table.take_changes();
    table.report(W1, done(TaskId(2), Attempt(1), "2"), NOW);
    let batch = table.take_changes();
    assert_eq!(batch.record_count(), 1, "the finished record");
    assert!(
        batch.tasks.is_empty(),
        "encoded from the compact form, not whole"
    );
    assert_eq!(
        batch.records().next().unwrap().state(),
        TaskState::Completed
    );
    assert!(batch.outputs.is_empty());
}

/// An unknown-id refusal names the smallest three ids and counts the rest, however many the
/// request named, and id 0 is never a task.
#[test]
fn unknown_ids_are_named_briefly() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    let none = table.show(TaskId(1)).unwrap_err();
    assert_eq!(
        none.to_string(),
        "there is no task 1; no task has been added yet"
    );
    table.add(specs(2), false, NOW);
    assert!(table.show(TaskId(0)).is_err());
    let two = table
        .wait_targets(&Selection::Ids(vec![
            TaskId(7),
            TaskId(1),
            TaskId(5),
            TaskId(7),
        ]))
        .unwrap_err();
    assert_eq!(
        two.to_string(),
        "there are no tasks 5 and 7; the ids handed out so far are 1 to 2"
    );
    let many: Vec<TaskId> = (1_000_000..2_000_000).map(TaskId).collect();
    let err = table.kill(&Selection::Ids(many), NOW).unwrap_err();
    let message = err.failure().message;
    assert_eq!(
        message,
        "there are no tasks 1000000, 1000001, 1000002 and 999997 more; the ids handed out so far are 1 to 2"
    );
    assert!(
        table
            .watch_targets(&[TaskId(2), TaskId(1), TaskId(2)])
            .unwrap()
            == vec![TaskId(1), TaskId(2)]
    );
    assert!(table.watch_targets(&[TaskId(3)]).is_err());
}

/// Assigns up to `count` ready tasks to `worker` and marks them started, as a real worker says.
fn start_all(table: &mut Sim, worker: WorkerId, name: &str, count: usize) {
    let handed = table.assign(worker, name, count, NOW);
    let keys: Vec<(TaskId, Attempt)> = handed.iter().map(|a| (a.task, a.attempt)).collect();
    assert_eq!(table.started(worker, &keys), 0);
}

/// Attempts a worker never started (it dropped before saying `Started`) go back to `ready`
/// without a crash, however often it happens; a started one counts; `Started` from another
/// worker is ignored. An at-most-once task fails either way (a `Started` may have been lost).
#[test]
fn only_started_attempts_count_as_crashes() {
    let mut table = with_policy(TaskPolicy {
        crash_limit: 2,
        at_most_once: false,
        ..TaskPolicy::default()
    });
    for _ in 0..5 {
        table.assign(W1, "w1", 1, NOW);
        let lost = table.worker_lost(W1, NOW);
        assert_eq!((lost.requeued, lost.unstarted, lost.failed), (1, 1, 0));
    }
    let info = table.show(TaskId(1)).unwrap();
    assert_eq!((info.state, info.crashes), (TaskState::Ready, 0));
    let handed = table.assign(W1, "w1", 1, NOW);
    let key = (handed[0].task, handed[0].attempt);
    assert_eq!(table.started(W2, &[key]), 1);
    assert_eq!(table.started(W1, &[key]), 0);
    let lost = table.worker_lost(W1, NOW);
    assert_eq!((lost.requeued, lost.unstarted), (1, 0));
    assert_eq!(table.show(TaskId(1)).unwrap().crashes, 1);

    let mut once = with_policy(TaskPolicy {
        at_most_once: true,
        ..TaskPolicy::default()
    });
    once.assign(W1, "w1", 1, NOW);
    let lost = once.worker_lost(W1, NOW);
    assert_eq!((lost.unstarted, lost.failed), (0, 1));
    assert_eq!(state(&once, TaskId(1)), TaskState::Failed);
}

/// A finished task leaves memory once its batch is durable (the round after) and is read back
/// from the store by `show`, `infos`, and the states of `play` and `kill`; until then its
/// round's pushes read it from memory.
#[test]
fn finished_tasks_leave_memory_and_are_read_from_the_store() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(3), true, NOW);
    table.assign(W1, "w1", 2, NOW);
    table.report(W1, done(TaskId(1), Attempt(1), "1"), NOW);
    assert_eq!(table.live_len(), 2, "task 1 left the live tasks");
    table.take_changes();
    // The round's pushes and waiters: still in memory, after the batch was taken.
    let infos = table.infos(&[TaskId(1)], &table.store);
    assert_eq!(infos[0].result.as_deref(), Some("1"));
    table.take_changes();
    assert!(
        table.describe(TaskId(1)).is_none(),
        "only the store has it now"
    );
    let info = table.show(TaskId(1)).unwrap();
    assert_eq!(
        (info.state, info.result.as_deref()),
        (TaskState::Completed, Some("1"))
    );
    let infos = table.infos(&[TaskId(1), TaskId(2), TaskId(9)], &table.store);
    let ids: Vec<TaskId> = infos.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![TaskId(1), TaskId(2)], "unknown ids are left out");
    assert!(table.is_finished(TaskId(1)) && !table.is_finished(TaskId(2)));
    let played = table.play(&Selection::Ids(vec![TaskId(1)])).unwrap();
    assert_eq!(played.unchanged, vec![(TaskId(1), TaskState::Completed)]);
    let (killed, _) = table
        .kill(&Selection::Ids(vec![TaskId(1), TaskId(3)]), NOW)
        .unwrap();
    assert_eq!(killed.changed, vec![TaskId(3)]);
    assert_eq!(killed.unchanged, vec![(TaskId(1), TaskState::Completed)]);
    let waits = table.wait_targets(&Selection::All).unwrap();
    assert_eq!(waits, vec![TaskId(2)]);
}

/// A listing of live states comes from memory; one that includes finished states merges the
/// store's finished records with memory's, in id order, from `after`, at most `limit`.
#[test]
fn list_merges_memory_and_store() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(6), true, NOW);
    table.assign(W1, "w1", 3, NOW);
    table.report(W1, done(TaskId(1), Attempt(1), "1"), NOW);
    table.report(W1, done(TaskId(3), Attempt(1), "3"), NOW);
    table.flush();
    // Finished this round: only in memory until its batch is written.
    table.report(W1, done(TaskId(2), Attempt(1), "2"), NOW);
    assert_eq!(table.list(&[], None, 100), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(table.list(&[], Some(1), 2), vec![2, 3]);
    assert_eq!(table.list(&[TaskState::Ready], None, 100), vec![4, 5, 6]);
    assert_eq!(
        table.list(&[TaskState::Completed], None, 100),
        vec![1, 2, 3]
    );
    let both = [TaskState::Completed, TaskState::Ready];
    assert_eq!(table.list(&both, Some(2), 3), vec![3, 4, 5]);
    assert_eq!(table.list(&[], Some(u64::MAX), 10), Vec::<u64>::new());
    table.flush();
    assert_eq!(
        table.list(&[TaskState::Completed], None, 100),
        vec![1, 2, 3]
    );
}

/// An at-least-once assignment is not written (a crash makes the task ready again, which its
/// guarantee allows); an at-most-once one is, before its `Run` may leave.
#[test]
fn only_at_most_once_assignments_are_written() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(1), true, NOW);
    let mut once = spec(9);
    once.policy.at_most_once = true;
    table.add(vec![once], true, NOW);
    table.take_changes();
    table.assign(W1, "w1", 2, NOW);
    let batch = table.take_changes();
    let written: Vec<(TaskId, TaskState)> = batch.records().map(|t| (t.id(), t.state())).collect();
    assert_eq!(written, vec![(TaskId(2), TaskState::Running)]);
    assert_eq!(state(&table, TaskId(1)), TaskState::Running, "memory knows");
}

/// The confirmation of a kill that arrives after the killed task left memory is still a
/// confirmation (not stale), and what the attempt printed is kept.
#[test]
fn a_late_kill_confirmation_keeps_its_output() {
    let mut table = Sim::recover(Vec::new(), 1, NOW);
    table.add(specs(1), true, NOW);
    table.assign(W1, "w1", 1, NOW);
    let (_, orders) = table.kill(&Selection::All, NOW).unwrap();
    assert_eq!(orders, vec![(W1, TaskId(1), Attempt(1))]);
    table.flush();
    let mut confirm = done(TaskId(1), Attempt(1), "");
    confirm.outcome = Outcome::Killed;
    confirm.output = printed("until the kill");
    let (held, effect) = table.report(W1, confirm, NOW);
    assert!(held);
    assert_eq!(
        effect,
        ReportEffect {
            recorded: false,
            stale: false
        }
    );
    assert_eq!(table.take_changes().outputs.len(), 1);
    assert_eq!(state(&table, TaskId(1)), TaskState::Killed);
}

mod held;
mod rules;
