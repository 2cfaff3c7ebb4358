//! The session with the coordinator: connect, handshake, serve one connection, reconnect.
//!
//! Called once by `lib::run_until`; it talks to the coordinator through proto's `Connection` and
//! to the slots through `SlotsHandle`. A connection is three tasks: a reader that forwards
//! `ToWorker` messages, a writer that drains a bounded queue of `FromWorker` frames (several per
//! flush, a burst gathered first, see `gather`), and the session loop between them, which owns the `Outbox` and sends heartbeats from
//! a timer of its own, so that a task blocking for hours never delays one. A lost connection
//! kills the running attempts (the coordinator requeues them), keeps unacknowledged reports, and
//! reconnects with back-off for as long as it takes; only a refusal, or `stop` (see `stop.rs`),
//! ends the session. While draining it says `Draining` on every connection and ends once nothing
//! runs and every report is recorded.
//!
//! A `Run` may hold more attempts than free slots (prefetch): they wait in the pool's queue, and
//! `Started` names an attempt when a slot gets it (the pool's news, one frame per burst). A
//! `TakeBack` is answered with one `Returned` naming exactly the attempts that were still queued
//! and are now dropped here; heartbeats name queued attempts too.
//!
//! The functions the slots found to be coroutine functions are told to the coordinator once per
//! function per connection (`Coroutines`): as the pool learns them, and all of them again at the
//! start of every new connection, since a coordinator forgets a worker that reconnects.
//!
//! Operations: the coordinator's `Drain` goes to the [`Drainer`], exactly the first SIGTERM's
//! path (see `stop`); every second heartbeat carries a `Usage` (each slot's pid, RSS, CPU since
//! the last one, running tasks, and what `--max-memory` did; see `usage`), as does a turn in
//! which `--max-memory` replaced a slot or failed a task; live output from the
//! pool is gathered for up to `live_output::OUTPUT_LINGER` into `Output` frames, sent ahead of
//! the reports of the tasks that wrote it and never again after a reconnect. With `--tls` the
//! connection is proto's TLS one; a certificate the worker cannot trust ends the session in
//! proto's sentence, as a refusal does.

use crate::gather::Gathering;
use crate::live_output::OutputBatch;
use crate::outbox::{into_frames, Outbox};
use crate::slots::{AttemptId, News, SlotsHandle};
use crate::stop::{Drainer, Stop};
use crate::usage::CpuMeter;
use std::collections::HashSet;
use std::time::Duration;
use tatzelwurm_proto::backoff::{Backoff, Curve};
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role, Welcome, WorkerHello};
use tatzelwurm_proto::limits::{MAX_ATTEMPTS_PER_FRAME, MAX_IDS_PER_REQUEST};
use tatzelwurm_proto::tls::{ClientTls, ConnectError, TlsError};
use tatzelwurm_proto::worker::{FromWorker, ToWorker};
use tatzelwurm_proto::{Connection, FrameReader, FrameWriter};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout, MissedTickBehavior};
use tracing::{debug, info, warn};

/// Waits between attempts to reach the coordinator: 100 ms doubling to 5 s, ±25 % jitter, so
/// that workers cut off together do not all come back in the same millisecond.
const RECONNECT: Curve = Curve {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};
/// How long connecting and the handshake may take before the attempt counts as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames waiting for the writer; the session loop waits when the socket is this far behind.
const WRITER_QUEUE: usize = 256;
/// Messages from the reader waiting for the session loop.
const READER_QUEUE: usize = 256;
/// The shortest heartbeat period we honour, whatever the coordinator asks.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// How long a shutdown waits for queued frames to reach the socket.
const FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(1);
/// A `Usage` goes with every this many heartbeats (the first of a connection included).
const USAGE_EVERY: u32 = 2;

/// Why a session ended other than by a shutdown.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The coordinator refused this worker; retrying would not change its mind.
    #[error("the coordinator at {address} refused this worker: {reason}")]
    Refused {
        /// Where the coordinator is.
        address: String,
        /// The coordinator's sentence.
        reason: String,
    },
    /// The coordinator's certificate cannot be trusted, or it does not speak TLS (or TLS was
    /// asked of a plain one): proto's sentence, which says what to do.
    #[error("{0}")]
    Tls(String),
}

/// Why one attempt to connect failed.
enum Failure {
    Refused(String),
    Tls(String),
    Unreachable(String),
}

/// How one connection ended.
enum End {
    /// Told to stop at once.
    Shutdown,
    /// Draining, and nothing is left to finish or to deliver.
    Drained,
    /// The connection failed; why.
    Lost(String),
}

/// Everything the session loop works with, for as long as workwurm runs.
pub struct Session<'a> {
    /// The coordinator's address.
    pub address: &'a str,
    /// What this worker tells about itself in every handshake.
    pub hello: WorkerHello,
    /// The coordinator's token, shown in every handshake.
    pub token: Option<String>,
    /// TLS to connect with (`--tls`); `None`: plain TCP.
    pub tls: Option<ClientTls>,
    /// The slot pool.
    pub slots: &'a SlotsHandle,
    /// Attempts that reached a slot and reports of finished attempts, from the slot pool.
    pub reports: mpsc::UnboundedReceiver<News>,
    /// Every coroutine function the pool named so far, in the order learned, for each new
    /// connection.
    pub coroutines: Vec<String>,
    /// Starts a drain as the first SIGTERM does, for the coordinator's `Drain`.
    pub drainer: Drainer,
    /// The slots' CPU time at the last `Usage`, to tell their CPU use since.
    pub meter: CpuMeter,
    /// The attempts killed when the last connection was lost: live output of theirs still on
    /// its way from the pool is dropped, not sent on the next connection.
    pub abandoned: HashSet<AttemptId>,
}

impl Session<'_> {
    /// Serves the coordinator until `stop` says `Now`, or says `Draining` and everything this
    /// worker holds is finished and recorded (`Ok`), or until the coordinator refuses this
    /// worker (`Err`); every other failure is retried.
    pub async fn serve(mut self, mut stop: watch::Receiver<Stop>) -> Result<(), SessionError> {
        let mut outbox = Outbox::default();
        let mut backoff = Backoff::new(RECONNECT, 0.25);
        loop {
            let level = *stop.borrow_and_update();
            if level == Stop::Now {
                return Ok(());
            }
            if level == Stop::Draining && self.drained(&outbox).await {
                info!("drained: every task this worker held is finished and recorded");
                return Ok(());
            }
            let attempt = tokio::select! {
                // A new level (a drain, or stop now) is looked at at the loop's top.
                changed = stop.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return Ok(()),
                },
                attempt = handshake(
                    self.address,
                    self.tls.as_ref(),
                    &self.hello,
                    self.token.as_deref(),
                ) => attempt,
            };
            let reason = match attempt {
                Err(Failure::Refused(reason)) => {
                    return Err(SessionError::Refused {
                        address: self.address.to_string(),
                        reason,
                    })
                }
                Err(Failure::Tls(reason)) => return Err(SessionError::Tls(reason)),
                Err(Failure::Unreachable(reason)) => {
                    format!("cannot reach the coordinator at {}: {reason}", self.address)
                }
                Ok((connection, welcome)) => {
                    backoff.reset();
                    match welcome.worker_id {
                        Some(id) => info!(
                            "connected to the coordinator at {} as worker {id}",
                            self.address
                        ),
                        None => info!("connected to the coordinator at {}", self.address),
                    }
                    let end = self
                        .serve_connection(connection, &welcome, &mut outbox, &mut stop)
                        .await;
                    match end {
                        End::Shutdown => return Ok(()),
                        // The loop's top finds the worker drained, says so and ends.
                        End::Drained => continue,
                        End::Lost(reason) => {
                            self.abandoned = self.slots.running().await.into_iter().collect();
                            self.slots.abandon().await;
                            format!(
                                "lost the connection to the coordinator at {}: {reason}",
                                self.address
                            )
                        }
                    }
                }
            };
            let wait = backoff.next_delay();
            warn!("{reason}; trying again in {:.1} s", wait.as_secs_f64());
            tokio::select! {
                // Looked at at the loop's top, like the sleep's end.
                changed = stop.changed() => if changed.is_err() {
                    return Ok(());
                },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Whether a draining worker is done: no attempt running or queued in its slots, no report
    /// on its way from them, none waiting for the coordinator's `Recorded`.
    async fn drained(&mut self, outbox: &Outbox) -> bool {
        // The pool sends a report before it reads as idle, so once it does the report is queued.
        self.slots.running().await.is_empty() && self.reports.is_empty() && outbox.is_empty()
    }

    async fn serve_connection(
        &mut self,
        connection: Connection<ToWorker, FromWorker>,
        welcome: &Welcome,
        outbox: &mut Outbox,
        stop: &mut watch::Receiver<Stop>,
    ) -> End {
        let (reader, writer) = connection.split();
        let (to_writer, writer_inbox) = mpsc::channel(WRITER_QUEUE);
        let mut writer_task = tokio::spawn(write_frames(writer, writer_inbox));
        let (to_session, mut from_reader) = mpsc::channel(READER_QUEUE);
        let reader_task = tokio::spawn(read_messages(reader, to_session));
        let _stop_reader = AbortOnDrop(reader_task);

        if !outbox.is_empty() {
            debug!("sending {} unacknowledged reports again", outbox.len());
        }
        for names in self.coroutines.chunks(MAX_IDS_PER_REQUEST) {
            let _ = to_writer.send(FromWorker::Coroutines(names.to_vec())).await;
        }
        for frame in into_frames(outbox.unacknowledged()) {
            let _ = to_writer.send(FromWorker::Reports(frame)).await;
        }
        // A new connection starts as an ordinary worker: a drain must be said again.
        let mut told_draining = false;
        let period = Duration::from_millis(welcome.heartbeat_ms).max(MIN_HEARTBEAT);
        let mut heartbeat = tokio::time::interval(period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Heartbeats since the last `Usage`; the first heartbeat of a connection sends one.
        let mut beats = 0u32;
        // Live output of running tasks, gathered for one frame (never re-sent: the reports
        // carry the output that is kept).
        let mut output = OutputBatch::default();

        // A failed send to the writer means it stopped; its join handle then says why.
        let end = loop {
            // Levels only rise, so a drain once begun is seen here on every turn.
            if *stop.borrow() == Stop::Draining {
                if !told_draining {
                    told_draining = true;
                    let _ = to_writer.send(FromWorker::Draining).await;
                }
                if self.drained(outbox).await {
                    break End::Drained;
                }
            }
            tokio::select! {
                changed = stop.changed() => match changed.map(|()| *stop.borrow_and_update()) {
                    // A drain is taken up at the loop's top.
                    Ok(Stop::Running | Stop::Draining) => {}
                    Ok(Stop::Now) | Err(_) => break End::Shutdown,
                },
                message = from_reader.recv() => match message {
                    Some(Ok(message)) => self.on_message(message, outbox, &to_writer).await,
                    Some(Err(reason)) => break End::Lost(reason),
                    None => break End::Lost("the connection's reader stopped".into()),
                },
                Some(news) = self.reports.recv() => {
                    // Drain whatever else is ready so that news arriving together shares frames:
                    // one `Started` (sent first: a report implies it anyway) and the reports.
                    let mut started = Vec::new();
                    // At most one report per piece of news: reserved once, so that a burst of
                    // hundreds of reports is not copied again at each doubling (about 2 % of
                    // workwurm's CPU in W1 went to growing this vector).
                    let mut fresh = Vec::with_capacity(self.reports.len() + 1);
                    let mut coroutines = Vec::new();
                    let mut returned = Vec::new();
                    let mut memory_acted = false;
                    let mut next = Some(news);
                    let now = tokio::time::Instant::now();
                    while let Some(news) = next {
                        match news {
                            News::Started(attempts) => started.extend(attempts),
                            News::Report(report) => fresh.push(outbox.keep(report)),
                            News::Coroutines(names) => coroutines.extend(names),
                            News::Returned(attempts) => returned.extend(attempts),
                            News::Output(mut chunks) => {
                                let abandoned = &self.abandoned;
                                if !abandoned.is_empty() {
                                    chunks.retain(|c| !abandoned.contains(&(c.task, c.attempt)));
                                }
                                output.push(chunks, now);
                            }
                            News::MemoryActed => memory_acted = true,
                        }
                        next = self.reports.try_recv().ok();
                    }
                    if !fresh.is_empty() && output.due().is_some() {
                        // What the reported tasks wrote last goes ahead of their reports, so
                        // that the coordinator never sees a task's output after its end.
                        for frame in output.take() {
                            let _ = to_writer.send(FromWorker::Output(frame)).await;
                        }
                    }
                    // First: from now on the coordinator counts these functions' tasks, started
                    // ones included, as a share of a slot.
                    for names in coroutines.chunks(MAX_IDS_PER_REQUEST) {
                        let _ = to_writer.send(FromWorker::Coroutines(names.to_vec())).await;
                    }
                    self.coroutines.extend(coroutines);
                    for frame in started.chunks(MAX_ATTEMPTS_PER_FRAME) {
                        let _ = to_writer.send(FromWorker::Started(frame.to_vec())).await;
                    }
                    for frame in into_frames(fresh) {
                        let _ = to_writer.send(FromWorker::Reports(frame)).await;
                    }
                    // Last: held tasks given back unasked, after the reports that doomed them.
                    for frame in returned.chunks(MAX_ATTEMPTS_PER_FRAME) {
                        let _ = to_writer.send(FromWorker::Returned(frame.to_vec())).await;
                    }
                    if memory_acted {
                        let usage = self.meter.measure(self.slots.usage().await);
                        let _ = to_writer.send(FromWorker::Usage(usage)).await;
                    }
                }
                () = sleep_until(output.due()) => {
                    for frame in output.take() {
                        let _ = to_writer.send(FromWorker::Output(frame)).await;
                    }
                }
                _ = heartbeat.tick() => {
                    let mut running = self.slots.running().await;
                    if running.len() > MAX_ATTEMPTS_PER_FRAME {
                        // A frame the coordinator would refuse; it never prefetches this deep.
                        warn!("{} attempts held; the heartbeat names the first {MAX_ATTEMPTS_PER_FRAME}", running.len());
                        running.truncate(MAX_ATTEMPTS_PER_FRAME);
                    }
                    let _ = to_writer.send(FromWorker::Heartbeat { running }).await;
                    if beats % USAGE_EVERY == 0 {
                        let usage = self.meter.measure(self.slots.usage().await);
                        let _ = to_writer.send(FromWorker::Usage(usage)).await;
                    }
                    beats = beats.wrapping_add(1);
                }
                stopped = &mut writer_task => {
                    break End::Lost(match stopped {
                        Ok(reason) => reason,
                        Err(err) => format!("the connection's writer failed ({err})"),
                    });
                }
            }
        };
        if matches!(end, End::Shutdown | End::Drained) {
            // Let frames already queued reach the socket; the coordinator may still record them.
            drop(to_writer);
            let _ = timeout(FLUSH_ON_SHUTDOWN, &mut writer_task).await;
        }
        writer_task.abort();
        end
    }

    async fn on_message(
        &mut self,
        message: ToWorker,
        outbox: &mut Outbox,
        to_writer: &mpsc::Sender<FromWorker>,
    ) {
        match message {
            ToWorker::Run(assignments) => {
                debug!("run {} tasks", assignments.len());
                self.slots.run(assignments).await;
            }
            ToWorker::Kill(attempts) => {
                debug!("kill {attempts:?}");
                self.slots.kill(attempts).await;
            }
            ToWorker::Recorded(recorded) => outbox.acknowledge(&recorded),
            ToWorker::TakeBack(attempts) => {
                let asked = attempts.len();
                let returned = self.slots.take_back(attempts).await;
                debug!(
                    "take back: {} of {asked} asked were still queued",
                    returned.len()
                );
                // Answered even when empty: the coordinator waits for it to ask again.
                let _ = to_writer.send(FromWorker::Returned(returned)).await;
            }
            ToWorker::Drain => {
                // Exactly the first SIGTERM's path: the level rises to `Draining` (with
                // --drain-timeout), which the loop takes up at its top.
                // `stop` logs it, with the drain timeout.
                self.drainer.drain();
            }
        }
    }
}

/// Waits until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Aborts a task when dropped, so that a connection's reader never outlives the connection.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects and says hello; a welcomed connection comes back re-typed for a worker.
async fn handshake(
    address: &str,
    tls: Option<&ClientTls>,
    hello: &WorkerHello,
    token: Option<&str>,
) -> Result<(Connection<ToWorker, FromWorker>, Welcome), Failure> {
    let exchange = async {
        let mut connection = Connection::<HelloReply, Hello>::connect_with(address, tls)
            .await
            .map_err(|e| match e {
                // A certificate the worker does not trust (or a coordinator that does not speak
                // TLS) stays so however often it tries: one sentence, and the worker ends.
                ConnectError::Tls(e @ TlsError::Handshake { .. }) => {
                    Failure::Unreachable(e.to_string())
                }
                ConnectError::Tls(e) => Failure::Tls(e.to_string()),
                ConnectError::Io(e) => Failure::Unreachable(e.to_string()),
            })?;
        connection
            .send(&Hello::new(Role::Worker(hello.clone())).with_token(token))
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        match connection.recv().await {
            Ok(Some(HelloReply::Welcome(welcome))) => Ok((connection.retype(), welcome)),
            Ok(Some(HelloReply::Refused { reason })) => Err(Failure::Refused(reason)),
            Ok(None) => Err(Failure::Unreachable(
                "it closed the connection during the handshake".into(),
            )),
            Err(err) => Err(Failure::Unreachable(err.to_string())),
        }
    };
    timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Unreachable(format!(
                "no answer to the handshake within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            )))
        })
}

/// Forwards the coordinator's messages; the last item is why the connection ended.
async fn read_messages(
    mut reader: FrameReader<ToWorker>,
    to_session: mpsc::Sender<Result<ToWorker, String>>,
) {
    let end = loop {
        match reader.recv().await {
            Ok(Some(message)) => {
                if to_session.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            Ok(None) => break "the coordinator closed the connection".to_string(),
            Err(err) => break err.to_string(),
        }
    };
    let _ = to_session.send(Err(end)).await;
}

/// Writes queued frames, as many per flush as are ready; returns why it stopped.
async fn write_frames(
    mut writer: FrameWriter<FromWorker>,
    inbox: mpsc::Receiver<FromWorker>,
) -> String {
    match writer.drain(&mut Gathering(inbox)).await {
        Ok(()) => "the session stopped".into(),
        Err(err) => err.to_string(),
    }
}

#[cfg(test)]
mod tests;
