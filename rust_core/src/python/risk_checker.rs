//! The risk rules alone, for tests and benchmarks (`RiskChecker`): the differential tests
//! and `benchmarks/risk_check.py` call the same `risk::checks::check` the engine runs,
//! without an instance around it.

use prost::Message;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::pb::terminal::SymbolInfo;
use crate::pb::v1::{RiskLimits, TradingState};
use crate::risk::checks::{self, Book, Controls, Kind, Market, Order};

/// One scenario (limits, symbol, market, account, controls); `check` judges orders in it.
#[pyclass(frozen, name = "RiskChecker", module = "mt5exec._core")]
pub struct PyRiskChecker {
    limits: RiskLimits,
    spec: SymbolInfo,
    bid: f64,
    ask: f64,
    tick_age_ms: i64,
    book: Book,
    state: TradingState,
    kill_switch: bool,
    symbol_allowed: bool,
    in_session: bool,
    duplicate: bool,
}

#[pymethods]
impl PyRiskChecker {
    /// `limits` is an encoded `mt5exec.v1.RiskLimits`, `spec` an encoded terminal
    /// `SymbolInfo`; `book` a dict with the fields of the engine's `Book`.
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        limits, spec, bid, ask, *, tick_age_ms = 0, hedging = true, equity = 0.0,
        free_margin = f64::INFINITY, leverage = 100.0, net_volume = 0.0, open_positions = 0,
        pending_orders = 0, trades_today = 0, day_start_equity = 0.0, equity_high = 0.0,
        trading_state = 1, kill_switch = false, symbol_allowed = true, in_session = true,
        duplicate = false,
    ))]
    fn py_new(
        limits: &[u8],
        spec: &[u8],
        bid: f64,
        ask: f64,
        tick_age_ms: i64,
        hedging: bool,
        equity: f64,
        free_margin: f64,
        leverage: f64,
        net_volume: f64,
        open_positions: u32,
        pending_orders: u32,
        trades_today: u32,
        day_start_equity: f64,
        equity_high: f64,
        trading_state: i32,
        kill_switch: bool,
        symbol_allowed: bool,
        in_session: bool,
        duplicate: bool,
    ) -> PyResult<Self> {
        let limits = RiskLimits::decode(limits)
            .map_err(|e| PyValueError::new_err(format!("limits: {e}")))?;
        let spec =
            SymbolInfo::decode(spec).map_err(|e| PyValueError::new_err(format!("spec: {e}")))?;
        Ok(Self {
            limits,
            spec,
            bid,
            ask,
            tick_age_ms,
            book: Book {
                hedging,
                equity,
                free_margin,
                leverage,
                net_volume,
                open_positions,
                pending_orders,
                trades_today,
                day_start_equity,
                equity_high,
            },
            state: TradingState::try_from(trading_state).unwrap_or(TradingState::Active),
            kill_switch,
            symbol_allowed,
            in_session,
            duplicate,
        })
    }

    /// The reason the order is refused, or None. `order_type` is `mt5exec.v1.OrderType`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        buy, order_type, volume, price = 0.0, stop_limit_price = 0.0, stop_loss = 0.0,
        take_profit = 0.0, deviation_points = 0, closes_position = false,
    ))]
    fn check(
        &self,
        buy: bool,
        order_type: i32,
        volume: f64,
        price: f64,
        stop_limit_price: f64,
        stop_loss: f64,
        take_profit: f64,
        deviation_points: u32,
        closes_position: bool,
    ) -> Option<&'static str> {
        let order = Order {
            buy,
            kind: match order_type {
                2 => Kind::Limit,
                3 => Kind::Stop,
                4 => Kind::StopLimit,
                _ => Kind::Market,
            },
            volume,
            price,
            stop_limit_price,
            stop_loss,
            take_profit,
            deviation_points,
            closes_position,
        };
        let market = Market {
            spec: &self.spec,
            bid: self.bid,
            ask: self.ask,
            tick_received_msc: 0,
            now_msc: self.tick_age_ms,
        };
        let controls = Controls {
            limits: &self.limits,
            state: self.state,
            kill_switch: self.kill_switch,
            symbol_allowed: self.symbol_allowed,
            in_session: self.in_session,
            duplicate: self.duplicate,
        };
        checks::check(&order, &market, &self.book, &controls)
            .err()
            .map(|r| r.reason)
    }

    /// Runs `check` `n` times on one order inside Rust; returns the nanoseconds per check
    /// (the Rust-side cost, without the Python call).
    fn time_check(&self, buy: bool, order_type: i32, volume: f64, n: u32) -> f64 {
        let start = std::time::Instant::now();
        let mut refused = 0u32;
        for _ in 0..n {
            let v = std::hint::black_box(volume);
            refused += u32::from(
                self.check(buy, order_type, v, 0.0, 0.0, 0.0, 0.0, 0, false)
                    .is_some(),
            );
        }
        std::hint::black_box(refused);
        start.elapsed().as_nanos() as f64 / f64::from(n.max(1))
    }
}
