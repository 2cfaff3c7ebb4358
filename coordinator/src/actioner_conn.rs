//! One actioner's connection (the CLI or a Python client), after its hello: reads requests,
//! queues each at the task actor in the order it arrived (so one client's adds get their ids,
//! and run, in the order it sent them), awaits each answer in its own task so that a long
//! `Wait` does not hold up later requests, and
//! writes the replies through one bounded queue. A task list is sent in pages so that no frame
//! grows with the size of the table. When the actioner goes away, answers under way get a short
//! grace to be written and are then dropped: a `Wait` on a task that runs for days must not keep
//! a closed connection (and one of the coordinator's connection permits) open.
//!
//! Pushes (`Finished` for watched tasks) come from the task actor through the connection's
//! unbounded push sink, so that the actor never waits on this actioner; a forwarder task moves
//! them into the bounded reply queue. When the connection ends, the task actor is told to
//! forget its watches.
//!
//! Some requests are answered here, off the task actor, in their answer task: `Events` from
//! its feed (`event_feed`: replay, then live events while following), `Logs` by `log_follow`,
//! a purge by age by `retention`. A purge by id goes to the actor while it holds the purge lock
//! (see `TasksHandle::purge_lock`). A following `Events` or `Logs` pins the connection, as a
//! watch does: it waits for the coordinator, not idle.
//!
//! A request naming more ids or tasks than `proto::limits` allows is answered `TooLarge`
//! without reaching the task actor. The connection's `Ticket` tells the admission table when
//! it is busy or watching; when the table displaces it (idle at the connection cap), it closes.

use crate::admission::Ticket;
use crate::handshake::Greeting;
use crate::paging;
use crate::tasks::Origin;
use crate::watchers::ConnId;
use crate::Context;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tatzelwurm_proto::actioner::{
    Command, Failure, FailureKind, FromActioner, PurgeSelection, Reply, Selection, ToActioner,
};
use tatzelwurm_proto::event::Event;
use tatzelwurm_proto::handshake::{HelloReply, Welcome};
use tatzelwurm_proto::limits::{MAX_IDS_PER_REQUEST, MAX_TASKS_PER_ADD};
use tatzelwurm_proto::{RequestId, TaskId};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// Requests one connection may have under way at once; more wait until one is answered.
const MAX_REQUESTS_IN_FLIGHT: usize = 256;

/// Ids and tasks one connection may have sent and the task actor not yet applied; its reader
/// waits past that, so a client that sends faster than the actor applies (each request within
/// its cap) makes the coordinator hold a bounded amount for it.
const QUEUED_ITEMS: usize = 2 * MAX_IDS_PER_REQUEST;

/// Tasks per `Reply::Tasks` page.
const PAGE: usize = 5_000;

/// Events per `Reply::Events` frame at most (a few hundred KB): a live round may hold tens of
/// thousands.
const EVENTS_PER_FRAME: usize = 4_096;

/// How long answers under way may still take once the actioner has stopped sending; what is
/// left after it (in practice only waits) is dropped, which also ends their registration.
const ANSWER_GRACE: Duration = Duration::from_secs(2);

/// Numbers actioner connections for the task actor's watches.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Serves an actioner until its connection ends.
pub async fn serve(mut conn: Greeting, name: String, ctx: Context, ticket: Ticket) {
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
    let queued = Arc::new(Semaphore::new(QUEUED_ITEMS));
    let mut answering = JoinSet::new();
    let ticket = Arc::new(ticket);
    loop {
        let next = tokio::select! {
            next = reader.recv() => next,
            () = ticket.evicted() => {
                debug!(%peer, "actioner {name} closed: idle at the connection cap, another connection took its place");
                break;
            }
        };
        match next {
            Ok(Some(request)) => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let items = items(&request.command).clamp(1, QUEUED_ITEMS) as u32;
                let Ok(held) = queued.clone().acquire_many_owned(items).await else {
                    break;
                };
                let ctx = ctx.clone();
                let replies = replies.clone();
                let origin = Origin {
                    conn: conn_id,
                    request: request.request,
                    pushes: pushes.clone(),
                };
                if matches!(
                    request.command,
                    Command::Watch(_)
                        | Command::Add { watch: true, .. }
                        | Command::Events { follow: true, .. }
                        | Command::Logs { follow: true, .. }
                ) {
                    ticket.pin();
                }
                ticket.busy(true);
                // Queued at the task actor here, in arrival order; answered in its own task.
                let pending = queue(request.command, origin, held, &ctx).await;
                let ticket = ticket.clone();
                answering.spawn(async move {
                    answer(request.request, pending, &ctx, &replies).await;
                    ticket.busy(false);
                    drop(permit);
                });
                // Reap the answered ones, so that a long-lived connection's set stays small.
                while answering.try_join_next().is_some() {}
            }
            Ok(None) => break,
            Err(err) => {
                if let Some(note) = ctx.peer_log.note("actioner dropped", peer.ip()) {
                    warn!(%peer, "actioner {name} dropped: {err}{note}");
                }
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

/// A request on its way to an answer.
enum Pending {
    /// Answered without the task actor (a request over its cap).
    Ready(Reply),
    /// Answered by the worker actor.
    Workers,
    /// Answered from an event feed (`event_feed`).
    Events {
        feed: mpsc::Receiver<Result<Vec<Event>, Failure>>,
        follow: bool,
    },
    /// Answered by `log_follow`, in as many frames as it takes.
    Logs { task: TaskId, follow: bool },
    /// Queued at the task actor; its answer comes from this future.
    Actor(Pin<Box<dyn Future<Output = Reply> + Send>>),
}

/// Sends a request where it is answered: refused at once past its cap, to the worker actor for
/// `Workers`, else queued at the task actor now, so that one connection's commands reach it in
/// the order they were sent.
async fn queue(
    command: Command,
    origin: Origin,
    held: crate::tasks::Held,
    ctx: &Context,
) -> Pending {
    match too_large(&command) {
        Some(failure) => Pending::Ready(Reply::Error(failure)),
        None => match command {
            Command::Workers => Pending::Workers,
            Command::Events {
                from,
                follow,
                filter,
            } => Pending::Events {
                feed: crate::event_feed::open(ctx, from, follow, filter),
                follow,
            },
            Command::Logs { task, follow } => Pending::Logs { task, follow },
            Command::Purge(PurgeSelection::FinishedBefore { before, states }) => {
                let ctx = ctx.clone();
                Pending::Actor(Box::pin(async move {
                    crate::retention::purge_finished_before(&ctx, before, states).await
                }))
            }
            command @ Command::Purge(_) => {
                let (tasks, lock) = (ctx.tasks.clone(), ctx.tasks.purge_lock());
                Pending::Actor(Box::pin(async move {
                    let _purging = lock.lock().await;
                    tasks.command_held(command, origin, Some(held)).await
                }))
            }
            command => Pending::Actor(Box::pin(
                ctx.tasks.send_command(command, origin, Some(held)).await,
            )),
        },
    }
}

async fn answer(
    request: RequestId,
    pending: Pending,
    ctx: &Context,
    replies: &mpsc::Sender<ToActioner>,
) {
    let reply = match pending {
        Pending::Ready(reply) => reply,
        Pending::Workers => Reply::Workers(ctx.tasks.list_workers().await),
        Pending::Actor(answer) => answer.await,
        Pending::Events { feed, follow } => {
            return stream_events(request, feed, follow, replies).await
        }
        Pending::Logs { task, follow } => {
            crate::log_follow::serve(ctx.clone(), request, task, follow, replies.clone()).await;
            return;
        }
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

/// Writes an event feed as `Reply::Events` frames of at most `EVENTS_PER_FRAME`. Following,
/// every frame says `more`, until the feed fails (its failure is the last frame) or the
/// actioner goes away; without, the last frame has `more: false` (an empty one if nothing
/// matched).
async fn stream_events(
    request: RequestId,
    mut feed: mpsc::Receiver<Result<Vec<Event>, Failure>>,
    follow: bool,
    replies: &mpsc::Sender<ToActioner>,
) {
    let send = |reply| replies.send(ToActioner { request, reply });
    // Held back one frame when not following, so that the last can say `more: false`.
    let mut held: Option<Vec<Event>> = None;
    while let Some(item) = feed.recv().await {
        let events = match item {
            Ok(events) => events,
            Err(failure) => {
                if let Some(events) = held.take() {
                    let _ = send(Reply::Events { events, more: true }).await;
                }
                let _ = send(Reply::Error(failure)).await;
                return;
            }
        };
        for chunk in frames(events) {
            if let Some(events) = held.take() {
                if send(Reply::Events { events, more: true }).await.is_err() {
                    return;
                }
            }
            if follow {
                let frame = Reply::Events {
                    events: chunk,
                    more: true,
                };
                if send(frame).await.is_err() {
                    return;
                }
            } else {
                held = Some(chunk);
            }
        }
    }
    if !follow {
        let events = held.unwrap_or_default();
        let _ = send(Reply::Events {
            events,
            more: false,
        })
        .await;
    }
}

/// `events` cut into frames of at most `EVENTS_PER_FRAME` (most pages are one already).
fn frames(mut events: Vec<Event>) -> Vec<Vec<Event>> {
    let mut frames = Vec::with_capacity(events.len() / EVENTS_PER_FRAME + 1);
    while events.len() > EVENTS_PER_FRAME {
        let rest = events.split_off(EVENTS_PER_FRAME);
        frames.push(std::mem::replace(&mut events, rest));
    }
    frames.push(events);
    frames
}

/// How many ids or tasks a request carries (as decoded: at most one past its cap).
fn items(command: &Command) -> usize {
    match command {
        Command::Add { tasks, .. } => tasks.len(),
        Command::Play(Selection::Ids(ids))
        | Command::Pause(Selection::Ids(ids))
        | Command::Kill(Selection::Ids(ids))
        | Command::Wait(Selection::Ids(ids))
        | Command::Watch(ids)
        | Command::Purge(PurgeSelection::Ids(ids)) => ids.len(),
        _ => 1,
    }
}

/// The refusal of a request that names more ids or tasks than one request may
/// (`proto::limits`); decoding kept at most one past the cap, so the count is "more than".
fn too_large(command: &Command) -> Option<Failure> {
    let (count, cap, what) = match command {
        Command::Add { tasks, .. } => (tasks.len(), MAX_TASKS_PER_ADD, "tasks"),
        Command::Play(Selection::Ids(ids))
        | Command::Pause(Selection::Ids(ids))
        | Command::Kill(Selection::Ids(ids))
        | Command::Wait(Selection::Ids(ids))
        | Command::Watch(ids)
        | Command::Purge(PurgeSelection::Ids(ids)) => (ids.len(), MAX_IDS_PER_REQUEST, "task ids"),
        _ => return None,
    };
    (count > cap).then(|| {
        Failure::new(
            FailureKind::TooLarge,
            format!("this request carries more than {cap} {what}, the most one request may; send them in several requests of at most {cap}"),
        )
    })
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
