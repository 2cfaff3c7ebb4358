//! The task actor's commands from actioners: each applied to the table (and the add keys,
//! watchers and schedules) within the round, its reply sent by `deliver` after the flush, so
//! that a queue setting or a schedule is durable before it is answered. Queue commands are in
//! `queue_command.rs`, purges by id and worker drains in `operations.rs`. An add is checked whole before anything is added: function names,
//! queue names, priorities and the number of dependencies here, dependency ids by the table.

use super::{Origin, Round, TasksActor};
use crate::task_table::{Changed, TableError};
use crate::waiters::Tally;
use tatzelwurm_proto::actioner::{
    AddKey, Command, Failure, FailureKind, PurgeSelection, Reply, Selection,
};
use tatzelwurm_proto::function::check_function;
use tatzelwurm_proto::limits::MAX_TASKS_PER_LIST;
use tatzelwurm_proto::queue::check_name;
use tatzelwurm_proto::task::{check_priority, TaskSpec, Timestamp, MAX_AFTER};
use tatzelwurm_proto::TaskId;
use tokio::sync::oneshot;

impl TasksActor {
    /// Applies a command; returns the reply to send after the flush, or `None` for a wait that
    /// stays open.
    pub(super) fn command(
        &mut self,
        command: Command,
        origin: Origin,
        reply: oneshot::Sender<Reply>,
        round: &mut Round,
        now: Timestamp,
    ) -> Option<(oneshot::Sender<Reply>, Reply)> {
        let answer = match command {
            Command::Add {
                tasks,
                play,
                key,
                watch,
            } => match self.add(tasks, play, key, now) {
                Ok(ids) => {
                    round.may_dispatch |= play;
                    if watch {
                        self.watch(&origin, &ids, round);
                    }
                    Reply::Added(ids)
                }
                Err(failure) => Reply::Error(failure),
            },
            Command::Play(selection) => {
                round.may_dispatch = true;
                changed(self.table.play(&selection, &self.store, now))
            }
            Command::Pause(selection) => changed(self.table.pause(&selection, &self.store)),
            Command::Kill(selection) => match self.table.kill(&selection, &self.store, now) {
                Ok((outcome, running)) => {
                    // Each to the worker that holds the attempt, running or queued there.
                    for key in running {
                        if let Some(worker) = self.scheduler.holder(key) {
                            round.outgoing.entry(worker).or_default().kill.push(key);
                        }
                    }
                    changed(Ok(outcome))
                }
                Err(err) => Reply::Error(err.failure()),
            },
            Command::List {
                states,
                queue,
                after,
                limit,
            } => match self.table.list(
                &states,
                queue.as_deref(),
                after,
                list_limit(limit),
                &self.store,
            ) {
                Ok(tasks) => Reply::Tasks { tasks, more: false },
                Err(err) => Reply::Error(err.failure()),
            },
            Command::Show(id) => match self.table.show(id, &self.store) {
                Ok(mut info) => match self.output_of(id) {
                    Ok(output) => {
                        info.output = Some(output);
                        Reply::Task(Box::new(info))
                    }
                    Err(err) => Reply::Error(Failure::new(
                        FailureKind::Internal,
                        format!(
                            "cannot read the output of task {id} from the database ({err}); the task itself is {}",
                            info.state
                        ),
                    )),
                },
                Err(err) => Reply::Error(err.failure()),
            },
            Command::Wait(selection) => match self
                .table
                .wait_targets(&selection)
                .and_then(|tasks| self.not_purged(tasks))
            {
                Err(err) => Reply::Error(err.failure()),
                Ok(tasks) => {
                    let (done, pending): (Vec<TaskId>, Vec<TaskId>) = tasks
                        .into_iter()
                        .partition(|id| self.table.is_finished(*id));
                    let mut tally = Tally::default();
                    if selection == Selection::All {
                        tally.earlier_unsuccessful = self.table.queues().unsuccessful();
                    }
                    for info in self.summaries(&done) {
                        tally.count(info.id, info.state);
                    }
                    if pending.is_empty() {
                        Reply::Waited(self.wait_summary(tally))
                    } else {
                        self.waiters.add(tally, pending, reply);
                        return None;
                    }
                }
            },
            Command::Watch(ids) => match self
                .table
                .watch_targets(&ids)
                .and_then(|ids| self.not_purged(ids))
            {
                Ok(ids) => {
                    self.watch(&origin, &ids, round);
                    Reply::Watching
                }
                Err(err) => Reply::Error(err.failure()),
            },
            Command::Queues => Reply::Queues(self.queue_list()),
            Command::Queue { name, change } => match self.change_queue(&name, change) {
                Ok(info) => {
                    // A resumed queue, or a raised limit, may hand tasks now.
                    round.may_dispatch = true;
                    Reply::Queues(vec![info])
                }
                Err(failure) => Reply::Error(failure),
            },
            Command::AddSchedule(spec) => match self.schedules.add(spec, now) {
                Ok(info) => Reply::Schedules(vec![info]),
                Err(err) => Reply::Error(err.failure()),
            },
            Command::Schedules(None) => Reply::Schedules(self.schedules.list()),
            Command::Schedules(Some(name)) => match self.schedules.get(&name) {
                Ok(info) => Reply::Schedules(vec![info]),
                Err(err) => Reply::Error(err.failure()),
            },
            Command::Schedule { name, change } => {
                match self.schedules.change(&name, change, now) {
                    Ok(info) => Reply::Schedules(vec![info]),
                    Err(err) => Reply::Error(err.failure()),
                }
            }
            Command::Workers => Reply::Error(Failure::new(
                FailureKind::Internal,
                "internal: worker lists are answered through the workers' handle",
            )),
            Command::Purge(PurgeSelection::Ids(ids)) => self.purge_ids(&ids),
            Command::DrainWorker(name) => self.drain_named(&name),
            // Answered off the actor by the connection: from the store and the live feed
            // (`event_feed`), the output hub (`log_follow`), a scan by age (`retention`).
            Command::Events { .. }
            | Command::Logs { .. }
            | Command::Purge(PurgeSelection::FinishedBefore { .. }) => Reply::Error(Failure::new(
                FailureKind::Internal,
                "internal: events, logs and purges by age are answered by the connection, not the task actor",
            )),
        };
        Some((reply, answer))
    }

    /// Adds tasks, or finds the ones a known key's add created. A new key is recorded with the
    /// ids it got, for the same flush as the tasks.
    fn add(
        &mut self,
        tasks: Vec<TaskSpec>,
        play: bool,
        key: Option<AddKey>,
        now: Timestamp,
    ) -> Result<Vec<TaskId>, Failure> {
        if let Some(known) = key.as_ref().and_then(|key| self.add_keys.get(key)) {
            if known.count != tasks.len() as u64 {
                return Err(Failure::bad_request(format!(
                    "this add's key was first used by an add of {} tasks and this add has {}; a re-sent add must carry the same tasks, a new add a new key",
                    known.count,
                    tasks.len()
                )));
            }
            return Ok(known.ids());
        }
        check_functions(&tasks)?;
        check_placement(&tasks)?;
        let ids = self
            .table
            .add(tasks, play, now, &self.store)
            .map_err(|err| err.failure())?;
        if let Some(key) = key {
            self.add_keys.insert(key, &ids, now);
        }
        Ok(ids)
    }

    /// `ids`, unless some of them were purged (`TableError::Purged`): a wait or a watch would
    /// otherwise leave them out of its answer without a word.
    fn not_purged(&self, ids: Vec<TaskId>) -> Result<Vec<TaskId>, TableError> {
        self.table.check_not_purged(&ids, &self.store)?;
        Ok(ids)
    }

    /// Registers `origin`'s request for `ids` (which exist); those finished already are pushed
    /// with this round's pushes.
    fn watch(&mut self, origin: &Origin, ids: &[TaskId], round: &mut Round) {
        if ids.is_empty() {
            return;
        }
        let (done, open): (Vec<TaskId>, Vec<TaskId>) =
            ids.iter().partition(|id| self.table.is_finished(**id));
        self.watchers.watch(origin.conn, origin.request, &open);
        if !done.is_empty() {
            round
                .pushes
                .entry((origin.conn, origin.request))
                .or_default()
                .extend(done);
        }
        self.sinks
            .entry(origin.conn)
            .or_insert_with(|| origin.pushes.clone());
    }
}

fn changed(result: Result<Changed, TableError>) -> Reply {
    match result {
        Ok(outcome) => Reply::Changed {
            changed: outcome.changed,
            unchanged: outcome.unchanged,
        },
        Err(err) => Reply::Error(err.failure()),
    }
}

/// Function names longer than this are shortened in a refusal, so that it stays one line.
const NAMED_FUNCTION: usize = 120;

/// Every task's function must be importable by name; the refusal names the first bad one
/// (shortened if long) and counts the others.
fn check_functions(tasks: &[TaskSpec]) -> Result<(), Failure> {
    let mut bad = tasks
        .iter()
        .filter_map(|task| check_function(&task.function).err().map(|e| (task, e)));
    let Some((first, mut message)) = bad.next() else {
        return Ok(());
    };
    let name = &first.function;
    if name.len() > NAMED_FUNCTION {
        let mut cut = NAMED_FUNCTION;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        message = message.replacen(name.as_str(), &format!("{}…", &name[..cut]), 1);
    }
    let others = bad.count();
    if others > 0 {
        message.push_str(&format!(
            " ({others} more tasks of this add are named wrongly)"
        ));
    }
    Err(Failure::bad_request(message))
}

/// Every task's queue must be named as `queue::check_name` allows, its priority be within
/// `PRIORITIES` (`check_priority`, the sentence every client uses) and its dependencies be at
/// most `MAX_AFTER`; the refusal names the first bad task by its place in a larger add.
fn check_placement(tasks: &[TaskSpec]) -> Result<(), Failure> {
    for (n, task) in tasks.iter().enumerate() {
        // Which task, written only for a refusal: formatting it for every task of an add was
        // an allocation per task added.
        let refuse = |err: String| match tasks.len() {
            1 => Failure::bad_request(err),
            _ => Failure::bad_request(format!("task {} of this add: {err}", n + 1)),
        };
        check_name(&task.queue).map_err(refuse)?;
        check_priority(i64::from(task.priority)).map_err(refuse)?;
        if task.after.len() > MAX_AFTER {
            return Err(refuse(format!(
                "a task may run after at most {MAX_AFTER} tasks, not {}; chain them through fewer tasks",
                task.after.len()
            )));
        }
    }
    Ok(())
}

/// How many tasks one `List` answers: what was asked, but never more than the protocol's cap
/// (0 asks for the cap), so that no listing makes one huge reply.
fn list_limit(asked: u32) -> usize {
    match asked as usize {
        0 => MAX_TASKS_PER_LIST,
        n => n.min(MAX_TASKS_PER_LIST),
    }
}
