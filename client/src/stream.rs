//! The channel of a streamed answer (events, a task's output): the session pushes each frame
//! into a `StreamSink` as it is read, the caller's `EventStream` or `LogStream` pulls them out
//! of the `FrameReceiver`, at its own pace.
//!
//! The session serves every request of the client and must never wait for one reader, so the
//! channel is bounded and a reader that lets it fill is cut off: it reads `Frame::Overflow` (and
//! then the end) instead of making the client buffer without limit. This is the coordinator's
//! rule for its own subscribers (`FailureKind::Lagged`), applied once more on this side.

use crate::error::ClientError;
use tatzelwurm_proto::actioner::Reply;
use tokio::sync::mpsc::{self, error::TryRecvError};

/// How many frames a reader may leave unread before it is cut off. A frame carries what one
/// coordinator round wrote (many events, many chunks), so this is minutes of a busy queue.
pub(crate) const STREAM_FRAMES: usize = 4096;

/// What a stream's reader is handed.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A frame of the answer, or the error that ends it.
    Reply(Result<Reply, ClientError>),
    /// The reader let `STREAM_FRAMES` frames pile up and was cut off; nothing follows.
    Overflow,
}

impl Frame {
    /// What a stream's reader makes of the next frame (`None`: the channel closed): the reply,
    /// or the error that ends the stream: `Closed` when the channel closed without its last
    /// frame (the session dropped the request unanswered), `overflow()` when the reader was cut
    /// off, or the error the frame carried.
    pub(crate) fn reply(
        frame: Option<Frame>,
        addr: &str,
        overflow: impl FnOnce() -> ClientError,
    ) -> Result<Reply, ClientError> {
        match frame {
            None => Err(ClientError::Closed { addr: addr.into() }),
            Some(Frame::Overflow) => Err(overflow()),
            Some(Frame::Reply(reply)) => reply,
        }
    }
}

/// The session's end of a stream.
#[derive(Debug)]
pub(crate) struct StreamSink {
    tx: mpsc::Sender<Frame>,
}

/// The caller's end of a stream.
#[derive(Debug)]
pub(crate) struct FrameReceiver {
    rx: mpsc::Receiver<Frame>,
}

/// A sink and its receiver.
pub(crate) fn channel() -> (StreamSink, FrameReceiver) {
    let (tx, rx) = mpsc::channel(STREAM_FRAMES);
    (StreamSink { tx }, FrameReceiver { rx })
}

impl StreamSink {
    /// Hands on a frame that more follow; false when the stream is over for this reader (it went
    /// away, or it was cut off just now for reading too slowly), so the request is forgotten.
    pub fn push(&self, reply: Reply) -> bool {
        if self.tx.is_closed() {
            return false;
        }
        // Keep one place free for the frame that ends the stream, `Overflow` included.
        if self.tx.capacity() <= 1 {
            let _ = self.tx.try_send(Frame::Overflow);
            return false;
        }
        self.tx.try_send(Frame::Reply(Ok(reply))).is_ok()
    }

    /// Hands on the last frame (or the error that ends the stream) and closes it.
    pub fn finish(self, last: Result<Reply, ClientError>) {
        let _ = self.tx.try_send(Frame::Reply(last));
    }

    /// Whether the reader went away (its stream was dropped).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// What `try_next` of a stream found.
#[derive(Debug)]
pub enum Polled<T> {
    /// The next item: a frame's worth of events or output, or the error that ends the stream.
    Item(Result<T, ClientError>),
    /// Nothing yet; the stream goes on.
    Empty,
    /// The stream is over: its last frame or error was read.
    Ended,
}

impl FrameReceiver {
    /// The next frame; `None` once the stream is over.
    pub async fn recv(&mut self) -> Option<Frame> {
        self.rx.recv().await
    }

    /// The next frame if one is there, without waiting.
    pub fn try_recv(&mut self) -> Result<Frame, TryRecvError> {
        self.rx.try_recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece() -> Reply {
        Reply::Events {
            events: Vec::new(),
            more: true,
        }
    }

    /// A reader that never reads is cut off with `Overflow` once the channel is full, and the
    /// frames before it are still there to read.
    #[test]
    fn a_reader_that_falls_behind_is_cut_off() {
        let (sink, mut rx) = channel();
        let mut pushed = 0;
        while sink.push(piece()) {
            pushed += 1;
        }
        assert_eq!(pushed, STREAM_FRAMES - 1);
        for _ in 0..pushed {
            assert!(matches!(rx.try_recv(), Ok(Frame::Reply(Ok(_)))));
        }
        assert!(matches!(rx.try_recv(), Ok(Frame::Overflow)));
        drop(sink);
        assert!(rx.try_recv().is_err());
    }

    /// A dropped reader stops the pushes; the last frame closes the stream.
    #[test]
    fn ends() {
        let (sink, rx) = channel();
        drop(rx);
        assert!(!sink.push(piece()) && sink.is_closed());
        let (sink, mut rx) = channel();
        assert!(sink.push(piece()));
        sink.finish(Ok(piece()));
        assert!(matches!(rx.try_recv(), Ok(Frame::Reply(Ok(_)))));
        assert!(matches!(rx.try_recv(), Ok(Frame::Reply(Ok(_)))));
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }
}
