//! JetStream → SLIs on one instance (issue #7): synthetic OTLP requests (traces of 8 spans over
//! 4 services, 512 spans a request) are published into a private nats-server's stream, split by
//! partition as `tracebudget publish` does; then the real consumer (`engine::jetstream::Consumer`:
//! durable pull consumers, decode, pipeline, positions) with the real flusher on a SQLite file
//! and its acks drains them, and the spans per second from its start until every partition's
//! committed position is the stream's last message are printed beside the OTLP/HTTP figure
//! (loadgen → serve, end to end) and their ratio.
//!
//! Needs nats-server (`TRACEBUDGET_NATS_SERVER`, else /usr/sbin/nats-server). Run with
//! `cargo bench -p tracebudget-engine --bench jetstream`.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::config::IngestConfig;
use engine::decode::AttrKeys;
use engine::jetstream::{Consumer, JetStreamConfig, JetStreamMetrics, split};
use engine::metrics::EngineMetrics;
use engine::pipeline::Pipeline;
use engine::store::{Db, Flusher, SliStore, StorageMetrics};
use engine::synth::{Generator, Shape, ShapeDefaults};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUESTS: usize = 1_200;
const SPANS_PER_REQUEST: usize = 512;
const PARTITIONS: u32 = 4;
/// loadgen → `serve` over OTLP/HTTP protobuf, end to end, on this machine (README, issue #3).
const OTLP_HTTP_SPANS_PER_SEC: f64 = 160_000.0;

#[path = "common/shop.rs"]
mod shop;
use shop::{journeys, slos};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let dir = std::env::temp_dir().join(format!("tracebudget-bench-js-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nats = std::env::var("TRACEBUDGET_NATS_SERVER").unwrap_or_else(|_| "/usr/sbin/nats-server".into());
    let mut server = Command::new(&nats)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("nats"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {nats}: {e} (bash .ci/setup-nats.sh installs it)"));
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let config = JetStreamConfig {
        url: format!("nats://127.0.0.1:{port}"),
        partitions: PARTITIONS,
        ..Default::default()
    };

    // Publish: as `tracebudget publish` would, acks awaited.
    let client = engine::jetstream::consumer::connect(&config.url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    engine::jetstream::consumer::ensure_stream(&js, &config).await.unwrap();
    let shape = Shape::from_journeys(&journeys(), &ShapeDefaults::default()).unwrap();
    let mut generator = Generator::new(shape, 42).unwrap();
    let now = engine::receiver::wall_clock();
    let (mut spans, mut messages) = (0u64, 0u64);
    let started = Instant::now();
    let mut acks = Vec::new();
    // Per partition, the sequence of its last message.
    let mut last = std::collections::BTreeMap::<u32, u64>::new();
    for i in 0..REQUESTS {
        let batch = generator.batch(
            now - Duration::from_millis((REQUESTS - i) as u64),
            SPANS_PER_REQUEST,
            u64::MAX,
        );
        spans += batch.spans;
        for part in split::split(batch.request, PARTITIONS) {
            messages += 1;
            let ack = js
                .publish(config.subject(part.partition), part.payload.into())
                .await
                .unwrap();
            acks.push((part.partition, ack));
        }
        if acks.len() > 256 || i == REQUESTS - 1 {
            for (p, a) in acks.drain(..) {
                let seq = a.await.unwrap().sequence;
                let last = last.entry(p).or_insert(0);
                *last = (*last).max(seq);
            }
        }
    }
    let publish = started.elapsed();

    // Consume with the real flusher on SQLite.
    let db = Db::open(&format!("sqlite://{}", dir.join("tracebudget.db").display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let ingest = IngestConfig::default();
    let mut p = Pipeline::new(journeys(), &slos(), &ingest, Arc::new(EngineMetrics::default()));
    p.enable_stream(&config.stream, PARTITIONS);
    let pipeline = Arc::new(Mutex::new(p));
    let store = SliStore::new(&db, "");
    let flusher = Flusher::new(store.clone(), pipeline.clone(), Arc::new(StorageMetrics::default()));
    let mut committed = flusher.committed();
    let consumer = Consumer {
        config: config.clone(),
        pipeline: pipeline.clone(),
        store,
        keys: AttrKeys::from_journeys(&journeys()),
        engine_metrics: Arc::new(EngineMetrics::default()),
        metrics: Arc::new(JetStreamMetrics::default()),
        committed: flusher.committed(),
        flush: flusher.handle(),
    };
    let stop = CancellationToken::new();
    let flush_stop = CancellationToken::new();
    let started = Instant::now();
    let flushing = tokio::spawn(flusher.run(Duration::from_millis(500), flush_stop.clone()));
    let (_owned, partitions) = tokio::sync::watch::channel((0..PARTITIONS).collect::<BTreeSet<u32>>());
    let consuming = tokio::spawn(consumer.run(partitions, stop.clone()));
    // Done when a flush has committed every partition's last message.
    loop {
        committed.changed().await.unwrap();
        let c = committed.borrow().clone();
        if last.iter().all(|(p, seq)| c.get(p).is_some_and(|got| got >= seq)) {
            break;
        }
    }
    let elapsed = started.elapsed();
    stop.cancel();
    let _ = consuming.await;
    flush_stop.cancel();
    let _ = flushing.await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let rate = spans as f64 / elapsed.as_secs_f64();
    println!("published {spans} spans in {messages} messages ({PARTITIONS} partitions) in {publish:.2?}");
    println!("jetstream -> SLIs (one instance, committed and acked): {rate:.0} spans/s ({elapsed:.2?})");
    println!("otlp/http -> SLIs (loadgen -> serve, end to end):      {OTLP_HTTP_SPANS_PER_SEC:.0} spans/s");
    println!("ratio: {:.2}", rate / OTLP_HTTP_SPANS_PER_SEC);
}
