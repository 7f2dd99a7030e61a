//! The mt5exec Trade Engine, imported from Python as `mt5exec._core`.
//!
//! It owns the hot path: one supervised worker process per instance, the
//! length-prefixed protobuf link to it, in-memory instance/account/position
//! state, pre-trade checks, order routing, and the fan-out of encoded stream
//! messages to subscribers. Python is woken through [`notify::Notifier`] and
//! never sits between a worker and a subscriber except to write bytes to gRPC.
#![deny(unsafe_code)]

pub mod broker;
pub mod config;
pub mod convert;
pub mod copier;
pub mod counters;
pub mod engine;
pub mod error;
pub mod events;
pub mod fanout;
pub mod frame;
pub mod journal;
pub mod killswitch;
pub mod latency;
pub mod market;
pub mod notify;
pub mod orders;
pub mod pb;
pub mod private;
pub mod reason;
pub mod retcode;
pub mod risk;
pub mod routing;
pub mod session;
pub mod shared;
pub mod supervisor;
pub mod validate;
pub mod wire;

#[cfg(feature = "python")]
mod python;
