//! Running the CLI, `actionwurm`, with a time limit, and reading what it printed.
//!
//! Each run is one process, as a user's command is; it is killed if it outlives its limit, so a
//! CLI that hangs fails the test with the command named instead of hanging the suite. Every run
//! is appended to a command log that a failing test prints.

use serde_json::Value;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a CLI command may take unless a test says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One finished run of `actionwurm` (or of another command run with `run_command`).
#[derive(Debug)]
pub struct Action {
    /// The program's file name, for messages.
    pub program: String,
    /// The arguments after the program name.
    pub args: Vec<String>,
    /// How it exited.
    pub status: ExitStatus,
    /// All it printed on stdout.
    pub stdout: String,
    /// All it printed on stderr.
    pub stderr: String,
    /// How long it ran, for the tests that check a deadline.
    pub elapsed: Duration,
}

impl Action {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Itself if it succeeded; else panics showing the command and its stderr.
    pub fn ok(self) -> Action {
        assert!(self.success(), "expected success: {self}");
        self
    }

    /// Itself if it failed; else panics showing the command and its output.
    pub fn failed(self) -> Action {
        assert!(!self.success(), "expected a failure: {self}");
        self
    }

    /// Its stderr as one sentence on one line; panics showing the command when it is empty or
    /// has more lines (a backtrace, a log, a usage text).
    pub fn one_sentence(&self) -> &str {
        let lines: Vec<&str> = self.stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self}");
        assert!(
            !lines[0].trim().is_empty(),
            "an empty line on stderr: {self}"
        );
        lines[0]
    }

    /// Its stdout parsed as JSON; panics showing the output when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// Its stdout read as task ids, one per line, as `task add` prints them.
    pub fn ids(&self) -> Vec<u64> {
        self.stdout
            .lines()
            .map(|line| {
                line.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("`{line}` is not a task id: {self}"))
            })
            .collect()
    }

    /// The lines of its stdout that are task ids, others skipped: what an add that was cut
    /// short (its coordinator killed) printed before it failed, if anything.
    pub fn printed_ids(&self) -> Vec<u64> {
        self.stdout
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{} {}` exited with {} after {:?}\n  stdout: {}\n  stderr: {}",
            self.program,
            self.args.join(" "),
            self.status,
            self.elapsed,
            abbreviate(&self.stdout),
            abbreviate(&self.stderr)
        )
    }
}

/// Runs `actionwurm [--coordinator ADDR] ARGS...` with the extra environment `env`, and waits at
/// most `timeout` for it; on timeout kills it and panics. An inherited `TATZELWURM_COORDINATOR`
/// is removed so that only the test decides where it connects. The run is appended to `log`.
pub fn run(
    program: &Path,
    coordinator: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
    log: Option<&Path>,
) -> Action {
    let mut cmd = Command::new(program);
    cmd.env_remove(tatzelwurm_proto::COORDINATOR_ENV)
        .env_remove(tatzelwurm_proto::TOKEN_ENV);
    if let Some(addr) = coordinator {
        cmd.arg("--coordinator").arg(addr);
    }
    cmd.args(args).envs(env.iter().copied());
    let action = run_command(cmd, timeout);
    if let Some(log) = log {
        append_to_log(log, &action);
    }
    action
}

/// Runs `cmd` with stdin closed and its output read on two threads (so a command printing
/// megabytes cannot block on a full pipe), killing it and panicking after `timeout`.
pub fn run_command(mut cmd: Command, timeout: Duration) -> Action {
    let program = Path::new(cmd.get_program())
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {program}: {e}"));
    let stdout = read_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_in_background(child.stderr.take().expect("piped stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait on actionwurm") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "`{program} {}` did not finish within {timeout:?}; stderr so far: {}",
                args.join(" "),
                abbreviate(&stderr)
            );
        }
        thread::sleep(Duration::from_millis(3));
    };
    Action {
        program,
        args,
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn append_to_log(path: &Path, action: &Action) {
    if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(file, "{action}");
    }
}

/// At most a few hundred characters of `text` on one line, for messages about big outputs.
fn abbreviate(text: &str) -> String {
    const LIMIT: usize = 600;
    let flat = text.trim_end().replace('\n', "⏎");
    if flat.chars().count() <= LIMIT {
        return flat;
    }
    let head: String = flat.chars().take(LIMIT).collect();
    format!("{head}… ({} bytes in all)", text.len())
}
