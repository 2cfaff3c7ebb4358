//! One actioner's connection (the CLI or a Python client), after its hello: reads requests,
//! answers each in its own task so that a long `Wait` does not hold up later requests, and
//! writes the replies through one bounded queue. A task list is sent in pages so that no frame
//! grows with the size of the table. When the actioner goes away, answers under way get a short
//! grace to be written and are then dropped: a `Wait` on a task that runs for days must not keep
//! a closed connection (and one of the coordinator's connection permits) open.

use crate::handshake::Greeting;
use crate::Context;
use std::sync::Arc;
use std::time::Duration;
use tatzelwurm_proto::actioner::{Command, FromActioner, Reply, ToActioner};
use tatzelwurm_proto::handshake::{HelloReply, Welcome};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// Requests one connection may have under way at once; more wait until one is answered.
const MAX_REQUESTS_IN_FLIGHT: usize = 256;

/// Tasks per `Reply::Tasks` page.
const PAGE: usize = 5_000;

/// How long answers under way may still take once the actioner has stopped sending; what is
/// left after it (in practice only waits) is dropped, which also ends their registration.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// Serves an actioner until its connection ends.
pub async fn serve(mut conn: Greeting, name: String, ctx: Context) {
    let peer = conn.peer();
    let welcome = HelloReply::Welcome(Welcome {
        worker_id: None,
        heartbeat_ms: ctx.config.heartbeat.as_millis() as u64,
    });
    if conn.send(&welcome).await.is_err() {
        return;
    }
    debug!(%peer, "actioner {name} connected");
    let (mut reader, writer) = conn.retype::<FromActioner, ToActioner>().split();
    let (replies, outgoing) = mpsc::channel(64);
    let writing = tokio::spawn(async move {
        let (mut writer, mut outgoing) = (writer, outgoing);
        writer.drain(&mut outgoing).await
    });
    let in_flight = Arc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
    let mut answering = JoinSet::new();
    loop {
        match reader.recv().await {
            Ok(Some(request)) => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let ctx = ctx.clone();
                let replies = replies.clone();
                answering.spawn(async move {
                    answer(request, &ctx, &replies).await;
                    drop(permit);
                });
                // Reap the answered ones, so that a long-lived connection's set stays small.
                while answering.try_join_next().is_some() {}
            }
            Ok(None) => break,
            Err(err) => {
                warn!(%peer, "actioner {name} dropped: {err}");
                break;
            }
        }
    }
    drop(replies);
    let finishing = async { while answering.join_next().await.is_some() {} };
    if tokio::time::timeout(ANSWER_GRACE, finishing).await.is_err() {
        debug!(%peer, "actioner {name} left {} requests unanswered (waits)", answering.len());
        answering.abort_all();
    }
    // The answers that finished are written before the socket closes.
    let _ = writing.await;
    debug!(%peer, "actioner {name} disconnected");
}

async fn answer(request: FromActioner, ctx: &Context, replies: &mpsc::Sender<ToActioner>) {
    let reply = match request.command {
        Command::Workers => Reply::Workers(ctx.workers.list().await),
        command => ctx.tasks.command(command).await,
    };
    let pages = match reply {
        Reply::Tasks { tasks, .. } => paginate(tasks),
        other => vec![other],
    };
    for reply in pages {
        let frame = ToActioner {
            request: request.request,
            reply,
        };
        if replies.send(frame).await.is_err() {
            return;
        }
    }
}

fn paginate(tasks: Vec<tatzelwurm_proto::task::TaskInfo>) -> Vec<Reply> {
    if tasks.is_empty() {
        return vec![Reply::Tasks { tasks, more: false }];
    }
    let pages = tasks.len().div_ceil(PAGE);
    let mut rest = tasks.into_iter();
    (0..pages)
        .map(|page| Reply::Tasks {
            tasks: rest.by_ref().take(PAGE).collect(),
            more: page + 1 < pages,
        })
        .collect()
}
