//! `Connection`: the only code that knows how messages become bytes.
//!
//! A connection runs over plain TCP or TLS (`stream::Stream`); the frames are the same on both.
//! A frame is a 4-byte big-endian length followed by that many bytes of bincode (2.x, standard
//! configuration). The length is checked against `MAX_FRAME_LEN` before anything is allocated, and
//! bincode decodes with a limit scaled to the body (see [`decode`]), so a lying prefix or a lying
//! inner length is an error, not an allocation of gigabytes. A connection is typed by what it receives (`In`) and sends (`Out`);
//! after the handshake it is re-typed for the peer's role.

use crate::error::ProtoError;
use crate::frame::FrameCodec;
use crate::stream::{ReadHalf, Stream, WriteHalf};
use crate::tls::{ClientTls, ConnectError, ServerTls};
use crate::MAX_FRAME_LEN;
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Encoder, FramedRead, FramedWrite};

/// bincode's standard configuration, with a limit on the bytes a message may claim.
fn bincode_config<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Writes a message as one frame straight into the connection's write buffer (see
/// `FrameCodec::write_frame`); the same bytes as [`encode`] with the prefix before them.
impl<T: Serialize> Encoder<&T> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, message: &T, dst: &mut BytesMut) -> Result<(), ProtoError> {
        self.write_frame(dst, |body| {
            bincode::serde::encode_into_writer(
                message,
                Append(body),
                bincode_config::<MAX_FRAME_LEN>(),
            )
            .map_err(|e| ProtoError::Unencodable(e.to_string()))
        })
    }
}

/// bincode's writer for the end of a `BytesMut`.
struct Append<'a>(&'a mut BytesMut);

impl bincode::enc::write::Writer for Append<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Turns a message into the body of one frame.
pub fn encode<T: Serialize>(message: &T) -> Result<Bytes, ProtoError> {
    bincode::serde::encode_to_vec(message, bincode_config::<MAX_FRAME_LEN>())
        .map(Bytes::from)
        .map_err(|e| ProtoError::Unencodable(e.to_string()))
}

/// Reads a message from the body of one frame; trailing bytes are an error, since they mean the
/// peer and we disagree about the message's shape.
///
/// bincode counts every value it decodes against its limit at the value's size in memory (a u64
/// counts 8 bytes even when its varint took 1), and allocates a string as soon as it has read the
/// string's length, checking that length only against what is left of the limit. So the limit is
/// the smallest size class of at least 8 bytes per byte of body (no type on the wire is wider
/// than 8 bytes): every honest message fits, and a lying length costs at most 32 times the body
/// (64 KiB for a small one), not `MAX_FRAME_LEN` for a body of 16 bytes (which is what the fuzz
/// test found).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ProtoError> {
    const MIB: usize = 1 << 20;
    match body.len().saturating_mul(MAX_CLAIM_PER_BYTE) {
        n if n <= 64 << 10 => decode_within::<T, { 64 << 10 }>(body),
        n if n <= 256 << 10 => decode_within::<T, { 256 << 10 }>(body),
        n if n <= MIB => decode_within::<T, MIB>(body),
        n if n <= 4 * MIB => decode_within::<T, { 4 * MIB }>(body),
        n if n <= 16 * MIB => decode_within::<T, { 16 * MIB }>(body),
        n if n <= 64 * MIB => decode_within::<T, { 64 * MIB }>(body),
        n if n <= 256 * MIB => decode_within::<T, { 256 * MIB }>(body),
        _ => decode_within::<T, { MAX_CLAIM_PER_BYTE * MAX_FRAME_LEN }>(body),
    }
}

/// The most bytes bincode counts against its limit for one byte of input: a u64 (or usize
/// length) of one varint byte counts 8. A 128-bit integer on the wire would make this 16.
const MAX_CLAIM_PER_BYTE: usize = 8;

/// [`decode`] with bincode's limit set to `LIMIT`, which must be at least `body.len()`.
fn decode_within<T: DeserializeOwned, const LIMIT: usize>(body: &[u8]) -> Result<T, ProtoError> {
    let (message, used) = bincode::serde::decode_from_slice(body, bincode_config::<LIMIT>())
        .map_err(|e| ProtoError::Undecodable(e.to_string()))?;
    if used != body.len() {
        return Err(ProtoError::Undecodable(format!(
            "{} bytes left over after the message",
            body.len() - used
        )));
    }
    Ok(message)
}

/// Receives typed messages from one half of a connection.
pub struct FrameReader<In> {
    frames: FramedRead<ReadHalf, FrameCodec>,
    _in: PhantomData<fn() -> In>,
}

/// Sends typed messages on one half of a connection.
pub struct FrameWriter<Out> {
    frames: FramedWrite<WriteHalf, FrameCodec>,
    _out: PhantomData<fn(Out)>,
}

/// A framed connection (plain TCP or TLS) that receives `In` and sends `Out`.
pub struct Connection<In, Out> {
    reader: FrameReader<In>,
    writer: FrameWriter<Out>,
    peer: SocketAddr,
}

/// Frames larger than this are decoded on tokio's blocking pool: decoding 64 MiB takes long
/// enough to stall the other tasks of a runtime thread (a coordinator's other connections).
const DECODE_INLINE: usize = 1 << 20;

impl<In: DeserializeOwned + Send + 'static> FrameReader<In> {
    /// The next message; `Ok(None)` when the peer closed the connection between frames.
    pub async fn recv(&mut self) -> Result<Option<In>, ProtoError> {
        match self.frames.next().await {
            None => Ok(None),
            Some(Ok(body)) if body.len() > DECODE_INLINE => {
                tokio::task::spawn_blocking(move || decode(&body))
                    .await
                    .map_err(|e| ProtoError::Undecodable(format!("decoding failed: {e}")))?
                    .map(Some)
            }
            Some(Ok(body)) => decode(&body).map(Some),
            Some(Err(err)) => Err(err),
        }
    }

    /// Caps the frames this reader accepts (checked from the length prefix). A coordinator sets
    /// a small cap until the handshake is done, so a silent or hostile peer costs little memory.
    pub fn set_max_frame_len(&mut self, max: usize) {
        self.frames.decoder_mut().set_max_len(max);
    }

    /// The same reader, expecting another type of message (after the handshake).
    pub fn retype<In2>(self) -> FrameReader<In2> {
        FrameReader {
            frames: self.frames,
            _in: PhantomData,
        }
    }
}

impl<Out: Serialize> FrameWriter<Out> {
    /// Sends one message and flushes it to the socket.
    pub async fn send(&mut self, message: &Out) -> Result<(), ProtoError> {
        self.frames.send(message).await
    }

    /// Queues one message without flushing, so that several share one write; call `flush` after.
    pub async fn feed(&mut self, message: &Out) -> Result<(), ProtoError> {
        self.frames.feed(message).await
    }

    /// Writes every queued message to the socket.
    pub async fn flush(&mut self) -> Result<(), ProtoError> {
        SinkExt::<Bytes>::flush(&mut self.frames).await
    }

    /// Sends what `queue` yields until it closes: every message already queued is fed before
    /// one flush, so a burst of messages costs one socket write. This is the body of every
    /// writer task.
    pub async fn drain(&mut self, queue: &mut impl Outbound<Out>) -> Result<(), ProtoError> {
        while let Some(first) = queue.next().await {
            self.feed(&first).await?;
            while let Some(more) = queue.ready() {
                self.feed(&more).await?;
            }
            self.flush().await?;
        }
        Ok(())
    }

    /// The byte stream under the frames, for tests that write what no message encodes to.
    #[cfg(test)]
    pub(crate) fn raw(&mut self) -> &mut WriteHalf {
        self.frames.get_mut()
    }

    /// The same writer, sending another type of message (after the handshake).
    pub fn retype<Out2>(self) -> FrameWriter<Out2> {
        FrameWriter {
            frames: self.frames,
            _out: PhantomData,
        }
    }
}

/// A queue that a writer task drains: tokio's bounded and unbounded receivers.
pub trait Outbound<T>: Send {
    /// The next message, waiting for one; `None` once every sender is gone.
    fn next(&mut self) -> impl std::future::Future<Output = Option<T>> + Send;
    /// A message that is already queued, without waiting.
    fn ready(&mut self) -> Option<T>;
}

impl<T: Send> Outbound<T> for mpsc::Receiver<T> {
    fn next(&mut self) -> impl std::future::Future<Output = Option<T>> + Send {
        self.recv()
    }
    fn ready(&mut self) -> Option<T> {
        self.try_recv().ok()
    }
}

impl<T: Send> Outbound<T> for mpsc::UnboundedReceiver<T> {
    fn next(&mut self) -> impl std::future::Future<Output = Option<T>> + Send {
        self.recv()
    }
    fn ready(&mut self) -> Option<T> {
        self.try_recv().ok()
    }
}

impl<In: DeserializeOwned + Send + 'static, Out: Serialize> Connection<In, Out> {
    /// Frames an accepted or connected socket, in plain TCP.
    pub fn new(stream: TcpStream) -> io::Result<Self> {
        let peer = stream.peer_addr()?;
        stream.set_nodelay(true)?;
        Ok(Connection::over(Stream::Plain(stream), peer))
    }

    fn over(stream: Stream, peer: SocketAddr) -> Self {
        let (read, write) = stream.split();
        Connection {
            reader: FrameReader {
                frames: FramedRead::new(read, FrameCodec::new(MAX_FRAME_LEN)),
                _in: PhantomData,
            },
            writer: FrameWriter {
                frames: FramedWrite::new(write, FrameCodec::new(MAX_FRAME_LEN)),
                _out: PhantomData,
            },
            peer,
        }
    }

    /// Connects to `addr` and frames the socket, in plain TCP.
    pub async fn connect(addr: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        Connection::new(stream)
    }

    /// Connects to `addr` (`HOST:PORT`) and frames the socket: with `tls`, after a TLS handshake
    /// that verifies the coordinator's certificate against HOST; without, in plain TCP. A TLS
    /// failure is a `TlsError` sentence.
    pub async fn connect_with(addr: &str, tls: Option<&ClientTls>) -> Result<Self, ConnectError> {
        let stream = TcpStream::connect(addr).await?;
        Connection::establish(stream, addr, tls).await
    }

    /// `connect_with` for a socket the caller connected itself (to bound the TCP connect and
    /// the TLS handshake apart); `addr` is what was dialled, whose host the certificate must
    /// name.
    pub async fn establish(
        stream: TcpStream,
        addr: &str,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ConnectError> {
        let Some(tls) = tls else {
            return Ok(Connection::new(stream)?);
        };
        let peer = stream.peer_addr()?;
        stream.set_nodelay(true)?;
        let stream = tls.handshake(addr, stream).await?;
        Ok(Connection::over(stream, peer))
    }

    /// The coordinator's side: a TLS handshake on an accepted socket (whose first byte `sniff`
    /// saw to be TLS), then framing. The error is the reason, for the coordinator's log.
    pub async fn accept_tls(stream: TcpStream, tls: &ServerTls) -> Result<Self, String> {
        let peer = stream
            .peer_addr()
            .map_err(|e| format!("the socket failed before the TLS handshake: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("the socket failed before the TLS handshake: {e}"))?;
        let stream = tls.handshake(stream).await?;
        Ok(Connection::over(stream, peer))
    }

    /// Whether TLS protects this connection.
    pub fn is_tls(&self) -> bool {
        self.reader.frames.get_ref().is_tls()
    }

    /// Caps the frames this connection accepts; see `FrameReader::set_max_frame_len`.
    pub fn set_max_frame_len(&mut self, max: usize) {
        self.reader.set_max_frame_len(max);
    }

    /// The address of the other end, for log lines.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The next message; `Ok(None)` when the peer closed the connection between frames.
    pub async fn recv(&mut self) -> Result<Option<In>, ProtoError> {
        self.reader.recv().await
    }

    /// Sends one message and flushes it.
    pub async fn send(&mut self, message: &Out) -> Result<(), ProtoError> {
        self.writer.send(message).await
    }

    /// The same connection for another pair of message types (after the handshake).
    pub fn retype<In2, Out2>(self) -> Connection<In2, Out2> {
        Connection {
            reader: self.reader.retype(),
            writer: self.writer.retype(),
            peer: self.peer,
        }
    }

    /// Separates the halves so that a reader task and a writer task can own one each.
    pub fn split(self) -> (FrameReader<In>, FrameWriter<Out>) {
        (self.reader, self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{Hello, Role};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (Connection<Hello, Hello>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Connection::new(server).unwrap(), client)
    }

    /// A message survives encoding and decoding unchanged.
    #[test]
    fn round_trip() {
        let hello = Hello::new(Role::Actioner { name: "t".into() });
        let bytes = encode(&hello).unwrap();
        assert_eq!(decode::<Hello>(&bytes).unwrap(), hello);
    }

    /// A message written as a frame in place is its length and then `encode`'s bytes, after
    /// what the buffer held; one over the limit leaves the buffer as it was.
    #[test]
    fn a_frame_is_written_in_place() {
        let hello = Hello::new(Role::Actioner {
            name: "t".repeat(300),
        });
        let body = encode(&hello).unwrap();
        let mut dst = BytesMut::from(&b"before"[..]);
        FrameCodec::new(MAX_FRAME_LEN)
            .encode(&hello, &mut dst)
            .unwrap();
        assert_eq!(&dst[..6], b"before");
        assert_eq!(dst[6..10], (body.len() as u32).to_be_bytes());
        assert_eq!(&dst[10..], &body[..]);
        let err = FrameCodec::new(body.len() - 1)
            .encode(&hello, &mut dst)
            .unwrap_err();
        assert!(matches!(err, ProtoError::Unencodable(_)), "{err:?}");
        assert_eq!(dst.len(), 10 + body.len());
    }

    /// Bytes after a valid message are rejected instead of silently dropped.
    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = encode(&Hello::new(Role::Actioner { name: "t".into() }))
            .unwrap()
            .to_vec();
        bytes.push(0);
        assert!(matches!(
            decode::<Hello>(&bytes),
            Err(ProtoError::Undecodable(_))
        ));
    }

    /// A length prefix of 4 GiB is refused from the prefix alone.
    #[tokio::test]
    async fn oversized_prefix_is_refused() {
        let (mut server, mut client) = pair().await;
        client
            .write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
            .await
            .unwrap();
        let err = server.recv().await.unwrap_err();
        assert!(matches!(err, ProtoError::FrameTooLarge), "{err}");
    }

    /// A frame cut short by a closed socket is an error, not a hang and not a clean close.
    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let (mut server, mut client) = pair().await;
        client.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
        drop(client);
        assert!(server.recv().await.is_err());
    }

    /// Random bytes in a well-formed frame are reported as undecodable.
    #[tokio::test]
    async fn garbage_body_is_undecodable() {
        let (mut server, mut client) = pair().await;
        client
            .write_all(&[0, 0, 0, 3, 0xde, 0xad, 0xbe])
            .await
            .unwrap();
        let err = server.recv().await.unwrap_err();
        assert!(matches!(err, ProtoError::Undecodable(_)), "{err}");
    }
}
