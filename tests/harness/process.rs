//! One started program: its log files, the signals a test sends it, bounded waits for its exit,
//! and its end when the handle is dropped.
//!
//! A `Proc` owns its child. Dropping it kills the child with SIGKILL and reaps it, and, for a
//! worker, also kills every process the worker had started (its slots), so that no test leaves
//! a Python process behind even if the worker's own cleanup is broken. When the drop happens
//! while the test is panicking, the tail of each log is printed first: the failure report of a
//! test then shows what every program said.

use crate::procfs::descendants;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How much of each log a failing test prints.
const TAIL_LINES: usize = 40;
/// How far from the end of a log the tail is looked for, so that a log of many megabytes is not
/// read whole to print 40 lines.
const TAIL_BYTES: u64 = 16 * 1024;

/// A started program and where its output goes.
pub struct Proc {
    /// Names the program in log files and messages, such as `coordinator` or `worker-w1`.
    name: String,
    child: Child,
    /// Its exit status once reaped; after that its pid may belong to another process, so no
    /// signal is sent any more.
    exited: Option<ExitStatus>,
    /// Log files to print when a test fails.
    logs: Vec<PathBuf>,
    /// Whether to kill the processes it started when it is dropped (true for workers).
    kill_descendants: bool,
}

impl Proc {
    /// Starts `cmd` with stdin closed, stderr appended to `<log_dir>/<name>.stderr.log`, and
    /// stdout appended to `<name>.stdout.log`, unless `pipe_stdout`, in which case the caller
    /// gets the pipe (the coordinator's announces its address there).
    ///
    /// The child gets SIGKILL if the thread that started it ends, so that an aborted test run
    /// leaves no coordinator behind: start processes from the thread that owns their handle.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log_dir: &Path,
        pipe_stdout: bool,
    ) -> (Proc, Option<ChildStdout>) {
        fs::create_dir_all(log_dir).expect("create the log directory");
        let stderr_log = log_dir.join(format!("{name}.stderr.log"));
        let stdout_log = log_dir.join(format!("{name}.stdout.log"));
        let header = format!("=== {} ===\n", describe(&cmd));
        cmd.stdin(Stdio::null())
            .stderr(append_with_header(&stderr_log, &header));
        if pipe_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(append_with_header(&stdout_log, &header));
        }
        die_with_parent_thread(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name} ({}): {e}", describe(&cmd)));
        let stdout = child.stdout.take();
        let proc = Proc {
            name: name.to_string(),
            child,
            exited: None,
            logs: vec![stderr_log, stdout_log],
            kill_descendants: false,
        };
        (proc, stdout)
    }

    /// Also kill every process this one started when the handle is dropped: a worker's slots.
    pub fn kill_descendants_on_drop(&mut self) {
        self.kill_descendants = true;
    }

    /// The program's name in logs and messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, for tests that look at `/proc` or signal it themselves.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (a `libc::SIG*` number); a process already reaped is left alone, since its
    /// pid may have been given to another process.
    pub fn signal(&mut self, signal: i32) {
        if self.try_status().is_some() {
            return;
        }
        // SAFETY: kill(2) with the pid of our own unreaped child only sends a signal.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// SIGKILL, then reap: the process is gone when this returns.
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{} did not die of SIGKILL within 10 s", self.name))
    }

    /// SIGTERM, then a bounded wait for the exit: the graceful stop the programs promise.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.stop_with(libc::SIGTERM, "SIGTERM", timeout)
    }

    /// SIGINT (Ctrl-C), then a bounded wait for the exit.
    pub fn interrupt(&mut self, timeout: Duration) -> ExitStatus {
        self.stop_with(libc::SIGINT, "SIGINT", timeout)
    }

    fn stop_with(&mut self, signal: i32, signal_name: &str, timeout: Duration) -> ExitStatus {
        self.signal(signal);
        self.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {timeout:?} of {signal_name}",
                self.name
            )
        })
    }

    /// SIGSTOP: the process freezes (its connections stay open but nothing is read or sent).
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT: a paused process goes on.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
    }

    /// The exit status if the process has exited, reaping it; `None` while it runs.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait on a child");
        }
        self.exited
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for the process to exit; `None` if it still runs then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last lines of each of this process's logs, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for log in &self.logs {
            if let Some(tail) = tail(log) {
                out.push_str(&format!(
                    "----- {} (last {TAIL_LINES} lines) -----\n{tail}\n",
                    log.display()
                ));
            }
        }
        out
    }

    /// The whole stdout log, for the checks of what a program prints there.
    pub fn stdout_log(&self) -> String {
        fs::read_to_string(&self.logs[1]).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_tails());
        }
        let descendants = if self.kill_descendants && self.is_running() {
            descendants(self.pid())
        } else {
            Vec::new()
        };
        self.signal(libc::SIGKILL);
        let _ = self.wait_exit(Duration::from_secs(10));
        for pid in descendants {
            // SAFETY: kill(2) only sends a signal. These pids were our descendants a moment ago;
            // one that ended since cannot have been reused in so short a time.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Asks the kernel to SIGKILL the child when the thread that started it ends.
fn die_with_parent_thread(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2), which
    // is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Opens `path` for appending (a restarted program keeps one log) after writing `header`.
fn append_with_header(path: &Path, header: &str) -> File {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log {}: {e}", path.display()));
    file.write_all(header.as_bytes()).expect("write log header");
    file
}

/// The program and its arguments, for log headers and messages.
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// The last `TAIL_LINES` lines of a file, read from its last `TAIL_BYTES`.
fn tail(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    Some(lines[start..].join("\n"))
}
