//! Wire formats → [`slis::Span`]: OTLP (protobuf, JSON, and the gRPC path's generated types),
//! Zipkin v2 JSON, and the `Content-Encoding` of HTTP bodies.
//!
//! - `otlp/` — [`otlp::decode_protobuf`] decodes into a prost *projection* (`otlp/projection.rs`):
//!   hand-written `prost::Message` structs that mirror only the OTLP fields the engine reads, with
//!   `Bytes` for strings and ids so nothing is copied until a span keeps it; prost skips the rest.
//!   [`otlp::decode_json`] reads the official OTLP/JSON with opentelemetry-proto's serde types, and
//!   [`otlp::from_request`] converts what tonic already decoded. All three walk the same code.
//! - `zipkin/` — [`zipkin::decode_json`]: Zipkin v2 JSON with our own serde structs.
//! - `spans.rs` — what every format shares: id checks, attribute filtering with [`AttrKeys`],
//!   resource folding, sampling weight, interning, and the count of rejected spans.
//! - `body.rs` — [`body::inflate`]: identity, gzip and deflate with a hard limit on the inflated size.
//!
//! A request that cannot be parsed is a [`DecodeError`]; a span that can (but whose ids are invalid)
//! is counted in [`Decoded::rejected`] and the rest of the request goes on. Clock checks are not done
//! here: the pipeline does them.

use std::sync::Arc;

use slis::Span;

pub mod body;
pub mod otlp;
mod spans;
mod wire;
pub use spans::MAX_STRING_BYTES;
pub mod zipkin;

pub use body::BodyError;

/// The attribute keys worth keeping on a [`Span`]: those some matcher or rule reads.
/// Everything else is dropped at decode time (the `SampleRate` attribute is still read for the weight).
#[derive(Clone, Debug, Default)]
pub struct AttrKeys {
    /// Few (a handful per journey set), so a scan beats hashing.
    keys: Vec<Arc<str>>,
    /// Bit `n` set when some key is `n` bytes long (keys of 64 bytes or more set bit 63): most
    /// attributes are dropped on their length alone.
    lengths: u64,
    /// Also hash every attribute value for the cardinality sketches (`Decoded::tags`).
    pub watch_tags: bool,
}

/// Keys the root matcher reads for `http_route` / `http_method`, and the usual error-rule keys.
const HTTP_KEYS: [&str; 6] = [
    "http.route",
    "http.request.method",
    "http.method",
    "http.response.status_code",
    "http.status_code",
    slis::PEER_SERVICE,
];

impl AttrKeys {
    pub fn new(keys: impl IntoIterator<Item = impl Into<Arc<str>>>) -> Self {
        let mut out = AttrKeys::default();
        for key in keys {
            let key = key.into();
            if !out.contains(&key) {
                out.lengths |= length_bit(key.len());
                out.keys.push(key);
            }
        }
        out
    }

    /// Keys read by any journey matcher/error rule (`AttrMatcher::key` in [`slis::journey`]) plus
    /// `http.route`, `http.request.method`, `http.method`, `http.response.status_code`, `http.status_code`,
    /// `peer.service` (trace health: which boundary lost the context) and OpenTracing's `error`
    /// tag ([`slis::journey::ERROR_TAG`]).
    pub fn from_journeys(journeys: &slis::journey::Journeys) -> Self {
        let matchers = journeys
            .0
            .iter()
            .flat_map(|j| j.root.attributes.iter().chain(&j.error_rules))
            .map(|m| m.key.clone());
        let standard = HTTP_KEYS
            .into_iter()
            .chain([slis::journey::ERROR_TAG])
            .map(Arc::<str>::from);
        AttrKeys {
            watch_tags: true,
            ..AttrKeys::new(standard.chain(matchers))
        }
    }

    /// Every key of every set (a replay decodes once for several configs).
    pub fn merged(sets: impl IntoIterator<Item = AttrKeys>) -> Self {
        AttrKeys::new(sets.into_iter().flat_map(|s| s.keys))
    }

    /// The kept keys, in the order they were given.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| &**k)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key.as_bytes()).is_some()
    }

    /// The shared key for these bytes, if it is kept.
    fn get(&self, key: &[u8]) -> Option<&Arc<str>> {
        if self.lengths & length_bit(key.len()) == 0 {
            return None;
        }
        self.keys.iter().find(|k| k.as_bytes() == key)
    }
}

fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// What one request decoded to. Per-span problems do not fail the request: they are counted.
#[derive(Debug, Default)]
pub struct Decoded {
    pub spans: Vec<Span>,
    /// Spans dropped because their ids were invalid.
    pub rejected: u64,
    /// Why the first rejected span was dropped (for OTLP's `partial_success.error_message`).
    pub first_rejection: Option<String>,
    /// Names, keys and kept values cut to [`spans::MAX_STRING_BYTES`].
    pub truncated: u64,
    /// The request's distinct (service, attribute key, value hash), when watched.
    pub tags: crate::health::Tags,
}

/// A request body that cannot be decoded at all.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// serde_json's message carries the line and column (`.line()`, `.column()` too).
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("empty body, expected {expected}")]
    Empty { expected: &'static str },
    #[error("json object has none of the known keys, expected {expected}")]
    NoKnownKeys { expected: &'static str },
}

impl DecodeError {
    /// Line and column (1-based) of a JSON error.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match self {
            DecodeError::Json(e) if e.line() > 0 => Some((e.line(), e.column())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
