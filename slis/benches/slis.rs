//! Benchmarks of the `slis` hot paths. Run with `cargo bench -p slis`.
//!
//! - `window/record_root`: recording throughput for one journey with 3 SLOs (elements/s).
//! - `window/31_days`: memory of one journey after 31 days of steady traffic at 200, 2,000 and
//!   20,000 roots a minute (printed; the 20,000 run draws per-bin counts, see `Simulation`),
//!   then the cost of 30-day queries on those stores.
//! - `evaluate/10k_slos`: one evaluation of 10,000 SLOs (1,000 journeys × 10 SLOs, 31 days of
//!   history each): every window of the default policy plus the period, budget and exhaustion.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::{SmallRng, StdRng};
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

/// How a 31-day run generates its traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simulation {
    /// Every root drawn one by one, weight 1, with a completeness verdict each.
    Direct,
    /// Every minute, the number of roots in each HDR histogram bin is drawn (Poisson with the
    /// lognormal's probability of the bin times the rate) and recorded as one weighted sample per
    /// occupied bin. Statistically the same histograms as `Direct` (the minute's total varies by
    /// ±√rate), at a cost per occupied bin instead of per root.
    Binned,
}

/// One HDR bin of the latency histogram: its lowest value in µs and the lognormal's probability
/// of landing in it.
struct Bin {
    micros: u64,
    p: f64,
}

/// The bins the lognormal latency of [`latency_nanos`] reaches with a probability above 1e-13
/// (together, the bins left out get far less than one of the 893 M roots of a 31-day run at
/// 20,000 a minute).
fn lognormal_bins() -> Vec<Bin> {
    // The store's histogram bounds: 1 µs … 1 h, 2 significant figures.
    let h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds");
    // P(latency_nanos / 1000 < micros) = P(Z < ln(1000 µs / 50 ms)), as a pair of tails.
    let z = |micros: u64| (micros as f64 * 1e3 / 50e6).ln();
    let mut bins = Vec::new();
    let mut v = 1;
    while v <= 3_600_000_000 {
        let next = h.next_non_equivalent(v);
        let (a, b) = (z(v), z(next));
        // The difference of the tail nearer each end keeps its relative precision in the tails.
        let p = if a >= 0.0 {
            upper_tail(a) - upper_tail(b)
        } else if b <= 0.0 {
            upper_tail(-b) - upper_tail(-a)
        } else {
            1.0 - upper_tail(b) - upper_tail(-a)
        };
        if p > 1e-13 {
            bins.push(Bin { micros: v, p });
        }
        v = next;
    }
    bins
}

/// P(Z > z) for a standard normal Z, z ≥ 0, with a relative error below 1.2e-7 (the Chebyshev
/// fit of `erfc` from Numerical Recipes).
fn upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    0.5 * t * poly.exp()
}

/// A Poisson draw: by inversion for small means (exact), by the normal approximation above 30.
fn poisson(rng: &mut impl Rng, mean: f64, exp_neg_mean: f64) -> u64 {
    if mean > 30.0 {
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        return (mean + mean.sqrt() * z).round().max(0.0) as u64;
    }
    let u: f64 = rng.random();
    let (mut k, mut term, mut cdf) = (0u64, exp_neg_mean, exp_neg_mean);
    while u > cdf && term > 0.0 {
        k += 1;
        term *= mean / k as f64;
        cdf += term;
    }
    k
}

/// One journey after 31 days of steady traffic at `per_minute` roots a minute, advanced every
/// minute. Returns the store and the clock at the end.
fn simulate_31_days(per_minute: u32, simulation: Simulation, seed: u64) -> (JourneyWindows, Timestamp) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut w = journey();
    let minutes = 31 * 24 * 60;
    let began = Instant::now();
    let bins: Vec<(u64, f64, f64)> = lognormal_bins()
        .into_iter()
        .map(|b| {
            let mean = b.p * f64::from(per_minute);
            (b.micros, mean, (-mean).exp())
        })
        .collect();
    let (mut records, mut roots) = (0u64, 0u64);
    for m in 0..minutes {
        let minute = START + MINUTE * m;
        match simulation {
            Simulation::Direct => {
                let step = MINUTE / per_minute;
                for k in 0..per_minute {
                    let s = RootSample {
                        at: minute + step * k,
                        latency_nanos: latency_nanos(&mut rng),
                        error: rng.random_bool(0.001),
                        weight: 1,
                    };
                    let _ = w.record_root(&s);
                    // The trace closes later; its verdict lands in the same bucket.
                    let _ = w.record_completeness(s.at, rng.random_bool(0.995), 1);
                }
                records += u64::from(per_minute);
                roots += u64::from(per_minute);
            }
            Simulation::Binned => {
                let step = MINUTE / bins.len() as u32;
                for (k, &(micros, mean, exp_neg_mean)) in bins.iter().enumerate() {
                    let n = poisson(&mut rng, mean, exp_neg_mean);
                    if n == 0 {
                        continue;
                    }
                    let at = minute + step * k as u32;
                    let errors = poisson(&mut rng, n as f64 * 0.001, (-(n as f64) * 0.001).exp()).min(n);
                    for (weight, error) in [(n - errors, false), (errors, true)] {
                        if weight > 0 {
                            let s = RootSample {
                                at,
                                latency_nanos: micros * 1_000,
                                error,
                                weight: weight as u32,
                            };
                            let _ = w.record_root(&s);
                            records += 1;
                        }
                    }
                    let incomplete = poisson(&mut rng, n as f64 * 0.005, (-(n as f64) * 0.005).exp()).min(n);
                    let _ = w.record_completeness(at, true, (n - incomplete) as u32);
                    let _ = w.record_completeness(at, false, incomplete as u32);
                    roots += n;
                }
            }
        }
        w.advance(minute + MINUTE);
    }
    let kib = w.memory_bytes() as f64 / 1024.0;
    println!(
        "window/31_days: {per_minute} roots/min ({simulation:?}): {roots} roots in {records} record_root calls, \
         {:.2?}; memory per journey (3 SLOs): {kib:.1} KiB ({} the 1 MiB target)",
        began.elapsed(),
        if kib <= 1024.0 { "within" } else { "OVER" },
    );
    (w, START + MINUTE * minutes)
}

fn thirty_one_days(c: &mut Criterion) {
    let month = Window::Last(30 * DAY);
    let runs = [
        (200, Simulation::Direct),
        (2_000, Simulation::Direct),
        // Checks `Binned` against `Direct` at the same rate.
        (2_000, Simulation::Binned),
        (20_000, Simulation::Binned),
    ];
    let mut stores = Vec::new();
    for (seed, (per_minute, simulation)) in runs.into_iter().enumerate() {
        let (w, now) = simulate_31_days(per_minute, simulation, seed as u64 + 2);
        let began = Instant::now();
        let p = w.percentiles(month, now);
        println!(
            "window/31_days: {per_minute} roots/min ({simulation:?}): one 30-day percentiles query took {:.2?}: {p:?}; \
             30-day error counts {:?}",
            began.elapsed(),
            w.counts(1, month, now)
        );
        println!("window/31_days: {per_minute} roots/min ({simulation:?}): {w:?}");
        if per_minute != 2_000 {
            stores.push((per_minute, w, now));
        }
    }

    let mut g = c.benchmark_group("window/31_days");
    g.sample_size(20);
    for (per_minute, w, now) in &stores {
        let now = *now;
        g.bench_function(format!("percentiles_30d/{per_minute}_per_min"), |b| {
            b.iter(|| black_box(w.percentiles(black_box(month), now)))
        });
    }
    let (_, w, now) = &stores[0];
    let now = *now;
    g.bench_function("percentiles_1h/200_per_min", |b| {
        b.iter(|| black_box(w.percentiles(Window::Last(DAY / 24), now)))
    });
    g.bench_function("counts_30d/200_per_min", |b| {
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
