//! `EventStream`: the events a `Client::events` request is answered with, read at the caller's
//! pace (`next` in async code, `try_next` to poll from a thread that holds a lock, such as the
//! Python extension's). It remembers the last sequence number it handed out, which is where a
//! watcher that stops follows on (`EventsFrom::After`).

use crate::error::ClientError;
use crate::stream::{Frame, FrameReceiver, Polled, STREAM_FRAMES};
use tatzelwurm_proto::actioner::{Failure, FailureKind, Reply};
use tatzelwurm_proto::event::Event;
use tokio::sync::mpsc::error::TryRecvError;

/// The answer to one events request: batches of events in increasing `seq`, then the end (the
/// last frame without `follow`, an error, or the connection's end).
#[derive(Debug)]
pub struct EventStream {
    frames: FrameReceiver,
    /// The coordinator's address, for messages.
    addr: String,
    /// The `seq` of the last event handed out.
    last_seq: Option<u64>,
    /// Whether the end was read.
    ended: bool,
    /// A batch `subscribed` read while waiting, handed out first by `next`/`try_next`.
    early: Option<Result<Vec<Event>, ClientError>>,
}

impl EventStream {
    /// The stream reading `frames`, the answer of an events request to the coordinator at
    /// `addr`.
    pub(crate) fn new(frames: FrameReceiver, addr: String) -> EventStream {
        EventStream {
            frames,
            addr,
            last_seq: None,
            ended: false,
            early: None,
        }
    }

    /// Waits until the coordinator has subscribed this stream to new events: for a stream
    /// `EventsFrom::Now` with `follow`, whose first frame (empty) says so, every event of what
    /// the caller does after this returns reaches the stream. Any other stream is subscribed
    /// after its replay, so this waits for its first frame. An error that ends the stream is
    /// returned here (and not again by `next`).
    pub async fn subscribed(&mut self) -> Result<(), ClientError> {
        if self.ended || self.early.is_some() {
            return Ok(());
        }
        let frame = self.frames.recv().await;
        match self.read(frame) {
            Some(Ok(events)) if events.is_empty() => Ok(()),
            Some(Err(err)) => Err(err),
            other => {
                self.early = other;
                Ok(())
            }
        }
    }

    /// The next batch of events (never empty), an error that ends the stream (`Lagged`,
    /// `EventsGone`, a lost connection), or `None` once it is over.
    pub async fn next(&mut self) -> Option<Result<Vec<Event>, ClientError>> {
        if let Some(early) = self.early.take() {
            return Some(early);
        }
        while !self.ended {
            let frame = self.frames.recv().await;
            match self.read(frame) {
                Some(Ok(events)) if events.is_empty() => continue,
                item => return item,
            }
        }
        None
    }

    /// The next batch if one has come, without waiting.
    pub fn try_next(&mut self) -> Polled<Vec<Event>> {
        if let Some(early) = self.early.take() {
            return Polled::Item(early);
        }
        loop {
            if self.ended {
                return Polled::Ended;
            }
            let frame = match self.frames.try_recv() {
                Ok(frame) => Some(frame),
                Err(TryRecvError::Empty) => return Polled::Empty,
                Err(TryRecvError::Disconnected) => None,
            };
            match self.read(frame) {
                Some(Ok(events)) if events.is_empty() => continue,
                Some(item) => return Polled::Item(item),
                None => return Polled::Ended,
            }
        }
    }

    /// The `seq` of the last event handed out: follow on after it with `EventsFrom::After`.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// One frame as what the caller reads; `None` for the end.
    fn read(&mut self, frame: Option<Frame>) -> Option<Result<Vec<Event>, ClientError>> {
        let result = match Frame::reply(frame, &self.addr, || self.overflow()) {
            Ok(Reply::Events { events, more }) => {
                self.ended |= !more;
                if let Some(last) = events.last() {
                    self.last_seq = Some(last.seq);
                }
                Ok(events)
            }
            Ok(other) => {
                self.ended = true;
                Err(crate::client::unexpected(&self.addr, &other, "Events"))
            }
            Err(err) => {
                self.ended = true;
                Err(err)
            }
        };
        Some(result)
    }

    /// The error of a reader that let the client's buffer fill.
    fn overflow(&self) -> ClientError {
        let resume = match self.last_seq {
            Some(seq) => format!(
                "after event {seq}; follow again from there (`actionwurm events --since {seq}`, or since={seq} in Python)"
            ),
            None => "before its first event; follow again from the last event you saw".into(),
        };
        ClientError::Rejected(Failure::new(
            FailureKind::Lagged,
            format!(
                "this client read events more slowly than they came (over {STREAM_FRAMES} frames behind) and stopped {resume}"
            ),
        ))
    }
}
