//! `Events`: one batch of pipeline events, applied to the Python client's handles here rather
//! than task by task in Python: the dispatcher thread's per-task work (W1 through `submit_many`
//! spent ~3 µs of the client's CPU per task there).
//!
//! `python/tatzelwurm/client.py` (`_Core._apply`) calls, for each batch `Core.next_events`
//! gives:
//! 1. `take(by_ticket, by_id, early)` under the client's lock: each `Added` gives its handles
//!    (popped from `by_ticket`) their ids (`_task_id`, waking an `_id_event`) and files them
//!    in `by_id`; each `Finished` pops its handle from `by_id` (or keeps the completion in
//!    `early` while adds are unanswered). A completed task's result is decoded here (a small
//!    integer without Python's decoder). Returns the completions Python resolves itself, and
//!    the other events as the tuples `convert::event` makes.
//! 2. `finish(lazy, pending, finished)` outside it: resolves the handles whose result is ready
//!    as `TaskHandle._resolve` does for a handle without a condition (`_lazy` true), under
//!    `handle._LAZY` taken once for the batch, and puts each `as_completed` queue one list of
//!    its handles. Returns `(handle, value)` of those that got a condition in the meantime,
//!    which Python resolves the Future's way.
//!
//! The handle fields written here (`_task_id`, `_id_event`, `_lazy`, `_state`, `_result`,
//! `_final_state`, `_queues`) are described in `handle.py`; a change there changes this file.

use crate::convert::{end_tuple, event};
use crate::gil::Turns;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tatzelwurm_client::Event;
use tatzelwurm_proto::actioner::TaskEnd;
use tatzelwurm_proto::task::TaskState;

/// A batch of pipeline events on its way to the handles (see the module).
#[pyclass(module = "tatzelwurm._native")]
pub struct Events {
    /// Not yet taken: the batch as the pipeline gave it.
    events: Vec<Event>,
    /// Taken: completed tasks whose handle had no condition, with their decoded results.
    ready: Vec<(Py<PyAny>, Py<PyAny>)>,
}

impl Events {
    /// A batch to apply.
    pub fn new(events: Vec<Event>) -> Events {
        Events {
            events,
            ready: Vec::new(),
        }
    }
}

#[pymethods]
impl Events {
    /// How many events the batch holds (0: the wait for one ran out).
    fn __len__(&self) -> usize {
        self.events.len()
    }

    /// Step 1 (see the module), with the client's lock held. Returns `(slow, notes)`: `slow`
    /// the `(handle, (id, state, result, error, attempts))` pairs for `TaskHandle._finish`
    /// (failures, handles with a condition, results that are not JSON), `notes` the other
    /// events as tuples.
    fn take<'py>(
        &mut self,
        py: Python<'py>,
        by_ticket: &Bound<'py, PyDict>,
        by_id: &Bound<'py, PyDict>,
        early: &Bound<'py, PyDict>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let slow = PyList::empty(py);
        let notes = PyList::empty(py);
        let loads = py
            .import(intern!(py, "tatzelwurm.serialize"))?
            .getattr(intern!(py, "loads_result"))?;
        let mut turns = Turns::new();
        for e in std::mem::take(&mut self.events) {
            match e {
                Event::Added { first, ids } => {
                    for (ticket, id) in (first..).zip(ids) {
                        turns.check(py);
                        let Some(handle) = pop(by_ticket, ticket)? else {
                            continue;
                        };
                        handle.setattr(intern!(py, "_task_id"), id.0)?;
                        let waiting = handle.getattr(intern!(py, "_id_event"))?;
                        if !waiting.is_none() {
                            waiting.call_method0(intern!(py, "set"))?;
                        }
                        match pop(early, id.0)? {
                            Some(raw) => slow.append((handle, raw))?,
                            None => by_id.set_item(id.0, handle)?,
                        }
                    }
                }
                Event::Finished(ends) => {
                    for end in ends {
                        turns.check(py);
                        let id = end.id.0;
                        match pop(by_id, id)? {
                            Some(handle) => self.finished(py, handle, end, &slow, &loads)?,
                            None if !by_ticket.is_empty() => {
                                early.set_item(id, end_tuple(py, end)?)?
                            }
                            None => {}
                        }
                    }
                }
                other => notes.append(event(py, other)?)?,
            }
        }
        if !early.is_empty() && by_ticket.is_empty() {
            early.clear();
        }
        Ok((slow, notes))
    }

    /// Step 2 (see the module). `lazy` is `handle._LAZY`, `pending` and `finished` the Future
    /// states `_PENDING` and `_FINISHED`. Returns the `(handle, value)` pairs whose handle got
    /// a condition since `take`.
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        lazy: &Bound<'py, PyAny>,
        pending: &Bound<'py, PyAny>,
        finished: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let late = PyList::empty(py);
        let ready = std::mem::take(&mut self.ready);
        if ready.is_empty() {
            return Ok(late);
        }
        let completed = intern!(py, "completed");
        // Each as_completed queue with the handles it gets, in the order they finished.
        let mut arrivals: Vec<(Bound<'py, PyAny>, Bound<'py, PyList>)> = Vec::new();
        lazy.call_method0(intern!(py, "acquire"))?;
        let mut turns = Turns::new();
        let resolved = (|| -> PyResult<()> {
            for (handle, value) in ready {
                // A thread that wants `_LAZY` meanwhile waits for it with the GIL released.
                turns.check(py);
                let handle = handle.into_bound(py);
                if !handle.getattr(intern!(py, "_lazy"))?.is_truthy()? {
                    late.append((handle, value))?;
                    continue;
                }
                if !handle.getattr(intern!(py, "_state"))?.is(pending) {
                    continue; // resolved meanwhile: the client was closed
                }
                handle.setattr(intern!(py, "_result"), value)?;
                handle.setattr(intern!(py, "_final_state"), completed)?;
                handle.setattr(intern!(py, "_state"), finished)?;
                let queues = handle.getattr(intern!(py, "_queues"))?;
                if queues.is_none() {
                    continue;
                }
                handle.setattr(intern!(py, "_queues"), py.None())?;
                match queues.cast::<PyList>() {
                    Ok(several) => {
                        for queue in several.iter() {
                            arrive(&mut arrivals, queue, &handle)?;
                        }
                    }
                    Err(_) => arrive(&mut arrivals, queues, &handle)?,
                }
            }
            Ok(())
        })();
        lazy.call_method0(intern!(py, "release"))?;
        resolved?;
        for (queue, handles) in arrivals {
            queue.call_method1(intern!(py, "put"), (handles,))?;
        }
        Ok(late)
    }
}

impl Events {
    /// Files the completion of `handle`'s task: ready (its result decoded) or for Python.
    fn finished<'py>(
        &mut self,
        py: Python<'py>,
        handle: Bound<'py, PyAny>,
        end: TaskEnd,
        slow: &Bound<'py, PyList>,
        loads: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let lazy = handle.getattr(intern!(py, "_lazy"))?.is_truthy()?;
        if end.state == TaskState::Completed && lazy {
            let text = end.result.as_deref().unwrap_or("null");
            let value = match small_int(text) {
                Some(n) => Some(n.into_pyobject(py)?.into_any()),
                None => match loads.call1((text,)) {
                    Ok(value) => Some(value),
                    Err(err) if err.is_instance_of::<pyo3::exceptions::PyValueError>(py) => None,
                    Err(err) => return Err(err),
                },
            };
            if let Some(value) = value {
                self.ready.push((handle.unbind(), value.unbind()));
                return Ok(());
            }
        }
        slow.append((handle, end_tuple(py, end)?))
    }
}

/// Removes and returns `dict[key]`, if there.
fn pop<'py>(dict: &Bound<'py, PyDict>, key: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
    let found = dict.get_item(key)?;
    if found.is_some() {
        dict.del_item(key)?;
    }
    Ok(found)
}

/// Adds `handle` to what `queue` gets.
fn arrive<'py>(
    arrivals: &mut Vec<(Bound<'py, PyAny>, Bound<'py, PyList>)>,
    queue: Bound<'py, PyAny>,
    handle: &Bound<'py, PyAny>,
) -> PyResult<()> {
    match arrivals.iter().find(|(q, _)| q.is(&queue)) {
        Some((_, handles)) => handles.append(handle),
        None => {
            let handles = PyList::empty(queue.py());
            handles.append(handle)?;
            arrivals.push((queue, handles));
            Ok(())
        }
    }
}

/// The value of a result that is a JSON integer of up to 18 digits (what many tasks return),
/// read without Python's decoder. (This crate has no Rust tests, see Cargo.toml:
/// tests/pytest/test_client_bulk.py checks results of every kind.)
fn small_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None; // not JSON: the decoder says so
    }
    text.parse().ok()
}
