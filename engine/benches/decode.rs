//! OTLP protobuf decode throughput, in spans/s (criterion's `elem/s`):
//!
//! - `projection`: `engine::decode::otlp::decode_protobuf` into `slis::Span`s, keeping the attributes a
//!   typical journey set reads (the hot path of the ingest pipeline);
//! - `generated`: `<ExportTraceServiceRequest as prost::Message>::decode` into opentelemetry-proto's
//!   full types, which is where a decoder that builds them would start.
//!
//! One request: 512 spans, 64 traces of 8 spans over 4 services (one `ResourceSpans` each), about ten
//! attributes per span of mixed types, as an instrumented HTTP service with a database sends them.
//!
//! `cargo bench -p tracebudget-engine --bench decode`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::decode::{AttrKeys, otlp};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use slis::journey::{AttrMatcher, Journey, Journeys, RootMatcher};

const TRACES: usize = 64;
const SERVICES: [&str; 4] = ["frontend", "checkout", "payments", "inventory"];
/// Each trace: two spans per service, (service index, name, kind, parent index in the trace).
const SHAPE: [(usize, &str, span::SpanKind, Option<usize>); 8] = [
    (0, "POST /api/checkout", span::SpanKind::Server, None),
    (0, "POST", span::SpanKind::Client, Some(0)),
    (1, "POST /checkout", span::SpanKind::Server, Some(1)),
    (1, "SELECT shop.carts", span::SpanKind::Client, Some(2)),
    (2, "POST /v1/charges", span::SpanKind::Server, Some(2)),
    (2, "redis GET", span::SpanKind::Client, Some(4)),
    (3, "POST /reserve", span::SpanKind::Server, Some(2)),
    (3, "UPDATE shop.stock", span::SpanKind::Client, Some(6)),
];
const BASE_NS: u64 = 1_760_000_000_000_000_000;

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

fn attributes(trace: usize, name: &str, kind: span::SpanKind, status: i64) -> Vec<KeyValue> {
    let mut attrs = vec![kv("thread.id", Value::IntValue(17 + trace as i64 % 8))];
    if let Some((method, route)) = name.split_once(' ').filter(|(m, _)| m.starts_with("POST")) {
        attrs.extend([
            kv("http.request.method", s(method)),
            kv("http.route", s(route)),
            kv("http.response.status_code", Value::IntValue(status)),
            kv("url.scheme", s("https")),
            kv("url.path", s(&format!("{route}/{}", 10_000 + trace))),
            kv("server.address", s("shop.example.com")),
            kv("server.port", Value::IntValue(443)),
            kv("network.protocol.version", s("1.1")),
            kv(
                "user_agent.original",
                s("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"),
            ),
        ]);
    } else if kind == span::SpanKind::Client && name == "POST" {
        attrs.extend([
            kv("http.request.method", s("POST")),
            kv("http.response.status_code", Value::IntValue(status)),
            kv("url.full", s("http://checkout:8080/checkout")),
            kv("server.address", s("checkout")),
            kv("server.port", Value::IntValue(8080)),
            kv("network.peer.address", s("10.0.3.17")),
            kv("http.request.body.size", Value::IntValue(1_834)),
            kv("http.response.body.size", Value::IntValue(412)),
            kv("retry", Value::BoolValue(false)),
        ]);
    } else {
        attrs.extend([
            kv(
                "db.system",
                s(if name.starts_with("redis") {
                    "redis"
                } else {
                    "postgresql"
                }),
            ),
            kv("db.namespace", s("shop")),
            kv("db.operation.name", s(name.split(' ').next().unwrap_or(name))),
            kv("db.query.text", s(&format!("{name} WHERE id = $1"))),
            kv("server.address", s("db.internal")),
            kv("server.port", Value::IntValue(5432)),
            kv("db.response.returned_rows", Value::IntValue(trace as i64 % 5)),
            kv("db.client.connection.pool.utilization", Value::DoubleValue(0.375)),
            kv("cache.hit", Value::BoolValue(trace.is_multiple_of(3))),
        ]);
    }
    attrs
}

fn request() -> ExportTraceServiceRequest {
    let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    for t in 0..TRACES {
        let trace_id =
            (0x5b8e_fff7_9803_8103_d269_b633_813f_c60c_u128 ^ (t as u128 * 0x9e37_79b9_7f4a_7c15)).to_be_bytes();
        let span_id = |i: usize| (0x00f0_67aa_0ba9_02b7_u64 + (t * 8 + i) as u64 * 0x2545_f491_4f6c_dd1d).to_be_bytes();
        let error = t % 13 == 0;
        for (i, (service, name, kind, parent)) in SHAPE.into_iter().enumerate() {
            let start = BASE_NS + (t as u64) * 50_000_000 + i as u64 * 1_000_000;
            let status = if error && i == 0 { 500 } else { 200 };
            per_service[service].push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id(i).to_vec(),
                trace_state: if t % 4 == 0 {
                    "ot=th:c".to_owned()
                } else {
                    String::new()
                },
                parent_span_id: parent.map(|p| span_id(p).to_vec()).unwrap_or_default(),
                flags: 0x301,
                name: name.to_owned(),
                kind: kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 40_000_000 - i as u64 * 4_000_000,
                attributes: attributes(t, name, kind, status),
                status: Some(Status {
                    message: if error && i == 0 {
                        "upstream failed".to_owned()
                    } else {
                        String::new()
                    },
                    code: if error && i == 0 { 2 } else { 0 },
                }),
                events: if error && i == 0 {
                    vec![span::Event {
                        time_unix_nano: start + 1_000,
                        name: "exception".to_owned(),
                        attributes: vec![kv("exception.type", s("TimeoutError"))],
                        dropped_attributes_count: 0,
                    }]
                } else {
                    Vec::new()
                },
                ..Default::default()
            });
        }
    }
    let resource_spans = per_service
        .into_iter()
        .enumerate()
        .map(|(i, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s(SERVICES[i])),
                    kv("service.version", s("2.14.1")),
                    kv("service.instance.id", s(&format!("{}-7d9f8c6b5-x{i}q2z", SERVICES[i]))),
                    kv("deployment.environment.name", s("production")),
                    kv("host.name", s(&format!("node-{i}.eu-west-1.compute.internal"))),
                    kv("telemetry.sdk.language", s("python")),
                    kv("telemetry.sdk.name", s("opentelemetry")),
                    kv("telemetry.sdk.version", s("1.38.0")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry.instrumentation.flask".to_owned(),
                    version: "0.59b0".to_owned(),
                    ..Default::default()
                }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.11.0".to_owned(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// A typical journey set: a route and method root matcher and a status-code error rule.
fn journeys() -> Journeys {
    Journeys(vec![Journey {
        name: "checkout".to_owned(),
        root: RootMatcher {
            service: Some("frontend".to_owned()),
            http_route: Some("/api/checkout".to_owned()),
            http_method: Some("POST".to_owned()),
            ..Default::default()
        },
        status_error: true,
        error_rules: vec![AttrMatcher::parse("http.response.status_code >= 500").expect("a valid matcher")],
        expected_services: SERVICES.iter().map(|s| (*s).into()).collect(),
        labels: Vec::new(),
    }])
}

fn bench(c: &mut Criterion) {
    let request = request();
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let body = Bytes::from(request.encode_to_vec());
    let keys = AttrKeys::from_journeys(&journeys());
    let decoded = otlp::decode_protobuf(body.clone(), &keys).expect("the request decodes");
    assert_eq!(decoded.spans.len(), spans);
    println!("request: {spans} spans, {} bytes of protobuf", body.len());

    let mut group = c.benchmark_group("otlp_protobuf_decode");
    group.throughput(Throughput::Elements(spans as u64));
    group.bench_function("projection", |b| {
        b.iter(|| otlp::decode_protobuf(black_box(body.clone()), &keys).expect("decodes"))
    });
    group.bench_function("generated", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(body.clone())).expect("decodes"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
