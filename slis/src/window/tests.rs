use std::time::Duration;

use hdrhistogram::Histogram;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

/// An instant on 2026-02-17 (UTC), written `"12:05:52"` or `"11:59:59.999999999"`.
fn t(hms: &str) -> Timestamp {
    let dt = chrono::DateTime::parse_from_rfc3339(&format!("2026-02-17T{hms}Z")).expect("a valid test time");
    Timestamp::from_unix_nanos(dt.timestamp_nanos_opt().expect("in range"))
}

fn c(total: u64, bad: u64) -> Counts {
    Counts { total, bad }
}

fn root(at: Timestamp, latency: Duration, error: bool, weight: u32) -> RootSample {
    RootSample {
        at,
        latency_nanos: latency.as_nanos() as u64,
        error,
        weight,
    }
}

/// SLO 0: latency ≤ 300 ms, 1: error, 2: completeness, 3: latency ≤ 1 s.
fn four_slos() -> Vec<Sli> {
    vec![
        Sli::Latency {
            threshold_nanos: 300_000_000,
        },
        Sli::Error,
        Sli::Completeness,
        Sli::Latency {
            threshold_nanos: 1_000_000_000,
        },
    ]
}

fn all_counts(w: &JourneyWindows, window: Window, now: Timestamp) -> Vec<Counts> {
    (0..w.slis.len()).map(|slo| w.counts(slo, window, now)).collect()
}

#[test]
fn counts_good_and_bad_per_sli_with_weights() {
    const MAX: u64 = u32::MAX as u64;
    struct Case {
        name: &'static str,
        /// (latency ns, error, weight)
        roots: &'static [(u64, bool, u32)],
        /// (complete, weight)
        verdicts: &'static [(bool, u32)],
        want: [Counts; 4],
    }
    let zero = c(0, 0);
    let cases = [
        Case {
            name: "latency equal to the threshold is good",
            roots: &[(300_000_000, false, 1)],
            verdicts: &[],
            want: [c(1, 0), c(1, 0), zero, c(1, 0)],
        },
        Case {
            name: "one nanosecond over the threshold is bad",
            roots: &[(300_000_001, false, 1)],
            verdicts: &[],
            want: [c(1, 1), c(1, 0), zero, c(1, 0)],
        },
        Case {
            name: "an error is bad for the error SLO only",
            roots: &[(1_000, true, 3)],
            verdicts: &[],
            want: [c(3, 0), c(3, 3), zero, c(3, 0)],
        },
        Case {
            name: "weights multiply",
            roots: &[(2_000_000_000, true, 7), (500_000_000, false, 2), (1_000_000, false, 1)],
            verdicts: &[],
            want: [c(10, 9), c(10, 7), zero, c(10, 7)],
        },
        Case {
            name: "weight zero counts nothing",
            roots: &[(2_000_000_000, true, 0)],
            verdicts: &[(false, 0)],
            want: [zero, zero, zero, zero],
        },
        Case {
            name: "largest weight and latency",
            roots: &[(u64::MAX, true, u32::MAX), (0, false, u32::MAX)],
            verdicts: &[],
            want: [c(2 * MAX, MAX), c(2 * MAX, MAX), zero, c(2 * MAX, MAX)],
        },
        Case {
            name: "completeness verdicts count in the completeness SLO only",
            roots: &[],
            verdicts: &[(true, 4), (false, 1), (false, 2)],
            want: [zero, zero, c(7, 3), zero],
        },
    ];
    let now = t("12:00:30");
    for case in cases {
        let mut w = JourneyWindows::new(four_slos(), 32 * DAY);
        for &(latency_nanos, error, weight) in case.roots {
            let s = RootSample {
                at: t("12:00:10"),
                latency_nanos,
                error,
                weight,
            };
            assert_eq!(w.record_root(&s), Recorded::Counted, "{}", case.name);
        }
        for &(complete, weight) in case.verdicts {
            assert_eq!(
                w.record_completeness(t("12:00:20"), complete, weight),
                Recorded::Counted,
                "{}",
                case.name
            );
        }
        assert_eq!(all_counts(&w, Window::Last(HOUR), now), case.want, "{}", case.name);
    }
}

#[test]
fn windows_take_whole_buckets_from_the_first_start_inside() {
    // Weights are powers of two, so a total names exactly the samples a window holds.
    let samples = [
        ("11:59:59.999999999", 1),
        ("12:00:00", 2),
        ("12:00:59.999999999", 4),
        ("12:01:00", 8),
        ("12:05:52", 16),
        ("12:07:00", 32),
    ];
    let mut w = JourneyWindows::new(vec![Sli::Error], 32 * DAY);
    for (at, weight) in samples {
        assert_eq!(
            w.record_root(&root(t(at), Duration::ZERO, false, weight)),
            Recorded::Counted
        );
    }
    let cases = [
        // Last(5m) at 12:05:52 starts at 12:00:52, aligned up to the 12:01 bucket.
        (Window::Last(5 * MINUTE), "12:05:52", 8 + 16),
        // The 11:59 bucket starts before 11:59:52, so a 6m window leaves it out; 7m takes it.
        (Window::Last(6 * MINUTE), "12:05:52", 2 + 4 + 8 + 16),
        (Window::Last(7 * MINUTE), "12:05:52", 1 + 2 + 4 + 8 + 16),
        // An edge exactly on a bucket start includes that bucket.
        (Window::Last(5 * MINUTE), "12:06:00", 8 + 16),
        (Window::Last(5 * MINUTE), "12:06:00.000000001", 16),
        // Both ends are closed: at 12:01:00 the 12:00 and the 12:01 bucket are in.
        (Window::Last(MINUTE), "12:01:00", 2 + 4 + 8),
        // A sample on a boundary belongs to the bucket starting there, and only to it.
        (Window::Last(MINUTE), "12:00:59.999999999", 2 + 4),
        (Window::Last(Duration::ZERO), "12:01:00", 8),
        // No bucket starts in [12:05:22, 12:05:52].
        (Window::Last(Duration::from_secs(30)), "12:05:52", 0),
        (Window::Since(t("12:00:00")), "12:05:52", 2 + 4 + 8 + 16),
        (Window::Since(t("12:00:00.000000001")), "12:05:52", 8 + 16),
        // The 12:05 bucket holds 12:05:52 even when `now` is earlier in that minute.
        (Window::Since(t("12:00:00")), "12:05:00", 2 + 4 + 8 + 16),
        // A bucket starting after `now` is left out until the clock reaches it.
        (Window::Since(t("12:00:00")), "12:06:59", 2 + 4 + 8 + 16),
        (Window::Since(t("12:00:00")), "12:07:00", 2 + 4 + 8 + 16 + 32),
        (Window::Last(DAY), "23:00:00", 63),
        (Window::Last(DAY), "11:58:59", 0),
        (Window::Since(t("12:07:00.000000001")), "23:00:00", 0),
    ];
    for (window, now, want) in cases {
        assert_eq!(w.counts(0, window, t(now)), c(want, 0), "{window:?} at {now}");
    }
}

#[test]
fn zero_traffic_counts_nothing_and_has_no_percentiles() {
    let w = JourneyWindows::new(four_slos(), 32 * DAY);
    let now = t("12:00:00");
    for window in [
        Window::Last(Duration::ZERO),
        Window::Last(30 * DAY),
        Window::Since(Timestamp::EPOCH),
    ] {
        assert_eq!(all_counts(&w, window, now), vec![c(0, 0); 4], "{window:?}");
        assert_eq!(w.percentiles(window, now), None, "{window:?}");
        assert_eq!(w.latency_histogram(window, now).len(), 0, "{window:?}");
    }
    assert_eq!(
        w.counts(4, Window::Last(DAY), now),
        c(0, 0),
        "an unknown SLO counts nothing"
    );
    assert!(
        w.memory_bytes() < 1_024,
        "an empty store is small: {} bytes",
        w.memory_bytes()
    );

    // Completeness verdicts alone give counts but no latency.
    let mut w = JourneyWindows::new(four_slos(), 32 * DAY);
    assert_eq!(w.record_completeness(now, true, 1), Recorded::Counted);
    assert_eq!(w.counts(2, Window::Last(HOUR), now), c(1, 0));
    assert_eq!(w.percentiles(Window::Last(HOUR), now), None);
}

#[test]
fn a_journey_without_slos_still_tracks_latency() {
    let mut w = JourneyWindows::new(Vec::new(), 32 * DAY);
    let now = t("12:00:00");
    assert_eq!(
        w.record_root(&root(now, Duration::from_millis(42), true, 2)),
        Recorded::Counted
    );
    assert_eq!(w.record_completeness(now, false, 1), Recorded::Counted);
    w.advance(now + DAY);
    let p = w.percentiles(Window::Last(2 * DAY), now + DAY).expect("one sample");
    assert_eq!(p.count, 2);
    assert_within(p.p50, Duration::from_millis(42), "p50");
    assert_eq!(w.counts(0, Window::Last(2 * DAY), now + DAY), c(0, 0));
}

#[test]
fn percentiles_come_from_the_histogram_in_microseconds() {
    let mut w = JourneyWindows::new(vec![Sli::Error], 32 * DAY);
    let now = t("12:00:00");
    // 1..=100 ms, one sample each, plus one above the 1 h range that clamps to 1 h.
    for ms in 1..=100 {
        let _ = w.record_root(&root(now, Duration::from_millis(ms), false, 1));
    }
    let _ = w.record_root(&root(now, 2 * HOUR, false, 1));
    let p = w.percentiles(Window::Last(MINUTE), now).expect("samples");
    assert_eq!(p.count, 101);
    // exact: sorted[ceil(q·n) − 1] = 51 ms, 96 ms, 100 ms; HDR reports its bin's highest value.
    assert_within(p.p50, Duration::from_millis(51), "p50");
    assert_within(p.p95, Duration::from_millis(96), "p95");
    assert_within(p.p99, Duration::from_millis(100), "p99");
    assert_within(p.max, HOUR, "max");
}

#[test]
fn coarsening_keeps_counts_and_histograms_exact() {
    let mut rng = StdRng::seed_from_u64(7);
    let now = t("15:00:00") + 13 * DAY; // 2026-03-02T15:00Z, a whole hour
    let first = now - 31 * DAY;
    let mut samples: Vec<RootSample> = (0..6_000)
        .map(|i| {
            // Half the traffic over 31 days, half in the last 9 hours (across the fine horizon).
            let span = if i % 2 == 0 { 31 * DAY } else { 9 * HOUR };
            let at = now - Duration::from_nanos(rng.random_range(0..span.as_nanos() as u64));
            let latency = Duration::from_micros(lognormal_micros(&mut rng, 11.0, 1.5));
            RootSample {
                at,
                latency_nanos: latency.as_nanos() as u64,
                error: rng.random_bool(0.02),
                weight: rng.random_range(1..4),
            }
        })
        .collect();
    samples.sort_by_key(|s| s.at);
    assert!(samples[0].at >= first);

    let slis = four_slos();
    let mut w = JourneyWindows::new(slis.clone(), 32 * DAY);
    let mut taken = Vec::new();
    for s in &samples {
        assert_eq!(w.record_root(s), Recorded::Counted);
        assert_eq!(w.record_completeness(s.at, !s.error, s.weight), Recorded::Counted);
        taken.push(*s);
    }
    // Whole-hour windows give the same counts in either count tier, and windows starting on a
    // boundary of the histogram tier they fall in (a whole day beyond 7 days, a whole hour beyond
    // 1 hour) the same histograms in any histogram tier; other edges follow the documented rules.
    let first_midnight = t("00:00:00") - 18 * DAY; // 2026-01-30T00:00Z, the day of `first`
    let aligned = [
        Window::Last(3 * DAY),
        Window::Last(30 * DAY),
        Window::Since(now.month_start()),
        Window::Last(HOUR),
    ];
    let hist_aligned = [
        Window::Last(3 * DAY),
        Window::Since(now.month_start()),
        Window::Since(first_midnight),
        Window::Since(Timestamp::EPOCH),
        Window::Last(HOUR),
        Window::Last(2 * HOUR),
    ];
    let unaligned = [
        Window::Last(HOUR + 30 * MINUTE),
        Window::Last(5 * MINUTE),
        Window::Last(7 * HOUR + 30 * MINUTE),
        Window::Last(8 * DAY),
        Window::Since(first + MINUTE),
    ];
    let windows = [aligned.as_slice(), &hist_aligned, &unaligned].concat();
    let nows = [now, now + 45 * MINUTE];
    let before: Vec<Vec<Counts>> = aligned.iter().map(|&win| all_counts(&w, win, now)).collect();
    let hist_before: Vec<Histogram<u64>> = hist_aligned.iter().map(|&win| w.latency_histogram(win, now)).collect();
    check_against_brute_force(&w, &slis, &taken, &windows, &nows);

    w.advance(now);
    assert_eq!(w.fine_from, (now - 6 * HOUR).unix_nanos());
    assert!(w.starts.iter().all(|&s| s >= w.fine_from || s % COARSE_NANOS == 0));
    // Minute histograms from 14:00, hour histograms from 2026-02-23T00:00Z, days before.
    assert_eq!(
        w.lat.from,
        [(now - HOUR).unix_nanos(), (t("00:00:00") + 6 * DAY).unix_nanos()]
    );
    assert!(w.lat.starts.iter().all(|&s| s % w.lat.width_of(s) == 0));
    let day_buckets = w
        .lat
        .starts
        .iter()
        .filter(|&&s| w.lat.width_of(s) == DAY.as_nanos() as i64);
    assert_eq!(day_buckets.count(), 24, "2026-01-30 to 2026-02-22");
    let after: Vec<Vec<Counts>> = aligned.iter().map(|&win| all_counts(&w, win, now)).collect();
    assert_eq!(before, after);
    let hist_after: Vec<Histogram<u64>> = hist_aligned.iter().map(|&win| w.latency_histogram(win, now)).collect();
    let lens = |hs: &[Histogram<u64>]| hs.iter().map(Histogram::len).collect::<Vec<_>>();
    assert_eq!(lens(&hist_before), lens(&hist_after));
    assert!(hist_before == hist_after);
    assert_eq!(
        w.latency_histogram(Window::Since(first_midnight), now),
        exact_histogram(taken.iter().copied())
    );
    check_against_brute_force(&w, &slis, &taken, &windows, &nows);

    // Late samples anywhere in the 31 days land in packed minute, hour or day buckets.
    for _ in 0..500 {
        let at = now - Duration::from_nanos(rng.random_range(0..(31 * DAY).as_nanos() as u64));
        let s = root(
            at,
            Duration::from_millis(rng.random_range(1..2_000)),
            rng.random_bool(0.5),
            rng.random_range(1..4),
        );
        assert_eq!(w.record_root(&s), Recorded::Counted);
        assert_eq!(w.record_completeness(s.at, !s.error, s.weight), Recorded::Counted);
        taken.push(s);
    }
    check_against_brute_force(&w, &slis, &taken, &windows, &nows);
    assert_eq!(
        w.latency_histogram(Window::Since(first_midnight), now + HOUR),
        exact_histogram(taken.iter().copied())
    );
    assert!(w.lat.buckets().1 <= LIVE_BUCKETS);

    // A week later the hour histograms of the oldest day of that week have merged into a day, and
    // every count and histogram still follows the rules.
    w.advance(now + 7 * DAY);
    assert_eq!(w.lat.from[1], (t("00:00:00") + 13 * DAY).unix_nanos());
    let keep = w.keep_from;
    assert_eq!(keep, (first + 6 * DAY).unix_nanos());
    // The count horizon is a whole hour; the day histogram of 2026-02-05 straddles it and stays.
    let (counted, in_hist): (Vec<RootSample>, Vec<RootSample>) = (
        taken.iter().filter(|s| s.at.unix_nanos() >= keep).copied().collect(),
        taken
            .iter()
            .filter(|s| s.at >= first_midnight + 6 * DAY)
            .copied()
            .collect(),
    );
    assert!(counted.len() < in_hist.len());
    check_counts(&w, &slis, &counted, &windows, &[now + 7 * DAY]);
    check_histograms(&w, &in_hist, &windows, &[now + 7 * DAY]);
    assert!(w.lat.buckets().1 <= LIVE_BUCKETS);
}

#[test]
fn late_samples_reach_packed_fine_and_coarse_buckets() {
    let mut w = JourneyWindows::new(
        vec![
            Sli::Latency {
                threshold_nanos: 100_000_000,
            },
            Sli::Error,
        ],
        32 * DAY,
    );
    // 10 ms every other minute from 00:00 to 09:58, none in hour 02: 270 samples.
    for m in (0..600).step_by(2).filter(|m| m / 60 != 2) {
        let _ = w.record_root(&root(t("00:00:00") + m * MINUTE, Duration::from_millis(10), false, 1));
    }
    let now = t("10:00:00");
    w.advance(now);
    assert_eq!(
        Timestamp::from_unix_nanos(w.fine_from),
        t("04:00:00"),
        "hours 00 to 03 are coarse"
    );
    assert_eq!(
        (
            w.counts(0, Window::Since(t("00:00:00")), now),
            w.counts(1, Window::Since(t("00:00:00")), now)
        ),
        (c(270, 0), c(270, 0))
    );

    struct Late<'a> {
        name: &'a str,
        at: &'a str,
        latency: Duration,
        error: bool,
        /// (since, latency SLO, error SLO) after the sample, at 10:00.
        counts: &'a [(&'a str, Counts, Counts)],
        /// (since, exact max latency) after the sample.
        max: &'a [(&'a str, Duration)],
    }
    let cases = [
        Late {
            name: "into a packed hour bucket",
            at: "01:30:00",
            latency: Duration::from_secs(20 * 60),
            error: true,
            counts: &[
                ("00:00:00", c(271, 1), c(271, 1)),
                ("01:00:00", c(241, 1), c(241, 1)),
                // the next bucket starting after 01:00 is 03:00, and it is untouched
                ("01:00:00.000000001", c(210, 0), c(210, 0)),
            ],
            max: &[
                ("00:00:00", Duration::from_secs(20 * 60)),
                ("03:00:00", Duration::from_millis(10)),
            ],
        },
        Late {
            name: "into a missing hour bucket",
            at: "02:15:00",
            latency: Duration::from_secs(3),
            error: false,
            counts: &[
                ("00:00:00", c(272, 2), c(272, 1)),
                ("02:00:00", c(211, 1), c(211, 0)),
                ("02:00:00.000000001", c(210, 0), c(210, 0)),
            ],
            max: &[("02:00:00", Duration::from_secs(3))],
        },
        Late {
            name: "into a packed minute bucket",
            at: "05:18:30",
            latency: Duration::from_secs(5),
            error: false,
            counts: &[
                ("00:00:00", c(273, 3), c(273, 1)),
                ("05:18:00", c(142, 1), c(142, 0)),
                ("05:18:00.000000001", c(140, 0), c(140, 0)),
            ],
            max: &[
                ("02:00:01", Duration::from_secs(5)),
                ("05:19:00", Duration::from_millis(10)),
            ],
        },
        Late {
            name: "into a missing minute bucket",
            at: "07:03:10",
            latency: Duration::from_millis(50),
            error: true,
            counts: &[
                ("00:00:00", c(274, 3), c(274, 2)),
                ("07:03:00", c(89, 0), c(89, 1)),
                ("07:03:00.000000001", c(88, 0), c(88, 0)),
            ],
            max: &[
                ("05:19:00", Duration::from_millis(50)),
                ("07:04:00", Duration::from_millis(10)),
            ],
        },
    ];
    for case in cases {
        assert_eq!(
            w.record_root(&root(t(case.at), case.latency, case.error, 1)),
            Recorded::Counted,
            "{}",
            case.name
        );
        for &(since, latency, error) in case.counts {
            let window = Window::Since(t(since));
            assert_eq!(
                (w.counts(0, window, now), w.counts(1, window, now)),
                (latency, error),
                "{}, since {since}",
                case.name
            );
        }
        for &(since, exact) in case.max {
            let p = w.percentiles(Window::Since(t(since)), now).expect("samples");
            assert_within(p.max, exact, &format!("{}, max since {since}", case.name));
        }
    }
    assert!(w.lat.buckets().1 <= LIVE_BUCKETS);
}

#[test]
fn buckets_past_retention_are_evicted_and_older_samples_refused() {
    let day0 = |hms: &str| t(hms);
    let day1 = |hms: &str| t(hms) + DAY;
    let mut w = JourneyWindows::new(vec![Sli::Error, Sli::Completeness], DAY);
    for at in [day0("00:30:00"), day0("12:00:00"), day1("11:00:00")] {
        assert_eq!(w.record_root(&root(at, Duration::ZERO, true, 1)), Recorded::Counted);
    }
    w.advance(day1("12:30:00"));
    // The horizon is 12:30 a day earlier, aligned down to a whole hour: the 12:00 bucket stays.
    assert_eq!(Timestamp::from_unix_nanos(w.keep_from), day0("12:00:00"));
    let now = day1("12:30:00");
    assert_eq!(w.counts(0, Window::Since(Timestamp::EPOCH), now), c(2, 2));
    assert_eq!(w.counts(0, Window::Last(30 * DAY), now), c(2, 2));
    assert_eq!(w.counts(0, Window::Last(HOUR + 30 * MINUTE), now), c(1, 1));

    let cases = [
        (
            "11:59:59.999999999 the day before",
            day0("11:59:59.999999999"),
            Recorded::TooOld,
        ),
        ("the horizon itself", day0("12:00:00"), Recorded::Counted),
        ("long ago", Timestamp::EPOCH, Recorded::TooOld),
        ("the far past", Timestamp::from_unix_nanos(i64::MIN), Recorded::TooOld),
    ];
    for (name, at, want) in cases {
        assert_eq!(w.record_root(&root(at, Duration::ZERO, true, 1)), want, "root, {name}");
        assert_eq!(w.record_completeness(at, false, 1), want, "completeness, {name}");
        assert_eq!(
            w.record_root(&root(at, Duration::ZERO, true, 0)),
            want,
            "weight 0, {name}"
        );
    }
    assert_eq!(
        w.counts(0, Window::Since(Timestamp::EPOCH), now),
        c(3, 3),
        "only the sample at the horizon"
    );
    assert_eq!(w.counts(1, Window::Since(Timestamp::EPOCH), now), c(1, 1));

    // Nothing left: every count and percentile is empty, and the store starts over.
    w.advance(now + 10 * DAY);
    assert!(w.starts.is_empty());
    assert!(w.lat.starts.is_empty());
    assert_eq!(w.counts(0, Window::Since(Timestamp::EPOCH), now + 10 * DAY), c(0, 0));
    assert_eq!(w.percentiles(Window::Since(Timestamp::EPOCH), now + 10 * DAY), None);
    assert_eq!(
        w.record_root(&root(now + 10 * DAY, Duration::ZERO, false, 1)),
        Recorded::Counted
    );
    assert_eq!(w.counts(0, Window::Last(MINUTE), now + 10 * DAY), c(1, 0));
}

#[test]
fn percentile_windows_align_to_the_histogram_tiers() {
    let d = |days: u32, hms: &str| t(hms) - DAY * days; // `days` before 2026-02-17
    // Weights are powers of two, so a histogram's count names exactly the samples it holds.
    let samples = [
        (d(9, "06:00:00"), 1),
        (d(8, "23:59:59.999999999"), 2),
        (d(7, "00:00:00"), 4),
        (d(1, "13:45:00"), 8),
        (d(0, "10:59:59"), 16),
        (d(0, "11:00:00"), 32),
        (d(0, "12:29:30"), 64),
    ];
    let mut w = JourneyWindows::new(vec![Sli::Error], 32 * DAY);
    for (at, weight) in samples {
        assert_eq!(
            w.record_root(&root(at, Duration::from_millis(20), false, weight)),
            Recorded::Counted
        );
    }
    let now = t("12:30:00");
    w.advance(now);
    // Minute histograms from 11:00, hour histograms from 2026-02-10T00:00Z, day histograms before.
    assert_eq!(w.lat.from, [t("11:00:00").unix_nanos(), d(7, "00:00:00").unix_nanos()]);
    let cases = [
        // In the minute tier the old edge moves up to the next minute, as for counts.
        (Window::Last(30 * MINUTE), 64, 64),
        (Window::Last(61 * MINUTE), 64, 64),
        (Window::Last(90 * MINUTE), 32 + 64, 32 + 64),
        // 10:30 is in the hour tier: the window starts at 11:00, though the counts take 10:59.
        (Window::Last(2 * HOUR), 32 + 64, 16 + 32 + 64),
        (Window::Last(2 * HOUR + 30 * MINUTE), 16 + 32 + 64, 16 + 32 + 64),
        // A day back: from the next whole hour, 13:00 the day before.
        (Window::Last(DAY), 8 + 16 + 32 + 64, 8 + 16 + 32 + 64),
        (Window::Last(7 * DAY), 8 + 16 + 32 + 64, 8 + 16 + 32 + 64),
        (Window::Last(7 * DAY + 12 * HOUR + 30 * MINUTE), 124, 124),
        // 2026-02-09T12:30 is in the day tier: the window starts at the next UTC midnight.
        (Window::Last(8 * DAY), 4 + 8 + 16 + 32 + 64, 2 + 4 + 8 + 16 + 32 + 64),
        (Window::Since(d(8, "00:00:00")), 126, 126),
        (Window::Since(d(8, "00:00:00.000000001")), 124, 2 + 124),
        (Window::Last(30 * DAY), 127, 127),
        (Window::Since(Timestamp::EPOCH), 127, 127),
    ];
    for (window, hist, counts) in cases {
        assert_eq!(w.latency_histogram(window, now).len(), hist, "histogram of {window:?}");
        let p = w.percentiles(window, now).expect("samples");
        assert_eq!(p.count, hist, "percentiles of {window:?}");
        assert_eq!(w.counts(0, window, now), c(counts, 0), "counts of {window:?}");
    }
    // Buckets starting after `now` are left out, in any tier; the old edge is that of the tier it
    // falls in by the last `advance` (2026-02-09T13:59:59 is in the day tier).
    assert_eq!(
        w.latency_histogram(Window::Last(7 * DAY), d(1, "13:59:59")).len(),
        4 + 8
    );
    assert_eq!(w.latency_histogram(Window::Last(7 * DAY), d(1, "12:59:59")).len(), 4);
    assert_eq!(w.percentiles(Window::Last(MINUTE), t("12:00:00")), None);
}

#[test]
fn late_samples_reach_packed_day_hour_and_minute_histograms() {
    let d = |days: u32, hms: &str| t(hms) - DAY * days; // `days` before 2026-02-17
    let mut w = JourneyWindows::new(
        vec![
            Sli::Latency {
                threshold_nanos: 100_000_000,
            },
            Sli::Error,
        ],
        32 * DAY,
    );
    // 10 ms every hour at :30 for 20 days up to 11:30 today, none on the day 12 days back.
    let mut at = d(20, "00:30:00");
    let mut n = 0;
    while at <= t("11:30:00") {
        if !(d(12, "00:00:00")..d(11, "00:00:00")).contains(&at) {
            let _ = w.record_root(&root(at, Duration::from_millis(10), false, 1));
            n += 1;
        }
        at = at + HOUR;
    }
    let now = t("12:00:00");
    w.advance(now);
    assert_eq!(w.lat.from, [t("11:00:00").unix_nanos(), d(7, "00:00:00").unix_nanos()]);
    let width = |at: Timestamp| Duration::from_nanos(w.lat.width_of(at.unix_nanos()) as u64);
    assert_eq!(
        (width(d(9, "17:00:00")), width(d(1, "13:00:00")), width(t("11:00:30"))),
        (DAY, HOUR, MINUTE)
    );
    assert_eq!(w.lat.buckets(), (20 - 1 - 7 + 7 * 24 + 11 + 1, 1));
    assert_eq!(w.counts(0, Window::Since(Timestamp::EPOCH), now), c(n, 0));

    struct Late<'a> {
        name: &'a str,
        at: Timestamp,
        latency: Duration,
        /// (since, exact max latency) after the sample, at 12:00.
        max: &'a [(Timestamp, Duration)],
    }
    let ten_ms = Duration::from_millis(10);
    let cases = [
        Late {
            name: "into a packed day bucket",
            at: d(9, "17:10:00"),
            latency: Duration::from_secs(30),
            max: &[
                (d(9, "00:00:00"), Duration::from_secs(30)),
                // Any later edge that day moves up to the next midnight.
                (d(9, "00:00:00.000000001"), ten_ms),
                (d(9, "17:10:00"), ten_ms),
            ],
        },
        Late {
            name: "into a missing day bucket",
            at: d(12, "23:59:59"),
            latency: Duration::from_secs(20),
            max: &[
                (d(12, "00:00:00"), Duration::from_secs(30)),
                (d(10, "00:00:00"), Duration::from_secs(30)),
                (d(9, "00:00:00.000000001"), ten_ms),
            ],
        },
        Late {
            name: "into a packed hour bucket",
            at: d(1, "13:59:59"),
            latency: Duration::from_secs(10),
            max: &[
                (d(1, "13:00:00"), Duration::from_secs(10)),
                (d(1, "13:00:00.000000001"), ten_ms),
            ],
        },
        Late {
            name: "into a missing minute bucket",
            at: t("11:07:30"),
            latency: Duration::from_secs(5),
            max: &[
                (t("11:07:00"), Duration::from_secs(5)),
                (t("11:07:00.000000001"), ten_ms),
                (d(1, "13:00:00.000000001"), Duration::from_secs(5)),
            ],
        },
    ];
    for (k, case) in cases.iter().enumerate() {
        let s = root(case.at, case.latency, true, 1);
        assert_eq!(w.record_root(&s), Recorded::Counted, "{}", case.name);
        // Counts stay exact, in their own (minute and hour) buckets.
        assert_eq!(
            w.counts(1, Window::Since(Timestamp::EPOCH), now),
            c(n + k as u64 + 1, k as u64 + 1),
            "{}",
            case.name
        );
        for &(since, exact) in case.max {
            let p = w.percentiles(Window::Since(since), now).expect("samples");
            assert_within(p.max, exact, &format!("{}, max since {since}", case.name));
        }
    }
    assert_eq!(
        w.percentiles(Window::Since(Timestamp::EPOCH), now).map(|p| p.count),
        Some(n + 4)
    );
    assert_eq!(w.lat.buckets().0, 20 - 7 + 7 * 24 + 11 + 1 + 1);
    assert!(w.lat.buckets().1 <= LIVE_BUCKETS);
}

#[test]
fn the_retention_horizon_follows_the_newest_bucket_between_advances() {
    let mut w = JourneyWindows::new(vec![Sli::Error], DAY);
    let day5 = t("12:00:00") + 5 * DAY;
    assert_eq!(w.record_root(&root(day5, Duration::ZERO, false, 1)), Recorded::Counted);
    assert_eq!(
        w.record_root(&root(day5 - 2 * DAY, Duration::ZERO, false, 1)),
        Recorded::TooOld
    );
    assert_eq!(
        w.record_root(&root(day5 - DAY, Duration::ZERO, false, 1)),
        Recorded::Counted
    );
    assert_eq!(w.counts(0, Window::Last(2 * DAY), day5), c(2, 0));
}

#[test]
fn extreme_inputs_never_panic() {
    let mut w = JourneyWindows::new(four_slos(), Duration::MAX);
    let ends = [
        Timestamp::from_unix_nanos(i64::MIN),
        Timestamp::from_unix_nanos(i64::MAX),
        Timestamp::EPOCH,
    ];
    for &at in &ends {
        let s = RootSample {
            at,
            latency_nanos: u64::MAX,
            error: true,
            weight: u32::MAX,
        };
        let _ = w.record_root(&s);
        let _ = w.record_completeness(at, false, u32::MAX);
        for &now in &ends {
            for window in [
                Window::Last(Duration::MAX),
                Window::Last(Duration::ZERO),
                Window::Since(at),
            ] {
                let got = w.counts(0, window, now);
                assert!(got.bad <= got.total);
                let _ = w.percentiles(window, now);
            }
        }
        w.advance(at);
    }
    let _ = format!("{w:?}");
}

// ---------------------------------------------------------------------------------------------
// Helpers for the comparison tests
// ---------------------------------------------------------------------------------------------

impl JourneyWindows {
    /// The width of the count bucket a sample at `at` lands in now.
    fn bucket_width(&self, at: Timestamp) -> i64 {
        if at.unix_nanos() < self.fine_from {
            COARSE_NANOS
        } else {
            FINE_NANOS
        }
    }

    /// The start of the histogram bucket a sample at `at` lands in now.
    fn hist_bucket_start(&self, at: Timestamp) -> Timestamp {
        let at = at.unix_nanos();
        Timestamp::from_unix_nanos(floor_to(at, self.lat.width_of(at)))
    }
}

/// A lognormal latency in microseconds (Box–Muller), at least 1 µs and at most 1 h.
fn lognormal_micros(rng: &mut impl Rng, mu: f64, sigma: f64) -> u64 {
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    ((mu + sigma * z).exp() as u64).clamp(1, hist::HIGHEST_MICROS)
}

fn exact_histogram(samples: impl Iterator<Item = RootSample>) -> Histogram<u64> {
    let mut h = hist::new_histogram();
    // Recording a count of 0 would still move the histogram's min and max.
    for s in samples.filter(|s| s.weight > 0) {
        h.saturating_record_n(s.latency_nanos / 1_000, u64::from(s.weight));
    }
    h
}

fn window_from(window: Window, now: Timestamp) -> Timestamp {
    match window {
        Window::Last(d) => now - d,
        Window::Since(t) => t,
    }
}

/// Counts every SLO by hand from the kept samples, using the documented rule: a sample counts
/// when its bucket (hour before `fine_from`, minute after) starts within `[from, now]`.
/// The tests record completeness as `!error`.
fn brute_force(w: &JourneyWindows, slis: &[Sli], kept: &[RootSample], window: Window, now: Timestamp) -> Vec<Counts> {
    let from = window_from(window, now);
    let mut out = vec![Counts::default(); slis.len()];
    for s in kept {
        let start = Timestamp::from_unix_nanos(floor_to(s.at.unix_nanos(), w.bucket_width(s.at)));
        if start < from || start > now {
            continue;
        }
        for (slo, sli) in slis.iter().enumerate() {
            let bad = match *sli {
                Sli::Latency { threshold_nanos } => s.latency_nanos > threshold_nanos,
                Sli::Error | Sli::Completeness | Sli::Fragmentation | Sli::ExportLag { .. } | Sli::ClockSkew => s.error,
            };
            out[slo].total += u64::from(s.weight);
            out[slo].bad += u64::from(s.weight) * u64::from(bad);
        }
    }
    out
}

fn assert_within(got: Duration, exact: Duration, what: &str) {
    let ok = got >= exact && got.as_secs_f64() <= exact.as_secs_f64() * 1.01;
    assert!(ok, "{what}: {got:?} is not within 1% above {exact:?}");
}

/// The histogram of the kept samples by hand, using the documented rule: a sample is in when its
/// histogram bucket (per the histogram tiers as of the last `advance`) starts within `[from, now]`.
fn brute_force_histogram(w: &JourneyWindows, kept: &[RootSample], window: Window, now: Timestamp) -> Histogram<u64> {
    let from = window_from(window, now);
    exact_histogram(kept.iter().copied().filter(|s| {
        let start = w.hist_bucket_start(s.at);
        from <= start && start <= now
    }))
}

/// Compares counts and histograms with the brute force, when both hold the same samples.
fn check_against_brute_force(
    w: &JourneyWindows,
    slis: &[Sli],
    samples: &[RootSample],
    windows: &[Window],
    nows: &[Timestamp],
) {
    check_counts(w, slis, samples, windows, nows);
    check_histograms(w, samples, windows, nows);
}

fn check_counts(w: &JourneyWindows, slis: &[Sli], samples: &[RootSample], windows: &[Window], nows: &[Timestamp]) {
    for &now in nows {
        for &window in windows {
            let got: Vec<Counts> = (0..slis.len()).map(|slo| w.counts(slo, window, now)).collect();
            assert_eq!(got, brute_force(w, slis, samples, window, now), "{window:?} at {now}");
        }
    }
}

fn check_histograms(w: &JourneyWindows, samples: &[RootSample], windows: &[Window], nows: &[Timestamp]) {
    for &now in nows {
        for &window in windows {
            let got = w.latency_histogram(window, now);
            let want = brute_force_histogram(w, samples, window, now);
            assert!(
                got == want,
                "histogram of {window:?} at {now}: {} samples, want {}",
                got.len(),
                want.len()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Ages before `now` whose samples, after `advance(now)`, sit in every kind of histogram bucket:
/// the newest minutes (live or packed), older minutes, hours (across the count tiers' 6 h edge)
/// and days.
const AGES: [Duration; 12] = [
    Duration::from_secs(1),
    Duration::from_secs(59),
    Duration::from_secs(61),
    Duration::from_secs(10 * 60),
    Duration::from_secs(50 * 60 + 7),
    Duration::from_secs(61 * 60),
    Duration::from_secs(3 * 3_600 + 11),
    Duration::from_secs(9 * 3_600),
    Duration::from_secs(2 * 86_400 + 5),
    Duration::from_secs(7 * 86_400 - 3_600),
    Duration::from_secs(7 * 86_400 + 18 * 3_600),
    Duration::from_secs(20 * 86_400 + 3 * 3_600),
];

/// A sample (seconds after the origin, latency ms, error, weight) or an advance to a second after it.
type Op = (Option<(u64, u64, bool, u32)>, u64);

fn any_order_ops(span: Duration) -> impl Strategy<Value = Vec<Op>> {
    let secs = span.as_secs();
    prop::collection::vec(
        prop_oneof![
            4 => (0..secs, 0..2_000u64, any::<bool>(), 0..4u32).prop_map(|sample| (Some(sample), 0)),
            1 => (0..secs).prop_map(|s| (None, s)),
        ],
        1..150,
    )
}

/// Plays `ops` from 2026-02-17T00:00Z, keeping by hand which samples the counts and the
/// histograms still hold (evicted count buckets start before the horizon, evicted histogram
/// buckets end at or before it), then compares every window with the brute force.
fn check_any_order(ops: Vec<Op>, retention: Duration, windows: &[Window]) -> Result<(), TestCaseError> {
    let origin = t("00:00:00");
    let slis = vec![
        Sli::Latency {
            threshold_nanos: 500_000_000,
        },
        Sli::Error,
    ];
    let mut w = JourneyWindows::new(slis.clone(), retention);
    let mut stored = Stored::default();
    let (mut counted, mut in_hist) = (Vec::new(), Vec::new());
    let mut latest = origin;
    for (sample, advance_to) in ops {
        match sample {
            Some((secs, ms, error, weight)) => {
                let s = root(
                    origin + Duration::from_secs(secs),
                    Duration::from_millis(ms),
                    error,
                    weight,
                );
                let expected = if s.at.unix_nanos() < w.keep_from {
                    Recorded::TooOld
                } else {
                    Recorded::Counted
                };
                prop_assert_eq!(w.record_root(&s), expected);
                if expected == Recorded::Counted {
                    counted.push(s);
                    in_hist.push(s);
                }
                latest = latest.max(s.at);
            }
            // Every fourth advance is a flush instead, between samples.
            None if advance_to % 4 == 0 => stored.flush(&mut w),
            None => {
                let now = origin + Duration::from_secs(advance_to);
                w.advance(now);
                stored.flush(&mut w);
                // Samples in evicted buckets are gone for good.
                let keep = w.keep_from;
                counted.retain(|s| s.at.unix_nanos() >= keep);
                in_hist.retain(|s| {
                    let start = w.hist_bucket_start(s.at).unix_nanos();
                    start.saturating_add(w.lat.width_of(start)) > keep
                });
                latest = latest.max(now);
            }
        }
    }
    for now in [latest, latest - 37 * MINUTE] {
        for &window in windows {
            let got: Vec<Counts> = (0..2).map(|slo| w.counts(slo, window, now)).collect();
            prop_assert_eq!(
                &got,
                &brute_force(&w, &slis, &counted, window, now),
                "{:?} at {}",
                window,
                now
            );
            let got = w.latency_histogram(window, now);
            let want = brute_force_histogram(&w, &in_hist, window, now);
            prop_assert!(
                got == want,
                "histogram of {:?} at {}: {} samples, want {}",
                window,
                now,
                got.len(),
                want.len()
            );
        }
    }
    let all: u64 = in_hist.iter().map(|s| u64::from(s.weight)).sum();
    prop_assert_eq!(w.latency_histogram(Window::Since(Timestamp::EPOCH), latest).len(), all);
    prop_assert!(w.lat.buckets().1 <= LIVE_BUCKETS);

    // What the changes wrote, restored into a new store, answers every window as the original.
    w.advance(latest);
    stored.flush(&mut w);
    let mut none = Changes::default();
    w.take_changes(&mut none);
    prop_assert!(none.is_empty(), "a second take reports nothing: {:?}", none);
    let mut r = stored.restore(&slis, retention, latest);
    for now in [latest, latest - 37 * MINUTE, latest - 2 * DAY] {
        for &window in windows.iter().chain(&[Window::Since(Timestamp::EPOCH)]) {
            for slo in 0..2 {
                let (got, want) = (r.counts(slo, window, now), w.counts(slo, window, now));
                prop_assert_eq!(got, want, "restored counts of SLO {} over {:?} at {}", slo, window, now);
            }
            prop_assert!(
                r.latency_histogram(window, now) == w.latency_histogram(window, now),
                "restored histogram of {:?} at {}",
                window,
                now
            );
        }
    }
    // Restoring reports exactly the buckets it merged; storing them and restoring again is stable.
    stored.flush(&mut r);
    let again = stored.restore(&slis, retention, latest);
    for &window in windows {
        prop_assert_eq!(again.counts(0, window, latest), r.counts(0, window, latest));
        prop_assert!(again.latency_histogram(window, latest) == r.latency_histogram(window, latest));
    }
    Ok(())
}

/// A store of the rows [`JourneyWindows::take_changes`] reports, kept as a database would: a
/// bucket replaces the rows inside its span.
#[derive(Debug, Default)]
struct Stored {
    counts: std::collections::BTreeMap<i64, CountBucket>,
    latencies: std::collections::BTreeMap<i64, LatencyBucket>,
}

impl Stored {
    fn flush(&mut self, w: &mut JourneyWindows) {
        let mut changes = Changes::default();
        w.take_changes(&mut changes);
        for b in changes.counts {
            let (s, e) = (b.start.unix_nanos(), (b.start + b.width).unix_nanos());
            self.counts.retain(|&k, _| !(s..e).contains(&k));
            self.counts.insert(s, b);
        }
        for b in changes.latencies {
            let (s, e) = (b.start.unix_nanos(), (b.start + b.width).unix_nanos());
            self.latencies.retain(|&k, _| !(s..e).contains(&k));
            self.latencies.insert(s, b);
        }
        // Retention, as a database deletes rows: those ending at or before the horizon.
        let horizon = w.retained_from().unix_nanos();
        self.counts.retain(|_, b| (b.start + b.width).unix_nanos() > horizon);
        self.latencies.retain(|_, b| (b.start + b.width).unix_nanos() > horizon);
    }

    fn restore(&self, slis: &[Sli], retention: Duration, clock: Timestamp) -> JourneyWindows {
        let mut w = JourneyWindows::new(slis.to_vec(), retention);
        w.advance(clock);
        for b in self.counts.values() {
            let _ = w.restore_counts(b.start, b.width, &b.counts);
        }
        for b in self.latencies.values() {
            let _ = w
                .restore_latencies(b.start, b.width, &b.encoded)
                .expect("stored histograms decode");
        }
        w.advance(clock);
        w
    }
}

/// Latency distributions in whole microseconds (≥ 1 µs, ≤ 1 h), heavy tails included.
fn latencies_micros() -> impl Strategy<Value = Vec<u64>> {
    let uniform = prop::collection::vec(1..=hist::HIGHEST_MICROS, 1..300).boxed();
    let small = prop::collection::vec(1..=300u64, 1..300).boxed();
    let lognormal = (
        6.0..14.0f64,
        0.1..3.0f64,
        prop::collection::vec((1e-12..1.0f64, 0.0..1.0f64), 1..300),
    )
        .prop_map(|(mu, sigma, us)| {
            us.into_iter()
                .map(|(u1, u2)| {
                    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    ((mu + sigma * z).exp() as u64).clamp(1, hist::HIGHEST_MICROS)
                })
                .collect()
        })
        .boxed();
    let pareto = (
        10.0..10_000.0f64,
        0.5..3.0f64,
        prop::collection::vec(1e-12..1.0f64, 1..300),
    )
        .prop_map(|(scale, alpha, us)| {
            us.into_iter()
                .map(|u| ((scale / u.powf(1.0 / alpha)) as u64).clamp(1, hist::HIGHEST_MICROS))
                .collect()
        })
        .boxed();
    prop_oneof![uniform, small, lognormal, pareto]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Percentiles are within HDR precision of sorted[ceil(q·n) − 1] over the weighted samples the
    /// window holds by the histogram rule, across live, packed, minute, hour and day buckets.
    #[test]
    fn percentiles_are_within_one_percent(
        micros in latencies_micros(),
        placement in prop::collection::vec((0..AGES.len(), 1..4u32, 0..1_000u64), 300),
        window in 0..5usize,
    ) {
        let now = t("18:00:00");
        let window = [
            Window::Last(30 * DAY),
            Window::Last(90 * MINUTE),
            Window::Last(DAY),
            Window::Last(7 * DAY + 30 * MINUTE),
            Window::Since(now - 8 * DAY),
        ][window];
        let mut w = JourneyWindows::new(vec![Sli::Error], 32 * DAY);
        let mut samples = Vec::new();
        for (&v, &(age, weight, sub_micro)) in micros.iter().zip(&placement) {
            // In any order: many samples arrive late, into packed buckets.
            let s = RootSample { at: now - AGES[age], latency_nanos: v * 1_000 + sub_micro, error: false, weight };
            prop_assert_eq!(w.record_root(&s), Recorded::Counted);
            samples.push(s);
        }
        w.advance(now);
        let from = window_from(window, now);
        let mut exact: Vec<u64> = samples
            .iter()
            .filter(|s| (from..=now).contains(&w.hist_bucket_start(s.at)))
            .flat_map(|s| std::iter::repeat_n(s.latency_nanos / 1_000, s.weight as usize))
            .collect();
        exact.sort_unstable();
        let Some(p) = w.percentiles(window, now) else {
            prop_assert!(exact.is_empty());
            return Ok(());
        };
        prop_assert_eq!(p.count, exact.len() as u64);
        let rank = |q: f64| ((q * exact.len() as f64).ceil() as usize).max(1) - 1;
        for (name, got, want) in [
            ("p50", p.p50, exact[rank(0.5)]),
            ("p95", p.p95, exact[rank(0.95)]),
            ("p99", p.p99, exact[rank(0.99)]),
            ("max", p.max, exact[exact.len() - 1]),
        ] {
            let got = got.as_micros() as u64;
            prop_assert!(got >= want && (got - want) as f64 <= want as f64 * 0.01, "{}: got {} µs, exact {} µs", name, got, want);
        }
    }

    /// Any interleaving of (late, early, refused) samples and advances over 3 days with a 1-day
    /// retention gives the brute-force counts and histograms (minute and hour histograms).
    #[test]
    fn counts_and_histograms_match_brute_force_under_any_order(ops in any_order_ops(3 * DAY)) {
        let windows = [
            Window::Last(5 * MINUTE),
            Window::Last(HOUR),
            Window::Last(90 * MINUTE),
            Window::Last(6 * HOUR),
            Window::Last(3 * DAY),
            Window::Since(t("10:00:00")),
        ];
        check_any_order(ops, DAY, &windows)?;
    }

    /// The same over 12 days with a 9-day retention: day histograms too, and day histograms that
    /// straddle the retention horizon.
    #[test]
    fn counts_and_histograms_match_brute_force_over_weeks(ops in any_order_ops(12 * DAY)) {
        let windows = [
            Window::Last(30 * MINUTE),
            Window::Last(2 * HOUR + 30 * MINUTE),
            Window::Last(DAY),
            Window::Last(8 * DAY),
            Window::Last(30 * DAY),
            Window::Since(t("05:00:00") + 3 * DAY),
        ];
        check_any_order(ops, 9 * DAY, &windows)?;
    }

    /// Arbitrary instants, latencies, weights and windows: no panic, never more bad than total.
    #[test]
    fn any_input_is_safe(
        ops in prop::collection::vec((any::<i64>(), any::<u64>(), any::<bool>(), any::<u32>(), any::<u8>()), 1..40),
        retention in any::<u64>(),
    ) {
        let mut w = JourneyWindows::new(four_slos(), Duration::from_nanos(retention));
        for (at, latency_nanos, error, weight, op) in ops {
            let at = Timestamp::from_unix_nanos(at);
            match op % 4 {
                0 => { let _ = w.record_root(&RootSample { at, latency_nanos, error, weight }); }
                1 => { let _ = w.record_completeness(at, error, weight); }
                2 => w.advance(at),
                _ => {
                    for window in [Window::Last(Duration::from_nanos(latency_nanos)), Window::Since(Timestamp::from_unix_nanos(latency_nanos as i64))] {
                        for slo in 0..5 {
                            let got = w.counts(slo, window, at);
                            prop_assert!(got.bad <= got.total);
                        }
                        let _ = w.percentiles(window, at);
                    }
                }
            }
        }
        prop_assert!(w.memory_bytes() > 0);
    }
}

#[test]
fn changes_report_whole_buckets_once_and_restore_puts_them_back() {
    let slis = vec![
        Sli::Latency {
            threshold_nanos: 300_000_000,
        },
        Sli::Error,
    ];
    let mut w = JourneyWindows::new(slis.clone(), 32 * DAY);
    w.advance(t("12:00:00"));
    let ms = Duration::from_millis;
    for (at, latency, error) in [
        ("12:00:10", ms(100), false),
        ("12:00:50", ms(400), true),
        ("12:01:05", ms(200), false),
    ] {
        assert_eq!(w.record_root(&root(t(at), latency, error, 1)), Recorded::Counted);
    }
    let mut ch = Changes::default();
    w.take_changes(&mut ch);
    let starts: Vec<_> = ch.counts.iter().map(|b| (b.start, b.width, b.counts.clone())).collect();
    assert_eq!(
        starts,
        [
            (t("12:00:00"), MINUTE, vec![c(2, 1), c(2, 1)]),
            (t("12:01:00"), MINUTE, vec![c(1, 0), c(1, 0)]),
        ]
    );
    assert_eq!(ch.latencies.len(), 2);
    // The buckets of a span can be read whole at any time, changed or not.
    assert_eq!(w.count_buckets(t("12:00:00"), t("13:00:00")), ch.counts);
    assert_eq!(w.count_buckets(t("12:00:30"), t("12:01:00")), []);
    assert_eq!(w.count_buckets(t("12:01:00"), t("12:01:01")), ch.counts[1..]);
    // The newest histograms are live: plain V2 (cookie 0x1c849313), no deflate.
    assert_eq!(ch.latencies[1].encoded[..4], [0x1c, 0x84, 0x93, 0x13]);

    // Nothing new: nothing reported. A late sample reports its bucket alone, whole.
    let mut ch = Changes::default();
    w.take_changes(&mut ch);
    assert!(ch.is_empty());
    let _ = w.record_completeness(t("12:00:30"), false, 3);
    let _ = w.record_root(&root(t("12:00:20"), ms(900), false, 1));
    w.take_changes(&mut ch);
    assert_eq!(ch.counts.len(), 1);
    assert_eq!(ch.counts[0].counts, [c(3, 2), c(3, 1)]);

    // Seven hours on, the minute buckets of 12:00 merge into an hour bucket: it is reported
    // whole (so a store replaces the minute rows), the histograms' hour bucket too.
    w.advance(t("19:00:30"));
    let mut ch = Changes::default();
    w.take_changes(&mut ch);
    assert_eq!(
        ch.counts,
        [CountBucket {
            start: t("12:00:00"),
            width: HOUR,
            counts: vec![c(4, 2), c(4, 1)],
        }]
    );
    assert_eq!((ch.latencies[0].start, ch.latencies[0].width), (t("12:00:00"), HOUR));
    // Packed histograms are V2 + deflate (cookie 0x1c849314).
    assert_eq!(ch.latencies[0].encoded[..4], [0x1c, 0x84, 0x93, 0x14]);

    // Restored from the hour rows, the store answers as before.
    let mut r = JourneyWindows::new(slis, 32 * DAY);
    r.advance(t("19:00:30"));
    assert_eq!(
        r.restore_counts(ch.counts[0].start, HOUR, &ch.counts[0].counts),
        Recorded::Counted
    );
    let b = &ch.latencies[0];
    assert_eq!(r.restore_latencies(b.start, b.width, &b.encoded), Ok(Recorded::Counted));
    r.advance(t("19:00:30"));
    let now = t("19:00:30");
    assert_eq!(r.counts(0, Window::Last(DAY), now), c(4, 2));
    assert_eq!(
        r.percentiles(Window::Last(DAY), now),
        w.percentiles(Window::Last(DAY), now)
    );
    let mut none = Changes::default();
    r.take_changes(&mut none);
    assert!(
        none.is_empty(),
        "rows restored into buckets of their own span are not reported again"
    );
    // Unless the store asks for them, to rewrite them in another layout.
    r.mark_counts_changed();
    r.take_changes(&mut none);
    assert_eq!((none.counts.len(), none.latencies.len()), (1, 0));
    assert_eq!(none.counts[0].counts, ch.counts[0].counts);

    // Rows past the retention are refused; bytes that are not a histogram are an error.
    assert_eq!(
        r.restore_counts(t("12:00:00") - 40 * DAY, HOUR, &[c(1, 0)]),
        Recorded::TooOld
    );
    let err = r
        .restore_latencies(t("13:00:00"), HOUR, b"not a histogram")
        .unwrap_err();
    assert_eq!(err.start, t("13:00:00"));
    assert!(err.to_string().contains("not an HDR V2 histogram"), "{err}");
}

#[test]
fn reslot_keeps_the_history_of_kept_slots_and_starts_new_ones_empty() {
    let day = 86_400;
    let mut w = JourneyWindows::new(
        vec![
            Sli::Error,
            Sli::Latency {
                threshold_nanos: 1_000_000_000,
            },
        ],
        31 * DAY,
    );
    // Two days of history: coarse hour buckets for the first day, fine minutes at the end.
    let start = t("00:00:00") - Duration::from_secs(2 * day);
    for m in 0..(2 * 24 * 60) {
        let at = start + Duration::from_secs(m * 60 + 7);
        let slow = m % 3 == 0;
        let r = root(at, Duration::from_millis(if slow { 1_500 } else { 20 }), m % 5 == 0, 2);
        assert_eq!(w.record_root(&r), Recorded::Counted);
        w.advance(at);
    }
    let now = start + Duration::from_secs(2 * day);
    w.advance(now);
    let mut drained = Changes::default();
    w.take_changes(&mut drained);

    let next = w.reslot(
        vec![
            Sli::Latency {
                threshold_nanos: 1_000_000_000,
            },
            Sli::Completeness,
            Sli::Error,
        ],
        &[Some(1), None, Some(0)],
        31 * DAY,
    );
    for window in [
        Window::Last(5 * MINUTE),
        Window::Last(HOUR),
        Window::Last(DAY),
        Window::Last(7 * DAY),
    ] {
        assert_eq!(next.counts(0, window, now), w.counts(1, window, now), "{window:?}");
        assert_eq!(next.counts(1, window, now), Counts::default(), "{window:?}");
        assert_eq!(next.counts(2, window, now), w.counts(0, window, now), "{window:?}");
        assert_eq!(next.percentiles(window, now), w.percentiles(window, now), "{window:?}");
    }
    // 2,880 roots of weight 2; every 5th an error, every 3rd slow.
    assert_eq!(next.lifetime(2), c(5_760, 1_152));
    assert_eq!(next.lifetime(0), c(5_760, 1_920));
    assert_eq!(next.lifetime(1), c(0, 0));

    // Every count bucket is to be rewritten in the new layout; new samples follow the new slots.
    let mut next = next;
    let mut changes = Changes::default();
    next.take_changes(&mut changes);
    assert_eq!(
        changes.counts.len(),
        next.count_buckets(Timestamp::EPOCH, now + HOUR).len()
    );
    assert!(changes.counts.iter().all(|b| b.counts.len() == 3));
    assert_eq!(
        next.record_root(&root(now, Duration::from_secs(2), true, 1)),
        Recorded::Counted
    );
    assert_eq!(next.record_completeness(now, false, 1), Recorded::Counted);
    // The window also holds the previous minute's root (weight 2, fast, no error).
    assert_eq!(
        all_counts(&next, Window::Last(MINUTE), now),
        vec![c(3, 1), c(1, 1), c(3, 1)]
    );
}

/// Issue 7: several instances' windows of a journey, merged, answer every window like one store
/// that took all their samples: counts add exactly, histograms merge (same percentiles), and
/// lifetimes add. Without others the view is the own windows.
#[test]
fn merged_windows_answer_like_one_store_of_every_sample() {
    let mut rng = StdRng::seed_from_u64(7);
    let now = t("12:05:52");
    let mut all = JourneyWindows::new(four_slos(), 32 * DAY);
    let mut a = all.empty_like();
    let mut others = vec![all.empty_like(), all.empty_like()];
    let [b, c] = &mut others[..] else { unreachable!() };
    for w in [&mut all, &mut a, &mut *b, &mut *c] {
        w.advance(now - 3 * DAY);
    }
    for i in 0..6_000u32 {
        let s = root(
            now - Duration::from_secs(rng.random_range(0..3 * 86_400)),
            Duration::from_micros(rng.random_range(1_000..2_000_000)),
            rng.random_bool(0.05),
            rng.random_range(0..3),
        );
        let part = match i % 3 {
            0 => &mut a,
            1 => &mut *b,
            _ => &mut *c,
        };
        assert_eq!(part.record_root(&s), all.record_root(&s));
        let complete = rng.random_bool(0.9);
        assert_eq!(
            part.record_completeness(s.at, complete, s.weight),
            all.record_completeness(s.at, complete, s.weight)
        );
    }
    for w in [&mut all, &mut a, b, c] {
        w.advance(now);
    }
    let merged = Merged::new(&a, &others);
    for window in [5 * MINUTE, HOUR, 6 * HOUR, DAY, 3 * DAY, 30 * DAY] {
        let window = Window::Last(window);
        for slot in 0..4 {
            assert_eq!(
                merged.counts(slot, window, now),
                all.counts(slot, window, now),
                "{window:?}"
            );
            assert_eq!(Merged::from(&a).counts(slot, window, now), a.counts(slot, window, now));
        }
        assert_eq!(
            merged.percentiles(window, now),
            all.percentiles(window, now),
            "{window:?}"
        );
        assert_eq!(
            Merged::from(&others[0]).percentiles(window, now),
            others[0].percentiles(window, now)
        );
    }
    for slot in 0..4 {
        assert_eq!(merged.lifetime(slot), all.lifetime(slot));
    }
    assert!(a.same_layout(&others[1]) && !a.same_layout(&JourneyWindows::new(vec![Sli::Error], DAY)));
}

/// Issue 10: the trace-health SLIs count closed traces, each by its own rule, beside completeness.
#[test]
fn trace_health_slis_judge_closed_traces_by_their_own_rule() {
    let slis = vec![
        Sli::Completeness,
        Sli::Fragmentation,
        Sli::ExportLag {
            threshold_nanos: 2_000_000_000,
        },
        Sli::ClockSkew,
        Sli::Error,
    ];
    let mut w = JourneyWindows::new(slis, DAY);
    let t = Timestamp::from_unix_secs(1_780_000_000);
    w.advance(t);
    let v = |complete, fragmented, skewed, lag_ms: u64| TraceVerdict {
        complete,
        fragmented,
        skewed,
        max_lag_nanos: lag_ms * 1_000_000,
    };
    // (verdict, weight)
    let traces = [
        (v(true, false, false, 100), 1),
        (v(false, true, false, 2_000), 2), // exactly the threshold: good
        (v(true, false, true, 2_001), 3),
        (v(false, true, true, 0), 4),
    ];
    for (verdict, weight) in &traces {
        assert_eq!(w.record_trace(t, verdict, *weight), Recorded::Counted);
    }
    let got: Vec<(u64, u64)> = (0..5)
        .map(|slot| {
            let c = w.counts(slot, Window::Last(Duration::from_secs(60)), t);
            (c.total, c.bad)
        })
        .collect();
    // completeness bad 2+4, fragmentation 2+4, export_lag 3, clock_skew 3+4; the error SLO
    // counts roots only.
    assert_eq!(got, [(10, 6), (10, 6), (10, 3), (10, 7), (0, 0)]);
    assert!(Sli::Fragmentation.on_close() && !Sli::Error.on_close());
}
