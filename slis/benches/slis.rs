//! Benchmarks of the `slis` hot paths. Run with `cargo bench -p slis`.
//!
//! - `window/record_root`: recording throughput for one journey with 3 SLOs (elements/s).
//! - `window/31_days`: memory of one journey after 31 days of steady traffic (printed), then the
//!   cost of 30-day queries on that store.
//! - `evaluate/10k_slos`: one evaluation of 10,000 SLOs (1,000 journeys × 10 SLOs, 31 days of
//!   history each): every window of the default policy plus the period, budget and exhaustion.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use slis::Timestamp;
use slis::window::{JourneyWindows, RootSample, Sli, Window};

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);
/// 2026-01-01T00:00:00Z
const START: Timestamp = Timestamp::from_unix_secs(1_767_225_600);

/// A journey with the three kinds of SLO: latency ≤ 300 ms, error, completeness.
fn journey() -> JourneyWindows {
    let slis = vec![
        Sli::Latency {
            threshold_nanos: 300_000_000,
        },
        Sli::Error,
        Sli::Completeness,
    ];
    JourneyWindows::new(slis, 32 * DAY)
}

/// Root latency in nanoseconds: lognormal with a median of 50 ms (σ = 1, so p99 ≈ 0.5 s).
fn latency_nanos(rng: &mut impl Rng) -> u64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (50e6 * z.exp()) as u64
}

/// `per_minute` samples of the minute starting at `minute`, evenly spaced, in time order.
fn steady_minute(rng: &mut impl Rng, minute: Timestamp, per_minute: u32) -> Vec<RootSample> {
    let step = MINUTE / per_minute;
    (0..per_minute)
        .map(|k| RootSample {
            at: minute + step * k,
            latency_nanos: latency_nanos(rng),
            error: rng.random_bool(0.001),
            weight: 1,
        })
        .collect()
}

fn record_root(c: &mut Criterion) {
    // 1M roots over 100 minutes (10k a minute): each minute opens one bucket and closes one.
    let mut rng = StdRng::seed_from_u64(1);
    let samples: Vec<RootSample> = (0..100)
        .flat_map(|m| steady_minute(&mut rng, START + MINUTE * m, 10_000))
        .collect();
    let mut g = c.benchmark_group("window");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.sample_size(20);
    g.bench_function("record_root", |b| {
        b.iter_batched(
            journey,
            |mut w| {
                for s in &samples {
                    let _ = black_box(w.record_root(black_box(s)));
                }
                w
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn thirty_one_days(c: &mut Criterion) {
    const PER_MINUTE: u32 = 200;
    let mut rng = StdRng::seed_from_u64(2);
    let mut w = journey();
    let minutes = 31 * 24 * 60;
    let began = Instant::now();
    let mut now = START;
    for m in 0..minutes {
        let minute = START + MINUTE * m;
        for s in steady_minute(&mut rng, minute, PER_MINUTE) {
            let _ = w.record_root(&s);
            // The trace closes later; its verdict lands in the same bucket.
            let _ = w.record_completeness(s.at, rng.random_bool(0.995), 1);
        }
        now = minute + MINUTE;
        w.advance(now);
    }
    let elapsed = began.elapsed();
    println!(
        "window/31_days: {} roots + as many completeness verdicts in {:.2?} ({:.1} M samples/s including advance)",
        u64::from(PER_MINUTE) * minutes as u64,
        elapsed,
        (2 * u64::from(PER_MINUTE) * minutes as u64) as f64 / elapsed.as_secs_f64() / 1e6,
    );
    println!(
        "window/31_days: memory per journey (3 SLOs, {PER_MINUTE} roots/min): {:.1} KiB",
        w.memory_bytes() as f64 / 1024.0
    );

    let month = Window::Last(30 * DAY);
    let began = Instant::now();
    let p = w.percentiles(month, now);
    println!(
        "window/31_days: one 30-day percentiles query took {:.2?}: {p:?}",
        began.elapsed()
    );
    println!("window/31_days: 30-day error counts {:?}", w.counts(1, month, now));

    let mut g = c.benchmark_group("window/31_days");
    g.sample_size(20);
    g.bench_function("percentiles_30d", |b| {
        b.iter(|| black_box(w.percentiles(black_box(month), now)))
    });
    g.bench_function("percentiles_1h", |b| {
        b.iter(|| black_box(w.percentiles(Window::Last(DAY / 24), now)))
    });
    g.bench_function("counts_30d", |b| {
        b.iter(|| black_box(w.counts(black_box(1), black_box(month), now)))
    });
    g.finish();
}

/// 10,000 SLOs: 1,000 journeys with 10 SLOs each (latency, error and completeness mixed, rolling
/// 7d/28d/30d and calendar-month periods), each journey holding 31 days of history (a completeness
/// verdict every minute, a root sample every hour, so every minute and hour bucket exists).
fn evaluate(c: &mut Criterion) {
    use slis::eval::evaluate;
    use slis::policy::Policy;
    use slis::slo::{Period, SliKind, Slo};

    const JOURNEYS: usize = 1_000;
    const PER_JOURNEY: usize = 10;
    let policy = Policy::workbook();
    let periods = [
        Period::Rolling(7 * DAY),
        Period::Rolling(28 * DAY),
        Period::Rolling(30 * DAY),
        Period::CalendarMonth,
    ];
    let kinds = [
        SliKind::Latency {
            threshold: Duration::from_millis(300),
        },
        SliKind::Error,
        SliKind::Completeness,
    ];
    let slos: Vec<Slo> = (0..JOURNEYS * PER_JOURNEY)
        .map(|i| Slo {
            name: format!("slo-{i}"),
            journey: i / PER_JOURNEY,
            sli: kinds[i % kinds.len()],
            objective: 0.999,
            period: periods[i % periods.len()],
            policy: 0,
            labels: vec![],
        })
        .collect();

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let end = START + 31 * DAY;
    let windows: Vec<JourneyWindows> = (0..JOURNEYS)
        .map(|j| {
            let slis = slos[j * PER_JOURNEY..(j + 1) * PER_JOURNEY]
                .iter()
                .map(|s| s.sli.window_sli())
                .collect();
            let mut w = JourneyWindows::new(slis, 32 * DAY);
            let mut t = START;
            let mut minute = 0u64;
            while t < end {
                let _ = w.record_completeness(t, rng.random::<f64>() > 0.001, 1);
                if minute.is_multiple_of(60) {
                    let error = rng.random::<f64>() < 0.001;
                    let _ = w.record_root(&RootSample {
                        at: t,
                        latency_nanos: latency_nanos(&mut rng),
                        error,
                        weight: 1,
                    });
                    w.advance(t);
                }
                t = t + MINUTE;
                minute += 1;
            }
            w.advance(end);
            w
        })
        .collect();
    println!(
        "evaluate: built 1,000 journeys × 31 days of history in {:.1?}",
        started.elapsed()
    );

    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(slos.len() as u64));
    group.bench_function("10k_slos", |b| {
        b.iter(|| {
            let mut firing = 0usize;
            for (i, slo) in slos.iter().enumerate() {
                let status = evaluate(slo, &policy, &windows[slo.journey], i % PER_JOURNEY, end);
                firing += status.rules.iter().filter(|r| r.firing).count();
            }
            black_box(firing)
        })
    });
    group.finish();
    let t = Instant::now();
    for (i, slo) in slos.iter().enumerate() {
        black_box(evaluate(slo, &policy, &windows[slo.journey], i % PER_JOURNEY, end));
    }
    println!(
        "evaluate: one pass over 10,000 SLOs (7 windows each) took {:.2?}",
        t.elapsed()
    );
}

criterion_group!(benches, record_root, thirty_one_days, evaluate);
criterion_main!(benches);
