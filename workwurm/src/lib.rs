//! workwurm, the tatzelwurm worker: runs Python tasks from the coordinator in slot processes of
//! the user's own interpreter, several at once, and reports how each ended.
//!
//! Layout:
//! - [`entry`]: [`main`], what the cargo binary and the Python package's `workwurm` command both
//!   call: the command line, logging, a runtime, one sentence and an exit code.
//! - [`cli`]: the command line, the [`Launch`] of the caller, and the settled [`Config`] they
//!   become.
//! - [`interpreter`]: finding the user's `python3` and checking once at start that it runs.
//! - [`session`]: the connection to the coordinator (plain or `--tls`): handshake, heartbeats,
//!   reports, usage, live output, the coordinator's drain, reconnecting with back-off; the only
//!   code that speaks proto's messages.
//! - [`outbox`]: reports not yet acknowledged by the coordinator, and cutting them into frames.
//! - [`gather`]: the session writer's queue, which lets the runtime turn a few times before a
//!   write, so that the reports of one burst share one socket write.
//! - [`slot_table`]: the rules of the slots as a plain struct: the queue of attempts the
//!   coordinator handed this worker (prefetch), what each slot holds, kills, cancels, timeouts,
//!   crashes, take-backs and restarts, (in `slot_table/together.rs`) the tasks of `async def`
//!   functions that one slot runs together on its event loop, up to `--async-concurrency`, and
//!   (in `slot_table/waits.rs`) the start condition of held tasks, which the coordinator sends
//!   ahead of the tasks they run after, and (in `slot_table/memory.rs`) `--max-memory`; tested
//!   without Python.
//! - [`slots`]: the slot pool actor around the table: starts and kills the slot processes, writes
//!   their frames, reads their events, and tells the session which attempts reached a slot
//!   (`Started`) and how they ended.
//! - [`failures`]: the errors the worker reports for a task that could not (`SlotCrashed`,
//!   `Timeout`).
//! - [`captured`]: reading what a task wrote when its slot was killed or died under it.
//! - [`slot_process`]: starting one slot process (pipes on fds 3 and 4, the lifeline on fd 5, the
//!   doorbell on fd 6, own process group, dies with workwurm) and watching it until it ends.
//! - [`lifeline`]: the pipe whose end of file tells each slot's guardian process that workwurm is
//!   gone, so that a `kill -9` of workwurm leaves no slot and no process of a task behind.
//! - [`doorbell`]: when the watcher reads a slot's frames: when the slot rings (a byte on a pipe
//!   of its own) and shortly after, so that a stream of fast tasks wakes workwurm about once a
//!   millisecond rather than once per task.
//! - [`slot_channel`]: the framed JSON protocol on a slot's pipes, whose other half is
//!   `python/tatzelwurm/slot.py`, the slot loop carried in this binary (and run as
//!   `python -m tatzelwurm.slot` by the Python package).
//! - [`stop`]: the first SIGTERM or ctrl-c, or the coordinator's `Drain`, drains (finish what is
//!   running, take nothing new), the second signal or `--drain-timeout` stops at once.
//! - [`usage`]: the slots' resident memory and CPU time from `/proc`, for the coordinator's
//!   `Usage` (every second heartbeat) and for `--max-memory`, whose rules are the table's
//!   (`slot_table/memory.rs`).
//! - [`live_output`]: what a running task writes, read from its slot's capture files a few
//!   times a second and sent to the coordinator in `Output` frames while the task runs.
//!
//! Data flow: session → `SlotsHandle::run` → the table's queue → a slot's pipe (several fast
//! tasks per frame) → slot.py runs them one by one (or, for coroutine functions, several at once
//! on its event loop) → the slot's watcher → the pool → `Started`, `Coroutines` and reports on a
//! channel → the session's outbox → the coordinator.
//!
//! The worker serves the queues named by `--queue` (the coordinator picks what it hands out);
//! hot reload (importing changed source files afresh, off with `--no-reload`) lives entirely in
//! slot.py, which documents what is and is not reloaded.

pub mod captured;
pub mod cli;
pub mod doorbell;
pub mod entry;
pub mod failures;
pub mod gather;
pub mod interpreter;
pub mod lifeline;
pub mod live_output;
pub mod outbox;
pub mod session;
pub mod slot_channel;
pub mod slot_process;
pub mod slot_table;
pub mod slots;
pub mod stop;
pub mod usage;

pub use cli::{Config, Launch};
pub use entry::main;

use anyhow::Context;
use session::Session;
use slot_process::SlotCommand;
use slots::SlotsHandle;
use std::time::Duration;
use stop::Stop;
use tatzelwurm_proto::handshake::WorkerHello;
use tokio::sync::watch;
use tracing::{info, warn};

/// How long the worker waits for its slots' first hello before it connects anyway.
const SLOTS_START_WAIT: Duration = Duration::from_secs(10);

/// How long a shutdown waits for the slot processes to be gone.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the worker until SIGTERM or ctrl-c has drained it or stopped it (then `Ok`), or until
/// the coordinator refuses it or the interpreter does not run (then an error whose text is one
/// sentence for the user).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let stopping = stop::from_signals(config.drain_timeout);
    serve(config, stopping).await
}

/// Like [`run`], but driven by `stop` instead of signals (for tests, and for anyone embedding
/// the worker): `Draining` finishes what is running and leaves, `Now` leaves at once. The
/// coordinator's `Drain` still drains, with `--drain-timeout`.
pub async fn run_until(config: Config, stop: watch::Receiver<Stop>) -> anyhow::Result<()> {
    let stopping = stop::from_level(stop, config.drain_timeout);
    serve(config, stopping).await
}

async fn serve(config: Config, stopping: stop::Stopping) -> anyhow::Result<()> {
    let version = interpreter::probe(&config.python).await?;
    info!(
        "worker {} with {} slot{} of Python {} ({}), queue{} {}, {} async task{} per slot, hot reload {}, memory limit {}, coordinator {}",
        config.name,
        config.slots,
        if config.slots == 1 { "" } else { "s" },
        version,
        config.python.display(),
        if config.queues.len() == 1 { "" } else { "s" },
        config.queues.join(", "),
        config.async_concurrency,
        if config.async_concurrency == 1 { "" } else { "s" },
        if config.reload { "on" } else { "off" },
        config
            .max_memory
            .map_or_else(
                || "none".to_string(),
                |limit| format!("{} MB per slot", failures::megabytes(limit))
            ),
        config.coordinator
    );
    // One lifeline for the life of this process: its write end closes only when workwurm exits.
    let mut command = SlotCommand::new(config.python.clone(), config.extra_path())
        .context("cannot create the pipe that ties the slots' lives to workwurm's")?;
    command.program = config.program.clone();
    command.keep_children = config.keep_children;
    command.reload = config.reload;
    command.max_memory = config.max_memory;
    let (slots, reports) = SlotsHandle::start(
        command,
        config.slots as usize,
        config.async_concurrency as usize,
    );
    // Offer the coordinator slots that can run a task now; a slot that cannot start at all
    // is reported by the pool and retried, and must not keep the worker away for good.
    if tokio::time::timeout(SLOTS_START_WAIT, slots.started())
        .await
        .is_err()
    {
        warn!(
            "not every slot started within {} s; connecting anyway",
            SLOTS_START_WAIT.as_secs()
        );
    }
    let session = Session {
        address: &config.coordinator,
        hello: WorkerHello {
            name: config.name.clone(),
            slots: config.slots,
            python: version,
            queues: config.queues.clone(),
            async_concurrency: config.async_concurrency,
        },
        token: config.token.clone(),
        tls: config.tls.clone(),
        slots: &slots,
        reports,
        coroutines: Vec::new(),
        drainer: stopping.drainer,
        meter: usage::CpuMeter::default(),
        abandoned: Default::default(),
    };
    let result = session.serve(stopping.level).await;
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, slots.shutdown())
        .await
        .is_err()
    {
        warn!(
            "slot processes were still exiting after {} s",
            SHUTDOWN_TIMEOUT.as_secs()
        );
    }
    Ok(result?)
}
