//! `EventFeed`: the event log as `tatzelwurm.Client.events` reads it, each event a tuple that
//! `tatzelwurm.Event._from_native` unpacks (the tuple's order is that method's).

use crate::convert::client_error;
use crate::feed::{Feed, Next};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tatzelwurm_client::EventStream;
use tatzelwurm_proto::event::Event;
use tatzelwurm_proto::json::EventJson;

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
                    list.append(event_tuple(py, &event)?)?;
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
/// the keys of an event's JSON (`tatzelwurm_proto::json::EventJson`) in their order, `at` in
/// seconds since the epoch, `kind` one of `task`, `worker`, `purged`; the fields of other
/// kinds None.
fn event_tuple<'py>(py: Python<'py>, event: &Event) -> PyResult<Bound<'py, PyTuple>> {
    let json = EventJson::new(event);
    (
        json.seq,
        json.at,
        json.kind,
        json.task,
        json.queue,
        json.state,
        json.attempt,
        json.worker.flatten(),
        json.error.flatten(),
        json.count,
        json.worker_id,
        json.change,
    )
        .into_pyobject(py)
}
