//! Frames to a worker: written by the caller's thread when the socket takes them at once.
//!
//! An order used to go to the worker through a channel to a writer task: one thread wake-up
//! per order before it even left the engine (tens of µs on a VM, more when the runtime's
//! threads were idle). Here the thread that makes a frame writes it itself with one
//! non-blocking `write` when nothing is queued ahead of it; only what the socket does not take
//! (a full socket buffer: a worker that is behind) is queued for the writer task, and
//! everything after it waits its turn, so frames keep their order.

use parking_lot::Mutex;
use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::Notify;

/// The worker's connection is closed: the frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

#[derive(Debug, Default)]
struct Queue {
    /// Bytes the socket did not take yet, in order.
    bytes: Vec<u8>,
    /// The writer task is writing bytes it took from `bytes`: later frames queue behind them.
    writing: bool,
    closed: bool,
}

/// The sending side of a worker connection.
#[derive(Debug)]
pub struct Outbox {
    /// The connection (a second handle on the socket the writer task also writes to; it is
    /// non-blocking, like the task's).
    socket: UnixStream,
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Outbox {
    /// An outbox writing to `socket` (non-blocking).
    #[must_use]
    pub fn new(socket: UnixStream) -> Self {
        Self {
            socket,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        }
    }

    /// Sends one encoded frame: written now if nothing is ahead of it and the socket takes
    /// it, otherwise queued for the writer task.
    ///
    /// # Errors
    /// [`Closed`] once the connection is closed (or a write failed).
    pub fn send(&self, frame: Vec<u8>) -> Result<(), Closed> {
        let mut queue = self.queue.lock();
        if queue.closed {
            return Err(Closed);
        }
        if queue.writing || !queue.bytes.is_empty() {
            queue.bytes.extend_from_slice(&frame);
            return Ok(());
        }
        let mut written = 0;
        while written < frame.len() {
            match (&self.socket).write(&frame[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    queue.closed = true;
                    drop(queue);
                    self.wake.notify_one();
                    return Err(Closed);
                }
            }
        }
        if written < frame.len() {
            queue.bytes.extend_from_slice(&frame[written..]);
            drop(queue);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Refuses every later frame and lets the writer task end once it wrote what is queued.
    pub fn close(&self) {
        self.queue.lock().closed = true;
        self.wake.notify_one();
    }

    /// Whether the outbox refuses frames.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.queue.lock().closed
    }

    /// The writer task: writes what `send` queued, in order, until closed (after writing what
    /// was queued before the close) or a write fails.
    pub async fn run(&self, mut writer: OwnedWriteHalf) {
        loop {
            let chunk = {
                let mut queue = self.queue.lock();
                if queue.bytes.is_empty() {
                    queue.writing = false;
                    if queue.closed {
                        return;
                    }
                    None
                } else {
                    queue.writing = true;
                    Some(std::mem::take(&mut queue.bytes))
                }
            };
            match chunk {
                // A `send` between the unlock and this wait leaves a permit: not lost.
                None => self.wake.notified().await,
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        let mut queue = self.queue.lock();
                        queue.closed = true;
                        queue.writing = false;
                        queue.bytes.clear();
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Arc;

    fn pair() -> (
        Arc<Outbox>,
        OwnedWriteHalf,
        UnixStream,
        tokio::net::unix::OwnedReadHalf,
    ) {
        let (ours, theirs) = UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let direct = ours.try_clone().expect("dup");
        let (read, write) = tokio::net::UnixStream::from_std(ours)
            .expect("tokio stream")
            .into_split();
        (Arc::new(Outbox::new(direct)), write, theirs, read)
    }

    #[tokio::test]
    async fn frames_arrive_in_order_also_past_a_full_socket() {
        let (outbox, writer, mut theirs, _read) = pair();
        let task = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            async move { outbox.run(writer).await }
        });
        // Far more than a socket buffer holds, while nobody reads: the tail is queued.
        let frames: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| {
                let mut f = i.to_le_bytes().to_vec();
                f.resize(1024, (i % 251) as u8);
                f
            })
            .collect();
        for f in &frames {
            outbox.send(f.clone()).expect("open");
        }
        assert!(!outbox.queue.lock().bytes.is_empty() || outbox.queue.lock().writing);
        let expected: Vec<u8> = frames.concat();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; expected.len()];
            theirs.read_exact(&mut got).expect("read");
            assert!(got == expected, "bytes out of order");
        });
        tokio::task::spawn_blocking(move || reader.join().expect("reader"))
            .await
            .expect("join");
        outbox.close();
        task.await.expect("writer task");
        assert_eq!(outbox.send(vec![1]), Err(Closed));
    }

    #[tokio::test]
    async fn a_closed_peer_closes_the_outbox() {
        let (outbox, writer, theirs, _read) = pair();
        drop(theirs);
        let task = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            async move { outbox.run(writer).await }
        });
        assert_eq!(outbox.send(vec![0; 16]), Err(Closed));
        assert!(outbox.is_closed());
        task.await.expect("writer task");
    }
}
