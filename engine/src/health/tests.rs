//! The pure logic of trace health on plain data and an invented clock.

use std::sync::Arc;
use std::time::Duration;

use slis::{SpanId, SpanKind, Timestamp};

use super::trace::{self, NONE, UNKNOWN, analyze};
use super::*;
use crate::assembler::SpanNode;

const T0: i64 = 1_780_000_000;

fn at(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(T0 + s)
}

/// A node: id, parent, service, kind, start and end in ms.
fn node(id: u8, parent: Option<u8>, service: &str, kind: SpanKind, start_ms: i64, end_ms: i64) -> SpanNode {
    SpanNode {
        span_id: SpanId([id; 8]),
        parent: parent.map(|p| SpanId([p; 8])),
        service: service.into(),
        operation: "op".into(),
        start_nanos: start_ms * 1_000_000,
        duration_nanos: (end_ms - start_ms).max(0) as u64 * 1_000_000,
        kind,
        error: false,
        negative: end_ms < start_ms,
    }
}

use SpanKind::{Client, Consumer, Internal, Producer, Server};

fn b(from: &str, to: &str) -> Boundary {
    Boundary {
        from: from.into(),
        to: to.into(),
    }
}

#[test]
fn fragmentation_names_the_boundary_that_lost_the_context() {
    let reports = |s: &str| ["frontend", "checkout", "payment", "inventory"].contains(&s);
    // (nodes, peers (node index, peer.service), lost spans, dangling, boundaries)
    type Case = (Vec<SpanNode>, Vec<(u32, &'static str)>, u32, u32, Vec<Boundary>);
    let healthy = vec![
        node(1, None, "frontend", Server, 0, 100),
        node(2, Some(1), "frontend", Client, 10, 90),
        node(3, Some(2), "checkout", Server, 20, 80),
    ];
    let cases: Vec<(&str, Case)> = vec![
        ("healthy", (healthy.clone(), vec![(1, "checkout")], 0, 0, vec![])),
        (
            // checkout drops traceparent: payment started a trace of its own.
            "dangling call to a reporting service",
            (
                [healthy.clone(), vec![node(4, Some(3), "checkout", Client, 30, 70)]].concat(),
                vec![(1, "checkout"), (3, "payment")],
                0,
                1,
                vec![b("checkout", "payment")],
            ),
        ),
        (
            "a call to a service that reports nothing (an external API) is no fragment",
            (
                [healthy.clone(), vec![node(4, Some(3), "checkout", Client, 30, 70)]].concat(),
                vec![(1, "checkout"), (3, "stripe")],
                0,
                0,
                vec![],
            ),
        ),
        (
            // The trace id survived, the parent id did not: a second root in payment.
            "extra root attributed to the childless call naming it",
            (
                [
                    healthy.clone(),
                    vec![
                        node(4, Some(3), "checkout", Client, 30, 70),
                        node(5, None, "payment", Server, 35, 65),
                    ],
                ]
                .concat(),
                vec![(1, "checkout"), (3, "payment")],
                1,
                0,
                vec![b("checkout", "payment")],
            ),
        ),
        (
            "orphan without a caller naming it",
            (
                [healthy.clone(), vec![node(5, Some(9), "inventory", Server, 35, 65)]].concat(),
                vec![(1, "checkout")],
                1,
                0,
                vec![b(UNKNOWN, "inventory")],
            ),
        ),
        (
            // The earliest parentless span is the root, whatever arrived first.
            "two roots: the later one is lost",
            (
                vec![
                    node(5, None, "payment", Server, 50, 60),
                    node(1, None, "frontend", Server, 0, 100),
                ],
                vec![],
                1,
                0,
                vec![b(UNKNOWN, "payment")],
            ),
        ),
        (
            "no parentless span: the earliest orphan is the root (a proxy in front)",
            (
                vec![
                    node(1, Some(9), "frontend", Server, 0, 100),
                    node(2, Some(1), "checkout", Server, 10, 90),
                ],
                vec![],
                0,
                0,
                vec![],
            ),
        ),
        (
            "a boundary counts once per trace",
            (
                [
                    healthy.clone(),
                    vec![
                        node(4, Some(3), "checkout", Client, 30, 70),
                        node(6, Some(3), "checkout", Producer, 30, 70),
                    ],
                ]
                .concat(),
                vec![(1, "checkout"), (3, "payment"), (4, "payment")],
                0,
                2,
                vec![b("checkout", "payment")],
            ),
        ),
    ];
    for (name, (nodes, peers, lost, dangling, boundaries)) in cases {
        let peers: Vec<(u32, Arc<str>)> = peers.into_iter().map(|(i, p)| (i, Arc::from(p))).collect();
        let f = analyze(&nodes, &peers, 1_000_000, reports);
        assert_eq!(
            (f.lost_spans, f.dangling, f.boundaries),
            (lost, dangling, boundaries),
            "{name}"
        );
        assert_eq!(f.skews, vec![], "{name}");
    }
}

#[test]
fn clock_skew_per_service_pair_and_kind() {
    let tol = 5_000_000; // 5 ms
    let k = |p: &str, c: &str, kind: SkewKind| (Arc::from(p), Arc::from(c), kind);
    let cases: Vec<(&str, Vec<SpanNode>, Vec<trace::Skew>)> = vec![
        (
            "within the tolerance",
            vec![
                node(1, None, "a", Server, 100, 200),
                node(2, Some(1), "b", Server, 96, 204),
            ],
            vec![],
        ),
        (
            "starts before and ends after",
            vec![
                node(1, None, "a", Server, 100, 200),
                node(2, Some(1), "b", Server, 50, 150),
                node(3, Some(1), "c", Server, 150, 300),
            ],
            vec![
                k("a", "b", SkewKind::StartsBeforeParent),
                k("a", "c", SkewKind::EndsAfterParent),
            ],
        ),
        (
            "asynchronous children may end after their parent",
            vec![
                node(1, None, "a", Producer, 100, 110),
                node(2, Some(1), "b", Consumer, 120, 300),
                node(3, Some(1), "c", Internal, 105, 400),
            ],
            vec![],
        ),
        (
            "negative duration, with and without a parent in the trace",
            vec![
                node(1, None, "a", Server, 100, 90),
                node(2, Some(1), "b", Server, 100, 95),
            ],
            vec![
                k(NONE, "a", SkewKind::NegativeDuration),
                k("a", "b", SkewKind::NegativeDuration),
            ],
        ),
    ];
    for (name, nodes, want) in cases {
        let f = analyze(&nodes, &[], tol, |_| true);
        assert_eq!(f.skews, want, "{name}");
        assert_eq!(f.skewed(), !want.is_empty(), "{name}");
    }
}

fn config() -> TraceHealthConfig {
    TraceHealthConfig {
        volume_window: Duration::from_secs(10).into(),
        volume_baseline: Duration::from_secs(30).into(),
        volume_drop_ratio: 0.5,
        volume_min_spans: 5,
        window: Duration::from_secs(60).into(),
        cardinality_limit: 100,
        max_services: 2,
        max_keys_per_service: 2,
        ..Default::default()
    }
}

#[test]
fn a_volume_drop_is_flagged_against_the_service_own_baseline() {
    let mut h = TraceHealth::new(config(), 0);
    let svc: Arc<str> = "checkout".into();
    // 20 spans in each 10 s bucket for 40 s, then 8, then nothing.
    for s in 0..40 {
        h.observe((0..2).map(|_| (&svc, at(s))), at(s));
    }
    let status = |h: &TraceHealth, s: i64| h.report(at(s))[0].volume;
    // T0 is a multiple of 10 s, so buckets start at T0 + 10k.
    assert_eq!(
        status(&h, 40),
        VolumeStatus {
            newest: 20,
            baseline: 20.0,
            drop: false
        }
    );
    h.observe((0..8).map(|_| (&svc, at(45))), at(45));
    // 8 < 0.5 × 20: a drop.
    assert_eq!(
        status(&h, 50),
        VolumeStatus {
            newest: 8,
            baseline: 20.0,
            drop: true
        }
    );
    // Nothing at all: still a drop while the baseline holds.
    assert!(status(&h, 60).drop);
    assert_eq!(status(&h, 70).baseline, (8.0 + 0.0 + 20.0) / 3.0);
    // The baseline has decayed below volume_min_spans: no verdict.
    assert_eq!(
        status(&h, 90),
        VolumeStatus {
            newest: 0,
            baseline: 0.0,
            drop: false
        }
    );
}

#[test]
fn export_lag_percentiles_over_the_window() {
    let mut h = TraceHealth::new(config(), 0);
    let svc: Arc<str> = "a".into();
    // 100 spans received at T0+10, ending 1..=100 ms earlier.
    let ends: Vec<Timestamp> = (1..=100).map(|ms| at(10) - Duration::from_millis(ms)).collect();
    h.observe(ends.iter().map(|e| (&svc, *e)), at(10));
    let lag = h.report(at(10))[0].lag.expect("samples");
    assert_eq!(lag.count, 100);
    // HDR with 2 significant figures: within 1%.
    assert!((49_500_000..=50_500_000).contains(&lag.p50_nanos), "{lag:?}");
    assert!((98_000_000..=100_000_000).contains(&lag.p99_nanos), "{lag:?}");
    // One window later the samples are the previous window; two windows later they are gone.
    assert_eq!(h.report(at(70))[0].lag.map(|l| l.count), Some(100));
    assert_eq!(h.report(at(130))[0].lag, None);
}

fn tag(service: &Arc<str>, key: &Arc<str>, value: u64) -> Tag {
    Tag {
        service: service.clone(),
        key: key.clone(),
        values: vec![value],
    }
}

#[test]
fn cardinality_is_flagged_above_the_limit_and_bounded_by_the_caps() {
    let mut h = TraceHealth::new(config(), 0);
    let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
    let (id, method, route): (Arc<str>, Arc<str>, Arc<str>) = ("request.id".into(), "method".into(), "route".into());
    let tags: Vec<Tag> = (0..120u64)
        .map(|i| tag(&a, &id, i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .chain((0..3).map(|i| tag(&a, &method, i)))
        .chain([tag(&a, &route, 1)]) // a third key: over max_keys_per_service
        .chain([tag(&b, &method, 1), tag(&c, &method, 1)]) // a third service: over max_services
        .collect();
    h.observe_tags(&tags, at(0));
    let report = h.report(at(0));
    let keys: Vec<(&str, &str, u64, bool)> = report
        .iter()
        .flat_map(|s| {
            s.keys
                .iter()
                .map(move |k| (&*s.service, &*k.key, k.estimate, k.over_limit))
        })
        .collect();
    // Up to 128 distinct values the sketch keeps the hashes: exact. What does not fit goes to
    // the overflow rows: a's third key, c (a third service).
    assert_eq!(
        keys,
        [
            (OVERFLOW, "method", 1, false),
            ("a", "request.id", 120, true),
            ("a", "method", 3, false),
            ("a", OVERFLOW, 1, false),
            ("b", "method", 1, false)
        ]
    );
    assert_eq!(
        h.dropped(),
        Dropped {
            service_limit: 1,
            key_limit: 1,
            ..Default::default()
        }
    );
    // The union of this window and the previous one; gone two windows later.
    h.observe_tags(&[tag(&a, &method, 7)], at(61));
    let method_a = |h: &TraceHealth, s| {
        h.report(at(s))
            .iter()
            .find(|r| &*r.service == "a")?
            .keys
            .iter()
            .find(|k| &*k.key == "method")
            .map(|k| k.estimate)
    };
    assert_eq!(method_a(&h, 61), Some(4));
    assert_eq!(method_a(&h, 121), Some(1));
    assert_eq!(method_a(&h, 200), None);
}

/// Issue 10: memory stays bounded with a million distinct attribute values.
#[test]
fn a_million_distinct_values_keep_the_sketch_bounded() {
    let mut h = TraceHealth::new(config(), 0);
    let (svc, key): (Arc<str>, Arc<str>) = ("a".into(), "uuid".into());
    let mut after_1k = 0;
    for chunk in 0..100u64 {
        let mut t = tag(&svc, &key, 0);
        t.values = (0..10_000u64)
            .map(|i| (chunk * 10_000 + i).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        h.observe_tags(&[t], at(0));
        if chunk == 0 {
            after_1k = h.sketch_bytes();
        }
    }
    let bytes = h.sketch_bytes();
    let estimate = h.report(at(0))[0].keys[0].estimate;
    println!("sketch bytes: {after_1k} after 10,000 values, {bytes} after 1,000,000; estimate {estimate}");
    // One HyperLogLog++ of precision 12 (4,096 registers of 6 bits) and an empty previous window.
    assert!(bytes <= 4_200, "{bytes} bytes");
    assert_eq!(bytes, after_1k, "the sketch stops growing once dense");
    // 1.6% standard error: within 5% (three standard errors).
    assert!((950_000..=1_050_000).contains(&estimate), "{estimate}");
}

/// One closed trace's findings: these boundaries (caller, callee) and skews (parent, child, kind).
fn findings(boundaries: &[(&str, &str)], skews: &[(&str, &str, SkewKind)]) -> Findings {
    Findings {
        lost_spans: boundaries.len() as u32,
        dangling: 0,
        boundaries: boundaries.iter().map(|(f, t)| b(f, t)).collect(),
        skews: skews
            .iter()
            .map(|(p, c, k)| (Arc::from(*p), Arc::from(*c), *k))
            .collect(),
    }
}

fn names(list: &[&str]) -> Vec<Arc<str>> {
    list.iter().map(|s| Arc::from(*s)).collect()
}

/// Issue 18: every map keyed by what clients send holds at most its cap plus one overflow row,
/// and what went to the overflow row is counted per reason.
#[test]
fn issue_18_each_map_is_capped_with_one_overflow_row_and_drops_counted() {
    let mut h = TraceHealth::new(
        TraceHealthConfig {
            max_lost_context_rows: 2,
            max_clock_skew_rows: 2,
            ..config()
        },
        0,
    );
    // Services (cap 2): a, b own rows; c (2 spans) and d (1) in the overflow row.
    let svc = names(&["a", "b", "c", "d"]);
    let spans = [&svc[0], &svc[1], &svc[2], &svc[2], &svc[3], &svc[0]];
    h.observe(spans.into_iter().map(|s| (s, at(0))), at(0));
    // Traces: [a, c, d] counts once for a and once (not twice) for the overflow row.
    h.judged(None, &names(&["a", "c", "d"]), &findings(&[], &[]), at(1));
    h.judged(None, &names(&["c"]), &findings(&[("unknown", "c")], &[]), at(1));
    let rows: Vec<(String, u64, u64, u64)> = h
        .report(at(1))
        .iter()
        .map(|r| (r.service.to_string(), r.spans, r.traces, r.fragmented))
        .collect();
    let row = |s: &str, spans, traces, fragmented| (s.to_owned(), spans, traces, fragmented);
    assert_eq!(rows, [row(OVERFLOW, 3, 2, 1), row("a", 2, 1, 0), row("b", 1, 0, 0)]);

    // Lost-context boundaries (cap 2): unknown → c above and x0 own rows; x1 … x4 in the
    // overflow row; x0 again counts in its own row, the map being full.
    for i in 0..5 {
        let callee = format!("x{i}");
        h.judged(None, &[], &findings(&[("unknown", &callee)], &[]), at(2));
    }
    h.judged(None, &[], &findings(&[("unknown", "x0")], &[]), at(2));
    let boundaries: Vec<(String, String, u64)> = h
        .boundaries()
        .map(|(b, n)| (b.from.to_string(), b.to.to_string(), n))
        .collect();
    let row = |f: &str, t: &str, n: u64| (f.to_owned(), t.to_owned(), n);
    assert_eq!(
        boundaries,
        [
            row(OVERFLOW, OVERFLOW, 4),
            row("unknown", "c", 1),
            row("unknown", "x0", 2)
        ]
    );

    // Clock-skew rows (cap 2): one trace fills both; the rest go to one overflow row per kind.
    use SkewKind::{EndsAfterParent as After, NegativeDuration as Negative, StartsBeforeParent as Before};
    h.judged(
        None,
        &[],
        &findings(&[], &[("p0", "c0", Before), ("p0", "c0", After)]),
        at(3),
    );
    h.judged(
        None,
        &[],
        &findings(&[], &[("p1", "c1", Before), ("p1", "c1", After)]),
        at(3),
    );
    h.judged(
        None,
        &[],
        &findings(&[], &[("p2", "c2", Before), (NONE, "c2", Negative)]),
        at(3),
    );
    h.judged(None, &[], &findings(&[], &[("p0", "c0", Before)]), at(3));
    let skews: Vec<(&str, &str, SkewKind, u64)> = h.skews().map(|((p, c, k), n)| (&**p, &**c, *k, n)).collect();
    assert_eq!(
        skews,
        [
            (OVERFLOW, OVERFLOW, Before, 2),
            (OVERFLOW, OVERFLOW, After, 1),
            (OVERFLOW, OVERFLOW, Negative, 1),
            ("p0", "c0", Before, 2),
            ("p0", "c0", After, 1),
        ]
    );
    assert_eq!(
        h.dropped(),
        Dropped {
            service_limit: 3,
            key_limit: 0,
            lost_context_limit: 4,
            clock_skew_limit: 4,
        }
    );
    assert_eq!(
        h.rows(),
        Rows {
            services: 3,
            attribute_keys: 0,
            lost_context: 3,
            clock_skew: 5,
        }
    );
}

/// Issue 18: rows not updated for `idle_ttl` are forgotten, counted, and make room under the cap.
#[test]
fn issue_18_idle_rows_are_forgotten_and_make_room() {
    // The shortest idle TTL of config(): 2 × window (60 s) = 120 s.
    let mut h = TraceHealth::new(
        TraceHealthConfig {
            idle_ttl: Duration::from_secs(120).into(),
            ..config()
        },
        0,
    );
    assert_eq!(h.config().least_idle_ttl(), Duration::from_secs(120));
    let svc = names(&["a", "b", "c"]);
    let key: Arc<str> = "k".into();
    h.observe([(&svc[0], at(0))], at(0));
    h.observe_tags(&[tag(&svc[0], &key, 1)], at(0));
    h.observe([(&svc[1], at(50))], at(50));
    h.observe_tags(&[tag(&svc[1], &key, 1)], at(10));
    h.judged(
        None,
        &[],
        &findings(&[("unknown", "a")], &[("a", "b", SkewKind::StartsBeforeParent)]),
        at(0),
    );
    h.judged(None, &[], &findings(&[("unknown", "b")], &[]), at(50));
    // c comes while the map is full: the overflow row.
    h.observe([(&svc[2], at(60))], at(60));
    let services =
        |h: &TraceHealth| -> Vec<String> { h.report(at(200)).iter().map(|r| r.service.to_string()).collect() };
    assert_eq!(services(&h), [OVERFLOW, "a", "b"]);

    // 120 s after its last update a row is still kept; one nanosecond later it is not.
    h.forget_idle(at(120));
    assert_eq!(h.evicted(), Evicted::default());
    h.forget_idle(at(120) + Duration::from_nanos(1));
    assert_eq!(services(&h), [OVERFLOW, "b"]);
    assert_eq!(
        h.evicted(),
        Evicted {
            services: 1,
            attribute_keys: 1,
            lost_context: 1,
            clock_skew: 1,
        }
    );
    // b's key was last updated at 10 s, b itself at 50 s: the key goes first.
    h.forget_idle(at(131));
    assert_eq!(h.evicted().attribute_keys, 2);
    assert_eq!(h.rows().attribute_keys, 0);
    // a's place is free again: c gets its own row.
    h.observe([(&svc[2], at(140))], at(140));
    assert_eq!(services(&h), [OVERFLOW, "b", "c"]);
    h.forget_idle(at(300));
    assert_eq!(services(&h), Vec::<String>::new());
    assert_eq!(
        h.evicted(),
        Evicted {
            services: 4,
            attribute_keys: 2,
            lost_context: 2,
            clock_skew: 1,
        }
    );
    assert_eq!(h.rows(), Rows::default());
}

/// Issue 18: a snapshot shares the state copy-on-write and does not move when ingest goes on.
#[test]
fn issue_18_a_snapshot_shares_rows_and_keeps_its_figures() {
    let mut h = TraceHealth::new(config(), 1);
    let svc: Arc<str> = "a".into();
    let key: Arc<str> = "k".into();
    h.observe((0..10).map(|_| (&svc, at(0))), at(0));
    h.observe_tags(&[tag(&svc, &key, 1)], at(0));
    h.judged(
        Some(0),
        std::slice::from_ref(&svc),
        &findings(&[("unknown", "a")], &[]),
        at(0),
    );
    let snapshot = h.clone();
    assert!(
        Arc::ptr_eq(&h.services["a"], &snapshot.services["a"]),
        "taken in pointer copies"
    );
    let before = snapshot.shown(at(1), &Default::default());

    h.observe((0..5).map(|_| (&svc, at(1))), at(1));
    h.observe_tags(&[tag(&svc, &key, 2)], at(1));
    h.judged(
        Some(0),
        std::slice::from_ref(&svc),
        &findings(&[("unknown", "a")], &[]),
        at(1),
    );
    assert!(
        !Arc::ptr_eq(&h.services["a"], &snapshot.services["a"]),
        "copied on write"
    );
    assert_eq!(snapshot.shown(at(1), &Default::default()), before);
    assert_eq!((snapshot.report(at(1))[0].spans, h.report(at(1))[0].spans), (10, 15));
    assert_eq!(
        (
            snapshot.report(at(1))[0].keys[0].estimate,
            h.report(at(1))[0].keys[0].estimate
        ),
        (1, 2)
    );
    assert_eq!((snapshot.journeys()[0].traces, h.journeys()[0].traces), (1, 2));
    assert_eq!(
        (
            snapshot.boundaries().next().unwrap().1,
            h.boundaries().next().unwrap().1
        ),
        (1, 2)
    );
}
