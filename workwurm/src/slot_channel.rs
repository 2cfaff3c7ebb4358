//! The framed pipe between workwurm and one slot process: the messages and their bytes.
//!
//! Owns the slot protocol's Rust half; `python/tatzelwurm/slot.py` is the other half and
//! documents the same protocol at its top (keep the two in step). `slot_process` uses it to read
//! a slot's frames and `slots` to encode the tasks it hands out. Nothing here touches a process or a socket, so the
//! framing is unit-tested on plain bytes.
//!
//! Protocol: fd 3 of the slot carries frames from workwurm, fd 4 frames to workwurm (stdin and
//! stdout belong to the task); fd 5 is the lifeline (see `lifeline`), never written; fd 6 is the
//! doorbell, a byte the slot writes after the frames on fd 4 that workwurm should read now (see
//! `doorbell`). A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON, one
//! object with one key:
//! - workwurm → slot: `{"run": [[task, attempt, function, args, kwargs, needs, together], ...]}`,
//!   tasks to run in order after those it holds (several when their functions are fast, see
//!   `slot_table`), each an array whose last two entries are there only when needed (arrays,
//!   not objects, on the per-task path: both sides parse and write them once per task, and
//!   keys cost more than a noop); a task whose `together` is `true` (a coroutine function's)
//!   is started on the slot's event loop at once instead, beside the others running there; a
//!   task with `needs` `[[task, attempt], ...]` (a held task behind the tasks it runs after, see
//!   `slot_table/waits`) runs only if those completed in this slot, else the slot skips it and
//!   says `unmet`;
//!   `{"cancel": [[task, attempt], ...]}`, tasks it holds to skip if it has not begun them;
//!   `{"interrupt": [[task, attempt], ...]}`, together tasks to cancel (their asyncio tasks),
//!   each answered by its `done` when it ended.
//! - slot → workwurm: `{"hello": {"python", "executable", "pid", "capture"}}` once, when the slot
//!   is ready (`capture`: the fds of its stdout and stderr capture files);
//!   then `{"done": [[task, attempt, ok, result, stdout, stderr]]}` as each task ends, before
//!   the slot begins the next one, where `result` is the JSON text of the value when `ok` and
//!   else the error `{"kind", "message", "traceback"}`; `{"skipped": [[task, attempt], ...]}`, the cancelled
//!   tasks it dropped, sent before the `done` after which they would have begun;
//!   `{"coroutines": ["pkg.mod:fn", ...]}`, functions the slot found to be coroutine functions
//!   (a call returned a coroutine; once per function per slot process), sent before that
//!   coroutine runs. A together task's `done` comes whenever it ends, in any order.
//!   `{"unmet": [[task, attempt], ...]}`: tasks skipped because their `needs` were not all
//!   completed, sent in place of their `done` (the next task begins after it).
//!   `{"outgrown": 123456789}`: under `--max-memory`, the slot's resident memory in bytes right
//!   after the task whose `done` it follows, past the limit: the slot begins nothing more and
//!   waits for workwurm to replace it (the task's result stands).
//!
//! `args`, `kwargs` and `result` stay JSON *text* end to end: only Python parses them.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tatzelwurm_proto::task::{Outcome, TaskError, TaskOutput};
use tatzelwurm_proto::worker::{Assignment, Report};
use tatzelwurm_proto::{Attempt, TaskId};
use thiserror::Error;

/// Largest frame a slot may send. Its result is capped at 16 MiB of UTF-8 by slot.py and each
/// output stream at 256 KiB, so a bigger frame means the slot is not speaking our protocol.
pub const MAX_SLOT_FRAME: usize = 64 * 1024 * 1024;

/// The buffer a slot's frames are read into stays allocated up to this size between frames.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// A message from a slot.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum FromSlot {
    /// The slot started and waits for tasks.
    Hello(SlotHello),
    /// Tasks that ended, in order; each `done` is sent before the slot begins its next task.
    Done(Vec<Done>),
    /// Tasks the slot was asked to cancel and dropped without beginning them; sent before the
    /// `done` after which one of them would have begun.
    Skipped(Vec<(u64, u32)>),
    /// Functions the slot found to be coroutine functions (`async def`: a call returned a
    /// coroutine), once per function per slot process, before that coroutine runs.
    Coroutines(Vec<String>),
    /// Tasks the slot skipped because a task their `needs` named had not completed there;
    /// each is sent where its `done` would have been, so the task after it begins next.
    Unmet(Vec<(u64, u32)>),
    /// The slot's resident memory in bytes, past `--max-memory` right after the task it just
    /// reported (sent right after that `done`): it begins nothing more and waits to be replaced;
    /// the tasks it holds were not begun.
    Outgrown(u64),
}

/// What a slot says about itself when it is ready.
#[derive(Debug, Deserialize, PartialEq)]
pub struct SlotHello {
    /// Its Python version, such as `3.11.7`.
    pub python: String,
    /// Its `sys.executable`, logged so that a user can see which interpreter runs the tasks.
    pub executable: String,
    /// Its process id.
    pub pid: u32,
    /// Its fds of the files that capture a task's stdout and stderr, which `captured` opens so
    /// that a task's output outlives a slot killed or crashed under it.
    #[serde(default)]
    pub capture: Option<[i32; 2]>,
}

/// How one task ended in a slot: on the wire `[task, attempt, ok, result, stdout, stderr]`,
/// with the error in the result's place when not `ok` (see the module).
#[derive(Debug, PartialEq)]
pub struct Done {
    /// The task that ran.
    pub task: u64,
    /// The attempt that ran, echoed from the run message.
    pub attempt: u32,
    /// Whether the function returned a JSON-serialisable value.
    pub ok: bool,
    /// The JSON text of the return value, when `ok`.
    pub result: Option<String>,
    /// Why the task failed, when not `ok`.
    pub error: Option<SlotError>,
    /// The tail of what the task wrote to fd 1.
    pub stdout: String,
    /// The tail of what the task wrote to fd 2.
    pub stderr: String,
}

impl<'de> Deserialize<'de> for Done {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Done, D::Error> {
        deserializer.deserialize_seq(DoneVisitor)
    }
}

/// Reads a `done` entry's array: which type its fourth entry has depends on its third.
struct DoneVisitor;

impl<'de> Visitor<'de> for DoneVisitor {
    type Value = Done;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("[task, attempt, ok, result or error, stdout, stderr]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Done, A::Error> {
        let missing = |at| de::Error::invalid_length(at, &self);
        let task = seq.next_element()?.ok_or_else(|| missing(0))?;
        let attempt = seq.next_element()?.ok_or_else(|| missing(1))?;
        let ok = seq.next_element()?.ok_or_else(|| missing(2))?;
        let (result, error) = if ok {
            (Some(seq.next_element()?.ok_or_else(|| missing(3))?), None)
        } else {
            (None, Some(seq.next_element()?.ok_or_else(|| missing(3))?))
        };
        let stdout = seq.next_element()?.ok_or_else(|| missing(4))?;
        let stderr = seq.next_element()?.ok_or_else(|| missing(5))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(7, &self));
        }
        Ok(Done {
            task,
            attempt,
            ok,
            result,
            error,
            stdout,
            stderr,
        })
    }
}

/// A task's failure as Python described it.
#[derive(Debug, Deserialize, PartialEq)]
pub struct SlotError {
    /// The exception's type name.
    pub kind: String,
    /// `str()` of the exception.
    pub message: String,
    /// The formatted traceback.
    #[serde(default)]
    pub traceback: String,
}

#[derive(Serialize)]
struct RunFrame<'a> {
    run: Vec<RunTask<'a>>,
}

/// One task of a run frame, written as the array `[task, attempt, function, args, kwargs,
/// needs, together]` whose last two entries are left out when not needed (see the module).
struct RunTask<'a> {
    task: u64,
    attempt: u32,
    function: &'a str,
    args: &'a str,
    kwargs: &'a str,
    /// Start it on the event loop at once, beside the slot's other together tasks.
    together: bool,
    /// Run it only if these tasks, ahead of it in the slot's hand, completed; else skip it and
    /// say so (`unmet`).
    needs: &'a [(TaskId, Attempt)],
}

impl Serialize for RunTask<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = if self.together {
            7
        } else if !self.needs.is_empty() {
            6
        } else {
            5
        };
        let mut seq = serializer.serialize_seq(Some(len))?;
        seq.serialize_element(&self.task)?;
        seq.serialize_element(&self.attempt)?;
        seq.serialize_element(self.function)?;
        seq.serialize_element(self.args)?;
        seq.serialize_element(self.kwargs)?;
        if len > 5 {
            if self.needs.is_empty() {
                seq.serialize_element(&())?;
            } else {
                seq.serialize_element(&Pairs(self.needs))?;
            }
        }
        if self.together {
            seq.serialize_element(&true)?;
        }
        seq.end()
    }
}

/// `[[task, attempt], ...]` of borrowed ids.
struct Pairs<'a>(&'a [(TaskId, Attempt)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(t, a)| (t.0, a.0)))
    }
}

/// Why bytes from a slot are not a message: the slot is then treated as broken and replaced.
#[derive(Debug, Error)]
pub enum SlotProtocolError {
    /// The length prefix is over `MAX_SLOT_FRAME`.
    #[error("the slot announced a frame of {0} bytes, more than the limit of {MAX_SLOT_FRAME}")]
    TooLarge(usize),
    /// A whole frame arrived that is not a message we know.
    #[error("the slot sent a frame that is not a valid message ({0})")]
    Invalid(#[from] serde_json::Error),
}

/// The frame (length prefix included) that hands `tasks` to a slot, to run in order, or all
/// `together` on its event loop.
pub fn encode_run<'a>(
    tasks: impl IntoIterator<Item = (&'a Assignment, &'a [(TaskId, Attempt)])>,
    together: bool,
) -> Vec<u8> {
    let frame = RunFrame {
        run: tasks
            .into_iter()
            .map(|(a, needs)| RunTask {
                task: a.task.0,
                attempt: a.attempt.0,
                function: &a.spec.function,
                args: &a.spec.args,
                kwargs: &a.spec.kwargs,
                together,
                needs,
            })
            .collect(),
    };
    // Sized for the common case (nothing to escape, few needs) up front, so that a hand of many
    // tasks is not copied again at each doubling of the vector.
    let size: usize = frame
        .run
        .iter()
        .map(|t| t.function.len() + t.args.len() + t.kwargs.len() + 48 + 24 * t.needs.len())
        .sum();
    let mut bytes = Vec::with_capacity(16 + size);
    bytes.extend_from_slice(&[0; 4]);
    // Serialising borrowed strings and integers into a Vec cannot fail.
    serde_json::to_writer(&mut bytes, &frame).expect("a run frame is always serialisable");
    let len = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    bytes
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum AttemptsFrame {
    Cancel(Vec<(u64, u32)>),
    Interrupt(Vec<(u64, u32)>),
}

fn encode_attempts(frame: AttemptsFrame) -> Vec<u8> {
    let mut bytes = vec![0; 4];
    serde_json::to_writer(&mut bytes, &frame).expect("an attempts frame is always serialisable");
    let len = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    bytes
}

fn pairs(attempts: &[(TaskId, Attempt)]) -> Vec<(u64, u32)> {
    attempts.iter().map(|(t, a)| (t.0, a.0)).collect()
}

/// The frame (length prefix included) that asks a slot to skip these tasks it holds and has not
/// begun.
pub fn encode_cancel(attempts: &[(TaskId, Attempt)]) -> Vec<u8> {
    encode_attempts(AttemptsFrame::Cancel(pairs(attempts)))
}

/// The frame (length prefix included) that asks a slot to cancel these tasks it runs together
/// on its event loop.
pub fn encode_interrupt(attempts: &[(TaskId, Attempt)]) -> Vec<u8> {
    encode_attempts(AttemptsFrame::Interrupt(pairs(attempts)))
}

/// Collects bytes read from a slot's pipe and cuts them into messages.
///
/// One read may bring hundreds of small frames; they are cut where they lie (`start` moves on)
/// and the unread rest is moved to the front only before the next read, so cutting a read into
/// frames costs no copying of what follows each frame.
#[derive(Default)]
pub struct FrameBuffer {
    bytes: Vec<u8>,
    /// Where the next frame begins in `bytes`.
    start: usize,
}

impl FrameBuffer {
    /// Where the next read goes; the monitor reads straight into it (appending).
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        &mut self.bytes
    }

    /// The next complete message, `Ok(None)` while more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<FromSlot>, SlotProtocolError> {
        let bytes = &self.bytes[self.start..];
        if bytes.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if len > MAX_SLOT_FRAME {
            return Err(SlotProtocolError::TooLarge(len));
        }
        if bytes.len() < 4 + len {
            let missing = 4 + len - bytes.len();
            self.bytes.reserve(missing);
            return Ok(None);
        }
        let message = serde_json::from_slice(&bytes[4..4 + len]);
        self.start += 4 + len;
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
            if self.bytes.capacity() > KEEP_CAPACITY {
                // One huge result must not pin its buffer for the slot's whole life.
                self.bytes = Vec::new();
            }
        }
        Ok(Some(message?))
    }

    /// Whether bytes of an unfinished frame are left (a slot that died mid-frame).
    pub fn is_empty(&self) -> bool {
        self.start == self.bytes.len()
    }
}

impl Done {
    /// The report the coordinator gets for this task.
    pub fn into_report(self) -> Report {
        let outcome = match (self.ok, self.result, self.error) {
            (true, Some(result), _) => Outcome::Completed { result },
            (_, _, Some(error)) => Outcome::Failed {
                error: TaskError {
                    kind: error.kind,
                    message: error.message,
                    traceback: error.traceback,
                },
            },
            _ => Outcome::Failed {
                error: TaskError {
                    kind: "SlotProtocolError".into(),
                    message: "the slot reported this task without a result or an error".into(),
                    traceback: String::new(),
                },
            },
        };
        Report {
            task: TaskId(self.task),
            attempt: Attempt(self.attempt),
            outcome,
            output: TaskOutput {
                stdout: self.stdout,
                stderr: self.stderr,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::task::TaskSpec;

    fn frame(json: &str) -> Vec<u8> {
        let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes
    }

    /// A run frame carries each task as an array with args and kwargs as JSON text; needs and
    /// together are there only when needed.
    #[test]
    fn run_frame_shape() {
        let assignment = Assignment {
            task: TaskId(12),
            attempt: Attempt(3),
            spec: TaskSpec {
                function: "m:f".into(),
                args: "[1]".into(),
                kwargs: "{}".into(),
                policy: tatzelwurm_proto::task::TaskPolicy::default(),
                ..TaskSpec::default()
            },
        };
        let bytes = encode_run([(&assignment, &[][..])], false);
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 4);
        let value: serde_json::Value = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"run": [[12, 3, "m:f", "[1]", "{}"]]})
        );
        let bytes = encode_run([(&assignment, &[][..])], true);
        let value: serde_json::Value = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"run": [[12, 3, "m:f", "[1]", "{}", null, true]]})
        );
        let needs = [(TaskId(10), Attempt(1)), (TaskId(11), Attempt(2))];
        let bytes = encode_run([(&assignment, &needs[..])], false);
        let value: serde_json::Value = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"run": [[12, 3, "m:f", "[1]", "{}", [[10, 1], [11, 2]]]]})
        );
        let bytes = encode_interrupt(&[(TaskId(12), Attempt(3))]);
        let value: serde_json::Value = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(value, serde_json::json!({"interrupt": [[12, 3]]}));
        let coroutines: FromSlot = serde_json::from_str(r#"{"coroutines":["m:f"]}"#).unwrap();
        assert_eq!(coroutines, FromSlot::Coroutines(vec!["m:f".into()]));
        let outgrown: FromSlot = serde_json::from_str(r#"{"outgrown":123456789}"#).unwrap();
        assert_eq!(outgrown, FromSlot::Outgrown(123_456_789));
    }

    /// Frames split across reads, and two frames in one read, come out whole and in order.
    #[test]
    fn frames_are_cut_at_their_lengths() {
        let mut bytes = frame(r#"{"hello":{"python":"3.11.7","executable":"/p","pid":7}}"#);
        bytes.extend(frame(r#"{"done":[[1,2,true,"5","",""]]}"#));
        let mut buffer = FrameBuffer::default();
        let mut messages = Vec::new();
        for chunk in bytes.chunks(7) {
            buffer.buffer().extend_from_slice(chunk);
            while let Some(message) = buffer.next_message().unwrap() {
                messages.push(message);
            }
        }
        assert!(buffer.is_empty());
        assert!(matches!(&messages[0], FromSlot::Hello(h) if h.python == "3.11.7"));
        let FromSlot::Done(done) = messages.remove(1) else {
            panic!("expected done")
        };
        let report = done.into_iter().next().unwrap().into_report();
        assert_eq!(report.attempt, Attempt(2));
        assert_eq!(report.outcome, Outcome::Completed { result: "5".into() });
    }

    /// A lying length prefix is refused before anything is allocated for it.
    #[test]
    fn oversized_frame_is_refused() {
        let mut buffer = FrameBuffer::default();
        buffer
            .buffer()
            .extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0]);
        assert!(matches!(
            buffer.next_message(),
            Err(SlotProtocolError::TooLarge(_))
        ));
    }

    /// A failed task keeps its exception's kind, message and traceback.
    #[test]
    fn failure_becomes_failed_outcome() {
        let done: Done = serde_json::from_str(
            r#"[1,1,false,{"kind":"ValueError","message":"bad","traceback":"tb"},"o","e"]"#,
        )
        .unwrap();
        let report = done.into_report();
        let Outcome::Failed { error } = report.outcome else {
            panic!("expected failure")
        };
        assert_eq!(
            (error.kind.as_str(), error.message.as_str()),
            ("ValueError", "bad")
        );
        assert_eq!(report.output.stdout, "o");
    }

    /// A `done` entry of the wrong length or with a result of the wrong type for its `ok` is
    /// not a message (the slot is then replaced), not a report with made-up fields.
    #[test]
    fn malformed_done_is_refused() {
        for json in [
            r#"[1,1,true,"5",""]"#,
            r#"[1,1,true,"5","","",7]"#,
            r#"[1,1,true,{"kind":"E","message":"m"},"",""]"#,
            r#"[1,1,false,"5","",""]"#,
            r#"{"task":1,"attempt":1,"ok":true,"result":"5","stdout":"","stderr":""}"#,
        ] {
            assert!(serde_json::from_str::<Done>(json).is_err(), "{json}");
        }
        let done: Done = serde_json::from_str(r#"[7,2,true,"null","out","err"]"#).unwrap();
        assert_eq!(
            (
                done.task,
                done.attempt,
                done.result.as_deref(),
                done.stdout.as_str()
            ),
            (7, 2, Some("null"), "out")
        );
    }
}
