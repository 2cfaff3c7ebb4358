//! `Hub`: what running attempts have written so far, and who follows which task, as a plain
//! struct tested without channels (`logs/tests.rs`); the `logs` actor owns one.
//!
//! Each attempt that sends output keeps, per stream, how many bytes it has written in all and
//! the tail of them (`KEEP_BYTES`, as the report's kept output keeps), so that a follower who
//! comes late gets what is kept so far and the byte offset it starts at. Every piece handed to
//! a follower carries its offset too: a follower that fell behind and was dropped catches up
//! from a later snapshot without showing a byte twice (`log_follow::shown`).
//!
//! A worker that cannot keep up with a task's writing skips ahead and says so at the head of
//! the chunk (`[tatzelwurm: N bytes not streamed]`, workwurm's `live_output`): the hub counts
//! those N bytes as written and not held, so offsets stay those of the task's file, and a
//! follower's own note says what it did not see.
//!
//! Bounds: an attempt holds at most `2 × KEEP_BYTES`; a worker at most the attempts its
//! connection allows (`output`'s `most`: its units of slots, twice, since a new attempt may
//! write before the previous one's report is through); a follower's queue is the actor's
//! bounded channel, and a follower whose queue is full is dropped rather than waited for (its
//! sink says so), so output never waits on a reader. An attempt is forgotten when its report passes (`ended`) or its worker is gone.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use tatzelwurm_proto::task::TaskOutput;
use tatzelwurm_proto::worker::{OutputChunk, OutputStream};
use tatzelwurm_proto::{Attempt, TaskId, WorkerId};

/// How much of each stream an attempt keeps: its tail, as a task's kept output keeps it
/// (`KEEP_BYTES` in slot.py), so 512 KiB an attempt.
pub const KEEP_BYTES: usize = 256 * 1024;

/// A piece of a task's output, as a follower gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// `text` is what `attempt` wrote to `stream` from byte `start` of that stream on.
    Text {
        /// The attempt that wrote it.
        attempt: Attempt,
        /// Which stream.
        stream: OutputStream,
        /// Its offset in everything the attempt wrote to the stream.
        start: u64,
        /// What was written.
        text: String,
    },
    /// `attempt` ended and was reported; `output` is what its report keeps, which may hold
    /// the last bytes that no `Text` carried.
    Ended {
        /// The attempt that ended.
        attempt: Attempt,
        /// Its kept output.
        output: TaskOutput,
    },
}

/// Where the hub hands pieces to one follower. `offer` must not wait: `false` means the
/// follower cannot take more now (or is gone), and the hub drops it.
pub trait PieceSink {
    /// Hands `piece` over if there is room; `false` if not.
    fn offer(&mut self, piece: Piece) -> bool;
}

/// Ended attempts remembered, so that output of one arriving after its report (a worker that
/// sends its last chunk late) is not held again as if it ran.
const REMEMBER_ENDED: usize = 4096;

/// Numbers followers, so one can leave without the others.
pub type FollowerId = u64;

/// One stream of one attempt: how much it wrote and the tail of it.
#[derive(Debug, Default)]
struct Tail {
    /// Bytes written in all.
    written: u64,
    /// The last of them, at most `KEEP_BYTES` (cut at a character boundary).
    text: String,
}

impl Tail {
    /// `skipped` bytes were written that the worker did not forward: what is held no longer
    /// ends where the next text begins, so it is let go.
    fn skip(&mut self, skipped: u64) {
        self.written += skipped;
        self.text.clear();
    }

    /// Appends `text`; returns the offset it starts at.
    fn push(&mut self, text: &str) -> u64 {
        let start = self.written;
        self.written += text.len() as u64;
        self.text.push_str(text);
        if self.text.len() > KEEP_BYTES {
            let cut = tail_start(&self.text);
            self.text.drain(..cut);
        }
        start
    }

    /// The offset of the first byte still held.
    fn start(&self) -> u64 {
        self.written - self.text.len() as u64
    }
}

/// The note workwurm puts before a chunk when it skipped ahead of a fast writer:
/// `[tatzelwurm: N bytes not streamed]` and a newline; the bytes skipped and the note's length.
fn not_streamed(text: &str) -> Option<(u64, usize)> {
    const HEAD: &str = "[tatzelwurm: ";
    const TAIL: &str = " bytes not streamed]\n";
    let rest = text.strip_prefix(HEAD)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let skipped = rest[..digits].parse().ok()?;
    rest[digits..].strip_prefix(TAIL)?;
    Some((skipped, HEAD.len() + digits + TAIL.len()))
}

/// Where the last `KEEP_BYTES` of `text` begin, moved on to a character boundary (0 when it
/// is no longer than that).
fn tail_start(text: &str) -> usize {
    let mut cut = text.len().saturating_sub(KEEP_BYTES);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    cut
}

/// What one running attempt has written.
#[derive(Debug)]
struct Live {
    /// The worker connection running it, which alone may add to it.
    worker: WorkerId,
    /// Stdout and stderr.
    streams: [Tail; 2],
}

/// The index of a stream in `Live::streams`.
fn index(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

/// The live output and its followers. See the module comment.
#[derive(Debug)]
pub struct Hub<S> {
    /// Attempts that wrote something and have not ended, by task and attempt.
    live: BTreeMap<(TaskId, Attempt), Live>,
    /// How many of `live` each worker runs.
    per_worker: HashMap<WorkerId, usize>,
    /// The followers of each task.
    followers: HashMap<TaskId, Vec<(FollowerId, S)>>,
    /// The next follower's id.
    next_follower: FollowerId,
    /// The last `REMEMBER_ENDED` attempts that ended, oldest first, and as a set.
    ended_order: VecDeque<(TaskId, Attempt)>,
    ended_set: HashSet<(TaskId, Attempt)>,
}

impl<S> Default for Hub<S> {
    fn default() -> Self {
        Hub {
            live: BTreeMap::new(),
            per_worker: HashMap::new(),
            followers: HashMap::new(),
            next_follower: 1,
            ended_order: VecDeque::new(),
            ended_set: HashSet::new(),
        }
    }
}

impl<S: PieceSink> Hub<S> {
    /// `worker` sent these chunks: each is kept and handed to its task's followers. Returns
    /// how many chunks were dropped because the worker already has `most` attempts held (a
    /// worker sends output only of attempts it runs, so an honest one never meets that) or
    /// because another worker runs that attempt.
    pub fn output(&mut self, worker: WorkerId, most: usize, chunks: Vec<OutputChunk>) -> usize {
        let mut dropped = 0;
        for chunk in chunks {
            let key = (chunk.task, chunk.attempt);
            let live = match self.live.get_mut(&key) {
                Some(live) if live.worker == worker => live,
                Some(_) => {
                    dropped += 1;
                    continue;
                }
                None if self.ended_set.contains(&key) => continue,
                None => {
                    let count = self.per_worker.entry(worker).or_default();
                    if *count >= most.max(1) {
                        dropped += 1;
                        continue;
                    }
                    *count += 1;
                    self.live.entry(key).or_insert(Live {
                        worker,
                        streams: Default::default(),
                    })
                }
            };
            let tail = &mut live.streams[index(chunk.stream)];
            let mut text = chunk.text;
            if let Some((skipped, note)) = not_streamed(&text) {
                tail.skip(skipped);
                text.drain(..note);
            }
            if text.is_empty() {
                continue;
            }
            let start = tail.push(&text);
            if self.followers.contains_key(&chunk.task) {
                // A chunk longer than what is kept is handed on as its tail too (the offset
                // says what was left out), so no piece outgrows what a frame can carry.
                let mut start = start;
                if text.len() > KEEP_BYTES {
                    let cut = tail_start(&text);
                    text.drain(..cut);
                    start += cut as u64;
                }
                let piece = Piece::Text {
                    attempt: chunk.attempt,
                    stream: chunk.stream,
                    start,
                    text,
                };
                self.offer(chunk.task, piece);
            }
        }
        dropped
    }

    /// These attempts were reported (each with its kept output): their followers are told,
    /// and they are forgotten.
    pub fn ended(&mut self, worker: WorkerId, ended: Vec<(TaskId, Attempt, TaskOutput)>) {
        for (task, attempt, output) in ended {
            let key = (task, attempt);
            if self.live.get(&key).is_none_or(|live| live.worker != worker) {
                continue;
            }
            self.forget(key);
            self.remember(key);
            if self.followers.contains_key(&task) {
                self.offer(task, Piece::Ended { attempt, output });
            }
        }
    }

    /// `worker`'s connection ended: what its attempts wrote is forgotten (a lost attempt has no
    /// report; its task's followers see its next attempt, or its end).
    pub fn worker_gone(&mut self, worker: WorkerId) {
        if self.per_worker.remove(&worker).is_none() {
            return;
        }
        self.live.retain(|_, live| live.worker != worker);
    }

    /// What `task`'s running attempts have written so far and is still held, per attempt in
    /// order, stdout before stderr.
    pub fn snapshot(&self, task: TaskId) -> Vec<Piece> {
        let range = (task, Attempt(0))..=(task, Attempt(u32::MAX));
        let mut pieces = Vec::new();
        for ((_, attempt), live) in self.live.range(range) {
            for stream in [OutputStream::Stdout, OutputStream::Stderr] {
                let tail = &live.streams[index(stream)];
                if !tail.text.is_empty() {
                    pieces.push(Piece::Text {
                        attempt: *attempt,
                        stream,
                        start: tail.start(),
                        text: tail.text.clone(),
                    });
                }
            }
        }
        pieces
    }

    /// Adds a follower of `task`, whose pieces go to `sink` from now on; returns its id and
    /// what is held so far (`snapshot`), so that nothing falls between the two.
    pub fn follow(&mut self, task: TaskId, sink: S) -> (FollowerId, Vec<Piece>) {
        let id = self.next_follower;
        self.next_follower += 1;
        self.followers.entry(task).or_default().push((id, sink));
        (id, self.snapshot(task))
    }

    /// Removes follower `id` of `task` (gone already if it was dropped).
    pub fn unfollow(&mut self, task: TaskId, id: FollowerId) {
        if let Some(list) = self.followers.get_mut(&task) {
            list.retain(|(f, _)| *f != id);
            if list.is_empty() {
                self.followers.remove(&task);
            }
        }
    }

    /// How many attempts are held (for tests and the log).
    pub fn held(&self) -> usize {
        self.live.len()
    }

    /// How many followers there are.
    pub fn followers(&self) -> usize {
        self.followers.values().map(Vec::len).sum()
    }

    /// Hands `piece` to every follower of `task`; one that cannot take it is dropped.
    fn offer(&mut self, task: TaskId, piece: Piece) {
        let Some(list) = self.followers.get_mut(&task) else {
            return;
        };
        list.retain_mut(|(_, sink)| sink.offer(piece.clone()));
        if list.is_empty() {
            self.followers.remove(&task);
        }
    }

    /// Remembers that `key` ended, forgetting the oldest beyond `REMEMBER_ENDED`.
    fn remember(&mut self, key: (TaskId, Attempt)) {
        if self.ended_set.insert(key) {
            self.ended_order.push_back(key);
            if self.ended_order.len() > REMEMBER_ENDED {
                if let Some(old) = self.ended_order.pop_front() {
                    self.ended_set.remove(&old);
                }
            }
        }
    }

    /// Forgets one attempt.
    fn forget(&mut self, key: (TaskId, Attempt)) {
        if let Some(live) = self.live.remove(&key) {
            if let Some(count) = self.per_worker.get_mut(&live.worker) {
                *count -= 1;
            }
        }
    }
}
