use std::sync::Arc;

use slis::{AttrValue, SpanId, SpanKind, StatusCode, Timestamp, TraceId};

use super::decode_json;
use crate::decode::AttrKeys;

/// As py-zipkin and Brave send it, with the fields the engine skips (annotations, remoteEndpoint,
/// debug, shared) and one span of each id shape.
const EXAMPLE: &str = r#"[
  {
    "traceId": "5b8efff798038103d269b633813fc60c",
    "id": "eee19b7ec3c1b174",
    "kind": "SERVER",
    "name": "post /api/checkout",
    "timestamp": 1544712660000000,
    "duration": 250000,
    "localEndpoint": { "serviceName": "frontend", "ipv4": "10.0.0.1", "port": 8080 },
    "remoteEndpoint": { "ipv4": "10.0.0.9" },
    "annotations": [{ "timestamp": 1544712660100000, "value": "ws" }],
    "tags": {
      "http.status_code": "503",
      "http.route": "/api/checkout",
      "http.method": "POST",
      "error": "",
      "SampleRate": "10",
      "peer.service": "browser"
    },
    "debug": false,
    "shared": false
  },
  {
    "traceId": "D269B633813FC60C",
    "id": "00f067aa0ba902b7",
    "parentId": "eee19b7ec3c1b174",
    "kind": "CLIENT",
    "name": "get",
    "timestamp": 1544712660001000,
    "duration": 7
  },
  {
    "traceId": "00000000000000010000000000000002",
    "id": "0000000000000003",
    "parentId": "0000000000000000",
    "kind": "PRODUCER",
    "name": "send",
    "localEndpoint": { "serviceName": "" },
    "tags": { "error": "false" }
  },
  {
    "traceId": "0000000000000001",
    "id": "0000000000000004",
    "name": "local"
  }
]"#;

#[test]
fn example_decodes_exactly() {
    let decoded = decode_json(EXAMPLE.as_bytes(), &AttrKeys::from_journeys(&Default::default())).unwrap();
    assert_eq!((decoded.rejected, decoded.first_rejection), (0, None));
    let a = |k: &str, v: &str| (Arc::<str>::from(k), AttrValue::Str(v.into()));
    let t0 = 1_544_712_660_000_000_000;
    let want = [
        slis::Span {
            trace_id: TraceId([
                0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
            ]),
            span_id: SpanId([0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]),
            parent_span_id: None,
            service: "frontend".into(),
            name: "post /api/checkout".into(),
            kind: SpanKind::Server,
            start: Timestamp::from_unix_nanos(t0),
            end: Timestamp::from_unix_nanos(t0 + 250_000_000),
            status: StatusCode::Error,
            // The error tag is kept too (slis::journey::ERROR_TAG): the status already says it.
            attributes: vec![
                a("error", ""),
                a("http.method", "POST"),
                a("http.route", "/api/checkout"),
                a("http.status_code", "503"),
                a("peer.service", "browser"),
            ],
            weight: 10,
        },
        slis::Span {
            trace_id: TraceId([0, 0, 0, 0, 0, 0, 0, 0, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c]),
            span_id: SpanId([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]),
            parent_span_id: Some(SpanId([0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74])),
            service: "unknown_service".into(),
            name: "get".into(),
            kind: SpanKind::Client,
            start: Timestamp::from_unix_nanos(t0 + 1_000_000),
            end: Timestamp::from_unix_nanos(t0 + 1_007_000),
            status: StatusCode::Unset,
            attributes: vec![],
            weight: 1,
        },
        slis::Span {
            trace_id: TraceId([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]),
            span_id: SpanId([0, 0, 0, 0, 0, 0, 0, 3]),
            parent_span_id: None,
            service: "unknown_service".into(),
            name: "send".into(),
            kind: SpanKind::Producer,
            start: Timestamp::EPOCH,
            end: Timestamp::EPOCH,
            status: StatusCode::Error, // Zipkin: the tag's presence is the error, whatever its value
            attributes: vec![a("error", "false")],
            weight: 1,
        },
        slis::Span {
            trace_id: TraceId([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            span_id: SpanId([0, 0, 0, 0, 0, 0, 0, 4]),
            parent_span_id: None,
            service: "unknown_service".into(),
            name: "local".into(),
            kind: SpanKind::Unspecified,
            start: Timestamp::EPOCH,
            end: Timestamp::EPOCH,
            status: StatusCode::Unset,
            attributes: vec![],
            weight: 1,
        },
    ];
    assert_eq!(decoded.spans.len(), want.len());
    for (got, want) in decoded.spans.iter().zip(&want) {
        assert_eq!(got, want);
    }
}

#[test]
fn invalid_ids_are_counted_and_the_other_spans_survive() {
    const T: &str = "5b8efff798038103d269b633813fc60c";
    const S: &str = "eee19b7ec3c1b174";
    // (traceId, id, parentId, reason; "" for a span that is kept)
    type Case = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );
    let cases: &[Case] = &[
        (Some(T), Some(S), None, ""),
        (None, Some(S), None, "missing trace id"),
        (
            Some("5b8efff79803810"),
            Some(S),
            None,
            "invalid trace id \"5b8efff79803810\": 15 hex digits, want 16 or 32",
        ),
        (
            Some("5b8efff79803810x"),
            Some(S),
            None,
            "invalid trace id \"5b8efff79803810x\": not hex",
        ),
        (
            Some("+b8efff798038103"),
            Some(S),
            None,
            "invalid trace id \"+b8efff798038103\": not hex",
        ),
        (
            Some("0000000000000000"),
            Some(S),
            None,
            "invalid trace id \"0000000000000000\": all zero",
        ),
        (
            Some("00000000000000000000000000000000"),
            Some(S),
            None,
            "invalid trace id \"00000000000000000000000000000000\": all zero",
        ),
        (Some(T), None, None, "missing span id"),
        (
            Some(T),
            Some("eee19b7e"),
            None,
            "invalid span id \"eee19b7e\": 8 hex digits, want 16",
        ),
        (
            Some(T),
            Some("0000000000000000"),
            None,
            "invalid span id \"0000000000000000\": all zero",
        ),
        (
            Some(T),
            Some(S),
            Some("12"),
            "invalid parent id \"12\": 2 hex digits, want 16",
        ),
        (
            Some(T),
            Some(S),
            Some("eee19b7ec3c1b17g"),
            "invalid parent id \"eee19b7ec3c1b17g\": not hex",
        ),
        (Some(T), Some(S), Some(""), ""),
    ];
    let field = |name: &str, v: Option<&str>| v.map(|v| format!(",\"{name}\":\"{v}\"")).unwrap_or_default();
    for (trace_id, id, parent_id, why) in cases {
        let span = format!(
            "{{\"name\":\"n\"{}{}{}}}",
            field("traceId", *trace_id),
            field("id", *id),
            field("parentId", *parent_id)
        );
        // The span under test between two valid ones.
        let valid = format!("{{\"traceId\":\"{T}\",\"id\":\"{S}\",\"name\":\"ok\"}}");
        let body = format!("[{valid},{span},{valid}]");
        let decoded = decode_json(body.as_bytes(), &AttrKeys::default()).unwrap();
        match *why {
            "" => assert_eq!((decoded.spans.len(), decoded.rejected), (3, 0), "{body}"),
            why => {
                assert_eq!((decoded.spans.len(), decoded.rejected), (2, 1), "{body}");
                assert_eq!(decoded.first_rejection.unwrap(), format!("span \"n\": {why}"));
            }
        }
    }
}

#[test]
fn malformed_bodies() {
    let cases: &[(&str, &str)] = &[
        ("", "empty body, expected a json array of zipkin v2 spans"),
        ("\n ", "empty body, expected a json array of zipkin v2 spans"),
        (
            "{}",
            "invalid json: invalid type: map, expected a sequence at line 1 column 0",
        ),
        (
            "[{\"traceId\": 5}]",
            "invalid json: invalid type: integer `5`, expected a string at line 1 column 14",
        ),
        (
            "[\n{\"id\": \"eee19b7ec3c1b174\", \"tags\": {\"http.status_code\": 200}}]",
            "invalid json: invalid type: integer `200`, expected a string at line 2 column 59",
        ),
        (
            "[{\"timestamp\": -1}]",
            "invalid json: invalid value: integer `-1`, expected u64 at line 1 column 17",
        ),
        ("[", "invalid json: EOF while parsing a list at line 1 column 1"),
    ];
    for (body, message) in cases {
        let err = decode_json(body.as_bytes(), &AttrKeys::default()).unwrap_err();
        assert_eq!(err.to_string(), *message, "{body}");
    }
    let decoded = decode_json(b"[]", &AttrKeys::default()).unwrap();
    assert_eq!((decoded.spans.len(), decoded.rejected), (0, 0));
}

/// Writes the seeds of the `zipkin_json` fuzz target (see docs/dev/README.md, "Fuzzing"):
/// `FUZZ_SEEDS=dir cargo test -p tracebudget-engine zipkin_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz seeds on demand"]
fn zipkin_fuzz_seeds() {
    let dir = std::path::PathBuf::from(std::env::var("FUZZ_SEEDS").expect("FUZZ_SEEDS=dir")).join("zipkin_json");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("example"), EXAMPLE).unwrap();
    std::fs::write(dir.join("empty"), "[]").unwrap();
    std::fs::write(
        dir.join("one"),
        r#"[{"traceId": "1", "id": "2", "tags": {"error": ""}}]"#,
    )
    .unwrap();
}
