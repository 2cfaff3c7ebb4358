//! Tasks run in the Python environment active where `workwurm` starts: a module that only a
//! virtualenv has is importable by a worker started from that virtualenv, and by no other.

use crate::TASK_TIMEOUT;
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use tatzelwurm_e2e::actionwurm::run_command;
use tatzelwurm_e2e::{fixture, Cluster, Worker, WorkerSpec};

/// The module that exists only in the test's virtualenv.
const MODULE: &str = "tzw_only_in_venv";

/// A task imports a module installed only in the virtualenv its worker was started from, runs on
/// that virtualenv's interpreter, and fails with ModuleNotFoundError on a worker started without it.
#[test]
fn a_task_imports_what_the_workers_virtualenv_has() {
    let cluster = Cluster::start();
    let venv = make_venv(cluster.dir());

    let worker = start_in_venv(&cluster, &venv);
    let task = run_probe(&cluster);
    assert_eq!(task["state"], "completed", "{task}");
    for key in ["executable", "module"] {
        let path = task["result"][key].as_str().expect("a path");
        assert!(
            path.starts_with(venv.to_str().unwrap()),
            "{key} {path} is not in {venv:?}"
        );
    }
    drop(worker);
    cluster.wait_worker_count(0, TASK_TIMEOUT);

    let _plain = cluster.start_worker(WorkerSpec::new(1).name("plain").env_remove("VIRTUAL_ENV"));
    let task = run_probe(&cluster);
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["error"]["type"], "ModuleNotFoundError", "{task}");
    assert!(task["error"]["message"].as_str().unwrap().contains(MODULE));
}

/// `python3 -m venv --without-pip <dir>/venv` (no network needed) with `tzw_only_in_venv.py`
/// dropped into its site-packages.
fn make_venv(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let mut create = Command::new("python3");
    create.args(["-m", "venv", "--without-pip"]).arg(&venv);
    run_command(create, TASK_TIMEOUT).ok();
    let mut ask = Command::new(venv.join("bin").join("python3"));
    ask.args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]);
    let site_packages = PathBuf::from(run_command(ask, TASK_TIMEOUT).ok().stdout.trim());
    assert!(site_packages.starts_with(&venv), "{site_packages:?}");
    let module = "def where():\n    import sys\n    return sys.executable\n";
    std::fs::write(site_packages.join(format!("{MODULE}.py")), module).unwrap();
    venv
}

/// A worker started as from a shell with the virtualenv activated: its `bin` first on PATH and
/// `VIRTUAL_ENV` set.
fn start_in_venv(cluster: &Cluster, venv: &Path) -> Worker {
    let mut path = OsString::from(venv.join("bin"));
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let spec = WorkerSpec::new(1)
        .name("venv")
        .env("PATH", path)
        .env("VIRTUAL_ENV", venv);
    cluster.start_worker(spec)
}

/// Adds the probe task and waits until it is finished.
fn run_probe(cluster: &Cluster) -> Value {
    let id = cluster.add(&fixture("executable_with_venv_module"), "[]");
    cluster.wait_finished(id, TASK_TIMEOUT)
}
