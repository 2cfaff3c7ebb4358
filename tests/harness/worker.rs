//! How a worker is started (`WorkerSpec`) and the handle of a started one (`Worker`).
//!
//! A spec turns into the `workwurm` command line of the contract: `--coordinator ADDR` (or
//! `TATZELWURM_COORDINATOR`), `--slots`, `--name`, `--path`, `--python`, `--drain-timeout`,
//! `--queue`, `--async-concurrency`, `--no-reload`, plus the environment
//! and working directory a user's shell would give it, such as an activated virtualenv.

use crate::process::Proc;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to start one worker; built with chained calls, such as `WorkerSpec::new(2).name("w1")`.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    name: Option<String>,
    slots: u32,
    paths: Vec<PathBuf>,
    python: Option<PathBuf>,
    cwd: Option<PathBuf>,
    env: Vec<(String, OsString)>,
    env_remove: Vec<String>,
    address_from_env: bool,
    drain_timeout: Option<String>,
    queues: Vec<String>,
    async_concurrency: Option<u32>,
    no_reload: bool,
    extra: Vec<String>,
}

impl WorkerSpec {
    /// A worker with `slots` slots, named `w<n>` (n counting the cluster's workers) unless
    /// `name` is given, working in the cluster's temp dir.
    pub fn new(slots: u32) -> WorkerSpec {
        WorkerSpec {
            name: None,
            slots,
            paths: Vec::new(),
            python: None,
            cwd: None,
            env: Vec::new(),
            env_remove: Vec::new(),
            address_from_env: false,
            drain_timeout: None,
            queues: Vec::new(),
            async_concurrency: None,
            no_reload: false,
            extra: Vec::new(),
        }
    }

    /// `--name NAME`: what `worker list` and a task's `worker` field show.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// `--path DIR`: one more directory tasks import from.
    pub fn path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.paths.push(dir.into());
        self
    }

    /// `--python PATH`: the interpreter of the slots instead of `python3` on PATH.
    pub fn python(mut self, python: impl Into<PathBuf>) -> Self {
        self.python = Some(python.into());
        self
    }

    /// The worker's working directory (the cluster's temp dir by default).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// One more environment variable for the worker (such as `PATH` for a virtualenv).
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// An environment variable that the spec's own `env` entries may override.
    pub(crate) fn env_first(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.insert(0, (key.to_string(), value.into()));
        self
    }

    /// Removes an inherited environment variable (such as `VIRTUAL_ENV`).
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env_remove.push(key.to_string());
        self
    }

    /// Gives the coordinator's address in `TATZELWURM_COORDINATOR` instead of `--coordinator`.
    pub fn address_from_env(mut self) -> Self {
        self.address_from_env = true;
        self
    }

    /// `--drain-timeout SECONDS`: how long the first SIGTERM lets running tasks finish.
    pub fn drain_timeout(mut self, seconds: &str) -> Self {
        self.drain_timeout = Some(seconds.to_string());
        self
    }

    /// `--queue NAME`, once per call: the queues it serves (`default` alone when never called).
    pub fn queue(mut self, name: &str) -> Self {
        self.queues.push(name.to_string());
        self
    }

    /// `--async-concurrency N`: how many `async def` tasks one slot runs at once.
    pub fn async_concurrency(mut self, n: u32) -> Self {
        self.async_concurrency = Some(n);
        self
    }

    /// `--no-reload`: keep running the module imported first when its file changes.
    pub fn no_reload(mut self) -> Self {
        self.no_reload = true;
        self
    }

    /// More arguments, after every other one (`--max-memory 200`, `--tls`, ...).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The `--name`, or `default` when none was given.
    pub(crate) fn name_or(&self, default: &str) -> String {
        self.name.clone().unwrap_or_else(|| default.to_string())
    }

    /// The `workwurm` command for this spec against the coordinator at `addr`, working in
    /// `default_cwd` unless the spec names another directory.
    pub(crate) fn command(
        &self,
        program: &Path,
        name: &str,
        addr: &str,
        default_cwd: &Path,
        log_level: &str,
    ) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_remove(tatzelwurm_proto::COORDINATOR_ENV)
            .env_remove(tatzelwurm_proto::TOKEN_ENV);
        if self.address_from_env {
            cmd.env(tatzelwurm_proto::COORDINATOR_ENV, addr);
        } else {
            cmd.arg("--coordinator").arg(addr);
        }
        cmd.arg("--slots").arg(self.slots.to_string());
        cmd.arg("--name").arg(name);
        for dir in &self.paths {
            cmd.arg("--path").arg(dir);
        }
        if let Some(python) = &self.python {
            cmd.arg("--python").arg(python);
        }
        if let Some(seconds) = &self.drain_timeout {
            cmd.arg("--drain-timeout").arg(seconds);
        }
        for queue in &self.queues {
            cmd.arg("--queue").arg(queue);
        }
        if let Some(n) = self.async_concurrency {
            cmd.arg("--async-concurrency").arg(n.to_string());
        }
        if self.no_reload {
            cmd.arg("--no-reload");
        }
        cmd.args(&self.extra);
        cmd.current_dir(self.cwd.as_deref().unwrap_or(default_cwd));
        cmd.env("RUST_LOG", log_level);
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }
}

/// A running worker.
pub struct Worker {
    /// Its `--name`.
    pub name: String,
    /// The process; dropping it kills the worker and every slot process it started.
    pub proc: Proc,
}
