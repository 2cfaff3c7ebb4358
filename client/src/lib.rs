//! The tatzelwurm client: one connection to the coordinator, shared by every task and thread
//! of a program, for the command line (actionwurm) and the Python package alike. Pure Rust on
//! the caller's tokio runtime; it never prints.
//!
//! Layout:
//! - [`options`]: `ConnectOptions` (address, token, name, timeouts, reconnect) and `Tuning`.
//! - [`client`]: `Client`, the cloneable handle with a typed method per request (those about
//!   queues and schedules in `client/control.rs`).
//! - [`event_stream`], [`log_stream`]: `EventStream` and `LogStream`, the streamed answers of
//!   `Client::events` and `Client::logs` (`client/operations.rs`), read at the caller's pace;
//!   `stream`: the bounded channel under them, which cuts off a reader that falls behind.
//! - [`pipeline`]: `Pipeline` and `Event`: queued submits sent as one watched, keyed `Add` per
//!   batch, a window of unacknowledged tasks, flush, watch, pushed completions; `Bulk`, a long
//!   list queued a part at a time under consecutive tickets.
//! - [`error`]: `ClientError` (one sentence each) and `ErrorClass` (for programs).
//! - `session`: the task that owns the connection: routing, reconnect, re-sending.
//! - `routes`: which answer goes to whom, and which finished tasks are news (a plain struct).
//! - `batcher`: the pipeline's queue, batches and window (a plain struct).
//! - `connect`: one connect and handshake; `size`: the frame limit checked before sending;
//!   `key`: random add keys; `id_hash`: the hasher of the sets and maps keyed by task id.
//! - [`fake_coordinator`] (tests, or the `fake-coordinator` feature): a scripted coordinator.

mod batcher;
pub mod client;
mod connect;
pub mod error;
pub mod event_stream;
#[cfg(any(test, feature = "fake-coordinator"))]
pub mod fake_coordinator;
mod id_hash;
mod key;
pub mod log_stream;
pub mod options;
pub mod pipeline;
mod routes;
mod session;
mod size;
mod stream;

pub use batcher::Ticket;
pub use client::{Changed, Client, Purged};
pub use error::{ClientError, ErrorClass};
pub use event_stream::EventStream;
pub use log_stream::{LogPage, LogStream};
pub use options::{ConnectOptions, Tuning, DEFAULT_CONNECT_TIMEOUT, RECONNECT_LIMIT};
pub use pipeline::{Bulk, Event, Pipeline};
pub use stream::Polled;
pub use tatzelwurm_proto::actioner::{PurgeSelection, Selection, TaskEnd, WorkerInfo};
pub use tatzelwurm_proto::event::{EventFilter, EventKind, EventsFrom};
pub use tatzelwurm_proto::queue::{QueueChange, QueueInfo};
pub use tatzelwurm_proto::schedule::{ScheduleChange, ScheduleInfo, ScheduleSpec, Trigger};
pub use tatzelwurm_proto::task::{
    TaskInfo, TaskSpec, TaskState, Timestamp, When, DEFAULT_QUEUE, PRIORITIES,
};
pub use tatzelwurm_proto::TaskId;
