//! One actioner's connection (the CLI or a Python client), after its hello: reads requests,
//! answers each in its own task so that a long `Wait` does not hold up later requests, and
//! writes the replies through one bounded queue. A task list is sent in pages so that no frame
//! grows with the size of the table. When the actioner goes away, answers under way get a short
//! grace to be written and are then dropped: a `Wait` on a task that runs for days must not keep
//! a closed connection (and one of the coordinator's connection permits) open.
//!
//! Pushes (`Finished` for watched tasks) come from the task actor through the connection's
//! unbounded push sink, so that the actor never waits on this actioner; a forwarder task moves
//! them into the bounded reply queue. When the connection ends, the task actor is told to
//! forget its watches.

use crate::handshake::Greeting;
use crate::paging;
use crate::tasks::Origin;
use crate::watchers::ConnId;
use crate::Context;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Numbers actioner connections for the task actor's watches.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

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
    let conn_id = ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed));
    let (pushes, mut pushed) = mpsc::unbounded_channel::<ToActioner>();
    let forwarding = {
        let replies = replies.clone();
        tokio::spawn(async move {
            while let Some(frame) = pushed.recv().await {
                if replies.send(frame).await.is_err() {
                    return;
                }
            }
        })
    };
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
                let origin = Origin {
                    conn: conn_id,
                    request: request.request,
                    pushes: pushes.clone(),
                };
                answering.spawn(async move {
                    answer(request.command, origin, &ctx, &replies).await;
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
    // No command of this connection can reach the task actor after this: its watches go, and
    // with its sink dropped there and here the forwarder ends once it has passed on the rest.
    ctx.tasks.forget(conn_id).await;
    drop(pushes);
    let _ = forwarding.await;
    // The answers that finished are written before the socket closes.
    let _ = writing.await;
    debug!(%peer, "actioner {name} disconnected");
}

async fn answer(
    command: Command,
    origin: Origin,
    ctx: &Context,
    replies: &mpsc::Sender<ToActioner>,
) {
    let request = origin.request;
    let reply = match command {
        Command::Workers => Reply::Workers(ctx.workers.list().await),
        command => ctx.tasks.command(command, origin).await,
    };
    let pages = match reply {
        Reply::Tasks { tasks, .. } => paginate(tasks),
        other => vec![paging::fits(other)],
    };
    for reply in pages {
        let frame = ToActioner { request, reply };
        if replies.send(frame).await.is_err() {
            return;
        }
    }
}

/// A list as pages of at most `PAGE` tasks that each fit a frame; an empty list is one page.
fn paginate(tasks: Vec<tatzelwurm_proto::task::TaskInfo>) -> Vec<Reply> {
    let pages = paging::pages(tasks, PAGE, paging::PAGE_BYTES);
    if pages.is_empty() {
        return vec![Reply::Tasks {
            tasks: Vec::new(),
            more: false,
        }];
    }
    let count = pages.len();
    pages
        .into_iter()
        .enumerate()
        .map(|(n, tasks)| Reply::Tasks {
            tasks,
            more: n + 1 < count,
        })
        .collect()
}
