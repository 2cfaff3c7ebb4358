//! The body of `POST /api/tasks`: one task object or a list of them, read into `TaskSpec`s.
//!
//! ```json
//! {"function": "mod:f", "args": [1], "kwargs": {"k": 2}, "queue": "default", "priority": 0,
//!  "play": true, "retries": 0, "backoff": 1.0, "timeout": null, "at_most_once": false,
//!  "delay": null, "after": []}
//! ```
//! Only `function` is required; durations are seconds, as the CLI's flags. What the
//! coordinator checks itself (function names, queue names, priorities, `after` ids) is left to
//! it, so the HTTP API refuses exactly what `task add` refuses, with the same sentences.

use super::api_error::ApiError;
use serde::Deserialize;
use serde_json::Value;
use tatzelwurm_proto::limits::MAX_TASKS_PER_ADD;
use tatzelwurm_proto::task::{check_priority, TaskPolicy, TaskSpec, When, DEFAULT_QUEUE};
use tatzelwurm_proto::TaskId;

/// One task of the body, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTask {
    function: String,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    kwargs: Option<Value>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    play: Option<bool>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    backoff: Option<f64>,
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    at_most_once: Option<bool>,
    #[serde(default)]
    delay: Option<f64>,
    #[serde(default)]
    after: Vec<u64>,
}

/// The tasks to add and whether they start `ready` (`play`, the default) or `created`.
#[derive(Debug)]
pub struct Additions {
    /// In the order sent; their ids come back in that order.
    pub tasks: Vec<TaskSpec>,
    /// Whether they are played at once.
    pub play: bool,
}

/// Reads the body; the error says what is wrong and with which task.
pub fn parse(body: &[u8]) -> Result<Additions, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|err| {
        ApiError::bad_request(format!(
            "the body is not JSON ({err}); send a task object such as {{\"function\": \"package.module:function\", \"args\": [1, 2]}} or a list of them"
        ))
    })?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(ApiError::bad_request(
                "the body must be a task object or a list of task objects",
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "the list of tasks is empty; send at least one task object",
        ));
    }
    if items.len() > MAX_TASKS_PER_ADD {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "{} tasks in one add is more than {MAX_TASKS_PER_ADD}; send them in several requests",
                items.len()
            ),
        ));
    }
    let mut play = None;
    let mut tasks = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let what = || format!("task {} of the body", index + 1);
        let new: NewTask = serde_json::from_value(item)
            .map_err(|err| ApiError::bad_request(format!("{}: {err}", what())))?;
        let this_play = new.play.unwrap_or(true);
        if *play.get_or_insert(this_play) != this_play {
            return Err(ApiError::bad_request(format!(
                "{}: every task of one add must have the same `play`; send played and created tasks in separate requests",
                what()
            )));
        }
        tasks.push(spec(new).map_err(|err| ApiError::bad_request(format!("{}: {err}", what())))?);
    }
    Ok(Additions {
        tasks,
        play: play.unwrap_or(true),
    })
}

/// One task's spec; the error is a sentence about that task.
fn spec(new: NewTask) -> Result<TaskSpec, String> {
    let args = match new.args.unwrap_or(Value::Array(Vec::new())) {
        args @ Value::Array(_) => args.to_string(),
        _ => return Err("`args` must be a JSON list of positional arguments".into()),
    };
    let kwargs = match new.kwargs.unwrap_or(Value::Object(Default::default())) {
        kwargs @ Value::Object(_) => kwargs.to_string(),
        _ => return Err("`kwargs` must be a JSON object of keyword arguments".into()),
    };
    let priority = check_priority(new.priority.unwrap_or(0))?;
    let defaults = TaskPolicy::default();
    let policy = TaskPolicy {
        at_most_once: new.at_most_once.unwrap_or(defaults.at_most_once),
        retries: new.retries.unwrap_or(defaults.retries),
        backoff_ms: match new.backoff {
            Some(secs) => millis("backoff", secs)?,
            None => defaults.backoff_ms,
        },
        timeout_ms: new
            .timeout
            .map(|secs| millis("timeout", secs))
            .transpose()?,
        crash_limit: defaults.crash_limit,
    };
    let run_at = new
        .delay
        .map(|secs| millis("delay", secs).map(When::Delay))
        .transpose()?;
    Ok(TaskSpec {
        function: new.function,
        args,
        kwargs,
        policy,
        queue: new.queue.unwrap_or_else(|| DEFAULT_QUEUE.into()),
        priority,
        run_at,
        after: new.after.into_iter().map(TaskId).collect(),
    })
}

/// Seconds as milliseconds; the error names the field.
fn millis(field: &str, secs: f64) -> Result<u64, String> {
    if (0.0..1e12).contains(&secs) {
        Ok((secs * 1000.0).round() as u64)
    } else {
        Err(format!(
            "`{field}` must be a number of seconds, 0 or more, not {secs}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One object with only a function is a played call with empty arguments in the default
    /// queue.
    #[test]
    fn minimal_object() {
        let added = parse(br#"{"function": "m:f"}"#).unwrap();
        assert!(added.play);
        assert_eq!(added.tasks, vec![TaskSpec::call("m:f", "[]", "{}")]);
    }

    /// A list keeps its order and every field reaches the spec, durations in milliseconds.
    #[test]
    fn full_list() {
        let added = parse(
            br#"[{"function": "m:f", "args": [1, "x"], "kwargs": {"k": null}, "queue": "q",
                  "priority": -3, "play": false, "retries": 2, "backoff": 0.5, "timeout": 1.25,
                  "at_most_once": true, "delay": 2, "after": [4]},
                 {"function": "m:g", "play": false}]"#,
        )
        .unwrap();
        assert!(!added.play);
        let first = &added.tasks[0];
        assert_eq!(first.args, r#"[1,"x"]"#);
        assert_eq!(first.kwargs, r#"{"k":null}"#);
        assert_eq!((first.queue.as_str(), first.priority), ("q", -3));
        assert_eq!(first.policy.retries, 2);
        assert_eq!(first.policy.backoff_ms, 500);
        assert_eq!(first.policy.timeout_ms, Some(1250));
        assert!(first.policy.at_most_once);
        assert_eq!(first.run_at, Some(When::Delay(2000)));
        assert_eq!(first.after, vec![TaskId(4)]);
        assert_eq!(added.tasks[1].function, "m:g");
    }

    /// Bodies that are not tasks are refused with a sentence naming the task and the field.
    #[test]
    fn refusals() {
        let message = |body: &[u8]| parse(body).unwrap_err().message;
        assert!(message(b"nope").contains("not JSON"));
        assert!(message(b"[]").contains("empty"));
        assert!(message(b"3").contains("task object"));
        assert!(message(br#"{"args": []}"#).contains("function"));
        assert!(message(br#"{"function": "m:f", "args": {}}"#).contains("`args` must be"));
        assert!(message(br#"{"function": "m:f", "kwargs": []}"#).contains("`kwargs` must be"));
        assert!(message(br#"{"function": "m:f", "priority": 1000}"#).contains("out of range"));
        assert!(message(br#"{"function": "m:f", "timeout": -1}"#).contains("`timeout`"));
        assert!(message(br#"{"function": "m:f", "colour": 1}"#).contains("colour"));
        let mixed = message(br#"[{"function": "m:f"}, {"function": "m:f", "play": false}]"#);
        assert!(
            mixed.contains("task 2") && mixed.contains("same `play`"),
            "{mixed}"
        );
    }
}
