//! The live output rules without a slot: what a look reads, cut characters, skipping ahead,
//! the start over after a task, and how the session gathers chunks into frames.

use super::*;
use tatzelwurm_proto::{Attempt, TaskId};

/// Reads `size` bytes' worth of `file` for stream `which` as a look would, returning the text.
fn look(cursor: &mut LiveCursor, which: usize, file: &[u8]) -> Option<String> {
    let read = cursor.plan(which, file.len() as u64)?;
    let bytes = &file[read.from as usize..(read.from + read.len) as usize];
    cursor.accept(which, read, bytes)
}

/// Each look forwards what grew since the last one, per stream; a file that did not grow
/// costs nothing; after a task's `done` the emptied files are read from their start.
#[test]
fn forwards_what_grew_per_stream() {
    let mut cursor = LiveCursor::default();
    assert_eq!(look(&mut cursor, 0, b""), None);
    assert_eq!(look(&mut cursor, 0, b"one\n").as_deref(), Some("one\n"));
    assert_eq!(look(&mut cursor, 0, b"one\n"), None);
    assert_eq!(look(&mut cursor, 1, b"err").as_deref(), Some("err"));
    assert_eq!(
        look(&mut cursor, 0, b"one\ntwo\n").as_deref(),
        Some("two\n")
    );
    cursor.task_ended();
    assert_eq!(look(&mut cursor, 0, b"next\n").as_deref(), Some("next\n"));
    assert_eq!(look(&mut cursor, 1, b"e2").as_deref(), Some("e2"));
}

/// A character whose bytes are not all written yet waits for the next look; bytes that are not
/// UTF-8 at all are replaced, not held back.
#[test]
fn a_cut_character_waits_for_its_rest() {
    let mut cursor = LiveCursor::default();
    let text = "grün ✓ 🐉".as_bytes();
    // Cut inside ü (2 bytes), ✓ (3 bytes) and 🐉 (4 bytes).
    let cuts = [3, 8, text.len() - 2];
    let mut seen = String::new();
    for cut in cuts {
        if let Some(part) = look(&mut cursor, 0, &text[..cut]) {
            seen.push_str(&part);
        }
        assert!(seen.len() < cut, "a cut character went out at {cut}");
    }
    seen.push_str(&look(&mut cursor, 0, text).unwrap());
    assert_eq!(seen, "grün ✓ 🐉");
    assert_eq!(
        look(&mut cursor, 1, b"a\xffb").as_deref(),
        Some("a\u{fffd}b")
    );
    assert_eq!(whole_characters(b"\xe2\x9c"), 0);
    assert_eq!(whole_characters(b"abc"), 3);
}

/// A task writing more than `LIVE_MAX` between two looks is skipped ahead, and the skip is said
/// in the stream; a file emptied by the task itself is read from its start.
#[test]
fn skips_ahead_and_starts_over() {
    let mut cursor = LiveCursor::default();
    let big = vec![b'x'; LIVE_MAX as usize + 10];
    let text = look(&mut cursor, 0, &big).unwrap();
    assert!(
        text.starts_with("[tatzelwurm: 10 bytes not streamed]\n"),
        "{}",
        &text[..60]
    );
    assert_eq!(text.len() - text.find('\n').unwrap() - 1, LIVE_MAX as usize);
    assert_eq!(look(&mut cursor, 0, b"fresh").as_deref(), Some("fresh"));
}

fn chunk_of(task: u64, which: usize, text: &str) -> OutputChunk {
    chunk((TaskId(task), Attempt(1)), which, text.to_string())
}

/// Chunks of one attempt and stream are joined, others kept apart in order; nothing is due
/// until a chunk came, then `OUTPUT_LINGER` after the first.
#[test]
fn the_batch_joins_and_is_due_after_the_linger() {
    let mut batch = OutputBatch::default();
    assert_eq!(batch.due(), None);
    let now = Instant::now();
    batch.push(vec![chunk_of(1, 0, "a"), chunk_of(2, 0, "x")], now);
    batch.push(
        vec![chunk_of(1, 0, "b"), chunk_of(1, 1, "e"), chunk_of(3, 0, "")],
        now + Duration::from_millis(50),
    );
    assert_eq!(batch.due(), Some(now + OUTPUT_LINGER));
    let frames = batch.take();
    assert_eq!(frames.len(), 1);
    let texts: Vec<(u64, OutputStream, &str)> = frames[0]
        .iter()
        .map(|c| (c.task.0, c.stream, c.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            (1, OutputStream::Stdout, "ab"),
            (2, OutputStream::Stdout, "x"),
            (1, OutputStream::Stderr, "e")
        ]
    );
    assert_eq!(batch.due(), None);
    assert!(batch.take().is_empty());
}

/// More text than one frame carries is cut into several frames, none over the byte bound.
#[test]
fn big_batches_are_cut_into_frames() {
    let mut batch = OutputBatch::default();
    let part = "y".repeat(MAX_OUTPUT_FRAME_BYTES / 2 + 1);
    batch.push(
        vec![
            chunk_of(1, 0, &part),
            chunk_of(2, 0, &part),
            chunk_of(3, 0, &part),
        ],
        Instant::now(),
    );
    let frames = batch.take();
    assert_eq!(frames.len(), 3);
    for frame in &frames {
        assert!(frame.iter().map(|c| c.text.len()).sum::<usize>() <= MAX_OUTPUT_FRAME_BYTES);
    }
}
