//! Live output: what a running task writes to stdout and stderr, forwarded while it runs so
//! that `actionwurm task logs --follow` shows it as it is written.
//!
//! slot.py points fds 1 and 2 at two capture files for as long as the slot lives and empties
//! them after each task (see `captured` and slot.py's "Output"); so live output needs nothing
//! from the slot and costs a task that prints nothing nothing at all. Every [`LIVE_EVERY`] the
//! slot's watcher (`slot_process::watch`) looks at the files' sizes and reads what grew since it
//! last looked ([`LiveCursor`]); the pool names the task that wrote it (the one the slot runs,
//! see `SlotTable::live_target`), and the session gathers the chunks of all slots for up to
//! [`OUTPUT_LINGER`] into `FromWorker::Output` frames ([`OutputBatch`]). A line a task writes so
//! reaches the coordinator within about half a second, even if it writes nothing more.
//!
//! Which task wrote what: slot.py empties the files before it sends a task's `done`, and begins
//! the next task only after that. The watcher reads the files first and then looks whether the
//! slot's pipe holds anything unread; only if it holds nothing (no `done` on its way) do the
//! bytes go out, after every frame the slot sent before them, so the pool sees them when its
//! table shows the task that wrote them. Otherwise they are read again at the next look.
//! A `done` puts the cursor back to the start of the emptied files.
//!
//! What is not live: output of tasks a slot runs together (`async def`; slot.py keeps it per
//! task in memory and sends it with the task's `done`). Python's own `sys.stdout` is
//! line-buffered in a slot, so each `print` reaches the file at once, and libc's stdout is
//! unbuffered, so each `printf` of C code does too.

use std::time::Duration;
use tatzelwurm_proto::worker::{OutputChunk, OutputStream};
use tokio::time::Instant;

/// How often a slot's watcher looks at its capture files while the slot lives.
pub const LIVE_EVERY: Duration = Duration::from_millis(200);

/// How long the session gathers chunks before it sends them in one `Output` frame.
pub const OUTPUT_LINGER: Duration = Duration::from_millis(100);

/// Most bytes of one stream read at one look; a task writing faster than this skips ahead (the
/// report still carries the tail that is kept).
pub const LIVE_MAX: u64 = 256 * 1024;

/// Most text in one `Output` frame, far below the frame limit.
pub const MAX_OUTPUT_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// How far one slot's two capture files have been forwarded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LiveCursor {
    /// Bytes of each file (stdout, stderr) already forwarded, or skipped.
    sent: [u64; 2],
}

/// What to read from one capture file at a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Where to start reading.
    pub from: u64,
    /// How many bytes.
    pub len: u64,
    /// Bytes between what was forwarded and `from` that are left out (the task wrote faster
    /// than [`LIVE_MAX`] per look).
    pub skipped: u64,
}

impl LiveCursor {
    /// What to read of stream `which` (0 stdout, 1 stderr) whose file is `size` bytes now;
    /// `None` when nothing new is there.
    pub fn plan(&mut self, which: usize, size: u64) -> Option<Read> {
        if size < self.sent[which] {
            // Emptied by something other than a `done` we saw (a task that truncated its own
            // stdout): start over.
            self.sent[which] = 0;
        }
        let sent = self.sent[which];
        if size == sent {
            return None;
        }
        let from = sent.max(size.saturating_sub(LIVE_MAX));
        Some(Read {
            from,
            len: size - from,
            skipped: from - sent,
        })
    }

    /// The text of `bytes`, read as `read` planned for stream `which`, and the cursor moved past
    /// it; a character cut at the end is left for the next look. `None` when nothing whole was
    /// read.
    pub fn accept(&mut self, which: usize, read: Read, bytes: &[u8]) -> Option<String> {
        let whole = whole_characters(bytes);
        self.sent[which] = read.from + whole as u64;
        if whole == 0 && read.skipped == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&bytes[..whole]);
        Some(if read.skipped > 0 {
            format!("[tatzelwurm: {} bytes not streamed]\n{text}", read.skipped)
        } else {
            text.into_owned()
        })
    }

    /// The slot reported a task: it emptied the files, the next task writes from the start.
    pub fn task_ended(&mut self) {
        self.sent = [0, 0];
    }
}

/// How many bytes at the front of `bytes` end on a character boundary: all, unless the last
/// one to three bytes begin a UTF-8 sequence that is not complete yet.
fn whole_characters(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(3) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            // A continuation byte: its lead is further back.
            continue;
        }
        let needed = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needed > back { len - back } else { len };
    }
    len
}

/// The output chunks the session gathers between two `Output` frames.
#[derive(Debug, Default)]
pub struct OutputBatch {
    chunks: Vec<OutputChunk>,
    /// When the first chunk of this batch came.
    since: Option<Instant>,
}

impl OutputBatch {
    /// Adds chunks that came at `now`; one that continues the last chunk of the same attempt
    /// and stream is joined to it.
    pub fn push(&mut self, chunks: Vec<OutputChunk>, now: Instant) {
        for chunk in chunks {
            if chunk.text.is_empty() {
                continue;
            }
            self.since.get_or_insert(now);
            let same = |c: &&mut OutputChunk| {
                (c.task, c.attempt, c.stream) == (chunk.task, chunk.attempt, chunk.stream)
            };
            match self.chunks.iter_mut().rev().find(same) {
                Some(last) if last.text.len() + chunk.text.len() <= MAX_OUTPUT_FRAME_BYTES => {
                    last.text.push_str(&chunk.text)
                }
                _ => self.chunks.push(chunk),
            }
        }
    }

    /// When the gathered chunks are to be sent; `None` when there are none.
    pub fn due(&self) -> Option<Instant> {
        self.since.map(|since| since + OUTPUT_LINGER)
    }

    /// The gathered chunks cut into frames (by [`MAX_OUTPUT_FRAME_BYTES`] and the protocol's
    /// item cap), emptied.
    pub fn take(&mut self) -> Vec<Vec<OutputChunk>> {
        self.since = None;
        let mut frames = Vec::new();
        let mut frame: Vec<OutputChunk> = Vec::new();
        let mut bytes = 0;
        for chunk in std::mem::take(&mut self.chunks) {
            let full = frame.len() >= tatzelwurm_proto::limits::MAX_REPORTS_PER_FRAME
                || bytes + chunk.text.len() > MAX_OUTPUT_FRAME_BYTES;
            if full && !frame.is_empty() {
                frames.push(std::mem::take(&mut frame));
                bytes = 0;
            }
            bytes += chunk.text.len();
            frame.push(chunk);
        }
        if !frame.is_empty() {
            frames.push(frame);
        }
        frames
    }
}

/// A chunk of `text` that attempt `attempt` of `task` wrote to `which` (0 stdout, 1 stderr).
pub fn chunk(
    (task, attempt): (tatzelwurm_proto::TaskId, tatzelwurm_proto::Attempt),
    which: usize,
    text: String,
) -> OutputChunk {
    OutputChunk {
        task,
        attempt,
        stream: if which == 0 {
            OutputStream::Stdout
        } else {
            OutputStream::Stderr
        },
        text,
    }
}

#[cfg(test)]
mod tests;
