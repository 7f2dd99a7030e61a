//! The risk engine: the pre-trade gate every order passes before it leaves for a terminal.
//!
//! [`checks`] is the pure rule set; [`InstanceRisk`] holds an instance's limits, trading
//! state, kill switch and the state the rules need over time (daily counters, equity high,
//! recent orders, its throttle); [`Gate`] holds what spans instances (owner and global
//! throttles, owner whitelists, rejection counts).

pub mod checks;
pub mod live;
pub mod refusals;
pub mod throttle;

use crate::reason;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};

use crate::error::{num, quote, Code, EngineError, Result};
use crate::pb::v1::{RiskLimits, TradingState};
use checks::{Book, Controls, Market, Order};
use throttle::TokenBucket;

const DAY_MSC: i64 = 86_400_000;

/// A daily trading window in minutes after midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: u32,
    end: u32,
}

impl Window {
    /// Parses `session_start`/`session_end` ("HH:MM"; both empty: no window).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` naming the field.
    pub fn parse(start: &str, end: &str) -> Result<Option<Self>> {
        if start.is_empty() && end.is_empty() {
            return Ok(None);
        }
        let minutes = |field: &'static str, text: &str| -> Result<u32> {
            let parsed = text.split_once(':').and_then(|(h, m)| {
                let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
                (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
            });
            parsed.ok_or_else(|| {
                EngineError::invalid(
                    field,
                    reason::SESSION_INVALID,
                    format!("{field}: expected \"HH:MM\" (UTC), got {}", quote(text)),
                )
            })
        };
        let start = minutes("risk.session_start", start)?;
        let end = minutes("risk.session_end", end)?;
        Ok(Some(Self { start, end }))
    }

    /// Whether the time of day of `now_msc` is inside (start inclusive, end exclusive; an
    /// end before the start spans midnight).
    pub fn contains(self, now_msc: i64) -> bool {
        let minute = u32::try_from(now_msc.rem_euclid(DAY_MSC) / 60_000).unwrap_or(0);
        if self.start <= self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// Symbols a whitelist may name.
pub const MAX_ALLOWED_SYMBOLS: usize = 1_000;

/// A symbol name as the templates take it: 1 to 64 characters, no whitespace.
fn is_symbol_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=64).contains(&count) && !name.chars().any(char::is_whitespace)
}

/// Checks limits for values the engine cannot use.
///
/// # Errors
/// `INVALID_ARGUMENT` naming the first bad field.
pub fn validate_limits(limits: &RiskLimits) -> Result<Option<Window>> {
    for (field, value) in [
        ("risk.max_order_volume", limits.max_order_volume),
        ("risk.min_order_volume", limits.min_order_volume),
        ("risk.max_order_notional", limits.max_order_notional),
        ("risk.max_symbol_exposure", limits.max_symbol_exposure),
        ("risk.max_daily_loss", limits.max_daily_loss),
        ("risk.max_loss_per_trade", limits.max_loss_per_trade),
        ("risk.max_drawdown_percent", limits.max_drawdown_percent),
        ("risk.price_collar_percent", limits.price_collar_percent),
        ("risk.orders_per_second", limits.orders_per_second),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(EngineError::invalid(
                field,
                reason::LIMIT_INVALID,
                format!(
                    "{field}: must be a finite number >= 0 (0 disables it), got {}",
                    num(value)
                ),
            ));
        }
    }
    if limits.max_drawdown_percent > 100.0 {
        return Err(EngineError::invalid(
            "risk.max_drawdown_percent",
            reason::LIMIT_INVALID,
            "risk.max_drawdown_percent: at most 100",
        ));
    }
    if limits.max_order_volume > 0.0 && limits.min_order_volume > limits.max_order_volume {
        return Err(EngineError::invalid(
            "risk.min_order_volume",
            reason::LIMIT_INVALID,
            format!(
                "risk.min_order_volume: {} is above risk.max_order_volume {}",
                num(limits.min_order_volume),
                num(limits.max_order_volume)
            ),
        ));
    }
    if limits.allowed_symbols.len() > MAX_ALLOWED_SYMBOLS {
        return Err(EngineError::invalid(
            "risk.allowed_symbols",
            reason::LIMIT_INVALID,
            format!("risk.allowed_symbols: at most {MAX_ALLOWED_SYMBOLS} symbols"),
        ));
    }
    if let Some(bad) = limits.allowed_symbols.iter().find(|s| !is_symbol_name(s)) {
        return Err(EngineError::invalid(
            "risk.allowed_symbols",
            reason::LIMIT_INVALID,
            format!(
                "risk.allowed_symbols: {} is not a symbol name (1 to 64 characters, no \
                 whitespace)",
                quote(bad)
            ),
        ));
    }
    Window::parse(&limits.session_start, &limits.session_end)
}

/// An instance's daily risk counters, saved by the server so that a restart does not reset
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayState {
    /// Days since the epoch (UTC).
    pub day: i64,
    /// New orders sent that day.
    pub trades_today: u32,
    /// Equity when the day started (0: not seen yet).
    pub day_start_equity: f64,
    /// Highest equity seen.
    pub equity_high: f64,
}

/// What the engine knows of an order when it asks the gate.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The order.
    pub order: Order,
    /// Its symbol.
    pub symbol: &'a str,
    /// Its market.
    pub market: Market<'a>,
    /// The account and book.
    pub book: Book,
    /// Requests to the terminal not answered yet.
    pub in_flight: u32,
    /// Now, monotonic nanoseconds (throttles).
    pub now_ns: u64,
}

/// An instance's risk state.
#[derive(Debug, Clone)]
pub struct InstanceRisk {
    /// The limits.
    pub limits: RiskLimits,
    /// Their version (incremented by every change).
    pub version: u64,
    /// ACTIVE, REDUCE_ONLY or HALTED.
    pub state: TradingState,
    /// Engaged by the kill switch.
    pub kill_switch: bool,
    window: Option<Window>,
    bucket: TokenBucket,
    day: i64,
    /// New orders sent today.
    pub trades_today: u32,
    /// Equity when the day started.
    pub day_start_equity: f64,
    /// Highest equity seen.
    pub equity_high: f64,
    recent: VecDeque<(i64, u64)>,
}

impl InstanceRisk {
    /// The risk state of an instance starting with `limits`.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for bad limits.
    pub fn new(
        limits: RiskLimits,
        version: u64,
        state: TradingState,
        kill_switch: bool,
        now_ns: u64,
    ) -> Result<Self> {
        let window = validate_limits(&limits)?;
        Ok(Self {
            bucket: TokenBucket::new(limits.orders_per_second, now_ns),
            limits,
            version,
            state: if state == TradingState::Unspecified {
                TradingState::Active
            } else {
                state
            },
            kill_switch,
            window,
            day: 0,
            trades_today: 0,
            day_start_equity: 0.0,
            equity_high: 0.0,
            recent: VecDeque::new(),
        })
    }

    /// Replaces the limits (the version is the caller's).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for bad limits; nothing changes then.
    pub fn set_limits(&mut self, limits: RiskLimits, version: u64, now_ns: u64) -> Result<()> {
        self.window = validate_limits(&limits)?;
        self.bucket.set_rate(limits.orders_per_second, now_ns);
        self.limits = limits;
        self.version = version;
        Ok(())
    }

    fn roll_day(&mut self, now_msc: i64) {
        let day = now_msc.div_euclid(DAY_MSC);
        if day != self.day {
            self.day = day;
            self.trades_today = 0;
            self.day_start_equity = 0.0;
        }
    }

    /// Follows the account: the day's starting equity and the high-water mark.
    pub fn on_equity(&mut self, equity: f64, now_msc: i64) {
        if !equity.is_finite() {
            return;
        }
        self.roll_day(now_msc);
        if self.day_start_equity == 0.0 {
            self.day_start_equity = equity;
        }
        self.equity_high = self.equity_high.max(equity);
    }

    /// The counters that must outlive the process: (day number, trades today, the day's
    /// starting equity, highest equity).
    pub fn day_state(&self) -> DayState {
        DayState {
            day: self.day,
            trades_today: self.trades_today,
            day_start_equity: self.day_start_equity,
            equity_high: self.equity_high,
        }
    }

    /// Takes back saved counters: the high-water mark always, the day's only on its day.
    pub fn restore_day(&mut self, saved: DayState, now_msc: i64) {
        self.roll_day(now_msc);
        self.equity_high = self.equity_high.max(saved.equity_high);
        if saved.day == self.day {
            self.trades_today = self.trades_today.max(saved.trades_today);
            if saved.day_start_equity > 0.0 {
                self.day_start_equity = saved.day_start_equity;
            }
        }
    }

    fn duplicate_key(symbol: &str, order: &Order) -> u64 {
        crate::orders::PayloadHasher::default()
            .bytes(symbol.as_bytes())
            .i64(i64::from(order.buy))
            .i64(order.kind as i64)
            .f64(order.volume)
            .f64(order.price)
            .finish()
    }

    fn is_duplicate(&mut self, key: u64, now_msc: i64) -> bool {
        let window = i64::from(self.limits.duplicate_window_ms);
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now_msc - at >= window)
        {
            self.recent.pop_front();
        }
        window > 0 && self.recent.iter().any(|(_, k)| *k == key)
    }

    /// The state-only check of a request that changes no exposure (a modification):
    /// kill switch and HALTED.
    ///
    /// # Errors
    /// `FAILED_PRECONDITION` KILL_SWITCH or TRADING_HALTED.
    pub fn check_state(&self) -> Result<()> {
        checks::trading_allowed(self.kill_switch, self.state).map_err(checks::Rejection::into_error)
    }
}

/// An owner's whitelist and throttle.
#[derive(Debug, Clone, Default)]
pub struct OwnerPolicy {
    /// Symbols the owner may trade (empty: any).
    pub allowed_symbols: Vec<String>,
    /// Orders per second over all the owner's instances (0: unlimited).
    pub orders_per_second: f64,
}

#[derive(Debug, Default)]
struct GateInner {
    global: Option<TokenBucket>,
    default_owner_rate: f64,
    policies: HashMap<String, OwnerPolicy>,
    owner_buckets: HashMap<String, TokenBucket>,
    rejections: HashMap<(String, &'static str), u64>,
}

/// What spans instances: owner and global throttles, owner whitelists, rejection counts.
#[derive(Debug, Default)]
pub struct Gate {
    inner: Mutex<GateInner>,
}

/// Which throttle refused.
fn rate_limited(scope: &str, rate: f64, wait_ns: u64) -> EngineError {
    let mut error = EngineError::new(
        Code::ResourceExhausted,
        reason::RATE_LIMITED,
        format!("the {scope} order rate limit ({rate}/s) is reached; retry later"),
    );
    error.retry_after_ms = u32::try_from(wait_ns.div_ceil(1_000_000)).unwrap_or(u32::MAX);
    error
}

impl Gate {
    /// Sets the global rate, the default per-owner rate and the owners' policies.
    pub fn configure(
        &self,
        global_rate: f64,
        owner_rate: f64,
        policies: HashMap<String, OwnerPolicy>,
        now_ns: u64,
    ) {
        let mut inner = self.inner.lock();
        inner.global = (global_rate > 0.0).then(|| TokenBucket::new(global_rate, now_ns));
        inner.default_owner_rate = owner_rate;
        inner.policies = policies;
        inner.owner_buckets.clear();
    }

    /// Counts a rejection (the metric `mt5exec_risk_rejections_total`).
    pub fn count_rejection(&self, instance_id: &str, reason: &'static str) {
        *self
            .inner
            .lock()
            .rejections
            .entry((instance_id.to_owned(), reason))
            .or_default() += 1;
    }

    /// Rejections so far: (instance, reason, count).
    pub fn rejections(&self) -> Vec<(String, &'static str, u64)> {
        let inner = self.inner.lock();
        let mut out: Vec<_> = inner
            .rejections
            .iter()
            .map(|((i, r), n)| (i.clone(), *r, *n))
            .collect();
        out.sort_unstable();
        out
    }

    fn symbol_allowed(inner: &GateInner, owner: &str, symbol: &str) -> bool {
        inner.policies.get(owner).is_none_or(|p| {
            p.allowed_symbols.is_empty() || p.allowed_symbols.iter().any(|s| s == symbol)
        })
    }

    /// Takes a token from the instance's, the owner's and the global bucket, or none (with
    /// `take` false it only looks).
    fn throttle(
        inner: &mut GateInner,
        risk: &mut InstanceRisk,
        owner: &str,
        now_ns: u64,
        take: bool,
    ) -> Result<()> {
        risk.bucket
            .peek(now_ns)
            .map_err(|wait| rate_limited("instance's", risk.bucket.rate(), wait))?;
        let owner_rate = inner
            .policies
            .get(owner)
            .map_or(inner.default_owner_rate, |p| p.orders_per_second);
        if owner_rate > 0.0 {
            let bucket = inner
                .owner_buckets
                .entry(owner.to_owned())
                .or_insert_with(|| TokenBucket::new(owner_rate, now_ns));
            bucket
                .peek(now_ns)
                .map_err(|wait| rate_limited("owner's", owner_rate, wait))?;
        }
        if let Some(global) = inner.global.as_mut() {
            global
                .peek(now_ns)
                .map_err(|wait| rate_limited("server's", global.rate(), wait))?;
        }
        if !take {
            return Ok(());
        }
        if let Some(global) = inner.global.as_mut() {
            global.take();
        }
        if owner_rate > 0.0 {
            if let Some(bucket) = inner.owner_buckets.get_mut(owner) {
                bucket.take();
            }
        }
        risk.bucket.take();
        Ok(())
    }

    /// The whole gate for a new order: the checks, the in-flight cap and the throttles.
    /// With `commit` the order is counted on success (trades today, duplicate window,
    /// tokens); without, it is a dry run that changes nothing.
    ///
    /// # Errors
    /// The first failing check.
    pub fn check_order(
        &self,
        risk: &mut InstanceRisk,
        owner: &str,
        request: &Request<'_>,
        commit: bool,
    ) -> Result<()> {
        let now_msc = request.market.now_msc;
        risk.roll_day(now_msc);
        let key = InstanceRisk::duplicate_key(request.symbol, &request.order);
        let duplicate = risk.is_duplicate(key, now_msc);
        let mut inner = self.inner.lock();
        let instance_allows = risk.limits.allowed_symbols.is_empty()
            || risk
                .limits
                .allowed_symbols
                .iter()
                .any(|s| s == request.symbol);
        let book = Book {
            trades_today: risk.trades_today,
            day_start_equity: risk.day_start_equity,
            equity_high: risk.equity_high,
            ..request.book
        };
        let controls = Controls {
            limits: &risk.limits,
            state: risk.state,
            kill_switch: risk.kill_switch,
            symbol_allowed: instance_allows && Self::symbol_allowed(&inner, owner, request.symbol),
            in_session: risk.window.is_none_or(|w| w.contains(now_msc)),
            duplicate,
        };
        checks::check(&request.order, &request.market, &book, &controls)
            .map_err(checks::Rejection::into_error)?;
        if risk.limits.max_in_flight_orders > 0
            && request.in_flight >= risk.limits.max_in_flight_orders
        {
            return Err(EngineError::new(
                Code::ResourceExhausted,
                reason::TOO_MANY_IN_FLIGHT,
                format!(
                    "{} orders of this instance await the terminal (risk.max_in_flight_orders)",
                    request.in_flight
                ),
            ));
        }
        Self::throttle(&mut inner, risk, owner, request.now_ns, commit)?;
        if !commit {
            return Ok(());
        }
        if !checks::reduces(&request.order, &request.book) {
            risk.trades_today += 1;
        }
        if risk.limits.duplicate_window_ms > 0 {
            risk.recent.push_back((now_msc, key));
        }
        Ok(())
    }

    /// The gate for a modification or cancel: the state (not for cancels) and the throttles.
    ///
    /// # Errors
    /// KILL_SWITCH, TRADING_HALTED, RATE_LIMITED.
    pub fn check_change(
        &self,
        risk: &mut InstanceRisk,
        owner: &str,
        cancel: bool,
        now_ns: u64,
    ) -> Result<()> {
        if !cancel {
            risk.check_state()?;
        }
        Self::throttle(&mut self.inner.lock(), risk, owner, now_ns, true)
    }
}

#[cfg(test)]
mod tests;
