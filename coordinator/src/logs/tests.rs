//! The hub's rules without channels: what an attempt keeps, offsets, followers that keep up,
//! fall behind or leave, reports and lost workers, and the per-worker bound.

use super::hub::{Hub, Piece, PieceSink, KEEP_BYTES};
use tatzelwurm_proto::task::TaskOutput;
use tatzelwurm_proto::worker::{OutputChunk, OutputStream};
use tatzelwurm_proto::{Attempt, TaskId, WorkerId};

/// A follower in a test: takes up to `room` pieces, then refuses.
#[derive(Debug, Default)]
struct Taken {
    pieces: std::rc::Rc<std::cell::RefCell<Vec<Piece>>>,
    room: usize,
}

impl PieceSink for Taken {
    fn offer(&mut self, piece: Piece) -> bool {
        let mut pieces = self.pieces.borrow_mut();
        if pieces.len() >= self.room {
            return false;
        }
        pieces.push(piece);
        true
    }
}

/// A follower with room for `room` pieces and a view of what it took.
fn follower(room: usize) -> (Taken, std::rc::Rc<std::cell::RefCell<Vec<Piece>>>) {
    let taken = Taken {
        room,
        ..Default::default()
    };
    let seen = taken.pieces.clone();
    (taken, seen)
}

const W1: WorkerId = WorkerId(1);
const W2: WorkerId = WorkerId(2);
const T: TaskId = TaskId(7);

fn chunk(task: TaskId, attempt: u32, stream: OutputStream, text: &str) -> OutputChunk {
    OutputChunk {
        task,
        attempt: Attempt(attempt),
        stream,
        text: text.into(),
    }
}

fn out(text: &str) -> OutputChunk {
    chunk(T, 1, OutputStream::Stdout, text)
}

fn text(attempt: u32, stream: OutputStream, start: u64, text: &str) -> Piece {
    Piece::Text {
        attempt: Attempt(attempt),
        stream,
        start,
        text: text.into(),
    }
}

/// A late follower gets what was written so far with its offset, then each later chunk with
/// the offset it starts at; stdout and stderr count apart.
#[test]
fn snapshot_then_pieces_with_offsets() {
    let mut hub: Hub<Taken> = Hub::default();
    assert_eq!(hub.output(W1, 4, vec![out("one\n"), out("two\n")]), 0);
    hub.output(W1, 4, vec![chunk(T, 1, OutputStream::Stderr, "warn\n")]);
    let (sink, seen) = follower(10);
    let (_, snapshot) = hub.follow(T, sink);
    assert_eq!(
        snapshot,
        vec![
            text(1, OutputStream::Stdout, 0, "one\ntwo\n"),
            text(1, OutputStream::Stderr, 0, "warn\n"),
        ]
    );
    hub.output(W1, 4, vec![out("three\n")]);
    hub.output(
        W1,
        4,
        vec![chunk(TaskId(8), 1, OutputStream::Stdout, "other")],
    );
    assert_eq!(
        *seen.borrow(),
        vec![text(1, OutputStream::Stdout, 8, "three\n")],
        "only its task's pieces, at the offset after the snapshot"
    );
}

/// An attempt keeps the tail of each stream, at most `KEEP_BYTES`, and its offset counts
/// everything written; the cut falls on a character boundary.
#[test]
fn keeps_the_tail() {
    let mut hub: Hub<Taken> = Hub::default();
    let big = "é".repeat(KEEP_BYTES / 2 + 11);
    hub.output(W1, 4, vec![out("ab"), out(&big)]);
    let written = 2 + big.len() as u64;
    let snapshot = hub.snapshot(T);
    let [Piece::Text { start, text, .. }] = snapshot.as_slice() else {
        panic!("one piece: {snapshot:?}");
    };
    assert!(text.len() <= KEEP_BYTES && text.len() > KEEP_BYTES - 4);
    assert_eq!(*start + text.len() as u64, written);
    assert!(text.chars().all(|c| c == 'é'));
}

/// A chunk longer than what is kept reaches a follower as its tail, at the offset of that tail.
#[test]
fn a_huge_chunk_is_handed_on_as_its_tail() {
    let mut hub: Hub<Taken> = Hub::default();
    let (sink, seen) = follower(10);
    hub.follow(T, sink);
    hub.output(W1, 4, vec![out("ab")]);
    let huge = "x".repeat(KEEP_BYTES + 100);
    hub.output(W1, 4, vec![out(&huge)]);
    let seen = seen.borrow();
    let Some(Piece::Text { start, text, .. }) = seen.last() else {
        panic!("a piece: {seen:?}");
    };
    assert_eq!(*start, 2 + 100);
    assert_eq!(text.len(), KEEP_BYTES);
}

/// A chunk the worker sent after skipping ahead counts the skipped bytes (the offsets stay the
/// file's) and lets go of what was held before the gap; the note itself is not text.
#[test]
fn skipped_bytes_move_the_offset() {
    let mut hub: Hub<Taken> = Hub::default();
    let (sink, seen) = follower(10);
    hub.follow(T, sink);
    hub.output(W1, 4, vec![out("abc")]);
    hub.output(
        W1,
        4,
        vec![out("[tatzelwurm: 1000 bytes not streamed]\nxyz")],
    );
    assert_eq!(
        seen.borrow().last(),
        Some(&text(1, OutputStream::Stdout, 1003, "xyz"))
    );
    assert_eq!(
        hub.snapshot(T),
        vec![text(1, OutputStream::Stdout, 1003, "xyz")]
    );
    hub.output(W1, 4, vec![out("[tatzelwurm: x bytes not streamed]\n")]);
    let snapshot = hub.snapshot(T);
    let [Piece::Text { text, .. }] = snapshot.as_slice() else {
        panic!("one piece: {snapshot:?}");
    };
    assert!(
        text.starts_with("xyz[tatzelwurm: x"),
        "not a note: kept as text"
    );
}

/// A follower that cannot take a piece is dropped; the others keep getting theirs, and the
/// dropped one may follow again and gets a snapshot.
#[test]
fn a_full_follower_is_dropped() {
    let mut hub: Hub<Taken> = Hub::default();
    let (slow, slow_seen) = follower(1);
    let (fast, fast_seen) = follower(10);
    hub.follow(T, slow);
    hub.follow(T, fast);
    hub.output(W1, 4, vec![out("a"), out("b"), out("c")]);
    assert_eq!(slow_seen.borrow().len(), 1);
    assert_eq!(fast_seen.borrow().len(), 3);
    assert_eq!(hub.followers(), 1);
    let (again, _) = follower(10);
    let (_, snapshot) = hub.follow(T, again);
    assert_eq!(snapshot, vec![text(1, OutputStream::Stdout, 0, "abc")]);
}

/// A report of an attempt that wrote output tells its followers (with the kept output) and
/// forgets it; a report from another worker, or of an attempt never seen, changes nothing.
#[test]
fn ended_attempts_are_forgotten() {
    let mut hub: Hub<Taken> = Hub::default();
    let (sink, seen) = follower(10);
    hub.follow(T, sink);
    hub.output(W1, 4, vec![out("x")]);
    let kept = TaskOutput {
        stdout: "xy".into(),
        stderr: String::new(),
    };
    hub.ended(W2, vec![(T, Attempt(1), kept.clone())]);
    hub.ended(W1, vec![(T, Attempt(5), kept.clone())]);
    assert_eq!(hub.held(), 1);
    hub.ended(W1, vec![(T, Attempt(1), kept.clone())]);
    assert_eq!(hub.held(), 0);
    assert_eq!(
        seen.borrow().last(),
        Some(&Piece::Ended {
            attempt: Attempt(1),
            output: kept
        })
    );
    assert!(hub.snapshot(T).is_empty());
    hub.output(W1, 4, vec![out("late")]);
    assert_eq!(hub.held(), 0, "output after the report is not held again");
}

/// A worker holds at most `most` attempts, and may not write into another worker's; its end
/// forgets its attempts and frees its count.
#[test]
fn per_worker_bound_and_worker_gone() {
    let mut hub: Hub<Taken> = Hub::default();
    let chunks = (1..=3)
        .map(|n| chunk(TaskId(n), 1, OutputStream::Stdout, "x"))
        .collect();
    assert_eq!(hub.output(W1, 2, chunks), 1, "the third attempt is over");
    assert_eq!(hub.held(), 2);
    assert_eq!(
        hub.output(W2, 2, vec![chunk(TaskId(1), 1, OutputStream::Stdout, "y")]),
        1,
        "another worker's attempt"
    );
    hub.output(W2, 2, vec![chunk(TaskId(9), 1, OutputStream::Stdout, "z")]);
    hub.worker_gone(W1);
    assert_eq!(hub.held(), 1);
    assert!(hub.snapshot(TaskId(1)).is_empty());
    let chunks = (1..=2)
        .map(|n| chunk(TaskId(n), 2, OutputStream::Stdout, "x"))
        .collect();
    assert_eq!(hub.output(W1, 2, chunks), 0, "a new connection starts at 0");
}

/// Several attempts of one task are snapshot in attempt order; unfollow stops the pieces.
#[test]
fn attempts_in_order_and_unfollow() {
    let mut hub: Hub<Taken> = Hub::default();
    hub.output(W2, 4, vec![chunk(T, 2, OutputStream::Stdout, "second")]);
    hub.output(W1, 4, vec![chunk(T, 1, OutputStream::Stdout, "first")]);
    let (sink, seen) = follower(10);
    let (id, snapshot) = hub.follow(T, sink);
    assert_eq!(
        snapshot,
        vec![
            text(1, OutputStream::Stdout, 0, "first"),
            text(2, OutputStream::Stdout, 0, "second"),
        ]
    );
    hub.unfollow(T, id);
    hub.output(W2, 4, vec![chunk(T, 2, OutputStream::Stdout, "more")]);
    assert!(seen.borrow().is_empty());
    assert_eq!(hub.followers(), 0);
}
