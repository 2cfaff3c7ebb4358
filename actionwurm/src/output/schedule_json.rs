//! One schedule as scripts read it from `schedule list|show --json`: its trigger (`every` in
//! seconds, or `cron` and `tz`), the task each firing adds, its state, and its latest tasks.

use serde::Serialize;
use serde_json::Value;
use tatzelwurm_proto::json::{json_value, PolicyJson};
use tatzelwurm_proto::schedule::{ScheduleInfo, Trigger};
use tatzelwurm_proto::task::Timestamp;

/// A schedule: trigger fields flat (`every` or `cron`, the other null), the task's fields as
/// in a task's JSON, times in seconds since the epoch, `last` newest first.
#[derive(Debug, Serialize)]
pub struct ScheduleJson<'a> {
    name: &'a str,
    /// Seconds between firings, or null for a cron schedule.
    every: Option<f64>,
    /// The cron line, or null for an interval.
    cron: Option<&'a str>,
    /// The time zone of the cron line, or null for UTC (and for an interval).
    tz: Option<&'a str>,
    function: &'a str,
    args: Value,
    kwargs: Value,
    queue: &'a str,
    priority: i8,
    policy: PolicyJson,
    paused: bool,
    created_at: f64,
    /// When it fires next; null while paused or when a cron line has no time left.
    next_at: Option<f64>,
    /// How many tasks it has added.
    fired: u64,
    /// Its latest tasks, newest first.
    last: Vec<FiringJson>,
}

/// One task a firing added, and when.
#[derive(Debug, Serialize)]
struct FiringJson {
    id: u64,
    at: f64,
}

impl<'a> ScheduleJson<'a> {
    /// The JSON of a schedule.
    pub fn new(info: &'a ScheduleInfo) -> ScheduleJson<'a> {
        let spec = &info.spec;
        let (every, cron, tz) = match &spec.trigger {
            Trigger::Every(millis) => (Some(*millis as f64 / 1000.0), None, None),
            Trigger::Cron { line, tz } => (None, Some(line.as_str()), tz.as_deref()),
        };
        ScheduleJson {
            name: &spec.name,
            every,
            cron,
            tz,
            function: &spec.task.function,
            args: json_value(&spec.task.args),
            kwargs: json_value(&spec.task.kwargs),
            queue: &spec.task.queue,
            priority: spec.task.priority,
            policy: PolicyJson::new(&spec.task.policy),
            paused: info.paused,
            created_at: info.created_at.as_secs_f64(),
            next_at: info.next_at.map(Timestamp::as_secs_f64),
            fired: info.fired,
            last: info
                .last
                .iter()
                .map(|(id, at)| FiringJson {
                    id: id.0,
                    at: at.as_secs_f64(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_client::fake_coordinator::schedule;

    /// An interval schedule has `every` in seconds, null cron fields, and its latest tasks as
    /// `{id, at}` objects, newest first.
    #[test]
    fn every_schedule_json() {
        let info = schedule("nightly");
        let json = serde_json::to_value(ScheduleJson::new(&info)).unwrap();
        assert_eq!(json["name"], "nightly");
        assert_eq!(json["every"].as_f64(), Some(300.0));
        assert_eq!(json["cron"], Value::Null);
        assert_eq!(json["tz"], Value::Null);
        assert_eq!(json["function"], "examples.words:count");
        assert_eq!(json["args"], serde_json::json!(["a b c"]));
        assert_eq!(json["queue"], "default");
        assert_eq!(json["priority"], 0);
        assert_eq!(json["paused"], false);
        assert_eq!(json["next_at"].as_f64(), Some(1_795_485_012.0));
        assert_eq!(json["fired"], 2);
        assert_eq!(
            json["last"],
            serde_json::json!([{"id": 8, "at": 1_795_484_712.0}, {"id": 7, "at": 1_795_484_412.0}])
        );
        assert_eq!(json["policy"]["retries"], 0);
    }

    /// A cron schedule has its line and zone, and a null `every`.
    #[test]
    fn cron_schedule_json() {
        let mut info = schedule("hourly");
        info.spec.trigger = Trigger::Cron {
            line: "0 * * * *".into(),
            tz: Some("Europe/Berlin".into()),
        };
        info.next_at = None;
        let json = serde_json::to_value(ScheduleJson::new(&info)).unwrap();
        assert_eq!(json["every"], Value::Null);
        assert_eq!(json["cron"], "0 * * * *");
        assert_eq!(json["tz"], "Europe/Berlin");
        assert_eq!(json["next_at"], Value::Null);
    }
}
