//! A worker kept running by the harness, as a service manager would: started again whenever it
//! dies, for the tests whose task kills its own worker.
//!
//! The supervisor is a thread that owns the worker's process: it must be, because every process
//! the harness starts gets SIGKILL when the thread that started it ends. The thread polls the
//! worker, starts it again (same name, same command, same logs) when it has exited, and stops
//! when the handle is dropped, killing the worker and its slots. The number of starts is capped,
//! so a worker that dies at once cannot make the thread spin for ever.

use crate::process::Proc;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often the thread looks whether its worker still runs.
const CHECK_INTERVAL: Duration = Duration::from_millis(20);
/// At most this many starts; beyond that a dead worker stays dead.
pub const MAX_STARTS: usize = 50;

/// What the supervising thread and the handle share.
#[derive(Default)]
struct Shared {
    /// Set by the handle's drop: the thread kills the worker and ends.
    stop: AtomicBool,
    /// Set before `stop` when the test is failing: the thread prints the worker's logs.
    print_logs: AtomicBool,
    /// How many times the worker was started, the first start included.
    starts: AtomicUsize,
    /// The pid of the current worker process (0 before the first start).
    pid: AtomicI32,
}

/// The handle of a supervised worker; dropping it stops the supervision and kills the worker.
pub struct Supervisor {
    /// The worker's `--name`.
    pub name: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts a thread that runs `command()` as the worker `name` (logs in `log_dir`) and starts
    /// it again each time it exits.
    pub(crate) fn start(
        name: &str,
        command: impl Fn() -> Command + Send + 'static,
        log_dir: PathBuf,
    ) -> Supervisor {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            let proc_name = format!("worker-{name}");
            thread::Builder::new()
                .name(format!("supervise-{name}"))
                .spawn(move || supervise(&proc_name, command, &log_dir, &shared))
                .expect("start the supervisor thread")
        };
        Supervisor {
            name: name.to_string(),
            shared,
            thread: Some(thread),
        }
    }

    /// How many times the worker was started so far, the first start included.
    pub fn starts(&self) -> usize {
        self.shared.starts.load(Ordering::SeqCst)
    }

    /// The pid of the worker process started last.
    pub fn pid(&self) -> i32 {
        self.shared.pid.load(Ordering::SeqCst)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if thread::panicking() {
            self.shared.print_logs.store(true, Ordering::SeqCst);
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The supervising loop: bounded by `MAX_STARTS` and ended by `stop`.
fn supervise(
    name: &str,
    command: impl Fn() -> Command,
    log_dir: &std::path::Path,
    shared: &Shared,
) {
    let mut worker: Option<Proc> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let dead = worker.as_mut().is_none_or(|proc| !proc.is_running());
        if dead && shared.starts.load(Ordering::SeqCst) < MAX_STARTS {
            let (mut proc, _) = Proc::spawn(name, command(), log_dir, false);
            proc.kill_descendants_on_drop();
            shared.pid.store(proc.pid(), Ordering::SeqCst);
            shared.starts.fetch_add(1, Ordering::SeqCst);
            worker = Some(proc);
        }
        thread::sleep(CHECK_INTERVAL);
    }
    if let Some(proc) = worker {
        if shared.print_logs.load(Ordering::SeqCst) {
            eprintln!("{}", proc.log_tails());
        }
        // Dropping the handle kills the worker and the slots it started.
        drop(proc);
    }
}
