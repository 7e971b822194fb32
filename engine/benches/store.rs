//! Persistence figures (issue #4), on SQLite and on the real PostgreSQL:
//!
//! - flush: 1,000 journeys × 3 SLOs, each with new samples in its current minute, drained and
//!   written in one transaction (1,000 count blocks, each the journey's current hour of minute
//!   buckets, and 1,000 latency rows per flush);
//! - cold start: 1,000 journeys × 3 SLOs with 30 days of history (200 roots a minute each,
//!   coarsened as in memory: 1,101 count buckets in ~38 blocks and 297 histogram rows per journey)
//!   restored into a new pipeline, best and median of five;
//! - merged read (issue 7, PostgreSQL): the same 30 days stored by one and then two *other*
//!   instances, read into empty windows as every instance does each `eval_interval` when
//!   several share the database, best and median of five.
//!
//! Run with `cargo bench -p tracebudget-engine --bench store` (PostgreSQL from
//! `TRACEBUDGET_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432/test; `.ci/run` starts it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use slis::Timestamp;
use slis::journey::{Journey, Journeys, RootMatcher};
use slis::slo::{Period, SliKind, Slo};
use slis::window::{Changes, JourneyWindows, RootSample, Sli};
use tracebudget_engine::config::IngestConfig;
use tracebudget_engine::metrics::EngineMetrics;
use tracebudget_engine::pipeline::Pipeline;
use tracebudget_engine::store::testing::Databases;
use tracebudget_engine::store::{Db, Pending, SliStore, block};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const JOURNEYS: usize = 1_000;
const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

fn config() -> (Journeys, Vec<Slo>) {
    let journeys = Journeys(
        (0..JOURNEYS)
            .map(|i| Journey {
                name: format!("journey-{i:04}"),
                root: RootMatcher {
                    service: Some(format!("service-{i}")),
                    ..Default::default()
                },
                status_error: true,
                error_rules: vec![],
                expected_services: vec![],
                labels: vec![],
            })
            .collect(),
    );
    let slos = (0..JOURNEYS)
        .flat_map(|i| {
            let slo = |kind: &str, sli| Slo {
                name: format!("journey-{i:04}-{kind}"),
                journey: i,
                sli,
                objective: 0.999,
                period: Period::Rolling(30 * DAY),
                policy: 0,
                labels: vec![],
            };
            [
                slo(
                    "latency",
                    SliKind::Latency {
                        threshold: Duration::from_millis(300),
                    },
                ),
                slo("errors", SliKind::Error),
                slo("complete", SliKind::Completeness),
            ]
        })
        .collect();
    (journeys, slos)
}

fn pipeline() -> Pipeline {
    let (journeys, slos) = config();
    Pipeline::new(
        journeys,
        &slos,
        &IngestConfig::default(),
        Arc::new(EngineMetrics::default()),
    )
}

fn window_slis() -> Vec<Sli> {
    vec![
        Sli::Latency {
            threshold_nanos: 300_000_000,
        },
        Sli::Error,
        Sli::Completeness,
        Sli::Error, // the journey's roots
    ]
}

fn sample(rng: &mut StdRng, at: Timestamp) -> RootSample {
    let z: f64 = rng.random::<f64>() + rng.random::<f64>() + rng.random::<f64>() - 1.5;
    RootSample {
        at,
        latency_nanos: ((11.5 + 0.8 * z).exp() * 1_000.0) as u64,
        error: rng.random_bool(0.001),
        weight: 1,
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn flush_bench(url: &str, now: Timestamp) {
    let db = Db::open(url).await.unwrap();
    db.migrate().await.unwrap();
    let p = pipeline();
    let names: Vec<String> = p.journeys().0.iter().map(|j| j.name.clone()).collect();
    let series: Vec<Vec<String>> = (0..JOURNEYS).map(|j| p.series(j).to_vec()).collect();
    let store = SliStore::new(&db, "");
    let mut windows: Vec<JourneyWindows> = (0..JOURNEYS)
        .map(|_| JourneyWindows::new(window_slis(), 31 * DAY))
        .collect();
    let mut rng = StdRng::seed_from_u64(4);
    let mut times = Vec::new();
    let mut merges = Vec::new();
    let mut rows = 0;
    for round in 0..40u32 {
        // Five seconds of traffic per flush interval, then a flush.
        let at = now + Duration::from_secs(5 * u64::from(round));
        let mut drained = Vec::with_capacity(JOURNEYS);
        for (j, w) in windows.iter_mut().enumerate() {
            for _ in 0..16 {
                let _ = w.record_root(&sample(&mut rng, at));
            }
            let _ = w.record_completeness(at, true, 1);
            let mut changes = Changes::default();
            block::take_blocks(w, &mut changes);
            drained.push((j, changes));
        }
        let started = Instant::now();
        let mut pending = Pending::default();
        pending.merge(drained, &names, &series);
        rows = pending.len();
        merges.push(started.elapsed());
        store.write(&pending, None).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    merges.sort();
    println!(
        "store/flush {:<8}: {JOURNEYS} journeys × 3 SLOs ({rows} rows): median {:.1} ms (encoding {:.1} ms), \
         p90 {:.1} ms, max {:.1} ms",
        backend(url),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&merges, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );
    db.close().await;
}

fn backend(url: &str) -> &'static str {
    if url.starts_with("sqlite") {
        "SQLite"
    } else {
        "Postgres"
    }
}

/// One journey's 30 days at 200 roots a minute, advanced every minute as serve does.
fn thirty_days(now: Timestamp) -> Changes {
    let mut w = JourneyWindows::new(window_slis(), 31 * DAY);
    let mut rng = StdRng::seed_from_u64(30);
    let start = now - 30 * DAY;
    let minutes = (30 * DAY).as_secs() / 60;
    for m in 0..minutes {
        let t = start + MINUTE * m as u32;
        for k in 0..200u32 {
            let _ = w.record_root(&sample(&mut rng, t + Duration::from_millis(u64::from(k) * 300)));
        }
        let _ = w.record_completeness(t, rng.random_bool(0.999), 200);
        w.advance(t + MINUTE);
    }
    w.advance(now);
    let mut changes = Changes::default();
    w.take_changes(&mut changes);
    changes
}

async fn cold_start_bench(url: &str, now: Timestamp, history: &Changes) {
    let db = Db::open(url).await.unwrap();
    db.migrate().await.unwrap();
    let p = pipeline();
    let names: Vec<String> = p.journeys().0.iter().map(|j| j.name.clone()).collect();
    let series: Vec<Vec<String>> = (0..JOURNEYS).map(|j| p.series(j).to_vec()).collect();
    let store = SliStore::new(&db, "");
    let written = Instant::now();
    for chunk in (0..JOURNEYS).collect::<Vec<_>>().chunks(100) {
        let mut pending = Pending::default();
        pending.merge(chunk.iter().map(|&j| (j, history.clone())).collect(), &names, &series);
        store.write(&pending, None).await.unwrap();
    }
    let written = written.elapsed();
    db.close().await;

    let mut times = Vec::new();
    let mut restored = Default::default();
    for _ in 0..5 {
        let started = Instant::now();
        let db = Db::open(url).await.unwrap();
        let mut p = pipeline();
        restored = SliStore::new(&db, "").restore(&mut p, now).await.unwrap();
        times.push(started.elapsed());
        db.close().await;
    }
    times.sort();
    println!(
        "store/cold_start {:<8}: {JOURNEYS} journeys × 3 SLOs, 30 days ({} count buckets in {} blocks + {} latency rows, \
         written in {:.1} s): best {:.2} s, median {:.2} s (last: counts {:.2} s, histograms {:.2} s)",
        backend(url),
        restored.count_rows,
        restored.count_blocks,
        restored.latency_rows,
        written.as_secs_f64(),
        times[0].as_secs_f64(),
        times[2].as_secs_f64(),
        restored.counts_elapsed.as_secs_f64(),
        restored.latency_elapsed.as_secs_f64()
    );
}

async fn others_bench(url: &str, now: Timestamp, history: &Changes) {
    let db = Db::open(url).await.unwrap();
    db.migrate().await.unwrap();
    let p = pipeline();
    let names: Vec<String> = p.journeys().0.iter().map(|j| j.name.clone()).collect();
    let series: Vec<Vec<String>> = (0..JOURNEYS).map(|j| p.series(j).to_vec()).collect();
    let me = SliStore::new(&db, "a");
    assert!(me.other_instances().await.unwrap().is_empty());
    for other in ["b", "c"] {
        let store = SliStore::new(&db, other);
        for chunk in (0..JOURNEYS).collect::<Vec<_>>().chunks(100) {
            let mut pending = Pending::default();
            pending.merge(chunk.iter().map(|&j| (j, history.clone())).collect(), &names, &series);
            store.write(&pending, None).await.unwrap();
        }
        let mut times = Vec::new();
        let (mut blocks, mut latency_rows, mut bytes) = (0, 0, 0);
        for _ in 0..5 {
            let started = Instant::now();
            let instances = me.other_instances().await.unwrap();
            let (blank, names, series) = p.others_layout();
            (blocks, latency_rows, bytes) = (0, 0, 0);
            for instance in &instances {
                let mut windows = blank.clone();
                let read = me
                    .read_instance(instance, &mut windows, &names, series.clone(), now)
                    .await
                    .unwrap();
                blocks += read.count_blocks;
                latency_rows += read.latency_rows;
                bytes += windows.iter().map(JourneyWindows::memory_bytes).sum::<usize>();
            }
            times.push(started.elapsed());
        }
        times.sort();
        let others = if other == "b" { 1 } else { 2 };
        println!(
            "store/merged_read {:<8}: {JOURNEYS} journeys × 3 SLOs, 30 days, {others} other instance(s) \
             ({blocks} count blocks + {latency_rows} latency rows, {} MiB of windows): best {:.2} s, median {:.2} s",
            backend(url),
            bytes >> 20,
            times[0].as_secs_f64(),
            times[2].as_secs_f64(),
        );
    }
    let started = Instant::now();
    let probes = 100;
    for _ in 0..probes {
        assert_eq!(me.other_instances().await.unwrap(), ["b", "c"]);
    }
    println!(
        "store/merged_read {:<8}: listing the other instances (the probe): {:.2} ms",
        backend(url),
        started.elapsed().as_secs_f64() * 1e3 / f64::from(probes)
    );
    db.close().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let now = Timestamp::from_unix_secs(1_780_000_000);
        // TRACEBUDGET_BENCH_BACKENDS=sqlite (or postgres) measures one backend only.
        let only = std::env::var("TRACEBUDGET_BENCH_BACKENDS").unwrap_or_default();
        let wanted = |url: &String| only.is_empty() || url.starts_with(only.as_str());
        let dbs = Databases::new("bench_store").await;
        for url in dbs.urls().iter().filter(|u| wanted(u)) {
            flush_bench(url, now).await;
        }
        let started = Instant::now();
        let history = thirty_days(now);
        println!(
            "store/cold_start: one journey's 30 days simulated in {:.1} s: {} count and {} latency buckets, \
             {} KiB of histograms",
            started.elapsed().as_secs_f64(),
            history.counts.len(),
            history.latencies.len(),
            history.latencies.iter().map(|b| b.encoded.len()).sum::<usize>() / 1024
        );
        dbs.drop().await;
        let dbs = Databases::new("bench_cold").await;
        for url in dbs.urls().iter().filter(|u| wanted(u)) {
            cold_start_bench(url, now, &history).await;
        }
        dbs.drop().await;
        let dbs = Databases::new("bench_others").await;
        for url in dbs.urls().iter().filter(|u| u.starts_with("postgres") && wanted(u)) {
            others_bench(url, now, &history).await;
        }
        dbs.drop().await;
    });
}
