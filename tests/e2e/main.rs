//! End-to-end tests: each starts the real `tatzelwurm`, `workwurm` and `actionwurm` through the
//! harness (a cluster of its own in a temp dir) and checks one behaviour a user relies on.
//!
//! Build the binaries first: `cargo build --workspace --bins && cargo test -p tatzelwurm-e2e`.
//! On 2 cores the suite takes 2 to 3 minutes with the default test threads, most of it the soak
//! test; the other tests start at most a coordinator, three workers and their slots.
//!
//! Layout, one behaviour per module:
//! - [`submit`]: many tasks over several workers; the ways to name a function; kwargs.
//! - [`failures`]: tasks that raise, are called wrongly, or return what JSON cannot carry.
//! - [`kill`]: `task kill` of a running task, of the processes it started, of waiting tasks.
//! - [`slot_crash`]: a slot process that dies, and a worker killed with its slots.
//! - [`restart`]: a coordinator stopped (gracefully or killed) and started on the same database.
//! - [`garbage`]: bytes that are not the protocol on the coordinator's port.
//! - [`output`]: a task printing megabytes.
//! - [`venv`]: a task importing a package that only the worker's virtualenv has.
//! - [`cli_errors`]: what the CLI says when a command cannot be done.
//! - [`cli_semantics`]: `task add` output, `task wait -a`, `task list --state`.
//! - [`cli_exit_status`]: waits that could never end, `wait -a` after earlier failures, an
//!   argument over the frame limit, usage errors.
//! - [`workers`]: `worker list`.
//! - [`drain`]: SIGTERM drains a worker; a second one, or `--drain-timeout`, stops it at once.
//! - [`leftovers`]: a task's leftover processes end with it (or not, with `--keep-children`);
//!   a coordinator address that cannot be parsed ends workwurm at once.
//! - [`leases`]: dead and hung (SIGSTOP) workers, fencing of late reports, at-most-once tasks.
//! - [`retries`]: retries with backoff, the crash limit, timeouts.
//! - [`recovery`]: a coordinator killed under load, and the actioners waiting on it.
//! - [`hostile`]: hostile peers: frames past the item caps, log floods, idle connections at
//!   the cap, a flapping worker, adds re-sent across `kill -9`s.
//! - [`bad_input`]: silence, slow hellos, wrong-role frames, 2,000 idle connections, cut frames
//!   after the welcome.
//! - [`storage`]: a `--db` that is a file, in use, of a newer schema, or of the other backend.
//! - [`bind`]: a `--bind` that is not an address or is taken: refused before the store opens.
//! - [`watch`]: protocol v3 over a raw connection: watches and pushes, unknown ids, keyed adds
//!   re-sent across a coordinator crash, many requests in flight.
//! - [`raw_actioner`]: the raw-protocol actioner `watch` and `events` share (not a test).
//! - [`auth`]: a coordinator with a token refuses peers without it.
//! - [`soak`]: 5,000 tasks while workers and the coordinator are killed.
//!
//! Scheduling and control (issue 11; task functions in `tests/python/scheduling.py`):
//! - [`queues`]: workers serve only their queues; `queue list`; `queue pause|resume`.
//! - [`priorities`]: higher priority first, first in first out within one; the range.
//! - [`delays`]: `--delay` and `--at`, also across a coordinator killed while a delay passed.
//! - [`schedules`]: `schedule add|list|show|pause|resume|remove`, cron errors, firings missed
//!   while the coordinator was down.
//! - [`pause`]: `task pause` and `task play` of created, ready and scheduled tasks.
//! - [`dependencies`]: `--after`, `DependencyFailed` cascades, chains across a restart.
//! - [`limits`]: `queue limit` across workers, durable, removable.
//! - [`async_tasks`]: `async def` tasks under `--async-concurrency`; kill and timeout of one.
//! - [`reload`]: a changed task file is re-imported for the next task, unless `--no-reload`.
//! - [`prefetch`]: attempts queued on a worker behind its busy slots: taken back by an idle
//!   worker, killed while queued, lost with their worker.
//! - [`held`]: a chain's links go ahead to the worker running the link before, yet each starts
//!   only after that one completed; a link failing for good fails the rest unrun.
//!
//! Operations (issue 12):
//! - [`events`]: `actionwurm events`: a follower restarted `--since` its last event across a
//!   coordinator `kill -9` sees every sequence number once and in order; `--task`/`--queue`
//!   filters and JSON lines; a watcher that does not read is dropped with `Lagged`.
//! - [`live_logs`]: `task logs [--follow]` streams a running task's lines before it ends, the
//!   kept output of a finished task, a retried task's attempts in turn; `live_logs/raw.rs`
//!   proves the coordinator's side alone with a stand-in worker.
//! - [`purge`]: `task purge` by id and by age; a purged id is reported as purged; a purge under
//!   load across a `kill -9` loses no live task.
//! - [`retention`]: `--keep-finished 2s` purges finished tasks on its own and keeps live ones.
//! - [`worker_control`]: `worker drain NAME` drains that worker as SIGTERM would; an unknown
//!   name's sentence; `worker list` shows slot RSS, CPU and uptime.
//! - [`memory_limit`]: `workwurm --max-memory`: a task past it fails `MemoryLimit` and is
//!   retried; a slot left past it keeps the result and is replaced.
//! - [`metrics`]: `/metrics` parsed as Prometheus does: counters, histograms and gauges move as
//!   tasks run.
//! - [`http_api`]: the JSON API (list, show, add, play, kill, workers, queues), the token rule,
//!   JSON errors with fitting statuses, `/api/events` as server-sent events.
//! - [`tls`]: TLS with rcgen certificates: a worker and an actioner run a task and the token
//!   never crosses in clear; plain/TLS mismatches, untrusted, expired and wrong-name
//!   certificates and a mismatched key each get one sentence.
//! - [`terminal`]: `task wait` draws a progress bar on a pseudo-terminal and nothing when piped.

mod async_tasks;
mod auth;
mod bad_input;
mod bind;
mod cli_errors;
mod cli_exit_status;
mod cli_semantics;
mod delays;
mod dependencies;
mod drain;
mod events;
mod failures;
mod garbage;
mod held;
mod hostile;
mod http_api;
mod kill;
mod leases;
mod leftovers;
mod limits;
mod live_logs;
mod memory_limit;
mod metrics;
mod output;
mod pause;
mod prefetch;
mod priorities;
mod purge;
mod queues;
mod raw_actioner;
mod recovery;
mod reload;
mod restart;
mod retention;
mod retries;
mod schedules;
mod slot_crash;
mod soak;
mod storage;
mod submit;
mod terminal;
mod tls;
mod venv;
mod watch;
mod worker_control;
mod workers;

use std::time::Duration;

/// How long a short task may take from being played to being finished, on a loaded machine
/// running several tests at once.
pub const TASK_TIMEOUT: Duration = Duration::from_secs(30);

/// JSON array lines `[i]` for `task add --args-file`, one per number.
pub fn number_lines(numbers: impl IntoIterator<Item = u64>) -> Vec<String> {
    numbers.into_iter().map(|i| format!("[{i}]")).collect()
}
