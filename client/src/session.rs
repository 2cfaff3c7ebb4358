//! The session: the one task that owns a client's connection. `Client` and `Pipeline` handles
//! send it requests; it numbers them (`Routes`), hands them to the connection's writer task,
//! and routes what the reader task reads back to whoever waits: a caller's oneshot, the
//! pipeline's events, or nobody (its own re-watches).
//!
//! When the connection drops and `reconnect` is set, it connects again with backoff (capped
//! by `Tuning::max_backoff`), re-sends every request still wanted (an add with its same key,
//! so the coordinator answers with the ids it already created), and watches the watched tasks
//! again. A request that waited `Tuning::reconnect_limit` for a connection fails `Lost`.
//! Without `reconnect`, a drop fails every request under way and every later one.
//!
//! It stops when every handle is gone; `Client::close` ends the connection before that.

use crate::batcher::{Batcher, Ticket};
use crate::connect::{connect_once, ActionerConnection};
use crate::error::ClientError;
use crate::key::random_key;
use crate::options::{ConnectOptions, Tuning};
use crate::pipeline::Event;
use crate::size::check_size;
use crate::stream::StreamSink;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tatzelwurm_proto::actioner::{AddKey, Command, FromActioner, Reply, ToActioner};
use tatzelwurm_proto::backoff::{Curve, Jitter};
use tatzelwurm_proto::{FrameReader, FrameWriter};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

use crate::routes::{Routed, Routes};

/// Most ids in one re-watch request.
const WATCH_CHUNK: usize = tatzelwurm_proto::limits::MAX_IDS_PER_REQUEST;

/// What a handle asks of the session.
pub(crate) enum ToSession {
    /// Send this command; tell `to` the answer. Boxed: a command (an added schedule with its
    /// task, say) is many times the size of the other messages.
    Request {
        command: Box<Command>,
        to: Responder,
    },
    /// The pipeline queued tasks: send what may be sent.
    Kick,
    /// End the connection and fail everything under way; answered when done.
    Close(oneshot::Sender<()>),
}

/// Who is told a request's answer.
pub(crate) enum Responder {
    /// A caller awaiting it.
    Caller(oneshot::Sender<Result<Reply, ClientError>>),
    /// The pipeline: tickets `first..first + count`, answered as events.
    Batch { first: Ticket, count: usize },
    /// The session itself (a re-watch); only failures are logged.
    Internal,
    /// A streamed answer's reader (events, output): each frame as it comes, then the last.
    Stream(StreamSink),
}

impl Responder {
    /// A caller that stopped waiting (its future was dropped): not worth re-sending.
    fn abandoned(&self) -> bool {
        match self {
            Responder::Caller(tx) => tx.is_closed(),
            Responder::Stream(sink) => sink.is_closed(),
            _ => false,
        }
    }
}

/// State shared by the handles and the session: the pipeline's batcher and its wake-ups.
pub(crate) struct Shared {
    /// The pipeline's queue and window.
    pub batcher: Mutex<Batcher>,
    /// Wakes threads blocked in `submit_blocking` when room is made.
    pub room: Condvar,
    /// Wakes async submitters and flushers when room is made or tickets settle.
    pub progress: Notify,
    /// Whether the pipeline was handed out (else no event is sent).
    pub events_on: AtomicBool,
}

impl Shared {
    pub fn new(adds_in_flight: usize) -> Shared {
        Shared {
            batcher: Mutex::new(Batcher::new(1, adds_in_flight)),
            room: Condvar::new(),
            progress: Notify::new(),
            events_on: AtomicBool::new(false),
        }
    }

    /// The batcher, also after a panic elsewhere (its state stays consistent per call).
    pub fn batcher(&self) -> MutexGuard<'_, Batcher> {
        self.batcher.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes everyone who waits for room or for tickets to settle.
    pub fn wake(&self) {
        self.room.notify_all();
        self.progress.notify_waiters();
    }
}

/// What the connection's tasks and the connect attempts tell the session.
enum Internal {
    /// A frame read on connection number `.0`.
    Frame(u64, ToActioner),
    /// Connection number `.0` ended.
    Lost(u64, ClientError),
    /// A reconnect attempt succeeded.
    Connected(ActionerConnection),
    /// A reconnect attempt failed.
    ConnectFailed(ClientError),
}

/// The state of the connection.
enum Link {
    /// Connected: requests go to the writer task.
    Up {
        writer: UnboundedSender<Arc<FromActioner>>,
        reader: JoinHandle<()>,
    },
    /// Lost, reconnecting: `retry_at` is when the next attempt starts (`None` while one runs).
    Down {
        reason: String,
        attempts: u32,
        retry_at: Option<Instant>,
    },
    /// Closed for good, or lost without `reconnect`: every request fails with this.
    Dead(ClientError),
}

/// The session's state; see the module comment.
pub(crate) struct Session {
    /// How to connect again.
    opts: ConnectOptions,
    /// Limits.
    tuning: Tuning,
    /// Requests under way and watched tasks.
    routes: Routes<Responder>,
    /// The connection.
    link: Link,
    /// Number of the present connection; frames of older ones are ignored.
    generation: u64,
    /// Given to the connection's tasks and connect attempts.
    internal_tx: UnboundedSender<Internal>,
    internal_rx: UnboundedReceiver<Internal>,
    /// Requests of the handles; closed when every handle is gone.
    handles: UnboundedReceiver<ToSession>,
    /// Shared with the handles.
    shared: Arc<Shared>,
    /// The pipeline's events.
    events: UnboundedSender<Event>,
    /// Jitter of the reconnect pauses, so that many clients of a restarted coordinator do not
    /// knock all at once.
    jitter: Jitter,
}

impl Session {
    /// Starts the session on an established connection.
    pub fn spawn(
        opts: ConnectOptions,
        tuning: Tuning,
        conn: ActionerConnection,
        handles: UnboundedReceiver<ToSession>,
        shared: Arc<Shared>,
        events: UnboundedSender<Event>,
    ) {
        let (internal_tx, internal_rx) = unbounded_channel();
        let mut session = Session {
            opts,
            tuning,
            routes: Routes::new(),
            link: Link::Down {
                reason: String::new(),
                attempts: 0,
                retry_at: None,
            },
            generation: 0,
            internal_tx,
            internal_rx,
            handles,
            shared,
            events,
            jitter: Jitter::new(0.25),
        };
        session.up(conn);
        tokio::spawn(session.run());
    }

    async fn run(mut self) {
        loop {
            let deadline = self.deadline();
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                message = self.handles.recv() => match message {
                    Some(message) => self.on_handle(message),
                    None => break,
                },
                Some(internal) = self.internal_rx.recv() => self.on_internal(internal),
                _ = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => self.on_timer(),
            }
        }
        if let Link::Up { reader, .. } = &self.link {
            reader.abort();
        }
    }

    fn addr(&self) -> String {
        self.opts.address.clone()
    }

    fn on_handle(&mut self, message: ToSession) {
        match message {
            ToSession::Request { command, to } => self.request(*command, to),
            ToSession::Kick => self.pump(),
            ToSession::Close(done) => {
                self.close();
                let _ = done.send(());
            }
        }
    }

    /// Registers a request and sends it if there is a connection.
    fn request(&mut self, command: Command, to: Responder) {
        match &self.link {
            Link::Dead(err) => {
                let err = err.clone();
                self.answer(to, Err(err));
            }
            Link::Up { writer, .. } => {
                let message = self.routes.add(command, to, None);
                let _ = writer.send(message);
            }
            Link::Down { .. } => {
                self.routes.add(command, to, Some(Instant::now()));
            }
        }
    }

    /// Sends what the pipeline may send now, one `Add { watch: true }` per batch.
    fn pump(&mut self) {
        loop {
            let batch = {
                let mut batcher = self.shared.batcher();
                let batch = batcher.take_batch();
                if batch.is_none() && batcher.queued() == 0 {
                    // Nothing queued: the next submit must kick again. (While batches block the
                    // queue, their answers pump, so submits need not kick.)
                    batcher.kicked = false;
                }
                batch
            };
            let Some(batch) = batch else { break };
            let to = Responder::Batch {
                first: batch.first,
                count: batch.specs.len(),
            };
            let command = Command::Add {
                tasks: batch.specs,
                play: batch.play,
                key: Some(AddKey(random_key())),
                watch: true,
            };
            match check_size(&command) {
                Ok(()) => self.request(command, to),
                Err(err) => self.answer(to, Err(err)),
            }
        }
    }

    /// Tells `to` its answer.
    fn answer(&mut self, to: Responder, result: Result<Reply, ClientError>) {
        match to {
            Responder::Caller(tx) => {
                let _ = tx.send(result);
            }
            Responder::Batch { first, count } => {
                let event = match result {
                    Ok(Reply::Added(ids)) => Event::Added { first, ids },
                    Ok(other) => Event::AddFailed {
                        first,
                        count,
                        error: crate::client::unexpected(&self.opts.address, &other, "Added"),
                    },
                    Err(error) => Event::AddFailed {
                        first,
                        count,
                        error,
                    },
                };
                self.emit(event);
                self.shared.batcher().acknowledged(first);
                self.shared.wake();
            }
            Responder::Stream(sink) => sink.finish(result),
            Responder::Internal => {
                if let Err(err) = result {
                    warn!(
                        "watching tasks again at {} failed: {err}",
                        self.opts.address
                    );
                }
            }
        }
    }

    fn emit(&self, event: Event) {
        if self.shared.events_on.load(Ordering::Acquire) {
            let _ = self.events.send(event);
        }
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Frame(generation, frame) if generation == self.generation => {
                self.on_frame(frame)
            }
            // The reader and the writer may both report the end of one connection.
            Internal::Lost(generation, err)
                if generation == self.generation && matches!(self.link, Link::Up { .. }) =>
            {
                self.on_lost(err)
            }
            Internal::Connected(conn) => self.on_connected(conn),
            Internal::ConnectFailed(err) => self.on_connect_failed(err),
            _ => {}
        }
    }

    fn on_frame(&mut self, frame: ToActioner) {
        match self.routes.on_reply(frame) {
            Routed::Answer {
                to,
                answer,
                finished,
                watch_again,
            } => {
                self.answer(to, answer.map_err(ClientError::Rejected));
                if !finished.is_empty() {
                    self.emit(Event::Finished(finished));
                }
                if !watch_again.is_empty() {
                    self.request(Command::Watch(watch_again), Responder::Internal);
                }
                self.pump();
            }
            Routed::Piece { request, reply } => {
                let pushed = match self.routes.receiver(request) {
                    Some(Responder::Stream(sink)) => Ok(sink.push(reply)),
                    Some(_) => Err(reply),
                    None => Ok(true),
                };
                match pushed {
                    Ok(true) => {}
                    // Its reader went away or fell behind: drop what else comes for it.
                    Ok(false) => drop(self.routes.forget(request)),
                    // A streamed frame for a request that asked for one answer: another build.
                    Err(reply) => {
                        let addr = self.addr();
                        let err = crate::client::unexpected(&addr, &reply, "one answer");
                        if let Some(to) = self.routes.forget(request) {
                            self.answer(to, Err(err));
                        }
                    }
                }
            }
            Routed::Finished(infos) => self.emit(Event::Finished(infos)),
            Routed::Nothing => {}
            Routed::Stray(request) => debug!(
                "the coordinator at {} answered request {}, which no one waits for",
                self.opts.address, request.0
            ),
        }
    }

    fn on_lost(&mut self, err: ClientError) {
        if let Link::Up { reader, .. } = &self.link {
            reader.abort();
        }
        if !self.opts.reconnect {
            debug!("{err}");
            self.die(err);
            return;
        }
        warn!(
            "lost the connection to the coordinator at {} ({}); reconnecting",
            self.opts.address,
            err.reason()
        );
        let now = Instant::now();
        for to in self.routes.lost(now) {
            // A logs stream that had begun would repeat its output if asked again.
            self.answer(to, Err(ClientError::Closed { addr: self.addr() }));
        }
        self.link = Link::Down {
            reason: err.reason(),
            attempts: 0,
            retry_at: Some(now + self.pause(0)),
        };
        self.emit(Event::Disconnected(format!(
            "lost the connection to the coordinator at {} ({}); reconnecting",
            self.opts.address,
            err.reason()
        )));
    }

    fn on_connected(&mut self, conn: ActionerConnection) {
        if !matches!(self.link, Link::Down { .. }) {
            return;
        }
        self.up(conn);
        info!("reconnected to the coordinator at {}", self.opts.address);
        if let Link::Up { writer, .. } = &self.link {
            for message in self.routes.resend(Responder::abandoned) {
                let _ = writer.send(message);
            }
        }
        let watched = self.routes.watched();
        for chunk in watched.chunks(WATCH_CHUNK) {
            self.request(Command::Watch(chunk.to_vec()), Responder::Internal);
        }
        self.emit(Event::Reconnected);
        self.pump();
    }

    /// The pause before reconnect attempt `attempts` (0 for the first after a drop): the
    /// tuning's backoff curve, jittered.
    fn pause(&mut self, attempts: u32) -> Duration {
        let curve = Curve {
            first: self.tuning.min_backoff,
            max: self.tuning.max_backoff,
        };
        curve.jittered(attempts.saturating_add(1), self.jitter.factor())
    }

    fn on_connect_failed(&mut self, err: ClientError) {
        let attempts_so_far = match &self.link {
            Link::Down { attempts, .. } => *attempts + 1,
            _ => 1,
        };
        let pause = self.pause(attempts_so_far);
        if let Link::Down {
            reason,
            attempts,
            retry_at,
        } = &mut self.link
        {
            debug!("reconnecting failed: {err}");
            *attempts += 1;
            *reason = err.reason();
            *retry_at = Some(Instant::now() + pause);
        }
    }

    /// The next moment something is due: a reconnect attempt, or a request's wait running out.
    fn deadline(&self) -> Option<Instant> {
        match &self.link {
            Link::Down { retry_at, .. } => {
                let expiry = self.routes.next_expiry(self.tuning.reconnect_limit);
                match (retry_at, expiry) {
                    (Some(a), Some(b)) => Some((*a).min(b)),
                    (a, b) => a.or(b),
                }
            }
            _ => None,
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        let Link::Down {
            reason, retry_at, ..
        } = &mut self.link
        else {
            return;
        };
        let reason = reason.clone();
        if retry_at.is_some_and(|at| now >= at) {
            *retry_at = None;
            let opts = self.opts.clone();
            let tx = self.internal_tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(match connect_once(&opts).await {
                    Ok(conn) => Internal::Connected(conn),
                    Err(err) => Internal::ConnectFailed(err),
                });
            });
        }
        let limit = self.tuning.reconnect_limit;
        let expired = self.routes.expired(now, limit);
        if expired.is_empty() {
            return;
        }
        for to in expired {
            let err = ClientError::Lost {
                addr: self.addr(),
                waited: limit,
                reason: reason.clone(),
            };
            self.answer(to, Err(err));
        }
        // Failed batches made room in the pipeline: queue what waited behind them.
        self.pump();
    }

    /// Starts the reader and writer tasks of a new connection.
    fn up(&mut self, conn: ActionerConnection) {
        self.generation += 1;
        let (reader, writer) = conn.split();
        let (tx, rx) = unbounded_channel();
        let addr = self.addr();
        tokio::spawn(write(
            writer,
            rx,
            self.generation,
            self.internal_tx.clone(),
            addr.clone(),
        ));
        let reader = tokio::spawn(read(
            reader,
            self.generation,
            self.internal_tx.clone(),
            addr,
        ));
        self.link = Link::Up { writer: tx, reader };
    }

    /// `close`: no more connections; everything under way and queued fails.
    fn close(&mut self) {
        if let Link::Up { reader, .. } = &self.link {
            reader.abort();
        }
        self.die(ClientError::ClientClosed { addr: self.addr() });
    }

    /// Ends the session's use of the network: every request under way, queued in the
    /// pipeline or made later fails with `err`.
    fn die(&mut self, err: ClientError) {
        self.link = Link::Dead(err.clone());
        for to in self.routes.drain() {
            self.answer(to, Err(err.clone()));
        }
        let batches = {
            let mut batcher = self.shared.batcher();
            batcher.kicked = false;
            batcher.take_all()
        };
        for batch in batches {
            let to = Responder::Batch {
                first: batch.first,
                count: batch.specs.len(),
            };
            self.answer(to, Err(err.clone()));
        }
    }
}

/// The reader task: every frame to the session, then how the connection ended.
async fn read(
    mut reader: FrameReader<ToActioner>,
    generation: u64,
    to: UnboundedSender<Internal>,
    addr: String,
) {
    loop {
        let end = match reader.recv().await {
            Ok(Some(frame)) => {
                if to.send(Internal::Frame(generation, frame)).is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => ClientError::Closed { addr },
            Err(err) => ClientError::from_proto(&addr, err),
        };
        let _ = to.send(Internal::Lost(generation, end));
        return;
    }
}

/// The writer task: sends what the session queues, a burst per socket write, until the
/// session drops the queue or the socket fails.
async fn write(
    mut writer: FrameWriter<FromActioner>,
    mut queue: UnboundedReceiver<Arc<FromActioner>>,
    generation: u64,
    to: UnboundedSender<Internal>,
    addr: String,
) {
    while let Some(first) = queue.recv().await {
        let mut result = writer.feed(&first).await;
        while result.is_ok() {
            match queue.try_recv() {
                Ok(more) => result = writer.feed(&more).await,
                Err(_) => break,
            }
        }
        if result.is_ok() {
            result = writer.flush().await;
        }
        if let Err(err) = result {
            let _ = to.send(Internal::Lost(
                generation,
                ClientError::from_proto(&addr, err),
            ));
            return;
        }
    }
}
