//! The engine's risk controls: the kill switch by scope, risk limits and trading states, the
//! order rates, and the daily counters saved across restarts.

use crate::reason;
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;

use super::Engine;
use crate::convert;
use crate::error::{EngineError, Result};
use crate::killswitch;
use crate::pb::v1;
use crate::risk::{self, DayState, OwnerPolicy};
use crate::supervisor::{self, Instance};

impl Engine {
    /// Instances a kill switch scope covers: one instance, an owner's, or all (ordered by id).
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown instance.
    fn scope(&self, instance_id: Option<&str>, owner: Option<&str>) -> Result<Vec<Arc<Instance>>> {
        if let Some(id) = instance_id {
            return Ok(vec![self.shared.instance(id)?]);
        }
        let mut all: Vec<Arc<Instance>> = self
            .shared
            .instances
            .read()
            .values()
            .filter(|i| owner.is_none_or(|o| i.spec.owner == o))
            .cloned()
            .collect();
        all.sort_by(|a, b| a.spec.instance_id.cmp(&b.spec.instance_id));
        Ok(all)
    }

    /// Engages the kill switch for one instance, an owner's instances or all of them (both
    /// `None`); the token completes with an encoded `EngageKillSwitchResponse` once every
    /// pending order's cancel (and each close, with `close_positions`) is answered.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown instance.
    pub fn engage_kill_switch(
        &self,
        instance_id: Option<&str>,
        owner: Option<&str>,
        close_positions: bool,
    ) -> Result<u64> {
        let instances = self.scope(instance_id, owner)?;
        let token = self.shared.token();
        killswitch::engage(&self.shared, &instances, close_positions, token);
        Ok(token)
    }

    /// Releases the kill switch of a scope; returns the instance ids released.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown instance.
    pub fn release_kill_switch(
        &self,
        instance_id: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Vec<String>> {
        let instances = self.scope(instance_id, owner)?;
        killswitch::release(&self.shared, &instances);
        Ok(instances
            .iter()
            .map(|i| i.spec.instance_id.clone())
            .collect())
    }

    /// Replaces an instance's risk limits (encoded `RiskLimits`) and sets their version;
    /// returns the encoded `Instance`.
    ///
    /// # Errors
    /// `NOT_FOUND`, `INVALID_ARGUMENT` for unusable limits (nothing changes then).
    pub fn set_risk_limits(
        &self,
        instance_id: &str,
        limits: &[u8],
        version: u64,
    ) -> Result<Vec<u8>> {
        let limits = v1::RiskLimits::decode(limits).map_err(|e| {
            EngineError::invalid(
                "config.risk",
                reason::REQUEST_INVALID,
                format!("config.risk: {e}"),
            )
        })?;
        let instance = self.shared.instance(instance_id)?;
        let mut live = instance.live.lock();
        live.risk
            .set_limits(limits, version, self.shared.mono_ns())?;
        Ok(instance.to_pb(&live).encode_to_vec())
    }

    /// Sets an instance's trading state; returns the encoded `Instance`.
    ///
    /// # Errors
    /// `NOT_FOUND`, `INVALID_ARGUMENT` for UNSPECIFIED or unknown states.
    pub fn set_trading_state(&self, instance_id: &str, state: i32) -> Result<Vec<u8>> {
        let state = match v1::TradingState::try_from(state) {
            Ok(v1::TradingState::Unspecified) | Err(_) => {
                return Err(EngineError::invalid(
                    "trading_state",
                    reason::TRADING_STATE_INVALID,
                    format!("trading_state: expected ACTIVE, REDUCE_ONLY or HALTED, got {state}"),
                ))
            }
            Ok(state) => state,
        };
        let instance = self.shared.instance(instance_id)?;
        let mut live = instance.live.lock();
        if live.risk.state != state {
            live.risk.state = state;
            let reason = format!(
                "TRADING_STATE_{}",
                state.as_str_name().trim_start_matches("TRADING_STATE_")
            );
            supervisor::announce(&self.shared, &instance, &live, &reason);
        }
        Ok(instance.to_pb(&live).encode_to_vec())
    }

    /// Sets the server-wide and per-owner throttles and the owners' whitelists.
    pub fn configure_risk(
        &self,
        global_orders_per_second: f64,
        owner_orders_per_second: f64,
        owners: HashMap<String, OwnerPolicy>,
    ) {
        self.shared.risk.configure(
            global_orders_per_second,
            owner_orders_per_second,
            owners,
            self.shared.mono_ns(),
        );
    }

    /// An instance's daily risk counters (to save).
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn risk_day_state(&self, instance_id: &str) -> Result<DayState> {
        Ok(self
            .shared
            .instance(instance_id)?
            .live
            .lock()
            .risk
            .day_state())
    }

    /// Gives an instance back its saved daily risk counters.
    ///
    /// # Errors
    /// `NOT_FOUND`.
    pub fn restore_risk_day_state(&self, instance_id: &str, saved: DayState) -> Result<()> {
        let instance = self.shared.instance(instance_id)?;
        instance
            .live
            .lock()
            .risk
            .restore_day(saved, convert::now_msc());
        Ok(())
    }

    /// Risk rejections so far: (instance id, reason, count).
    pub fn risk_rejections(&self) -> Vec<(String, &'static str, u64)> {
        self.shared.risk.rejections()
    }

    /// Publishes the throttle refusals gathered so far without waiting for their second to
    /// end (before the server stops).
    pub fn flush_refusals(&self) {
        for closed in self.shared.refusals.due(u64::MAX) {
            risk::live::publish_refusals(&self.shared, closed);
        }
    }
}
