//! `EventFeed`: the event log as `tatzelwurm.Client.events` reads it, each event a tuple that
//! `tatzelwurm.Event._from_native` unpacks (the tuple's order is that method's).

use crate::convert::{client_error, secs};
use crate::feed::{Feed, Next};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tatzelwurm_client::EventStream;
use tatzelwurm_proto::event::{Event, EventKind};

/// One stream of events being read.
#[pyclass(frozen, module = "tatzelwurm._native")]
pub struct EventFeed {
    feed: Feed<EventStream>,
}

impl EventFeed {
    /// A feed over the events `feed` yields.
    pub fn new(feed: Feed<EventStream>) -> EventFeed {
        EventFeed { feed }
    }
}

#[pymethods]
impl EventFeed {
    /// The next batch of events as tuples, waiting up to `timeout` seconds (forever when None)
    /// with the GIL released: an empty list when none came in time, None once the stream is
    /// over. The error that ends a stream (`EventsLagged`, `EventsGone`, ...) is raised.
    #[pyo3(signature = (timeout=None))]
    fn next<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        match self.feed.next(py, timeout)? {
            Next::End => Ok(None),
            Next::Timeout => Ok(Some(PyList::empty(py))),
            Next::Item(Err(err)) => Err(client_error(py, &err)),
            Next::Item(Ok(events)) => {
                let list = PyList::empty(py);
                for event in events {
                    list.append(event_tuple(py, event)?)?;
                }
                Ok(Some(list))
            }
        }
    }

    /// Waits until the stream has started (its own connection made, its request sent), with
    /// the GIL released; raises the error of a start that failed.
    fn ready(&self, py: Python<'_>) -> PyResult<()> {
        self.feed.ready(py)
    }

    /// Ends the stream; a read under way in another thread returns None.
    fn close(&self, py: Python<'_>) {
        self.feed.close(py);
    }

    /// Whether the stream is over.
    #[getter]
    fn closed(&self) -> bool {
        self.feed.is_closed()
    }
}

/// `(seq, at, kind, task, queue, state, attempt, worker, error, count, worker_id, change)`:
/// `at` in seconds since the epoch, `kind` one of `task`, `worker`, `purged`; the fields of
/// other kinds None.
fn event_tuple(py: Python<'_>, event: Event) -> PyResult<Bound<'_, PyTuple>> {
    let seq = event.seq;
    let at = secs(event.at);
    let none = || py.None();
    let items: [Py<PyAny>; 12] = match event.kind {
        EventKind::Task {
            id,
            queue,
            state,
            attempt,
            worker,
            error,
        } => [
            seq.into_pyobject(py)?.into_any().unbind(),
            at.into_pyobject(py)?.into_any().unbind(),
            "task".into_pyobject(py)?.into_any().unbind(),
            id.0.into_pyobject(py)?.into_any().unbind(),
            queue.into_pyobject(py)?.into_any().unbind(),
            state.as_str().into_pyobject(py)?.into_any().unbind(),
            attempt.0.into_pyobject(py)?.into_any().unbind(),
            worker.into_pyobject(py)?.into_any().unbind(),
            error.into_pyobject(py)?.into_any().unbind(),
            none(),
            none(),
            none(),
        ],
        EventKind::Purged { count } => [
            seq.into_pyobject(py)?.into_any().unbind(),
            at.into_pyobject(py)?.into_any().unbind(),
            "purged".into_pyobject(py)?.into_any().unbind(),
            none(),
            none(),
            none(),
            none(),
            none(),
            none(),
            count.into_pyobject(py)?.into_any().unbind(),
            none(),
            none(),
        ],
        EventKind::Worker { id, name, change } => [
            seq.into_pyobject(py)?.into_any().unbind(),
            at.into_pyobject(py)?.into_any().unbind(),
            "worker".into_pyobject(py)?.into_any().unbind(),
            none(),
            none(),
            none(),
            none(),
            name.into_pyobject(py)?.into_any().unbind(),
            none(),
            none(),
            id.0.into_pyobject(py)?.into_any().unbind(),
            change.as_str().into_pyobject(py)?.into_any().unbind(),
        ],
    };
    PyTuple::new(py, items)
}
