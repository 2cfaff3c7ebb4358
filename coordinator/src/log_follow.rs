//! Answers `Command::Logs` (`task logs ID [--follow]`) in `Reply::Logs` frames, the last with
//! `done`.
//!
//! - A finished task: its kept output (`task show`'s, of its latest attempt), then `done`
//!   with its state.
//! - A live task without `follow`: what its running attempts have written so far (the live
//!   output hub, `logs`), then `done` with its state now. A task between attempts (waiting for
//!   its retry, or ready again) shows its latest attempt's kept output first.
//! - A live task with `follow`: the task actor is asked to watch the task (a `Watch` under a
//!   connection id of this request's own, so the `Finished` push comes here), the kept output
//!   of a task between attempts is shown first (as above), the hub is followed (what is held
//!   so far, then each piece as it is written; a retry's new attempt is a new stream, each
//!   chunk names its attempt; an attempt's report completes it with the kept output the live
//!   pieces did not carry); when `Finished` comes, the hub is left (which waits until it has
//!   passed on everything it took before: a worker sends output before its report), the rest
//!   of the kept output beyond what was shown is sent, then `done`.
//!
//! `Shown` (`log_follow/shown.rs`) keeps every byte shown once, across a snapshot, the live
//! pieces and the kept output. A follower that reads slowly is dropped by the hub and follows
//! again: it catches up from the hub's tail, with a note saying how many bytes it missed.
//!
//! `serve` is awaited in the request's own answer task (`actioner_conn`), so a connection that
//! ends cancels it; dropping it midway leaves the hub and forgets the watch.

mod shown;

use crate::logs::{FollowerId, Piece};
use crate::tasks::{Origin, TasksHandle};
use crate::watchers::ConnId;
use crate::Context;
use shown::Shown;
use std::sync::atomic::{AtomicU64, Ordering};
use tatzelwurm_proto::actioner::{Command, Failure, FailureKind, Reply, ToActioner};
use tatzelwurm_proto::task::{TaskInfo, TaskState};
use tatzelwurm_proto::worker::OutputChunk;
use tatzelwurm_proto::{RequestId, TaskId};
use tokio::sync::mpsc;

/// The text a `Reply::Logs` frame carries at most (a single larger chunk gets a frame of its
/// own; the hub keeps at most 256 KiB of a stream, so that is far under the frame limit).
const FRAME_BYTES: usize = 1024 * 1024;

/// Connection ids of the watches `task logs --follow` registers, apart from actioner
/// connections' (numbered from 1 in `actioner_conn`), so a `Finished` push for one comes to
/// its request and not to the connection's other watches.
static NEXT_WATCH: AtomicU64 = AtomicU64::new(1 << 62);

/// Answers `Command::Logs { task, follow }` of request `request` into `sink`, the
/// connection's bounded reply queue (see the module comment); returns when the last frame
/// (with `done`, or an error) is queued or the connection is gone. Await it in the request's
/// answer task: a slow reader then slows this request alone, which the hub drops and lets
/// catch up.
pub async fn serve(
    ctx: Context,
    request: RequestId,
    task: TaskId,
    follow: bool,
    sink: mpsc::Sender<ToActioner>,
) {
    let mut out = Frames {
        request,
        sink,
        shown: Shown::new(task),
        pending: Vec::new(),
    };
    let result = if follow {
        follow_task(&ctx, request, task, &mut out).await
    } else {
        once(&ctx, task, &mut out).await
    };
    if let Err(Ended::Failed(failure)) = result {
        out.fail(failure).await;
    }
}

/// Why an answer ended early.
enum Ended {
    /// The actioner's connection is gone.
    Gone,
    /// The request fails with this (an unknown or purged task, a coordinator that stops).
    Failed(Failure),
}

/// Without `follow`: the kept output of a finished task, or what a live one wrote so far.
async fn once(ctx: &Context, task: TaskId, out: &mut Frames) -> Result<(), Ended> {
    // The snapshot first: if the task finishes meanwhile, `show` says so and has it all.
    let snapshot = ctx.logs.snapshot(task).await;
    let info = show(&ctx.tasks, task).await?;
    if info.state.is_finished() {
        out.kept(&info);
    } else {
        if between_attempts(&info) {
            out.kept(&info);
        }
        snapshot.into_iter().for_each(|piece| out.add(piece));
    }
    out.flush(Some(info.state)).await
}

/// With `follow`: see the module comment.
async fn follow_task(
    ctx: &Context,
    request: RequestId,
    task: TaskId,
    out: &mut Frames,
) -> Result<(), Ended> {
    let mut watch = Watch::open(&ctx.tasks, request, task).await?;
    let info = show(&ctx.tasks, task).await?;
    if between_attempts(&info) {
        out.kept(&info);
    }
    let mut following = Following::start(ctx, task, out).await?;
    let state = loop {
        tokio::select! {
            piece = following.pieces.recv() => match piece {
                Some(piece) => {
                    out.add(piece);
                    while let Ok(more) = following.pieces.try_recv() {
                        out.add(more);
                    }
                    out.flush(None).await?;
                }
                // Dropped for falling behind: follow again, catching up from the hub's tail.
                None => {
                    following.leave();
                    following = Following::start(ctx, task, out).await?;
                }
            },
            finished = watch.finished() => break finished?,
        }
    };
    following.finish(out).await;
    watch.close().await;
    // The state `Finished` named, with the kept output `show` has for the latest attempt.
    let info = show(&ctx.tasks, task).await?;
    out.kept(&info);
    out.flush(Some(if info.state.is_finished() {
        info.state
    } else {
        state
    }))
    .await
}

/// Whether `info` is between attempts: not finished, none running, one ran before. Its kept
/// output is then its latest attempt's (the one whose report made it wait or ready again), and
/// is shown first; a running task's kept output is an earlier attempt's, which is not.
fn between_attempts(info: &TaskInfo) -> bool {
    !info.state.is_finished() && info.state != TaskState::Running && info.attempts.0 > 0
}

/// This request's place among the hub's followers of a task; leaves it when dropped.
struct Following {
    logs: crate::logs::LogsHandle,
    task: TaskId,
    id: Option<FollowerId>,
    pieces: crate::logs::Follower,
}

impl Following {
    /// Follows `task` at the hub and adds what it holds so far to `out`, sent at once.
    async fn start(ctx: &Context, task: TaskId, out: &mut Frames) -> Result<Following, Ended> {
        let Some((id, snapshot, pieces)) = ctx.logs.follow(task).await else {
            return Err(Ended::Failed(stopping()));
        };
        let following = Following {
            logs: ctx.logs.clone(),
            task,
            id: Some(id),
            pieces,
        };
        snapshot.into_iter().for_each(|piece| out.add(piece));
        out.flush(None).await?;
        Ok(following)
    }

    /// Leaves the hub once it has passed on every piece it took so far, and adds those to
    /// `out` (not sent yet).
    async fn finish(mut self, out: &mut Frames) {
        if let Some(id) = self.id.take() {
            self.logs.unfollow(self.task, id).await;
        }
        while let Ok(piece) = self.pieces.try_recv() {
            out.add(piece);
        }
    }

    /// Leaves the hub without waiting.
    fn leave(&mut self) {
        if let Some(id) = self.id.take() {
            self.logs.leave(self.task, id);
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The task actor's watch of the followed task, under a connection id of this request's own;
/// forgotten when closed or dropped.
struct Watch {
    tasks: TasksHandle,
    conn: Option<ConnId>,
    pushes: mpsc::UnboundedReceiver<ToActioner>,
}

impl Watch {
    /// Registers the watch; an unknown or purged task fails here with the actor's sentence.
    async fn open(tasks: &TasksHandle, request: RequestId, task: TaskId) -> Result<Watch, Ended> {
        let conn = ConnId(NEXT_WATCH.fetch_add(1, Ordering::Relaxed));
        let (sink, pushes) = mpsc::unbounded_channel();
        let origin = Origin {
            conn,
            request,
            pushes: sink,
        };
        let watch = Watch {
            tasks: tasks.clone(),
            conn: Some(conn),
            pushes,
        };
        match tasks.command(Command::Watch(vec![task]), origin).await {
            Reply::Watching => Ok(watch),
            Reply::Error(failure) => Err(Ended::Failed(failure)),
            other => Err(Ended::Failed(unexpected(&other))),
        }
    }

    /// Waits until the task finished (durably); returns its state.
    async fn finished(&mut self) -> Result<TaskState, Ended> {
        loop {
            match self.pushes.recv().await {
                Some(ToActioner {
                    reply: Reply::Finished(ends),
                    ..
                }) => {
                    if let Some(end) = ends.first() {
                        return Ok(end.state);
                    }
                }
                Some(_) => {}
                // The task actor stopped (its sinks went with it).
                None => return Err(Ended::Failed(stopping())),
            }
        }
    }

    /// Forgets the watch at the task actor.
    async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            self.tasks.forget(conn).await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let tasks = self.tasks.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { tasks.forget(conn).await });
        }
    }
}

/// `Command::Show` at the task actor: the task with its kept output, or the failure to send.
async fn show(tasks: &TasksHandle, task: TaskId) -> Result<TaskInfo, Ended> {
    // Show registers nothing, so its origin's sink is never used.
    let origin = Origin {
        conn: ConnId(NEXT_WATCH.fetch_add(1, Ordering::Relaxed)),
        request: RequestId(0),
        pushes: mpsc::unbounded_channel().0,
    };
    match tasks.command(Command::Show(task), origin).await {
        Reply::Task(info) => Ok(*info),
        Reply::Error(failure) => Err(Ended::Failed(failure)),
        other => Err(Ended::Failed(unexpected(&other))),
    }
}

/// The chunks one request has still to send, and what it has shown.
struct Frames {
    request: RequestId,
    sink: mpsc::Sender<ToActioner>,
    shown: Shown,
    pending: Vec<OutputChunk>,
}

impl Frames {
    /// Adds what `piece` holds beyond what was shown.
    fn add(&mut self, piece: Piece) {
        match piece {
            Piece::Text {
                attempt,
                stream,
                start,
                text,
            } => self
                .pending
                .extend(self.shown.text(attempt, stream, start, &text)),
            Piece::Ended { attempt, output } => {
                let chunks = self.shown.kept(attempt, &output);
                self.pending.extend(chunks);
            }
        }
    }

    /// Adds what `info`'s kept output (its latest attempt's) holds beyond what was shown.
    fn kept(&mut self, info: &TaskInfo) {
        if let Some(output) = &info.output {
            let chunks = self.shown.kept(info.attempts, output);
            self.pending.extend(chunks);
        }
    }

    /// Sends what is pending in frames of about `FRAME_BYTES`; with `done`, the last frame
    /// (sent even if empty) carries it.
    async fn flush(&mut self, done: Option<TaskState>) -> Result<(), Ended> {
        if self.pending.is_empty() && done.is_none() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.pending);
        let mut frames = tatzelwurm_proto::batch::batches(chunks, usize::MAX, FRAME_BYTES, |c| {
            c.text.len() + 64
        });
        if frames.is_empty() {
            frames.push(Vec::new());
        }
        let last = frames.len() - 1;
        for (n, chunks) in frames.into_iter().enumerate() {
            let reply = Reply::Logs {
                chunks,
                done: if n == last { done } else { None },
            };
            let frame = ToActioner {
                request: self.request,
                reply,
            };
            if self.sink.send(frame).await.is_err() {
                return Err(Ended::Gone);
            }
        }
        Ok(())
    }

    /// Ends the answer with `failure`.
    async fn fail(&mut self, failure: Failure) {
        let frame = ToActioner {
            request: self.request,
            reply: Reply::Error(failure),
        };
        let _ = self.sink.send(frame).await;
    }
}

/// The failure of a request the coordinator cannot finish because it is stopping.
fn stopping() -> Failure {
    Failure::new(
        FailureKind::Stopping,
        "the coordinator is shutting down; ask for the task's output again once it is back",
    )
}

/// A reply the task actor does not give to this command; a bug, said as one.
fn unexpected(reply: &Reply) -> Failure {
    Failure::new(
        FailureKind::Internal,
        format!("internal: the task actor answered a logs request's step with {reply:?}"),
    )
}
