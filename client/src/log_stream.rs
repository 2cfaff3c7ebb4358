//! `LogStream`: a task's output as a `Client::logs` request is answered, piece by piece as the
//! task writes it, read at the caller's pace (`next`, or `try_next` to poll).

use crate::error::ClientError;
use crate::stream::{Frame, FrameReceiver, Polled, STREAM_FRAMES};
use tatzelwurm_proto::actioner::{Failure, FailureKind, Reply};
use tatzelwurm_proto::task::TaskState;
use tatzelwurm_proto::worker::OutputChunk;
use tatzelwurm_proto::TaskId;
use tokio::sync::mpsc::error::TryRecvError;

/// One frame of a task's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// What was written, in order; a retry's attempt starts a new stream of chunks (each chunk
    /// carries its attempt).
    pub chunks: Vec<OutputChunk>,
    /// On the last page: the state of the task then (finished, unless the request did not
    /// follow and the task was still running).
    pub done: Option<TaskState>,
}

/// The answer to one logs request: pages until one with `done`, or an error.
#[derive(Debug)]
pub struct LogStream {
    frames: FrameReceiver,
    /// The task, for messages.
    task: TaskId,
    /// The coordinator's address, for messages.
    addr: String,
    /// Whether the end was read.
    ended: bool,
}

impl LogStream {
    /// The stream reading `frames`, the answer of a logs request for `task` to the
    /// coordinator at `addr`.
    pub(crate) fn new(frames: FrameReceiver, task: TaskId, addr: String) -> LogStream {
        LogStream {
            frames,
            task,
            addr,
            ended: false,
        }
    }

    /// The next page, an error that ends the stream (`UnknownTask`, `Purged`, a lost
    /// connection), or `None` after the page with `done`.
    pub async fn next(&mut self) -> Option<Result<LogPage, ClientError>> {
        if self.ended {
            return None;
        }
        let frame = self.frames.recv().await;
        self.read(frame)
    }

    /// The next page if one has come, without waiting.
    pub fn try_next(&mut self) -> Polled<LogPage> {
        if self.ended {
            return Polled::Ended;
        }
        let frame = match self.frames.try_recv() {
            Ok(frame) => Some(frame),
            Err(TryRecvError::Empty) => return Polled::Empty,
            Err(TryRecvError::Disconnected) => None,
        };
        match self.read(frame) {
            Some(item) => Polled::Item(item),
            None => Polled::Ended,
        }
    }

    /// One frame as what the caller reads; `None` for the end.
    fn read(&mut self, frame: Option<Frame>) -> Option<Result<LogPage, ClientError>> {
        if frame.is_none() && self.ended {
            return None;
        }
        let task = self.task;
        let overflow = || {
            ClientError::Rejected(Failure::new(
                FailureKind::Lagged,
                format!(
                    "this client read the output of task {task} more slowly than it was written (over {STREAM_FRAMES} frames behind) and stopped following it; ask for its logs again"
                ),
            ))
        };
        let result = match Frame::reply(frame, &self.addr, overflow) {
            Ok(Reply::Logs { chunks, done }) => {
                self.ended = done.is_some();
                Ok(LogPage { chunks, done })
            }
            Ok(other) => {
                self.ended = true;
                Err(crate::client::unexpected(&self.addr, &other, "Logs"))
            }
            Err(err) => {
                self.ended = true;
                Err(err)
            }
        };
        Some(result)
    }
}
