//! `tatzelwurm._native`: the Rust half of the Python package, built by maturin as an abi3
//! extension (pyo3, no libpython linked).
//!
//! Layout:
//! - `commands`: the `tatzelwurm`, `workwurm` and `actionwurm` entry points, each the crate's own
//!   `main` run with the GIL released.
//! - `runtime`: the one tokio runtime of the extension, made on first use.
//! - `core`: `Core`, one client connection with its pipeline and event stream, the thing
//!   `tatzelwurm.Client` is built on; every blocking call releases the GIL.
//! - `options`: `Options`, a task policy and play flag made once per client view.
//! - `convert`: task and worker descriptions, events and errors as Python values.
//!
//! The Python layer (python/tatzelwurm/) owns handles, futures and the dispatcher thread; this
//! crate owns nothing Python-specific beyond the conversions.

use pyo3::prelude::*;

mod commands;
mod convert;
mod core;
mod options;
mod runtime;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(commands::tatzelwurm_main, m)?)?;
    m.add_function(wrap_pyfunction!(commands::workwurm_main, m)?)?;
    m.add_function(wrap_pyfunction!(commands::actionwurm_main, m)?)?;
    m.add_class::<core::Core>()?;
    m.add_class::<options::Options>()?;
    Ok(())
}
