//! An attribute value as a wire format carries it, borrowed from the request, and its hash for
//! the cardinality sketches. OTLP values may still be encoded: they are parsed only when read.

use bytes::Bytes;
use prost::Message as _;

/// An attribute value as a wire format carries it, borrowed from the decoded request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WireValue<'a> {
    /// UTF-8 on the wire (not checked yet: the projection keeps strings as bytes).
    Str(&'a [u8]),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps, bytes, absent: no matcher reads them.
    Other,
    /// An OTLP `KeyValue` still encoded (the protobuf projection): its value is parsed only if
    /// its key is kept.
    Encoded(&'a bytes::Bytes),
}

impl<'a> WireValue<'a> {
    /// Parses an encoded value; every other variant is already what it is.
    #[inline]
    pub(crate) fn resolve(self) -> WireValue<'a> {
        match self {
            WireValue::Encoded(raw) => parse_any_value(raw),
            other => other,
        }
    }
}

/// Fixed seed: a value hashes alike in every request, so the sketches see one value once.
pub(crate) const TAG_SEED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7472_6163_6562_7564);

/// A 64-bit hash of an attribute value, the same whatever the wire format (a string hashes its
/// bytes, a number its bits, each with a type tag); `None` for arrays, maps and bytes.
#[inline]
pub(crate) fn value_hash(value: WireValue<'_>) -> Option<u64> {
    use std::hash::BuildHasher as _;
    let value = match value {
        // The common case without a parse: a `KeyValue` whose AnyValue holds only a string
        // (tag 1, wire type 2).
        WireValue::Encoded(kv) => match encoded_value(kv)
            .filter(|raw| raw.first() == Some(&0x0A))
            .and_then(|raw| short_string(&raw[1..]))
        {
            Some(text) => return Some(TAG_SEED.hash_one((1u8, text))),
            None => value.resolve(),
        },
        other => other.resolve(),
    };
    Some(match value {
        WireValue::Str(text) => TAG_SEED.hash_one((1u8, text)),
        WireValue::Bool(b) => TAG_SEED.hash_one((2u8, b)),
        WireValue::Int(i) => TAG_SEED.hash_one((3u8, i)),
        WireValue::Double(d) => TAG_SEED.hash_one((4u8, d.to_bits())),
        WireValue::Other | WireValue::Encoded(_) => return None,
    })
}

/// `len, bytes` filling the rest of `rest` exactly (a varint length of at most two bytes).
#[inline]
fn short_string(rest: &[u8]) -> Option<&[u8]> {
    let (len, skip) = match *rest {
        [b0, ..] if b0 < 0x80 => (usize::from(b0), 1),
        [b0, b1, ..] if b1 < 0x80 => (usize::from(b0 & 0x7F) | usize::from(b1) << 7, 2),
        _ => return None,
    };
    let text = rest.get(skip..)?;
    (text.len() == len).then_some(text)
}

/// The encoded `AnyValue` of one encoded `KeyValue` (empty when it has none).
#[inline]
fn encoded_value(kv: &[u8]) -> Option<&[u8]> {
    super::otlp::projection::key_value(kv).map(|(_, raw)| raw)
}

/// Parses the value of one encoded `KeyValue` (with prost). A string comes back as a slice of
/// `kv` itself: prost hands out zero-copy `Bytes` views of the buffer it decodes, so the text is
/// located in `kv` by its address instead of being copied. Malformed or non-scalar values are
/// `Other`.
#[inline]
fn parse_any_value(kv: &Bytes) -> WireValue<'_> {
    use super::otlp::projection::{self, Value};
    let Some((_, raw)) = projection::key_value(kv) else {
        return WireValue::Other;
    };
    let Ok(value) = projection::AnyValue::decode(kv.slice_ref(raw)) else {
        return WireValue::Other;
    };
    match value.value {
        Some(Value::Str(s)) if s.is_empty() => WireValue::Str(b""),
        Some(Value::Str(s)) => {
            let start = (s.as_ptr() as usize).wrapping_sub(kv.as_ptr() as usize);
            match kv.get(start..start + s.len()) {
                Some(text) => WireValue::Str(text),
                None => WireValue::Other,
            }
        }
        Some(Value::Int(i)) => WireValue::Int(i),
        Some(Value::Double(d)) => WireValue::Double(d),
        Some(Value::Bool(b)) => WireValue::Bool(b),
        None => WireValue::Other,
    }
}
