//! The doorbell: when workwurm reads a slot's frames.
//!
//! workwurm does not wait on a slot's results pipe (its fd 4) itself. A write to a pipe that a
//! process waits on wakes that process, and at tens of thousands of tasks a second that wake-up,
//! and the switch to workwurm it sets off in the slot, cost more than a noop task (issue 10's W1
//! profile: a third of a slot's CPU went to the `write` of each `done` and the context switch
//! behind it, and a fifth of workwurm's to waking for each one). So the slot writes its frames to
//! fd 4 as before, in order, each `done` before its next task begins, and rings: it writes one
//! byte to a second pipe, its fd 6, whose read end workwurm waits on, after the frames workwurm
//! should read now. slot.py rings every frame at once but a `done` of a fast stream (see its
//! "Protocol": the slot rings a `done` when it holds a few tasks or none, before a held or
//! together task, for a long frame, and when [`RING_EVERY`] passed since its last ring).
//!
//! A `done` that did not ring is in the pipe all the same, so it survives the slot's death: the
//! watcher (`slot_process`) reads the pipe to its end when the slot exits. And the watcher looks
//! at the pipe again [`CHECK_AFTER`] after each ring, and after each such look that found frames.
//! Since the slot rings any `done` written more than [`RING_EVERY`] after its last ring, no
//! `done` waits unread longer than about `CHECK_AFTER`, even behind a task that hangs: the pool's
//! idea of which task a slot runs lags by at most that while fast tasks stream (a timeout counts
//! from when the pool learns that a task began, at most that late). Where that idea decides, the
//! pool reads the pipes itself first (`slots`' `catch_up`, before a kill, a timeout and a memory
//! sample), through the `SlotFrames` it shares with the watcher: so a kill or a timeout hits the
//! task the slot runs, as exactly as when every `done` was read at once.
//!
//! [`read_available`] is the read itself: the results pipe is non-blocking and in no epoll set.

use crate::slot_channel::FrameBuffer;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The slot's fd of the doorbell's write end.
pub const BELL_FD: RawFd = 6;

/// slot.py's `RING_EVERY`: a `done` written this long after the slot's last ring rings.
pub const RING_EVERY: Duration = Duration::from_millis(1);

/// How long after a ring (or after a look that found frames) the watcher looks at the results
/// pipe again: twice [`RING_EVERY`], so that by then any unread `done` either rang or is there.
pub const CHECK_AFTER: Duration = Duration::from_millis(2);

/// What one [`read_available`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Bytes were read.
    pub some: bool,
    /// The pipe is at its end (every write end closed) or broken.
    pub at_end: bool,
}

/// Bytes read per `read` at most.
const CHUNK: usize = 64 * 1024;

/// Reads all that the non-blocking pipe `fd` holds now into `frames`, without waiting.
pub fn read_available(fd: RawFd, frames: &mut FrameBuffer) -> Read {
    let mut read = Read {
        some: false,
        at_end: false,
    };
    loop {
        let buffer = frames.buffer();
        buffer.reserve(CHUNK);
        let spare = buffer.spare_capacity_mut();
        // SAFETY: read(2) writes at most `spare.len()` bytes into the vector's spare capacity,
        // which we own; only the bytes it reports written are made part of the vector below.
        let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
        if n > 0 {
            let wanted = spare.len();
            let len = buffer.len() + n as usize;
            // SAFETY: the first `n` bytes of the spare capacity were just written by read(2).
            unsafe { buffer.set_len(len) };
            read.some = true;
            if (n as usize) < wanted {
                // A pipe's read returns all it holds up to the size asked for: it is empty now,
                // and no readiness is tracked for it that would need the `EAGAIN`.
                return read;
            }
            continue;
        }
        if n == 0 {
            read.at_end = true;
            return read;
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return read,
            _ => {
                read.at_end = true;
                return read;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot_channel::FromSlot;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fresh fds into the array.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
            0
        );
        // SAFETY: both fds were just created and are owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn write(fd: &OwnedFd, bytes: &[u8]) {
        // SAFETY: writes from a live slice to an fd we own.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        assert_eq!(n, bytes.len() as isize);
    }

    /// An empty pipe reads nothing and is not at its end; frames written before are all read at
    /// once, a frame cut in two waits for its rest, and a closed and emptied pipe is at its end.
    #[test]
    fn reads_what_is_there_without_waiting() {
        let (read_end, write_end) = nonblocking_pipe();
        let mut frames = FrameBuffer::default();
        let nothing = read_available(read_end.as_raw_fd(), &mut frames);
        assert_eq!(
            nothing,
            Read {
                some: false,
                at_end: false
            }
        );
        let frame = |json: &str| {
            let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(json.as_bytes());
            bytes
        };
        let done = frame(r#"{"done":[[1,1,true,"1","",""]]}"#);
        write(&write_end, &done);
        write(&write_end, &done[..7]);
        let first = read_available(read_end.as_raw_fd(), &mut frames);
        assert!(first.some && !first.at_end);
        assert!(matches!(
            frames.next_message().unwrap(),
            Some(FromSlot::Done(_))
        ));
        assert!(frames.next_message().unwrap().is_none());
        write(&write_end, &done[7..]);
        drop(write_end);
        let rest = read_available(read_end.as_raw_fd(), &mut frames);
        assert!(rest.some);
        let end = read_available(read_end.as_raw_fd(), &mut frames);
        assert!(!end.some && end.at_end);
        assert!(matches!(
            frames.next_message().unwrap(),
            Some(FromSlot::Done(_))
        ));
        assert!(frames.is_empty());
    }
}
