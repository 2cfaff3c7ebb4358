//! Queues: named lanes of tasks, each served by the workers that name it. What `queue list`
//! shows of one, the changes `queue pause|resume|limit` make, and the naming rule that the
//! coordinator, the CLI and the Python client share.
//!
//! These types cross the wire: changing one breaks compatibility, bump `PROTOCOL_VERSION`.

use crate::task::{TaskState, DEFAULT_QUEUE};
use serde::{Deserialize, Serialize};

/// The longest queue (or schedule) name, in bytes: names show in tables and log lines.
pub const MAX_QUEUE_NAME: usize = 64;

/// Checks a queue name: 1 to `MAX_QUEUE_NAME` letters, digits, `_`, `-` or `.`. The error is
/// the sentence a user reads.
pub fn check_name(name: &str) -> Result<(), String> {
    check_label("queue", name)
}

/// The naming rule of queues and schedules; `what` names which in the error.
pub(crate) fn check_label(what: &str, name: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > MAX_QUEUE_NAME || !name.chars().all(fine) {
        return Err(format!(
            "`{}` is not a {what} name; use 1 to {MAX_QUEUE_NAME} letters, digits, `_`, `-` or `.`, such as `{DEFAULT_QUEUE}` or `nightly-report`",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// What `queue pause`, `queue resume` and `queue limit` do to one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueChange {
    /// Dispatch nothing new from it; running tasks go on.
    Pause,
    /// Dispatch from it again.
    Resume,
    /// At most this many of its tasks run at once across all workers (prefetched ones
    /// included); 0 removes the limit.
    Limit(u32),
}

/// One queue as `queue list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    /// Its name.
    pub name: String,
    /// Whether dispatch from it is paused.
    pub paused: bool,
    /// At most this many of its tasks run at once; 0 for no limit.
    pub limit: u32,
    /// How many of its tasks are in each state, every state of `TaskState::ALL` in that
    /// order (zero included).
    pub counts: Vec<(TaskState, u64)>,
    /// Names of the connected workers that serve it.
    pub workers: Vec<String>,
}

impl QueueInfo {
    /// How many of its tasks are in `state`.
    pub fn count(&self, state: TaskState) -> u64 {
        self.counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names of the allowed alphabet and length pass; empty, long, spaced and odd ones are
    /// refused with a sentence that says what is allowed.
    #[test]
    fn queue_names() {
        for good in [
            "default",
            "gpu-jobs",
            "a",
            "q.1_x",
            &"x".repeat(MAX_QUEUE_NAME),
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "ä", "a/b", &"x".repeat(MAX_QUEUE_NAME + 1)] {
            let err = check_name(bad).unwrap_err();
            assert!(err.contains("letters, digits"), "{err}");
        }
    }
}
