//! The engine's one error type, carrying the gRPC status it maps to.
//!
//! Python turns it into a gRPC status with `google.rpc.ErrorInfo` in one place
//! (`mt5exec.errors`); the `reason` strings are part of the public API.

use crate::reason;
use std::fmt;

/// gRPC status codes used by the engine (values of `google.rpc.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// The client gave up or the server is stopping.
    Cancelled = 1,
    /// A field is malformed or out of range.
    InvalidArgument = 3,
    /// The outcome is unknown after a timeout.
    DeadlineExceeded = 4,
    /// Unknown instance, order or position.
    NotFound = 5,
    /// The object exists already (or an idempotency key is reused with another payload).
    AlreadyExists = 6,
    /// Rate limit, concurrency cap, slow consumer.
    ResourceExhausted = 8,
    /// Risk limit, kill switch, market closed, instance not ready.
    FailedPrecondition = 9,
    /// Not built yet.
    Unimplemented = 12,
    /// A bug.
    Internal = 13,
    /// Terminal, broker or worker down.
    Unavailable = 14,
}

/// An error with its gRPC code, a stable reason and the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    /// The status code.
    pub code: Code,
    /// Stable UPPER_SNAKE reason, the `ErrorInfo.reason`.
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
    /// The request field at fault, if any.
    pub field: &'static str,
    /// When to retry (RESOURCE_EXHAUSTED from a throttle), in milliseconds; 0: not said.
    pub retry_after_ms: u32,
}

impl EngineError {
    /// Builds an error.
    pub fn new(code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            field: "",
            retry_after_ms: 0,
        }
    }

    /// Names the request field at fault.
    #[must_use]
    pub fn field(mut self, field: &'static str) -> Self {
        self.field = field;
        self
    }

    /// An `INVALID_ARGUMENT` about `field`.
    pub fn invalid(field: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, reason, message).field(field)
    }

    /// `NOT_FOUND` for an instance id.
    pub fn instance_not_found(instance_id: &str) -> Self {
        Self::new(
            Code::NotFound,
            reason::INSTANCE_NOT_FOUND,
            format!("instance_id: no instance '{instance_id}'"),
        )
        .field("instance_id")
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for EngineError {}

/// Engine result.
pub type Result<T> = std::result::Result<T, EngineError>;

/// At most this many characters of client input are quoted back in a message (the message
/// travels in the status trailers, which clients bound), as `mt5exec.errors.quote` does.
pub const QUOTE_LIMIT: usize = 64;

/// `value` quoted for an error message: its first [`QUOTE_LIMIT`] characters, and its
/// length when it is longer.
pub fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_LIMIT) {
        None => format!("{value:?}"),
        Some((end, _)) => format!(
            "{:?}... ({} characters)",
            &value[..end],
            value.chars().count()
        ),
    }
}

/// A number for an error message: as written when it is of an ordinary size, else in
/// exponent form (`1e308`, not 309 digits).
pub fn num(value: f64) -> String {
    let size = value.abs();
    if value == 0.0 || !value.is_finite() || (1e-6..1e16).contains(&size) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_quoted_short() {
        assert_eq!(quote("EURUSD"), "\"EURUSD\"");
        let long = "é".repeat(100_000);
        let quoted = quote(&long);
        assert!(quoted.starts_with(&format!("\"{}\"...", "é".repeat(64))));
        assert!(quoted.ends_with("(100000 characters)"), "{quoted}");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(1e308), "1e308");
        assert_eq!(num(-216.8885), "-216.8885");
        assert_eq!(num(0.015), "0.015");
        assert_eq!(num(1e-9), "1e-9");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(f64::INFINITY), "inf");
    }
}
