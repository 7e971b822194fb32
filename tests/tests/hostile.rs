//! Hostile input over the network (issue 9, item 2), against the real `serve`: truncated gzip,
//! decompression bombs, 10 MB attribute values and names, 100,000 spans in one request (and in
//! one trace), deeply nested JSON and protobuf, invalid UTF-8. Each case gets its documented
//! status and message and is counted in /metrics; meanwhile a well-behaved client (loadgen over
//! OTLP/gRPC into the same process, running through the whole barrage) is served throughout:
//! every one of its spans accepted and counted, none refused or retried. Memory stays bounded: a bomb is
//! never inflated past `max_body_size`, and huge values are not kept.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tracebudget_tests::{HttpResponse, Metrics, Server, TempDir, example_config, free_addrs, http_send, loadgen};

const MIB: usize = 1 << 20;
const PROTO: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A span of trace `trace` (16 bytes from the number), ending now, 1 ms long.
fn span(trace: u64, id: u64, parent: Option<u64>, name: &str, attributes: Vec<KeyValue>) -> Span {
    let end = now_nanos();
    Span {
        trace_id: [trace.to_be_bytes(), 0xfeed_u64.to_be_bytes()].concat(),
        span_id: (id + 1).to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| (p + 1).to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: end - 1_000_000,
        end_time_unix_nano: end,
        attributes,
        ..Default::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Protobuf length-delimited field `n` holding `bytes`.
fn field(n: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    prost::encoding::encode_key(n, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

/// A request whose one span has an attribute value nested `depth` arrays deep, encoded by hand
/// (prost's own encoder would recurse as deep).
fn nested_protobuf(trace: u64, depth: usize) -> Vec<u8> {
    let mut value = AnyValue {
        value: Some(any_value::Value::StringValue("bottom".into())),
    }
    .encode_to_vec();
    for _ in 0..depth {
        // AnyValue { array_value (5): ArrayValue { values (1): [value] } }
        value = field(5, &field(1, &value));
    }
    let kv = [field(1, b"deep"), field(2, &value)].concat();
    let span = [span(trace, 0, None, "deep", vec![]).encode_to_vec(), field(9, &kv)].concat();
    let resource = Resource {
        attributes: vec![string("service.name", "frontend")],
        ..Default::default()
    }
    .encode_to_vec();
    let resource_spans = [field(1, &resource), field(2, &field(2, &span))].concat();
    field(1, &resource_spans)
}

fn post(addr: SocketAddr, path: &str, content_type: &str, encoding: Option<&str>, body: &[u8]) -> HttpResponse {
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(e) = encoding {
        headers.push(("Content-Encoding", e));
    }
    http_send(addr, "POST", path, &headers, Some(body), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

fn requests(m: &Metrics, receiver: &str, outcome: &str) -> f64 {
    m.sum(
        "tracebudget_requests_total",
        &[("receiver", receiver), ("outcome", outcome)],
    )
}

fn accepted(m: &Metrics, receiver: &str) -> f64 {
    m.sum("tracebudget_spans_accepted_total", &[("receiver", receiver)])
}

/// One hostile request: its answer, and what it did to the counters.
struct Case {
    name: &'static str,
    receiver: &'static str,
    path: &'static str,
    content_type: &'static str,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// Found in the answer's body (the protobuf `Status` holds the message as plain UTF-8).
    message: &'static str,
    outcome: &'static str,
    spans_accepted: f64,
}

#[test]
fn hostile_requests_get_their_status_and_count_while_a_good_client_is_served() {
    let dir = TempDir::new("hostile");
    let [api, grpc, http, zipkin]: [SocketAddr; 4] = free_addrs(4).try_into().unwrap();
    let config = example_config(&dir, api, grpc, http, zipkin);
    let mut server = Server::start(&config, api);

    let valid = request("frontend", vec![span(1, 0, None, "ok", vec![])]);
    let mut truncated = gzip(&valid);
    truncated.truncate(truncated.len() / 2);
    // 256 MiB of zeros: a quarter of a megabyte on the wire.
    let bomb = gzip(&vec![0u8; 256 * MIB]);
    assert!(bomb.len() < MIB, "the bomb is small on the wire: {}", bomb.len());
    let zipkin_bomb = gzip(&[b"[".as_slice(), &vec![b' '; 256 * MIB], b"]"].concat());

    let ten_mb = "v".repeat(10 * MIB);
    // A value of an attribute nobody reads, and of one a journey matches on.
    let big_value = request(
        "frontend",
        vec![span(2, 0, None, "big", vec![string("note", ten_mb.clone())])],
    );
    let big_route = request(
        "frontend",
        vec![span(3, 0, None, "big", vec![string("http.route", ten_mb)])],
    );
    let big_name = request(&"s".repeat(10 * MIB), vec![span(4, 0, None, "big service", vec![])]);
    let big_span_name = request("frontend", vec![span(5, 0, None, &"n".repeat(10 * MIB), vec![])]);

    // 100,000 spans: 10,000 traces of 10, and one trace of 100,000 (a root and its children).
    let many: Vec<Span> = (0..100_000u64)
        .map(|i| {
            let (trace, n) = (1_000 + i / 10, i % 10);
            span(
                trace,
                n,
                (n > 0).then_some(0),
                "many",
                vec![string("http.route", "/api/search")],
            )
        })
        .collect();
    let many_spans = request("frontend", many);
    let one_trace = request(
        "frontend",
        (0..100_000u64)
            .map(|i| span(999_999, i, (i > 0).then_some(0), "wide", vec![]))
            .collect(),
    );

    // Nested 100,000 deep under a key the decoders skip (skipped without recursion: the span
    // beside it counts), and 10,000 deep inside an attribute value the OTLP decoder reads.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let end_us = now_nanos() / 1_000;
    let deep_json = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"frontend"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"deep","startTimeUnixNano":"{}","endTimeUnixNano":"{}","extension":{deep}}}]}}]}}]}}"#,
        (end_us - 1_000) * 1_000,
        end_us * 1_000
    );
    let deep_value_json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"attributes":[{{"key":"k","value":{}{{"stringValue":"x"}}{}}}]}}]}}]}}]}}"#,
        r#"{"arrayValue":{"values":["#.repeat(10_000),
        "]}}".repeat(10_000)
    );
    let deep_zipkin = format!(
        r#"[{{"traceId":"5b8efff798038103d269b633813fc60d","id":"eee19b7ec3c1b174","name":"deep","timestamp":{},"duration":1000,"localEndpoint":{{"serviceName":"frontend"}},"extension":{deep}}}]"#,
        end_us - 1_000
    );
    let deep_protobuf = nested_protobuf(6, 100_000);

    // Invalid UTF-8: in a JSON string, in a protobuf string (service.name), in Zipkin JSON.
    let bad_utf8_json = [
        br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"front"#
            .as_slice(),
        &[0xff, 0xfe],
        br#""}}]}}]}"#,
    ]
    .concat();
    let mut bad_utf8_protobuf = request("frontend-@@", vec![span(7, 0, None, "utf8", vec![])]);
    let at = bad_utf8_protobuf.windows(2).position(|w| w == b"@@").unwrap();
    bad_utf8_protobuf[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    let bad_utf8_zipkin = [
        br#"[{"traceId":"5b8efff798038103","id":"eee19b7ec3c1b174","name":""#.as_slice(),
        &[0xc3, 0x28],
        br#""}]"#,
    ]
    .concat();

    let cases = vec![
        Case {
            name: "truncated gzip",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: Some("gzip"),
            body: truncated,
            status: 400,
            message: "corrupt gzip body",
            outcome: "malformed",
            spans_accepted: 0.0,
        },
        Case {
            name: "gzip bomb",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: Some("gzip"),
            body: bomb,
            status: 413,
            message: "exceeds max_body_size (16777216 bytes)",
            outcome: "too_large",
            spans_accepted: 0.0,
        },
        Case {
            name: "zipkin gzip bomb",
            receiver: "zipkin",
            path: "/api/v2/spans",
            content_type: JSON,
            encoding: Some("gzip"),
            body: zipkin_bomb,
            status: 413,
            message: "exceeds max_body_size (16777216 bytes)",
            outcome: "too_large",
            spans_accepted: 0.0,
        },
        Case {
            name: "10 MB attribute value",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: None,
            body: big_value,
            status: 200,
            message: "",
            outcome: "ok",
            spans_accepted: 1.0,
        },
        Case {
            name: "10 MB http.route (a key journeys match on)",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: None,
            body: big_route,
            status: 200,
            message: "",
            outcome: "ok",
            spans_accepted: 1.0,
        },
        Case {
            name: "10 MB service name",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: None,
            body: big_name,
            status: 200,
            message: "",
            outcome: "ok",
            spans_accepted: 1.0,
        },
        Case {
            name: "10 MB span name",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: None,
            body: big_span_name,
            status: 200,
            message: "",
            outcome: "ok",
            spans_accepted: 1.0,
        },
        Case {
            name: "100,000 spans in one request",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: None,
            body: many_spans,
            status: 200,
            message: "",
            outcome: "ok",
            spans_accepted: 100_000.0,
        },
        Case {
            name: "100,000 spans in one trace",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: None,
            body: one_trace,
            status: 200,
            message: "",
            outcome: "ok",
            spans_accepted: 100_000.0,
        },
        Case {
            name: "JSON nested 100,000 deep under an unknown key",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: JSON,
            encoding: None,
            body: deep_json.into_bytes(),
            status: 200,
            message: "",
            outcome: "ok",
            spans_accepted: 1.0,
        },
        Case {
            name: "JSON attribute value nested 10,000 deep",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: JSON,
            encoding: None,
            body: deep_value_json.into_bytes(),
            status: 400,
            message: "recursion limit exceeded at line 1 column",
            outcome: "malformed",
            spans_accepted: 0.0,
        },
        Case {
            // The projection never descends into a value it does not read: the span counts.
            name: "protobuf attribute value nested 100,000 deep",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: None,
            body: deep_protobuf,
            status: 200,
            message: "",
            outcome: "ok",
            spans_accepted: 1.0,
        },
        Case {
            name: "Zipkin JSON nested 100,000 deep under an unknown key",
            receiver: "zipkin",
            path: "/api/v2/spans",
            content_type: JSON,
            encoding: None,
            body: deep_zipkin.into_bytes(),
            status: 202,
            message: "",
            outcome: "ok",
            spans_accepted: 1.0,
        },
        Case {
            name: "invalid UTF-8 in OTLP JSON",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: JSON,
            encoding: None,
            body: bad_utf8_json,
            status: 400,
            message: "invalid unicode code point at line 1 column",
            outcome: "malformed",
            spans_accepted: 0.0,
        },
        // Protobuf strings are taken as they come, invalid sequences replaced by U+FFFD (the
        // span still counts; a name is only a label).
        Case {
            name: "invalid UTF-8 in a protobuf string",
            receiver: "otlp_http",
            path: "/v1/traces",
            content_type: PROTO,
            encoding: None,
            body: bad_utf8_protobuf,
            status: 200,
            message: "",
            outcome: "ok",
            spans_accepted: 1.0,
        },
        Case {
            name: "invalid UTF-8 in Zipkin JSON",
            receiver: "zipkin",
            path: "/api/v2/spans",
            content_type: JSON,
            encoding: None,
            body: bad_utf8_zipkin,
            status: 400,
            message: "invalid unicode code point at line 1 column",
            outcome: "malformed",
            spans_accepted: 0.0,
        },
    ];

    // The good client: loadgen over OTLP/gRPC into the same process for the whole barrage (on
    // its own receiver, so that every OTLP/HTTP and Zipkin count below is the barrage's alone).
    let good = std::thread::spawn({
        let (config, endpoint) = (config.clone(), format!("http://{grpc}"));
        move || {
            loadgen(
                &[
                    "--config",
                    config.to_str().unwrap(),
                    "--protocol",
                    "grpc",
                    "--endpoint",
                    &endpoint,
                    "--rate",
                    "2000",
                    "--duration",
                    "20s",
                    "--seed",
                    "9",
                ],
                Duration::from_secs(120),
            )
        }
    });

    let started = Instant::now();
    let (mut hostile_http, mut hostile_zipkin) = (0.0, 0.0);
    for case in cases {
        let before = server.metrics();
        let answer = post(
            http_or(&case, http, zipkin),
            case.path,
            case.content_type,
            case.encoding,
            &case.body,
        );
        assert_eq!(
            answer.status,
            case.status,
            "{}: {}\n{}",
            case.name,
            answer.body.chars().take(500).collect::<String>(),
            server.output_block()
        );
        assert!(
            answer.body.contains(case.message),
            "{}: {:?} does not say {:?}",
            case.name,
            answer.body.chars().take(500).collect::<String>(),
            case.message
        );
        let after = server.metrics();
        assert_eq!(
            requests(&after, case.receiver, case.outcome) - requests(&before, case.receiver, case.outcome),
            1.0,
            "{}: one request counted as {}",
            case.name,
            case.outcome
        );
        *(if case.receiver == "zipkin" {
            &mut hostile_zipkin
        } else {
            &mut hostile_http
        }) += case.spans_accepted;
        eprintln!(
            "{}: {} in {:?}; peak RSS {} MiB",
            case.name,
            answer.status,
            started.elapsed(),
            server.proc_status_bytes("VmHWM") / MIB as u64
        );
    }
    let barrage = started.elapsed();
    assert!(
        barrage < Duration::from_secs(18),
        "the barrage ({barrage:?}) outlasted the good client's 20 s run: make loadgen's --duration longer"
    );
    let sent = good.join().expect("loadgen");

    // The good client was served all along: nothing refused, failed or retried.
    assert_eq!(sent.num(&["failed", "requests"]), 0.0, "{sent:?}");
    assert_eq!(sent.num(&["retries"]), 0.0, "{sent:?}");
    assert_eq!(sent.num(&["rejected_spans"]), 0.0, "{sent:?}");
    let good_spans = sent.num(&["accepted", "spans"]);
    assert_eq!(good_spans, sent.num(&["sent", "spans"]));
    let m = server.metrics();
    assert_eq!(accepted(&m, "otlp_grpc"), good_spans);
    assert_eq!(accepted(&m, "otlp_http"), hostile_http);
    assert_eq!(accepted(&m, "zipkin"), hostile_zipkin);
    // The 10 MB service name, span name and http.route value were cut to 1 KiB (the unread
    // 10 MB value was never copied); the invalid UTF-8 service name reads with U+FFFD.
    assert_eq!(
        m.sum("tracebudget_strings_truncated_total", &[("receiver", "otlp_http")]),
        3.0
    );
    let services: Vec<&str> = m
        .matching("tracebudget_trace_health_service_spans_total", &[])
        .filter_map(|s| s.labels.get("service").map(String::as_str))
        .collect();
    assert!(services.contains(&"frontend-\u{fffd}\u{fffd}"), "{services:?}");
    assert!(services.contains(&"s".repeat(1024).as_str()), "the cut service name");
    assert!(services.iter().all(|s| s.len() <= 1024));

    // A bomb is inflated to max_body_size at most, and 10 MB values are not kept.
    let peak = server.proc_status_bytes("VmHWM");
    assert!(peak < 400 * MIB as u64, "peak RSS {} MiB", peak / MIB as u64);
    server.assert_running();
}

fn http_or(case: &Case, http: SocketAddr, zipkin: SocketAddr) -> SocketAddr {
    if case.receiver == "zipkin" { zipkin } else { http }
}
