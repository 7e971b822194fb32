//! One evaluation cycle at scale. Run with `cargo bench -p tracebudget-alerting --bench cycle`.
//!
//! 10,000 SLOs (1,000 journeys × 10 SLOs, a day of traffic each, the Workbook policy, one route
//! grouping by SLO), on one core:
//! - `evaluate_10k`: every SLO's status from its windows (what holds the pipeline lock);
//! - `cycle_10k_quiet`: lifecycle, mute and dispatch with nothing firing;
//! - `cycle_10k_1000_start_firing`: 1,000 SLOs start firing at once → 1,000 alerts, 1,000 groups,
//!   1,000 notifications built (group_wait 0);
//! - `cycle_10k_1000_firing`: the next cycle, the same 1,000 still firing (nothing to send);
//! - `evaluate_and_route_10k_1000_firing`: both halves together, the whole cycle's CPU.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use slis::Timestamp;
use slis::eval::{SloStatus, evaluate};
use slis::policy::Policy;
use slis::slo::{Period, SliKind, Slo};
use slis::window::{JourneyWindows, RootSample, Sli};
use tracebudget_alerting::alerter::{Alerter, Extras};
use tracebudget_alerting::config::{Alerting, AlertingConfig, PolicyAlerting, Route};
use tracebudget_alerting::mute::InhibitRule;

const JOURNEYS: usize = 1_000;
const PER_JOURNEY: usize = 10;
const FIRING: usize = 1_000;
const DAY: Duration = Duration::from_secs(86_400);
const NOW: Timestamp = Timestamp::from_unix_secs(1_767_225_600);

fn model() -> Alerting {
    let slos = (0..JOURNEYS * PER_JOURNEY)
        .map(|i| Slo {
            name: format!("slo-{i:05}"),
            journey: i / PER_JOURNEY,
            sli: SliKind::Error,
            objective: 0.999,
            period: Period::Rolling(30 * DAY),
            policy: 0,
            labels: vec![("team".into(), format!("team-{}", i % 37))],
        })
        .collect::<Vec<_>>();
    let n = slos.len();
    Alerting {
        settings: AlertingConfig::default(),
        slos,
        policies: vec![Policy::workbook()],
        receivers: vec![],
        route: Some(Route {
            receiver: "default".into(),
            matchers: vec![],
            group_by: vec!["slo".into()],
            group_wait: Duration::ZERO,
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3_600),
            continue_matching: false,
            routes: vec![],
        }),
        reports: vec![],
        policy_alerting: vec![PolicyAlerting::default()],
        inhibit: vec![InhibitRule::page_mutes_ticket()],
        descriptions: vec![None; n],
    }
}

/// A day of traffic, one root a minute, per journey (10 slots: one per SLO).
fn windows() -> Vec<JourneyWindows> {
    (0..JOURNEYS)
        .map(|_| {
            let mut w = JourneyWindows::new(vec![Sli::Error; PER_JOURNEY], 31 * DAY);
            for m in 0..24 * 60 {
                let at = NOW - DAY + Duration::from_secs(60 * m);
                let _ = w.record_root(&RootSample {
                    at,
                    latency_nanos: 1_000_000,
                    error: false,
                    weight: 1,
                });
            }
            w.advance(NOW);
            w
        })
        .collect()
}

fn evaluate_all(model: &Alerting, windows: &[JourneyWindows]) -> Vec<SloStatus> {
    model
        .slos
        .iter()
        .enumerate()
        .map(|(i, slo)| evaluate(slo, &model.policies[0], &windows[slo.journey], i % PER_JOURNEY, NOW))
        .collect()
}

/// The statuses with the first page rule firing for `FIRING` SLOs spread over the list.
fn with_firing(mut statuses: Vec<SloStatus>) -> Vec<SloStatus> {
    let every = statuses.len() / FIRING;
    for s in statuses.iter_mut().step_by(every) {
        s.rules[0].firing = true;
    }
    statuses
}

fn no_extras(_: usize, _: Timestamp) -> Extras {
    Extras::default()
}

fn bench(c: &mut Criterion) {
    let model = Arc::new(model());
    let windows = windows();
    let quiet = evaluate_all(&model, &windows);
    let firing = with_firing(quiet.clone());
    let journeys: Vec<String> = (0..JOURNEYS).map(|j| format!("journey-{j}")).collect();
    let fresh = || Alerter::new(model.clone(), journeys.clone(), "http://tb".into());

    let mut g = c.benchmark_group("alerting");
    g.sample_size(20);
    g.bench_function("evaluate_10k", |b| b.iter(|| black_box(evaluate_all(&model, &windows))));
    let mut alerter = fresh();
    g.bench_function("cycle_10k_quiet", |b| {
        b.iter(|| black_box(alerter.cycle(NOW, &quiet, &mut no_extras).notifications.len()))
    });
    g.bench_function("cycle_10k_1000_start_firing", |b| {
        b.iter_batched(
            fresh,
            |mut a| {
                let cycle = a.cycle(NOW, &firing, &mut no_extras);
                assert_eq!(cycle.notifications.len(), FIRING);
                black_box(cycle)
            },
            BatchSize::LargeInput,
        )
    });
    let mut steady = fresh();
    let _ = steady.cycle(NOW, &firing, &mut no_extras);
    let later = NOW + Duration::from_secs(15);
    g.bench_function("cycle_10k_1000_firing", |b| {
        b.iter(|| {
            let cycle = steady.cycle(later, &firing, &mut no_extras);
            assert!(cycle.notifications.is_empty());
            black_box(cycle)
        })
    });
    g.bench_function("evaluate_and_route_10k_1000_firing", |b| {
        b.iter(|| {
            let statuses = with_firing(evaluate_all(&model, &windows));
            black_box(steady.cycle(later, &statuses, &mut no_extras))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
