//! The functions the `engine/fuzz` targets call (one per target), so the committed corpora are
//! also a regression suite on stable: `fuzz_corpus` in this crate's tests feeds every corpus
//! file through the same function under `cargo test`.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;

use crate::decode::{AttrKeys, DecodeError, Decoded, otlp, zipkin};
use crate::replay::{self, Input, Item};

/// The attribute keys the targets keep: the standard ones plus a custom key, so filtering both
/// keeps and drops.
pub fn keys() -> AttrKeys {
    AttrKeys::new([
        "http.route",
        "http.request.method",
        "http.response.status_code",
        "error",
        "tenant",
    ])
}

/// `otlp_protobuf`: the body of `POST /v1/traces` with `application/x-protobuf`.
pub fn otlp_protobuf(data: &[u8], keys: &AttrKeys) -> Result<Decoded, DecodeError> {
    otlp::decode_protobuf(Bytes::copy_from_slice(data), keys).inspect(consistent)
}

/// `otlp_json`: the body of `POST /v1/traces` with `application/json`.
pub fn otlp_json(data: &[u8], keys: &AttrKeys) -> Result<Decoded, DecodeError> {
    otlp::decode_json(data, keys).inspect(consistent)
}

/// `zipkin_json`: the body of `POST /api/v2/spans`.
pub fn zipkin_json(data: &[u8], keys: &AttrKeys) -> Result<Decoded, DecodeError> {
    zipkin::decode_json(data, keys).inspect(consistent)
}

/// What every decoded request promises: a rejected span leaves its reason (for OTLP's
/// `partial_success.error_message`), and no reason without one.
fn consistent(d: &Decoded) {
    assert_eq!(
        d.rejected > 0,
        d.first_rejection.is_some(),
        "rejected {} but first_rejection {:?}",
        d.rejected,
        d.first_rejection
    );
}

/// What [`replay_input`] read: requests decoded, requests that failed to decode, corrupt records.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplayTally {
    pub decoded: u64,
    pub failed: u64,
    pub corrupt: u64,
}

/// The largest line or frame the `replay_input` target accepts (the CLI's default is larger;
/// a small one exercises the limit).
pub const REPLAY_MAX: usize = 64 << 10;

/// `replay_input`: a recorded input (JSON lines or length-prefixed protobuf frames, optionally
/// gzip), read to its end the way `tracebudget replay` does, each request decoded.
pub fn replay_input(data: &[u8], keys: &AttrKeys) -> ReplayTally {
    let raw = Box::new(Cursor::new(data.to_vec()));
    let mut tally = ReplayTally::default();
    let Ok(mut input) = Input::new("fuzz", raw, Arc::new(AtomicU64::new(0)), REPLAY_MAX) else {
        // Reading from memory cannot fail, but a gzip header sniffed too early could.
        tally.corrupt += 1;
        return tally;
    };
    while let Some(item) = input.next_item() {
        match item {
            Item::Request { kind, body, .. } => match replay::decode(kind, body, keys) {
                Ok(_) => tally.decoded += 1,
                Err(_) => tally.failed += 1,
            },
            Item::Corrupt(_) => tally.corrupt += 1,
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
        slis::fuzzing::corpus(env!("CARGO_MANIFEST_DIR"), target)
    }

    /// Feeds a decoder target's corpus through its function: no panic, and every error one of
    /// `allowed` (JSON errors with their line:column). Returns (decoded, failed).
    fn decoder(
        target: &str,
        decode: fn(&[u8], &AttrKeys) -> Result<Decoded, DecodeError>,
        allowed: fn(&DecodeError) -> bool,
    ) -> (usize, usize) {
        let keys = keys();
        let (mut ok, mut failed) = (0, 0);
        for (name, data) in corpus(target) {
            match decode(&data, &keys) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert!(allowed(&e), "{target}/{name}: unexpected error kind {e:?}");
                    if let DecodeError::Json(_) = e {
                        assert!(e.line_column().is_some(), "{target}/{name}: {e} has no line:column");
                    }
                    failed += 1;
                }
            }
        }
        (ok, failed)
    }

    #[test]
    fn fuzz_corpus_otlp_protobuf() {
        let (ok, failed) = decoder("otlp_protobuf", otlp_protobuf, |e| {
            matches!(e, DecodeError::Protobuf(_))
        });
        assert!(
            ok > 0 && failed > 0,
            "the corpus covers both outcomes: {ok} ok, {failed} failed"
        );
    }

    #[test]
    fn fuzz_corpus_otlp_json() {
        let (ok, failed) = decoder("otlp_json", otlp_json, |e| {
            matches!(
                e,
                DecodeError::Json(_) | DecodeError::Empty { .. } | DecodeError::NoKnownKeys { .. }
            )
        });
        assert!(
            ok > 0 && failed > 0,
            "the corpus covers both outcomes: {ok} ok, {failed} failed"
        );
    }

    #[test]
    fn fuzz_corpus_zipkin_json() {
        let (ok, failed) = decoder("zipkin_json", zipkin_json, |e| {
            matches!(e, DecodeError::Json(_) | DecodeError::Empty { .. })
        });
        assert!(
            ok > 0 && failed > 0,
            "the corpus covers both outcomes: {ok} ok, {failed} failed"
        );
    }

    #[test]
    fn fuzz_corpus_replay_input() {
        let keys = keys();
        let mut total = ReplayTally::default();
        for (_, data) in corpus("replay_input") {
            let t = replay_input(&data, &keys);
            total.decoded += t.decoded;
            total.failed += t.failed;
            total.corrupt += t.corrupt;
        }
        assert!(
            total.decoded > 0 && total.failed > 0 && total.corrupt > 0,
            "the corpus covers every outcome: {total:?}"
        );
    }
}
