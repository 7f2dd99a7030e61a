//! Orders of the `Engine` class: place, cancel, modify, get and list.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::engine::PyEngine;
use crate::routing::{OrderChanges, OrderQuery, OrderRef};
use crate::validate::OrderIntent;

fn order_ref(order_id: u64, client_order_id: String) -> OrderRef {
    if order_id != 0 {
        OrderRef::Ticket(order_id)
    } else {
        OrderRef::ClientId(client_order_id)
    }
}

#[pymethods]
impl PyEngine {
    /// Places an order; returns a token answered with an encoded PlaceOrderResponse.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        instance_id, client_order_id, symbol, side, order_type, volume,
        price = 0.0, stop_limit_price = 0.0, stop_loss = 0.0, take_profit = 0.0,
        deviation_points = 0, time_in_force = 0, expiration_msc = 0, filling = 0,
        comment = String::new(), magic = 0, position_id = 0,
    ))]
    fn place_order(
        &self,
        instance_id: &str,
        client_order_id: String,
        symbol: String,
        side: i32,
        order_type: i32,
        volume: f64,
        price: f64,
        stop_limit_price: f64,
        stop_loss: f64,
        take_profit: f64,
        deviation_points: u32,
        time_in_force: i32,
        expiration_msc: i64,
        filling: i32,
        comment: String,
        magic: u64,
        position_id: u64,
    ) -> PyResult<u64> {
        let intent = OrderIntent {
            client_order_id,
            symbol,
            side,
            order_type,
            volume,
            price,
            stop_limit_price,
            stop_loss,
            take_profit,
            deviation_points,
            time_in_force,
            expiration_msc,
            filling,
            comment,
            magic,
            position_id,
        };
        Ok(self.inner.place_order(instance_id, intent)?)
    }

    /// Places (or with `check_only` checks) an order from an encoded PlaceOrderRequest;
    /// returns (token, client_order_id). With `owner`, an instance of another owner is
    /// NOT_FOUND exactly as one that does not exist.
    #[pyo3(signature = (raw, check_only = false, owner = None))]
    fn place_order_raw(
        &self,
        raw: &[u8],
        check_only: bool,
        owner: Option<&str>,
    ) -> PyResult<(u64, String)> {
        Ok(self.inner.place_order_raw_for(raw, check_only, owner)?)
    }

    /// Cancels a pending order by ticket (order_id) or client_order_id.
    #[pyo3(signature = (instance_id, order_id = 0, client_order_id = String::new()))]
    fn cancel_order(
        &self,
        instance_id: &str,
        order_id: u64,
        client_order_id: String,
    ) -> PyResult<u64> {
        Ok(self
            .inner
            .cancel_order(instance_id, &order_ref(order_id, client_order_id))?)
    }

    /// Changes a pending order (0 keeps a field).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        instance_id, order_id = 0, client_order_id = String::new(), price = 0.0,
        stop_limit_price = 0.0, stop_loss = 0.0, take_profit = 0.0, time_in_force = 0,
        expiration_msc = 0,
    ))]
    fn modify_order(
        &self,
        instance_id: &str,
        order_id: u64,
        client_order_id: String,
        price: f64,
        stop_limit_price: f64,
        stop_loss: f64,
        take_profit: f64,
        time_in_force: i32,
        expiration_msc: i64,
    ) -> PyResult<u64> {
        let changes = OrderChanges {
            price,
            stop_limit_price,
            stop_loss,
            take_profit,
            time_in_force,
            expiration_msc,
        };
        Ok(self
            .inner
            .modify_order(instance_id, &order_ref(order_id, client_order_id), &changes)?)
    }

    fn modify_position(
        &self,
        instance_id: &str,
        position_id: u64,
        stop_loss: f64,
        take_profit: f64,
    ) -> PyResult<u64> {
        Ok(self
            .inner
            .modify_position(instance_id, position_id, stop_loss, take_profit)?)
    }

    #[pyo3(signature = (instance_id, order_id = 0, client_order_id = String::new()))]
    fn get_order<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
        order_id: u64,
        client_order_id: String,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let order = self
            .inner
            .get_order(instance_id, &order_ref(order_id, client_order_id))?;
        Ok(PyBytes::new(py, &order))
    }

    /// One page of orders, newest first: the encoded `ListOrdersResponse`.
    #[pyo3(signature = (
        instance_id,
        history = false,
        symbol = String::new(),
        from_nanos = None,
        to_nanos = None,
        page_size = 0,
        page_token = String::new(),
    ))]
    #[allow(clippy::too_many_arguments)]
    fn list_orders<'py>(
        &self,
        py: Python<'py>,
        instance_id: &str,
        history: bool,
        symbol: String,
        from_nanos: Option<i64>,
        to_nanos: Option<i64>,
        page_size: usize,
        page_token: String,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let query = OrderQuery {
            history,
            symbol,
            from_nanos,
            to_nanos,
            page_size,
            page_token,
        };
        Ok(PyBytes::new(
            py,
            &self.inner.list_orders(instance_id, &query)?,
        ))
    }
}
