use super::*;

/// A span as a table row: (id, parent, service, operation, milliseconds, failed).
type Row = (u8, Option<u8>, &'static str, &'static str, u64, bool);

fn nodes(rows: &[Row]) -> Vec<SpanNode> {
    rows.iter()
        .map(|&(id, parent, service, operation, ms, error)| SpanNode {
            span_id: SpanId([id; 8]),
            parent: parent.map(|p| SpanId([p; 8])),
            service: service.into(),
            operation: operation.into(),
            start_nanos: 0,
            duration_nanos: ms * 1_000_000,
            kind: slis::SpanKind::Server,
            error,
            negative: false,
        })
        .collect()
}

fn blamed(nodes: &[SpanNode], i: usize) -> u8 {
    nodes[i].span_id.0[0]
}

#[test]
fn the_error_is_blamed_where_it_originated() {
    let cases: &[(&str, &[Row], u8)] = &[
        (
            "the deepest failed span under failed parents",
            &[
                (1, None, "frontend", "GET /", 100, true),
                (2, Some(1), "catalog", "list", 10, false),
                (3, Some(1), "checkout", "place", 50, true),
                (4, Some(3), "payment", "charge", 40, true),
                (5, Some(4), "bank", "auth", 5, false),
            ],
            4,
        ),
        (
            "no child failed: the root itself",
            &[
                (1, None, "frontend", "GET /", 100, true),
                (2, Some(1), "catalog", "list", 10, false),
            ],
            1,
        ),
        (
            "the deeper of two failed branches",
            &[
                (1, None, "frontend", "GET /", 100, true),
                (2, Some(1), "a", "x", 10, true),
                (3, Some(1), "b", "y", 10, true),
                (4, Some(3), "b", "z", 5, true),
            ],
            4,
        ),
        (
            "the first to arrive of failed siblings at the same depth",
            &[
                (1, None, "frontend", "GET /", 100, true),
                (3, Some(1), "b", "y", 10, true),
                (2, Some(1), "a", "x", 10, true),
            ],
            3,
        ),
        (
            "a failure under a healthy span is not followed (the chain from the root breaks)",
            &[
                (1, None, "frontend", "GET /", 100, false), // bad by an error rule
                (2, Some(1), "a", "x", 10, false),
                (3, Some(2), "b", "y", 10, true),
            ],
            1,
        ),
    ];
    for (name, rows, want) in cases {
        let n = nodes(rows);
        assert_eq!(blamed(&n, error_origin(&n, 0)), *want, "{name}");
    }
}

#[test]
fn latency_is_blamed_at_the_end_of_the_critical_path() {
    let cases: &[(&str, &[Row], u8)] = &[
        (
            "down the longest child to a leaf",
            &[
                (1, None, "frontend", "GET /", 1000, false),
                (2, Some(1), "catalog", "list", 300, false),
                (3, Some(1), "checkout", "place", 800, false),
                (4, Some(3), "payment", "charge", 700, false),
                (5, Some(3), "inventory", "reserve", 50, false),
            ],
            4,
        ),
        (
            "no child takes half: the root's own time",
            &[
                (1, None, "frontend", "GET /", 1000, false),
                (2, Some(1), "a", "x", 400, false),
                (3, Some(1), "b", "y", 350, false),
            ],
            1,
        ),
        (
            "stops where the longest grandchild is under half of its parent",
            &[
                (1, None, "frontend", "GET /", 1000, false),
                (2, Some(1), "a", "x", 600, false),
                (3, Some(2), "b", "y", 200, false),
                (4, Some(2), "c", "z", 250, false),
            ],
            2,
        ),
        (
            "exactly half is significant; the first of equal children wins",
            &[
                (1, None, "frontend", "GET /", 100, false),
                (2, Some(1), "a", "x", 50, false),
                (3, Some(1), "b", "y", 50, false),
            ],
            2,
        ),
    ];
    for (name, rows, want) in cases {
        let n = nodes(rows);
        assert_eq!(blamed(&n, critical_path(&n, 0)), *want, "{name}");
    }
}

#[test]
fn the_critical_path_of_a_large_trace_uses_the_index() {
    // 40 spans (past the index threshold) in a chain, each 90% of its parent.
    let mut rows: Vec<Row> = vec![(1, None, "s", "op", 1_000_000, false)];
    let mut ms = 1_000_000u64;
    for id in 2..=40u8 {
        ms = ms * 9 / 10;
        rows.push((id, Some(id - 1), "s", "op", ms, false));
    }
    let n = nodes(&rows);
    assert_eq!(blamed(&n, critical_path(&n, 0)), 40);
}

#[test]
fn an_incomplete_trace_blames_missing_services_and_lost_parents_once_each() {
    let n = nodes(&[
        (1, None, "frontend", "GET /", 100, false),
        (2, Some(9), "checkout", "place", 10, false), // parent never came
        (3, Some(8), "checkout", "place", 10, false), // the same service and operation again
        (4, None, "worker", "consume", 10, false),    // a second parentless span
        (5, Some(1), "catalog", "list", 10, false),
    ]);
    let services: Vec<Arc<str>> = ["frontend", "checkout", "worker", "catalog"].map(Arc::from).to_vec();
    let expected: Vec<Arc<str>> = ["frontend", "payment", "auth"].map(Arc::from).to_vec();
    let mut out = vec![];
    completeness_culprits(&n, Some(0), &services, &expected, &mut out);
    let got: Vec<(&str, &str, &str)> = out
        .iter()
        .map(|c| (&*c.service, &*c.operation, c.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("payment", "", "missing service"),
            ("auth", "", "missing service"),
            ("checkout", "place", "orphan span"),
            ("worker", "consume", "orphan span"),
        ]
    );
}

/// 20 s into a minute, 1 580 s into an hour.
const T0: i64 = 1_779_999_980;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(T0 + secs)
}

fn ex(id: u8, start: i64, ms: u64, error: bool) -> ExemplarTrace {
    ExemplarTrace {
        trace_id: TraceId([id; 16]),
        start: at(start),
        duration: Duration::from_millis(ms),
        error,
        weight: 1,
    }
}

fn ids(v: &[ExemplarTrace]) -> Vec<u8> {
    v.iter().map(|e| e.trace_id.0[0]).collect()
}

#[test]
fn the_top_k_worst_are_errors_first_then_slowest_or_only_slowest() {
    let traces = [
        ex(1, 0, 100, false),
        ex(2, 0, 900, false),
        ex(3, 0, 50, true),
        ex(4, 0, 400, true),
        ex(5, 0, 700, false),
        ex(6, 1, 400, true), // ties with 4 on duration: the newer is worse
        ex(7, 0, 10, false),
    ];
    let mut s = Insights::new([Rank::ErrorsThenSlowest, Rank::Slowest], HORIZON);
    for slo in 0..2 {
        for e in traces {
            s.offer(slo, e.start + e.duration, e, at(2)).unwrap();
        }
    }
    assert_eq!(ids(&s.exemplars(0, at(-60), 10)), [6, 4, 3, 2, 5]);
    assert_eq!(ids(&s.exemplars(1, at(-60), 10)), [2, 5, 6, 4, 1]);
    assert_eq!(ids(&s.exemplars(1, at(-60), 2)), [2, 5]);
}

fn c(service: &str, operation: &str, reason: BlameReason) -> Culprit {
    Culprit {
        service: service.into(),
        operation: operation.into(),
        reason,
    }
}

fn blames(v: &[Blame]) -> Vec<(&str, &str, u64, &str)> {
    v.iter()
        .map(|b| {
            (
                b.service.as_str(),
                b.operation.as_str(),
                b.bad_events,
                b.reason.as_str(),
            )
        })
        .collect()
}

#[test]
fn contributors_sum_weights_across_buckets_largest_first() {
    let mut s = Insights::new([Rank::ErrorsThenSlowest], HORIZON);
    let pay = c("payment", "charge", BlameReason::ErrorOrigin);
    let bank = c("bank", "auth", BlameReason::ErrorOrigin);
    let inv = c("inventory", "", BlameReason::MissingService);
    let now = at(3 * 3_600);
    // Two hours ago (hour tier), ten minutes ago and one minute ago (minute tier).
    for (when, culprit, weight) in [
        (at(3_600), &pay, 4),
        (at(3 * 3_600 - 600), &pay, 3),
        (at(3 * 3_600 - 600), &bank, 10),
        (at(3 * 3_600 - 60), &inv, 7),
        (at(3 * 3_600 - 60), &bank, 1),
    ] {
        s.blame(0, when, culprit, weight, now).unwrap();
    }
    assert_eq!(
        blames(&s.contributors(0, at(0), 10)),
        [
            ("bank", "auth", 11, "error originated here"),
            ("inventory", "", 7, "missing service"),
            ("payment", "charge", 7, "error originated here"),
        ]
    );
    // The last 15 minutes leave the older hour out.
    assert_eq!(
        blames(&s.contributors(0, now - Duration::from_secs(900), 2)),
        [
            ("bank", "auth", 11, "error originated here"),
            ("inventory", "", 7, "missing service"),
        ]
    );
}

#[test]
fn buckets_fold_into_hours_then_age_out_past_the_horizon() {
    let mut s = Insights::new([Rank::Slowest], HORIZON);
    let slow = c("payment", "charge", BlameReason::SlowestChild);
    s.offer(0, at(0), ex(1, 0, 500, false), at(0)).unwrap();
    s.offer(0, at(60), ex(2, 60, 300, false), at(60)).unwrap();
    s.blame(0, at(0), &slow, 2, at(0)).unwrap();
    s.blame(0, at(60), &slow, 3, at(60)).unwrap();
    assert_eq!(s.buckets(), 4, "two minutes, each with exemplars and contributors");
    // Minutes [T0 − 20 s, T0 + 40 s) and [T0 + 40 s, T0 + 100 s): a query takes every bucket
    // ending after `since`.
    assert_eq!(ids(&s.exemplars(0, at(39), 10)), [1, 2]);
    assert_eq!(ids(&s.exemplars(0, at(40), 10)), [2]);
    assert!(s.exemplars(0, at(100), 10).is_empty());

    // An hour after a minute starts, it folds into its hour (both minutes lie in the same one).
    assert_eq!(s.advance(at(3_580 - 1)), 0);
    assert_eq!(s.buckets(), 4);
    assert_eq!(s.advance(at(3_580)), 0);
    assert_eq!(
        s.buckets(),
        4,
        "the first minute is now an hour, the second still a minute"
    );
    assert_eq!(
        ids(&s.exemplars(0, at(40), 10)),
        [1, 2],
        "the hour reaches past T0 + 40 s"
    );
    assert_eq!(s.advance(at(3_640)), 0);
    assert_eq!(s.buckets(), 2, "both minutes folded into one hour");
    assert_eq!(ids(&s.exemplars(0, at(0), 10)), [1, 2]);
    assert_eq!(
        blames(&s.contributors(0, at(0), 10)),
        [("payment", "charge", 5, "slowest child span")]
    );

    // The hour [T0 − 1 580 s, T0 + 2 020 s) leaves once it is HORIZON old.
    let hour = floor(at(0), 3_600);
    assert_eq!(hour, at(-1_580));
    s.advance(hour + HORIZON - Duration::from_secs(1));
    assert_eq!(s.buckets(), 2);
    s.advance(hour + HORIZON);
    assert_eq!(s.buckets(), 0);
    assert!(s.exemplars(0, at(0), 10).is_empty());
    assert!(s.contributors(0, at(0), 10).is_empty());

    // Something already past the horizon is refused, not kept.
    let now = hour + HORIZON;
    assert_eq!(s.offer(0, at(0), ex(3, 0, 900, false), now), Err(Dropped::TooOld));
    assert_eq!(s.blame(0, at(0), &slow, 1, now), Err(Dropped::TooOld));
    // An old event still inside the horizon goes straight to its hour.
    s.offer(0, hour + Duration::from_secs(3_600), ex(4, 3_600, 900, false), now)
        .unwrap();
    assert_eq!(ids(&s.exemplars(0, at(0), 10)), [4]);
}

#[test]
fn a_full_bucket_drops_new_contributors_and_a_full_hour_its_smallest() {
    let mut s = Insights::new([Rank::ErrorsThenSlowest], HORIZON);
    let svc = |i: usize| c(&format!("svc-{i:02}"), "op", BlameReason::ErrorOrigin);
    for i in 0..MAX_CONTRIBUTORS {
        s.blame(0, at(0), &svc(i), 10 + i as u64, at(0)).unwrap();
    }
    assert_eq!(s.blame(0, at(0), &svc(99), 1, at(0)), Err(Dropped::BucketFull));
    s.blame(0, at(0), &svc(0), 5, at(0)).unwrap(); // a known one still counts
    // The next minute blames 8 others with weight 1 each: folded into the hour, they are the 8
    // smallest of 40 and go.
    for i in 100..108 {
        s.blame(0, at(60), &svc(i), 1, at(60)).unwrap();
    }
    assert_eq!(s.advance(at(2 * 3_600)), 8);
    let got = s.contributors(0, at(0), 100);
    assert_eq!(got.len(), MAX_CONTRIBUTORS);
    assert_eq!((got[0].service.as_str(), got[0].bad_events), ("svc-31", 41));
    assert_eq!((got[31].service.as_str(), got[31].bad_events), ("svc-01", 11));
    assert_eq!(got.iter().map(|b| b.bad_events).sum::<u64>(), (10..42).sum::<u64>() + 5);
}
