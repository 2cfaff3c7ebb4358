//! `Done`: a task that finished this round, as the task table keeps it until `take_changes`
//! writes it.
//!
//! The round that finishes a task reads how it ended (its pushes, its waiters, a listing made
//! within the round), and then the record goes to the store. It used to be kept as an owned
//! `TaskRecord` built from the live task, copying the function name, args, kwargs and queue
//! into four strings only for the store thread to encode and free them. Now the live task's
//! compact form moves here as it was (`task`), and the record beside it holds everything else
//! (state, result, error, worker, attempts, times: what the ending set) with the spec's strings
//! left empty. `take_changes` encodes the stored record from both, borrowing the strings
//! (`spec_ref`, into `Batch.encoded`); the few readers that want the whole record in memory
//! (`task show` or `task list` within the round, a purge) build it (`whole`).

use super::live::{LiveTask, Names};
use crate::record::{TaskRecord, TaskRecordRef};
use tatzelwurm_proto::task::TaskState;
use tatzelwurm_proto::TaskId;

/// A task finished this round (see the module).
#[derive(Debug)]
pub struct Done {
    /// Everything but what `task` holds: with a `task`, the spec's function, args, kwargs and
    /// queue are empty here (its policy, priority, start time and dependencies are set).
    record: TaskRecord,
    /// Its compact form as it was live; None for a record kept whole (a start keeps finished
    /// records it found among the live ones as they were).
    task: Option<LiveTask>,
}

impl Done {
    /// A task that was live: `record` is `LiveTask::ending_record` of `task`, as its ending
    /// left it.
    pub fn ended(record: TaskRecord, task: LiveTask) -> Done {
        Done {
            record,
            task: Some(task),
        }
    }

    /// A record kept whole.
    pub fn whole_record(record: TaskRecord) -> Done {
        Done { record, task: None }
    }

    /// The record without the spec's strings: its state, result, error, worker, attempts and
    /// times are right (what pushes, waiters and logs read).
    pub fn ending(&self) -> &TaskRecord {
        &self.record
    }

    /// Its state.
    pub fn state(&self) -> TaskState {
        self.record.state
    }

    /// The function it ran.
    pub fn function<'a>(&'a self, names: &'a Names) -> &'a str {
        match &self.task {
            Some(task) => task.function(names),
            None => &self.record.spec.function,
        }
    }

    /// Its queue's name.
    pub fn queue<'a>(&'a self, names: &'a Names) -> &'a str {
        match &self.task {
            Some(task) => names.queue_name(task.queue(names)),
            None => &self.record.spec.queue,
        }
    }

    /// The whole record, owned (for the rare readers that want it in memory).
    pub fn whole(&self, names: &Names) -> TaskRecord {
        let mut record = self.record.clone();
        if let Some(task) = &self.task {
            record.spec = task.spec(names);
        }
        record
    }

    /// The record to store, borrowing the strings: from the task's compact form and `names`,
    /// or from the whole record. Encodes into the bytes of `whole`.
    pub fn stored<'a>(&'a self, id: TaskId, names: &'a Names) -> TaskRecordRef<'a> {
        let spec = match &self.task {
            Some(task) => task.spec_ref(names),
            None => TaskRecordRef::spec_of(&self.record.spec),
        };
        TaskRecordRef {
            id,
            ..TaskRecordRef::with_spec(&self.record, spec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{encode, EncodedRecords};
    use tatzelwurm_proto::task::{TaskError, TaskSpec, Timestamp, When};
    use tatzelwurm_proto::Attempt;

    /// How a finished task is kept (the compact form and the ending) gives the very record
    /// the owned path gave (`LiveTask::record` with the same ending): whole, and encoded for
    /// the store from borrowed strings. So is a record kept whole.
    #[test]
    fn a_done_task_stores_the_owned_record() {
        let mut names = Names::default();
        let mut running = LiveTask::new(
            TaskSpec::call(
                "m:f",
                "[\"a long argument, past what is kept inline\"]",
                "{}",
            ),
            TaskState::Ready,
            Timestamp(1),
            &mut names,
        );
        running.state = TaskState::Running;
        running.attempt = Attempt(2);
        running.started_at = Some(Timestamp(5)).into();
        running.set_worker(Some("w-1"), &mut names);
        let mut placed = TaskSpec::call("pkg.mod:g", "[1]", "{\"k\":2}");
        placed.queue = "east".into();
        placed.priority = 7;
        placed.run_at = Some(When::At(Timestamp(3)));
        placed.after = vec![TaskId(1)];
        let failing = LiveTask::new(placed, TaskState::Running, Timestamp(2), &mut names);
        type End = Box<dyn Fn(&mut TaskRecord)>;
        let endings: Vec<(LiveTask, End)> = vec![
            (
                running.clone(),
                Box::new(|r: &mut TaskRecord| {
                    r.state = TaskState::Completed;
                    r.result = Some("42".into());
                    r.finished_at = Some(Timestamp(9));
                }),
            ),
            (
                failing,
                Box::new(|r: &mut TaskRecord| {
                    r.state = TaskState::Failed;
                    r.error = Some(TaskError {
                        kind: "ValueError".into(),
                        message: "bad".into(),
                        traceback: "Traceback ...".into(),
                    });
                    r.retry_at = None;
                    r.finished_at = Some(Timestamp(10));
                }),
            ),
            (
                running,
                Box::new(|r: &mut TaskRecord| {
                    super::super::held::hide_hold(r, Attempt(1));
                    r.state = TaskState::Killed;
                    r.finished_at = Some(Timestamp(11));
                }),
            ),
        ];
        let mut encoded = EncodedRecords::default();
        let mut owned = Vec::new();
        for (n, (task, end)) in endings.into_iter().enumerate() {
            let id = TaskId(n as u64 + 1);
            let mut old = task.record(id, &names);
            end(&mut old);
            let mut ending = task.ending_record(id, &names);
            end(&mut ending);
            let done = Done::ended(ending, task);
            assert_eq!(done.whole(&names), old);
            assert_eq!(done.state(), old.state);
            assert_eq!(done.function(&names), old.spec.function);
            assert_eq!(done.queue(&names), old.spec.queue);
            assert_eq!(done.ending().result, old.result);
            encoded.push(&done.stored(id, &names)).unwrap();
            owned.push(old);
        }
        let kept = Done::whole_record(owned[1].clone());
        assert_eq!(kept.whole(&names), owned[1]);
        assert_eq!(kept.queue(&names), "east");
        encoded.push(&kept.stored(TaskId(2), &names)).unwrap();
        owned.push(owned[1].clone());
        for ((_, state, bytes), old) in encoded.iter().zip(&owned) {
            assert_eq!(state, old.state);
            assert_eq!(bytes, encode(old).unwrap().as_slice(), "{old:?}");
        }
    }
}
