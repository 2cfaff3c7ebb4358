//! `Core`: one connection to the coordinator (a `tatzelwurm_client::Client` on the extension's
//! runtime), its pipeline, and the stream of its events, for `tatzelwurm.Client`.
//!
//! Every call that can wait releases the GIL: connecting, a submit while the window is full,
//! the dispatcher thread's wait for events, and every request. A submit with room in the window
//! only queues (a lock and a push), so it keeps the GIL: releasing it would cost more.
//!
//! The queue and schedule requests are thin here: their conversions live in `queues` and
//! `schedules`. The streamed answers (events, a task's output) are `feed::Feed`s read by the
//! caller's thread; a following one connects a connection of its own with this core's options.

use crate::convert::{client_error, error, task_info, task_infos, worker_info};
use crate::dispatch::Events;
use crate::events::EventFeed;
use crate::feed::{self, Feed, Start};
use crate::gil::Turns;
use crate::json_args;
use crate::logs::LogFeed;
use crate::options::Options;
use crate::runtime::{request, runtime};
use crate::{queues, schedules};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tatzelwurm_client::{Changed, Client, ClientError, ConnectOptions, Event, Pipeline, Purged};
use tatzelwurm_proto::actioner::{Command, PurgeSelection, Selection, WorkerInfo};
use tatzelwurm_proto::batch::add_cap;
use tatzelwurm_proto::event::{EventFilter, EventsFrom};
use tatzelwurm_proto::function::check_function;
use tatzelwurm_proto::task::{TaskSpec, TaskState, Timestamp};
use tatzelwurm_proto::tls::ClientTls;
use tatzelwurm_proto::TaskId;
use tokio::sync::mpsc::UnboundedReceiver;

/// Most items `submit_many` writes before it queues them (see there).
const MAX_PART: usize = 16_384;

/// How long the first connect and handshake may take before `CoordinatorUnavailable`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a kill or play did, for Python: the ids changed, and `(id, state)` of those unchanged.
type ChangedIds = (Vec<u64>, Vec<(u64, String)>);

/// What a purge did, for Python: how many were removed, and `(id, state or None)` of the named
/// tasks it left.
type PurgedIds = (u64, Vec<(u64, Option<&'static str>)>);

/// One client connection, shared by every thread of the Python client.
#[pyclass(frozen, module = "tatzelwurm._native")]
pub struct Core {
    client: Client,
    /// How it connected, for the connections of following streams.
    opts: ConnectOptions,
    pipeline: Pipeline,
    /// The pipeline's events; only the dispatcher thread takes them.
    events: Mutex<UnboundedReceiver<Event>>,
    /// Set by `close`: the dispatcher's next wait returns None.
    closed: AtomicBool,
}

#[pymethods]
impl Core {
    /// Connects (address: given > $TATZELWURM_COORDINATOR > 127.0.0.1:5677; token from
    /// $TATZELWURM_TOKEN) within 2 s, reconnecting later drops by itself. TLS: `tls` True or a
    /// `tls_ca` file turns it on (trusting the system's roots, or only that CA), False off;
    /// with neither, $TATZELWURM_TLS and $TATZELWURM_TLS_CA decide.
    #[staticmethod]
    #[pyo3(signature = (address, name, window, tls=None, tls_ca=None))]
    fn connect(
        py: Python<'_>,
        address: Option<String>,
        name: String,
        window: usize,
        tls: Option<bool>,
        tls_ca: Option<PathBuf>,
    ) -> PyResult<Core> {
        let mut opts = ConnectOptions::from_env(address.as_deref(), &name);
        opts.connect_timeout = CONNECT_TIMEOUT;
        opts.reconnect = true;
        if tls_ca.is_some() || tls == Some(true) {
            // What the arguments leave open ($TATZELWURM_TLS_CA with tls=True) the environment
            // fills, as the command lines' --tls does.
            let trust = ClientTls::from_flags(true, tls_ca.as_deref())
                .map_err(|m| error(py, "BadRequest", m))?;
            opts = opts.with_tls(trust);
        } else if tls == Some(false) {
            opts = opts.with_tls(None);
        }
        let kept = opts.clone();
        let connected = py.detach(|| {
            runtime().block_on(async move {
                let client = Client::connect(opts).await?;
                let (pipeline, events) = client
                    .pipeline(window.max(1))
                    .expect("a new client has its pipeline");
                Ok::<_, ClientError>((client, pipeline, events))
            })
        });
        let (client, pipeline, events) = connected.map_err(|e| client_error(py, &e))?;
        Ok(Core {
            client,
            opts: kept,
            pipeline,
            events: Mutex::new(events),
            closed: AtomicBool::new(false),
        })
    }

    /// `host:port` of the coordinator.
    #[getter]
    fn address(&self) -> String {
        self.client.address().to_string()
    }

    /// Queues one task; returns its ticket. Blocks (GIL released) while the window is full.
    fn submit(
        &self,
        py: Python<'_>,
        function: String,
        args: String,
        kwargs: String,
        options: &Bound<'_, Options>,
    ) -> PyResult<u64> {
        let options = options.get();
        let spec = spec(py, function, args, kwargs, options)?;
        match self.pipeline.try_submit(spec, options.play) {
            Ok(ticket) => Ok(ticket),
            Err(spec) => {
                let pipeline = &self.pipeline;
                let play = options.play;
                py.detach(|| pipeline.submit_blocking(spec, play))
                    .map_err(|e| client_error(py, &e))
            }
        }
    }

    /// Queues one task if the window has room (its ticket), else None; never blocks.
    fn try_submit(
        &self,
        py: Python<'_>,
        function: String,
        args: String,
        kwargs: String,
        options: &Bound<'_, Options>,
    ) -> PyResult<Option<u64>> {
        let options = options.get();
        let spec = spec(py, function, args, kwargs, options)?;
        Ok(self.pipeline.try_submit(spec, options.play).ok())
    }

    /// Queues one task per item of `items` under consecutive tickets and returns the first:
    /// a tuple item is the positional arguments, any other item the one argument, and
    /// `kwargs[i]` (a list, when given) item i's keyword arguments. Each call's JSON is written
    /// by `json_args` when its values are plain, else by `encode(index, item, kwargs)`
    /// (`tatzelwurm.serialize.encode_item`, which raises `SerializationError` naming the item
    /// and the path). Blocks (GIL released) while the window is full.
    ///
    /// A refused item sends nothing. When every item is plain (checked first, without
    /// writing: ~20 ns an integer), nothing can be refused, so the items are written and
    /// queued a part at a time (`Bulk`), the first part as large as a burst's first add: it
    /// leaves while the rest are written (W1's 10,000 noops: ~3 ms of writing before the
    /// first add left, and the coordinator and the workers idle meanwhile). Otherwise every
    /// item is written, by Python's encoder where needed, before any is queued.
    fn submit_many(
        &self,
        py: Python<'_>,
        function: String,
        items: &Bound<'_, PyAny>,
        kwargs: Option<&Bound<'_, PyList>>,
        options: &Bound<'_, Options>,
        encode: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let options = options.get();
        check_function(&function).map_err(|m| error(py, "BadRequest", m))?;
        let mut all = Vec::with_capacity(items.len().unwrap_or(0));
        for item in items.try_iter()? {
            all.push(item?);
        }
        let items = all;
        // A copy: another thread that changes the list meanwhile changes nothing here.
        let kwargs = kwargs.map(|list| list.to_tuple());
        if let Some(list) = &kwargs {
            if list.len() < items.len() {
                return Err(PyValueError::new_err(format!(
                    "submit_many got {} kwargs dicts for {} items; give one dict per item",
                    list.len(),
                    items.len()
                )));
            }
        }
        let kw = |index: usize| kwargs.as_ref().map(|list| list.get_item(index)).transpose();
        let mut turns = Turns::new();
        let mut plain = true;
        for (index, item) in items.iter().enumerate() {
            turns.check(py);
            if !json_args::plain_item(item, kw(index)?.as_ref()) {
                plain = false;
                break;
            }
        }
        let write = |index: usize, turns: &mut Turns| -> PyResult<TaskSpec> {
            turns.check(py);
            let item = &items[index];
            let kw = kw(index)?;
            // An item checked plain that another thread changed since (the GIL is let go
            // now and then) comes here too; Python's encoder writes or refuses it.
            let (args, kwargs) = match json_args::item(item, kw.as_ref()) {
                Some(texts) => texts,
                None => encode.call1((index, item, kw))?.extract()?,
            };
            Ok(options.spec(function.clone(), args, kwargs))
        };
        let pipeline = &self.pipeline;
        let play = options.play;
        let mut bulk = py.detach(|| pipeline.bulk());
        let mut start = 0;
        while start < items.len() {
            // Plain items as a burst's adds grow (`add_cap`: the first part one first add's
            // worth); any other list as one part, all written before any is queued.
            let part = if plain {
                add_cap(start, MAX_PART)
            } else {
                items.len()
            };
            let end = items.len().min(start + part);
            let mut specs = Vec::with_capacity(end - start);
            for index in start..end {
                specs.push(write(index, &mut turns)?);
            }
            py.detach(|| bulk.push(specs, play))
                .map_err(|e| client_error(py, &e))?;
            start = end;
        }
        Ok(bulk.first())
    }

    /// Adds one task per (args, kwargs) pair in a request of its own, outside the pipeline, and
    /// returns their ids once durable; the coordinator's refusal (an `after` id that does not
    /// exist: `UnknownTask`) is raised here and fails no other submit. Not watched: the caller
    /// registers handles first, then calls `watch`.
    fn add(
        &self,
        py: Python<'_>,
        function: String,
        args: Vec<String>,
        kwargs: Vec<String>,
        options: &Bound<'_, Options>,
    ) -> PyResult<Vec<u64>> {
        let options = options.get();
        let specs = specs(py, function, args, kwargs, options)?;
        let client = &self.client;
        let play = options.play;
        let ids = request(py, client.add(specs, play))?;
        Ok(ids.into_iter().map(|id| id.0).collect())
    }

    /// Up to `max` events, waiting up to `timeout` seconds for the first (GIL released), as
    /// an `Events` batch for the dispatcher to apply (empty when none came); None once the
    /// client is closed. The batch is what has come by then, without lingering for more: the
    /// pipeline's events are batches already (a `Finished` holds a coordinator round's ends),
    /// and a linger of 1 ms (2 with tokio's timer) held the last results of a burst back (W1
    /// through `submit_many`: its last result reached `as_completed` 3 ms after the
    /// coordinator finished the task, 1.4 ms without it).
    fn next_events(&self, py: Python<'_>, max: usize, timeout: f64) -> Option<Events> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let wait = Duration::from_secs_f64(timeout.max(0.0));
        py.detach(|| {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            let first =
                runtime().block_on(async { tokio::time::timeout(wait, events.recv()).await });
            match first {
                Err(_) => Some(Events::new(Vec::new())),
                Ok(None) => None,
                Ok(Some(first)) => {
                    let mut batch = vec![first];
                    while batch.len() < max {
                        match events.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    Some(Events::new(batch))
                }
            }
        })
    }

    /// Waits until every ticket so far is acknowledged; false when `timeout` seconds passed first.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let pipeline = &self.pipeline;
        let outcome = py.detach(|| {
            runtime().block_on(async {
                match timeout {
                    None => Some(pipeline.flush().await),
                    Some(secs) => tokio::time::timeout(
                        Duration::from_secs_f64(secs.max(0.0)),
                        pipeline.flush(),
                    )
                    .await
                    .ok(),
                }
            })
        });
        match outcome {
            None => Ok(false),
            Some(result) => result.map(|()| true).map_err(|e| client_error(py, &e)),
        }
    }

    /// Watches existing tasks: their completions come as events. UnknownTask at once.
    fn watch(&self, py: Python<'_>, ids: Vec<u64>) -> PyResult<()> {
        let pipeline = &self.pipeline;
        let ids = ids.into_iter().map(TaskId).collect();
        request(py, pipeline.watch(ids))
    }

    /// One task with its output, as a dict.
    fn show<'py>(&self, py: Python<'py>, id: u64) -> PyResult<Bound<'py, PyAny>> {
        let client = &self.client;
        let info = request(py, client.show(TaskId(id)))?;
        Ok(task_info(py, info)?.into_any())
    }

    /// Tasks in any of these states (all when empty), of `queue` (all when None), as dicts.
    #[pyo3(signature = (states, limit=0, after=None, queue=None))]
    fn list<'py>(
        &self,
        py: Python<'py>,
        states: Vec<String>,
        limit: usize,
        after: Option<u64>,
        queue: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let states = parse_states(py, &states)?;
        let client = &self.client;
        let infos = request(
            py,
            client.list_page(states, queue.as_deref(), after.map(TaskId), limit),
        )?;
        task_infos(py, infos)
    }

    /// The connected workers, as dicts.
    fn workers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let client = &self.client;
        let workers = request(py, client.workers())?;
        worker_list(py, workers)
    }

    /// Kills these tasks (all unfinished ones when None): `(changed, [(id, state)])`.
    #[pyo3(signature = (ids=None))]
    fn kill(&self, py: Python<'_>, ids: Option<Vec<u64>>) -> PyResult<ChangedIds> {
        self.change(py, ids, Command::Kill)
    }

    /// Plays these created tasks (all when None): `(changed, [(id, state)])`.
    #[pyo3(signature = (ids=None))]
    fn play(&self, py: Python<'_>, ids: Option<Vec<u64>>) -> PyResult<ChangedIds> {
        self.change(py, ids, Command::Play)
    }

    /// Pauses these created, ready or scheduled tasks (all such when None).
    #[pyo3(signature = (ids=None))]
    fn pause(&self, py: Python<'_>, ids: Option<Vec<u64>>) -> PyResult<ChangedIds> {
        self.change(py, ids, Command::Pause)
    }

    /// Every queue, as dicts.
    fn queues<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let client = &self.client;
        let found = request(py, client.queues())?;
        queues::queue_infos(py, found)
    }

    /// Pauses, resumes or limits (`change`: pause, resume, limit) queue `name`; the queue as it
    /// is now, as a dict.
    fn change_queue<'py>(
        &self,
        py: Python<'py>,
        name: String,
        change: &str,
        limit: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let change = queues::change(py, change, limit)?;
        let client = &self.client;
        let queue = request(py, client.queue(&name, change))?;
        Ok(queues::queue_info(py, queue)?.into_any())
    }

    /// Adds a schedule (see `schedules::spec`); the new schedule, as a dict.
    #[allow(clippy::too_many_arguments)]
    fn add_schedule<'py>(
        &self,
        py: Python<'py>,
        name: String,
        every_ms: Option<u64>,
        cron: Option<String>,
        tz: Option<String>,
        function: String,
        args: String,
        kwargs: String,
        options: &Bound<'_, Options>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let spec = schedules::spec(
            py,
            name,
            every_ms,
            cron,
            tz,
            function,
            args,
            kwargs,
            options.get(),
        )?;
        let client = &self.client;
        let info = request(py, client.add_schedule(spec))?;
        Ok(schedules::schedule_info(py, info)?.into_any())
    }

    /// Schedule `name` (UnknownSchedule if none), or every schedule, as a list of dicts.
    #[pyo3(signature = (name=None))]
    fn schedules<'py>(
        &self,
        py: Python<'py>,
        name: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let client = &self.client;
        let found = request(py, client.schedules(name.as_deref()))?;
        schedules::schedule_infos(py, found)
    }

    /// Pauses, resumes or removes (`change`) schedule `name`; it as it is now (as it was, for a
    /// removal), as a dict.
    fn change_schedule<'py>(
        &self,
        py: Python<'py>,
        name: String,
        change: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let change = schedules::change(py, change)?;
        let client = &self.client;
        let info = request(py, client.schedule(&name, change))?;
        Ok(schedules::schedule_info(py, info)?.into_any())
    }

    /// The connected workers named `name` (or with that connection id) told to drain; as
    /// dicts. `UnknownWorker` when none has it.
    fn drain_worker<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyList>> {
        let client = &self.client;
        let workers = request(py, client.drain_worker(&name))?;
        worker_list(py, workers)
    }

    /// Purges these finished tasks: `(purged, [(id, state or None)])`.
    fn purge_ids(&self, py: Python<'_>, ids: Vec<u64>) -> PyResult<PurgedIds> {
        let selection = PurgeSelection::Ids(ids.into_iter().map(TaskId).collect());
        let client = &self.client;
        Ok(purged_tuple(request(py, client.purge(selection))?))
    }

    /// Purges the tasks that finished before `before_ms` (milliseconds since the epoch) in
    /// any of `states` (every finished state when empty).
    fn purge_before(
        &self,
        py: Python<'_>,
        before_ms: u64,
        states: Vec<String>,
    ) -> PyResult<PurgedIds> {
        let states = parse_states(py, &states)?;
        let selection = PurgeSelection::FinishedBefore {
            before: Timestamp(before_ms),
            states,
        };
        let client = &self.client;
        Ok(purged_tuple(request(py, client.purge(selection))?))
    }

    /// The event log after `since` (None: from the oldest kept; -1: only what comes next),
    /// only of `task` or `queue` when given; with `follow`, on a connection of its own. Starts
    /// at once in the background (`ready` waits for that).
    #[pyo3(signature = (since, follow, task=None, queue=None))]
    fn events(
        &self,
        since: Option<i64>,
        follow: bool,
        task: Option<u64>,
        queue: Option<String>,
    ) -> EventFeed {
        let from = match since {
            None => EventsFrom::Start,
            Some(seq) if seq < 0 => EventsFrom::Now,
            Some(seq) => EventsFrom::After(seq as u64),
        };
        let filter = EventFilter {
            task: task.map(TaskId),
            queue,
        };
        let addr = self.opts.address.clone();
        let start: Start<_> = if follow {
            let opts = self.stream_options("events");
            feed::spawn(addr, async move {
                let own = Client::connect(opts).await?;
                let mut stream = own.events(from, follow, filter);
                if from == EventsFrom::Now {
                    // So that `ready` returns only once the coordinator has subscribed: the
                    // events of what the caller does next all reach the stream.
                    stream.subscribed().await?;
                }
                Ok((stream, Some(own)))
            })
        } else {
            let client = self.client.clone();
            feed::spawn(addr, async move {
                Ok((client.events(from, follow, filter), None))
            })
        };
        EventFeed::new(Feed::new(start))
    }

    /// Task `id`'s output (so far, or with `follow` as it is written until it finishes, on a
    /// connection of its own). Starts at once in the background.
    fn logs(&self, id: u64, follow: bool) -> LogFeed {
        let task = TaskId(id);
        let addr = self.opts.address.clone();
        let start: Start<_> = if follow {
            let opts = self.stream_options("logs");
            feed::spawn(addr, async move {
                let own = Client::connect(opts).await?;
                let stream = own.logs(task, follow);
                Ok((stream, Some(own)))
            })
        } else {
            let client = self.client.clone();
            feed::spawn(addr, async move { Ok((client.logs(task, follow), None)) })
        };
        LogFeed::new(Feed::new(start))
    }

    /// Stops reconnecting and closes the connection; the dispatcher's next wait returns None.
    fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        let client = &self.client;
        py.detach(|| runtime().block_on(client.close()));
    }
}

impl Core {
    /// The options of a following stream's own connection: this core's, named after what it
    /// follows, reconnecting (an events stream goes on after its last event).
    fn stream_options(&self, what: &str) -> ConnectOptions {
        let mut opts = self.opts.clone();
        opts.name = format!("{} {what}", opts.name);
        opts
    }

    /// A play, pause or kill (`command`) of these tasks, with the GIL released while it runs.
    fn change(
        &self,
        py: Python<'_>,
        ids: Option<Vec<u64>>,
        command: fn(Selection) -> Command,
    ) -> PyResult<ChangedIds> {
        let client = &self.client;
        let sel = selection(ids);
        let changed = request(py, client.change(sel, command))?;
        Ok(changed_tuple(changed))
    }
}

/// A task spec, its function name checked by the one rule (`InvalidRequest` otherwise), so a
/// bad name fails its own submit instead of the whole add frame it would travel in. (The
/// options' queue and priority were checked when the options were made.)
fn spec(
    py: Python<'_>,
    function: String,
    args: String,
    kwargs: String,
    options: &Options,
) -> PyResult<TaskSpec> {
    check_function(&function).map_err(|m| error(py, "BadRequest", m))?;
    Ok(options.spec(function, args, kwargs))
}

/// One spec per (args, kwargs) pair, the function checked once.
fn specs(
    py: Python<'_>,
    function: String,
    args: Vec<String>,
    kwargs: Vec<String>,
    options: &Options,
) -> PyResult<Vec<TaskSpec>> {
    check_function(&function).map_err(|m| error(py, "BadRequest", m))?;
    Ok(args
        .into_iter()
        .zip(kwargs)
        .map(|(args, kwargs)| options.spec(function.clone(), args, kwargs))
        .collect())
}

/// State names as states; `InvalidRequest` naming the first that is none.
fn parse_states(py: Python<'_>, states: &[String]) -> PyResult<Vec<TaskState>> {
    states
        .iter()
        .map(|s| s.parse::<TaskState>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| error(py, "BadRequest", m))
}

/// Workers as a list of dicts.
fn worker_list<'py>(py: Python<'py>, workers: Vec<WorkerInfo>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for w in workers {
        list.append(worker_info(py, w)?)?;
    }
    Ok(list)
}

fn purged_tuple(purged: Purged) -> PurgedIds {
    (
        purged.purged,
        purged
            .unchanged
            .into_iter()
            .map(|(id, state)| (id.0, state.map(TaskState::as_str)))
            .collect(),
    )
}

fn selection(ids: Option<Vec<u64>>) -> Selection {
    match ids {
        Some(ids) => Selection::Ids(ids.into_iter().map(TaskId).collect()),
        None => Selection::All,
    }
}

fn changed_tuple(changed: Changed) -> ChangedIds {
    (
        changed.changed.into_iter().map(|id| id.0).collect(),
        changed
            .unchanged
            .into_iter()
            .map(|(id, state)| (id.0, state.as_str().to_string()))
            .collect(),
    )
}
