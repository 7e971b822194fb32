use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use slis::{AttrValue, SpanId, SpanKind, StatusCode, Timestamp, TraceId};

use super::{decode_json, decode_protobuf, from_request};
use crate::decode::{AttrKeys, DecodeError, Decoded};

const TRACE: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
const ROOT: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
const CHILD: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x75];
const OTHER: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 9];
const T0: u64 = 1_544_712_660_000_000_000;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.to_owned())
}

fn keys() -> AttrKeys {
    AttrKeys::new([
        "http.route",
        "http.request.method",
        "http.response.status_code",
        "deployment.environment",
        "ratio",
        "cache.hit",
    ])
}

/// Every field the engine reads, and many it does not (scopes, events, links, flags, dropped
/// counts, array and bytes values: unknown to the projection, so skipped).
fn request() -> ExportTraceServiceRequest {
    let root = Span {
        trace_id: TRACE.to_vec(),
        span_id: ROOT.to_vec(),
        trace_state: "ot=th:c".to_owned(),
        flags: 0x301,
        name: "POST /api/checkout".to_owned(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + 250_000_000,
        attributes: vec![
            kv("http.request.method", s("GET")),
            kv("http.route", s("/api/checkout")),
            kv("thread.id", Value::IntValue(7)),
            kv("http.response.status_code", Value::IntValue(503)),
            kv("http.request.method", s("POST")), // a repeated key: the last one wins
            kv("ratio", Value::ArrayValue(ArrayValue { values: vec![] })), // kept key, unkept type
        ],
        dropped_attributes_count: 3,
        events: vec![span::Event {
            time_unix_nano: T0 + 1,
            name: "exception".to_owned(),
            attributes: vec![kv("exception.type", s("TimeoutError"))],
            dropped_attributes_count: 0,
        }],
        links: vec![span::Link {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        }],
        status: Some(Status {
            message: "upstream timed out".to_owned(),
            code: 2,
        }),
        ..Default::default()
    };
    let child = Span {
        trace_id: TRACE.to_vec(),
        span_id: CHILD.to_vec(),
        parent_span_id: ROOT.to_vec(),
        name: "SELECT shop.carts".to_owned(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: T0 + 1_000,
        end_time_unix_nano: T0 + 9_000,
        attributes: vec![
            kv("SampleRate", Value::IntValue(20)), // read for the weight, not kept
            kv("ratio", Value::DoubleValue(0.25)),
            kv("cache.hit", Value::BoolValue(true)),
            kv("db.statement", Value::BytesValue(b"SELECT 1".to_vec())),
        ],
        status: Some(Status {
            message: String::new(),
            code: 1,
        }),
        ..Default::default()
    };
    let orphan_kind = Span {
        trace_id: TRACE.to_vec(),
        span_id: OTHER.to_vec(),
        parent_span_id: vec![0; 8], // all zero: no parent
        name: "work".to_owned(),
        kind: 42,                       // not a kind we know
        start_time_unix_nano: u64::MAX, // saturates; the pipeline's clock checks judge it
        end_time_unix_nano: 0,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s("checkout")),
                        kv("deployment.environment", s("prod")),
                        kv("http.route", s("/from-resource")),
                        kv("host.name", s("node-1")),
                    ],
                    dropped_attributes_count: 1,
                    entity_refs: vec![],
                }),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "flask".to_owned(),
                            version: "0.59b0".to_owned(),
                            ..Default::default()
                        }),
                        spans: vec![root],
                        schema_url: "https://opentelemetry.io/schemas/1.11.0".to_owned(),
                    },
                    ScopeSpans {
                        spans: vec![child],
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    spans: vec![orphan_kind],
                    ..Default::default()
                }],
                schema_url: String::new(),
            },
        ],
    }
}

fn want_spans() -> Vec<slis::Span> {
    let a = |k: &str, v: AttrValue| (Arc::<str>::from(k), v);
    let str = |v: &str| AttrValue::Str(v.into());
    vec![
        slis::Span {
            trace_id: TraceId(TRACE),
            span_id: SpanId(ROOT),
            parent_span_id: None,
            service: "checkout".into(),
            name: "POST /api/checkout".into(),
            kind: SpanKind::Server,
            start: Timestamp::from_unix_nanos(T0 as i64),
            end: Timestamp::from_unix_nanos(T0 as i64 + 250_000_000),
            status: StatusCode::Error,
            attributes: vec![
                a("http.request.method", str("POST")),
                a("http.route", str("/api/checkout")),
                a("http.response.status_code", AttrValue::Int(503)),
                a("deployment.environment", str("prod")),
            ],
            weight: 4,
        },
        slis::Span {
            trace_id: TraceId(TRACE),
            span_id: SpanId(CHILD),
            parent_span_id: Some(SpanId(ROOT)),
            service: "checkout".into(),
            name: "SELECT shop.carts".into(),
            kind: SpanKind::Client,
            start: Timestamp::from_unix_nanos(T0 as i64 + 1_000),
            end: Timestamp::from_unix_nanos(T0 as i64 + 9_000),
            status: StatusCode::Ok,
            attributes: vec![
                a("ratio", AttrValue::Float(0.25)),
                a("cache.hit", AttrValue::Bool(true)),
                a("deployment.environment", str("prod")),
                a("http.route", str("/from-resource")),
            ],
            weight: 20,
        },
        slis::Span {
            trace_id: TraceId(TRACE),
            span_id: SpanId(OTHER),
            parent_span_id: None,
            service: "unknown_service".into(),
            name: "work".into(),
            kind: SpanKind::Unspecified,
            start: Timestamp::from_unix_nanos(i64::MAX),
            end: Timestamp::EPOCH,
            status: StatusCode::Unset,
            attributes: vec![],
            weight: 1,
        },
    ]
}

fn assert_decoded(what: &str, got: Decoded, want: &[slis::Span]) {
    assert_eq!(got.rejected, 0, "{what}: {:?}", got.first_rejection);
    assert_eq!(got.spans.len(), want.len(), "{what}");
    for (got, want) in got.spans.iter().zip(want) {
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn the_three_paths_decode_every_field_the_same() {
    let req = request();
    let mut proto = req.encode_to_vec();
    // Fields this version of OTLP does not have, at the top level: skipped.
    prost::encoding::string::encode(99, &"from the future".to_owned(), &mut proto);
    prost::encoding::uint64::encode(100, &7, &mut proto);
    let json = serde_json::to_vec(&req).unwrap();
    let keys = keys();
    let want = want_spans();
    assert_decoded("protobuf", decode_protobuf(Bytes::from(proto), &keys).unwrap(), &want);
    assert_decoded("json", decode_json(&json, &keys).unwrap(), &want);
    assert_decoded("grpc", from_request(&req, &keys), &want);
}

#[test]
fn interned_strings_are_shared() {
    let mut req = request();
    req.resource_spans[0].scope_spans[1].spans[0].name = "POST /api/checkout".to_owned();
    let decoded = decode_protobuf(Bytes::from(req.encode_to_vec()), &keys()).unwrap();
    let [a, b, _] = &decoded.spans[..] else {
        panic!("three spans")
    };
    assert!(Arc::ptr_eq(&a.service, &b.service));
    assert!(Arc::ptr_eq(&a.name, &b.name));
    // deployment.environment: the key from AttrKeys, the value from the resource, both shared.
    let (root_env, child_env) = (&a.attributes[3], &b.attributes[2]);
    assert_eq!(&*root_env.0, "deployment.environment");
    assert!(Arc::ptr_eq(&root_env.0, &child_env.0));
    let (AttrValue::Str(x), AttrValue::Str(y)) = (&root_env.1, &child_env.1) else {
        panic!("strings")
    };
    assert!(Arc::ptr_eq(x, y));
}

#[test]
fn sampling_weight() {
    // (span trace_state, span SampleRate, resource SampleRate, SampleRate a kept key, weight)
    type Case = (&'static str, Option<Value>, Option<Value>, bool, u32);
    let cases: &[Case] = &[
        ("", None, None, false, 1),
        ("ot=th:c", None, None, false, 4),
        ("ot=th:c", Some(Value::IntValue(10)), None, false, 4),
        ("", Some(Value::IntValue(10)), None, false, 10),
        ("", Some(Value::IntValue(10)), None, true, 10),
        ("", Some(s("20")), None, false, 20),
        ("", Some(Value::DoubleValue(2.6)), None, false, 3),
        ("", None, Some(Value::IntValue(8)), false, 8),
        ("", Some(Value::IntValue(2)), Some(Value::IntValue(8)), false, 2),
        ("", Some(Value::BoolValue(true)), None, false, 1),
        ("vendor=x,ot=th:8", None, None, false, 2),
    ];
    for (ts, rate, resource_rate, kept, want) in cases {
        let mut req = request();
        let rs = &mut req.resource_spans[1];
        rs.resource = resource_rate.clone().map(|v| Resource {
            attributes: vec![kv("SampleRate", v)],
            ..Default::default()
        });
        let span = &mut rs.scope_spans[0].spans[0];
        span.trace_state = (*ts).to_owned();
        span.attributes = rate.iter().map(|v| kv("SampleRate", v.clone())).collect();
        let keys = match kept {
            true => AttrKeys::new(["SampleRate"]),
            false => keys(),
        };
        let decoded = decode_protobuf(Bytes::from(req.encode_to_vec()), &keys).unwrap();
        let span = &decoded.spans[2];
        let case = format!("{ts:?} {rate:?} {resource_rate:?} kept={kept}");
        assert_eq!(span.weight, *want, "{case}");
        let kept_rate = span.attribute("SampleRate").is_some();
        assert_eq!(
            kept_rate,
            *kept && (rate.is_some() || resource_rate.is_some()),
            "{case}"
        );
    }
}

#[test]
fn invalid_ids_are_counted_and_the_other_spans_survive() {
    let span = |name: &str, trace_id: Vec<u8>, span_id: Vec<u8>, parent: Vec<u8>| Span {
        trace_id,
        span_id,
        parent_span_id: parent,
        name: name.to_owned(),
        ..Default::default()
    };
    let (t, id) = (TRACE.to_vec(), ROOT.to_vec());
    let spans = vec![
        span("ok-1", t.clone(), id.clone(), vec![]),
        span("short-trace", vec![0xab; 8], id.clone(), vec![]),
        span("zero-trace", vec![0; 16], id.clone(), vec![]),
        span("no-span-id", t.clone(), vec![], vec![]),
        span("zero-span-id", t.clone(), vec![0; 8], vec![]),
        span("long-span-id", t.clone(), vec![1; 9], vec![]),
        span("short-parent", t.clone(), id.clone(), vec![1, 2, 3]),
        span("ok-2", t.clone(), CHILD.to_vec(), id.clone()),
    ];
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let json = serde_json::to_vec(&req).unwrap();
    let keys = keys();
    let cases = [
        (
            "protobuf",
            decode_protobuf(Bytes::from(req.encode_to_vec()), &keys).unwrap(),
        ),
        ("json", decode_json(&json, &keys).unwrap()),
        ("grpc", from_request(&req, &keys)),
    ];
    for (what, decoded) in cases {
        let names: Vec<&str> = decoded.spans.iter().map(|s| &*s.name).collect();
        assert_eq!(names, ["ok-1", "ok-2"], "{what}");
        assert_eq!(decoded.rejected, 6, "{what}");
        assert_eq!(
            decoded.first_rejection.as_deref(),
            Some("span \"short-trace\": invalid trace id abababababababab: 8 bytes, want 16"),
            "{what}"
        );
    }
}

/// Each rejection, alone in its request, and the reason it gives.
#[test]
fn rejection_reasons() {
    type Case = (&'static [u8], &'static [u8], &'static [u8], &'static str);
    let cases: &[Case] = &[
        (&[], &ROOT, &[], "missing trace id"),
        (
            &[0xab; 8],
            &ROOT,
            &[],
            "invalid trace id abababababababab: 8 bytes, want 16",
        ),
        (
            &[0; 16],
            &ROOT,
            &[],
            "invalid trace id 00000000000000000000000000000000: all zero",
        ),
        (&TRACE, &[], &[], "missing span id"),
        (&TRACE, &[0; 8], &[], "invalid span id 0000000000000000: all zero"),
        (
            &TRACE,
            &[1; 9],
            &[],
            "invalid span id 010101010101010101: 9 bytes, want 8",
        ),
        (
            &TRACE,
            &ROOT,
            &[1, 2, 3],
            "invalid parent span id 010203: 3 bytes, want 8",
        ),
        (
            &[7; 40],
            &ROOT,
            &[],
            "invalid trace id 0707070707070707070707070707070707070707070707070707070707070707…: 40 bytes, want 16",
        ),
    ];
    for (trace_id, span_id, parent, why) in cases {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: trace_id.to_vec(),
                        span_id: span_id.to_vec(),
                        parent_span_id: parent.to_vec(),
                        name: "GET /".to_owned(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let decoded = from_request(&req, &keys());
        assert_eq!(decoded.rejected, 1, "{why}");
        assert_eq!(decoded.first_rejection.unwrap(), format!("span \"GET /\": {why}"));
    }
}

/// Written like `examples/trace.json` of opentelemetry-proto: upper-case hex ids, int64 as strings,
/// enums as numbers, unknown keys (ignored, per OTLP/JSON).
const OFFICIAL_JSON: &str = r#"{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          { "key": "service.name", "value": { "stringValue": "my.service" } },
          { "key": "deployment.environment", "value": { "stringValue": "staging" } }
        ]
      },
      "scopeSpans": [
        {
          "scope": {
            "name": "my.library",
            "version": "1.0.0",
            "attributes": [{ "key": "my.scope.attribute", "value": { "stringValue": "some scope attribute" } }]
          },
          "spans": [
            {
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "parentSpanId": "EEE19B7EC3C1B173",
              "traceState": "ot=th:8",
              "name": "I'm a server span",
              "startTimeUnixNano": "1544712660000000000",
              "endTimeUnixNano": 1544712661000000000,
              "kind": 2,
              "attributes": [
                { "key": "my.span.attr", "value": { "stringValue": "some value" } },
                { "key": "http.route", "value": { "stringValue": "/orders/{id}" } },
                { "key": "http.response.status_code", "value": { "intValue": "502" } },
                { "key": "ratio", "value": { "doubleValue": 0.5 } },
                { "key": "cache.hit", "value": { "boolValue": false } }
              ],
              "events": [{ "timeUnixNano": "1544712660500000000", "name": "retry" }],
              "status": { "code": 2, "message": "bad gateway" },
              "someFutureField": { "nested": [1, 2, 3] }
            }
          ]
        }
      ]
    }
  ],
  "someFutureTopLevelKey": true
}"#;

#[test]
fn official_json_example() {
    let decoded = decode_json(OFFICIAL_JSON.as_bytes(), &keys()).unwrap();
    let a = |k: &str, v: AttrValue| (Arc::<str>::from(k), v);
    let want = slis::Span {
        trace_id: TraceId(TRACE),
        span_id: SpanId(ROOT),
        parent_span_id: Some(SpanId([0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73])),
        service: "my.service".into(),
        name: "I'm a server span".into(),
        kind: SpanKind::Server,
        start: Timestamp::from_unix_nanos(1_544_712_660_000_000_000),
        end: Timestamp::from_unix_nanos(1_544_712_661_000_000_000),
        status: StatusCode::Error,
        attributes: vec![
            a("http.route", AttrValue::Str("/orders/{id}".into())),
            a("http.response.status_code", AttrValue::Int(502)),
            a("ratio", AttrValue::Float(0.5)),
            a("cache.hit", AttrValue::Bool(false)),
            a("deployment.environment", AttrValue::Str("staging".into())),
        ],
        weight: 2,
    };
    assert_decoded("official json", decoded, &[want]);
}

#[test]
fn json_bodies() {
    // (body, spans or the error's message, line and column of a json error)
    type Case = (&'static str, Result<usize, &'static str>, Option<(usize, usize)>);
    let cases: &[Case] = &[
        (r#"{"resourceSpans": []}"#, Ok(0), None),
        (r#"{"resourceSpans": null}"#, Ok(0), None),
        (r#"{"resourceSpans": [{}], "other": 1}"#, Ok(0), None),
        (r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]}"#, Ok(0), None), // one span, rejected
        (
            "",
            Err("empty body, expected a json object with \"resourceSpans\""),
            None,
        ),
        (
            " \r\n\t",
            Err("empty body, expected a json object with \"resourceSpans\""),
            None,
        ),
        (
            r#"{"foo": 1}"#,
            Err("json object has none of the known keys, expected a json object with \"resourceSpans\""),
            None,
        ),
        (
            "{}",
            Err("json object has none of the known keys, expected a json object with \"resourceSpans\""),
            None,
        ),
        (
            "[]",
            Err(
                "invalid json: invalid type: sequence, expected an ExportTraceServiceRequest json object at line 1 column 0",
            ),
            Some((1, 0)),
        ),
        (
            "{\"resourceSpans\": [\n  {\"scopeSpans\": [\n    {\"spans\": [{\"traceId\": \"5B8EZZ\"}]}]}]}",
            Err("invalid json: invalid character 'Z' at position 4 at line 3 column 35"),
            Some((3, 35)),
        ),
        (
            "{\"resourceSpans\": [\n{\"scopeSpans\": [{\"spans\": [{\"startTimeUnixNano\": \"soon\"}]}]}]}",
            Err("invalid json: invalid digit found in string at line 2 column 55"),
            Some((2, 55)),
        ),
        (
            r#"{"resourceSpans": [}"#,
            Err("invalid json: expected value at line 1 column 20"),
            Some((1, 20)),
        ),
        (
            r#"{"resourceSpans": []} trailing"#,
            Err("invalid json: trailing characters at line 1 column 23"),
            Some((1, 23)),
        ),
    ];
    for (body, want, position) in cases {
        let got = decode_json(body.as_bytes(), &keys());
        match (got, want) {
            (Ok(decoded), Ok(spans)) => assert_eq!(decoded.spans.len(), *spans, "{body}"),
            (Err(e), Err(message)) => {
                assert_eq!(e.to_string(), *message, "{body}");
                assert_eq!(e.line_column(), *position, "{body}");
            }
            (got, _) => panic!("{body}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn malformed_protobuf() {
    let valid = request().encode_to_vec();
    let cases: &[(&str, Vec<u8>, &str)] = &[
        (
            "truncated",
            valid[..valid.len() - 5].to_vec(),
            "invalid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: \
             ExportTraceServiceRequest.resource_spans: buffer underflow",
        ),
        (
            "not protobuf",
            b"{\"resourceSpans\": []}".to_vec(),
            "invalid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: buffer underflow",
        ),
        (
            "resource_spans as a varint",
            vec![0x08, 0x01],
            "invalid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: \
             ExportTraceServiceRequest.resource_spans: invalid wire type: Varint (expected LengthDelimited)",
        ),
    ];
    for (what, body, message) in cases {
        let err = decode_protobuf(Bytes::from(body.clone()), &keys()).unwrap_err();
        assert!(matches!(err, DecodeError::Protobuf(_)), "{what}");
        assert_eq!(err.to_string(), *message, "{what}");
    }
    // An empty body is the empty message: zero spans, as protobuf defines it.
    assert_eq!(decode_protobuf(Bytes::new(), &keys()).unwrap().spans.len(), 0);
}

/// Writes the seeds of the `otlp_protobuf`, `otlp_json` and `replay_input` fuzz targets (see the
/// docs/dev/README.md, "Fuzzing"): `FUZZ_SEEDS=dir cargo test -p tracebudget-engine otlp_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz seeds on demand"]
fn otlp_fuzz_seeds() {
    let dir = std::path::PathBuf::from(std::env::var("FUZZ_SEEDS").expect("FUZZ_SEEDS=dir"));
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    let req = request();
    let proto = req.encode_to_vec();
    let json = serde_json::to_vec(&req).unwrap();
    write("otlp_protobuf/request", &proto);
    write(
        "otlp_protobuf/empty_resource",
        &ExportTraceServiceRequest::default().encode_to_vec(),
    );
    write("otlp_json/request", &json);
    write("otlp_json/official", OFFICIAL_JSON.as_bytes());
    write("otlp_json/empty", br#"{"resourceSpans": []}"#);
    write(
        "otlp_json/one_span",
        br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]}"#,
    );
    let mut frames = Vec::new();
    for body in [&proto[..], &[][..], &proto[..]] {
        frames.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        frames.extend_from_slice(body);
    }
    write("replay_input/frames", &frames);
    let mut lines = json.clone();
    lines.extend_from_slice(b"\n\n");
    lines.extend_from_slice(OFFICIAL_JSON.replace('\n', " ").as_bytes());
    lines.extend_from_slice(b"\n[]\n");
    write("replay_input/lines", &lines);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &lines).unwrap();
    write("replay_input/lines.gz", &gz.finish().unwrap());
}
