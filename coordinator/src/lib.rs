//! The tatzelwurm coordinator: owns the tasks (persisted in the store) and the workers.
//!
//! Layout:
//! - [`entry`]: `main(argv)`, what the binary and the Python package's entry point call;
//!   [`cli`]: the command line (`--bind`, `--db`, timings).
//! - [`store`]: the durable store, the only module that knows its backends (sled, fjall);
//!   [`record`]: the stored `TaskRecord`.
//! - [`task_table`]: the task state machine, a plain struct tested directly: the live tasks,
//!   the ready lanes per queue and priority, one due-time index for start times and retries,
//!   the dependency counts of tasks that run after others, and the dependents held by the
//!   worker that runs their dependencies (`task_table/held.rs`).
//! - [`queues`]: per queue, its settings (paused, limit), finished counts (durable) and live
//!   counts; held by the task table.
//! - [`scheduler`]: the one owner of dispatch (workers and the queues they serve, flights,
//!   least-loaded choice in units of a slot, coroutine functions, per-queue assigned counts
//!   for limits, prefetch depth from per-function durations, take-back), a plain struct tested
//!   directly.
//! - [`schedules`]: named schedules (every N seconds, or a cron line in a time zone) that add
//!   a task when they come due, a plain struct tested directly.
//! - [`flaps`]: workers that keep connecting and dropping, held off with a backoff.
//! - [`add_keys`]: the idempotency keys of recent adds, a plain struct too.
//! - [`tasks`]: the task actor that owns the table, the scheduler and the schedules, and its
//!   handle; it sleeps until a message or the earliest due time (a start, a retry, a firing).
//! - [`events`]: the event log's state in the task actor (sequence numbers, trimming to
//!   `--keep-events`, the live subscribers); [`event_feed`]: one watcher's feed: replay from the
//!   store, then the live events, no gap and no repeat (`Command::Events`, the HTTP page's SSE).
//! - [`retention`]: purges of finished tasks by age, off the task actor in pages
//!   (`task purge --finished-before`, and `--keep-finished` on a timer).
//! - [`logs`]: the live output hub, an actor apart from the task actor: what running attempts
//!   have written so far, and the followers of each task; [`log_follow`]: answers
//!   `task logs [--follow]` from the hub, the task actor's watch and the kept output.
//! - [`telemetry`]: the counters and histograms the coordinator keeps about itself (metrics
//!   crate, Prometheus recorder installed once per process); [`http`]: `--http`: /metrics, the
//!   dashboard, the JSON API and server-sent events (axum).
//! - [`waiters`]: open `task wait` requests; [`watchers`]: watched tasks, pushed `Finished`
//!   when they finish. Both held by the task actor; both keep dense runs of ids as
//!   [`id_bits`], a bit per id.
//! - [`log_limit`]: repeated warnings aggregated per peer and kind, so the log stays bounded.
//! - [`retry`]: how long a failed attempt waits before its retry (backoff with jitter).
//! - [`admission`]: who gets a connection at the cap (idle actioners make room).
//! - [`listener`], [`handshake`], [`worker_conn`], [`actioner_conn`]: the network side;
//!   [`paging`]: cutting task lists into frames that fit.
//!
//! `run` takes an open store, a bound listener and a shutdown future, so a test can start a
//! whole coordinator in-process on `127.0.0.1:0`.

pub mod actioner_conn;
pub mod add_keys;
pub mod admission;
pub mod cli;
pub mod entry;
pub mod event_feed;
pub mod events;
pub mod flaps;
pub mod handshake;
pub mod http;
pub mod id_bits;
pub mod listener;
pub mod log_follow;
pub mod log_limit;
pub mod logs;
pub mod paging;
pub mod queues;
pub mod record;
pub mod retention;
pub mod retry;
pub mod scheduler;
pub mod schedules;
pub mod store;
pub mod task_table;
pub mod tasks;
pub mod telemetry;
pub mod waiters;
pub mod watchers;
pub mod worker_conn;

pub use entry::main;

use add_keys::AddKeys;
use schedules::Schedules;
use std::future::Future;
use std::time::Duration;
use store::{Store, StoreError};
use task_table::TaskTable;
use tasks::TasksHandle;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Why `run` ended other than by its shutdown future.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store could not be read at start.
    #[error("{0}")]
    Load(StoreError),
    /// A write or flush failed while serving: nothing of it was acknowledged.
    #[error("{0}; stopped so that no unrecorded change is acknowledged (a restart recovers the last durable state)")]
    Store(StoreError),
}

impl RunError {
    /// The exit status the binary ends with: 1 for a store that cannot be loaded, 2 for one
    /// that failed while serving.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Load(_) => 1,
            RunError::Store(_) => 2,
        }
    }
}

/// Timings the coordinator runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often workers must send a heartbeat (told to them in the welcome).
    pub heartbeat: Duration,
    /// How long a worker may stay silent before its connection is closed and its tasks are
    /// requeued; its heartbeats renew it.
    pub lease: Duration,
    /// How long a new connection may take to send its hello before it is closed.
    pub handshake_timeout: Duration,
    /// The shared secret every peer must show in its hello (`TATZELWURM_TOKEN`); `None` lets
    /// every peer in.
    pub token: Option<String>,
    /// Open connections at most; at the cap a new one displaces the longest-idle actioner
    /// (see `admission`).
    pub max_connections: usize,
    /// Finished tasks older than this are purged on their own (`--keep-finished`); `None`
    /// keeps them until a `task purge`.
    pub keep_finished: Option<Duration>,
    /// Events kept in the event log at most (`--keep-events`); the oldest go first.
    pub keep_events: u64,
    /// The certificate and key to serve TLS with (`--tls-cert`, `--tls-key`); `None` serves
    /// plain TCP.
    pub tls: Option<tatzelwurm_proto::tls::ServerTls>,
}

/// What every connection needs: the task actor and the configuration. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    /// The task actor.
    pub tasks: TasksHandle,
    /// Timings.
    pub config: Config,
    /// Connection-level warnings, aggregated per address and kind.
    pub peer_log: std::sync::Arc<log_limit::PeerLog>,
    /// Reads of the store that need not pass the task actor (event replay, purge scans).
    pub reader: store::StoreReader,
    /// The live output hub: running tasks' output as it is written (`task logs --follow`).
    pub logs: logs::LogsHandle,
}

/// Loads the store, starts the actors and serves `listener` until `shutdown` completes, or
/// until the store fails (then the error says why; nothing unrecorded was acknowledged).
pub async fn run(
    config: Config,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with(config, store, listener, None, shutdown).await
}

/// `run`, serving HTTP on `http` too (`--http`: metrics, the dashboard, the JSON API).
pub async fn run_with(
    config: Config,
    store: Store,
    listener: TcpListener,
    http: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let loaded = store.load().map_err(RunError::Load)?;
    let count = loaded.tasks.len();
    let now = tatzelwurm_proto::task::Timestamp::now();
    let table = TaskTable::recover(
        loaded.tasks,
        loaded.next_task_id,
        loaded.queues,
        now,
        &store,
    );
    let add_keys = AddKeys::recover(loaded.add_keys, now);
    let schedules = Schedules::load(loaded.schedules, now);
    info!(
        tasks = count,
        next_id = loaded.next_task_id,
        add_keys = add_keys.len(),
        schedules = schedules.len(),
        "store loaded"
    );
    if let Ok(addr) = listener.local_addr() {
        if config.token.is_none() && !addr.ip().is_loopback() {
            warn!(
                "listening on {addr} without a token: anyone who can connect can run any Python function on the workers; set {} on the coordinator, its workers and actioners",
                tatzelwurm_proto::TOKEN_ENV
            );
        }
    }
    let events = events::EventLog::recover(
        loaded.events.next_seq,
        loaded.events.oldest,
        config.keep_events,
    );
    let reader = store.reader();
    let (tasks, failed) = TasksHandle::new(table, add_keys, schedules, store, events);
    // Recovered ready tasks wait for workers; a wake makes the first round write the
    // recovered states back.
    tasks.wake().await;
    let ctx = Context {
        tasks,
        config,
        peer_log: Default::default(),
        reader,
        logs: logs::LogsHandle::new(),
    };
    if let Some(keep) = ctx.config.keep_finished {
        tokio::spawn(retention::keep_finished(ctx.clone(), keep));
    }
    if let Some(http) = http {
        tokio::spawn(http::serve(http, ctx.clone()));
    }
    tokio::select! {
        _ = listener::accept_loop(listener, ctx) => {}
        _ = shutdown => info!("shutting down"),
        Ok(err) = failed => return Err(RunError::Store(err)),
    }
    Ok(())
}
