//! The bucket tiers, as data: how wide the buckets of each age are and how long they are kept. The
//! counts and the latency histograms have a table each.

use std::time::Duration;

/// One resolution of the window store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    pub name: &'static str,
    /// Buckets of this tier start at multiples of `width` since the Unix epoch (for a day: UTC
    /// midnights).
    pub width: Duration,
    /// Up to which age buckets stay in this tier before they move to the next one (or are evicted).
    pub keep: Keep,
}

/// Up to which age a tier keeps its buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Buckets stay while younger than this age, measured from the clock of the last
    /// [`advance`](super::JourneyWindows::advance); a whole bucket of the next tier moves on at
    /// once, when all of it is older.
    For(Duration),
    /// The retention passed to [`JourneyWindows::new`](super::JourneyWindows::new).
    Retention,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

/// The tiers of the good/bad counts, finest first.
///
/// Recent traffic sits in minute buckets, so short alert windows (5m, 30m, 1h) are exact to the
/// minute. Once a whole hour is older than the fine tier keeps, its minute buckets merge into one
/// hour bucket: long windows (3d, 30d, a calendar month) lose nothing in their counts, only their
/// edges move to whole hours. A count row costs the same in any tier, so there is no day tier.
pub const TIERS: [Tier; 2] = [
    Tier {
        name: "fine",
        width: MINUTE,
        keep: Keep::For(Duration::from_secs(6 * 3_600)),
    },
    Tier {
        name: "coarse",
        width: HOUR,
        keep: Keep::Retention,
    },
];

/// The tiers of the latency histograms, finest first.
///
/// A compressed histogram grows with the traffic it holds (hundreds of bytes to a few KiB), so
/// histograms coarsen sooner than counts: minutes for the last hour (percentiles of short windows
/// stay exact to the minute), hours for a week, UTC days beyond. A 30-day percentile query then
/// merges about 30 day, 168 hour and 120 minute histograms, and its old edge moves up to a whole
/// day.
pub const HISTOGRAM_TIERS: [Tier; 3] = [
    Tier {
        name: "minute",
        width: MINUTE,
        keep: Keep::For(HOUR),
    },
    Tier {
        name: "hour",
        width: HOUR,
        keep: Keep::For(Duration::from_secs(7 * 86_400)),
    },
    Tier {
        name: "day",
        width: DAY,
        keep: Keep::Retention,
    },
];

/// Width of a fine count bucket, in nanoseconds.
pub(super) const FINE_NANOS: i64 = TIERS[0].width.as_nanos() as i64;
/// Width of a coarse count bucket, in nanoseconds.
pub(super) const COARSE_NANOS: i64 = TIERS[1].width.as_nanos() as i64;
/// How long the fine count tier keeps a bucket, in nanoseconds.
pub(super) const FINE_KEEP_NANOS: i64 = keep_nanos(&TIERS[0]);

/// Number of histogram tiers.
pub(super) const HIST_TIER_COUNT: usize = HISTOGRAM_TIERS.len();
/// Widths of the histogram tiers, in nanoseconds, finest first.
pub(super) const HIST_WIDTHS: [i64; HIST_TIER_COUNT] = {
    let mut w = [0; HIST_TIER_COUNT];
    let mut i = 0;
    while i < HIST_TIER_COUNT {
        w[i] = HISTOGRAM_TIERS[i].width.as_nanos() as i64;
        i += 1;
    }
    w
};
/// Up to which age each histogram tier but the last keeps its buckets, in nanoseconds.
pub(super) const HIST_KEEPS: [i64; HIST_TIER_COUNT - 1] = {
    let mut k = [0; HIST_TIER_COUNT - 1];
    let mut i = 0;
    while i + 1 < HIST_TIER_COUNT {
        k[i] = keep_nanos(&HISTOGRAM_TIERS[i]);
        i += 1;
    }
    k
};

const fn keep_nanos(tier: &Tier) -> i64 {
    match tier.keep {
        Keep::For(d) => d.as_nanos() as i64,
        Keep::Retention => panic!("only the last tier keeps its buckets for the retention"),
    }
}

// The count store is written for exactly two tiers and the histogram store for tiers of growing
// widths and ages; these checks keep the tables honest.
const _: () = {
    assert!(
        FINE_NANOS > 0 && COARSE_NANOS % FINE_NANOS == 0,
        "a coarse bucket is a whole number of fine buckets"
    );
    assert!(
        FINE_KEEP_NANOS % COARSE_NANOS == 0,
        "the fine tier keeps whole coarse buckets"
    );
    assert!(
        matches!(TIERS[1].keep, Keep::Retention),
        "the coarse tier lasts for the retention"
    );
    assert!(HIST_WIDTHS[0] > 0, "histogram buckets have a width");
    let mut i = 1;
    while i < HIST_TIER_COUNT {
        assert!(
            HIST_WIDTHS[i] % HIST_WIDTHS[i - 1] == 0,
            "a histogram bucket is a whole number of buckets of the finer tier"
        );
        assert!(
            i + 1 == HIST_TIER_COUNT || HIST_KEEPS[i] >= HIST_KEEPS[i - 1],
            "coarser histogram tiers keep older buckets"
        );
        i += 1;
    }
    assert!(
        matches!(HISTOGRAM_TIERS[HIST_TIER_COUNT - 1].keep, Keep::Retention),
        "the coarsest histogram tier lasts for the retention"
    );
};

/// The start of the bucket of `width` nanoseconds holding `t` (floor division; saturates at the
/// bottom of the time range instead of wrapping).
pub(super) fn floor_to(t: i64, width: i64) -> i64 {
    t.saturating_sub(t.rem_euclid(width))
}

/// Where each histogram tier but the last begins at `clock`: tier `i` holds the buckets starting at
/// or after `from[i]` (and before `from[i − 1]`), the last tier everything older. `from[i]` is a
/// whole bucket of tier `i + 1`, so the buckets that move on always fill whole coarser buckets.
pub(super) fn hist_tier_starts(clock: i64) -> [i64; HIST_TIER_COUNT - 1] {
    let mut from = [0; HIST_TIER_COUNT - 1];
    for (i, f) in from.iter_mut().enumerate() {
        *f = floor_to(clock.saturating_sub(HIST_KEEPS[i]), HIST_WIDTHS[i + 1]);
    }
    from
}
