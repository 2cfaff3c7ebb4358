//! The lifeline: one pipe whose write end only workwurm holds, so that its end of file tells every
//! slot's guardian that workwurm is gone, however it died.
//!
//! `lib::run_until` makes one through [`SlotCommand::new`](crate::slot_process::SlotCommand::new)
//! and `slot_process` hands its read end to every slot as fd 5. slot.py forks a guardian process at
//! start that blocks reading fd 5; nothing is ever written, so the read returns only when the last
//! write end closes, which the kernel does when workwurm exits, even by `kill -9`. The guardian
//! then SIGKILLs the slot's process group: the slot and every process its task started.
//!
//! Both ends are close-on-exec and above fd 10: no child process inherits the write end (a copy in
//! a child would keep the pipe open after workwurm died), and the read end cannot be overwritten
//! when a child's pipes are moved onto fds 3, 4 and 6.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The slot's fd on which its guardian waits for workwurm's end.
pub const LIFELINE_FD: RawFd = 5;

/// The pipe; dropping it closes workwurm's write end (what the slot tests do to play workwurm's
/// death) once no copy of the [`SlotCommand`](crate::slot_process::SlotCommand) holds it.
#[derive(Debug)]
pub struct Lifeline {
    read: OwnedFd,
    /// Never written: held only so that the kernel closes it when workwurm dies.
    _write: OwnedFd,
}

impl Lifeline {
    /// Creates the pipe.
    pub fn new() -> io::Result<Lifeline> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two fds into the array we pass.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Lifeline {
            read: dup_above(&read, 10)?,
            _write: dup_above(&write, 10)?,
        })
    }

    /// The read end, to be moved onto [`LIFELINE_FD`] in a new slot.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

/// A close-on-exec copy of `fd` numbered `min` or higher.
pub(crate) fn dup_above(fd: &OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new fd that we then own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}
