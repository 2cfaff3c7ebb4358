//! Spans and moments written as text, read by the command lines' own rules
//! (`tatzelwurm_proto::when`, on jiff), so that `options(delay="1h30m")`, `schedule(every="5m")`,
//! `options(at="2026-12-01T09:00:00Z")` and `purge(finished_before="7d")` take what `--delay`,
//! `--every`, `--at` and `--finished-before` take and are refused with the same sentences. Numbers and `datetime` values never come here: the Python
//! layer (python/tatzelwurm/options.py) reads those itself.

use crate::convert::error;
use pyo3::prelude::*;
use tatzelwurm_proto::when;

/// `text` (`30s`, `5m`, `1h30m`, `250ms`) in milliseconds; `InvalidRequest` saying what is
/// wrong with it, led by `what` (the option's name).
#[pyfunction]
pub fn parse_span(py: Python<'_>, what: &str, text: &str) -> PyResult<u64> {
    when::parse_span(text).map_err(|why| refusal(py, what, why))
}

/// `parse_span` for a schedule's interval: at least one second.
#[pyfunction]
pub fn parse_every(py: Python<'_>, what: &str, text: &str) -> PyResult<u64> {
    when::parse_every(text).map_err(|why| refusal(py, what, why))
}

/// An RFC 3339 moment with an offset (`2026-12-01T09:00:00Z`) in milliseconds since the epoch.
#[pyfunction]
pub fn parse_time(py: Python<'_>, what: &str, text: &str) -> PyResult<u64> {
    when::parse_time(text)
        .map(|at| at.0)
        .map_err(|why| refusal(py, what, why))
}

/// The command line's reason, led by the option's name: "delay `5x` is not a span: ...".
fn refusal(py: Python<'_>, what: &str, why: String) -> PyErr {
    error(py, "BadRequest", format!("{what} {why}"))
}
