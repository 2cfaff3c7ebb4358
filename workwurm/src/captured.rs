//! Rescuing what a task wrote when its slot dies under it: killed, timed out, or crashed.
//!
//! While a task runs, slot.py points its fds 1 and 2 at two temporary files and sends their tail
//! with the result; a slot that dies mid-task sends nothing, and its files vanish with it. So when
//! a slot says hello (with the numbers of those files' fds), `slots` opens them through
//! `/proc/<pid>/fd/<n>` ([`Captured::open`]) and keeps them for the slot's life; when the slot
//! dies running a task, [`Captured::tail`] reads what that task wrote. slot.py empties the files
//! after each task, so they hold the running task's output only. The slot's watcher opens them
//! too and reads what grows while a task runs ([`Captured::sizes`], [`Captured::read`]), for
//! live output (see `live_output`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use tatzelwurm_proto::task::TaskOutput;

/// How much of each stream is kept: its tail, as slot.py keeps it (`KEEP_BYTES` there).
const KEEP_BYTES: u64 = 256 * 1024;

/// Workwurm's own handles on one slot's capture files (stdout, stderr).
#[derive(Debug)]
pub struct Captured {
    files: [File; 2],
}

impl Captured {
    /// Opens the capture files that slot process `pid` holds as `fds`. Fails when they are not
    /// regular files (reading a pipe could block the pool) or /proc does not let us in.
    pub fn open(pid: i32, fds: [i32; 2]) -> io::Result<Captured> {
        let open = |fd: i32| -> io::Result<File> {
            let file = File::open(format!("/proc/{pid}/fd/{fd}"))?;
            if !file.metadata()?.is_file() {
                return Err(io::Error::other(format!(
                    "fd {fd} of slot {pid} is not a regular file"
                )));
            }
            Ok(file)
        };
        Ok(Captured {
            files: [open(fds[0])?, open(fds[1])?],
        })
    }

    /// The tails of what the running task wrote so far, at most 256 KiB of each, with the note
    /// slot.py puts before a cut. Reads at most 512 KiB of files that the page cache holds.
    pub fn tail(&self) -> TaskOutput {
        TaskOutput {
            stdout: tail(&self.files[0]),
            stderr: tail(&self.files[1]),
        }
    }
}

impl Captured {
    /// The two files' sizes now (stdout, stderr); 0 for one that cannot be looked at.
    pub fn sizes(&self) -> [u64; 2] {
        let size = |file: &File| file.metadata().map_or(0, |m| m.len());
        [size(&self.files[0]), size(&self.files[1])]
    }

    /// Up to `len` bytes of stream `which` (0 stdout, 1 stderr) from `from`; fewer if the file
    /// is shorter by now.
    pub fn read(&self, which: usize, from: u64, len: u64) -> Vec<u8> {
        read_range(&self.files[which], from, len)
    }
}

/// Up to `len` bytes of `file` from `from`.
fn read_range(file: &File, from: u64, len: u64) -> Vec<u8> {
    let mut bytes = vec![0; len as usize];
    let mut filled = 0;
    while filled < bytes.len() {
        match file.read_at(&mut bytes[filled..], from + filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    bytes.truncate(filled);
    bytes
}

fn tail(file: &File) -> String {
    let Ok(size) = file.metadata().map(|m| m.len()) else {
        return String::new();
    };
    let start = size.saturating_sub(KEEP_BYTES);
    let bytes = read_range(file, start, size - start);
    let text = String::from_utf8_lossy(&bytes);
    if start > 0 {
        format!("[tatzelwurm: {start} earlier bytes not kept]\n{text}")
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// The files are found through /proc and read from the end; a long one keeps its tail with a
    /// note of what was cut, and a file the slot empties reads as empty.
    #[test]
    fn reads_the_tail_of_another_fd() {
        let mut out = tempfile::tempfile().unwrap();
        let mut err = tempfile::tempfile().unwrap();
        out.write_all(b"hello\n").unwrap();
        err.write_all(&vec![b'x'; 300 * 1024]).unwrap();
        let pid = std::process::id() as i32;
        let captured = Captured::open(pid, [out.as_raw_fd(), err.as_raw_fd()]).unwrap();
        let output = captured.tail();
        assert_eq!(output.stdout, "hello\n");
        let note = format!("[tatzelwurm: {} earlier bytes not kept]\n", 44 * 1024);
        assert!(output.stderr.starts_with(&note));
        assert_eq!(output.stderr.len(), note.len() + 256 * 1024);
        assert_eq!(captured.sizes(), [6, 300 * 1024]);
        assert_eq!(captured.read(0, 2, 10), b"llo\n");
        out.set_len(0).unwrap();
        assert_eq!(captured.tail().stdout, "");
    }

    /// Something that is not a regular file is refused rather than read.
    #[test]
    fn refuses_a_socket() {
        let (read, _write) = std::os::unix::net::UnixStream::pair().unwrap();
        let pid = std::process::id() as i32;
        let fd = read.as_raw_fd();
        assert!(Captured::open(pid, [fd, fd]).is_err());
    }
}
