//! The in-process ingest pipeline (issue #3): OTLP protobuf bytes → projection decode → trace
//! assembly → SLI recording, on one core. Traces of 8 spans over 4 services, ~10 attributes per
//! span, 512 spans per request. Beside it, the rate of merely decoding the same bytes into
//! opentelemetry-proto's full generated types. Run with `cargo bench -p tracebudget-engine --bench pipeline`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use slis::Timestamp;
use tracebudget_engine::config::IngestConfig;
use tracebudget_engine::decode::{AttrKeys, otlp};
use tracebudget_engine::metrics::EngineMetrics;
use tracebudget_engine::pipeline::{Pipeline, Source};
use tracebudget_synth::{Generator, Shape, ShapeDefaults};

/// The allocator the `tracebudget` binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUESTS: usize = 400;
const SPANS_PER_REQUEST: usize = 512;
/// Virtual time between requests, and the trace idle time: traces close ~20 requests later.
const STEP: Duration = Duration::from_millis(5);
const IDLE: Duration = Duration::from_millis(100);

#[path = "common/shop.rs"]
mod shop;
use shop::{journeys, slos};

fn bodies(start: Timestamp) -> (Vec<Bytes>, u64) {
    let shape = Shape::from_journeys(&journeys(), &ShapeDefaults::default()).expect("shape");
    let mut generator = Generator::new(shape, 42).expect("generator");
    let mut spans = 0;
    let bodies = (0..REQUESTS)
        .map(|i| {
            let batch = generator.batch(start + STEP * i as u32, SPANS_PER_REQUEST, u64::MAX);
            spans += batch.spans;
            Bytes::from(batch.request.encode_to_vec())
        })
        .collect();
    (bodies, spans)
}

fn pipeline() -> Pipeline {
    let ingest = IngestConfig {
        trace_idle: IDLE.into(),
        ..Default::default()
    };
    Pipeline::new(journeys(), &slos(), &ingest, Arc::new(EngineMetrics::default()))
}

/// Decode, ingest and close every request at its virtual time; trace health included (every
/// attribute value hashed into the cardinality sketches, volume, lag, and the analysis of each
/// closed trace), as the receivers do.
fn run(bodies: &[Bytes], keys: &AttrKeys, start: Timestamp, p: &mut Pipeline) {
    for (i, body) in bodies.iter().enumerate() {
        let now = start + STEP * i as u32;
        let decoded = otlp::decode_protobuf(body.clone(), keys).expect("valid request");
        black_box(p.ingest(Source::OtlpHttp, decoded.spans, now).expect("no backpressure"));
        p.ingest_tags(&decoded.tags, now);
        p.tick(now);
    }
    p.close_all();
}

fn bench(c: &mut Criterion) {
    let start = Timestamp::from_unix_secs(1_780_000_000);
    let (bodies, spans) = bodies(start);
    let bytes: usize = bodies.iter().map(Bytes::len).sum();
    println!(
        "pipeline: {REQUESTS} requests, {spans} spans, {:.1} MiB of protobuf ({} bytes/span)",
        bytes as f64 / (1 << 20) as f64,
        bytes as u64 / spans
    );
    let keys = AttrKeys::from_journeys(&journeys());

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(spans));
    group.sample_size(20);
    group.bench_function("decode_assemble_record", |b| {
        b.iter_batched(
            pipeline,
            |mut p| run(&bodies, &keys, start, &mut p),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode_full_types_only", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(ExportTraceServiceRequest::decode(body.clone()).expect("valid"));
            }
        })
    });
    group.finish();

    // Plain figures, one pass each after warm-up, so the closing note can quote them.
    let rate = |f: &mut dyn FnMut()| {
        f();
        let t = Instant::now();
        for _ in 0..5 {
            f();
        }
        (5 * spans) as f64 / t.elapsed().as_secs_f64()
    };
    let mut p = pipeline();
    let full = rate(&mut || {
        p = pipeline();
        run(&bodies, &keys, start, &mut p);
    });
    // The same without attribute cardinality (`[trace_health] cardinality = false`).
    let mut plain_keys = keys.clone();
    plain_keys.watch_tags = false;
    let without_cardinality = rate(&mut || {
        let mut p = pipeline();
        run(&bodies, &plain_keys, start, &mut p);
    });
    let decode_only = rate(&mut || {
        for body in &bodies {
            black_box(ExportTraceServiceRequest::decode(body.clone()).expect("valid"));
        }
    });
    println!(
        "pipeline: decode → assemble → record: {:.2} M spans/s on one core",
        full / 1e6
    );
    println!(
        "pipeline: the same without attribute cardinality: {:.2} M spans/s",
        without_cardinality / 1e6
    );
    println!(
        "pipeline: decode into opentelemetry-proto's full types only: {:.2} M spans/s",
        decode_only / 1e6
    );
    let closed: u64 = p
        .slo_totals()
        .filter(|(n, ..)| n.ends_with('2'))
        .map(|(.., c)| c.total)
        .sum();
    println!("pipeline: last pass judged {closed} checkout traces for completeness");
}

criterion_group!(benches, bench);
criterion_main!(benches);
