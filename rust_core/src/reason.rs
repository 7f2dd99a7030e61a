//! The catalogue of the engine's `ErrorInfo.reason` strings, which are public API: every
//! reason the engine gives (errors, order rejections, copy skips) is a constant here, and code
//! names the constant, never the string. `ALL` lists them; `docs/errors.md` says what each
//! means, and `python/mt5exec/reasons.py` (the Python `Reason` class) has every one of them under
//! the same name (`tests/test_reasons.py` checks both).

/// Declares each reason as a `&str` constant spelled as its name, and [`ALL`].
macro_rules! reasons {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: see docs/errors.md.")]
            pub const $name: &str = stringify!($name);
        )*
        /// Every reason of the engine, in catalogue order.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

reasons! {
    // Request shape
    REQUEST_INVALID,
    MALFORMED_REQUEST,
    FIELD_REQUIRED,
    FIELD_NOT_APPLICABLE,
    VALUE_OUT_OF_RANGE,
    VALUE_TOO_LONG,
    ENUM_INVALID,
    ID_INVALID,
    CLIENT_ORDER_ID_INVALID,
    PAGE_TOKEN_INVALID,
    BATCH_TOO_LARGE,
    BATCH_NESTED,
    // Orders
    SIDE_INVALID,
    ORDER_TYPE_INVALID,
    TIME_IN_FORCE_INVALID,
    EXPIRATION_INVALID,
    FILLING_INVALID,
    SYMBOL_UNKNOWN,
    SYMBOL_INVALID,
    VOLUME_INVALID,
    VOLUME_BELOW_MIN,
    VOLUME_ABOVE_MAX,
    VOLUME_OFF_STEP,
    PRICE_INVALID,
    PRICE_REQUIRED,
    PRICE_WRONG_SIDE,
    STOP_LOSS_WRONG_SIDE,
    TAKE_PROFIT_WRONG_SIDE,
    STOP_LIMIT_PRICE_WRONG_SIDE,
    NO_PRICE,
    CLIENT_ORDER_ID_REUSED,
    ORDER_NOT_FOUND,
    ORDER_NOT_PENDING,
    ORDER_NOT_EXECUTED,
    POSITION_NOT_FOUND,
    // Risk checks (order rejections)
    KILL_SWITCH,
    TRADING_HALTED,
    REDUCE_ONLY,
    SYMBOL_NOT_ALLOWED,
    MARKET_CLOSED,
    CLOSE_ONLY,
    LONG_ONLY,
    SHORT_ONLY,
    OUTSIDE_SESSION,
    VOLUME_BELOW_LIMIT,
    VOLUME_ABOVE_LIMIT,
    STALE_TICK,
    DUPLICATE_ORDER,
    DEVIATION_LIMIT,
    PRICE_COLLAR,
    MAX_PENDING_ORDERS,
    MAX_OPEN_POSITIONS,
    MAX_TRADES_PER_DAY,
    DAILY_LOSS_LIMIT,
    DRAWDOWN_LIMIT,
    TRADE_LOSS_LIMIT,
    NOTIONAL_LIMIT,
    EXPOSURE_LIMIT,
    INSUFFICIENT_MARGIN,
    LIMIT_INVALID,
    SESSION_INVALID,
    TRADING_STATE_INVALID,
    RATE_LIMITED,
    TOO_MANY_IN_FLIGHT,
    // Broker rejections (MT5 trade server return codes, TRADE_RETCODE_<name>)
    REQUOTE,
    REJECT,
    CANCEL,
    ERROR,
    TIMEOUT,
    INVALID,
    INVALID_VOLUME,
    INVALID_PRICE,
    INVALID_STOPS,
    TRADE_DISABLED,
    NO_MONEY,
    PRICE_CHANGED,
    PRICE_OFF,
    INVALID_EXPIRATION,
    ORDER_CHANGED,
    TOO_MANY_REQUESTS,
    NO_CHANGES,
    SERVER_DISABLES_AT,
    CLIENT_DISABLES_AT,
    LOCKED,
    FROZEN,
    INVALID_FILL,
    CONNECTION,
    ONLY_REAL,
    LIMIT_ORDERS,
    LIMIT_VOLUME,
    INVALID_ORDER,
    POSITION_CLOSED,
    INVALID_CLOSE_VOLUME,
    CLOSE_ORDER_EXIST,
    LIMIT_POSITIONS,
    REJECT_CANCEL,
    FIFO_CLOSE,
    HEDGE_PROHIBITED,
    UNKNOWN_RETCODE,
    // Instances and workers
    INSTANCE_NOT_FOUND,
    INSTANCE_EXISTS,
    INSTANCE_RUNNING,
    INSTANCE_NOT_READY,
    INSTANCE_STOPPED,
    INSTANCE_DIR,
    WORKER_UNAVAILABLE,
    WORKER_LOST,
    WORKER_EXITED,
    WORKER_FAILED,
    WORKER_SPAWN,
    WORKER_COMMAND,
    WORKER_SOCKET,
    WORKER_START_TIMEOUT,
    PROTOCOL_ERROR,
    PROTOCOL_MISMATCH,
    HEARTBEAT_LOST,
    LOGIN_FAILED,
    BROKER_DISCONNECTED,
    JOURNAL_UNAVAILABLE,
    // Streams
    SLOW_CONSUMER,
    SEQUENCE_AHEAD,
    SEQUENCE_EXPIRED,
    // Copy trading and signals
    RELATION_NOT_FOUND,
    RELATION_EXISTS,
    RELATION_ID_INVALID,
    FOLLOWER_IS_MASTER,
    FOLLOWER_NOT_FOUND,
    COPY_CYCLE,
    SYMBOL_NOT_ON_FOLLOWER,
    VOLUME_MODE_INVALID,
    RISK_PERCENT_INVALID,
    SIGNAL_SOURCE_INVALID,
    ACCOUNT_UNKNOWN,
    NO_STOP_LOSS,
    TICK_VALUE_UNKNOWN,
    VOLUME_BELOW_MINIMUM,
    SYMBOL_FILTERED,
    MAGIC_FILTERED,
    SIDE_FILTERED,
    ORDER_TYPE_FILTERED,
    REVERSAL_NOT_COPIED,
    // Server
    INTERNAL,
}

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn reasons_are_unique_upper_snake() {
        let mut seen = std::collections::HashSet::new();
        for reason in ALL {
            assert!(seen.insert(reason), "{reason} twice");
            assert!(
                reason
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{reason}"
            );
        }
    }
}
