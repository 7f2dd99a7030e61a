//! Fan-out of encoded stream messages to subscribers.
//!
//! A message is encoded once, as one `repeated` field-1 entry of the stream's
//! response message (`StreamTicksResponse.ticks`, `StreamExecutionsResponse.events`,
//! ...). Protobuf lets such entries be concatenated, so a subscriber that fell
//! behind gets everything queued as one response by concatenating the shared
//! pieces, with its own sequence number appended: nothing is re-encoded per
//! subscriber. Each subscriber has a bounded queue; what happens when it is
//! full depends on the topic (drop the oldest ticks, or end the stream). What a
//! tick, account or instance-event subscriber has queued unread is bounded in
//! bytes too: past that it is cut off at once (its queue freed, its stream ended
//! with `SLOW_CONSUMER`, itself removed from the hub), whether or not the server
//! still runs the stream that would notice.
//!
//! Books (`StreamBookResponse`) are whole messages, not entries of a repeated field:
//! a piece is one response, taken one at a time, with the same sequence, dropped,
//! conflation and cut-off rules as ticks (its key is the instance and symbol).

mod hub;
mod subscription;
mod topic;

pub use hub::{Hub, TopicStats, DEFAULT_QUEUE_MAX_BYTES};
pub use subscription::{Subscription, Taken};
pub use topic::{conflation_key, piece, Topic};
#[cfg(test)]
mod tests;
