//! Queues for Python: `QueueInfo` as the dict `tatzelwurm.QueueInfo` is made from, and the
//! change a queue control names (`pause`, `resume`, `limit`) as the protocol's `QueueChange`.

use crate::convert::error;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tatzelwurm_proto::queue::{QueueChange, QueueInfo};

/// One queue as a dict: `name`, `paused`, `limit` (0 for none), `counts` (a list of
/// `(state, n)` for every state in life order), `workers` (names).
pub fn queue_info<'py>(py: Python<'py>, q: QueueInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", q.name)?;
    d.set_item("paused", q.paused)?;
    d.set_item("limit", q.limit)?;
    let counts: Vec<(&str, u64)> = q.counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    d.set_item("counts", counts)?;
    d.set_item("workers", q.workers)?;
    Ok(d)
}

/// Queues as a list of dicts.
pub fn queue_infos<'py>(py: Python<'py>, queues: Vec<QueueInfo>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for q in queues {
        list.append(queue_info(py, q)?)?;
    }
    Ok(list)
}

/// The change `kind` names (`limit` takes `limit`; 0 removes it).
pub fn change(py: Python<'_>, kind: &str, limit: u32) -> PyResult<QueueChange> {
    match kind {
        "pause" => Ok(QueueChange::Pause),
        "resume" => Ok(QueueChange::Resume),
        "limit" => Ok(QueueChange::Limit(limit)),
        other => Err(error(
            py,
            "BadRequest",
            format!("`{other}` is not a queue change; use pause, resume or limit"),
        )),
    }
}
