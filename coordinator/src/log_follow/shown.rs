//! `Shown`: how far one `task logs` request has shown each stream of each attempt, so that
//! pieces that overlap (a snapshot taken after a follower fell behind, the report's kept output
//! after the live pieces) show every byte once and a gap says how much is missing. A plain
//! struct, tested below.
//!
//! Offsets count the bytes of an attempt's stream as the worker sent them (`logs::Piece`).
//! The kept output of an ended attempt is its tail: it says where it starts when earlier
//! bytes were cut (`[tatzelwurm: N earlier bytes not kept]`, slot.py's note), so the part
//! beyond what was shown is found by offset too, when the text just before that offset is the
//! text last shown. It may not be: a worker skips ahead when a task writes faster than it
//! forwards, so the live count falls behind the file's; an async task's kept output is cut by
//! characters with no offset (`[tatzelwurm: earlier output not kept]`). Then the last text
//! shown (up to `TAIL_CHECK` bytes) is looked for in the kept output, and what follows it is
//! the rest. Once an attempt's kept output is merged, that stream is complete: later pieces of
//! it are not shown.

use std::collections::HashMap;
use tatzelwurm_proto::task::TaskOutput;
use tatzelwurm_proto::worker::{OutputChunk, OutputStream};
use tatzelwurm_proto::{Attempt, TaskId};

/// The note a kept output starts with when the head of a stream was cut at a known offset.
const CUT_PREFIX: &str = "[tatzelwurm: ";
const CUT_SUFFIX: &str = " earlier bytes not kept]\n";

/// The note of a kept output cut at an unknown offset (an async task's).
const CUT_UNKNOWN: &str = "[tatzelwurm: earlier output not kept]\n";

/// How much of the text last shown of a stream is remembered, to find where the kept output
/// goes on from it.
const TAIL_CHECK: usize = 1024;

/// What was shown of one attempt's stream.
#[derive(Debug, Default)]
struct Stream {
    /// Bytes shown (or skipped with a note), by the offsets pieces carry.
    offset: u64,
    /// The last text shown, at most `TAIL_CHECK` bytes.
    tail: String,
    /// The kept output was merged: the stream is complete.
    complete: bool,
}

impl Stream {
    /// Remembers `text` as shown last.
    fn showed(&mut self, text: &str) {
        if text.len() >= TAIL_CHECK {
            self.tail = text[start_of_tail(text)..].to_string();
        } else {
            self.tail.push_str(text);
            if self.tail.len() > TAIL_CHECK {
                let cut = start_of_tail(&self.tail);
                self.tail.drain(..cut);
            }
        }
    }

    /// The note before text that starts at byte `start`, past what was shown: slot.py's own
    /// words when nothing was shown (the head was not kept), else how much is not shown here;
    /// on a line of its own.
    fn gap(&self, start: u64) -> String {
        let missing = start - self.offset;
        if self.offset == 0 {
            format!("{CUT_PREFIX}{missing}{CUT_SUFFIX}")
        } else {
            format!("{}[tatzelwurm: {missing} bytes written meanwhile are not shown; `task show` has the kept output once the task ends]\n", self.line_break())
        }
    }

    /// A newline if the text shown last ends inside a line, so a note starts a line.
    fn line_break(&self) -> &'static str {
        if self.tail.is_empty() || self.tail.ends_with('\n') {
            ""
        } else {
            "\n"
        }
    }

    /// Whether the kept `body` starting at byte `start` goes on from what was shown: the
    /// text before the shown offset is the text shown last.
    fn aligned(&self, start: u64, body: &str) -> bool {
        let Some(at) = self.offset.checked_sub(start) else {
            return false;
        };
        let at = at as usize;
        if at > body.len() || !body.is_char_boundary(at) {
            return false;
        }
        let head = &body[..at];
        if head.len() >= self.tail.len() {
            head.ends_with(self.tail.as_str())
        } else {
            self.tail.ends_with(head)
        }
    }
}

/// Where the last `TAIL_CHECK` bytes of `text` begin, at a character boundary.
fn start_of_tail(text: &str) -> usize {
    let mut cut = text.len().saturating_sub(TAIL_CHECK);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    cut
}

/// What one request has shown. See the module comment.
#[derive(Debug)]
pub struct Shown {
    /// The task the chunks are of.
    task: TaskId,
    /// What was shown of each attempt's stream.
    streams: HashMap<(Attempt, OutputStream), Stream>,
}

impl Shown {
    /// Nothing shown yet of `task`.
    pub fn new(task: TaskId) -> Shown {
        Shown {
            task,
            streams: HashMap::new(),
        }
    }

    /// The chunk to show for `text`, which `attempt` wrote to `stream` from byte `start` on:
    /// the part not shown yet, after a note if bytes before it were never shown; `None` if all
    /// of it was.
    pub fn text(
        &mut self,
        attempt: Attempt,
        stream: OutputStream,
        start: u64,
        text: &str,
    ) -> Option<OutputChunk> {
        let shown = self.streams.entry((attempt, stream)).or_default();
        let end = start + text.len() as u64;
        if shown.complete || end <= shown.offset {
            return None;
        }
        let text = if start > shown.offset {
            let note = shown.gap(start);
            // What follows a gap does not go on from the text shown before it.
            shown.tail.clear();
            shown.showed(text);
            format!("{note}{text}")
        } else {
            let mut cut = (shown.offset - start) as usize;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            shown.showed(&text[cut..]);
            text[cut..].to_string()
        };
        shown.offset = end;
        (!text.is_empty()).then(|| self.chunk(attempt, stream, text))
    }

    /// The chunks to show for `attempt`'s kept output (its report's, or `task show`'s): what
    /// it holds beyond what was shown of each stream, stdout first. Those streams are complete
    /// from then on.
    pub fn kept(&mut self, attempt: Attempt, output: &TaskOutput) -> Vec<OutputChunk> {
        let streams = [
            (OutputStream::Stdout, output.stdout.as_str()),
            (OutputStream::Stderr, output.stderr.as_str()),
        ];
        let mut chunks = Vec::new();
        for (stream, kept) in streams {
            if kept.is_empty() {
                continue;
            }
            let shown = self.streams.entry((attempt, stream)).or_default();
            let rest = rest_of(shown, kept);
            shown.complete = true;
            if let Some(rest) = rest.filter(|rest| !rest.is_empty()) {
                chunks.push(self.chunk(attempt, stream, rest));
            }
        }
        chunks
    }

    fn chunk(&self, attempt: Attempt, stream: OutputStream, text: String) -> OutputChunk {
        OutputChunk {
            task: self.task,
            attempt,
            stream,
            text,
        }
    }
}

/// What `kept` adds to what `shown` holds (see the module comment); `None` when it is all
/// shown already.
fn rest_of(shown: &Stream, kept: &str) -> Option<String> {
    if shown.complete {
        return None;
    }
    if shown.offset == 0 && shown.tail.is_empty() {
        return Some(kept.to_string());
    }
    let (start, body) = match cut_at(kept) {
        Cut::At(start, body) => (Some(start), body),
        Cut::Unknown => (None, &kept[CUT_UNKNOWN.len()..]),
    };
    if let Some(start) = start.filter(|start| shown.aligned(*start, body)) {
        return Some(body[(shown.offset - start) as usize..].to_string());
    }
    if let Some(at) = resume_at(&shown.tail, body) {
        return Some(body[at..].to_string());
    }
    // Nothing shown is in the kept tail: it begins after all of it.
    Some(match start {
        Some(start) if start > shown.offset => format!("{}{body}", shown.gap(start)),
        _ => format!(
            "{}[tatzelwurm: the output went on past what was shown here; its kept tail follows]\n{body}",
            shown.line_break()
        ),
    })
}

/// Overlaps shorter than this are not trusted to place the kept output after the text shown
/// last (a newline or two would match almost anywhere).
const MIN_OVERLAP: usize = 8;

/// Where `body` goes on from `tail` (the text shown last): after the last place `tail` is
/// found in it, or, when `body` begins inside `tail`, after the longest start of `body` that
/// ends `tail` (at least `MIN_OVERLAP` bytes, or all of a shorter `tail`). `None`: no overlap.
fn resume_at(tail: &str, body: &str) -> Option<usize> {
    if tail.is_empty() {
        return None;
    }
    if let Some(at) = body.rfind(tail) {
        return Some(at + tail.len());
    }
    let longest = tail.len().min(body.len());
    (MIN_OVERLAP.min(tail.len())..=longest)
        .rev()
        .find(|p| body.is_char_boundary(*p) && tail.ends_with(&body[..*p]))
}

/// Where a kept output starts in its stream.
#[derive(Debug, PartialEq, Eq)]
enum Cut<'a> {
    /// At this byte, with this text after the note.
    At(u64, &'a str),
    /// Somewhere unknown (an async task's output).
    Unknown,
}

fn cut_at(kept: &str) -> Cut<'_> {
    if kept.starts_with(CUT_UNKNOWN) {
        return Cut::Unknown;
    }
    let parsed = kept.strip_prefix(CUT_PREFIX).and_then(|rest| {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let body = rest[digits..].strip_prefix(CUT_SUFFIX)?;
        Some((rest[..digits].parse().ok()?, body))
    });
    match parsed {
        Some((start, body)) => Cut::At(start, body),
        None => Cut::At(0, kept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A1: Attempt = Attempt(1);
    const OUT: OutputStream = OutputStream::Stdout;
    const ERR: OutputStream = OutputStream::Stderr;

    fn texts(chunks: &[OutputChunk]) -> Vec<&str> {
        chunks.iter().map(|c| c.text.as_str()).collect()
    }

    /// Pieces in order are shown whole; an overlapping one only past what was shown; one
    /// wholly shown not at all; the streams count apart.
    #[test]
    fn overlaps_are_shown_once() {
        let mut shown = Shown::new(TaskId(3));
        assert_eq!(shown.text(A1, OUT, 0, "abc").unwrap().text, "abc");
        assert_eq!(shown.text(A1, OUT, 1, "bcde").unwrap().text, "de");
        assert!(shown.text(A1, OUT, 0, "abcde").is_none());
        assert_eq!(shown.text(A1, ERR, 0, "e").unwrap().text, "e");
        let chunk = shown.text(Attempt(2), OUT, 0, "new").unwrap();
        assert_eq!((chunk.task, chunk.attempt), (TaskId(3), Attempt(2)));
    }

    /// A piece past what was shown says how much fell between; a cut inside a character
    /// moves on to the next one.
    #[test]
    fn gaps_and_character_boundaries() {
        let mut shown = Shown::new(TaskId(3));
        let first = shown.text(A1, OUT, 10, "late").unwrap().text;
        assert_eq!(first, "[tatzelwurm: 10 earlier bytes not kept]\nlate");
        let next = shown.text(A1, OUT, 20, "x").unwrap().text;
        assert!(next.contains(" 6 bytes written meanwhile"), "{next}");
        // "é" is two bytes; byte 21 is inside the first of them.
        assert_eq!(shown.text(A1, OUT, 20, "ééz").unwrap().text, "éz");
    }

    /// A note after text that ended inside a line starts a line of its own; after a gap, the
    /// kept output goes on from the text shown after the gap.
    #[test]
    fn notes_start_a_line_and_gaps_reset_the_tail() {
        let mut shown = Shown::new(TaskId(3));
        shown.text(A1, OUT, 0, "abc");
        let after = shown.text(A1, OUT, 100, "0123456789\n").unwrap().text;
        assert!(after.starts_with("\n[tatzelwurm: 97 bytes"), "{after:?}");
        let kept = TaskOutput {
            stdout: "[tatzelwurm: 105 earlier bytes not kept]\n56789\nmore\n".into(),
            stderr: String::new(),
        };
        assert_eq!(texts(&shown.kept(A1, &kept)), ["more\n"]);
    }

    /// The kept output adds what the live pieces did not carry; cut by slot.py at a known
    /// offset, it is matched by that offset; shown whole when nothing was shown.
    #[test]
    fn kept_output_completes_the_live_pieces() {
        let mut shown = Shown::new(TaskId(3));
        shown.text(A1, OUT, 0, "one\ntwo\n");
        let kept = TaskOutput {
            stdout: "one\ntwo\nthree\n".into(),
            stderr: "oops\n".into(),
        };
        assert_eq!(texts(&shown.kept(A1, &kept)), ["three\n", "oops\n"]);
        assert!(shown.kept(A1, &kept).is_empty(), "shown once");

        let mut fresh = Shown::new(TaskId(3));
        let cut = TaskOutput {
            stdout: "[tatzelwurm: 5 earlier bytes not kept]\nfghij".into(),
            stderr: String::new(),
        };
        assert_eq!(texts(&fresh.kept(A1, &cut)), [cut.stdout.as_str()]);

        let mut partly = Shown::new(TaskId(3));
        partly.text(A1, OUT, 0, "abcdefg");
        assert_eq!(texts(&partly.kept(A1, &cut)), ["hij"]);
    }

    /// A kept output with no offset (an async task's) goes on from where the text last shown
    /// is found in it; shown whole when nothing was; after a note when nothing shown is in it.
    #[test]
    fn unknown_cuts() {
        let kept = TaskOutput {
            stdout: format!("{CUT_UNKNOWN}one\ntwo\nthree\n"),
            stderr: String::new(),
        };
        let mut fresh = Shown::new(TaskId(1));
        assert_eq!(texts(&fresh.kept(A1, &kept)), [kept.stdout.as_str()]);
        let mut seen = Shown::new(TaskId(1));
        seen.text(A1, OUT, 0, "zero\none\ntwo\n");
        assert_eq!(texts(&seen.kept(A1, &kept)), ["three\n"]);
        let mut other = Shown::new(TaskId(1));
        other.text(A1, OUT, 0, "nothing alike");
        let rest = other.kept(A1, &kept);
        assert!(rest[0].text.ends_with("]\none\ntwo\nthree\n"), "{rest:?}");
        assert_eq!(
            cut_at("[tatzelwurm: x earlier"),
            Cut::At(0, "[tatzelwurm: x earlier")
        );
    }

    /// When the live count fell behind the real one (the worker skipped ahead of a fast
    /// writer), the kept output's offset does not match what was shown; where the last text
    /// shown is found in it decides the rest, so nothing is shown twice.
    #[test]
    fn kept_output_after_the_worker_skipped() {
        let mut shown = Shown::new(TaskId(3));
        // The worker skipped 10 bytes before "a": live offsets count from "a" at 0.
        shown.text(A1, OUT, 0, "a\nb\nc\n");
        let kept = TaskOutput {
            stdout: "[tatzelwurm: 10 earlier bytes not kept]\na\nb\nc\nd\n".into(),
            stderr: String::new(),
        };
        assert_eq!(texts(&shown.kept(A1, &kept)), ["d\n"]);
        assert!(
            shown.text(A1, OUT, 6, "d\n").is_none(),
            "a complete stream takes no more pieces"
        );
    }

    /// A reader that was dropped and saw only the start of the stream gets the kept tail after
    /// a note counting what lies between.
    #[test]
    fn kept_output_after_a_gap() {
        let mut shown = Shown::new(TaskId(3));
        shown.text(A1, OUT, 0, "head\n");
        let kept = TaskOutput {
            stdout: "[tatzelwurm: 100 earlier bytes not kept]\ntail\n".into(),
            stderr: String::new(),
        };
        let rest = shown.kept(A1, &kept);
        assert_eq!(rest.len(), 1);
        assert!(
            rest[0].text.contains(" 95 bytes written meanwhile"),
            "{rest:?}"
        );
        assert!(rest[0].text.ends_with("]\ntail\n"), "{rest:?}");
    }
}
