//! OTLP protobuf decode throughput, in spans/s (criterion's `elem/s`):
//!
//! - `projection`: `tracebudget_engine::decode::otlp::decode_protobuf` into `slis::Span`s, keeping the attributes a
//!   typical journey set reads (the hot path of the ingest pipeline);
//! - `generated`: `<ExportTraceServiceRequest as prost::Message>::decode` into opentelemetry-proto's
//!   full types, which is where a decoder that builds them would start.
//!
//! One request of 512 spans from `tracebudget_synth`: traces of 8 spans over 4 services (one
//! `ResourceSpans` per service), about ten attributes per span of mixed types.
//!
//! `cargo bench -p tracebudget-engine --bench decode`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use slis::Timestamp;
use slis::journey::{AttrMatcher, Journey, Journeys, RootMatcher};
use tracebudget_engine::decode::{AttrKeys, otlp};
use tracebudget_synth::{Generator, Shape, ShapeDefaults};

const SERVICES: [&str; 4] = ["frontend", "checkout", "payments", "inventory"];

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
    let shape = Shape::from_journeys(&journeys(), &ShapeDefaults::default()).expect("shape");
    let mut generator = Generator::new(shape, 42).expect("generator");
    let batch = generator.batch(Timestamp::from_unix_secs(1_760_000_000), 512, u64::MAX);
    let spans = batch.spans as usize;
    let body = Bytes::from(batch.request.encode_to_vec());
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
