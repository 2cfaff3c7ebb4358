//! The task actor: the one owner of the `TaskTable`, reached through `TasksHandle`.
//!
//! It works in rounds, which is how group commit happens: it takes every message already
//! waiting (up to `MAX_ROUND`), applies them to the table, hands ready tasks to free slots,
//! writes everything that changed to the store in one batch with one flush, and only then
//! answers actioners, sends work and acknowledgements to workers, and wakes waiters. While a
//! flush runs, new messages queue up and share the next one. Actioner and worker connections
//! send to it; it waits only on the worker actor, which never waits on it.

use crate::store::{Store, StoreError};
use crate::task_table::{Changed, TaskTable};
use crate::waiters::Waiters;
use crate::workers::{WorkerSender, WorkersHandle};
use std::collections::{BTreeMap, HashMap};
use tatzelwurm_proto::actioner::{Command, Failure, FailureKind, Reply};
use tatzelwurm_proto::task::{TaskOutput, Timestamp};
use tatzelwurm_proto::worker::{Assignment, Report, ToWorker};
use tatzelwurm_proto::{Attempt, TaskId, WorkerId};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

/// How many messages one round takes at most, so that replies are never held back for long.
const MAX_ROUND: usize = 4096;

enum TaskMsg {
    Command {
        command: Command,
        reply: oneshot::Sender<Reply>,
    },
    Reports {
        worker: WorkerId,
        sender: WorkerSender,
        reports: Vec<Report>,
    },
    Heartbeat {
        worker: WorkerId,
        sender: WorkerSender,
        running: Vec<(TaskId, Attempt)>,
    },
    WorkerLost(WorkerId),
    Wake,
}

/// A cheap, cloneable way to talk to the task actor. The actor stops when every handle is
/// dropped.
#[derive(Clone)]
pub struct TasksHandle {
    sender: mpsc::Sender<TaskMsg>,
}

/// What one worker gets at the end of a round.
#[derive(Default)]
struct Outgoing {
    run: Vec<Assignment>,
    kill: Vec<(TaskId, Attempt)>,
    recorded: Vec<(TaskId, Attempt)>,
}

impl Outgoing {
    /// The frames to send, acknowledgements first (they free the worker's memory), runs last.
    fn into_frames(self) -> impl Iterator<Item = ToWorker> {
        [
            ToWorker::Recorded(self.recorded),
            ToWorker::Kill(self.kill),
            ToWorker::Run(self.run),
        ]
        .into_iter()
        .filter(|frame| match frame {
            ToWorker::Recorded(list) | ToWorker::Kill(list) => !list.is_empty(),
            ToWorker::Run(list) => !list.is_empty(),
        })
    }
}

/// Everything a round must tell once its changes are durable.
#[derive(Default)]
struct Round {
    replies: Vec<(oneshot::Sender<Reply>, Reply)>,
    outgoing: BTreeMap<WorkerId, Outgoing>,
    freed: Vec<WorkerId>,
    may_dispatch: bool,
}

struct TasksActor {
    receiver: mpsc::Receiver<TaskMsg>,
    table: TaskTable,
    store: Store,
    workers: WorkersHandle,
    waiters: Waiters,
    /// How to reach the workers that hold attempts or just reported.
    senders: HashMap<WorkerId, WorkerSender>,
}

impl TasksHandle {
    /// Starts the task actor over a table recovered from `store`.
    pub fn new(table: TaskTable, store: Store, workers: WorkersHandle) -> TasksHandle {
        let (sender, receiver) = mpsc::channel(4096);
        let actor = TasksActor {
            receiver,
            table,
            store,
            workers,
            waiters: Waiters::default(),
            senders: HashMap::new(),
        };
        tokio::spawn(actor.run());
        TasksHandle { sender }
    }

    /// Carries out an actioner's command; the answer comes once its effects are durable.
    pub async fn command(&self, command: Command) -> Reply {
        let (reply, answer) = oneshot::channel();
        if self
            .sender
            .send(TaskMsg::Command { command, reply })
            .await
            .is_err()
        {
            return stopping();
        }
        answer.await.unwrap_or_else(|_| stopping())
    }

    /// Hands over a worker's reports; `sender` is where their acknowledgement goes.
    pub async fn reports(&self, worker: WorkerId, sender: WorkerSender, reports: Vec<Report>) {
        let _ = self
            .sender
            .send(TaskMsg::Reports {
                worker,
                sender,
                reports,
            })
            .await;
    }

    /// A worker's heartbeat: attempts it runs that are no longer its own are stopped.
    pub async fn heartbeat(
        &self,
        worker: WorkerId,
        sender: WorkerSender,
        running: Vec<(TaskId, Attempt)>,
    ) {
        let _ = self
            .sender
            .send(TaskMsg::Heartbeat {
                worker,
                sender,
                running,
            })
            .await;
    }

    /// A worker's connection ended: requeue what it ran.
    pub async fn worker_lost(&self, worker: WorkerId) {
        let _ = self.sender.send(TaskMsg::WorkerLost(worker)).await;
    }

    /// Slots may have become free (a worker joined): try to dispatch.
    pub async fn wake(&self) {
        let _ = self.sender.send(TaskMsg::Wake).await;
    }
}

fn stopping() -> Reply {
    Reply::Error(Failure::new(
        FailureKind::Stopping,
        "the coordinator is stopping; try again once it is back",
    ))
}

impl TasksActor {
    async fn run(mut self) {
        loop {
            // Sleep until a message arrives or the earliest retry is due, whichever is first.
            let retry_due = self.table.next_retry();
            let first = tokio::select! {
                msg = self.receiver.recv() => match msg {
                    Some(msg) => Some(msg),
                    None => return,
                },
                () = sleep_until(retry_due) => None,
            };
            let mut round = Round::default();
            let now = Timestamp::now();
            if let Some(first) = first {
                self.handle(first, &mut round, now);
            }
            for _ in 1..MAX_ROUND {
                match self.receiver.try_recv() {
                    Ok(msg) => self.handle(msg, &mut round, now),
                    Err(_) => break,
                }
            }
            if self.table.promote_due(now) > 0 {
                round.may_dispatch = true;
            }
            self.workers.release(std::mem::take(&mut round.freed)).await;
            if round.may_dispatch {
                self.dispatch(&mut round, now).await;
            }
            let batch = self.table.take_changes();
            if let Err(err) = self.store.apply(batch).await {
                // Nothing of this round may be told: it is not durable. Stopping is the only
                // honest answer; a restart recovers the last durable state.
                error!("{err}; stopping so that no unrecorded change is acknowledged");
                std::process::exit(2);
            }
            self.deliver(round);
        }
    }

    fn handle(&mut self, msg: TaskMsg, round: &mut Round, now: Timestamp) {
        match msg {
            TaskMsg::Command { command, reply } => {
                if let Some(answer) = self.command(command, reply, round, now) {
                    round.replies.push(answer);
                }
            }
            TaskMsg::Reports {
                worker,
                sender,
                reports,
            } => {
                self.senders.insert(worker, sender);
                let out = round.outgoing.entry(worker).or_default();
                for report in reports {
                    let key = (report.task, report.attempt);
                    let effect = self.table.report(worker, report, now);
                    if effect.freed_slot {
                        round.freed.push(worker);
                        round.may_dispatch = true;
                    }
                    if effect.stale {
                        warn!(
                            "ignored report of task {} attempt {} from worker {worker}: {}",
                            key.0,
                            key.1,
                            self.why_not_current(key.0)
                        );
                    }
                    out.recorded.push(key);
                }
            }
            TaskMsg::Heartbeat {
                worker,
                sender,
                running,
            } => {
                let stale = self.table.stale_attempts(worker, &running);
                if !stale.is_empty() {
                    for (task, attempt) in &stale {
                        warn!(
                            "ignored heartbeat for task {task} attempt {attempt} from worker {worker}: {}; telling the worker to stop it",
                            self.why_not_current(*task)
                        );
                    }
                    self.senders.insert(worker, sender);
                    round.outgoing.entry(worker).or_default().kill.extend(stale);
                }
            }
            TaskMsg::WorkerLost(worker) => {
                self.senders.remove(&worker);
                round.outgoing.remove(&worker);
                let lost = self.table.worker_lost(worker, now);
                if lost.requeued > 0 || lost.failed > 0 {
                    info!(
                        %worker,
                        requeued = lost.requeued,
                        failed = lost.failed,
                        "worker lost; its tasks are ready again unless at-most-once or past their crash limit"
                    );
                    round.may_dispatch = true;
                }
            }
            TaskMsg::Wake => round.may_dispatch = true,
        }
    }

    /// Applies a command; returns the reply to send after the flush, or `None` for a wait that
    /// stays open.
    fn command(
        &mut self,
        command: Command,
        reply: oneshot::Sender<Reply>,
        round: &mut Round,
        now: Timestamp,
    ) -> Option<(oneshot::Sender<Reply>, Reply)> {
        let answer =
            match command {
                Command::Add { tasks, play, .. } => {
                    match tasks.iter().find(|t| !t.function.contains(':')) {
                    Some(bad) => Reply::Error(Failure::bad_request(format!(
                        "`{}` is not a task function; write package.module:function or path/to/file.py:function",
                        bad.function
                    ))),
                    None => {
                        round.may_dispatch |= play;
                        Reply::Added(self.table.add(tasks, play, now))
                    }
                }
                }
                Command::Play(selection) => {
                    round.may_dispatch = true;
                    changed(self.table.play(&selection))
                }
                Command::Kill(selection) => match self.table.kill(&selection, now) {
                    Ok((outcome, orders)) => {
                        for order in orders {
                            let out = round.outgoing.entry(order.worker).or_default();
                            out.kill.push((order.task, order.attempt));
                        }
                        changed(Ok(outcome))
                    }
                    Err(err) => Reply::Error(Failure::bad_request(err)),
                },
                Command::List { states } => Reply::Tasks {
                    tasks: self.table.list(&states),
                    more: false,
                },
                Command::Show(id) => match self.table.show(id) {
                    Ok(mut info) => match self.output_of(id) {
                        Ok(output) => {
                            info.output = Some(output);
                            Reply::Task(Box::new(info))
                        }
                        Err(err) => Reply::Error(Failure::new(FailureKind::Internal, format!(
                            "cannot read the output of task {id} from the database ({err}); the task itself is {}",
                            info.state
                        ))),
                    },
                    Err(err) => Reply::Error(Failure::bad_request(err)),
                },
                Command::Wait(selection) => match self.table.wait_targets(&selection) {
                    Err(err) => Reply::Error(Failure::bad_request(err)),
                    Ok(tasks) => {
                        let pending: Vec<TaskId> = tasks
                            .iter()
                            .copied()
                            .filter(|id| !self.table.is_finished(*id))
                            .collect();
                        if pending.is_empty() {
                            Reply::Waited(self.summaries(&tasks))
                        } else {
                            self.waiters.add(tasks, pending, reply);
                            return None;
                        }
                    }
                },
                Command::Watch(_) => Reply::Error(Failure::bad_request("watches are not served yet")),
                Command::Workers => {
                    Reply::Error(Failure::new(FailureKind::Internal, "internal: worker lists are answered by the worker actor"))
                }
            };
        Some((reply, answer))
    }

    /// Hands ready tasks to the least-loaded workers with free slots.
    async fn dispatch(&mut self, round: &mut Round, now: Timestamp) {
        let want = self.table.ready_len();
        if want == 0 {
            return;
        }
        for grant in self.workers.reserve(want).await {
            let handed = self
                .table
                .assign(grant.worker, &grant.name, grant.count, now);
            if handed.len() < grant.count {
                let unused = (grant.count - handed.len()) as u32;
                self.workers.unreserve(grant.worker, unused).await;
            }
            self.senders.insert(grant.worker, grant.sender);
            let out = round.outgoing.entry(grant.worker).or_default();
            out.run.extend(handed);
        }
    }

    /// Tells everyone what the round did; called only after the store flush.
    fn deliver(&mut self, round: Round) {
        for (reply, answer) in round.replies {
            let _ = reply.send(answer);
        }
        for (worker, out) in round.outgoing {
            let Some(sender) = self.senders.get(&worker) else {
                continue;
            };
            for frame in out.into_frames() {
                if sender.send(frame).is_err() {
                    // The connection is closing; its WorkerLost will requeue what it held.
                    warn!(%worker, "could not reach worker; its tasks are requeued when its connection ends");
                    break;
                }
            }
        }
        let finished = self.table.take_finished();
        for answer in self.waiters.finished(&finished) {
            let _ = answer
                .reply
                .send(Reply::Waited(self.summaries(&answer.tasks)));
        }
    }

    /// What task `id`'s latest reported attempt printed: this round's report if there is one,
    /// else the store's.
    fn output_of(&self, id: TaskId) -> Result<TaskOutput, StoreError> {
        match self.table.unsaved_output(id) {
            Some(output) => Ok(output.clone()),
            None => self.store.output(id),
        }
    }

    /// Why a message about `task` names an attempt that is not current, for the log.
    fn why_not_current(&self, task: TaskId) -> String {
        match self.table.describe(task) {
            Some((state, attempt)) => {
                format!("the task is {state} with attempt {attempt} current")
            }
            None => "no such task".into(),
        }
    }

    fn summaries(&self, ids: &[TaskId]) -> Vec<tatzelwurm_proto::task::TaskInfo> {
        ids.iter()
            .filter_map(|id| self.table.summary(*id))
            .collect()
    }
}

/// Completes at the wall-clock time `due`, or never when there is none.
async fn sleep_until(due: Option<Timestamp>) {
    match due {
        Some(due) => {
            let wait = due.0.saturating_sub(Timestamp::now().0);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}

fn changed(result: Result<Changed, String>) -> Reply {
    match result {
        Ok(outcome) => Reply::Changed {
            changed: outcome.changed,
            unchanged: outcome.unchanged,
        },
        Err(err) => Reply::Error(Failure::bad_request(err)),
    }
}
