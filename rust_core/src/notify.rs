//! Coalesced wake-ups of the Python event loop.
//!
//! Engine threads never take the GIL. They queue completions (answers to
//! earlier calls, by token) and the ids of subscriptions that have data, and
//! write one byte to a socket pair only when the loop is not already due to
//! wake. The loop watches the other end (`add_reader`) and drains everything
//! in one call: one syscall and one GIL entry per batch, not per event.
//!
//! A thread doing several things in a row that each queue something (the copier's 30
//! follower orders of one master deal, each with its execution event) holds the wake-up
//! ([`Notifier::hold`]): everything is queued as usual, and the loop is woken once, when the
//! hold ends. Woken after the first of them instead, the loop's thread takes the core from
//! the one still working (a thread that slept has the scheduler's priority), and the next
//! item waits for the loop's turn.

use parking_lot::Mutex;
use std::cell::Cell;
use std::io::Write;
use std::marker::PhantomData;
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

    /// Holds this thread's wake-ups until the returned guard is dropped: what is queued
    /// meanwhile is announced by one wake-up then (holds nest; the outermost one wakes).
    /// Other threads' wake-ups are not held, and a loop they wake drains this thread's
    /// items too (nothing is lost, only the extra wake-ups are saved).
    ///
    /// A hold is of this notifier only: while it lasts, the thread's wake-ups of another
    /// notifier go out at once, and a hold of another notifier taken inside it holds
    /// nothing more (the guard cannot leave its thread).
    pub fn hold(&self) -> Hold<'_> {
        let me = self.key();
        let counted = HOLD.with(|h| {
            let (owner, depth, due) = h.get();
            if depth == 0 {
                h.set((me, 1, false));
                true
            } else if owner == me {
                h.set((owner, depth + 1, due));
                true
            } else {
                false
            }
        });
        Hold {
            notifier: self,
            counted,
            not_send: PhantomData,
        }
    }

    /// This notifier's identity in the thread's hold.
    fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn wake(&self) {
        let me = self.key();
        let held = HOLD.with(|h| {
            let (owner, depth, _) = h.get();
            let held = depth > 0 && owner == me;
            if held {
                h.set((owner, depth, true));
            }
            held
        });
        if held {
            return;
        }
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

thread_local! {
    /// This thread's holds: the notifier held, their depth, and whether a wake-up is due
    /// when they end.
    static HOLD: Cell<(usize, u32, bool)> = const { Cell::new((0, 0, false)) };
}

/// Wake-ups held (see [`Notifier::hold`]); the one due is made when the last hold ends.
#[derive(Debug)]
#[must_use = "the hold ends when this is dropped"]
pub struct Hold<'a> {
    notifier: &'a Notifier,
    /// Whether this guard counts in the thread's hold (not when another notifier's was on).
    counted: bool,
    /// The count is the thread's: the guard stays on the thread that took it.
    not_send: PhantomData<*const ()>,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let due = HOLD.with(|h| {
            let (owner, depth, due) = h.get();
            if depth <= 1 {
                h.set((0, 0, false));
                due
            } else {
                h.set((owner, depth - 1, due));
                false
            }
        });
        if due {
            self.notifier.wake();
        }
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
    fn a_hold_wakes_once_when_it_ends() {
        let n = Notifier::new().expect("pair");
        {
            let _hold = n.hold();
            n.complete(Completion::ok(1, vec![1]));
            assert_eq!(n.drain().completions.len(), 1, "queued while held");
            n.ready(&[7]);
            {
                let _inner = n.hold();
                n.ready(&[8]);
            }
            assert_eq!(pending_bytes(&n), 0, "no wake-up while held");
        }
        assert_eq!(pending_bytes(&n), 1, "one wake-up when the hold ends");
        assert_eq!(n.drain().ready, vec![7, 8]);
        {
            let _hold = n.hold();
        }
        assert_eq!(pending_bytes(&n), 0, "nothing queued: no wake-up");
        n.ready(&[9]);
        assert_eq!(pending_bytes(&n), 1, "not held: at once");
    }

    #[test]
    fn a_hold_does_not_hold_other_threads() {
        let n = Notifier::new().expect("pair");
        let _hold = n.hold();
        std::thread::scope(|s| {
            s.spawn(|| n.ready(&[1]));
        });
        assert_eq!(pending_bytes(&n), 1);
    }

    #[test]
    fn a_hold_holds_only_its_notifier() {
        let held = Notifier::new().expect("pair");
        let other = Notifier::new().expect("pair");
        {
            let _hold = held.hold();
            other.ready(&[1]);
            assert_eq!(pending_bytes(&other), 1, "another notifier wakes at once");
            assert_eq!(other.drain().ready, vec![1]);
            held.ready(&[2]);
            {
                let _inner = other.hold();
                other.ready(&[3]);
                assert_eq!(
                    pending_bytes(&other),
                    1,
                    "its hold inside another's holds nothing"
                );
            }
            assert_eq!(pending_bytes(&held), 0, "still held");
        }
        assert_eq!(pending_bytes(&held), 1, "woken when its hold ends");
        assert_eq!(other.drain().ready, vec![3]);
        assert_eq!(pending_bytes(&other), 0, "not woken again");
        assert_eq!(held.drain().ready, vec![2]);
    }

    #[test]
    fn error_completion_keeps_code_and_reason() {
        let e = EngineError::invalid("volume", "VOLUME_INVALID", "volume: NaN");
        let c = Completion::err(5, &e, Vec::new());
        assert_eq!(c.code, Code::InvalidArgument as i32);
        assert_eq!(c.reason, "VOLUME_INVALID");
    }
}
