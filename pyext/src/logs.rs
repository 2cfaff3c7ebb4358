//! `LogFeed`: a task's output as `TaskHandle.logs` reads it, each chunk a tuple
//! `(attempt, stream, text)` that `tatzelwurm.LogChunk` is made from, and the task's state once
//! the last page came.

use crate::convert::client_error;
use crate::feed::{Feed, Next};
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::sync::Mutex;
use tatzelwurm_client::LogStream;
use tatzelwurm_proto::worker::OutputStream;

/// One task's output being read.
#[pyclass(frozen, module = "tatzelwurm._native")]
pub struct LogFeed {
    feed: Feed<LogStream>,
    /// The task's state that the last page named.
    state: Mutex<Option<&'static str>>,
}

impl LogFeed {
    /// A feed over the pages `feed` yields.
    pub fn new(feed: Feed<LogStream>) -> LogFeed {
        LogFeed {
            feed,
            state: Mutex::new(None),
        }
    }
}

#[pymethods]
impl LogFeed {
    /// The next chunks as `(attempt, stream, text)` tuples, waiting up to `timeout` seconds
    /// (forever when None) with the GIL released: an empty list when none came in time, None
    /// once the stream is over (`state` then says the task's state). The error that ends a
    /// stream (`TaskPurged`, `UnknownTask`, a lost connection) is raised.
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
            Next::Item(Ok(page)) => {
                if let Some(done) = page.done {
                    *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(done.as_str());
                }
                let list = PyList::empty(py);
                for chunk in page.chunks {
                    let stream = match chunk.stream {
                        OutputStream::Stdout => "stdout",
                        OutputStream::Stderr => "stderr",
                    };
                    list.append((chunk.attempt.0, stream, chunk.text))?;
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

    /// The task's state the last page named (finished, unless the stream did not follow);
    /// None before it came.
    #[getter]
    fn state(&self) -> Option<&'static str> {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
