//! The one language every tatzelwurm program speaks on the wire.
//!
//! Layout:
//! - [`ids`]: typed ids (`TaskId`, `WorkerId`, `Attempt`, `RequestId`) so that numbers of
//!   different meaning cannot be swapped by accident.
//! - [`task`]: what a task is (`TaskSpec`), the states it moves through (`TaskState`), how an
//!   attempt ends (`Outcome`) and what the coordinator tells about it (`TaskInfo`).
//! - [`event`]: the event log (`Event`), what a watcher asks of it (`EventsFrom`, `EventFilter`).
//! - [`queue`]: queues (`QueueInfo`, `QueueChange`) and the naming rule of queues and schedules.
//! - [`schedule`]: schedules that add tasks on a timer or a cron line (`ScheduleSpec`).
//! - [`handshake`]: the first frame of every connection (`Hello`) and its answer (`Welcome`).
//! - [`worker`]: the messages between the coordinator and a worker after the handshake.
//! - [`actioner`]: the requests of an actioner (the CLI, or a Python client) and their replies.
//! - [`batch`]: cutting long lists into batches that fit a frame.
//! - [`limits`]: how many ids, tasks and reports one request or frame may carry, and the
//!   decoding that keeps an oversized list from costing memory.
//! - [`codec`]: `Connection`, the only code that knows bytes: length prefix, size cap, bincode.
//! - [`frame`]: `FrameCodec`, which cuts the byte stream into length-prefixed frames.
//! - [`tls`]: TLS for the protocol port: `ClientTls` (trust, from flags or `TATZELWURM_TLS` /
//!   `TATZELWURM_TLS_CA`), `ServerTls` (the coordinator's certificate and key), `TlsError` (one
//!   sentence per way a TLS connect fails).
//! - `stream` (private): the plain or TLS byte stream under a `Connection`, split into halves
//!   without a lock for plain TCP.
//! - [`error`]: what can go wrong on a connection.
//! - [`function`]: the rule for naming a task's function (`package.module:function`).
//! - [`usage`]: a command-line error as the one sentence every program prints.
//! - [`backoff`]: the one backoff curve with jitter (reconnects, slot restarts, retries).
//! - [`address`]: the rule for the coordinator's address a peer is given (HOST:PORT).
//! - [`seconds`]: spans of seconds as every command line reads them (not on the wire).
//! - [`when`]: spans (`1h30m`, `7d`) and moments (RFC 3339) as command lines read them, with
//!   jiff (not on the wire).
//! - [`json`]: tasks, workers, queues, a worker's usage and events as programs read them in
//!   JSON, for the CLI's `--json` output and the coordinator's HTTP API (not on the wire).
//!
//! Every type in this crate (but `seconds`, `when`, `json`, `tls`, `function`, `address`, `backoff` and `usage`) crosses the wire: changing one breaks compatibility with programs
//! built from older sources, so bump [`PROTOCOL_VERSION`] whenever a type here changes.

pub mod actioner;
pub mod address;
pub mod backoff;
pub mod batch;
pub mod codec;
pub mod error;
pub mod event;
pub mod frame;
pub mod function;
#[cfg(test)]
mod fuzz;
pub mod handshake;
pub mod ids;
pub mod json;
pub mod limits;
pub mod queue;
pub mod schedule;
pub mod seconds;
mod stream;
pub mod task;
pub mod tls;
pub mod usage;
pub mod when;
pub mod worker;

pub use codec::{Connection, FrameReader, FrameWriter, Outbound};
pub use error::ProtoError;
pub use ids::{Attempt, RequestId, TaskId, WorkerId};

/// Version of the wire protocol, checked in the handshake so that mismatched builds refuse each
/// other with a clear sentence instead of misreading frames.
pub const PROTOCOL_VERSION: u32 = 7;

/// Four bytes that open every `Hello`, so that a stray client (an HTTP probe, random bytes) is
/// told apart from an old tatzelwurm build.
pub const MAGIC: [u8; 4] = *b"TZWM";

/// Largest frame any peer may send, checked from the length prefix before a byte of the body is
/// allocated. Large enough for a batch of many thousand small tasks; a task list is sent in pages.
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// Largest hello a coordinator accepts: a hello is small, and a peer that has not introduced
/// itself must not make the coordinator reserve room for a large frame.
pub const MAX_HELLO_LEN: usize = 64 * 1024;

/// The coordinator's address when nothing else is given.
pub const DEFAULT_COORDINATOR: &str = "127.0.0.1:5677";

/// Environment variable from which workers and actioners take the coordinator's address.
pub const COORDINATOR_ENV: &str = "TATZELWURM_COORDINATOR";

/// The environment variable that holds the shared secret every peer must show in its hello when
/// the coordinator has one (see `handshake::Hello::token`). An environment variable, not a flag,
/// so that it does not show in `ps`.
pub const TOKEN_ENV: &str = "TATZELWURM_TOKEN";
