//! MT5 `TRADE_RETCODE_*` values: what each means for an order and for the caller.

use crate::error::Code;
use crate::pb::v1::OrderStatus;
use crate::reason as r;

/// How one terminal return code is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retcode {
    /// The MT5 number.
    pub value: u32,
    /// `TRADE_RETCODE_` name without the prefix; also the `ErrorInfo.reason`.
    pub name: &'static str,
    /// Order status after this answer.
    pub status: OrderStatus,
    /// gRPC code returned to the caller.
    pub code: Code,
}

const fn rc(value: u32, name: &'static str, status: OrderStatus, code: Code) -> Retcode {
    Retcode {
        value,
        name,
        status,
        code,
    }
}

use Code::{
    DeadlineExceeded, FailedPrecondition, InvalidArgument, Ok, ResourceExhausted, Unavailable,
};
use OrderStatus::{Accepted, Canceled, Filled, PartiallyFilled, Rejected, Unknown};

/// Every trade server return code of MT5.
pub const TABLE: &[Retcode] = &[
    rc(10004, r::REQUOTE, Rejected, Unavailable),
    rc(10006, r::REJECT, Rejected, FailedPrecondition),
    rc(10007, r::CANCEL, Canceled, FailedPrecondition),
    rc(10008, "PLACED", Accepted, Ok),
    rc(10009, "DONE", Filled, Ok),
    rc(10010, "DONE_PARTIAL", PartiallyFilled, Ok),
    rc(10011, r::ERROR, Rejected, Unavailable),
    rc(10012, r::TIMEOUT, Unknown, DeadlineExceeded),
    rc(10013, r::INVALID, Rejected, InvalidArgument),
    rc(10014, r::INVALID_VOLUME, Rejected, InvalidArgument),
    rc(10015, r::INVALID_PRICE, Rejected, InvalidArgument),
    rc(10016, r::INVALID_STOPS, Rejected, InvalidArgument),
    rc(10017, r::TRADE_DISABLED, Rejected, FailedPrecondition),
    rc(10018, r::MARKET_CLOSED, Rejected, FailedPrecondition),
    rc(10019, r::NO_MONEY, Rejected, FailedPrecondition),
    rc(10020, r::PRICE_CHANGED, Rejected, Unavailable),
    rc(10021, r::PRICE_OFF, Rejected, Unavailable),
    rc(10022, r::INVALID_EXPIRATION, Rejected, InvalidArgument),
    rc(10023, r::ORDER_CHANGED, Rejected, FailedPrecondition),
    rc(10024, r::TOO_MANY_REQUESTS, Rejected, ResourceExhausted),
    rc(10025, r::NO_CHANGES, Rejected, FailedPrecondition),
    rc(10026, r::SERVER_DISABLES_AT, Rejected, FailedPrecondition),
    rc(10027, r::CLIENT_DISABLES_AT, Rejected, FailedPrecondition),
    rc(10028, r::LOCKED, Rejected, FailedPrecondition),
    rc(10029, r::FROZEN, Rejected, FailedPrecondition),
    rc(10030, r::INVALID_FILL, Rejected, InvalidArgument),
    rc(10031, r::CONNECTION, Rejected, Unavailable),
    rc(10032, r::ONLY_REAL, Rejected, FailedPrecondition),
    rc(10033, r::LIMIT_ORDERS, Rejected, FailedPrecondition),
    rc(10034, r::LIMIT_VOLUME, Rejected, FailedPrecondition),
    rc(10035, r::INVALID_ORDER, Rejected, InvalidArgument),
    rc(10036, r::POSITION_CLOSED, Rejected, FailedPrecondition),
    rc(10038, r::INVALID_CLOSE_VOLUME, Rejected, InvalidArgument),
    rc(10039, r::CLOSE_ORDER_EXIST, Rejected, FailedPrecondition),
    rc(10040, r::LIMIT_POSITIONS, Rejected, FailedPrecondition),
    rc(10041, r::REJECT_CANCEL, Rejected, FailedPrecondition),
    rc(10042, r::LONG_ONLY, Rejected, FailedPrecondition),
    rc(10043, r::SHORT_ONLY, Rejected, FailedPrecondition),
    rc(10044, r::CLOSE_ONLY, Rejected, FailedPrecondition),
    rc(10045, r::FIFO_CLOSE, Rejected, FailedPrecondition),
    rc(10046, r::HEDGE_PROHIBITED, Rejected, FailedPrecondition),
];

/// `TRADE_RETCODE_DONE`.
pub const DONE: u32 = 10009;

/// Looks a code up; unknown codes are rejections reported as `UNAVAILABLE`.
pub fn lookup(value: u32) -> Retcode {
    TABLE
        .iter()
        .copied()
        .find(|r| r.value == value)
        .unwrap_or(rc(value, r::UNKNOWN_RETCODE, Rejected, Unavailable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(TABLE.windows(2).all(|w| w[0].value < w[1].value));
    }

    #[test]
    fn success_codes_are_ok_and_failures_are_not() {
        for r in TABLE {
            let success = matches!(r.status, Filled | PartiallyFilled | Accepted);
            assert_eq!(success, r.code == Ok, "{}", r.name);
        }
        assert_eq!(lookup(DONE).status, Filled);
        assert_eq!(lookup(1).name, "UNKNOWN_RETCODE");
    }
}
