//! What the metrics endpoint reads from the `Engine` class when it is scraped: executions,
//! worker latency, journal health, instance gauges; each as small frozen records.

use pyo3::prelude::*;
use std::collections::BTreeMap;

use super::engine::PyEngine;
use super::records::PyJournalStats;

/// How long one instance's worker took to answer one kind of request.
#[pyclass(frozen, get_all, name = "WorkerLatency", module = "mt5exec._core")]
pub struct PyWorkerLatency {
    pub instance_id: String,
    /// place, cancel, modify, sltp or check.
    pub kind: &'static str,
    /// Answers at or below each bound of `LATENCY_BOUNDS_S` (cumulative).
    pub cumulative: Vec<u64>,
    /// Every answer (the `+Inf` bucket).
    pub count: u64,
    /// Their sum in seconds.
    pub sum_s: f64,
}

/// The fills of one instance in one symbol since the start.
#[pyclass(frozen, get_all, name = "FillCounts", module = "mt5exec._core")]
pub struct PyFillCounts {
    pub instance_id: String,
    pub symbol: String,
    pub fills: u64,
    /// Lots filled.
    pub volume: f64,
    /// Commission charged (absolute value).
    pub commission: f64,
    /// Fills whose slippage is at or below each bound of `SLIPPAGE_BOUNDS_POINTS`
    /// (cumulative).
    pub slippage_cumulative: Vec<u64>,
    /// Fills whose slippage was measured (the `+Inf` bucket).
    pub slippage_count: u64,
    /// Their slippage summed, in points.
    pub slippage_sum: f64,
}

/// A count of one instance's orders under one label (a rejection reason, an order status).
#[pyclass(frozen, get_all, name = "LabelCount", module = "mt5exec._core")]
pub struct PyLabelCount {
    pub instance_id: String,
    pub label: String,
    pub count: u64,
}

/// Executions counted per instance since the start.
#[pyclass(frozen, get_all, name = "ExecutionCounts", module = "mt5exec._core")]
pub struct PyExecutionCounts {
    /// By instance and symbol.
    pub fills: Vec<Py<PyFillCounts>>,
    /// Rejected orders by reason (a risk check's, or the terminal's retcode name).
    pub rejections: Vec<Py<PyLabelCount>>,
    /// Order updates by status name.
    pub updates: Vec<Py<PyLabelCount>>,
}

/// What one instance shows now: its account, its spreads, its worker's resources.
#[pyclass(frozen, get_all, name = "InstanceGauges", module = "mt5exec._core")]
pub struct PyInstanceGauges {
    pub instance_id: String,
    /// The account's figures, None until the worker reported them.
    pub balance: Option<f64>,
    pub equity: Option<f64>,
    /// Equity / margin in percent (0: no margin used).
    pub margin_level: Option<f64>,
    pub leverage: Option<u32>,
    /// Spread of each symbol's last tick, in points.
    pub spreads: BTreeMap<String, f64>,
    /// The worker's resident memory and CPU seconds, None while it does not run.
    pub worker_resident_bytes: Option<u64>,
    pub worker_cpu_seconds: Option<f64>,
}

fn label_counts(
    py: Python<'_>,
    counts: Vec<(String, String, u64)>,
) -> PyResult<Vec<Py<PyLabelCount>>> {
    counts
        .into_iter()
        .map(|(instance_id, label, count)| {
            Py::new(
                py,
                PyLabelCount {
                    instance_id,
                    label,
                    count,
                },
            )
        })
        .collect()
}

#[pymethods]
impl PyEngine {
    /// How long workers took to answer requests, per instance and request kind.
    fn worker_latency(&self) -> Vec<PyWorkerLatency> {
        self.inner
            .worker_latency()
            .into_iter()
            .map(|(instance_id, kind, s)| PyWorkerLatency {
                instance_id,
                kind,
                cumulative: s.cumulative,
                count: s.count,
                sum_s: s.sum_s,
            })
            .collect()
    }

    /// Executions counted per instance since the start: fills by symbol with their slippage
    /// histogram, rejected orders by reason, order updates by status.
    fn execution_counts(&self, py: Python<'_>) -> PyResult<PyExecutionCounts> {
        let (mut fills, mut rejections, mut updates) = (Vec::new(), Vec::new(), Vec::new());
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
                fills.push(PyFillCounts {
                    instance_id: id.clone(),
                    symbol,
                    fills: c.fills,
                    volume: c.volume,
                    commission: c.commission,
                    slippage_cumulative: cumulative,
                    slippage_count: count,
                    slippage_sum: c.slippage_sum,
                });
            }
            rejections.extend(
                counts
                    .rejections
                    .into_iter()
                    .map(|(r, n)| (id.clone(), r, n)),
            );
            for (status, n) in counts.statuses.iter().enumerate() {
                if *n > 0 {
                    let name = crate::counters::status_name(status).to_owned();
                    updates.push((id.clone(), name, *n));
                }
            }
        }
        fills.sort_by(|a, b| (&a.instance_id, &a.symbol).cmp(&(&b.instance_id, &b.symbol)));
        rejections.sort();
        Ok(PyExecutionCounts {
            fills: fills
                .into_iter()
                .map(|f| Py::new(py, f))
                .collect::<PyResult<_>>()?,
            rejections: label_counts(py, rejections)?,
            updates: label_counts(py, updates)?,
        })
    }

    /// The order journal's (usable, failed appends and fsyncs); None without a journal.
    fn journal_health(&self) -> Option<(bool, u64)> {
        crate::counters::journal_health(self.inner.shared())
    }

    /// Per instance: its account, spreads and worker figures now.
    fn instance_gauges(&self) -> Vec<PyInstanceGauges> {
        crate::counters::gauges(self.inner.shared())
            .into_iter()
            .map(|g| {
                let account = g.account;
                PyInstanceGauges {
                    instance_id: g.instance_id,
                    balance: account.map(|a| a.0),
                    equity: account.map(|a| a.1),
                    margin_level: account.map(|a| a.2),
                    leverage: account.map(|a| a.3),
                    spreads: g.spreads.into_iter().collect(),
                    worker_resident_bytes: g.worker.map(|w| w.0),
                    worker_cpu_seconds: g.worker.map(|w| w.1),
                }
            })
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
