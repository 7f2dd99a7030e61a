//! Streams: the `Subscription` class (one subscriber's queue) and the `Engine` methods
//! that subscribe, unsubscribe and report on the fan-out.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::engine::PyEngine;
use crate::error::EngineError;
use crate::events::StreamStart;
use crate::fanout::{Subscription, Topic};

#[pymethods]
impl PyEngine {
    /// Whether stream subscribers wait between messages (Python decides from their number):
    /// then `Subscription.ready` gives a subscriber nothing after its first message.
    fn set_coalescing(&self, on: bool) {
        self.coalescing.store(on, Ordering::Relaxed);
    }

    /// Subscribes to topic 0 ticks, 1 executions, 2 accounts, 3 instance events, 4 books.
    #[pyo3(signature = (topic, instance_ids = Vec::new(), symbols = Vec::new(), conflate = false))]
    fn subscribe(
        &self,
        topic: i32,
        instance_ids: Vec<String>,
        symbols: Vec<String>,
        conflate: bool,
    ) -> PyResult<PySubscription> {
        let topic = Topic::from_i32(topic)
            .ok_or_else(|| PyValueError::new_err(format!("topic: unknown topic {topic}")))?;
        let sub = self
            .inner
            .subscribe(topic, instance_ids, symbols, conflate)?;
        Ok(PySubscription::new(topic, sub, &self.coalescing))
    }

    /// The last execution event sequence an instance gave.
    fn last_sequence(&self, instance_id: &str) -> PyResult<u64> {
        Ok(self.inner.last_sequence(instance_id)?)
    }

    /// Subscribes to one instance's executions after `from_sequence` (replay, then live).
    /// A replay older than the ring reads the instance's log: without the GIL.
    /// The subscription and the sequence it starts after; `live`: after the last event
    /// (`from_sequence` is not used then).
    #[pyo3(signature = (instance_id, from_sequence, live = false))]
    fn subscribe_executions(
        &self,
        py: Python<'_>,
        instance_id: &str,
        from_sequence: u64,
        live: bool,
    ) -> PyResult<(PySubscription, u64)> {
        let start = if live {
            StreamStart::Live
        } else {
            StreamStart::After(from_sequence)
        };
        let (sub, after) = py.detach(|| self.inner.subscribe_executions(instance_id, start))?;
        Ok((
            PySubscription::new(Topic::Executions, sub, &self.coalescing),
            after,
        ))
    }

    fn unsubscribe(&self, subscription: &PySubscription) {
        self.inner
            .unsubscribe(subscription.topic, subscription.sub.id);
    }

    /// Per topic: (name, subscribers, queued messages, dropped or conflated messages).
    fn stream_stats(&self) -> Vec<(&'static str, usize, usize, u64)> {
        self.inner
            .shared()
            .hub
            .stats()
            .into_iter()
            .map(|s| (s.topic.name(), s.subscribers, s.queued, s.dropped))
            .collect()
    }

    /// Stream subscribers the engine cut off for reading too slowly (more queued than its
    /// bound; those a stream's write timeout ends are counted by the server).
    fn stream_cutoffs(&self) -> u64 {
        self.inner.shared().hub.cutoffs()
    }
}

/// One stream subscriber's queue.
#[pyclass(frozen, name = "Subscription", module = "mt5exec._core")]
pub struct PySubscription {
    topic: Topic,
    sub: Arc<Subscription>,
    /// Ended by the server (shutdown): `ready` gives nothing more.
    ended: AtomicBool,
    /// A message was taken.
    yielded: AtomicBool,
    /// The engine's flag: many subscribers, each waits between its messages.
    coalescing: Arc<AtomicBool>,
}

impl PySubscription {
    fn new(topic: Topic, sub: Arc<Subscription>, coalescing: &Arc<AtomicBool>) -> Self {
        Self {
            topic,
            sub,
            ended: AtomicBool::new(false),
            yielded: AtomicBool::new(false),
            coalescing: Arc::clone(coalescing),
        }
    }

    /// One encoded response as a Python `bytes`, made once (no intermediate buffer); a
    /// `MemoryError` leaves it queued.
    fn take_bytes<'py>(
        &self,
        py: Python<'py>,
        max_bytes: usize,
    ) -> PyResult<(Option<Bound<'py, PyBytes>>, Option<EngineError>)> {
        let taken = self.sub.take_with(max_bytes, |size, fill| {
            PyBytes::new_with(py, size, |buf| {
                fill(buf);
                Ok(())
            })
        })?;
        if taken.data.is_some() {
            self.yielded.store(true, Ordering::Relaxed);
        }
        Ok((taken.data, taken.closed))
    }
}

#[pymethods]
impl PySubscription {
    #[getter]
    fn id(&self) -> u64 {
        self.sub.id
    }

    /// Whether a message was taken.
    #[getter]
    fn yielded(&self) -> bool {
        self.yielded.load(Ordering::Relaxed)
    }

    /// Ends the stream from the server side: `ready` gives nothing from now on.
    fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// The next encoded response if one is queued and may go now, else None (then wait
    /// with `take`): nothing once ended, nor after the first message while the engine
    /// coalesces. The call a stream makes for each message it writes.
    #[pyo3(signature = (max_bytes = 65536))]
    fn ready<'py>(
        &self,
        py: Python<'py>,
        max_bytes: usize,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if self.ended.load(Ordering::Relaxed)
            || (self.yielded.load(Ordering::Relaxed) && self.coalescing.load(Ordering::Relaxed))
        {
            return Ok(None);
        }
        Ok(self.take_bytes(py, max_bytes)?.0)
    }

    /// One encoded response, or None while none is queued.
    ///
    /// # Errors
    /// `CoreError` (why) once the stream has ended with nothing left.
    #[pyo3(signature = (max_bytes = 65536))]
    fn take<'py>(
        &self,
        py: Python<'py>,
        max_bytes: usize,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        match self.take_bytes(py, max_bytes)? {
            (None, Some(closed)) => Err(closed.into()),
            (data, _) => Ok(data),
        }
    }

    fn queued(&self) -> usize {
        self.sub.queued()
    }

    /// Whether the engine cut it off for leaving too much unread (its queue is freed).
    #[getter]
    fn cut_off(&self) -> bool {
        self.sub.is_cut_off()
    }
}
