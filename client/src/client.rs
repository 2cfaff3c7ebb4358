//! `Client`: the handle every actioner holds — one connection to the coordinator, shared by
//! clones across tasks and threads, with a typed method per request. Requests go to the
//! session task, so many are under way at once (a long `wait` does not hold up an `add`).
//! Knows nothing of terminals: it never prints, and every failure is a `ClientError`.

use crate::connect::connect_once;
use crate::error::ClientError;
use crate::key::random_key;
use crate::options::{ConnectOptions, Tuning};
use crate::pipeline::{Event, Pipeline};
use crate::session::{Responder, Session, Shared, ToSession};
use crate::size::check_size;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tatzelwurm_proto::actioner::{AddKey, Command, Reply, Selection, WaitSummary, WorkerInfo};
use tatzelwurm_proto::limits::{MAX_IDS_PER_REQUEST, MAX_TASKS_PER_ADD, MAX_TASKS_PER_LIST};
use tatzelwurm_proto::task::{TaskInfo, TaskSpec, TaskState};
use tatzelwurm_proto::TaskId;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

/// What a play, a pause or a kill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    /// Tasks that moved.
    pub changed: Vec<TaskId>,
    /// Tasks the command did not apply to, with the state that kept them.
    pub unchanged: Vec<(TaskId, TaskState)>,
}

/// One connection, shared: `Clone + Send + Sync`; many requests in flight at once.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where it connects, for messages.
    address: String,
    /// Requests to the session.
    to_session: UnboundedSender<ToSession>,
    /// The pipeline's state, shared with the session.
    shared: Arc<Shared>,
    /// The pipeline's events, until `pipeline` hands them out.
    events: Mutex<Option<UnboundedReceiver<Event>>>,
}

impl Client {
    /// Connects (bounded by `opts.connect_timeout`) and starts the session on the caller's
    /// runtime.
    pub async fn connect(opts: ConnectOptions) -> Result<Client, ClientError> {
        Client::connect_tuned(opts, Tuning::default()).await
    }

    /// `connect` with other limits (shorter ones in tests).
    #[doc(hidden)]
    pub async fn connect_tuned(
        opts: ConnectOptions,
        tuning: Tuning,
    ) -> Result<Client, ClientError> {
        let conn = connect_once(&opts).await?;
        let (to_session, handles) = unbounded_channel();
        let (events_tx, events_rx) = unbounded_channel();
        let shared = Arc::new(Shared::new(tuning.adds_in_flight));
        let address = opts.address.clone();
        Session::spawn(opts, tuning, conn, handles, Arc::clone(&shared), events_tx);
        Ok(Client {
            inner: Arc::new(Inner {
                address,
                to_session,
                shared,
                events: Mutex::new(Some(events_rx)),
            }),
        })
    }

    /// The address this client talks to.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// Sends one command and returns its whole answer: a list's pages as one `Reply::Tasks`,
    /// `Reply::Error` as `ClientError::Rejected`. A command too large for a frame is refused
    /// before anything is sent.
    pub async fn request(&self, command: Command) -> Result<Reply, ClientError> {
        check_size(&command)?;
        let (tx, rx) = oneshot::channel();
        self.send(ToSession::Request {
            command: Box::new(command),
            to: Responder::Caller(tx),
        })?;
        rx.await.map_err(|_| self.closed())?
    }

    /// Adds tasks (started `ready` with `play`, else `created`) and returns their ids in the
    /// order given, once durable. Keyed: if the connection drops and comes back, the add is
    /// sent again and the coordinator answers with the ids it already created.
    ///
    /// More than `MAX_TASKS_PER_ADD` tasks go as several adds, each with a key of its own.
    pub async fn add(&self, tasks: Vec<TaskSpec>, play: bool) -> Result<Vec<TaskId>, ClientError> {
        let mut all = Vec::with_capacity(tasks.len());
        for tasks in chunks(tasks, MAX_TASKS_PER_ADD) {
            let command = Command::Add {
                tasks,
                play,
                key: Some(AddKey(random_key())),
                watch: false,
            };
            match self.request(command).await? {
                Reply::Added(ids) => all.extend(ids),
                other => return Err(self.unexpected(&other, "Added")),
            }
        }
        Ok(all)
    }

    /// Moves `created` and `paused` tasks on (to `blocked`, `scheduled` or `ready`, as their
    /// dependencies and start time say). More ids than one request may carry
    /// (`MAX_IDS_PER_REQUEST`) go as several requests, each applied on its own.
    pub async fn play(&self, sel: Selection) -> Result<Changed, ClientError> {
        self.change(sel, Command::Play).await
    }

    /// Holds `created`, `ready` and `scheduled` tasks as `paused` until they are played (a
    /// scheduled one keeps its time). Chunked as `play` is.
    pub async fn pause(&self, sel: Selection) -> Result<Changed, ClientError> {
        self.change(sel, Command::Pause).await
    }

    /// Ends unfinished tasks; a running one is stopped by its worker. More ids than one
    /// request may carry go as several requests, each applied on its own.
    pub async fn kill(&self, sel: Selection) -> Result<Changed, ClientError> {
        self.change(sel, Command::Kill).await
    }

    /// A play, pause or kill of `sel` (`command` is `Command::Play`, `Command::Pause` or
    /// `Command::Kill`), cut into
    /// requests of at most `MAX_IDS_PER_REQUEST` ids, their answers added up.
    pub async fn change(
        &self,
        sel: Selection,
        command: fn(Selection) -> Command,
    ) -> Result<Changed, ClientError> {
        let mut all = Changed::default();
        for sel in selections(sel) {
            let reply = self.request(command(sel)).await?;
            all.extend(self.changed(reply)?);
        }
        Ok(all)
    }

    /// Every task in one of `states` (all when empty), of every queue, in id order, without
    /// output.
    pub async fn list(&self, states: Vec<TaskState>) -> Result<Vec<TaskInfo>, ClientError> {
        self.list_page(states, None, None, 0).await
    }

    /// Tasks in one of `states` (all when empty) of `queue` (every queue when `None`) with ids
    /// above `after`, in id order, at most `limit` of them (0: all), without output. Read
    /// request by request, at most `MAX_TASKS_PER_LIST` each, so that the coordinator never
    /// builds one huge reply.
    pub async fn list_page(
        &self,
        states: Vec<TaskState>,
        queue: Option<&str>,
        after: Option<TaskId>,
        limit: usize,
    ) -> Result<Vec<TaskInfo>, ClientError> {
        let mut found: Vec<TaskInfo> = Vec::new();
        let mut cursor = after;
        loop {
            let wanted = match limit {
                0 => MAX_TASKS_PER_LIST,
                n => (n - found.len()).min(MAX_TASKS_PER_LIST),
            };
            let command = Command::List {
                states: states.clone(),
                queue: queue.map(str::to_owned),
                after: cursor,
                limit: wanted as u32,
            };
            let page = match self.request(command).await? {
                Reply::Tasks { tasks, .. } => tasks,
                other => return Err(self.unexpected(&other, "Tasks")),
            };
            let last_page = page.len() < wanted;
            cursor = page.last().map(|task| task.id).or(cursor);
            found.extend(page);
            if last_page || (limit != 0 && found.len() >= limit) {
                return Ok(found);
            }
        }
    }

    /// One task with its captured output.
    pub async fn show(&self, id: TaskId) -> Result<TaskInfo, ClientError> {
        match self.request(Command::Show(id)).await? {
            Reply::Task(info) => Ok(*info),
            other => Err(self.unexpected(&other, "Task")),
        }
    }

    /// Waits until every selected task is finished; returns how many ended in each state and
    /// the ones that did not complete (without output).
    /// Unbounded: wrap it in `tokio::time::timeout` for a limit.
    /// More ids than one request may carry are waited for in several requests, one after
    /// the other.
    pub async fn wait(&self, sel: Selection) -> Result<WaitSummary, ClientError> {
        let mut all = WaitSummary::default();
        for sel in selections(sel) {
            match self.request(Command::Wait(sel)).await? {
                Reply::Waited(summary) => all.merge(summary),
                other => return Err(self.unexpected(&other, "Waited")),
            }
        }
        Ok(all)
    }

    /// The workers connected now.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, ClientError> {
        match self.request(Command::Workers).await? {
            Reply::Workers(workers) => Ok(workers),
            other => Err(self.unexpected(&other, "Workers")),
        }
    }

    /// The pipeline of this client and its events; a second call returns `None`. `window`
    /// bounds the tasks submitted and not yet acknowledged.
    pub fn pipeline(&self, window: usize) -> Option<(Pipeline, UnboundedReceiver<Event>)> {
        let events = self
            .inner
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        self.inner.shared.batcher().set_window(window);
        self.inner.shared.events_on.store(true, Ordering::Release);
        Some((Pipeline::new(self.clone()), events))
    }

    /// Stops reconnecting and closes the connection: requests under way and queued submits
    /// fail with `ClientClosed`, and so does every later one.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(ToSession::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Hands a message to the session.
    pub(crate) fn send(&self, message: ToSession) -> Result<(), ClientError> {
        self.inner
            .to_session
            .send(message)
            .map_err(|_| self.closed())
    }

    pub(crate) fn closed(&self) -> ClientError {
        ClientError::ClientClosed {
            addr: self.inner.address.clone(),
        }
    }

    fn changed(&self, reply: Reply) -> Result<Changed, ClientError> {
        match reply {
            Reply::Changed { changed, unchanged } => Ok(Changed { changed, unchanged }),
            other => Err(self.unexpected(&other, "Changed")),
        }
    }

    pub(crate) fn unexpected(&self, reply: &Reply, expected: &str) -> ClientError {
        unexpected(&self.inner.address, reply, expected)
    }
}

impl Changed {
    fn extend(&mut self, other: Changed) {
        self.changed.extend(other.changed);
        self.unchanged.extend(other.unchanged);
    }
}

/// `items` cut into pieces of at most `size` (one empty piece for an empty list).
pub(crate) fn chunks<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    if items.len() <= size {
        return vec![items];
    }
    let mut rest = items.into_iter().peekable();
    let mut out = Vec::new();
    while rest.peek().is_some() {
        out.push(rest.by_ref().take(size).collect());
    }
    out
}

/// A selection as requests within `MAX_IDS_PER_REQUEST` ids each.
fn selections(sel: Selection) -> Vec<Selection> {
    match sel {
        Selection::All => vec![Selection::All],
        Selection::Ids(ids) => chunks(ids, MAX_IDS_PER_REQUEST)
            .into_iter()
            .map(Selection::Ids)
            .collect(),
    }
}

/// A reply of the wrong kind, naming both kinds.
pub(crate) fn unexpected(addr: &str, reply: &Reply, expected: &str) -> ClientError {
    ClientError::Unexpected {
        addr: addr.into(),
        detail: format!(
            "answered {} where {expected} was expected",
            reply_kind(reply)
        ),
    }
}

/// The name of a reply's variant.
fn reply_kind(reply: &Reply) -> &'static str {
    match reply {
        Reply::Added(_) => "Added",
        Reply::Changed { .. } => "Changed",
        Reply::Tasks { .. } => "Tasks",
        Reply::Task(_) => "Task",
        Reply::Waited(_) => "Waited",
        Reply::Workers(_) => "Workers",
        Reply::Watching => "Watching",
        Reply::Finished(_) => "Finished",
        Reply::Queues(_) => "Queues",
        Reply::Schedules(_) => "Schedules",
        Reply::Events { .. } => "Events",
        Reply::Logs { .. } => "Logs",
        Reply::Purged { .. } => "Purged",
        Reply::Error(_) => "Error",
    }
}

mod control;
mod operations;
pub use operations::Purged;
#[cfg(test)]
mod tests;
