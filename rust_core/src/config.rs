//! The engine's tunables and their defaults: the one place they are written.

use std::path::PathBuf;
use std::time::Duration;

use crate::events::LogLimits;
use crate::journal::{FsyncPolicy, DEFAULT_COMPACT_BYTES};
use crate::orders::Retention;

/// Tunables, set once at start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Shutdown frame → SIGTERM.
    pub stop_grace: Duration,
    /// SIGTERM → SIGKILL.
    pub kill_grace: Duration,
    /// Per-subscriber queue bound for ticks, accounts and instance events.
    pub tick_queue_limit: usize,
    /// Per-subscriber queue bound for executions.
    pub execution_queue_limit: usize,
    /// What a tick, account or instance-event subscriber may have queued unread (bytes)
    /// before it is cut off.
    pub stream_queue_max_bytes: usize,
    /// Engine runtime threads.
    pub worker_threads: usize,
    /// The order journal (None: orders are not journaled, e.g. in unit tests).
    pub journal_path: Option<PathBuf>,
    /// When the journal is fsynced.
    pub journal_policy: FsyncPolicy,
    /// Which orders are remembered (in memory and in the journal).
    pub retention: Retention,
    /// The journal is compacted while running when it has grown past this many bytes (and
    /// twice its size after the last compaction).
    pub journal_compact_bytes: u64,
    /// How much of each instance's execution event log is kept.
    pub execution_log: LogLimits,
    /// With many stream subscribers, the longest each waits between its messages (fewer,
    /// larger messages); zero: never. The server's event loop paces this, not the engine.
    pub stream_coalesce_max: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            stop_grace: Duration::from_secs(2),
            kill_grace: Duration::from_secs(1),
            tick_queue_limit: 2_000,
            execution_queue_limit: 100_000,
            stream_queue_max_bytes: crate::fanout::DEFAULT_QUEUE_MAX_BYTES,
            worker_threads: 1,
            journal_path: None,
            journal_policy: FsyncPolicy::Interval(Duration::from_millis(100)),
            retention: Retention::default(),
            journal_compact_bytes: DEFAULT_COMPACT_BYTES,
            execution_log: LogLimits::default(),
            stream_coalesce_max: Duration::from_millis(5),
        }
    }
}
