//! One worker's connection, after its hello: registers it with the task actor's scheduler,
//! welcomes it, and then runs a reader (reports, heartbeats, starts, returns, coroutine
//! functions → the task actor)
//! and a writer (runs, kills, take-backs and acknowledgements from the task actor → the
//! socket). The worker's lease is this connection: every frame renews it, and a worker silent
//! for longer than `lease` (hung, or stopped with SIGSTOP) is dropped as if its connection had
//! ended. When either side ends, the worker is reported lost: the task actor forgets it and
//! requeues what it held in one step, so nothing new is handed to it afterwards. A worker that
//! says `Draining` gets no new tasks from then on; it leaves once what it holds is reported and
//! recorded.
//!
//! What running tasks write (`FromWorker::Output`) goes to the live output hub (`logs`), never
//! through the task actor; so do, after the task actor has them, the reports of attempts that
//! sent output (the hub forgets those attempts), and the connection's end. What the worker's
//! slots use (`FromWorker::Usage`) goes to the task actor's scheduler, for `worker list`. A
//! worker that prints nothing costs none of this: its reports are checked against an empty set.
//!
//! A frame naming more reports or attempts than `proto::limits` allows ends the connection
//! with a warning (an honest worker cuts its frames at those caps). A worker whose name keeps
//! dropping its connections is welcomed but held off (`flaps`): it gets tasks only once its
//! hold-off ends, when this connection wakes the task actor.

use crate::handshake::Greeting;
use crate::Context;
use rustc_hash::FxHashSet;
use std::sync::Arc;
use tatzelwurm_proto::handshake::{HelloReply, Welcome, WorkerHello};
use tatzelwurm_proto::limits::{
    MAX_ATTEMPTS_PER_FRAME, MAX_IDS_PER_REQUEST, MAX_REPORTS_PER_FRAME,
};
use tatzelwurm_proto::task::{TaskOutput, Timestamp};
use tatzelwurm_proto::worker::{FromWorker, Report, ToWorker};
use tatzelwurm_proto::FrameWriter;
use tatzelwurm_proto::{Attempt, TaskId};
use tokio::sync::{mpsc, Semaphore};
use tracing::{info, warn};

/// Reports and attempts one worker may have queued at the task actor and not yet applied; its
/// reader waits past that. Bounds what a worker that sends faster than the actor applies can
/// make the coordinator hold (about 150 bytes a report in memory) to a few MiB.
const QUEUED_ITEMS: usize = 2 * MAX_REPORTS_PER_FRAME;

/// Serves a worker until its connection ends.
pub async fn serve(mut conn: Greeting, hello: WorkerHello, ctx: Context) {
    let peer = conn.peer();
    let (sender, outgoing) = mpsc::unbounded_channel();
    let name = hello.name.clone();
    let slots = hello.slots;
    // The attempts it may run at once; the hub holds the output of twice as many, so that a
    // next attempt may write before the report of the one before it has passed.
    let live_most = 2 * (slots as usize) * (hello.async_concurrency.max(1) as usize);
    let queues = hello.queues.join(",");
    let Some((id, held_off_until)) = ctx
        .tasks
        .register(hello, peer.to_string(), sender.clone())
        .await
    else {
        return;
    };
    let welcome = HelloReply::Welcome(Welcome {
        worker_id: Some(id),
        heartbeat_ms: ctx.config.heartbeat.as_millis() as u64,
    });
    if let Err(err) = conn.send(&welcome).await {
        warn!(%peer, "worker {name} left during its welcome: {err}");
        ctx.tasks.worker_lost(id).await;
        return;
    }
    if let Some(note) = ctx.peer_log.note("worker joined", peer.ip()) {
        info!(worker = %id, %peer, slots, queues, "worker {name} joined{note}");
    }
    let mut hold_off = None;
    if let Some(until) = held_off_until {
        let wait = until.0.saturating_sub(Timestamp::now().0);
        if let Some(note) = ctx.peer_log.note("held off", peer.ip()) {
            warn!(worker = %id, %peer, "worker {name} keeps dropping its connections soon after joining; it gets no tasks for {:.1} s{note}", wait as f64 / 1000.0);
        }
        let tasks = ctx.tasks.clone();
        hold_off = Some(AbortOnDrop(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            tasks.wake().await;
        })));
    }
    let (mut reader, writer) = conn.retype::<FromWorker, ToWorker>().split();
    let lease = ctx.config.lease;
    let mut writing = tokio::spawn(async move {
        let (mut writer, mut outgoing) = (writer, outgoing);
        write_within(&mut writer, &mut outgoing, lease).await
    });
    ctx.tasks.wake().await;
    let mut draining = false;
    // Attempts that sent output on this connection and have not been reported: the hub holds
    // what they wrote until their report passes.
    let mut live: FxHashSet<(TaskId, Attempt)> = FxHashSet::default();
    let mut printed = false;
    let queued = Arc::new(Semaphore::new(QUEUED_ITEMS));
    // Waits for room for `n` items (each frame is within its cap, so within QUEUED_ITEMS).
    let hold = |n: usize| {
        queued
            .clone()
            .acquire_many_owned(n.clamp(1, QUEUED_ITEMS) as u32)
    };
    let ended = loop {
        tokio::select! {
            frame = tokio::time::timeout(ctx.config.lease, reader.recv()) => match frame {
                Ok(Ok(Some(FromWorker::Reports(reports)))) => {
                    if reports.len() > MAX_REPORTS_PER_FRAME {
                        break format!("sent a frame of more than {MAX_REPORTS_PER_FRAME} reports, past the protocol's limit");
                    }
                    let Ok(held) = hold(reports.len()).await else { break "closed".into() };
                    let ended = ended_live(&mut live, &reports);
                    ctx.tasks.reports(id, reports, held).await;
                    if !ended.is_empty() {
                        ctx.logs.ended(id, ended).await;
                    }
                }
                Ok(Ok(Some(FromWorker::Heartbeat { running }))) => {
                    if running.len() > MAX_ATTEMPTS_PER_FRAME {
                        break format!("sent a heartbeat naming more than {MAX_ATTEMPTS_PER_FRAME} attempts, past the protocol's limit");
                    }
                    if !running.is_empty() {
                        let Ok(held) = hold(running.len()).await else { break "closed".into() };
                        ctx.tasks.heartbeat(id, running, held).await;
                    }
                }
                Ok(Ok(Some(FromWorker::Started(attempts)))) => {
                    if attempts.len() > MAX_ATTEMPTS_PER_FRAME {
                        break format!("said it started more than {MAX_ATTEMPTS_PER_FRAME} attempts in one frame, past the protocol's limit");
                    }
                    if !attempts.is_empty() {
                        let Ok(held) = hold(attempts.len()).await else { break "closed".into() };
                        ctx.tasks.started(id, attempts, held).await;
                    }
                }
                Ok(Ok(Some(FromWorker::Returned(attempts)))) => {
                    if attempts.len() > MAX_ATTEMPTS_PER_FRAME {
                        break format!("returned more than {MAX_ATTEMPTS_PER_FRAME} attempts in one frame, past the protocol's limit");
                    }
                    let Ok(held) = hold(attempts.len()).await else { break "closed".into() };
                    ctx.tasks.returned(id, attempts, held).await;
                }
                Ok(Ok(Some(FromWorker::Coroutines(functions)))) => {
                    if functions.len() > MAX_IDS_PER_REQUEST {
                        break format!("named more than {MAX_IDS_PER_REQUEST} coroutine functions in one frame, past the protocol's limit");
                    }
                    let Ok(held) = hold(functions.len()).await else { break "closed".into() };
                    ctx.tasks.coroutines(id, functions, held).await;
                }
                Ok(Ok(Some(FromWorker::Output(chunks)))) => {
                    if chunks.len() > MAX_REPORTS_PER_FRAME {
                        break format!("sent a frame of more than {MAX_REPORTS_PER_FRAME} output chunks, past the protocol's limit");
                    }
                    printed = true;
                    for chunk in &chunks {
                        if live.len() < live_most {
                            live.insert((chunk.task, chunk.attempt));
                        }
                    }
                    ctx.logs.output(id, live_most, chunks).await;
                }
                Ok(Ok(Some(FromWorker::Usage(usage)))) => {
                    if usage.slots.len() > MAX_ATTEMPTS_PER_FRAME {
                        break format!("sent the usage of more than {MAX_ATTEMPTS_PER_FRAME} slots, past the protocol's limit");
                    }
                    ctx.tasks.usage(id, usage).await;
                }
                Ok(Ok(Some(FromWorker::Draining))) => {
                    if !draining {
                        draining = true;
                        let holds = ctx.tasks.drain(id).await.unwrap_or(0);
                        info!(worker = %id, %peer, "worker {name} is draining: it finishes the {holds} tasks it holds and gets no new ones");
                    }
                }
                Ok(Ok(None)) => break "closed its connection".to_string(),
                Ok(Err(err)) => break err.to_string(),
                Err(_) => break format!(
                    "sent nothing for {:.1} s, past its lease; its tasks are requeued",
                    ctx.config.lease.as_secs_f64()
                ),
            },
            written = &mut writing => {
                break match written {
                    Ok(Err(err)) => err,
                    _ => "lost its writer".to_string(),
                };
            }
        }
    };
    writing.abort();
    drop(hold_off);
    ctx.tasks.worker_lost(id).await;
    if printed {
        ctx.logs.worker_gone(id).await;
    }
    if draining {
        info!(worker = %id, %peer, "worker {name} left after draining: {ended}");
    } else if let Some(note) = ctx.peer_log.note("worker left", peer.ip()) {
        warn!(worker = %id, %peer, "worker {name} left: {ended}{note}");
    }
}

/// The reports among `reports` of attempts that sent output (in `live`), with their kept
/// output, for the hub; they leave `live`. Nothing is copied when nothing was printed.
fn ended_live(
    live: &mut FxHashSet<(TaskId, Attempt)>,
    reports: &[Report],
) -> Vec<(TaskId, Attempt, TaskOutput)> {
    if live.is_empty() {
        return Vec::new();
    }
    reports
        .iter()
        .filter(|report| live.remove(&(report.task, report.attempt)))
        .map(|report| (report.task, report.attempt, report.output.clone()))
        .collect()
}

/// Writes what the actors queue for the worker, as many frames per flush as are ready. A worker
/// that does not take what it is sent within `limit` (its lease) is dropped: its queue here is
/// unbounded (runs, kills and acknowledgements answer what it sent), so it must be read.
async fn write_within(
    writer: &mut FrameWriter<ToWorker>,
    outgoing: &mut mpsc::UnboundedReceiver<ToWorker>,
    limit: std::time::Duration,
) -> Result<(), String> {
    while let Some(first) = outgoing.recv().await {
        let burst = async {
            writer.feed(&first).await?;
            while let Ok(more) = outgoing.try_recv() {
                writer.feed(&more).await?;
            }
            writer.flush().await
        };
        match tokio::time::timeout(limit, burst).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(format!("could not be written to: {err}")),
            Err(_) => {
                return Err(format!(
                    "did not read what it was sent for {:.1} s, its lease",
                    limit.as_secs_f64()
                ))
            }
        }
    }
    Ok(())
}

/// Aborts a task when dropped: the hold-off's wake ends with the connection.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
