//! Throttle refusals as execution events: at most one per instance, reason and second.
//!
//! A client hammering past its rate limit (or its in-flight cap) gets `RESOURCE_EXHAUSTED`
//! for every order, and the refusals are counted one by one (metrics); but an execution event
//! is a write to the instance's log, so one per refused order would let that client turn its
//! own refusals into disk writes at its own pace. The first throttle refusal of an instance and
//! reason opens a window of one second; the refusals in it are counted, and when it closes one
//! event stands for all of them: the first refused order, `REJECTED` with the reason, and
//! `ExecutionEvent.refusals` the count. Refusals for any other reason stay one event each.

use crate::reason;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

use crate::pb::v1;

/// How long a window gathers the refusals of one instance and reason.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Whether a refusal is a throttle's (coalesced): RESOURCE_EXHAUSTED reasons.
pub fn coalesced(reason: &str) -> bool {
    matches!(reason, reason::RATE_LIMITED | reason::TOO_MANY_IN_FLIGHT)
}

/// One window: the first refused order, how many were refused, when it closes.
#[derive(Debug)]
struct Window {
    first: v1::Order,
    count: u64,
    closes_ns: u64,
}

/// A closed window: the event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// The instance.
    pub instance_id: String,
    /// The first order refused in the window.
    pub order: v1::Order,
    /// How many orders the window's refusals were (at least 1).
    pub count: u64,
}

/// The open windows, by instance and reason.
#[derive(Debug, Default)]
pub struct Refusals {
    windows: Mutex<HashMap<(String, &'static str), Window>>,
    /// Wakes the task that publishes windows as they close (see [`Refusals::run`]).
    opened: tokio::sync::Notify,
}

impl Refusals {
    /// Counts a throttle refusal at `now_ns` (the engine's monotonic clock); `order` makes the
    /// refused order, called only when this refusal opens a window. Returns the window of the
    /// same instance and reason that had already closed, if its event is still to publish
    /// (so that the count never waits for the publishing task).
    pub fn add(
        &self,
        instance_id: &str,
        reason: &'static str,
        now_ns: u64,
        order: impl FnOnce() -> v1::Order,
    ) -> Option<Closed> {
        let mut windows = self.windows.lock();
        let key = (instance_id.to_owned(), reason);
        let mut closed = None;
        if let Some(window) = windows.get_mut(&key) {
            if now_ns < window.closes_ns {
                window.count += 1;
                return None;
            }
            closed = windows.remove(&key).map(|w| Closed {
                instance_id: instance_id.to_owned(),
                order: w.first,
                count: w.count,
            });
        }
        let window_ns = u64::try_from(WINDOW.as_nanos()).unwrap_or(u64::MAX);
        windows.insert(
            key,
            Window {
                first: order(),
                count: 1,
                closes_ns: now_ns.saturating_add(window_ns),
            },
        );
        drop(windows);
        self.opened.notify_one();
        closed
    }

    /// Takes the windows closed at `now_ns`, oldest first.
    pub fn due(&self, now_ns: u64) -> Vec<Closed> {
        let mut windows = self.windows.lock();
        let mut keys: Vec<_> = windows
            .iter()
            .filter(|(_, w)| w.closes_ns <= now_ns)
            .map(|(k, w)| (w.closes_ns, k.clone()))
            .collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|(_, key)| {
                windows.remove(&key).map(|w| Closed {
                    instance_id: key.0,
                    order: w.first,
                    count: w.count,
                })
            })
            .collect()
    }

    /// When the next window closes, if one is open.
    fn next_close_ns(&self) -> Option<u64> {
        self.windows.lock().values().map(|w| w.closes_ns).min()
    }

    /// Publishes each window as it closes, for ever: `now_ns` is the clock of `add`, and
    /// `publish` makes the event.
    pub async fn run(&self, now_ns: impl Fn() -> u64, publish: impl Fn(Closed)) {
        loop {
            match self.next_close_ns() {
                // A window opened after the look above left a permit: no wait is missed.
                None => self.opened.notified().await,
                Some(at) => {
                    let now = now_ns();
                    if at > now {
                        // Woken early by a new window: look again (it may close sooner).
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_nanos(at - now)) => {}
                            () = self.opened.notified() => continue,
                        }
                    }
                    for closed in self.due(now_ns()) {
                        publish(closed);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
