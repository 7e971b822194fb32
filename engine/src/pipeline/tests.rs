use super::*;
use crate::metrics::ResultLabels;
use slis::journey::{AttrMatcher, Journey, RootMatcher};
use slis::slo::{Period, SliKind};
use slis::{AttrValue, SpanId, StatusCode, TraceId};

pub(crate) const T0: i64 = 1_780_000_000; // seconds

pub(crate) fn journeys() -> Journeys {
    Journeys(vec![Journey {
        name: "checkout".into(),
        root: RootMatcher {
            service: Some("frontend".into()),
            ..Default::default()
        },
        status_error: true,
        error_rules: vec![AttrMatcher::parse("http.response.status_code >= 500").unwrap()],
        expected_services: vec!["frontend".into(), "payment".into()],
        labels: vec![],
    }])
}

pub(crate) fn slos() -> Vec<Slo> {
    let slo = |name: &str, sli| Slo {
        name: name.into(),
        journey: 0,
        sli,
        objective: 0.99,
        period: Period::Rolling(Duration::from_secs(7 * 86_400)),
        policy: 0,
        labels: vec![],
    };
    vec![
        slo("error", SliKind::Error),
        slo(
            "latency",
            SliKind::Latency {
                threshold: Duration::from_millis(200),
            },
        ),
        slo("complete", SliKind::Completeness),
    ]
}

pub(crate) fn pipeline(max_buffered_spans: usize) -> (Pipeline, Arc<EngineMetrics>) {
    let metrics = Arc::new(EngineMetrics::default());
    let ingest = IngestConfig {
        trace_idle: Duration::from_secs(30).into(),
        max_buffered_spans,
        ..Default::default()
    };
    (Pipeline::new(journeys(), &slos(), &ingest, metrics.clone()), metrics)
}

/// A span of trace `t`, id `id`, ending `end_ms` after T0 and lasting `ms`.
pub(crate) fn span(t: u8, id: u8, parent: Option<u8>, service: &str, end_ms: i64, ms: i64) -> Span {
    let end = Timestamp::from_unix_millis(T0 * 1_000 + end_ms);
    Span {
        trace_id: TraceId([t; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        service: service.into(),
        name: "op".into(),
        kind: SpanKind::Server,
        start: end - Duration::from_millis(ms as u64),
        end,
        status: StatusCode::Unset,
        attributes: vec![],
        weight: 1,
    }
}

pub(crate) fn now(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(T0 + s)
}

#[test]
fn layout_gives_each_journey_its_slos_then_the_roots_slot() {
    use slis::sli::Rank;
    use slis::window::Sli;
    let layout = Layout::of(1, &slos());
    assert_eq!(layout.slots, [(0, 0), (0, 1), (0, 2)]);
    assert_eq!(
        layout.series[0],
        [
            "error (error)",
            "latency (latency ≤ 200ms)",
            "complete (completeness)",
            ROOTS_SERIES
        ]
    );
    assert_eq!(layout.per_journey[0].last(), Some(&Sli::Error));
    assert_eq!(
        layout.ranks(),
        [Rank::ErrorsThenSlowest, Rank::Slowest, Rank::ErrorsThenSlowest]
    );
    assert_eq!(layout.retention, Duration::from_secs(8 * 86_400));
}

fn totals(p: &Pipeline, _at: i64) -> Vec<(String, u64, u64)> {
    p.slo_totals().map(|(n, _, c)| (n.to_owned(), c.total, c.bad)).collect()
}

/// Issue 10: the trace-health SLIs are judged when a trace closes — fragmentation on its
/// roots and orphans, clock skew on parent/child times, export lag on its latest span — and
/// blame the boundary, the skewed service and the late span.
#[test]
fn trace_health_slos_judge_closed_traces_and_blame_who_broke_them() {
    let slo = |name: &str, sli| Slo {
        name: name.into(),
        journey: 0,
        sli,
        objective: 0.99,
        period: Period::Rolling(Duration::from_secs(7 * 86_400)),
        policy: 0,
        labels: vec![],
    };
    let slos = vec![
        slo("fragmentation", SliKind::Fragmentation),
        slo("skew", SliKind::ClockSkew),
        slo(
            "lag",
            SliKind::ExportLag {
                threshold: Duration::from_secs(2),
            },
        ),
    ];
    let ingest = IngestConfig {
        trace_idle: Duration::from_secs(30).into(),
        ..Default::default()
    };
    let mut p = Pipeline::new(journeys(), &slos, &ingest, Arc::new(EngineMetrics::default()));
    // Trace 1 healthy; 2: a second root in payment; 3: payment starts 50 ms before its
    // parent; 4: healthy but received 3 s after it ended. All end at T0 + 1 s.
    let mut batch = vec![
        span(1, 1, None, "frontend", 1_000, 100),
        span(1, 2, Some(1), "payment", 990, 50),
        span(2, 1, None, "frontend", 1_000, 100),
        span(2, 2, None, "payment", 990, 50),
        span(3, 1, None, "frontend", 1_000, 100),
        span(3, 2, Some(1), "payment", 990, 140),
    ];
    p.ingest(Source::OtlpHttp, std::mem::take(&mut batch), now(1)).unwrap();
    p.ingest(Source::OtlpHttp, vec![span(4, 1, None, "frontend", 1_000, 100)], now(4))
        .unwrap();
    p.tick(now(60));
    use crate::exemplars::BlameReason;
    use slis::window::Window;
    let w = Window::Last(Duration::from_secs(3_600));
    let got: Vec<(u64, u64)> = (0..3)
        .map(|slo| {
            let c = p.windows()[0].counts(p.slot(slo), w, now(60));
            (c.total, c.bad)
        })
        .collect();
    assert_eq!(got, [(4, 1), (4, 1), (4, 1)]);
    let blamed = |slo| {
        p.contributors(slo, now(0), 5)
            .into_iter()
            .map(|b| (b.service, b.operation, b.reason))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        blamed(0),
        [("payment".into(), "unknown → payment".into(), BlameReason::LostContext)]
    );
    assert_eq!(
        blamed(1),
        [(
            "payment".into(),
            "starts_before_parent (frontend → payment)".into(),
            BlameReason::ClockSkew
        )]
    );
    assert_eq!(blamed(2), [("frontend".into(), "op".into(), BlameReason::ExportLag)]);
    let h = p.health();
    assert_eq!((h.traces, h.fragmented, h.skewed), (4, 1, 1));
    assert_eq!(h.journeys()[0].traces, 4);
}

#[test]
fn roots_count_at_once_and_completeness_when_the_trace_closes() {
    let (mut p, m) = pipeline(1_000);
    let mut slow_error = span(1, 1, None, "frontend", 0, 300);
    slow_error
        .attributes
        .push(("http.response.status_code".into(), AttrValue::Int(503)));
    let batch = vec![
        slow_error, // trace 1: error, slow, complete
        span(1, 2, Some(1), "payment", 0, 100),
        span(2, 1, None, "frontend", 0, 50), // trace 2: fine, but payment never took part
        span(3, 1, None, "frontend", 0, 50), // trace 3: complete
        span(3, 2, Some(1), "payment", 0, 10),
        span(3, 3, Some(7), "payment", 0, 10), // … but an orphan: incomplete
        span(4, 1, None, "frontend", 0, 50),   // trace 4: two roots: incomplete
        span(4, 2, None, "payment", 0, 10),
    ];
    let got = p.ingest(Source::OtlpHttp, batch, now(1)).unwrap();
    assert_eq!(
        got,
        Ingested {
            accepted: 8,
            rejected: 0,
            first_rejection: None
        }
    );
    assert_eq!(p.root_counts().map(|c| (c.total, c.bad)).collect::<Vec<_>>(), [(4, 1)]);
    assert_eq!(
        totals(&p, 1),
        [
            ("error".into(), 4, 1),
            ("latency".into(), 4, 1),
            ("complete".into(), 0, 0)
        ]
    );
    p.tick(now(30));
    assert_eq!(totals(&p, 30)[2], ("complete".into(), 0, 0), "not idle for 30 s yet");
    p.tick(now(31));
    assert_eq!(totals(&p, 31)[2], ("complete".into(), 4, 3));
    let closed = |r| m.traces_closed.get_or_create(&ResultLabels { result: r }).get();
    assert_eq!((closed("complete"), closed("incomplete")), (1, 3));
    assert_eq!(p.buffered_spans(), 0);
}

#[test]
fn reconfigure_keeps_what_kept_slos_counted_and_open_traces_close_under_the_new_journeys() {
    let (mut p, _) = pipeline(1_000);
    let mut error = span(1, 1, None, "frontend", 0, 300);
    error.status = StatusCode::Error;
    // Trace 1 closes before the reload; trace 2 (missing payment) is still open across it.
    p.ingest(
        Source::OtlpHttp,
        vec![error, span(1, 2, Some(1), "payment", 0, 10)],
        now(1),
    )
    .unwrap();
    p.tick(now(40));
    p.ingest(
        Source::OtlpHttp,
        vec![span(2, 1, None, "frontend", 41_000, 50)],
        now(41),
    )
    .unwrap();
    assert_eq!(
        totals(&p, 41),
        [
            ("error".into(), 2, 1),
            ("latency".into(), 2, 1),
            ("complete".into(), 1, 0)
        ]
    );

    // The reload: a second journey before the first (indices move), "latency" gets another
    // threshold (a new series), "error" is dropped, "complete" is kept.
    let mut js = journeys();
    let mut search = js.0[0].clone();
    search.name = "search".into();
    search.root.service = Some("search".into());
    js.0.insert(0, search);
    let mut slos = slos();
    for s in &mut slos {
        s.journey = 1;
    }
    slos.remove(0);
    slos[0].sli = SliKind::Latency {
        threshold: Duration::from_millis(100),
    };
    slos.push(Slo {
        name: "search-errors".into(),
        journey: 0,
        sli: SliKind::Error,
        ..slos[1].clone()
    });
    let changed = p.reconfigure(js, &slos);
    assert_eq!(
        changed,
        Reconfigured {
            journeys_added: vec!["search".into()],
            journeys_removed: vec![],
            reslotted_journeys: vec!["checkout".into()],
            new_series: vec!["checkout/latency (latency ≤ 100ms)".into()],
            dropped_series: vec![
                "checkout/error (error)".into(),
                "checkout/latency (latency ≤ 200ms)".into()
            ],
        }
    );
    assert_eq!(
        totals(&p, 41),
        [
            ("latency".into(), 0, 0),
            ("complete".into(), 1, 0),
            ("search-errors".into(), 0, 0)
        ]
    );
    // The roots series moved with its journey.
    assert_eq!(
        p.root_counts().map(|c| (c.total, c.bad)).collect::<Vec<_>>(),
        [(0, 0), (2, 1)]
    );

    // Trace 2 closes under the new layout (incomplete: payment never came), new roots count
    // in the new slots.
    p.ingest(
        Source::OtlpHttp,
        vec![
            span(3, 1, None, "frontend", 42_000, 150),
            span(4, 1, None, "search", 42_000, 10),
        ],
        now(42),
    )
    .unwrap();
    p.tick(now(80));
    assert_eq!(
        totals(&p, 80),
        [
            ("latency".into(), 1, 1),
            ("complete".into(), 3, 2),
            ("search-errors".into(), 1, 0)
        ]
    );
    let drained = p.drain_changes();
    assert_eq!(drained.journeys.iter().map(|(j, _)| *j).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn clock_rules_reject_or_clamp_by_reason() {
    let (mut p, m) = pipeline(1_000);
    let mut missing = span(1, 1, None, "frontend", 0, 10);
    missing.start = Timestamp::EPOCH;
    let future = span(2, 1, None, "frontend", 6 * 60_000 + 2_000, 10); // 6 min ahead of now(1)
    let old = span(3, 1, None, "frontend", -2 * 3_600_000, 10);
    let mut backwards = span(4, 1, None, "frontend", 0, 10);
    std::mem::swap(&mut backwards.start, &mut backwards.end);
    let got = p
        .ingest(Source::Zipkin, vec![missing, future, old, backwards], now(1))
        .unwrap();
    assert_eq!((got.accepted, got.rejected), (1, 3));
    assert!(got.first_rejection.unwrap().contains("missing_timestamp"));
    for reason in ["missing_timestamp", "future", "too_old"] {
        let c = m
            .spans_rejected
            .get_or_create(&crate::metrics::RejectLabels {
                receiver: "zipkin",
                reason,
            })
            .get();
        assert_eq!(c, 1, "{reason}");
    }
    assert_eq!(
        m.spans_clamped
            .get_or_create(&ReasonLabels {
                reason: "negative_duration"
            })
            .get(),
        1
    );
    // The clamped root counts, with latency 0: good for the latency SLO.
    assert_eq!(totals(&p, 1)[1], ("latency".into(), 1, 0));
}

#[test]
fn duplicates_and_late_spans_never_recount() {
    let (mut p, m) = pipeline(1_000);
    let batch = vec![
        span(1, 1, None, "frontend", 0, 10),
        span(1, 2, Some(1), "payment", 0, 5),
    ];
    p.ingest(Source::OtlpGrpc, batch.clone(), now(1)).unwrap();
    p.ingest(Source::OtlpGrpc, batch.clone(), now(2)).unwrap(); // an exporter's retry
    assert_eq!(m.duplicate_spans.get(), 2);
    p.tick(now(40));
    p.ingest(Source::OtlpGrpc, vec![span(1, 3, Some(1), "payment", 0, 5)], now(41))
        .unwrap();
    // The whole trace again, after it closed (a retry, or a replay of the same ids): late,
    // and its root is not counted a second time.
    p.ingest(Source::OtlpGrpc, batch, now(42)).unwrap();
    p.tick(now(80));
    assert_eq!(m.late_spans.get(), 3);
    assert_eq!(
        totals(&p, 80),
        [
            ("error".into(), 1, 0),
            ("latency".into(), 1, 0),
            ("complete".into(), 1, 0)
        ]
    );
}

#[test]
fn a_late_root_of_a_rootless_closed_trace_counts_once() {
    let (mut p, m) = pipeline(1_000);
    p.ingest(Source::OtlpHttp, vec![span(1, 2, Some(1), "payment", 0, 5)], now(1))
        .unwrap();
    p.tick(now(31));
    p.ingest(Source::OtlpHttp, vec![span(1, 1, None, "frontend", 0, 10)], now(32))
        .unwrap();
    assert_eq!(m.late_spans.get(), 1);
    assert_eq!(totals(&p, 32)[0], ("error".into(), 1, 0));
    let closed = |r| m.traces_closed.get_or_create(&ResultLabels { result: r }).get();
    assert_eq!(closed("no_root"), 1);
}

#[test]
fn a_root_with_a_parent_outside_the_trace_is_recorded_at_close() {
    let (mut p, _) = pipeline(1_000);
    let entry = span(1, 1, Some(99), "frontend", 0, 300); // called by an uninstrumented proxy
    p.ingest(
        Source::OtlpHttp,
        vec![entry, span(1, 2, Some(1), "payment", 0, 10)],
        now(1),
    )
    .unwrap();
    assert_eq!(totals(&p, 1)[0], ("error".into(), 0, 0));
    p.tick(now(31));
    assert_eq!(
        totals(&p, 31),
        [
            ("error".into(), 1, 0),
            ("latency".into(), 1, 1),
            ("complete".into(), 1, 0)
        ]
    );
}

#[test]
fn backpressure_refuses_whole_batches_and_eviction_keeps_the_bound() {
    let (mut p, m) = pipeline(10);
    let flood: Vec<Span> = (1..=12).map(|t| span(t, 1, Some(9), "payment", 0, 5)).collect();
    let got = p.ingest(Source::OtlpHttp, flood, now(1)).unwrap();
    assert_eq!(got.accepted, 12);
    assert_eq!(m.traces_evicted.get(), 2);
    assert_eq!(p.buffered_spans(), 10);
    assert_eq!(
        p.ingest(Source::OtlpHttp, vec![span(50, 1, None, "frontend", 0, 5)], now(2)),
        Err(Backpressure)
    );
    let rejected = m.spans_rejected.get_or_create(&crate::metrics::RejectLabels {
        receiver: "otlp_http",
        reason: "backpressure",
    });
    assert_eq!(rejected.get(), 1);
    assert_eq!(
        totals(&p, 2)[0],
        ("error".into(), 0, 0),
        "nothing of a refused batch is recorded"
    );
}

#[test]
fn exemplars_on_arrival_and_contributors_when_traces_close() {
    use crate::exemplars::{Blame, BlameReason, ExemplarTrace};
    let (mut p, m) = pipeline(1_000);
    let named = |mut s: Span, name: &str, error: bool, weight: u32| {
        s.name = name.into();
        if error {
            s.status = StatusCode::Error;
        }
        s.weight = weight;
        s
    };
    let mut rule_error = named(span(4, 1, None, "frontend", 0, 100), "GET /checkout", false, 2);
    rule_error
        .attributes
        .push(("http.response.status_code".into(), AttrValue::Int(503)));
    let batch = vec![
        // Trace 1: slow, failed in the bank, under a failed payment.
        named(span(1, 1, None, "frontend", 0, 300), "GET /checkout", true, 1),
        named(span(1, 2, Some(1), "payment", 0, 250), "charge", true, 1),
        named(span(1, 3, Some(2), "bank", 0, 200), "auth", true, 1),
        named(span(1, 4, Some(2), "payment", 0, 5), "log", false, 1),
        // Trace 2 (weight 3): slow because of its own rendering.
        named(span(2, 1, None, "frontend", 0, 500), "GET /checkout", false, 3),
        named(span(2, 2, Some(1), "payment", 0, 100), "charge", false, 3),
        named(span(2, 3, Some(1), "frontend", 0, 350), "render", false, 3),
        // Trace 3: payment missing, and a span whose parent never came.
        named(span(3, 1, None, "frontend", 0, 50), "GET /checkout", false, 1),
        named(span(3, 2, Some(77), "catalog", 0, 5), "list", false, 1),
        // Trace 4 (weight 2): an error by the journey's rule, no span says it failed.
        rule_error,
        named(span(4, 2, Some(1), "payment", 0, 20), "charge", false, 2),
        // Trace 6: its root comes after the trace closed.
        named(span(6, 2, Some(1), "payment", 0, 5), "charge", false, 1),
    ];
    p.ingest(Source::OtlpHttp, batch, now(1)).unwrap();
    // An exporter's retry of trace 1's root: neither an exemplar nor blame twice.
    p.ingest(
        Source::OtlpHttp,
        vec![named(span(1, 1, None, "frontend", 0, 300), "GET /checkout", true, 1)],
        now(2),
    )
    .unwrap();

    let since = now(-3_600);
    let end = Timestamp::from_unix_secs(T0);
    let ex = |t: u8, ms: u64, error: bool, weight: u32| ExemplarTrace {
        trace_id: TraceId([t; 16]),
        start: end - Duration::from_millis(ms),
        duration: Duration::from_millis(ms),
        error,
        weight,
    };
    assert_eq!(p.exemplars(0, since, 5), [ex(1, 300, true, 1), ex(4, 100, true, 2)]);
    assert_eq!(p.exemplars(1, since, 5), [ex(2, 500, false, 3), ex(1, 300, true, 1)]);
    assert_eq!(p.exemplars(1, since, 1), [ex(2, 500, false, 3)]);
    assert!(p.exemplars(2, since, 5).is_empty(), "completeness is judged at close");
    assert!(p.contributors(0, since, 5).is_empty(), "blame needs the whole trace");

    p.tick(now(32)); // two seconds past trace_idle: every trace closed
    let blame = |service: &str, operation: &str, bad_events, reason| Blame {
        service: service.into(),
        operation: operation.into(),
        bad_events,
        reason,
    };
    assert_eq!(
        p.contributors(0, since, 5),
        [
            blame("frontend", "GET /checkout", 2, BlameReason::ErrorOrigin),
            blame("bank", "auth", 1, BlameReason::ErrorOrigin),
        ]
    );
    assert_eq!(
        p.contributors(1, since, 5),
        [
            blame("frontend", "render", 3, BlameReason::SlowestChild),
            blame("bank", "auth", 1, BlameReason::SlowestChild),
        ]
    );
    assert_eq!(
        p.contributors(2, since, 5),
        [
            blame("catalog", "list", 1, BlameReason::OrphanSpan),
            blame("payment", "", 1, BlameReason::MissingService),
        ]
    );
    assert_eq!(p.exemplars(2, since, 5), [ex(3, 50, false, 1)]);
    assert_eq!(
        totals(&p, 32)[2],
        ("complete".into(), 7, 1),
        "weighted; trace 6 had no root"
    );

    // Trace 6's root, late and failed: counted and kept as an exemplar, but with no trace left
    // to blame, its bad event is counted as unblamed.
    p.ingest(
        Source::OtlpHttp,
        vec![named(span(6, 1, None, "frontend", 0, 10), "GET /checkout", true, 1)],
        now(33),
    )
    .unwrap();
    assert_eq!(totals(&p, 33)[0], ("error".into(), 8, 4));
    assert_eq!(
        p.exemplars(0, since, 5),
        [ex(1, 300, true, 1), ex(4, 100, true, 2), ex(6, 10, true, 1)]
    );
    assert_eq!(p.contributors(0, since, 5).iter().map(|b| b.bad_events).sum::<u64>(), 3);
    let unblamed = |reason| m.blame_dropped.get_or_create(&ReasonLabels { reason }).get();
    assert_eq!((unblamed("late_root"), unblamed("trace_evicted")), (1, 0));
}

#[test]
fn an_evicted_trace_counts_its_bad_events_as_unblamed() {
    let (mut p, m) = pipeline(2);
    let mut failed = span(1, 1, None, "frontend", 0, 300); // bad for error and latency
    failed.status = StatusCode::Error;
    failed.weight = 4;
    let batch = vec![
        failed,
        span(2, 1, None, "frontend", 0, 10),
        span(3, 1, None, "frontend", 0, 10),
    ];
    p.ingest(Source::OtlpHttp, batch, now(1)).unwrap();
    assert_eq!(m.traces_evicted.get(), 1);
    let unblamed = |reason| m.blame_dropped.get_or_create(&ReasonLabels { reason }).get();
    assert_eq!(unblamed("trace_evicted"), 8, "weight 4, bad for two SLOs");
    assert_eq!(p.exemplars(0, now(-60), 5).len(), 1, "the exemplar was kept on arrival");
}
