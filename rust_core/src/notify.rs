//! Coalesced wake-ups of the Python event loop.
//!
//! Engine threads never take the GIL. They queue completions (answers to
//! earlier calls, by token) and the ids of subscriptions that have data, and
//! write one byte to a socket pair only when the loop is not already due to
//! wake. The loop watches the other end (`add_reader`) and drains everything
//! in one call: one syscall and one GIL entry per batch, not per event.

use parking_lot::Mutex;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Code, EngineError};

/// The answer to an earlier call, matched by its token.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Token returned by the call.
    pub token: u64,
    /// gRPC code; 0 is success.
    pub code: i32,
    /// Stable reason when `code` is not 0.
    pub reason: String,
    /// Detail when `code` is not 0.
    pub message: String,
    /// Encoded response (or the partial result that goes with an error).
    pub payload: Vec<u8>,
}

impl Completion {
    /// A successful completion.
    pub fn ok(token: u64, payload: Vec<u8>) -> Self {
        Self {
            token,
            code: Code::Ok as i32,
            reason: String::new(),
            message: String::new(),
            payload,
        }
    }

    /// A failed completion, with an optional partial payload.
    pub fn err(token: u64, error: &EngineError, payload: Vec<u8>) -> Self {
        Self {
            token,
            code: error.code as i32,
            reason: error.reason.to_owned(),
            message: error.message.clone(),
            payload,
        }
    }
}

/// What one drain hands to Python.
#[derive(Debug, Default)]
pub struct Drained {
    /// Completed calls.
    pub completions: Vec<Completion>,
    /// Subscriptions that have data (each listed once per wake-up).
    pub ready: Vec<u64>,
}

/// The wake-up channel and the queues it announces.
#[derive(Debug)]
pub struct Notifier {
    writer: UnixStream,
    reader: UnixStream,
    armed: AtomicBool,
    queued: Mutex<Drained>,
}

impl Notifier {
    /// Creates the socket pair.
    ///
    /// # Errors
    /// When the OS refuses a socket pair.
    pub fn new() -> std::io::Result<Self> {
        let (writer, reader) = UnixStream::pair()?;
        writer.set_nonblocking(true)?;
        reader.set_nonblocking(true)?;
        Ok(Self {
            writer,
            reader,
            armed: AtomicBool::new(false),
            queued: Mutex::new(Drained::default()),
        })
    }

    /// The descriptor the event loop watches for readability.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// Queues a completion and wakes the loop.
    pub fn complete(&self, completion: Completion) {
        self.queued.lock().completions.push(completion);
        self.wake();
    }

    /// Queues ready subscriptions and wakes the loop.
    pub fn ready(&self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        self.queued.lock().ready.extend_from_slice(ids);
        self.wake();
    }

    fn wake(&self) {
        if !self.armed.swap(true, Ordering::AcqRel) {
            // A full pipe already holds a wake-up, so WouldBlock is fine to ignore.
            let _ = (&self.writer).write(&[1]);
        }
    }

    /// Takes everything queued. Disarms first, so that anything queued while
    /// draining writes a new wake-up byte rather than being missed.
    pub fn drain(&self) -> Drained {
        self.armed.store(false, Ordering::Release);
        std::mem::take(&mut *self.queued.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pending_bytes(n: &Notifier) -> usize {
        let mut buf = [0u8; 64];
        (&n.reader).read(&mut buf).unwrap_or(0)
    }

    #[test]
    fn wake_ups_are_coalesced_until_drained() {
        let n = Notifier::new().expect("pair");
        n.complete(Completion::ok(1, vec![1]));
        n.complete(Completion::ok(2, vec![2]));
        n.ready(&[9]);
        assert_eq!(pending_bytes(&n), 1, "three events, one wake-up byte");
        let d = n.drain();
        assert_eq!(d.completions.len(), 2);
        assert_eq!(d.ready, vec![9]);
        n.ready(&[9]);
        assert_eq!(pending_bytes(&n), 1, "re-armed after the drain");
    }

    #[test]
    fn error_completion_keeps_code_and_reason() {
        let e = EngineError::invalid("volume", "VOLUME_INVALID", "volume: NaN");
        let c = Completion::err(5, &e, Vec::new());
        assert_eq!(c.code, Code::InvalidArgument as i32);
        assert_eq!(c.reason, "VOLUME_INVALID");
    }
}
