//! The topics the hub serves, and the pieces they carry: a message encoded once as field 1
//! of its stream response, and the key conflation keeps the latest piece by.

use bytes::Bytes;
use prost::Message;

/// The streams the hub serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Market data; a full queue drops its oldest ticks (counted, and visible as a sequence gap).
    Ticks = 0,
    /// Order and fill events; a full queue ends the stream (the client resumes by sequence).
    Executions = 1,
    /// Account updates.
    Accounts = 2,
    /// Instance state changes.
    InstanceEvents = 3,
    /// Depth of market: each piece a whole `StreamBookResponse` (one book), numbered and
    /// conflated like ticks (a full queue keeps the latest book), taken one per response.
    Book = 4,
}

impl Topic {
    pub(super) const ALL: [Topic; TOPICS] = [
        Topic::Ticks,
        Topic::Executions,
        Topic::Accounts,
        Topic::InstanceEvents,
        Topic::Book,
    ];

    /// Maps the Python-side number.
    pub fn from_i32(value: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as i32 == value)
    }

    /// The topic's name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Ticks => "ticks",
            Topic::Executions => "executions",
            Topic::Accounts => "accounts",
            Topic::InstanceEvents => "instance_events",
            Topic::Book => "book",
        }
    }

    pub(super) fn drops_oldest(self) -> bool {
        !matches!(self, Topic::Executions)
    }

    /// The response's sequence and dropped field numbers, for a numbered topic.
    pub(super) fn numbering(self) -> Option<(u32, u32)> {
        match self {
            Topic::Ticks => Some((2, 3)),
            Topic::Book => Some((5, 6)),
            _ => None,
        }
    }

    /// Whether a piece is a whole response (one per take) rather than a field-1 entry of one.
    pub(super) fn whole(self) -> bool {
        matches!(self, Topic::Book)
    }
}

/// The number of topics.
pub(super) const TOPICS: usize = 5;

/// Encodes `msg` as field 1 of a stream response: the shareable piece.
pub fn piece<M: Message>(msg: &M) -> Bytes {
    let mut buf = Vec::with_capacity(msg.encoded_len() + 6);
    prost::encoding::message::encode(1, msg, &mut buf);
    Bytes::from(buf)
}

/// The pieces of `items` as one.
pub(super) fn concat(items: &[(&str, Bytes)]) -> Bytes {
    let mut out = Vec::with_capacity(items.iter().map(|(_, p)| p.len()).sum());
    for (_, piece) in items {
        out.extend_from_slice(piece);
    }
    Bytes::from(out)
}

/// The most a response's sequence and dropped fields take: two one-byte keys, two varints.
pub(super) const TRAILER_MAX: usize = 2 * (1 + 10);

/// The conflation key of an instance's symbol (FNV-1a).
pub fn conflation_key(instance_id: &str, symbol: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in instance_id.bytes().chain([0xff]).chain(symbol.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
