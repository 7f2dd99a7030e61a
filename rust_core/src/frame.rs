//! Length-prefixed protobuf frames: a 4-byte big-endian length, then the message.

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Frames larger than this are a protocol error (a broken or hostile worker).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Encodes `msg` as one frame.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(4 + len);
    // Lengths are bounded by MAX_FRAME on the reading side; our own frames are small.
    buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    msg.encode_raw(&mut buf);
    buf
}

/// Reads one frame's payload into `buf`; `Ok(false)` on a clean end of stream.
///
/// # Errors
/// I/O errors, a truncated frame, or a frame over [`MAX_FRAME`].
pub async fn read_into<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    buf.clear();
    buf.resize(len, 0);
    reader.read_exact(buf).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::terminal::{worker_frame::Body, Heartbeat, WorkerFrame};

    #[tokio::test]
    async fn round_trip_and_clean_eof() {
        let frame = WorkerFrame {
            body: Some(Body::Heartbeat(Heartbeat {
                sequence: 7,
                time_msc: 42,
            })),
        };
        let mut bytes = encode(&frame);
        bytes.extend(encode(&frame));
        let mut reader = &bytes[..];
        let mut buf = Vec::new();
        for _ in 0..2 {
            assert!(read_into(&mut reader, &mut buf).await.expect("frame"));
            assert_eq!(WorkerFrame::decode(&buf[..]).expect("decode"), frame);
        }
        assert!(!read_into(&mut reader, &mut buf).await.expect("eof"));
    }

    #[tokio::test]
    async fn oversized_frame_is_refused() {
        let header = u32::try_from(MAX_FRAME + 1).expect("fits").to_be_bytes();
        let mut reader = &header[..];
        let err = read_into(&mut reader, &mut Vec::new())
            .await
            .expect_err("too big");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let mut bytes = 10u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut reader = &bytes[..];
        assert!(read_into(&mut reader, &mut Vec::new()).await.is_err());
    }
}
