//! The terminal's connection to its broker: while the worker reports it lost
//! (`BROKER_DISCONNECTED`, the instance DEGRADED for that reason), orders are refused before
//! anything is sent.

use crate::error::{Code, EngineError};
use crate::pb::v1::InstanceState as S;
use crate::reason;
use crate::supervisor::Live;

/// The reason a worker reports a lost broker connection with (and the instance's state reason).
pub const DISCONNECTED: &str = reason::BROKER_DISCONNECTED;

/// `UNAVAILABLE` (`BROKER_DISCONNECTED`) while the terminal has no broker connection.
#[must_use]
pub fn refusal(instance_id: &str, live: &Live) -> Option<EngineError> {
    (live.state == S::Degraded && live.reason == DISCONNECTED).then(|| {
        EngineError::new(
            Code::Unavailable,
            DISCONNECTED,
            format!(
                "instance '{instance_id}': the terminal has lost its broker connection; \
                 nothing was sent"
            ),
        )
    })
}
