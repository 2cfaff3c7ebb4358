//! The extension's tokio runtime, made on first use and kept for the life of the process.
//! Python threads block on it (with the GIL released); its own threads never touch Python.
//!
//! A forked child (multiprocessing's default start method on Linux) inherits the runtime but
//! not its threads: the child gets a runtime of its own on first use, and the parent's is
//! leaked there (dropping it would wait for threads that do not exist in the child).

use std::sync::Mutex;
use tokio::runtime::Runtime;

/// The runtime and the process it belongs to.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// The runtime every client of this process runs on. One worker thread: a client's work is
/// framing and routing, and the machine's other cores belong to Python and the coordinator.
pub fn runtime() -> &'static Runtime {
    let pid = std::process::id();
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match *slot {
        Some((owner, runtime)) if owner == pid => runtime,
        _ => {
            let runtime: &'static Runtime = Box::leak(Box::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("tatzelwurm-client")
                    .enable_all()
                    .build()
                    .expect("cannot start the tatzelwurm client's async runtime"),
            ));
            *slot = Some((pid, runtime));
            runtime
        }
    }
}

/// Runs one client request to its end on the runtime with the GIL released, and turns its
/// error into the Python exception of its class: what every blocking method of the client does.
pub fn request<T: Send>(
    py: pyo3::Python<'_>,
    request: impl std::future::Future<Output = Result<T, tatzelwurm_client::ClientError>> + Send,
) -> pyo3::PyResult<T> {
    py.detach(|| runtime().block_on(request))
        .map_err(|e| crate::convert::client_error(py, &e))
}
