//! The byte stream under a `Connection`: plain TCP, or TLS over TCP, split into a read half and
//! a write half that a reader task and a writer task own.
//!
//! An enum of the two kinds rather than a `Box<dyn AsyncRead>`: the plain halves stay tokio's
//! `OwnedReadHalf`/`OwnedWriteHalf` (no lock, no allocation), and each poll costs one
//! predictable branch, which the compiler can see through. A TLS stream cannot be split
//! without sharing its session state (reading may need to write, and the other way round), so
//! only it goes through `tokio::io::split`, whose halves take an uncontended lock per poll.
//! Only `codec` uses this module.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

/// A connected socket, with or without TLS on it.
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, after a completed handshake. Boxed: a TLS session is a few KiB, and the
    /// plain variant should not carry that size.
    Tls(Box<TlsStream<TcpStream>>),
}

/// The half of a `Stream` that reads.
pub(crate) enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The half of a `Stream` that writes.
pub(crate) enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl Stream {
    /// Separates the halves so that two tasks can own one each.
    pub(crate) fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(tcp) => {
                let (read, write) = tcp.into_split();
                (ReadHalf::Plain(read), WriteHalf::Plain(write))
            }
            Stream::Tls(tls) => {
                let (read, write) = tokio::io::split(*tls);
                (ReadHalf::Tls(read), WriteHalf::Tls(write))
            }
        }
    }
}

impl ReadHalf {
    /// Whether TLS protects this half.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, ReadHalf::Tls(_))
    }
}

impl AsyncRead for ReadHalf {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(read) => Pin::new(read).poll_read(cx, buf),
            // A peer that closes without TLS's close_notify (every one of ours: a connection
            // ends by dropping its halves) makes rustls report UnexpectedEof. The frames carry
            // their own lengths, so this is an end of stream like TCP's: the codec still tells
            // a close between frames (clean) from one inside a frame (Truncated).
            ReadHalf::Tls(read) => match Pin::new(read).poll_read(cx, buf) {
                Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
        }
    }
}

impl AsyncWrite for WriteHalf {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(write) => Pin::new(write).poll_write(cx, buf),
            WriteHalf::Tls(write) => Pin::new(write).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(write) => Pin::new(write).poll_write_vectored(cx, bufs),
            WriteHalf::Tls(write) => Pin::new(write).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteHalf::Plain(write) => write.is_write_vectored(),
            WriteHalf::Tls(write) => write.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(write) => Pin::new(write).poll_flush(cx),
            WriteHalf::Tls(write) => Pin::new(write).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(write) => Pin::new(write).poll_shutdown(cx),
            WriteHalf::Tls(write) => Pin::new(write).poll_shutdown(cx),
        }
    }
}
