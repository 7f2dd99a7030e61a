//! Latency histograms with fixed buckets, recorded lock-free on the hot path and read when
//! Prometheus scrapes (`mt5exec_worker_request_seconds`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (Prometheus `le`): from 100 µs, where a simulated
/// broker answers, to 10 s, past any terminal's order timeout.
pub const BOUNDS_S: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Durations counted per bucket (the last counts those above every bound), and their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BOUNDS_S.len() + 1],
    sum_ns: AtomicU64,
}

/// A histogram as Prometheus exposes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Observations at or below each bound of [`BOUNDS_S`], in order (cumulative).
    pub cumulative: Vec<u64>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// Their sum in seconds.
    pub sum_s: f64,
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BOUNDS_S.partition_point(|&bound| bound < seconds);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// What was counted so far; None when nothing was.
    #[must_use]
    pub fn snapshot(&self) -> Option<Snapshot> {
        let mut cumulative = Vec::with_capacity(BOUNDS_S.len());
        let mut running = 0;
        for count in &self.counts[..BOUNDS_S.len()] {
            running += count.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let count = running + self.counts[BOUNDS_S.len()].load(Ordering::Relaxed);
        if count == 0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)] // sums of durations: far below 2^53 ns
        let sum_s = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        Some(Snapshot {
            cumulative,
            count,
            sum_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_counted_is_no_snapshot() {
        assert_eq!(Histogram::default().snapshot(), None);
    }

    #[test]
    fn durations_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let h = Histogram::default();
        h.record(Duration::from_micros(100)); // on the first bound: counted in it
        h.record(Duration::from_micros(101));
        h.record(Duration::from_micros(400));
        h.record(Duration::from_secs(30)); // above every bound
        let s = h.snapshot().expect("counted");
        assert_eq!(s.count, 4);
        assert_eq!(&s.cumulative[..4], &[1, 2, 3, 3]);
        assert_eq!(*s.cumulative.last().expect("buckets"), 3);
        assert!((s.sum_s - 30.000_601).abs() < 1e-9, "{}", s.sum_s);
    }

    #[test]
    fn cumulative_counts_never_decrease() {
        let h = Histogram::default();
        for us in [50, 300, 700, 3_000, 40_000, 2_000_000] {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot().expect("counted");
        assert!(s.cumulative.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s.cumulative.len(), BOUNDS_S.len());
        assert_eq!(s.count, 6);
    }
}
