//! Rust values as the Python layer reads them: task and worker descriptions as dicts (the keys
//! are the fields of `tatzelwurm.TaskInfo`/`WorkerInfo`, a worker's usage a nested dict),
//! pipeline events as small tuples, and client errors as the exception classes of
//! `tatzelwurm.errors`, found by the `ErrorClass` name. (The event log's events and output
//! chunks are converted beside their streams, in `events` and `logs`.)

use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tatzelwurm_client::{ClientError, ErrorClass, Event};
use tatzelwurm_proto::actioner::{TaskEnd, WorkerInfo};
use tatzelwurm_proto::task::{TaskInfo, Timestamp, When};
use tatzelwurm_proto::worker::WorkerUsage;

/// The tags of event tuples; python/tatzelwurm/client.py reads the same numbers.
const ADDED: u8 = 0;
const ADD_FAILED: u8 = 1;
const FINISHED: u8 = 2;
const DISCONNECTED: u8 = 3;
const RECONNECTED: u8 = 4;

/// The name `tatzelwurm.errors._by_class` maps to an exception class.
pub fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Unavailable => "Unavailable",
        ErrorClass::Refused => "Refused",
        ErrorClass::UnknownTask => "UnknownTask",
        ErrorClass::BadRequest => "BadRequest",
        ErrorClass::TooLarge => "TooLarge",
        ErrorClass::Internal => "Internal",
        ErrorClass::UnknownQueue => "UnknownQueue",
        ErrorClass::UnknownSchedule => "UnknownSchedule",
        ErrorClass::ScheduleExists => "ScheduleExists",
        ErrorClass::Purged => "TaskPurged",
        ErrorClass::UnknownWorker => "UnknownWorker",
        ErrorClass::Lagged => "EventsLagged",
        ErrorClass::EventsGone => "EventsGone",
    }
}

/// A client error as the Python exception of its class.
pub fn client_error(py: Python<'_>, err: &ClientError) -> PyErr {
    error(py, class_name(err.class()), err.to_string())
}

/// The Python exception of class `class` (a name `class_name` returns) saying `message`.
pub fn error(py: Python<'_>, class: &str, message: String) -> PyErr {
    let made = py
        .import(intern!(py, "tatzelwurm.errors"))
        .and_then(|errors| errors.getattr(intern!(py, "_native_error")))
        .and_then(|make| make.call1((class, message.as_str())));
    match made {
        Ok(value) => PyErr::from_value(value),
        Err(_) => PyRuntimeError::new_err(message),
    }
}

/// Seconds since the epoch, as Python's `time.time()` counts.
pub fn secs(at: Timestamp) -> f64 {
    at.as_secs_f64()
}

/// One task as a dict (`output` is `(stdout, stderr)` or None, `error` `(kind, message,
/// traceback)` or None, `run_at` seconds since the epoch or None, `after` a list of ids).
pub fn task_info<'py>(py: Python<'py>, info: TaskInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "id"), info.id.0)?;
    d.set_item(intern!(py, "state"), info.state.as_str())?;
    d.set_item(intern!(py, "function"), info.spec.function)?;
    d.set_item(intern!(py, "args"), info.spec.args)?;
    d.set_item(intern!(py, "kwargs"), info.spec.kwargs)?;
    d.set_item(intern!(py, "queue"), info.spec.queue)?;
    d.set_item(intern!(py, "priority"), info.spec.priority)?;
    d.set_item(intern!(py, "run_at"), run_at(info.spec.run_at))?;
    let after: Vec<u64> = info.spec.after.iter().map(|id| id.0).collect();
    d.set_item(intern!(py, "after"), after)?;
    d.set_item(intern!(py, "result"), info.result)?;
    d.set_item(
        intern!(py, "error"),
        info.error.map(|e| (e.kind, e.message, e.traceback)),
    )?;
    d.set_item(intern!(py, "worker"), info.worker)?;
    d.set_item(intern!(py, "attempts"), info.attempts.0)?;
    d.set_item(intern!(py, "failures"), info.failures)?;
    d.set_item(intern!(py, "crashes"), info.crashes)?;
    d.set_item(intern!(py, "retry_at"), info.retry_at.map(secs))?;
    d.set_item(intern!(py, "created_at"), secs(info.created_at))?;
    d.set_item(intern!(py, "started_at"), info.started_at.map(secs))?;
    d.set_item(intern!(py, "finished_at"), info.finished_at.map(secs))?;
    d.set_item(
        intern!(py, "output"),
        info.output.map(|o| (o.stdout, o.stderr)),
    )?;
    Ok(d)
}

/// A start time as seconds since the epoch. A stored task holds a moment (the coordinator turns
/// a delay into one when it adds the task), so a delay shows only if a coordinator ever
/// answered one: as None, since its moment is unknown here.
fn run_at(when: Option<When>) -> Option<f64> {
    match when {
        Some(When::At(at)) => Some(secs(at)),
        Some(When::Delay(_)) | None => None,
    }
}

/// Tasks as a list of dicts.
pub fn task_infos<'py>(py: Python<'py>, infos: Vec<TaskInfo>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for info in infos {
        list.append(task_info(py, info)?)?;
    }
    Ok(list)
}

/// Finished tasks as the dispatcher resolves handles from them: `(id, state, result, error,
/// attempts)` each (see `end_tuple`).
pub fn finished<'py>(py: Python<'py>, ends: Vec<TaskEnd>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for end in ends {
        list.append(end_tuple(py, end)?)?;
    }
    Ok(list)
}

/// One finished task as `TaskHandle._finish` reads it: `(id, state, result, error,
/// attempts)`, `error` as `(kind, message, traceback)`: what the dispatcher reads, and no more
/// (a dict of every `TaskInfo` field per task was ~3 µs of the client's CPU in W1).
pub fn end_tuple(py: Python<'_>, end: TaskEnd) -> PyResult<Bound<'_, PyAny>> {
    let error = end.error.map(|e| (e.kind, e.message, e.traceback));
    let item = (
        end.id.0,
        end.state.as_str(),
        end.result,
        error,
        end.attempts.0,
    );
    Ok(item.into_pyobject(py)?.into_any())
}

/// One worker as a dict with the fields of `tatzelwurm.WorkerInfo`.
pub fn worker_info<'py>(py: Python<'py>, w: WorkerInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", w.id.0)?;
    d.set_item("name", w.name)?;
    d.set_item("address", w.address)?;
    d.set_item("slots", w.slots)?;
    d.set_item("running", w.running)?;
    d.set_item("queued", w.queued)?;
    d.set_item("done", w.done)?;
    d.set_item("python", w.python)?;
    d.set_item("connected_at", secs(w.connected_at))?;
    d.set_item("draining", w.draining)?;
    d.set_item("queues", w.queues)?;
    d.set_item("async_concurrency", w.async_concurrency)?;
    d.set_item("held_off_until", w.held_off_until.map(secs))?;
    d.set_item("usage", w.usage.map(|u| usage(py, u)).transpose()?)?;
    Ok(d)
}

/// What a worker's slots use, as a dict with the fields of `tatzelwurm.WorkerUsage` (`at` in
/// seconds since the epoch; `slots` a list of `(pid, rss, cpu_permille, running)`).
fn usage(py: Python<'_>, u: WorkerUsage) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("at", secs(u.at))?;
    let slots: Vec<(u32, u64, u32, u32)> = u
        .slots
        .iter()
        .map(|s| (s.pid, s.rss, s.cpu_permille, s.running))
        .collect();
    d.set_item("slots", slots)?;
    d.set_item("max_memory", u.max_memory)?;
    d.set_item("memory_replaced", u.memory_replaced)?;
    d.set_item("memory_killed", u.memory_killed)?;
    Ok(d)
}

/// One pipeline event as the tuple the dispatcher thread reads:
/// `(ADDED, first_ticket, [ids])`, `(ADD_FAILED, first_ticket, count, class, message)`,
/// `(FINISHED, [(id, state, result, error, attempts)])` (see `finished`), `(DISCONNECTED, reason)`,
/// `(RECONNECTED,)`.
pub fn event(py: Python<'_>, event: Event) -> PyResult<Bound<'_, PyAny>> {
    Ok(match event {
        Event::Added { first, ids } => {
            let ids: Vec<u64> = ids.into_iter().map(|id| id.0).collect();
            (ADDED, first, ids).into_pyobject(py)?.into_any()
        }
        Event::AddFailed {
            first,
            count,
            error,
        } => (
            ADD_FAILED,
            first,
            count,
            class_name(error.class()),
            error.to_string(),
        )
            .into_pyobject(py)?
            .into_any(),
        Event::Finished(infos) => (FINISHED, finished(py, infos)?)
            .into_pyobject(py)?
            .into_any(),
        Event::Disconnected(reason) => (DISCONNECTED, reason).into_pyobject(py)?.into_any(),
        Event::Reconnected => (RECONNECTED,).into_pyobject(py)?.into_any(),
    })
}
