//! `Feed`: a streamed answer (the events of `Client.events`, the output of
//! `TaskHandle.logs(follow=True)`) that a Python thread reads one batch at a time, and that any
//! thread may close at any moment.
//!
//! A feed starts at once, on the extension's runtime: a following stream first connects a
//! connection of its own (so that closing the stream ends it on the coordinator too: the
//! protocol has no cancel), then sends its request. The call that made the feed does not wait
//! for that; `ready` does (the sync client waits there; an asyncio caller waits in
//! `async with`), and so does the first read. An `events(since="now")` start ends only once the
//! coordinator has subscribed the stream (its first, empty frame), so every event of what the
//! caller does after `ready` reaches it.
//!
//! A read waits with the GIL released, in slices of `SLICE`, and lets Python run its signal
//! handlers between slices: a ctrl-c while the main thread follows events raises
//! `KeyboardInterrupt` within a slice instead of after the next event. `close` wakes a waiting
//! reader at once, drops the stream, and closes the feed's own connection.

use crate::convert::client_error;
use crate::runtime::runtime;
use pyo3::prelude::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tatzelwurm_client::{Client, ClientError, EventStream, LogPage, LogStream};
use tatzelwurm_proto::event::Event;
use tokio::sync::Notify;

/// How long one wait lasts before Python's signal handlers get a turn.
const SLICE: Duration = Duration::from_millis(100);

/// A streamed answer of the client: batches until it ends.
pub trait Source: Send + 'static {
    /// One batch.
    type Item: Send;
    /// The next batch or the error that ends the stream; `None` once it is over.
    fn recv(&mut self) -> impl Future<Output = Option<Result<Self::Item, ClientError>>> + Send;
}

impl Source for EventStream {
    type Item = Vec<Event>;
    fn recv(&mut self) -> impl Future<Output = Option<Result<Vec<Event>, ClientError>>> + Send {
        self.next()
    }
}

impl Source for LogStream {
    type Item = LogPage;
    fn recv(&mut self) -> impl Future<Output = Option<Result<LogPage, ClientError>>> + Send {
        self.next()
    }
}

/// How a feed gets its stream (and the connection of its own it came on, if any).
pub type Start<S> = Pin<Box<dyn Future<Output = Result<(S, Option<Client>), ClientError>> + Send>>;

/// `start` running on the extension's runtime from now on, as a `Start` that awaits it;
/// `addr` names the coordinator in the error of a start that could not finish.
pub fn spawn<S: Source>(
    addr: String,
    start: impl Future<Output = Result<(S, Option<Client>), ClientError>> + Send + 'static,
) -> Start<S> {
    let running = runtime().spawn(start);
    Box::pin(async move {
        running.await.unwrap_or_else(|err| {
            Err(ClientError::Broken {
                addr,
                detail: format!("the stream's start ended early ({err})"),
            })
        })
    })
}

/// What one read found.
pub enum Next<T> {
    /// A batch, or the error that ended the stream.
    Item(Result<T, ClientError>),
    /// Nothing within the time given; the stream goes on.
    Timeout,
    /// The stream is over (its last batch was read, or it was closed).
    End,
}

/// Where a feed is in its life.
enum State<S> {
    /// Not read yet: how to get the stream.
    Starting(Start<S>),
    /// Being read.
    Open(S),
    /// Over.
    Done,
}

/// One stream being read, and the connection that carries it when it has one of its own.
pub struct Feed<S: Source> {
    /// The stream; the lock is held by the one reader while it waits.
    state: Mutex<State<S>>,
    /// Set by `close` and at the end: every later read is `End`.
    closed: AtomicBool,
    /// Wakes a reader waiting in `next` when `close` is called.
    wake: Notify,
    /// The stream's own connection (a following stream's), closed with the stream.
    own: Mutex<Option<Client>>,
    /// The process that made it: a forked child must not wait for the parent's runtime.
    pid: u32,
}

impl<S: Source> Feed<S> {
    /// A feed over the stream `start` makes (already running: see `spawn`).
    pub fn new(start: Start<S>) -> Feed<S> {
        Feed {
            state: Mutex::new(State::Starting(start)),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
            own: Mutex::new(None),
            pid: std::process::id(),
        }
    }

    /// The next batch, waiting up to `timeout` seconds (forever when `None`) with the GIL
    /// released. A signal handler's exception (`KeyboardInterrupt`) is raised here with the
    /// stream left as it was: the caller decides whether to close it.
    pub fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Next<S::Item>> {
        let deadline = timeout.map(|secs| Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Ok(Next::End);
            }
            let slice = match deadline {
                Some(deadline) => deadline
                    .saturating_duration_since(Instant::now())
                    .min(SLICE),
                None => SLICE,
            };
            match py.detach(|| self.wait(slice)) {
                Waited::Item(Ok(item)) => return Ok(Next::Item(Ok(item))),
                // A stream closed while this read waited ends quietly: the error is only its
                // connection going away with it (`close` closes the stream's own client).
                Waited::Item(Err(_)) if self.closed.load(Ordering::Acquire) => {
                    return Ok(Next::End);
                }
                Waited::Item(Err(err)) => {
                    self.finish();
                    return Ok(Next::Item(Err(err)));
                }
                Waited::Ended => {
                    self.finish();
                    return Ok(Next::End);
                }
                Waited::Slice => {
                    py.check_signals()?;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(Next::Timeout);
                    }
                }
            }
        }
    }

    /// Waits (with the GIL released, ctrl-c raising) until the stream has started: its own
    /// connection made and its request sent. The error of a start that failed is raised here
    /// and ends the stream.
    pub fn ready(&self, py: Python<'_>) -> PyResult<()> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Ok(());
            }
            match py.detach(|| self.wait_start(SLICE)) {
                Started::Yes => return Ok(()),
                Started::Failed(err) => {
                    self.finish();
                    return Err(client_error(py, &err));
                }
                Started::NotYet => py.check_signals()?,
            }
        }
    }

    /// One slice of waiting for the start.
    fn wait_start(&self, slice: Duration) -> Started {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let woken = self.wake.notified();
        if self.closed.load(Ordering::Acquire) {
            return Started::Yes;
        }
        let State::Starting(start) = &mut *state else {
            return Started::Yes;
        };
        let outcome = runtime().block_on(async {
            tokio::select! {
                started = start => Some(started),
                _ = woken => None,
                _ = tokio::time::sleep(slice) => None,
            }
        });
        match outcome {
            None => Started::NotYet,
            Some(Ok((source, own))) => {
                *self.own.lock().unwrap_or_else(|p| p.into_inner()) = own;
                *state = State::Open(source);
                Started::Yes
            }
            Some(Err(err)) => {
                *state = State::Done;
                Started::Failed(err)
            }
        }
    }

    /// One slice of waiting, on the extension's runtime (the caller released the GIL).
    fn wait(&self, slice: Duration) -> Waited<S::Item> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Made before the flag is read, so a `close` in between still wakes this wait.
        let woken = self.wake.notified();
        if self.closed.load(Ordering::Acquire) {
            return Waited::Ended;
        }
        runtime().block_on(async {
            tokio::pin!(woken);
            let sleep = tokio::time::sleep(slice);
            tokio::pin!(sleep);
            loop {
                let step = match &mut *state {
                    State::Done => return Waited::Ended,
                    State::Starting(start) => tokio::select! {
                        started = start => Step::Started(started),
                        _ = &mut woken => return Waited::Ended,
                        _ = &mut sleep => return Waited::Slice,
                    },
                    State::Open(source) => tokio::select! {
                        // A close wins over what the closing itself makes arrive.
                        biased;
                        _ = &mut woken => return Waited::Ended,
                        item = source.recv() => match item {
                            Some(item) => return Waited::Item(item),
                            None => Step::Over,
                        },
                        _ = &mut sleep => return Waited::Slice,
                    },
                };
                match step {
                    Step::Started(Ok((source, own))) => {
                        *self.own.lock().unwrap_or_else(|p| p.into_inner()) = own;
                        *state = State::Open(source);
                    }
                    Step::Started(Err(err)) => {
                        *state = State::Done;
                        return Waited::Item(Err(err));
                    }
                    Step::Over => {
                        *state = State::Done;
                        return Waited::Ended;
                    }
                }
            }
        })
    }

    /// Ends the stream: a reader waiting now returns `End`, and so does every later read; the
    /// stream's own connection is closed (with the GIL released while it closes).
    pub fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_waiters();
        if let Ok(mut state) = self.state.try_lock() {
            *state = State::Done; // a waiting reader drops it itself when it wakes
        }
        if let Some(client) = self.take_own() {
            py.detach(|| runtime().block_on(client.close()));
        }
    }

    /// The stream ended by itself: let its connection go without waiting for the close.
    fn finish(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut state) = self.state.try_lock() {
            *state = State::Done;
        }
        if let Some(client) = self.take_own() {
            runtime().spawn(async move { client.close().await });
        }
    }

    /// The own connection, to close; none in a forked child, where the session that would
    /// answer the close stayed in the parent (dropping the handle is all that is safe there).
    fn take_own(&self) -> Option<Client> {
        let own = self.own.lock().unwrap_or_else(|p| p.into_inner()).take();
        own.filter(|_| std::process::id() == self.pid)
    }

    /// Whether the stream is over: read to its end, failed, or closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// What one slice of waiting found.
enum Waited<T> {
    Item(Result<T, ClientError>),
    Ended,
    Slice,
}

/// What one slice of waiting for the start found.
enum Started {
    Yes,
    Failed(ClientError),
    NotYet,
}

/// What a select inside `wait` led to, acted on once the state's borrow is over.
enum Step<S> {
    Started(Result<(S, Option<Client>), ClientError>),
    Over,
}
