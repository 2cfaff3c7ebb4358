//! The framed pipe between workwurm and one slot process: the messages and their bytes.
//!
//! Owns the slot protocol's Rust half; `python/tatzelwurm/slot.py` is the other half and
//! documents the same protocol at its top (keep the two in step). `slot_process` uses it to read
//! a slot's frames and `slots` to encode the tasks it hands out. Nothing here touches a process or a socket, so the
//! framing is unit-tested on plain bytes.
//!
//! Protocol: fd 3 of the slot carries frames from workwurm, fd 4 frames to workwurm (stdin and
//! stdout belong to the task); fd 5 is the lifeline (see `lifeline`), never written. A frame is a 4-byte big-endian length and that many bytes of UTF-8
//! JSON, one object with one key:
//! - workwurm → slot: `{"run": [{"task", "attempt", "function", "args", "kwargs"}, ...]}`, tasks
//!   to run in order after those it holds (several when their functions are fast, see
//!   `slot_table`); a task with `"together": true` (a coroutine function's) is started on the
//!   slot's event loop at once instead, beside the others running there; a task with
//!   `"needs": [[task, attempt], ...]` (a held task behind the tasks it runs after, see `slot_table/waits`)
//!   runs only if those completed in this slot, else the slot skips it and says `unmet`;
//!   `{"cancel": [[task, attempt], ...]}`, tasks it holds to skip if it has not begun them;
//!   `{"interrupt": [[task, attempt], ...]}`, together tasks to cancel (their asyncio tasks),
//!   each answered by its `done` when it ended.
//! - slot → workwurm: `{"hello": {"python", "executable", "pid", "capture"}}` once, when the slot
//!   is ready (`capture`: the fds of its stdout and stderr capture files);
//!   then `{"done": [{"task", "attempt", "ok", "result" | "error", "stdout", "stderr"}]}` as each
//!   task ends, before the slot begins the next one, where `error` is
//!   `{"kind", "message", "traceback"}`; `{"skipped": [[task, attempt], ...]}`, the cancelled
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

use serde::{Deserialize, Serialize};
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

/// How one task ended in a slot.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Done {
    /// The task that ran.
    pub task: u64,
    /// The attempt that ran, echoed from the run message.
    pub attempt: u32,
    /// Whether the function returned a JSON-serialisable value.
    pub ok: bool,
    /// The JSON text of the return value, when `ok`.
    #[serde(default)]
    pub result: Option<String>,
    /// Why the task failed, when not `ok`.
    #[serde(default)]
    pub error: Option<SlotError>,
    /// The tail of what the task wrote to fd 1.
    #[serde(default)]
    pub stdout: String,
    /// The tail of what the task wrote to fd 2.
    #[serde(default)]
    pub stderr: String,
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

#[derive(Serialize)]
struct RunTask<'a> {
    task: u64,
    attempt: u32,
    function: &'a str,
    args: &'a str,
    kwargs: &'a str,
    /// Start it on the event loop at once, beside the slot's other together tasks.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    together: bool,
    /// Run it only if these tasks, ahead of it in the slot's hand, completed; else skip it and
    /// say so (`unmet`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    needs: Vec<(u64, u32)>,
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
                needs: needs.iter().map(|(t, a)| (t.0, a.0)).collect(),
            })
            .collect(),
    };
    let mut bytes = vec![0; 4];
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

    /// A run frame carries the task's fields with args and kwargs as JSON text.
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
            serde_json::json!({"run": [{"task": 12, "attempt": 3, "function": "m:f",
                                        "args": "[1]", "kwargs": "{}"}]})
        );
        let bytes = encode_run([(&assignment, &[][..])], true);
        let value: serde_json::Value = serde_json::from_slice(&bytes[4..]).unwrap();
        assert_eq!(value["run"][0]["together"], serde_json::json!(true));
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
        bytes.extend(frame(
            r#"{"done":[{"task":1,"attempt":2,"ok":true,"result":"5","stdout":"","stderr":""}]}"#,
        ));
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
            r#"{"task":1,"attempt":1,"ok":false,"error":{"kind":"ValueError","message":"bad","traceback":"tb"},"stdout":"o","stderr":"e"}"#,
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
}
