//! Length-prefixed protobuf frames: a 4-byte big-endian length, then the message.

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Frames larger than this are a protocol error (a broken or hostile worker).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes asked of the socket per read when the buffer has no room left.
const READ_CHUNK: usize = 256 * 1024;

/// Encodes `msg` as one frame.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(4 + len);
    // Lengths are bounded by MAX_FRAME on the reading side; our own frames are small.
    buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    msg.encode_raw(&mut buf);
    buf
}

/// Reads frames from a byte stream.
///
/// Cancel-safe: whatever was read lives in the reader, not in the future, so
/// [`FrameReader::next`] may lose a `tokio::select!` race (a watchdog tick, the child's exit)
/// in the middle of a frame and the next call carries on where it stopped. (`read_exact` is
/// not: a cancelled call drops the bytes it had consumed and the stream loses its framing.)
pub struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames from `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// The payload of the next frame; `None` on a clean end of stream (between frames).
    ///
    /// # Errors
    /// I/O errors, a frame over [`MAX_FRAME`], or a stream that ends inside a frame.
    pub async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some(frame) = self.buffered()? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            // `read_buf` is cancel-safe: it either appends what it read or reads nothing.
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the stream ended inside a frame ({} bytes)", self.buf.len()),
                ));
            }
        }
    }

    /// A complete frame already read, if there is one (no I/O).
    ///
    /// # Errors
    /// A frame over [`MAX_FRAME`].
    pub fn buffered(&mut self) -> std::io::Result<Option<Bytes>> {
        let Some(header) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_FRAME {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"),
            ));
        }
        if self.buf.len() < 4 + len {
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::terminal::{worker_frame::Body, Heartbeat, WorkerFrame};
    use tokio::io::AsyncWriteExt;

    fn heartbeat(sequence: u64) -> WorkerFrame {
        WorkerFrame {
            body: Some(Body::Heartbeat(Heartbeat {
                sequence,
                time_msc: 42,
            })),
        }
    }

    #[tokio::test]
    async fn round_trip_and_clean_eof() {
        let mut bytes = encode(&heartbeat(7));
        bytes.extend(encode(&heartbeat(8)));
        let mut frames = FrameReader::new(&bytes[..]);
        for sequence in [7, 8] {
            let payload = frames.next().await.expect("read").expect("frame");
            assert_eq!(
                WorkerFrame::decode(payload).expect("decode"),
                heartbeat(sequence)
            );
        }
        assert!(frames.next().await.expect("eof").is_none());
    }

    /// What one read brought in is handed out frame by frame without another read: the
    /// frames a worker wrote together (an order's answer) are handled as one batch.
    #[tokio::test]
    async fn frames_read_together_are_buffered_whole_and_a_partial_one_waits() {
        let mut bytes: Vec<u8> = (1..=3).flat_map(|s| encode(&heartbeat(s))).collect();
        let fourth = encode(&heartbeat(4));
        bytes.extend_from_slice(&fourth[..3]);
        let mut frames = FrameReader::new(&bytes[..]);
        let first = frames.next().await.expect("read").expect("frame");
        assert_eq!(WorkerFrame::decode(first).expect("decode"), heartbeat(1));
        for sequence in [2, 3] {
            let payload = frames.buffered().expect("buffered").expect("frame");
            assert_eq!(
                WorkerFrame::decode(payload).expect("decode"),
                heartbeat(sequence)
            );
        }
        assert!(frames.buffered().expect("partial").is_none());
    }

    #[tokio::test]
    async fn oversized_frame_is_refused() {
        let header = u32::try_from(MAX_FRAME + 1).expect("fits").to_be_bytes();
        let err = FrameReader::new(&header[..])
            .next()
            .await
            .expect_err("too big");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let mut bytes = 10u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 2, 3]);
        let err = FrameReader::new(&bytes[..])
            .next()
            .await
            .expect_err("truncated");
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    /// A read cancelled in the middle of a frame (as when a watchdog tick wins a
    /// `tokio::select!`) loses nothing: the next call returns that frame whole.
    #[tokio::test]
    async fn cancelled_in_the_middle_of_a_frame_loses_nothing() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut frames = FrameReader::new(rx);
        let bytes: Vec<u8> = (1..=50).flat_map(|s| encode(&heartbeat(s))).collect();
        let mut received = Vec::new();
        for chunk in bytes.chunks(3) {
            tx.write_all(chunk).await.expect("write");
            // Nothing more is coming for now: every call that does not complete a frame is
            // cancelled by the timeout after its read.
            while let Ok(read) =
                tokio::time::timeout(std::time::Duration::from_millis(1), frames.next()).await
            {
                let payload = read.expect("read").expect("frame");
                received.push(WorkerFrame::decode(payload).expect("decode"));
            }
        }
        let expected: Vec<_> = (1..=50).map(heartbeat).collect();
        assert_eq!(received, expected);
    }
}
