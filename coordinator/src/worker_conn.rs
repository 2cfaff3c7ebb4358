//! One worker's connection, after its hello: registers it with the worker actor, welcomes it,
//! and then runs a reader (reports, heartbeats → the actors) and a writer (runs, kills and
//! acknowledgements from the task actor → the socket). The worker's lease is this connection:
//! every frame renews it, and a worker silent for longer than `lease` (hung, or stopped with
//! SIGSTOP) is dropped as if its connection had ended. When either side ends, the worker is
//! removed first and then reported lost, so that no new task is granted to it after its tasks
//! were requeued. A worker that says `Draining` gets no new tasks from then on; it leaves once
//! what it holds is reported and recorded.

use crate::handshake::Greeting;
use crate::Context;
use tatzelwurm_proto::handshake::{HelloReply, Welcome, WorkerHello};
use tatzelwurm_proto::worker::{FromWorker, ToWorker};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Serves a worker until its connection ends.
pub async fn serve(mut conn: Greeting, hello: WorkerHello, ctx: Context) {
    let peer = conn.peer();
    let (sender, outgoing) = mpsc::unbounded_channel();
    let name = hello.name.clone();
    let slots = hello.slots;
    let Some(id) = ctx
        .workers
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
        ctx.workers.remove(id).await;
        return;
    }
    info!(worker = %id, %peer, slots, "worker {name} joined");
    let (mut reader, writer) = conn.retype::<FromWorker, ToWorker>().split();
    let mut writing = tokio::spawn(async move {
        let (mut writer, mut outgoing) = (writer, outgoing);
        writer.drain(&mut outgoing).await
    });
    ctx.tasks.wake().await;
    let mut draining = false;
    let ended = loop {
        tokio::select! {
            frame = tokio::time::timeout(ctx.config.lease, reader.recv()) => match frame {
                Ok(Ok(Some(FromWorker::Reports(reports)))) => {
                    ctx.tasks.reports(id, sender.clone(), reports).await;
                }
                Ok(Ok(Some(FromWorker::Heartbeat { running }))) => {
                    if !running.is_empty() {
                        ctx.tasks.heartbeat(id, sender.clone(), running).await;
                    }
                }
                Ok(Ok(Some(FromWorker::Draining))) => {
                    if !draining {
                        draining = true;
                        let holds = ctx.workers.drain(id).await.unwrap_or(0);
                        info!(worker = %id, %peer, "worker {name} is draining: it finishes its {holds} running tasks and gets no new ones");
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
                    Ok(Err(err)) => format!("could not be written to: {err}"),
                    _ => "lost its writer".to_string(),
                };
            }
        }
    };
    writing.abort();
    ctx.workers.remove(id).await;
    ctx.tasks.worker_lost(id).await;
    if draining {
        info!(worker = %id, %peer, "worker {name} left after draining: {ended}");
    } else {
        warn!(worker = %id, %peer, "worker {name} left: {ended}");
    }
}
