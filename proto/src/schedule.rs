//! Schedules: named recipes that add an ordinary task at fixed intervals or at the times of a
//! cron line. What `schedule add` sends, what `schedule list|show` answers, and what
//! `schedule pause|resume|remove` do.
//!
//! The coordinator parses cron lines and time zones (the CLI and the Python client pass them
//! on as text), so that one parser decides and its errors read the same from every client.
//!
//! These types cross the wire and are stored: changing one breaks compatibility, bump
//! `PROTOCOL_VERSION` and the store's schema version.

use crate::ids::TaskId;
use crate::task::Timestamp;
use serde::{Deserialize, Serialize};

/// How many of its latest tasks a schedule remembers for `schedule show`.
pub const LAST_FIRINGS: usize = 10;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// Every this many milliseconds (at least 1,000), counted from when it was added.
    Every(u64),
    /// At the times of a five-field cron line (`*/5 * * * *`), read in time zone `tz` (an IANA
    /// name such as `Europe/Berlin`; `None` for UTC).
    Cron { line: String, tz: Option<String> },
}

/// What `schedule add` asks for: the schedule's name and trigger, and the task each firing adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Unique among the schedules; named as `queue::check_name` allows.
    pub name: String,
    /// When it fires.
    pub trigger: Trigger,
    /// The task each firing adds, `ready` at once (its `run_at` and `after` must be empty).
    pub task: crate::task::TaskSpec,
}

/// What `schedule pause`, `schedule resume` and `schedule remove` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleChange {
    /// Fire no more until resumed.
    Pause,
    /// Fire again, from the next time due after now (missed times are not made up).
    Resume,
    /// Forget the schedule; the tasks it added stay.
    Remove,
}

/// One schedule as `schedule list|show` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    /// What was asked.
    pub spec: ScheduleSpec,
    /// Whether it is paused.
    pub paused: bool,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it fires next (`None` while paused, or for a cron line with no time left).
    pub next_at: Option<Timestamp>,
    /// How many tasks it has added.
    pub fired: u64,
    /// Its latest tasks with when each was added, newest first, at most `LAST_FIRINGS`.
    pub last: Vec<(TaskId, Timestamp)>,
}

/// Checks a schedule name (the rule of queue names); the error is the sentence a user reads.
pub fn check_name(name: &str) -> Result<(), String> {
    crate::queue::check_label("schedule", name)
}
