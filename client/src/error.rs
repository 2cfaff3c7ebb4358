//! `ClientError`: every way a request to the coordinator can fail, each as one sentence that
//! says what failed and what to do, with an `ErrorClass` for programs (the Python client raises
//! one exception class per class).
//!
//! Produced by `connect`, `session` and `client`; the CLI prints the sentence as it is.

use std::io;
use std::time::Duration;
use tatzelwurm_proto::actioner::{Failure, FailureKind};
use tatzelwurm_proto::tls::TlsError;
use tatzelwurm_proto::{ProtoError, COORDINATOR_ENV, MAX_FRAME_LEN};
use thiserror::Error;

/// What kind of failure, for a program that acts on it (the Python client's exception classes
/// are named after the arrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Cannot connect, or the connection was lost and did not come back in time
    /// (-> `CoordinatorUnavailable`).
    Unavailable,
    /// The handshake was refused: a wrong token, another protocol version; or TLS failed: an
    /// untrusted, expired or wrong-name certificate, TLS on one side only (-> `CoordinatorRefused`).
    Refused,
    /// A task id that was never handed out (-> `UnknownTask`).
    UnknownTask,
    /// A malformed or inapplicable request (-> `InvalidRequest`).
    BadRequest,
    /// A request larger than a frame, refused before sending or by the coordinator
    /// (-> `RequestTooLarge`).
    TooLarge,
    /// The coordinator is stopping or failed, or spoke out of turn (-> `TatzelwurmError`).
    Internal,
    /// A queue that no task, worker or setting names, in `queue pause|resume|limit`
    /// (-> `UnknownQueue`).
    UnknownQueue,
    /// A schedule name that is not in use (-> `UnknownSchedule`).
    UnknownSchedule,
    /// A schedule name that is already in use, in `schedule add` (-> `ScheduleExists`).
    ScheduleExists,
    /// A task that was purged (-> `TaskPurged`, a subclass of `UnknownTask`).
    Purged,
    /// No connected worker has this name, in `worker drain` (-> `UnknownWorker`).
    UnknownWorker,
    /// An event watcher that fell behind and was dropped (-> `EventsLagged`).
    Lagged,
    /// Events older than the oldest kept were asked for (-> `EventsGone`).
    EventsGone,
}

/// Why a request did not get an answer, or got a refusal. `Display` is one sentence.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// No TCP connection could be made (refused, unroutable, bad address, or no answer in time).
    #[error("cannot reach the coordinator at {addr} ({reason}); start it with `tatzelwurm`, or set {COORDINATOR_ENV} to the address of a running one")]
    Unreachable { addr: String, reason: String },
    /// The connection was accepted but nothing answered our hello in time.
    #[error("the server at {addr} accepted the connection but did not answer the handshake; check that it is a tatzelwurm coordinator")]
    Silent { addr: String },
    /// Something answered our hello with bytes that are not a tatzelwurm reply.
    #[error("the server at {addr} did not answer like a tatzelwurm coordinator ({detail}); check the address")]
    NotCoordinator { addr: String, detail: String },
    /// The TLS handshake failed: an untrusted, expired or wrong-name certificate, or a server
    /// that does not speak TLS; the sentence says which and what to do.
    #[error("{0}")]
    Tls(TlsError),
    /// The TLS settings (`TATZELWURM_TLS`, `TATZELWURM_TLS_CA`) cannot be used; nothing was
    /// sent, not even in plain text.
    #[error("{reason}")]
    TlsSettings { reason: String },
    /// The coordinator refused the handshake (a version mismatch, a wrong token) with this reason.
    #[error("the coordinator at {addr} refused this client: {reason}")]
    Refused { addr: String, reason: String },
    /// The connection closed before the answer came, and this client does not reconnect.
    #[error("the coordinator at {addr} closed the connection before answering; check that it is running")]
    Closed { addr: String },
    /// The connection was lost and did not come back within the limit, with what the last
    /// attempt met.
    #[error("the connection to the coordinator at {addr} was lost ({reason}) and did not come back within {} s; check that the coordinator is running", waited.as_secs())]
    Lost {
        addr: String,
        waited: Duration,
        reason: String,
    },
    /// The connection failed in a way other than a clean close (undecodable frame, I/O error).
    #[error("the connection to the coordinator at {addr} failed: {detail}")]
    Broken { addr: String, detail: String },
    /// The coordinator answered something that does not fit the request: a different build.
    #[error(
        "the coordinator at {addr} {detail}; use a client from the same release as the coordinator"
    )]
    Unexpected { addr: String, detail: String },
    /// The coordinator understood the request and said no; its sentence is shown as it is.
    #[error("{}", .0.message)]
    Rejected(Failure),
    /// The request would not fit in one frame; refused before anything was sent.
    #[error("this request is {:.1} MB, over the limit of {} MiB per request; split the add into smaller ones, or pass large data by reference (a file path, say) instead of in the arguments", *bytes as f64 / 1e6, MAX_FRAME_LEN >> 20)]
    TooLarge { bytes: usize },
    /// `Client::close` was called; nothing more is sent.
    #[error(
        "the client of the coordinator at {addr} was closed; connect again to send more requests"
    )]
    ClientClosed { addr: String },
}

impl ClientError {
    /// The class a program acts on.
    pub fn class(&self) -> ErrorClass {
        match self {
            ClientError::Unreachable { .. }
            | ClientError::Silent { .. }
            | ClientError::NotCoordinator { .. }
            | ClientError::Closed { .. }
            | ClientError::Lost { .. } => ErrorClass::Unavailable,
            // A certificate or protocol mismatch is a setting to fix, not a moment to wait
            // out: the same class as a refused handshake.
            ClientError::Refused { .. } | ClientError::Tls(_) | ClientError::TlsSettings { .. } => {
                ErrorClass::Refused
            }
            ClientError::Rejected(failure) => match failure.kind {
                FailureKind::UnknownTask => ErrorClass::UnknownTask,
                FailureKind::BadRequest => ErrorClass::BadRequest,
                FailureKind::TooLarge => ErrorClass::TooLarge,
                FailureKind::Stopping | FailureKind::Internal => ErrorClass::Internal,
                FailureKind::UnknownQueue => ErrorClass::UnknownQueue,
                FailureKind::UnknownSchedule => ErrorClass::UnknownSchedule,
                FailureKind::ScheduleExists => ErrorClass::ScheduleExists,
                FailureKind::Purged => ErrorClass::Purged,
                FailureKind::UnknownWorker => ErrorClass::UnknownWorker,
                FailureKind::Lagged => ErrorClass::Lagged,
                FailureKind::EventsGone => ErrorClass::EventsGone,
            },
            ClientError::TooLarge { .. } => ErrorClass::TooLarge,
            ClientError::Broken { .. }
            | ClientError::Unexpected { .. }
            | ClientError::ClientClosed { .. } => ErrorClass::Internal,
        }
    }

    /// Whether the address itself is the likely problem (nothing answered there).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    /// Sorts a failure of an established connection: a close or reset reads as `Closed` (the
    /// sentence a user can act on), anything else as `Broken`.
    pub(crate) fn from_proto(addr: &str, err: ProtoError) -> ClientError {
        let closed = matches!(&err, ProtoError::Io(io) if is_closed(io));
        if closed {
            ClientError::Closed { addr: addr.into() }
        } else {
            ClientError::Broken {
                addr: addr.into(),
                detail: err.to_string(),
            }
        }
    }

    /// What went wrong, without the address: the reason shown in `Lost` and in the
    /// `Disconnected` event.
    pub(crate) fn reason(&self) -> String {
        match self {
            ClientError::Unreachable { reason, .. } | ClientError::Refused { reason, .. } => {
                reason.clone()
            }
            ClientError::Closed { .. } => "the coordinator closed it".into(),
            ClientError::Silent { .. } => "the server did not answer the handshake".into(),
            ClientError::Broken { detail, .. } | ClientError::NotCoordinator { detail, .. } => {
                detail.clone()
            }
            other => other.to_string(),
        }
    }
}

fn is_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// An I/O error as the end of "cannot reach ... (REASON)": lower case, without "(os error 111)".
pub(crate) fn io_reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::HostUnreachable => "host unreachable".into(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".into(),
        io::ErrorKind::AddrNotAvailable => "address not available".into(),
        _ => {
            let text = err.to_string();
            let text = match text.find(" (os error") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            };
            text.to_lowercase()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection reads as the words a user expects and names the variable to set.
    #[test]
    fn refused_connection_reads_plainly() {
        let err = ClientError::Unreachable {
            addr: "127.0.0.1:5677".into(),
            reason: io_reason(&io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(
            err.to_string(),
            "cannot reach the coordinator at 127.0.0.1:5677 (connection refused); start it with `tatzelwurm`, or set TATZELWURM_COORDINATOR to the address of a running one"
        );
        assert_eq!(err.class(), ErrorClass::Unavailable);
    }

    /// A reset in the middle of a request is reported as a close, with what to check.
    #[test]
    fn reset_reads_as_closed() {
        let err = ClientError::from_proto(
            "h:1",
            ProtoError::Io(io::Error::from(io::ErrorKind::ConnectionReset)),
        );
        assert!(matches!(err, ClientError::Closed { .. }), "{err}");
        assert!(err.to_string().contains("check that it is running"));
    }

    /// The coordinator's own sentence is shown unchanged, and its kind decides the class.
    #[test]
    fn rejection_is_verbatim_and_classed() {
        let err = ClientError::Rejected(Failure::unknown_task("there is no task 9"));
        assert_eq!(err.to_string(), "there is no task 9");
        assert_eq!(err.class(), ErrorClass::UnknownTask);
        for (kind, class) in [
            (FailureKind::BadRequest, ErrorClass::BadRequest),
            (FailureKind::TooLarge, ErrorClass::TooLarge),
            (FailureKind::Stopping, ErrorClass::Internal),
            (FailureKind::Internal, ErrorClass::Internal),
            (FailureKind::UnknownQueue, ErrorClass::UnknownQueue),
            (FailureKind::UnknownSchedule, ErrorClass::UnknownSchedule),
            (FailureKind::ScheduleExists, ErrorClass::ScheduleExists),
        ] {
            assert_eq!(
                ClientError::Rejected(Failure::new(kind, "x")).class(),
                class
            );
        }
    }

    /// A TLS failure shows the TLS sentence as it is, in the class of a refused handshake.
    #[test]
    fn tls_failures_read_as_their_sentence() {
        let tls = TlsError::NotTls { addr: "h:1".into() };
        let err = ClientError::Tls(tls.clone());
        assert_eq!(err.to_string(), tls.to_string());
        assert_eq!(err.class(), ErrorClass::Refused);
    }

    /// A request over the frame limit says the limit and both ways out, in one sentence.
    #[test]
    fn too_large_says_what_to_do() {
        let err = ClientError::TooLarge { bytes: 70_000_123 };
        assert_eq!(
            err.to_string(),
            "this request is 70.0 MB, over the limit of 64 MiB per request; split the add into smaller ones, or pass large data by reference (a file path, say) instead of in the arguments"
        );
        assert_eq!(err.class(), ErrorClass::TooLarge);
    }
}
