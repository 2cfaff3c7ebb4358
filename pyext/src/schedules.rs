//! Schedules for Python: the `ScheduleSpec` that `Client.schedule` sends, built from its
//! checked arguments, and `ScheduleInfo` as the dict `tatzelwurm.ScheduleInfo` is made from.
//!
//! The name and the function are checked here with the coordinator's own rules (so the
//! sentences match); the trigger (at least 1 s between firings, the cron line's fields, the
//! time zone) is the coordinator's to check: it alone parses cron lines.

use crate::convert::{error, secs};
use crate::options::Options;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tatzelwurm_proto::function::check_function;
use tatzelwurm_proto::schedule::{check_name, ScheduleChange, ScheduleInfo, ScheduleSpec, Trigger};

/// What `Client.schedule` asks for, as the protocol carries it: `every_ms` or `cron` (with an
/// optional `tz`), and the task each firing adds (`options` give its queue, priority and
/// policy; the Python layer has refused a delay, a start time and `after`).
#[allow(clippy::too_many_arguments)]
pub fn spec(
    py: Python<'_>,
    name: String,
    every_ms: Option<u64>,
    cron: Option<String>,
    tz: Option<String>,
    function: String,
    args: String,
    kwargs: String,
    options: &Options,
) -> PyResult<ScheduleSpec> {
    check_name(&name).map_err(|m| error(py, "BadRequest", m))?;
    check_function(&function).map_err(|m| error(py, "BadRequest", m))?;
    let trigger =
        match (every_ms, cron) {
            (Some(ms), None) => Trigger::Every(ms),
            (None, Some(line)) => Trigger::Cron { line, tz },
            _ => return Err(error(
                py,
                "BadRequest",
                "give every (seconds between firings) or cron (a cron line), exactly one of them"
                    .into(),
            )),
        };
    let mut task = options.spec(function, args, kwargs);
    task.run_at = None;
    task.after.clear();
    Ok(ScheduleSpec {
        name,
        trigger,
        task,
    })
}

/// One schedule as a dict: the fields of `tatzelwurm.ScheduleInfo`, times in seconds since the
/// epoch, durations in milliseconds (`every_ms`, `backoff_ms`, `timeout_ms`), `last` a list of
/// `(task id, seconds)` newest first.
pub fn schedule_info<'py>(py: Python<'py>, info: ScheduleInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let spec = info.spec;
    d.set_item("name", spec.name)?;
    let (every_ms, cron, tz) = match spec.trigger {
        Trigger::Every(ms) => (Some(ms), None, None),
        Trigger::Cron { line, tz } => (None, Some(line), tz),
    };
    d.set_item("every_ms", every_ms)?;
    d.set_item("cron", cron)?;
    d.set_item("tz", tz)?;
    let task = spec.task;
    d.set_item("function", task.function)?;
    d.set_item("args", task.args)?;
    d.set_item("kwargs", task.kwargs)?;
    d.set_item("queue", task.queue)?;
    d.set_item("priority", task.priority)?;
    d.set_item("retries", task.policy.retries)?;
    d.set_item("backoff_ms", task.policy.backoff_ms)?;
    d.set_item("timeout_ms", task.policy.timeout_ms)?;
    d.set_item("at_most_once", task.policy.at_most_once)?;
    d.set_item("crash_limit", task.policy.crash_limit)?;
    d.set_item("paused", info.paused)?;
    d.set_item("created_at", secs(info.created_at))?;
    d.set_item("next_at", info.next_at.map(secs))?;
    d.set_item("fired", info.fired)?;
    let last: Vec<(u64, f64)> = info.last.iter().map(|(id, at)| (id.0, secs(*at))).collect();
    d.set_item("last", last)?;
    Ok(d)
}

/// Schedules as a list of dicts.
pub fn schedule_infos<'py>(
    py: Python<'py>,
    infos: Vec<ScheduleInfo>,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for info in infos {
        list.append(schedule_info(py, info)?)?;
    }
    Ok(list)
}

/// The change `kind` names: `pause`, `resume` or `remove`.
pub fn change(py: Python<'_>, kind: &str) -> PyResult<ScheduleChange> {
    match kind {
        "pause" => Ok(ScheduleChange::Pause),
        "resume" => Ok(ScheduleChange::Resume),
        "remove" => Ok(ScheduleChange::Remove),
        other => Err(error(
            py,
            "BadRequest",
            format!("`{other}` is not a schedule change; use pause, resume or remove"),
        )),
    }
}
