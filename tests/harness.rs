//! The end-to-end harness: starts the real `tatzelwurm`, `workwurm` and `actionwurm` binaries
//! and drives them the way a user does, for the end-to-end tests and the W1 benchmark.
//!
//! Layout:
//! - [`binaries`]: where the three built programs are (`$TATZELWURM_BIN_DIR`, else the
//!   workspace's target directory) and the sentence to print when they are not built.
//! - [`process`]: one started program (`Proc`): log files, signals, bounded waits, and a kill of
//!   it and everything it started when the handle is dropped.
//! - [`cluster`]: a temp dir with a coordinator in it (`Cluster`, `Coordinator`), stopped and
//!   started again on the same port and database at will.
//! - [`worker`]: how a worker is started (`WorkerSpec`) and the handle of one (`Worker`).
//! - [`actionwurm`]: running the CLI with a time limit and reading its output (`Action`).
//! - [`procfs`]: whether a pid is alive, and the processes a process started, from `/proc`.
//! - [`client`]: what tests ask most often (add, show, list, wait for a state), built on the CLI.
//! - [`control`]: `queue list` and `schedule show|list`, and readers of their JSON.
//! - [`supervisor`]: a worker started again whenever it dies, for tasks that kill their worker.
//! - [`wait`]: `wait_until` and `wait_for`, the only way a test waits for something to happen.
//!
//! Every process is started from the thread that owns its handle and dies with it: a failing
//! test prints the tail of every log it started, so its failure can be read without rerunning.

#[path = "harness/actionwurm.rs"]
pub mod actionwurm;
#[path = "harness/binaries.rs"]
pub mod binaries;
#[path = "harness/client.rs"]
pub mod client;
#[path = "harness/cluster.rs"]
pub mod cluster;
#[path = "harness/control.rs"]
pub mod control;
#[path = "harness/process.rs"]
pub mod process;
#[path = "harness/procfs.rs"]
pub mod procfs;
#[path = "harness/supervisor.rs"]
pub mod supervisor;
#[path = "harness/wait.rs"]
pub mod wait;
#[path = "harness/worker.rs"]
pub mod worker;

pub use actionwurm::Action;
pub use binaries::{Binaries, Profile};
pub use cluster::{Cluster, ClusterOptions, Coordinator, Stop};
pub use process::Proc;
pub use procfs::{descendants, open_fds, pid_alive, status_kib};
pub use supervisor::Supervisor;
pub use wait::{wait_for, wait_until};
pub use worker::{Worker, WorkerSpec};

use std::path::PathBuf;

/// The workspace root (the parent of this package), against which examples and fixtures are
/// found whatever directory the tests run from.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("the e2e package lives inside the workspace")
        .to_path_buf()
}

/// `examples/`, the Python module the demo, the tests and the benchmark run tasks from.
pub fn examples_dir() -> PathBuf {
    workspace_root().join("examples")
}

/// `tests/python/`, the Python fixtures only the tests need.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests").join("python")
}

/// `FUNC` for a function of `examples/tasks.py`, as an absolute file path so that it does not
/// depend on the worker's working directory.
pub fn example(function: &str) -> String {
    format!("{}:{function}", examples_dir().join("tasks.py").display())
}

/// `FUNC` for a function of `tests/python/fixtures.py`, as an absolute file path.
pub fn fixture(function: &str) -> String {
    format!(
        "{}:{function}",
        fixtures_dir().join("fixtures.py").display()
    )
}

/// `FUNC` for a function of `tests/python/scheduling.py` (the tasks of the scheduling and
/// control tests), as an absolute file path.
pub fn scheduling(function: &str) -> String {
    format!(
        "{}:{function}",
        fixtures_dir().join("scheduling.py").display()
    )
}
