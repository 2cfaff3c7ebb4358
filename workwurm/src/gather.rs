//! Gathering the frames to the coordinator: one socket write for what a burst produces.
//!
//! The session's writer task (`session::write_frames`) drains its queue with proto's
//! `FrameWriter::drain`: it takes the first frame, then every frame already queued, and flushes.
//! A slot's `done` travels through three tasks (its watcher, the pool, the session) before it is
//! a frame in that queue, so without help the writer flushes the first report of a burst alone,
//! and the reports right behind it (the other slot's, or the next frames already in a slot's
//! pipe) take a write of their own. Every write over loopback TCP costs this worker several
//! microseconds in the kernel and wakes the coordinator once more.
//!
//! [`Gathering`] lets the runtime turn [`TURNS`] more times before the writer takes what is
//! queued: `tokio::task::yield_now` defers the writer until the runtime has run every other ready
//! task and polled its I/O driver without blocking, so what already arrived, and what it sets
//! off, joins the same write. Nothing waits for a timer or for anything that has not arrived yet:
//! with nothing else to do, each turn is one `epoll_wait` with a zero timeout, and a lone report
//! (W2) leaves a few microseconds later than it would have.

use tatzelwurm_proto::codec::Outbound;
use tokio::sync::mpsc;

/// How many times the runtime turns before the writer takes the queued frames: one per task
/// hop that a report makes after its slot's pipe (watcher, pool, session).
pub const TURNS: usize = 3;

/// The writer's queue: [`Outbound`] for proto's `FrameWriter::drain`, gathering a burst before
/// the first frame of it is handed over (see the module).
#[derive(Debug)]
pub struct Gathering<T>(pub mpsc::Receiver<T>);

impl<T: Send> Outbound<T> for Gathering<T> {
    async fn next(&mut self) -> Option<T> {
        let first = self.0.recv().await?;
        for _ in 0..TURNS {
            tokio::task::yield_now().await;
        }
        Some(first)
    }

    fn ready(&mut self) -> Option<T> {
        self.0.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame queued while the writer gathers (here one task hop after the first) joins the
    /// first one's write; a closed and empty queue ends the writer.
    #[tokio::test(flavor = "current_thread")]
    async fn a_frame_sent_while_the_writer_gathers_joins_the_burst() {
        let (to_writer, inbox) = mpsc::channel(8);
        let mut gathering = Gathering(inbox);
        to_writer.send(1).await.unwrap();
        let behind = to_writer.clone();
        tokio::spawn(async move {
            // One hop later, as the pool's report reaches the session after the watcher's.
            tokio::task::yield_now().await;
            behind.send(2).await.unwrap();
        });
        assert_eq!(gathering.next().await, Some(1));
        assert_eq!(gathering.ready(), Some(2));
        assert_eq!(gathering.ready(), None);
        drop(to_writer);
        assert_eq!(gathering.next().await, None);
    }
}
