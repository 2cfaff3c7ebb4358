//! `tatzelwurm._native`: the Rust half of the Python package, built by maturin as an abi3
//! extension (pyo3, no libpython linked).
//!
//! Layout:
//! - `commands`: the `tatzelwurm`, `workwurm` and `actionwurm` entry points, each the crate's own
//!   `main` run with the GIL released.
//! - `runtime`: the one tokio runtime of the extension, made on first use.
//! - `core`: `Core`, one client connection with its pipeline and event stream, the thing
//!   `tatzelwurm.Client` is built on; every blocking call releases the GIL.
//! - `dispatch`: `Events`, a batch of pipeline events applied to the Python handles (ids,
//!   results, `as_completed` queues) in bulk, for the client's dispatcher thread.
//! - `feed`: `Feed`, a streamed answer read batch by batch from a Python thread, interruptible
//!   by ctrl-c and closable from any thread; `events` (`EventFeed`, the event log) and `logs`
//!   (`LogFeed`, a task's output) are the two kinds.
//! - `options`: `Options`, what a client view's tasks carry (policy, play, queue, priority,
//!   start time, dependencies), made once per view; the queue-name and priority checks.
//! - `convert`: task and worker descriptions, events and errors as Python values.
//! - `gil`: `Turns`, which lets other Python threads run during the extension's long loops.
//! - `json_args`: a call's arguments as JSON text for plain values, the text Python's `json`
//!   writes, so that a submit needs no call into Python's encoder.
//! - `queues`: queue descriptions as Python values, and queue changes by name.
//! - `schedules`: the schedule `Client.schedule` sends, and schedule descriptions as Python
//!   values.
//! - `when`: spans and moments written as text (`"1h30m"`, RFC 3339), by the command line's
//!   rules.
//!
//! The Python layer (python/tatzelwurm/) owns handles, futures and the dispatcher thread; this
//! crate owns nothing Python-specific beyond the conversions, and `dispatch`, which writes the
//! handle fields `handle.py` names for it.

use pyo3::prelude::*;

mod commands;
mod convert;
mod core;
mod dispatch;
mod events;
mod feed;
mod gil;
mod json_args;
mod logs;
mod options;
mod queues;
mod runtime;
mod schedules;
mod when;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(commands::tatzelwurm_main, m)?)?;
    m.add_function(wrap_pyfunction!(commands::workwurm_main, m)?)?;
    m.add_function(wrap_pyfunction!(commands::actionwurm_main, m)?)?;
    m.add_class::<core::Core>()?;
    m.add_class::<dispatch::Events>()?;
    m.add_class::<events::EventFeed>()?;
    m.add_class::<logs::LogFeed>()?;
    m.add_class::<options::Options>()?;
    m.add_function(wrap_pyfunction!(options::check_queue_name, m)?)?;
    m.add_function(wrap_pyfunction!(options::check_priority, m)?)?;
    m.add("MAX_AFTER", tatzelwurm_proto::task::MAX_AFTER)?;
    m.add_function(wrap_pyfunction!(json_args::encode_call, m)?)?;
    m.add_function(wrap_pyfunction!(when::parse_span, m)?)?;
    m.add_function(wrap_pyfunction!(when::parse_every, m)?)?;
    m.add_function(wrap_pyfunction!(when::parse_time, m)?)?;
    Ok(())
}
