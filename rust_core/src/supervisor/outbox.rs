//! Frames to a worker: written by the caller's thread when the socket takes them at once.
//!
//! An order used to go to the worker through a channel to a writer task: one thread wake-up
//! per order before it even left the engine (tens of µs on a VM, more when the runtime's
//! threads were idle). Here the thread that makes a frame writes it itself with one
//! non-blocking `write` when nothing is queued ahead of it; only what the socket does not take
//! (a full socket buffer: a worker that is behind) is queued for the writer task, and
//! everything after it waits its turn, so frames keep their order.
//!
//! A frame that may leave only once the order journal is durable up to a position (the
//! `always` fsync policy) is held, and so is every frame sent after it, until a sync releases
//! them in order: an order never overtakes one sent before it while that one waits for its
//! fsync.

use std::collections::VecDeque;

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
    /// Frames waiting for the journal, and every frame sent after the first of them.
    held: VecDeque<Held>,
}

#[derive(Debug)]
struct Held {
    /// Journal position that must be durable first; 0 for a frame that only keeps its turn.
    position: u64,
    /// The request the frame carries (what a failed sync answers).
    token: u64,
    frame: Vec<u8>,
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
    /// it, otherwise queued for the writer task (or held behind a frame waiting for the
    /// journal).
    ///
    /// # Errors
    /// [`Closed`] once the connection is closed (or a write failed).
    pub fn send(&self, frame: Vec<u8>) -> Result<(), Closed> {
        let mut queue = self.queue.lock();
        if queue.closed {
            return Err(Closed);
        }
        if !queue.held.is_empty() {
            queue.held.push_back(Held {
                position: 0,
                token: 0,
                frame,
            });
            return Ok(());
        }
        let result = self.write_now(&mut queue, &frame);
        drop(queue);
        if result != Ok(false) {
            self.wake.notify_one();
        }
        result.map(|_| ())
    }

    /// Holds `frame` (the request `token`) until [`Outbox::release`] says the journal is
    /// durable up to `position`; frames sent later wait behind it. True when nothing was held
    /// before: the caller then syncs and releases until [`Outbox::release`] says none is left.
    ///
    /// # Errors
    /// [`Closed`] once the connection is closed.
    pub fn send_durable(&self, frame: Vec<u8>, position: u64, token: u64) -> Result<bool, Closed> {
        let mut queue = self.queue.lock();
        if queue.closed {
            return Err(Closed);
        }
        let first = queue.held.is_empty();
        queue.held.push_back(Held {
            position,
            token,
            frame,
        });
        Ok(first)
    }

    /// The journal position that releases every held frame (None when none is held).
    #[must_use]
    pub fn held_target(&self) -> Option<u64> {
        self.queue.lock().held.iter().map(|h| h.position).max()
    }

    /// Sends, in order, the held frames up to the first that needs more than `synced`; true
    /// while frames are still held (the caller syncs again).
    pub fn release(&self, synced: u64) -> bool {
        let mut queue = self.queue.lock();
        let mut wake = false;
        while queue.held.front().is_some_and(|h| h.position <= synced) {
            let Some(held) = queue.held.pop_front() else {
                break;
            };
            match self.write_now(&mut queue, &held.frame) {
                Ok(woken) => wake |= woken,
                Err(Closed) => {
                    queue.held.clear();
                    wake = true;
                }
            }
        }
        let still_held = !queue.held.is_empty();
        drop(queue);
        if wake {
            self.wake.notify_one();
        }
        still_held
    }

    /// The journal could not be synced: frames that waited for it are never sent (their
    /// tokens are returned, to be answered), the others are sent in order.
    pub fn fail_held(&self) -> Vec<u64> {
        let mut queue = self.queue.lock();
        let mut refused = Vec::new();
        let mut wake = false;
        while let Some(held) = queue.held.pop_front() {
            if held.position > 0 {
                refused.push(held.token);
            } else if !queue.closed {
                wake |= self.write_now(&mut queue, &held.frame).unwrap_or(true);
            }
        }
        drop(queue);
        if wake {
            self.wake.notify_one();
        }
        refused
    }

    /// Writes `frame` now, or queues what the socket does not take; true when the writer
    /// task must be woken.
    fn write_now(&self, queue: &mut Queue, frame: &[u8]) -> Result<bool, Closed> {
        if queue.closed {
            return Err(Closed);
        }
        if queue.writing || !queue.bytes.is_empty() {
            queue.bytes.extend_from_slice(frame);
            return Ok(false);
        }
        let mut written = 0;
        while written < frame.len() {
            match (&self.socket).write(&frame[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    queue.closed = true;
                    return Err(Closed);
                }
            }
        }
        if written < frame.len() {
            queue.bytes.extend_from_slice(&frame[written..]);
            return Ok(true);
        }
        Ok(false)
    }

    /// Refuses every later frame and lets the writer task end once it wrote what is queued.
    pub fn close(&self) {
        self.queue.lock().closed = true;
        self.wake.notify_one();
    }

    #[cfg(test)]
    fn is_closed(&self) -> bool {
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
mod tests;
