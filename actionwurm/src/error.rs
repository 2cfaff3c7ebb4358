//! `ClientError`: everything that can go wrong between an actioner and the coordinator.
//!
//! Produced by `client`; the CLI (`output`) prints it as one sentence, adding a hint about
//! `--coordinator` where the address is the likely culprit, and a later Python client will map
//! it to exceptions. Each message names the address and says what to check.

use std::fmt;
use std::io;
use tatzelwurm_proto::ProtoError;

/// Why a request to the coordinator did not get an answer, or got a refusal.
#[derive(Debug)]
pub enum ClientError {
    /// No TCP connection could be made (refused, unroutable, bad address, or no answer in time).
    Unreachable { addr: String, reason: String },
    /// The connection was accepted but nothing answered our hello in time: probably not a
    /// tatzelwurm coordinator, or one that is stuck.
    Silent { addr: String },
    /// Something answered our hello with bytes that are not a tatzelwurm reply.
    NotCoordinator { addr: String, detail: String },
    /// The coordinator refused the handshake (a version mismatch, say) with this reason.
    Refused { addr: String, reason: String },
    /// The coordinator closed the connection before it answered.
    Closed { addr: String },
    /// The connection failed in a way other than a clean close (undecodable frame, I/O error).
    Broken { addr: String, detail: String },
    /// The coordinator answered something that does not fit the request: a different build.
    Unexpected { addr: String, detail: String },
    /// The coordinator understood the request and said no; its sentence is shown as it is.
    Rejected(String),
}

impl ClientError {
    /// Whether the address itself is the likely problem, so that a caller may add a hint on how
    /// to start a coordinator or point at another one.
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

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { addr, reason } => {
                write!(f, "cannot reach the coordinator at {addr} ({reason})")
            }
            ClientError::Silent { addr } => write!(
                f,
                "the server at {addr} accepted the connection but did not answer the handshake; check that it is a tatzelwurm coordinator"
            ),
            ClientError::NotCoordinator { addr, detail } => write!(
                f,
                "the server at {addr} did not answer like a tatzelwurm coordinator ({detail}); check the address"
            ),
            ClientError::Refused { addr, reason } => {
                write!(f, "the coordinator at {addr} refused this client: {reason}")
            }
            ClientError::Closed { addr } => write!(
                f,
                "the coordinator at {addr} closed the connection before answering; check that it is running"
            ),
            ClientError::Broken { addr, detail } => {
                write!(f, "the connection to the coordinator at {addr} failed: {detail}")
            }
            ClientError::Unexpected { addr, detail } => write!(
                f,
                "the coordinator at {addr} {detail}; use actionwurm from the same release as the coordinator"
            ),
            ClientError::Rejected(sentence) => f.write_str(sentence),
        }
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection reads as the words a user expects, not as an OS error code.
    #[test]
    fn refused_connection_reads_plainly() {
        let err = ClientError::Unreachable {
            addr: "127.0.0.1:5677".into(),
            reason: io_reason(&io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(
            err.to_string(),
            "cannot reach the coordinator at 127.0.0.1:5677 (connection refused)"
        );
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

    /// The coordinator's own sentence is shown unchanged.
    #[test]
    fn rejection_is_verbatim() {
        let err = ClientError::Rejected("there is no task 9".into());
        assert_eq!(err.to_string(), "there is no task 9");
    }
}
