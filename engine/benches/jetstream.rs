//! JetStream → SLIs (issue #7): one instance, and two instances sharing the stream.
//!
//! Synthetic OTLP requests (traces of 8 spans over 4 services, 512 spans a request) are
//! published into a private nats-server's stream, split by partition as `tracebudget publish`
//! does. Then each scenario drains the whole stream with fresh databases: every instance is a
//! process of its own (this bench binary run again as a child) holding the real consumer
//! (`tracebudget_engine::jetstream::Consumer`: durable pull consumers, decode, pipeline, positions), the
//! real flusher and its acks. The time runs from the moment every instance is ready until
//! every partition's committed position is the stream's last message.
//!
//! Scenarios: one instance on SQLite (against the OTLP/HTTP figure), one instance on
//! PostgreSQL, two instances on PostgreSQL (partitions 0, 1 and 2, 3; rows per instance as in
//! a cluster). Each runs [`RUNS`] times; the best and the median are printed, with the CPU the
//! instances used.
//!
//! Needs nats-server (`TRACEBUDGET_NATS_SERVER`, else /usr/sbin/nats-server) and PostgreSQL
//! (`TRACEBUDGET_TEST_POSTGRES`, default the machine's). Run with
//! `cargo bench -p tracebudget-engine --bench jetstream`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracebudget_engine::config::IngestConfig;
use tracebudget_engine::decode::AttrKeys;
use tracebudget_engine::jetstream::{Consumer, JetStreamConfig, JetStreamMetrics, split};
use tracebudget_engine::metrics::EngineMetrics;
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::store::testing::Databases;
use tracebudget_engine::store::{Db, Flusher, SliStore, StorageMetrics};
use tracebudget_synth::{Generator, Shape, ShapeDefaults};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUESTS: usize = 4_000;
const SPANS_PER_REQUEST: usize = 512;
const PARTITIONS: u32 = 4;
const RUNS: usize = 3;
/// loadgen → `serve` over OTLP/HTTP protobuf, end to end, on this machine (docs/performance.md).
const OTLP_HTTP_SPANS_PER_SEC: f64 = 160_000.0;
/// Set in a child: what it consumes (see [`Instance`]).
const CHILD: &str = "TRACEBUDGET_BENCH_JETSTREAM_INSTANCE";

#[path = "common/shop.rs"]
mod shop;
use shop::{journeys, slos};

/// One instance: a process consuming `partitions` into `db` until each holds its `last` message.
struct Instance {
    name: String,
    db: String,
    nats: String,
    consumer_prefix: String,
    last: BTreeMap<u32, u64>,
}

impl Instance {
    /// `name db nats consumer_prefix p:seq,p:seq` (no field holds a space).
    fn encode(&self) -> String {
        let last: Vec<String> = self.last.iter().map(|(p, s)| format!("{p}:{s}")).collect();
        format!(
            "{} {} {} {} {}",
            self.name,
            self.db,
            self.nats,
            self.consumer_prefix,
            last.join(",")
        )
    }

    fn decode(s: &str) -> Instance {
        let f: Vec<&str> = s.split(' ').collect();
        let last = f[4]
            .split(',')
            .map(|ps| {
                let (p, s) = ps.split_once(':').expect("p:seq");
                (p.parse().unwrap(), s.parse().unwrap())
            })
            .collect();
        Instance {
            name: f[0].into(),
            db: f[1].into(),
            nats: f[2].into(),
            consumer_prefix: f[3].into(),
            last,
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match std::env::var(CHILD) {
        Ok(spec) => runtime.block_on(child(Instance::decode(&spec))),
        Err(_) => runtime.block_on(run()),
    }
}

fn config(nats: &str, consumer_prefix: &str) -> JetStreamConfig {
    let defaults = JetStreamConfig::default();
    JetStreamConfig {
        url: nats.to_owned(),
        partitions: PARTITIONS,
        consumer_prefix: consumer_prefix.to_owned(),
        // To see what a larger pull does to the server's slow-consumer limit.
        batch_bytes: std::env::var("TRACEBUDGET_BENCH_BATCH_BYTES")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(defaults.batch_bytes),
        ..defaults
    }
}

/// A child: set up, say `ready`, wait for `go`, consume until done, say `done <cpu seconds>`.
async fn child(instance: Instance) {
    // `RUST_LOG=info` shows what an instance does (on stderr).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let config = config(&instance.nats, &instance.consumer_prefix);
    let db = Db::open(&instance.db).await.unwrap();
    // Traces close (and are judged) within the run, as `serve` closes them: idle for 1 s, a
    // tick every 100 ms.
    let ingest = IngestConfig {
        trace_idle: Duration::from_secs(1).into(),
        ..Default::default()
    };
    let mut p = Pipeline::new(journeys(), &slos(), &ingest, Arc::new(EngineMetrics::default()));
    p.enable_stream(&config.stream, PARTITIONS);
    let pipeline = Arc::new(Mutex::new(p));
    let store = SliStore::new(&db, instance.name.clone());
    let storage_metrics = Arc::new(StorageMetrics::default());
    let flusher = Flusher::new(store.clone(), pipeline.clone(), storage_metrics.clone());
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
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();

    let stop = CancellationToken::new();
    let flush_stop = CancellationToken::new();
    let flushing = tokio::spawn(flusher.run(Duration::from_millis(500), flush_stop.clone()));
    let partitions: BTreeSet<u32> = instance.last.keys().copied().collect();
    let (_owned, owned) = tokio::sync::watch::channel(partitions);
    let consuming = tokio::spawn(consumer.run(owned, stop.clone()));
    let ticking = tokio::spawn({
        let (stop, pipeline) = (stop.clone(), pipeline.clone());
        async move {
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            while stop.run_until_cancelled(interval.tick()).await.is_some() {
                pipeline
                    .lock()
                    .unwrap()
                    .tick(tracebudget_engine::receiver::wall_clock());
            }
        }
    });
    loop {
        committed.changed().await.unwrap();
        let c = committed.borrow().clone();
        if instance
            .last
            .iter()
            .all(|(p, seq)| c.get(p).is_some_and(|got| got >= seq))
        {
            break;
        }
    }
    println!("done {:.3}", cpu_seconds());
    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    storage_metrics.register(&mut registry);
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    // What the database was asked to do: flushes, their time, and the open-trace snapshots.
    for line in text.lines().filter(|l| {
        l.starts_with("storage_flushes_total")
            || l.starts_with("storage_flush_duration_seconds_sum")
            || l.starts_with("storage_snapshot_bytes_total")
    }) {
        eprintln!("    {}: {line}", instance.name);
    }
    stop.cancel();
    let _ = consuming.await;
    let _ = ticking.await;
    flush_stop.cancel();
    let _ = flushing.await;
}

/// User + system CPU of this process so far.
fn cpu_seconds() -> f64 {
    process_cpu_seconds("self")
}

/// User + system CPU of process `pid` (or `self`) so far.
fn process_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): state is the 3rd field overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Busy and total CPU seconds of the whole machine so far (all cores, from /proc/stat).
fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = cpu.iter().sum();
    // idle and iowait
    let idle = cpu.get(3).unwrap_or(&0.0) + cpu.get(4).unwrap_or(&0.0);
    ((total - idle) / 100.0, total / 100.0)
}

struct Running {
    process: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Running {
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "a bench instance died (see its stderr)");
        line.trim().to_owned()
    }
}

/// What one run took.
#[derive(Clone, Copy)]
struct Run {
    spans_per_sec: f64,
    elapsed: Duration,
    /// CPU seconds of the instances, of nats-server, and of the whole machine.
    instances_cpu: f64,
    nats_cpu: f64,
    machine_cpu: f64,
    /// CPU seconds the machine had in the run (cores × wall time).
    machine_capacity: f64,
}

/// Runs `instances` together; returns the wall time and the CPU seconds they used.
fn drain(instances: &[Instance]) -> (Duration, f64) {
    let exe = std::env::current_exe().unwrap();
    let mut running: Vec<Running> = instances
        .iter()
        .map(|i| {
            let mut process = Command::new(&exe)
                .env(CHILD, i.encode())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdin = process.stdin.take().unwrap();
            let stdout = BufReader::new(process.stdout.take().unwrap());
            Running { process, stdin, stdout }
        })
        .collect();
    for r in &mut running {
        assert_eq!(r.line(), "ready");
    }
    let started = Instant::now();
    for r in &mut running {
        r.stdin.write_all(b"go\n").unwrap();
        r.stdin.flush().unwrap();
    }
    let mut cpu = 0.0;
    let mut elapsed = Duration::ZERO;
    // Instances finish in any order; the run ends with the last.
    for r in &mut running {
        let done = r.line();
        elapsed = elapsed.max(started.elapsed());
        cpu += done
            .strip_prefix("done ")
            .and_then(|s| s.parse::<f64>().ok())
            .expect("done <cpu>");
    }
    for mut r in running {
        r.process.wait().unwrap();
    }
    (elapsed, cpu)
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
    let log = std::fs::File::create(dir.join("nats.log")).unwrap();
    let server = Command::new(&nats)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("nats"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {nats}: {e} (bash .ci/setup-nats.sh installs it)"));
    let nats_pid = server.id().to_string();
    let mut server = server;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let nats_url = format!("nats://127.0.0.1:{port}");
    let config = config(&nats_url, "bench");

    // Publish: as `tracebudget publish` would, acks awaited.
    let client = tracebudget_engine::jetstream::consumer::connect(&config.url)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    tracebudget_engine::jetstream::consumer::ensure_stream(&js, &config)
        .await
        .unwrap();
    let shape = Shape::from_journeys(&journeys(), &ShapeDefaults::default()).unwrap();
    let mut generator = Generator::new(shape, 42).unwrap();
    let now = tracebudget_engine::receiver::wall_clock();
    let (mut spans, mut messages) = (0u64, 0u64);
    let started = Instant::now();
    let mut acks = Vec::new();
    // Per partition, the sequence of its last message.
    let mut last = BTreeMap::<u32, u64>::new();
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
    println!("published {spans} spans in {messages} messages ({PARTITIONS} partitions) in {publish:.2?}");

    let halves: [BTreeMap<u32, u64>; 2] = [
        last.iter()
            .filter(|(p, _)| **p < PARTITIONS / 2)
            .map(|(p, s)| (*p, *s))
            .collect(),
        last.iter()
            .filter(|(p, _)| **p >= PARTITIONS / 2)
            .map(|(p, s)| (*p, *s))
            .collect(),
    ];
    let mut rates = BTreeMap::new();
    for (scenario, backend, sets) in [
        ("one instance, SQLite", 0, vec![last.clone()]),
        ("one instance, PostgreSQL", 1, vec![last.clone()]),
        ("two instances, PostgreSQL", 1, halves.to_vec()),
    ] {
        let mut runs = Vec::new();
        for run in 0..RUNS {
            let dbs = Databases::new("bench_js").await;
            let url = dbs.urls()[backend].clone();
            let db = Db::open(&url).await.unwrap();
            db.migrate().await.unwrap();
            drop(db);
            let instances: Vec<Instance> = sets
                .iter()
                .enumerate()
                .map(|(i, last)| Instance {
                    name: if sets.len() == 1 {
                        String::new()
                    } else {
                        format!("i{i}")
                    },
                    db: url.clone(),
                    nats: nats_url.clone(),
                    consumer_prefix: format!("bench{backend}{}r{run}i{i}", sets.len()),
                    last: last.clone(),
                })
                .collect();
            let (nats_before, machine_before) = (process_cpu_seconds(&nats_pid), machine_cpu_seconds());
            let (elapsed, instances_cpu) = tokio::task::block_in_place(|| drain(&instances));
            let (nats_after, machine_after) = (process_cpu_seconds(&nats_pid), machine_cpu_seconds());
            dbs.drop().await;
            let r = Run {
                spans_per_sec: spans as f64 / elapsed.as_secs_f64(),
                elapsed,
                instances_cpu,
                nats_cpu: nats_after - nats_before,
                machine_cpu: machine_after.0 - machine_before.0,
                machine_capacity: machine_after.1 - machine_before.1,
            };
            eprintln!(
                "  {scenario}, run {run}: {elapsed:.2?}; CPU s: instances {:.2}, nats-server {:.2}, machine {:.2} of {:.2}",
                r.instances_cpu, r.nats_cpu, r.machine_cpu, r.machine_capacity
            );
            runs.push(r);
        }
        runs.sort_by(|a, b| b.spans_per_sec.total_cmp(&a.spans_per_sec));
        let (best, median) = (runs[0], runs[runs.len() / 2]);
        println!(
            "jetstream -> SLIs, {scenario:<26} best {:>9.0} spans/s ({:.2?}), median {:>9.0} spans/s; median run's CPU: instances {:.2} s, nats-server {:.2} s, whole machine {:.2} s",
            best.spans_per_sec,
            best.elapsed,
            median.spans_per_sec,
            median.instances_cpu,
            median.nats_cpu,
            median.machine_cpu
        );
        println!(
            "  {scenario}: {:.0} spans per CPU second of the instances; the whole machine busy {:.0} %",
            spans as f64 / median.instances_cpu,
            100.0 * median.machine_cpu / median.machine_capacity
        );
        rates.insert(scenario, median);
    }
    let _ = server.kill();
    let _ = server.wait();
    let log = std::fs::read_to_string(dir.join("nats.log")).unwrap_or_default();
    println!(
        "nats-server: {} slow-consumer disconnects",
        log.matches("Slow Consumer").count()
    );
    let _ = std::fs::remove_dir_all(&dir);

    let one = rates["one instance, SQLite"].spans_per_sec;
    println!("otlp/http -> SLIs (loadgen -> serve, end to end):        {OTLP_HTTP_SPANS_PER_SEC:.0} spans/s");
    println!(
        "ratio jetstream (one instance, SQLite) / otlp-http: {:.2}",
        one / OTLP_HTTP_SPANS_PER_SEC
    );
    let (single, two) = (rates["one instance, PostgreSQL"], rates["two instances, PostgreSQL"]);
    println!(
        "ratio two instances / one instance (PostgreSQL, medians): {:.2}",
        two.spans_per_sec / single.spans_per_sec
    );
    // One instance with its nats-server and PostgreSQL already keeps part of the machine busy;
    // more instances can at best fill the rest with the same work per span.
    println!(
        "ceiling of that ratio on this machine (all cores busy at one instance's CPU per span): {:.2}",
        single.machine_capacity / single.machine_cpu
    );
}
