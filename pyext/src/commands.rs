//! The package's three commands: each runs the same `main` as the cargo-built binary with the
//! GIL released, then lets Python see the signals that arrived meanwhile.
//!
//! Called by python/tatzelwurm/_commands.py with `sys.argv` whole (argv[0] included) and
//! `sys.executable`, the venv's python: `std::env::current_exe()` would be the base
//! interpreter, which cannot import the venv's packages.

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use std::path::PathBuf;

/// The coordinator.
#[pyfunction]
pub fn tatzelwurm_main(py: Python<'_>, argv: Vec<String>, executable: PathBuf) -> PyResult<i32> {
    let _ = executable;
    let code = py.detach(|| tatzelwurm::main(argv));
    settle_signals(py, code)
}

/// The command line.
#[pyfunction]
pub fn actionwurm_main(py: Python<'_>, argv: Vec<String>, executable: PathBuf) -> PyResult<i32> {
    let _ = executable;
    let code = py.detach(|| actionwurm::main(argv));
    settle_signals(py, code)
}

/// A worker whose slots run `EXECUTABLE -m tatzelwurm.slot` unless `--python` is given.
#[pyfunction]
pub fn workwurm_main(py: Python<'_>, argv: Vec<String>, executable: PathBuf) -> PyResult<i32> {
    let launch = workwurm::Launch {
        default_python: Some(executable),
        slot_module: Some("tatzelwurm.slot".to_string()),
    };
    let code = py.detach(|| workwurm::main(argv, launch));
    settle_signals(py, code)
}

/// Runs Python's pending signal handlers. A ctrl-c reached the program's own handler too (tokio
/// chains to Python's), which drained and returned `code`: its KeyboardInterrupt is dropped, so
/// the command exits as the binary does instead of with a traceback. Any other error a handler
/// raised goes on.
fn settle_signals(py: Python<'_>, code: i32) -> PyResult<i32> {
    match py.check_signals() {
        Ok(()) => Ok(code),
        Err(err) if err.is_instance_of::<PyKeyboardInterrupt>(py) => Ok(code),
        Err(err) => Err(err),
    }
}
