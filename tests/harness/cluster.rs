//! A coordinator in a temp dir of its own, and the workers started against it.
//!
//! `Cluster::start` makes the temp dir, starts `tatzelwurm --bind 127.0.0.1:0 --db <tmp>/db` and
//! reads the address it announces on stdout. The coordinator can be stopped (SIGTERM, SIGINT or
//! SIGKILL) and started again on the same port and database, which is how the restart tests run;
//! extra coordinator flags (`--heartbeat`, `--lease`, ...) given at the start are kept for every
//! restart, and its log can be searched for a line (`wait_coordinator_log`).
//! Workers (see `worker`) are handles owned by the test, so a test can kill or pause each one.
//! All logs go to `<tmp>/logs`; set `TATZELWURM_KEEP_TMP=1` to keep the temp dir of a failed test.

use crate::binaries::{Binaries, Profile};
use crate::process::Proc;
use crate::supervisor::Supervisor;
use crate::wait::wait_for;
use crate::worker::{Worker, WorkerSpec};
use std::cell::Cell;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, ExitStatus};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use tempfile::TempDir;

/// How long the coordinator may take to open its store and announce its address.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop (SIGTERM or SIGINT) may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a restart on a fixed port is tried when the port is not free yet.
const RESTART_TRIES: u32 = 5;

/// How a cluster is started.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Which build of the programs to run.
    pub profile: Profile,
    /// `RUST_LOG` for the coordinator and workers: `info` unless `RUST_LOG` is set, so that a
    /// failing test's logs say what happened; the benchmark lowers it to keep logging off the clock.
    pub log_level: String,
    /// `TATZELWURM_TOKEN` for the coordinator, and for every worker and CLI command the cluster
    /// starts (a test may give a worker or a command another one). None unless a test sets it.
    pub token: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            profile: Profile::Debug,
            log_level: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string()),
            token: None,
        }
    }
}

/// How to stop the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: the graceful stop of a service manager.
    Term,
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
    /// SIGKILL: a crash, as far as the coordinator can tell.
    Kill,
}

/// A running coordinator and the address it announced.
pub struct Coordinator {
    /// The process.
    pub proc: Proc,
    /// `127.0.0.1:PORT`, as announced on its stdout.
    pub addr: String,
}

/// A temp dir, the coordinator running in it, and what is needed to start workers and run the CLI.
pub struct Cluster {
    bins: Binaries,
    options: ClusterOptions,
    /// `None` only between a stop and the next start of the coordinator.
    coordinator: Option<Coordinator>,
    /// The last address the coordinator announced; a restart binds it again.
    addr: String,
    /// The coordinator's arguments after `--bind` and `--db`; a restart passes them again.
    coordinator_args: Vec<String>,
    workers_started: Cell<usize>,
    // Dropped last, after the coordinator, so that the logs outlive every process.
    dir: TempDir,
}

impl Cluster {
    /// A cluster of the debug binaries; panics if they are not built.
    pub fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default())
    }

    /// A cluster with the given options.
    pub fn start_with(options: ClusterOptions) -> Cluster {
        Cluster::start_configured(options, &[])
    }

    /// A cluster of the debug binaries whose coordinator also gets `args`, such as
    /// `["--heartbeat", "0.2", "--lease", "1"]`.
    pub fn start_with_args(args: &[&str]) -> Cluster {
        Cluster::start_configured(ClusterOptions::default(), args)
    }

    /// A cluster with the given options whose coordinator also gets `args` after `--bind` and
    /// `--db`, every time it is started.
    pub fn start_configured(options: ClusterOptions, args: &[&str]) -> Cluster {
        let bins = Binaries::locate(options.profile);
        let dir = tempfile::Builder::new()
            .prefix("tatzelwurm-e2e-")
            .tempdir()
            .expect("create a temp dir");
        let coordinator_args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let launch = Launch {
            bins: &bins,
            dir: dir.path(),
            log_level: &options.log_level,
            args: &coordinator_args,
            token: options.token.as_deref(),
        };
        let coordinator =
            start_coordinator(&launch, "127.0.0.1:0").unwrap_or_else(|message| panic!("{message}"));
        Cluster {
            addr: coordinator.addr.clone(),
            coordinator: Some(coordinator),
            bins,
            options,
            coordinator_args,
            workers_started: Cell::new(0),
            dir,
        }
    }

    /// The temp dir: the database, the logs and any file a test writes live here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the logs of every process and the CLI's command log are.
    pub fn log_dir(&self) -> PathBuf {
        self.dir().join("logs")
    }

    /// The programs this cluster runs.
    pub fn bins(&self) -> &Binaries {
        &self.bins
    }

    /// The coordinator's address, also while it is stopped (it comes back on the same one).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The running coordinator; panics while it is stopped.
    pub fn coordinator(&mut self) -> &mut Coordinator {
        self.coordinator
            .as_mut()
            .expect("the coordinator is stopped; start it again first")
    }

    /// Stops the coordinator and waits for its exit (bounded); returns its exit status.
    pub fn stop_coordinator(&mut self, how: Stop) -> ExitStatus {
        let mut coordinator = self
            .coordinator
            .take()
            .expect("the coordinator is already stopped");
        let proc = &mut coordinator.proc;
        match how {
            Stop::Term => proc.terminate(STOP_TIMEOUT),
            Stop::Interrupt => proc.interrupt(STOP_TIMEOUT),
            Stop::Kill => proc.kill9(),
        }
    }

    /// Starts the coordinator again on the same address and database, retrying a few times if
    /// the port is not free again yet.
    pub fn start_coordinator_again(&mut self) {
        assert!(self.coordinator.is_none(), "stop the coordinator first");
        let mut last_error = String::new();
        for _ in 0..RESTART_TRIES {
            let launch = Launch {
                bins: &self.bins,
                dir: self.dir(),
                log_level: &self.options.log_level,
                args: &self.coordinator_args,
                token: self.options.token.as_deref(),
            };
            match start_coordinator(&launch, &self.addr) {
                Ok(coordinator) => {
                    assert_eq!(coordinator.addr, self.addr, "restarted on another address");
                    self.coordinator = Some(coordinator);
                    return;
                }
                Err(message) => last_error = message,
            }
            thread::sleep(Duration::from_millis(300));
        }
        panic!(
            "the coordinator did not start again on {}: {last_error}",
            self.addr
        );
    }

    /// Stops the coordinator as `how` says and starts it again on the same address and database.
    pub fn restart_coordinator(&mut self, how: Stop) {
        self.stop_coordinator(how);
        self.start_coordinator_again();
    }

    /// Everything the coordinator wrote to stderr (its log), over all its starts; also while it
    /// is stopped.
    pub fn coordinator_log(&self) -> String {
        std::fs::read_to_string(self.log_dir().join("coordinator.stderr.log")).unwrap_or_default()
    }

    /// Waits until a line of the coordinator's log contains `needle`, and returns that line.
    pub fn wait_coordinator_log(&self, needle: &str, timeout: Duration) -> String {
        wait_for(
            &format!("a line with `{needle}` in the coordinator's log"),
            timeout,
            || {
                self.coordinator_log()
                    .lines()
                    .find(|line| line.contains(needle))
                    .map(str::to_string)
            },
        )
    }

    /// Starts a worker and waits (bounded) until the coordinator lists it.
    pub fn start_worker(&self, spec: WorkerSpec) -> Worker {
        let worker = self.spawn_worker(spec);
        self.wait_worker_connected(&worker.name);
        worker
    }

    /// Starts a worker without waiting for it to connect.
    pub fn spawn_worker(&self, spec: WorkerSpec) -> Worker {
        let spec = self.with_token(spec);
        let name = self.next_worker_name(&spec);
        let cmd = spec.command(
            &self.bins.workwurm,
            &name,
            self.addr(),
            self.dir(),
            &self.options.log_level,
        );
        let (mut proc, _) = Proc::spawn(&format!("worker-{name}"), cmd, &self.log_dir(), false);
        proc.kill_descendants_on_drop();
        Worker { name, proc }
    }

    /// Starts a worker on a thread of its own that starts it again whenever it dies, until the
    /// returned handle is dropped (see `supervisor`); does not wait for it to connect.
    pub fn supervise_worker(&self, spec: WorkerSpec) -> Supervisor {
        let spec = self.with_token(spec);
        let name = self.next_worker_name(&spec);
        let cmd_name = name.clone();
        let (program, addr, dir) = (
            self.bins.workwurm.clone(),
            self.addr().to_string(),
            self.dir().to_path_buf(),
        );
        let log_level = self.options.log_level.clone();
        let command = move || spec.command(&program, &cmd_name, &addr, &dir, &log_level);
        Supervisor::start(&name, command, self.log_dir())
    }

    /// The spec with the cluster's token, unless the spec sets one of its own.
    fn with_token(&self, spec: WorkerSpec) -> WorkerSpec {
        match &self.options.token {
            Some(token) => spec.env_first(tatzelwurm_proto::TOKEN_ENV, token),
            None => spec,
        }
    }

    /// The cluster's token as the environment of a CLI command.
    pub(crate) fn token_env(&self) -> Vec<(&str, &str)> {
        self.options
            .token
            .as_deref()
            .map(|token| (tatzelwurm_proto::TOKEN_ENV, token))
            .into_iter()
            .collect()
    }

    /// The spec's `--name`, else `w<n>` for the cluster's n-th worker.
    fn next_worker_name(&self, spec: &WorkerSpec) -> String {
        let n = self.workers_started.get() + 1;
        self.workers_started.set(n);
        spec.name_or(&format!("w{n}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !thread::panicking() {
            return;
        }
        let log = self.log_dir().join("actionwurm.log");
        let commands = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = commands.lines().collect();
        let recent = lines[lines.len().saturating_sub(30)..].join("\n");
        eprintln!(
            "----- last CLI commands ({}) -----\n{recent}",
            log.display()
        );
        if std::env::var_os("TATZELWURM_KEEP_TMP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept the temp dir {}", self.dir().display());
        }
    }
}

/// What every start of a cluster's coordinator has in common.
struct Launch<'a> {
    bins: &'a Binaries,
    dir: &'a Path,
    log_level: &'a str,
    args: &'a [String],
    token: Option<&'a str>,
}

/// Starts `tatzelwurm --bind BIND --db <dir>/db ARGS...` and waits for its `listening on ADDR`
/// line; the error is a sentence with the coordinator's log, for a coordinator that exits or
/// stays silent.
fn start_coordinator(launch: &Launch, bind: &str) -> Result<Coordinator, String> {
    let dir = launch.dir;
    let mut cmd = Command::new(&launch.bins.tatzelwurm);
    cmd.arg("--bind")
        .arg(bind)
        .arg("--db")
        .arg(dir.join("db"))
        .args(launch.args)
        .current_dir(dir)
        .env("RUST_LOG", launch.log_level)
        .env_remove(tatzelwurm_proto::COORDINATOR_ENV)
        .env_remove(tatzelwurm_proto::TOKEN_ENV);
    if let Some(token) = launch.token {
        cmd.env(tatzelwurm_proto::TOKEN_ENV, token);
    }
    let log_dir = dir.join("logs");
    let (mut proc, stdout) = Proc::spawn("coordinator", cmd, &log_dir, true);
    let announced = watch_stdout(
        stdout.expect("piped stdout"),
        log_dir.join("coordinator.stdout.log"),
    );
    match announced.recv_timeout(STARTUP_TIMEOUT) {
        Ok(addr) => Ok(Coordinator { proc, addr }),
        Err(_) => {
            let status = proc.wait_exit(Duration::from_millis(200));
            Err(format!(
                "the coordinator did not print `listening on ADDR` within {STARTUP_TIMEOUT:?} \
                 (exit status: {status:?})\n{}",
                proc.log_tails()
            ))
        }
    }
}

/// Copies the coordinator's stdout into its log on a thread and sends the address of the first
/// `listening on ADDR` line; the channel closes without one if stdout ends first.
fn watch_stdout(stdout: ChildStdout, log: PathBuf) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut file = OpenOptions::new().create(true).append(true).open(log).ok();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(file) = file.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    rx
}
