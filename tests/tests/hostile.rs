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

/// Reads `stream` until the server closes it (a reset counts as closed); what arrived. Panics
/// when it is still open after 20 s.
fn read_to_close(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the server did not close the connection: {e} (got {:?})",
            String::from_utf8_lossy(&got)
        ),
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn head(path: &str, content_length: u64) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n\r\n"
    )
}

/// An empty OTLP/JSON batch padded with spaces to `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    let mut body = br#"{"resourceSpans":[]"#.to_vec();
    body.resize(len - 1, b' ');
    body.push(b'}');
    body
}

/// Issue 18, against the real `serve`: bodies sent a byte at a time are cut off at their
/// deadline (408, connection closed, counted per listener); a listener over `max_connections`
/// closes the next connection at once (counted); bodies over the shared
/// `max_body_bytes_in_flight` get 429 with `Retry-After` (counted), and the budget comes back
/// when they are answered; a `Content-Length` of 1 TB gets 413 before any of it is read.
#[test]
fn issue_18_slow_bodies_connection_floods_and_crowds_of_bodies_are_bounded() {
    use std::io::Write as _;
    use std::net::TcpStream;

    const KIB: usize = 1 << 10;
    let dir = TempDir::new("hostile-limits");
    let ports: [SocketAddr; 4] = free_addrs(4).try_into().unwrap();
    let [api, _, http, zipkin] = ports;
    let db = format!("sqlite://{}", dir.path().join("tracebudget.db").display());
    let limits = "max_body_size = \"1MiB\"\nbody_read_timeout = \"10s\"\nmax_connections = 24\nmax_body_bytes_in_flight = \"4MiB\"";
    let config = tracebudget_tests::example_config_with(&dir, ports, &db, &[("max_body_size = \"16MiB\"", limits)]);
    let mut server = Server::start(&config, api);

    // Four bodies of 1 MiB, 900 KiB of each sent, hold 3,600 KiB of the 4 MiB budget.
    let body = padded(MIB);
    let mut holding: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(http).unwrap();
            stream.write_all(head("/v1/traces", MIB as u64).as_bytes()).unwrap();
            stream.write_all(&body[..900 * KIB]).unwrap();
            stream
        })
        .collect();
    let in_flight = |m: &Metrics| m.get("tracebudget_ingest_body_bytes_in_flight", &[]);
    let m = tracebudget_tests::wait_for(&mut server, Duration::from_secs(4), |m| {
        in_flight(m) == Some((3_600 * KIB) as f64)
    });
    assert_eq!(in_flight(&m), Some((3_600 * KIB) as f64));
    // 512 KiB more do not fit in the 496 KiB left. (The answer comes before the whole body is
    // read, so the client may see its last writes fail.)
    let mut refused = TcpStream::connect(http).unwrap();
    refused
        .write_all(head("/v1/traces", (512 * KIB) as u64).as_bytes())
        .unwrap();
    let _ = refused.write_all(&padded(512 * KIB));
    let answer = read_answer(&mut refused);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(
        answer.ends_with(
            r#"{"code":8,"message":"request bodies in flight would exceed max_body_bytes_in_flight (4194304 bytes): retry after 1s"}"#
        ),
        "{answer}"
    );
    for stream in &mut holding {
        stream.write_all(&body[900 * KIB..]).unwrap();
    }
    for stream in &mut holding {
        let answer = read_answer(stream);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    drop(holding);
    let m = tracebudget_tests::wait_for(&mut server, Duration::from_secs(10), |m| in_flight(m) == Some(0.0));
    assert_eq!(requests(&m, "otlp_http", "in_flight_limit"), 1.0);
    assert_eq!(requests(&m, "otlp_http", "ok"), 4.0);
    let retried = post(http, "/v1/traces", JSON, None, &padded(512 * KIB));
    assert_eq!(retried.status, 200, "{}", retried.body);

    // Content-Length 1 TB: 413 at once, the connection closed, long before the body deadline.
    let mut huge = TcpStream::connect(http).unwrap();
    huge.write_all(head("/v1/traces", 1_000_000_000_000).as_bytes())
        .unwrap();
    let answer = read_to_close(&mut huge);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer
            .ends_with(r#"{"code":3,"message":"content-length 1000000000000 exceeds max_body_size (1048576 bytes)"}"#),
        "{answer}"
    );

    // 20 clients sending a byte every 200 ms of a 1,000-byte body (200 s at that pace): each is
    // cut off at the 10 s deadline, answered 408 and closed.
    let trickles: Vec<_> = (0..20)
        .map(|i| {
            let (addr, path) = if i < 15 {
                (http, "/v1/traces")
            } else {
                (zipkin, "/api/v2/spans")
            };
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(head(path, 1_000).as_bytes()).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let trickle = std::thread::spawn(move || {
                    let mut sent = 0;
                    while sent < 1_000 && writer.write_all(b" ").is_ok() {
                        sent += 1;
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    sent
                });
                let answer = read_to_close(&mut stream);
                let sent = trickle.join().unwrap();
                (answer, sent)
            })
        })
        .collect();
    for (i, t) in trickles.into_iter().enumerate() {
        let (answer, sent) = t.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "client {i}: {answer}");
        assert!(
            answer.contains("the request body was not complete within body_read_timeout (10s)"),
            "client {i}: {answer}"
        );
        assert!(sent < 1_000, "client {i} sent its whole body");
    }

    // 24 connections fill the OTLP/HTTP listener; the 25th is closed at once; a freed slot is
    // taken again.
    let open = |m: &Metrics| m.get("tracebudget_connections_open", &[("listener", "otlp_http")]);
    let idle: Vec<TcpStream> = (0..24).map(|_| TcpStream::connect(http).unwrap()).collect();
    let m = tracebudget_tests::wait_for(&mut server, Duration::from_secs(5), |m| open(m) == Some(24.0));
    assert_eq!(open(&m), Some(24.0));
    let mut over = TcpStream::connect(http).unwrap();
    assert_eq!(read_to_close(&mut over), "");
    drop(idle);
    let m = tracebudget_tests::wait_for(&mut server, Duration::from_secs(5), |m| open(m) == Some(0.0));
    assert_eq!(open(&m), Some(0.0));
    let ok = post(http, "/v1/traces", JSON, None, br#"{"resourceSpans":[]}"#);
    assert_eq!(ok.status, 200, "{}", ok.body);

    let m = server.metrics();
    let refused = |listener| {
        m.get(
            "tracebudget_connections_refused_total",
            &[("listener", listener), ("reason", "max_connections")],
        )
    };
    assert_eq!(refused("otlp_http"), Some(1.0));
    assert_eq!(refused("zipkin"), Some(0.0));
    assert_eq!(refused("otlp_grpc"), Some(0.0));
    assert_eq!(refused("api"), Some(0.0));
    let timeouts = |listener| {
        m.get(
            "tracebudget_http_timeouts_total",
            &[("listener", listener), ("reason", "body")],
        )
    };
    assert_eq!(timeouts("otlp_http"), Some(15.0));
    assert_eq!(timeouts("zipkin"), Some(5.0));
    assert_eq!(timeouts("otlp_grpc"), Some(0.0));
    assert_eq!(requests(&m, "otlp_http", "timeout"), 15.0);
    assert_eq!(requests(&m, "zipkin", "timeout"), 5.0);
    assert_eq!(requests(&m, "otlp_http", "too_large"), 1.0);
    assert_eq!(requests(&m, "otlp_http", "in_flight_limit"), 1.0);
    assert_eq!(requests(&m, "otlp_http", "ok"), 6.0);
    assert_eq!(in_flight(&m), Some(0.0));
    server.assert_running();
}

/// One answer, read up to the end of its body (`content-length`), on a connection that may stay
/// open after it; a reset after the answer is no error.
fn read_answer(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => return text,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return text,
            Err(e) => panic!("no whole answer: {e} (got {text:?})"),
        }
    }
}
