//! `FrameCodec`: cuts a byte stream into frames (a 4-byte big-endian length, then the body)
//! and back. Only `codec::Connection` uses it.
//!
//! Ours rather than tokio-util's `LengthDelimitedCodec` for two reasons: that codec consumes a
//! length prefix as soon as it has it, so a peer that sends a prefix and then closes looked like
//! a clean close instead of a frame cut short; and it reserves the whole announced length at
//! once, so a welcomed peer could make us hold 64 MiB by announcing a frame it never sends.
//! Here the prefix stays in the buffer until the whole frame is there, and the buffer grows only
//! as bytes arrive.

use crate::error::ProtoError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes in the length prefix.
const PREFIX: usize = 4;

/// Frames a stream, refusing any frame longer than `max_len` from its prefix alone.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_len: usize,
}

impl FrameCodec {
    /// A codec accepting frames of at most `max_len` bytes.
    pub fn new(max_len: usize) -> FrameCodec {
        FrameCodec { max_len }
    }

    /// Changes the limit, e.g. from the hello's small one to the full one after the handshake.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, ProtoError> {
        let Some(prefix) = src.get(..PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
        if len > self.max_len {
            return Err(ProtoError::FrameTooLarge);
        }
        if src.len() < PREFIX + len {
            return Ok(None);
        }
        src.advance(PREFIX);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, ProtoError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(ProtoError::Truncated),
        }
    }
}

impl FrameCodec {
    /// Appends one frame to `dst` whose body `body` writes straight after the prefix, which is
    /// filled in once the body's length is known: no buffer of its own per frame, so no
    /// allocation and no copy of the body (for an add of 4,000 tasks, ~180 KB of memory never
    /// touched before, a page fault per 4 KiB). A body over the limit, or one `body` fails to
    /// write, leaves `dst` as it was.
    pub(crate) fn write_frame(
        &self,
        dst: &mut BytesMut,
        body: impl FnOnce(&mut BytesMut) -> Result<(), ProtoError>,
    ) -> Result<(), ProtoError> {
        let start = dst.len();
        dst.put_u32(0);
        let written = body(dst);
        let len = dst.len() - start - PREFIX;
        let checked = written.and_then(|()| {
            u32::try_from(len)
                .ok()
                .filter(|len| *len as usize <= self.max_len)
                .ok_or_else(|| over_limit(len, self.max_len))
        });
        match checked {
            Ok(len) => {
                dst[start..start + PREFIX].copy_from_slice(&len.to_be_bytes());
                Ok(())
            }
            Err(err) => {
                dst.truncate(start);
                Err(err)
            }
        }
    }
}

fn over_limit(len: usize, max_len: usize) -> ProtoError {
    ProtoError::Unencodable(format!(
        "a frame of {len} bytes is over the limit of {max_len}"
    ))
}

impl Encoder<Bytes> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), ProtoError> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|len| *len as usize <= self.max_len)
            .ok_or_else(|| over_limit(body.len(), self.max_len))?;
        dst.reserve(PREFIX + body.len());
        dst.put_u32(len);
        dst.extend_from_slice(&body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> FrameCodec {
        FrameCodec::new(16)
    }

    /// A frame comes out only when whole, and the prefix is not consumed before that.
    #[test]
    fn waits_for_the_whole_frame() {
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2][..]);
        assert!(codec().decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 6);
        buf.extend_from_slice(&[3, 0]);
        let frame = codec().decode(&mut buf).unwrap().unwrap();
        assert_eq!(&frame[..], &[1, 2, 3]);
        assert_eq!(&buf[..], &[0]);
    }

    /// A prefix alone at the end of the stream is a cut-short frame, not a clean close.
    #[test]
    fn prefix_then_close_is_truncated() {
        let mut buf = BytesMut::from(&[0, 0, 0, 2][..]);
        assert!(matches!(
            codec().decode_eof(&mut buf),
            Err(ProtoError::Truncated)
        ));
        assert!(codec().decode_eof(&mut BytesMut::new()).unwrap().is_none());
    }

    /// An oversized frame is refused from the prefix, without waiting for or reserving its body.
    #[test]
    fn oversized_prefix_is_refused_without_reserving() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            codec().decode(&mut buf),
            Err(ProtoError::FrameTooLarge)
        ));
        let mut pending = BytesMut::from(&[0, 0, 0, 16][..]);
        assert!(codec().decode(&mut pending).unwrap().is_none());
        assert!(pending.capacity() < 16);
    }

    /// What the encoder writes, the decoder reads back.
    #[test]
    fn round_trip() {
        let mut buf = BytesMut::new();
        codec()
            .encode(Bytes::from_static(b"hello"), &mut buf)
            .unwrap();
        assert_eq!(&codec().decode(&mut buf).unwrap().unwrap()[..], b"hello");
        let too_big = Bytes::from(vec![0; 17]);
        assert!(codec().encode(too_big, &mut buf).is_err());
    }
}
