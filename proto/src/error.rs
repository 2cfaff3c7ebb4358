//! What can go wrong on a connection. Each variant reads as the end of a sentence such as
//! "the connection to 127.0.0.1:5677 failed: ..." and ends only that connection.

use thiserror::Error;

/// An error that ends one connection.
#[derive(Debug, Error)]
pub enum ProtoError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection in the middle of a frame.
    #[error("the peer closed the connection in the middle of a frame")]
    Truncated,
    /// The length prefix announced more than the connection accepts; nothing was allocated.
    #[error("the peer announced a frame larger than this connection accepts")]
    FrameTooLarge,
    /// A whole frame arrived but is not a message of the expected kind.
    #[error("the peer sent a frame that is not a valid message here ({0})")]
    Undecodable(String),
    /// A message could not be encoded (a bug, or a value over the frame limit).
    #[error("a message could not be encoded ({0})")]
    Unencodable(String),
}
