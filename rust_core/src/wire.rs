//! Refuses request fields the server does not know, for the requests the engine decodes
//! itself (`PlaceOrder`, `OrderSession`), as the Python edge does for the others.
//!
//! prost skips unknown fields. A client built from a newer API could set a field this
//! server would ignore, say one that restricts the order: refused, not ignored. The field
//! numbers come from the descriptors of the compiled protos (`build.rs`), so the check
//! follows the proto files without an edit here.

use crate::reason;
use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet};

use crate::error::{EngineError, Result};

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// A message type: by field number, the field's name and, for a message field, its type.
#[derive(Debug, Default)]
struct MessageType {
    name: String,
    fields: Vec<Option<(String, Option<usize>)>>,
}

#[derive(Debug, Default)]
struct Schema {
    types: Vec<MessageType>,
    by_name: HashMap<String, usize>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let set = FileDescriptorSet::decode(DESCRIPTORS).unwrap_or_default();
        let mut messages = Vec::new();
        for file in &set.file {
            for message in &file.message_type {
                collect(&format!(".{}", file.package()), message, &mut messages);
            }
        }
        let by_name: HashMap<String, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), i))
            .collect();
        let types = messages
            .iter()
            .map(|(name, message)| {
                let mut fields = Vec::new();
                for field in &message.field {
                    let Ok(number) = usize::try_from(field.number()) else {
                        continue;
                    };
                    if fields.len() <= number {
                        fields.resize(number + 1, None);
                    }
                    let nested = (field.r#type() == Type::Message)
                        .then(|| by_name.get(field.type_name()).copied())
                        .flatten();
                    fields[number] = Some((field.name().to_owned(), nested));
                }
                MessageType {
                    name: name.trim_start_matches('.').to_owned(),
                    fields,
                }
            })
            .collect();
        Schema { types, by_name }
    })
}

fn collect<'a>(
    scope: &str,
    message: &'a DescriptorProto,
    out: &mut Vec<(String, &'a DescriptorProto)>,
) {
    let name = format!("{scope}.{}", message.name());
    for nested in &message.nested_type {
        collect(&name, nested, out);
    }
    out.push((name, message));
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

fn skip<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (taken, rest) = buf.split_at(n);
    *buf = rest;
    Some(taken)
}

/// The first field of `raw` its type does not have: the name of the field it is inside
/// ("" at the top), its number and the type's name. `None` when there is none (or the
/// bytes are malformed, which the decoder has refused already).
fn unknown(
    schema: &'static Schema,
    ty: usize,
    mut buf: &[u8],
    depth: u32,
) -> Option<(&'static str, u64, &'static str)> {
    let message = &schema.types[ty];
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = key >> 3;
        let field = usize::try_from(number)
            .ok()
            .and_then(|n| message.fields.get(n))
            .and_then(Option::as_ref);
        let Some((_, nested)) = field else {
            return Some(("", number, &message.name));
        };
        match key & 7 {
            0 => {
                varint(&mut buf)?;
            }
            1 => {
                skip(&mut buf, 8)?;
            }
            5 => {
                skip(&mut buf, 4)?;
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let payload = skip(&mut buf, len)?;
                if let (Some(nested), true) = (nested, depth < 32) {
                    if let Some((inside, number, name)) =
                        unknown(schema, *nested, payload, depth + 1)
                    {
                        let field_name = field.map_or("", |(n, _)| n.as_str());
                        return Some((
                            if inside.is_empty() {
                                field_name
                            } else {
                                inside
                            },
                            number,
                            name,
                        ));
                    }
                }
            }
            _ => return None,
        }
    }
    None
}

/// Refuses an encoded `type_name` (e.g. `mt5exec.v1.PlaceOrderRequest`) that carries a
/// field its type does not have.
///
/// # Errors
/// `INVALID_ARGUMENT` (`REQUEST_INVALID`) naming the message field it is in (`request` at
/// the top).
pub fn check_known(type_name: &str, raw: &[u8]) -> Result<()> {
    let schema = schema();
    let Some(&ty) = schema.by_name.get(&format!(".{type_name}")) else {
        return Ok(());
    };
    match unknown(schema, ty, raw, 0) {
        None => Ok(()),
        Some((inside, number, name)) => {
            let field = if inside.is_empty() { "request" } else { inside };
            Err(EngineError::invalid(
                field,
                reason::REQUEST_INVALID,
                format!("{field}: field number {number} is not a field of {name}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::v1;

    const PLACE: &str = "mt5exec.v1.PlaceOrderRequest";
    const SESSION: &str = "mt5exec.v1.OrderSessionRequest";

    fn order() -> v1::PlaceOrderRequest {
        v1::PlaceOrderRequest {
            instance_id: "a".into(),
            symbol: "EURUSD".into(),
            side: 1,
            r#type: 1,
            volume: 0.1,
            expiration: Some(prost_types::Timestamp {
                seconds: 5,
                nanos: 6,
            }),
            magic: 7,
            ..Default::default()
        }
    }

    #[test]
    fn known_fields_pass() {
        assert_eq!(check_known(PLACE, &order().encode_to_vec()), Ok(()));
        let batch = v1::OrderSessionRequest {
            request: Some(v1::order_session_request::Request::Batch(
                v1::OrderSessionBatch {
                    requests: vec![v1::OrderSessionRequest {
                        request: Some(v1::order_session_request::Request::Place(order())),
                    }],
                },
            )),
        };
        assert_eq!(check_known(SESSION, &batch.encode_to_vec()), Ok(()));
    }

    #[test]
    fn unknown_fields_are_named() {
        let mut raw = order().encode_to_vec();
        raw.extend([0xb8, 0x01, 0x01]); // field 23, varint 1
        let e = check_known(PLACE, &raw).expect_err("unknown");
        assert_eq!((e.field, e.reason), ("request", "REQUEST_INVALID"));
        assert!(e.message.contains("field number 23"), "{}", e.message);
        // Inside the expiration (a Timestamp has fields 1 and 2 only).
        let raw = [0x6a, 0x02, 0x18, 0x01];
        let e = check_known(PLACE, &raw).expect_err("nested");
        assert_eq!(e.field, "expiration");
        assert!(
            e.message.contains("google.protobuf.Timestamp"),
            "{}",
            e.message
        );
        // A place inside a batch inside a session request.
        let raw = [0x1a, 0x07, 0x0a, 0x05, 0x0a, 0x03, 0xb8, 0x01, 0x01];
        let e = check_known(SESSION, &raw).expect_err("in a batch");
        assert_eq!(e.field, "place");
    }
}
