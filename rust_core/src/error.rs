//! The engine's one error type, carrying the gRPC status it maps to.
//!
//! Python turns it into a gRPC status with `google.rpc.ErrorInfo` in one place
//! (`mt5exec.errors`); the `reason` strings are part of the public API.

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
            "INSTANCE_NOT_FOUND",
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
