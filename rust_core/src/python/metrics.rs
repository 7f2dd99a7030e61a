//! What the metrics endpoint reads from the `Engine` class when it is scraped: executions,
//! worker latency, journal health, instance gauges.

use pyo3::prelude::*;

use super::engine::PyEngine;
use super::records::PyJournalStats;

#[pymethods]
impl PyEngine {
    /// How long workers took to answer requests: [(instance id, kind, cumulative counts per
    /// bound of `LATENCY_BOUNDS_S`, count, sum in seconds)].
    #[allow(clippy::type_complexity)]
    fn worker_latency(&self) -> Vec<(String, &'static str, Vec<u64>, u64, f64)> {
        self.inner
            .worker_latency()
            .into_iter()
            .map(|(id, kind, s)| (id, kind, s.cumulative, s.count, s.sum_s))
            .collect()
    }

    /// Executions counted per instance since the start: ([(instance id, symbol, fills,
    /// volume, commission, cumulative slippage counts per bound of `SLIPPAGE_BOUNDS_POINTS`,
    /// slippage count, slippage sum)], [(instance id, reason, rejected orders)],
    /// [(instance id, order status name, order updates)]).
    #[allow(clippy::type_complexity)]
    fn execution_counts(
        &self,
    ) -> (
        Vec<(String, String, u64, f64, f64, Vec<u64>, u64, f64)>,
        Vec<(String, String, u64)>,
        Vec<(String, &'static str, u64)>,
    ) {
        let (mut fills, mut rejections, mut statuses) = (Vec::new(), Vec::new(), Vec::new());
        for (id, counts) in crate::counters::counts(self.inner.shared()) {
            for (symbol, c) in counts.symbols {
                let mut cumulative: Vec<u64> = c
                    .slippage
                    .iter()
                    .scan(0, |sum, n| {
                        *sum += n;
                        Some(*sum)
                    })
                    .collect();
                let count = cumulative.pop().unwrap_or(0);
                fills.push((
                    id.clone(),
                    symbol,
                    c.fills,
                    c.volume,
                    c.commission,
                    cumulative,
                    count,
                    c.slippage_sum,
                ));
            }
            rejections.extend(
                counts
                    .rejections
                    .into_iter()
                    .map(|(r, n)| (id.clone(), r, n)),
            );
            for (status, n) in counts.statuses.iter().enumerate() {
                if *n > 0 {
                    statuses.push((id.clone(), crate::counters::status_name(status), *n));
                }
            }
        }
        fills.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        rejections.sort();
        (fills, rejections, statuses)
    }

    /// The order journal's (usable, failed appends and fsyncs); None without a journal.
    fn journal_health(&self) -> Option<(bool, u64)> {
        crate::counters::journal_health(self.inner.shared())
    }

    /// Per instance: (id, (balance, equity, margin level, leverage) or None, [(symbol,
    /// spread in points)], (worker resident bytes, worker CPU seconds) or None).
    #[allow(clippy::type_complexity)]
    fn instance_gauges(
        &self,
    ) -> Vec<(
        String,
        Option<(f64, f64, f64, u32)>,
        Vec<(String, f64)>,
        Option<(u64, f64)>,
    )> {
        crate::counters::gauges(self.inner.shared())
            .into_iter()
            .map(|g| (g.instance_id, g.account, g.spreads, g.worker))
            .collect()
    }

    /// The order journal's counters.
    fn journal_stats(&self) -> PyJournalStats {
        let s = self.inner.journal_stats();
        PyJournalStats {
            records: s.records,
            bytes: s.bytes,
            fsyncs: s.fsyncs,
            write_ns: s.write_ns,
            fsync_ns: s.fsync_ns,
            compactions: s.compactions,
        }
    }
}
