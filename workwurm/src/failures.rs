//! The failures the worker reports on a task's behalf, when the task could not say how it ended:
//! its slot process died under it (or was replaced under it), it ran past its timeout and was
//! killed, or its slot passed `--max-memory` while it ran and was killed.
//!
//! `slots` builds them; the kinds (`SlotCrashed`, `Timeout`, `MemoryLimit`) are names the coordinator and users
//! match on, so keep them stable.

use std::time::Duration;
use tatzelwurm_proto::task::TaskError;
use tatzelwurm_proto::{Attempt, TaskId};

/// The error of a task whose slot process ended while running it; `how` is
/// `slot_process::describe_exit`'s phrase, such as "was killed by signal 11".
pub fn slot_crashed(how: &str) -> TaskError {
    TaskError {
        kind: "SlotCrashed".into(),
        message: format!(
            "the slot process running this task {how}; the worker started a fresh slot"
        ),
        traceback: String::new(),
    }
}

/// The error of a task that ran together with task `task` (attempt `attempt`) on one slot's
/// event loop when the worker replaced that slot because `task` did not end after its cancel
/// (see `slot_table::together`).
pub fn replaced_beside(task: TaskId, attempt: Attempt) -> TaskError {
    TaskError {
        kind: "SlotCrashed".into(),
        message: format!(
            "the worker replaced the slot process running this task because task {task} \
             (attempt {attempt}), which ran beside it on the same event loop, did not stop within \
             {} s of being cancelled",
            seconds(crate::slot_table::GRACE)
        ),
        traceback: String::new(),
    }
}

/// The error of a task killed for running longer than `limit`.
pub fn timed_out(limit: Duration) -> TaskError {
    TaskError {
        kind: "Timeout".into(),
        message: format!(
            "the task ran longer than its timeout of {} s and was killed",
            seconds(limit)
        ),
        traceback: String::new(),
    }
}

/// The error of a task whose slot passed `workwurm --max-memory` (`limit` bytes) while it ran,
/// at `rss` bytes; the worker killed the slot (see `slot_table::memory`).
pub fn memory_limit(limit: u64, rss: u64) -> TaskError {
    TaskError {
        kind: tatzelwurm_proto::task::MEMORY_LIMIT.into(),
        message: format!(
            "the slot process running this task used {} MB of resident memory, past the \
             worker's --max-memory {} MB; the worker killed it and started a fresh slot",
            megabytes(rss),
            megabytes(limit)
        ),
        traceback: String::new(),
    }
}

/// Bytes as MB (MiB, as `--max-memory` counts them): whole above 10, else with one decimal.
pub fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / crate::cli::MB as f64;
    if mb >= 10.0 || mb.fract() == 0.0 {
        format!("{}", mb.round() as u64)
    } else {
        format!("{mb:.1}")
    }
}

/// Seconds as a person writes them: `2.5`, `60`, `0.001` (millisecond precision, no trailing
/// zeros).
fn seconds(duration: Duration) -> String {
    let millis = duration.as_millis();
    let (whole, fraction) = (millis / 1000, millis % 1000);
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:03}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timeouts read the way they were given on the command line.
    #[test]
    fn seconds_are_written_plainly() {
        let cases = [
            (2_500, "2.5"),
            (500, "0.5"),
            (60_000, "60"),
            (1, "0.001"),
            (1_230, "1.23"),
            (3_600_000, "3600"),
            (0, "0"),
        ];
        for (millis, text) in cases {
            assert_eq!(seconds(Duration::from_millis(millis)), text, "{millis} ms");
        }
        assert_eq!(
            timed_out(Duration::from_millis(2_500)).message,
            "the task ran longer than its timeout of 2.5 s and was killed"
        );
    }

    /// The memory limit's sentence names the limit and the resident memory seen, in MB.
    #[test]
    fn memory_limit_names_limit_and_rss() {
        let error = memory_limit(100 * 1024 * 1024, 163 * 1024 * 1024 + 1);
        assert_eq!(error.kind, "MemoryLimit");
        assert_eq!(
            error.message,
            "the slot process running this task used 163 MB of resident memory, past the \
             worker's --max-memory 100 MB; the worker killed it and started a fresh slot"
        );
        assert_eq!(megabytes(1536 * 1024), "1.5");
        assert_eq!(megabytes(3 * 1024 * 1024), "3");
    }
}
