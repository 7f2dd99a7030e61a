//! Master events → follower orders. The master's lock is never held while a follower order
//! is submitted: intents are collected first, then each goes through the follower's own
//! validation, risk gate and journal (`routing::place`). A follower that refuses never stops
//! the others: its refusal is counted (the relation's `skipped`) and published on the follower
//! as a REJECTED order update naming the reason.

use prost::Message;
use std::sync::Arc;
use std::time::Instant;

use super::close::close_jobs;
use super::defaults::{default_stops, default_stops_apply, deviation, sizing_of};
use super::links::{self, Link};
use super::mapping::{self, Trade};
use super::spec::{copy_id, signal_copy_id};
use super::volume::{self, Bounds, Inputs};
use super::Relation;
use crate::convert;
use crate::error::{Code, EngineError};
use crate::notify::{Completion, Notifier};
use crate::pb::terminal as t;
use crate::pb::v1;
use crate::routing;
use crate::session::Sink;
use crate::shared::Shared;
use crate::supervisor::Instance;
use crate::validate::OrderIntent;

/// `DEAL_ENTRY_*`.
const ENTRY_IN: u32 = 0;
const ENTRY_OUT: u32 = 1;
const ENTRY_OUT_BY: u32 = 3;

/// A follower order to submit.
#[derive(Debug)]
pub struct Job {
    pub(super) relation: Arc<Relation>,
    pub(super) follower: Arc<Instance>,
    pub(super) intent: OrderIntent,
    /// The master's price (slippage of an opening copy), 0 for closes.
    pub(super) master_price: f64,
    pub(super) point: f64,
    /// An opening copy: the link it adds to, once sent.
    pub(super) opens: Option<(u64, Link)>,
    /// A closing copy: what goes back to its link when the follower refuses it.
    pub(super) closes: Option<Owed>,
}

/// A close not made: put back on its link (master position, the link as it was, the master
/// and follower volume of this close, its master deal and action).
#[derive(Debug)]
pub(super) struct Owed {
    pub(super) position: u64,
    pub(super) link: Link,
    pub(super) master: f64,
    pub(super) follower: f64,
    pub(super) by: (u64, String),
}

impl Owed {
    /// Whether this close is a retry of the close owed on its link, already refused for
    /// `reason` (counted and told then).
    fn told(&self, reason: &str) -> bool {
        self.link.owed_by == self.by
            && self
                .link
                .refusal
                .as_ref()
                .is_some_and(|(told, _)| told == reason)
    }

    /// The reason this retry was refused for last (counted and told then).
    fn told_reason(&self) -> Option<&str> {
        (self.link.owed_by == self.by)
            .then_some(self.link.refusal.as_ref())
            .flatten()
            .map(|(reason, _)| reason.as_str())
    }

    /// The close is owed again (refused for `reason` as `intent`): its link back, closed when
    /// the follower is ready.
    fn put_back(self, relation: &Relation, reason: &str, intent: &OrderIntent) {
        let mut links = relation.links.lock();
        let link = links.by_position.entry(self.position).or_insert(Link {
            master_volume: 0.0,
            follower_volume: 0.0,
            owed: 0.0,
            ..self.link
        });
        link.master_volume += self.master;
        link.follower_volume += self.follower;
        link.owed += self.master;
        link.owed_by = self.by;
        link.refusal = Some((reason.to_owned(), intent.clone()));
    }
}

/// Where a copy's answer goes: its fill's slippage against the master's price.
#[derive(Debug)]
struct CopyAnswer {
    relation: Arc<Relation>,
    master_price: f64,
    point: f64,
    buy: bool,
}

impl Sink for CopyAnswer {
    fn answer(&self, _key: &str, completion: &Completion, _notifier: &Notifier) {
        if completion.code != 0 || self.master_price <= 0.0 || self.point <= 0.0 {
            return;
        }
        let Ok(response) = v1::PlaceOrderResponse::decode(completion.payload.as_slice()) else {
            return;
        };
        let Some(order) = response.order else { return };
        if order.average_fill_price <= 0.0 {
            return;
        }
        let diff = (order.average_fill_price - self.master_price) / self.point;
        self.relation
            .stats
            .slipped(if self.buy { diff } else { -diff });
    }
}

/// A copy not made: counted, and told on the follower (when it exists).
pub fn skip(
    shared: &Shared,
    relation: &Relation,
    follower: Option<&Instance>,
    intent: Option<&OrderIntent>,
    reason: &str,
    message: &str,
) {
    relation.stats.skip(reason);
    if let Some(follower) = follower {
        tell(shared, relation, follower, intent, reason, message);
    }
}

/// A copy not made, told on the follower: a REJECTED order update naming the reason.
pub fn tell(
    shared: &Shared,
    relation: &Relation,
    follower: &Instance,
    intent: Option<&OrderIntent>,
    reason: &str,
    message: &str,
) {
    let now = convert::now();
    let mut order = v1::Order {
        instance_id: follower.spec.instance_id.clone(),
        status: v1::OrderStatus::Rejected as i32,
        reject_reason: reason.to_owned(),
        status_message: format!(
            "copy of relation '{}' not made: {message}",
            relation.spec.relation_id
        ),
        created_time: Some(now),
        updated_time: Some(now),
        ..Default::default()
    };
    if let Some(i) = intent {
        order.client_order_id.clone_from(&i.client_order_id);
        order.symbol.clone_from(&i.symbol);
        order.side = i.side;
        order.r#type = i.order_type;
        order.volume = i.volume;
    }
    follower.events.publish(
        shared,
        &follower.spec.instance_id,
        v1::execution_event::Event::OrderUpdate(order),
    );
}

/// What a copy is made from: the master's trade.
#[derive(Debug, Clone)]
pub struct MasterTrade {
    /// The master position (0 for a signal).
    pub position: u64,
    /// The master deal (0 for a late join).
    pub deal: u64,
    /// The action of the copy's id (`o`, `j`).
    pub action: String,
    /// The master's symbol.
    pub symbol: String,
    /// The master's side.
    pub side: v1::Side,
    /// `ORDER_TYPE_MARKET` (a deal), or the master's pending order type.
    pub order_type: v1::OrderType,
    /// Lots.
    pub volume: f64,
    /// The master's price.
    pub price: f64,
    /// The master's stops.
    pub stop_loss: f64,
    /// The master's stops.
    pub take_profit: f64,
    /// The master's magic.
    pub magic: u64,
    /// The master's account (0: unknown).
    pub balance: f64,
    /// The master's account (0: unknown).
    pub equity: f64,
    /// A signal's own risk percent (0: the relation's sizing).
    pub risk_percent: f64,
    /// A signal's id (then the copy's id derives from it).
    pub signal_id: Option<String>,
}

/// |price − stop loss| of a trade; a signal without a price is measured from the follower's
/// last price.
fn stop_distance(trade: &MasterTrade, last: Option<&t::Tick>) -> f64 {
    if trade.stop_loss <= 0.0 {
        return 0.0;
    }
    let price = match (trade.price, last) {
        (p, _) if p > 0.0 => p,
        (_, Some(tick)) if trade.side == v1::Side::Buy => tick.ask,
        (_, Some(tick)) => tick.bid,
        _ => return 0.0,
    };
    (price - trade.stop_loss).abs()
}

/// How many points the follower's price (its ask to buy, its bid to sell) is worse than the
/// master's fill, for the market copy of a master deal under a relation with
/// `max_deviation_points` (None: not checked: no limit, not a deal's fill (a late join, a
/// recovery, a signal), a pending order, no tick yet).
fn price_worse_by(
    trade: &MasterTrade,
    limit: u32,
    side: v1::Side,
    last: Option<&t::Tick>,
    point: f64,
) -> Option<f64> {
    if limit == 0 || trade.deal == 0 || trade.price <= 0.0 || point <= 0.0 {
        return None;
    }
    if trade.order_type != v1::OrderType::Market {
        return None;
    }
    let tick = last?;
    let worse = if side == v1::Side::Buy {
        tick.ask - trade.price
    } else {
        trade.price - tick.bid
    };
    (tick.ask > 0.0 && tick.bid > 0.0).then_some(worse / point)
}

/// Why a trade was not copied: the follower (when it exists), the copy it would have been,
/// the reason and a message.
type Refused = Box<(
    Option<Arc<Instance>>,
    Option<OrderIntent>,
    &'static str,
    String,
)>;

/// The follower order copying `trade`, or why there is none.
pub(super) fn open_job(
    shared: &Shared,
    relation: &Arc<Relation>,
    trade: &MasterTrade,
) -> Result<Job, Refused> {
    let r = &relation.spec;
    mapping::admit(
        r,
        &Trade {
            symbol: &trade.symbol,
            magic: trade.magic,
            side: trade.side,
            order_type: trade.order_type,
        },
    )
    .map_err(|reason| {
        Box::new((
            None,
            None,
            reason,
            format!("{reason} by the relation's filters"),
        ))
    })?;
    let follower = shared
        .instance(&r.follower_instance_id)
        .map_err(|e| Box::new((None, None, crate::reason::FOLLOWER_NOT_FOUND, e.message)))?;
    let symbol = mapping::follower_symbol(r, &trade.symbol);
    let side = mapping::follower_side(r, trade.side);
    let (stop_loss, take_profit) = mapping::follower_stops(r, trade.stop_loss, trade.take_profit);
    let client_order_id = match &trade.signal_id {
        Some(signal) => signal_copy_id(&relation.prefix, signal),
        None => copy_id(&relation.prefix, trade.position, trade.deal, &trade.action),
    };
    let mut intent = OrderIntent {
        client_order_id,
        symbol: symbol.clone(),
        side: side as i32,
        order_type: v1::OrderType::Market as i32,
        deviation_points: deviation(relation),
        stop_loss,
        take_profit,
        magic: trade.magic,
        comment: links::comment(trade.volume),
        ..Default::default()
    };
    let live = follower.live.lock();
    let Some(spec) = live.symbols.get(&symbol) else {
        drop(live);
        let message = format!("the follower has no symbol '{symbol}'");
        return Err(Box::new((
            Some(follower),
            Some(intent),
            crate::reason::SYMBOL_NOT_ON_FOLLOWER,
            message,
        )));
    };
    let (balance, equity) = live
        .account
        .as_ref()
        .map_or((0.0, 0.0), |a| (a.balance, a.equity));
    let sizing = sizing_of(relation, trade);
    let last = live.last_ticks.get(&symbol);
    let mut distance = stop_distance(trade, last);
    if default_stops_apply(relation, trade) {
        let stops = default_stops(&relation.defaults, side, last, spec);
        if intent.stop_loss == 0.0 {
            intent.stop_loss = stops.0;
            if distance == 0.0 && stops.0 > 0.0 {
                distance = relation.defaults.stop_loss_points * spec.point;
            }
        }
        if intent.take_profit == 0.0 {
            intent.take_profit = stops.1;
        }
    }
    let inputs = Inputs {
        master_volume: trade.volume,
        master_balance: trade.balance,
        master_equity: trade.equity,
        follower_balance: balance,
        follower_equity: equity,
        stop_distance: distance,
        tick_value: spec.tick_value,
        tick_size: spec.tick_size,
    };
    let bounds = Bounds {
        min: spec.volume_min,
        max: spec.volume_max,
        step: spec.volume_step,
    };
    let point = spec.point;
    let worse = price_worse_by(
        trade,
        r.max_deviation_points,
        side,
        live.last_ticks.get(&symbol),
        point,
    );
    drop(live);
    if let Some(points) = worse.filter(|p| *p > f64::from(r.max_deviation_points)) {
        let message = format!(
            "the follower's price is {} points worse than the master's fill {} (the \
             relation's max_deviation_points: {})",
            crate::error::num(points),
            crate::error::num(trade.price),
            r.max_deviation_points
        );
        return Err(Box::new((
            Some(follower),
            Some(intent),
            crate::reason::DEVIATION_LIMIT,
            message,
        )));
    }
    intent.volume = match volume::follower_volume(&sizing, &inputs, &bounds) {
        Ok(v) => v,
        Err(reason) => {
            let message = format!(
                "{reason}: no volume from {} lots of the master",
                crate::error::num(trade.volume)
            );
            return Err(Box::new((Some(follower), Some(intent), reason, message)));
        }
    };
    let link = Link {
        symbol,
        side,
        master_volume: trade.volume,
        follower_volume: intent.volume,
        open_ids: vec![intent.client_order_id.clone()],
        stops: (trade.stop_loss, trade.take_profit),
        ..Default::default()
    };
    Ok(Job {
        relation: Arc::clone(relation),
        follower,
        intent,
        master_price: trade.price,
        point,
        opens: (trade.position != 0).then_some((trade.position, link)),
        closes: None,
    })
}

/// Submits a follower order; the copy's token goes to the engine (its fill's slippage).
/// Returns the token, or the error (already counted and told).
pub fn submit(
    shared: &Arc<Shared>,
    job: Job,
    started: Instant,
    route: bool,
) -> Result<u64, EngineError> {
    if let Some(told) = job.closes.as_ref().and_then(Owed::told_reason) {
        // An owed close tried again, refused before: the gate asked first, quietly (a
        // refusal for the same reason is neither counted, nor told, nor the gate's again).
        let refused = {
            let mut live = job.follower.live.lock();
            crate::risk::live::check_new(
                shared,
                &job.follower,
                &mut live,
                &job.intent,
                convert::now_msc(),
                false,
            )
            .err()
        };
        if let Some(e) = refused.filter(|e| e.reason == told) {
            if let Some(owed) = job.closes {
                owed.put_back(&job.relation, e.reason, &job.intent);
            }
            return Err(e);
        }
    }
    let token = shared.token();
    if route {
        let sink = CopyAnswer {
            relation: Arc::clone(&job.relation),
            master_price: job.master_price,
            point: job.point,
            buy: job.intent.side == v1::Side::Buy as i32,
        };
        shared
            .routes
            .add(token, Arc::new(sink), job.intent.client_order_id.clone());
    }
    let intent = job.intent.clone();
    match routing::place(shared, &job.follower, job.intent, convert::now_msc(), token) {
        Ok(token) => {
            job.relation.stats.copied(started.elapsed());
            if let Some((position, link)) = job.opens {
                let mut links = job.relation.links.lock();
                let known = links.by_position.entry(position).or_insert_with(|| Link {
                    master_volume: 0.0,
                    follower_volume: 0.0,
                    open_ids: Vec::new(),
                    ..link.clone()
                });
                // A replay (same id) adds nothing.
                if !known.open_ids.contains(&intent.client_order_id) {
                    known.master_volume += link.master_volume;
                    known.follower_volume += link.follower_volume;
                    known.open_ids.push(intent.client_order_id.clone());
                }
            }
            Ok(token)
        }
        Err(e) => {
            if route {
                shared.routes.take(token);
            }
            // A replay whose sizing changed meanwhile (an account ratio): the copy exists.
            if e.code != Code::AlreadyExists {
                let mut told = false;
                if let Some(owed) = job.closes {
                    // Refused again for the same reason: counted and told once.
                    told = owed.told(e.reason);
                    owed.put_back(&job.relation, e.reason, &intent);
                }
                if let Some((position, _)) = &job.opens {
                    job.relation.refused(*position, e.reason);
                }
                if told {
                    return Err(e);
                }
                skip(
                    shared,
                    &job.relation,
                    Some(&job.follower),
                    Some(&intent),
                    e.reason,
                    &e.message,
                );
            }
            Err(e)
        }
    }
}

/// The copy of `trade`, or its skip counted and told.
fn open_or_skip(shared: &Shared, relation: &Arc<Relation>, trade: &MasterTrade) -> Option<Job> {
    match open_job(shared, relation, trade) {
        Ok(job) => Some(job),
        Err(refused) => {
            let (follower, intent, reason, message) = *refused;
            if trade.signal_id.is_none() {
                if trade.order_type == v1::OrderType::Market {
                    relation.refused(trade.position, reason);
                } else {
                    relation.refused_pending(trade.position, reason);
                }
            }
            skip(
                shared,
                relation,
                follower.as_deref(),
                intent.as_ref(),
                reason,
                &message,
            );
            None
        }
    }
}

/// Copies one trade on one relation now.
pub fn open(shared: &Arc<Shared>, relation: &Arc<Relation>, trade: &MasterTrade, started: Instant) {
    let _ = open_now(shared, relation, trade, started);
}

/// [`open`], saying why the copy was not sent (a skip by the relation's rules is not an
/// error).
///
/// # Errors
/// The follower's refusal (already counted and told).
pub fn open_now(
    shared: &Arc<Shared>,
    relation: &Arc<Relation>,
    trade: &MasterTrade,
    started: Instant,
) -> Result<(), EngineError> {
    match open_or_skip(shared, relation, trade) {
        Some(job) => submit(shared, job, started, true).map(|_| ()),
        None => Ok(()),
    }
}

/// Copies a master's pending order as a pending order of the same type and price.
pub fn open_pending(
    shared: &Arc<Shared>,
    relation: &Arc<Relation>,
    trade: &MasterTrade,
    stop_limit_price: f64,
    started: Instant,
) {
    if let Some(mut job) = open_or_skip(shared, relation, trade) {
        job.intent.order_type = trade.order_type as i32;
        job.intent.price = trade.price;
        job.intent.stop_limit_price = stop_limit_price;
        job.intent.deviation_points = 0;
        job.opens = None;
        job.master_price = 0.0;
        if let Err(e) = submit(shared, job, started, true) {
            if e.code != Code::AlreadyExists {
                relation.refused_pending(trade.position, e.reason);
            }
        }
    }
}

fn side_of_deal(deal_type: u32) -> Option<v1::Side> {
    match deal_type {
        0 => Some(v1::Side::Buy),
        1 => Some(v1::Side::Sell),
        _ => None,
    }
}

/// Whether a master's order (by the request it answers, its ticket or its comment's key) is
/// itself a copy: a copy is never copied again (no chains, no cycles).
pub fn is_copy(
    shared: &Shared,
    master: &Instance,
    request_id: u64,
    ticket: u64,
    comment: &str,
) -> bool {
    let cid = {
        let live = master.live.lock();
        live.pending
            .get(&request_id)
            .map(|p| &p.client_order_id)
            .filter(|_| request_id != 0)
            .or_else(|| live.book.by_ticket.get(&ticket))
            .or_else(|| live.book.by_comment.get(comment))
            .cloned()
    };
    cid.is_some_and(|c| {
        shared
            .copier
            .made_copy(&master.spec.instance_id, &master.spec.owner, &c)
    })
}

/// A deal of a master: its copies opened or closed on every follower.
pub fn on_master_deal(shared: &Arc<Shared>, master: &Instance, deal: &t::DealReport) {
    let relations = shared.copier.of_master(&master.spec.instance_id);
    if relations.is_empty() {
        return;
    }
    if deal.entry == ENTRY_IN && is_copy(shared, master, deal.request_id, deal.order, &deal.comment)
    {
        return;
    }
    let started = Instant::now();
    let Some(side) = side_of_deal(deal.r#type) else {
        return;
    };
    // Every copy's order (and refusal) events wake Python once, after the last copy.
    let _hold = shared.notifier.hold();
    let mut jobs = Vec::new();
    match deal.entry {
        ENTRY_IN => {
            let trade = master_trade(master, deal, side);
            for relation in &relations {
                if super::pending::fills_copied(shared, relation, deal) {
                    continue;
                }
                jobs.extend(open_or_skip(shared, relation, &trade));
            }
        }
        ENTRY_OUT | ENTRY_OUT_BY => {
            for relation in &relations {
                jobs.extend(close_jobs(
                    shared,
                    relation,
                    deal.position_id,
                    deal.ticket,
                    deal.volume,
                    "c",
                ));
            }
        }
        _ => {
            // A netting master's reversal: the copy closed (`c`), then the reversed remainder
            // opened (`r`), each under its own id.
            for relation in &relations {
                jobs.extend(reversal_jobs(shared, relation, master, deal, side));
            }
        }
    }
    for job in jobs {
        let _ = submit(shared, job, started, true);
    }
}

/// The copies of a reversal (`INOUT` deal) on one relation: its copy's close and the
/// remainder's open; skipped (`REVERSAL_NOT_COPIED`) when the position has no copy.
fn reversal_jobs(
    shared: &Arc<Shared>,
    relation: &Arc<Relation>,
    master: &Instance,
    deal: &t::DealReport,
    side: v1::Side,
) -> Vec<Job> {
    let held = relation
        .links
        .lock()
        .by_position
        .get(&deal.position_id)
        .map(|l| l.master_volume);
    let Some(held) = held else {
        relation.stats.skip(crate::reason::REVERSAL_NOT_COPIED);
        return Vec::new();
    };
    let mut jobs = close_jobs(shared, relation, deal.position_id, deal.ticket, held, "c");
    let remainder = deal.volume - held;
    if remainder > 1e-9 {
        let mut trade = master_trade(master, deal, side);
        trade.volume = remainder;
        "r".clone_into(&mut trade.action);
        jobs.extend(open_or_skip(shared, relation, &trade));
    }
    jobs
}

/// A master deal as a trade to copy: its order's (or position's) stops and the account.
fn master_trade(master: &Instance, deal: &t::DealReport, side: v1::Side) -> MasterTrade {
    let live = master.live.lock();
    // The order's entry: by the request the deal answers (its ticket is indexed only once
    // the result follows), else by ticket.
    let (mut stop_loss, mut take_profit) = live
        .pending
        .get(&deal.request_id)
        .map(|p| &p.client_order_id)
        .or_else(|| live.book.by_ticket.get(&deal.order))
        .and_then(|cid| live.book.by_client_id.get(cid))
        .map_or((0.0, 0.0), |e| (e.order.stop_loss, e.order.take_profit));
    if stop_loss == 0.0 && take_profit == 0.0 {
        if let Some(p) = live.positions.iter().find(|p| p.ticket == deal.position_id) {
            (stop_loss, take_profit) = (p.sl, p.tp);
        }
    }
    let (balance, equity) = live
        .account
        .as_ref()
        .map_or((0.0, 0.0), |a| (a.balance, a.equity));
    MasterTrade {
        position: deal.position_id,
        deal: deal.ticket,
        action: "o".to_owned(),
        symbol: deal.symbol.clone(),
        side,
        order_type: v1::OrderType::Market,
        volume: deal.volume,
        price: deal.price,
        stop_loss,
        take_profit,
        magic: deal.magic,
        balance,
        equity,
        risk_percent: 0.0,
        signal_id: None,
    }
}

/// The master's positions as reported: SL/TP changes of copied positions are applied to
/// their copies (relations that copy stops); the first report of a restarted worker closes
/// the copies of positions gone meanwhile ([`super::recovery::on_master_reported`]).
pub fn on_master_positions(shared: &Arc<Shared>, master: &Instance) {
    let relations = shared.copier.of_master(&master.spec.instance_id);
    if relations.is_empty() {
        return;
    }
    super::recovery::on_master_reported(shared, master, &relations);
    let positions: Vec<(u64, f64, f64)> = master
        .live
        .lock()
        .positions
        .iter()
        .map(|p| (p.ticket, p.sl, p.tp))
        .collect();
    for relation in relations.iter().filter(|r| r.spec.copy_stops) {
        let Ok(follower) = shared.instance(&relation.spec.follower_instance_id) else {
            continue;
        };
        let mut changes = Vec::new();
        {
            let mut links = relation.links.lock();
            for (ticket, sl, tp) in &positions {
                let Some(link) = links.by_position.get_mut(ticket) else {
                    continue;
                };
                if link.stops != (*sl, *tp) {
                    link.stops = (*sl, *tp);
                    let (sl, tp) = mapping::follower_stops(&relation.spec, *sl, *tp);
                    changes.push((link.open_ids.clone(), sl, tp));
                }
            }
        }
        for (ids, sl, tp) in changes {
            let tickets: Vec<u64> = {
                let live = follower.live.lock();
                ids.iter()
                    .filter_map(|id| live.book.by_client_id.get(id))
                    .map(|e| e.order.position_id)
                    .filter(|p| *p != 0)
                    .collect()
            };
            for ticket in tickets {
                if let Err(e) = routing::modify_position(shared, &follower, ticket, sl, tp) {
                    skip(
                        shared,
                        relation,
                        Some(&follower),
                        None,
                        e.reason,
                        &e.message,
                    );
                }
            }
        }
    }
}
