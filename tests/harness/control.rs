//! What the tests of scheduling and control (issue 11) ask through the real CLI: `queue list`,
//! `schedule show|list`, and reading a queue's counts and a schedule's latest tasks out of their
//! `--json` output.
//!
//! The readers of the JSON live here, once, so that the tests say what they check ("2 ready in
//! queue a") and not how the CLI spells it.

use crate::cluster::Cluster;
use crate::wait::wait_for;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl Cluster {
    /// `queue list --json` as a vector of queues.
    pub fn queues(&self) -> Vec<Value> {
        match self.action_json(&["queue", "list", "--json"]) {
            Value::Array(queues) => queues,
            other => panic!("`queue list --json` printed no array: {other}"),
        }
    }

    /// The queue named `name` in `queue list --json`; panics if it is not listed.
    pub fn queue(&self, name: &str) -> Value {
        let queues = self.queues();
        queues
            .iter()
            .find(|q| q["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("queue `{name}` is not in `queue list`: {queues:?}"))
    }

    /// `schedule show NAME --json`.
    pub fn schedule(&self, name: &str) -> Value {
        self.action_json(&["schedule", "show", name, "--json"])
    }

    /// `schedule list --json` as a vector of schedules.
    pub fn schedules(&self) -> Vec<Value> {
        match self.action_json(&["schedule", "list", "--json"]) {
            Value::Array(schedules) => schedules,
            other => panic!("`schedule list --json` printed no array: {other}"),
        }
    }

    /// Waits until schedule `name` has added at least `fired` tasks, and returns it.
    pub fn wait_fired(&self, name: &str, fired: u64, timeout: Duration) -> Value {
        wait_for(
            &format!("schedule {name} to fire {fired} time(s)"),
            timeout,
            || Some(self.schedule(name)).filter(|s| schedule_fired(s) >= fired),
        )
    }
}

/// How many of a queue's tasks (an entry of `queue list --json`) are in `state`. The counts are
/// an object keyed by state (`{"ready": 2, ...}`) or a list of `[state, count]` pairs.
pub fn queue_count(queue: &Value, state: &str) -> u64 {
    let counts = &queue["counts"];
    let found = match counts {
        Value::Object(map) => map.get(state).and_then(Value::as_u64),
        Value::Array(pairs) => pairs.iter().find_map(|pair| {
            if pair[0] == state {
                pair[1].as_u64()
            } else if pair["state"] == state {
                pair["count"].as_u64()
            } else {
                None
            }
        }),
        _ => None,
    };
    found.unwrap_or_else(|| panic!("queue has no count of `{state}`: {queue}"))
}

/// The names of the workers serving a queue (an entry of `queue list --json`).
pub fn queue_workers(queue: &Value) -> Vec<String> {
    queue["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("queue has no list of workers: {queue}"))
        .iter()
        .map(|w| match w {
            Value::String(name) => name.clone(),
            other => other["name"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// How many tasks a schedule (`schedule show --json`) has added.
pub fn schedule_fired(schedule: &Value) -> u64 {
    schedule["fired"]
        .as_u64()
        .unwrap_or_else(|| panic!("schedule has no `fired` count: {schedule}"))
}

/// A schedule's latest tasks (`schedule show --json`), newest first, as (id, seconds since the
/// epoch when it was added). Entries are objects (`{"id": 7, "at": 1.5}`) or `[id, at]` pairs.
pub fn schedule_last(schedule: &Value) -> Vec<(u64, f64)> {
    schedule["last"]
        .as_array()
        .unwrap_or_else(|| panic!("schedule has no `last` list: {schedule}"))
        .iter()
        .map(|entry| {
            let (id, at) = match entry {
                Value::Array(pair) => (pair[0].as_u64(), pair.get(1).and_then(Value::as_f64)),
                other => (
                    other["id"].as_u64().or_else(|| other["task"].as_u64()),
                    other["at"]
                        .as_f64()
                        .or_else(|| other["added_at"].as_f64())
                        .or_else(|| other["created_at"].as_f64()),
                ),
            };
            let id = id.unwrap_or_else(|| panic!("a `last` entry without an id: {entry}"));
            (id, at.unwrap_or(f64::NAN))
        })
        .collect()
}

/// `time` as RFC 3339 in UTC to the second (`2026-12-01T09:00:00Z`), what `task add --at` takes.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .expect("a time after 1970")
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known moments format as their RFC 3339 text, leap days and year ends included.
    #[test]
    fn rfc3339_of_known_moments() {
        let at = |secs: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(at(1_795_942_800), "2026-11-29T09:00:00Z");
    }
}
