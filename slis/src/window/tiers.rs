//! The bucket tiers: how wide the buckets of each age are and how long they are kept.

use std::time::Duration;

/// One resolution of the window store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    pub name: &'static str,
    /// Buckets of this tier start at multiples of `width` since the Unix epoch.
    pub width: Duration,
    /// How long buckets stay in this tier before they move to the next one (or are evicted).
    pub keep: Keep,
}

/// How long a tier keeps its buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// A fixed age, measured from the clock of the last [`advance`](super::JourneyWindows::advance).
    For(Duration),
    /// The retention passed to [`JourneyWindows::new`](super::JourneyWindows::new).
    Retention,
}

/// The tiers, finest first.
///
/// Recent traffic sits in minute buckets, so short alert windows (5m, 30m, 1h) are exact to the
/// minute. Once a whole hour is older than the fine tier keeps, its minute buckets merge into one
/// hour bucket: long windows (3d, 30d, a calendar month) lose nothing in their counts, only their
/// edges move to whole hours.
pub const TIERS: [Tier; 2] = [
    Tier {
        name: "fine",
        width: Duration::from_secs(60),
        keep: Keep::For(Duration::from_secs(6 * 3_600)),
    },
    Tier {
        name: "coarse",
        width: Duration::from_secs(3_600),
        keep: Keep::Retention,
    },
];

/// Width of a fine bucket, in nanoseconds.
pub(super) const FINE_NANOS: i64 = TIERS[0].width.as_nanos() as i64;
/// Width of a coarse bucket, in nanoseconds.
pub(super) const COARSE_NANOS: i64 = TIERS[1].width.as_nanos() as i64;
/// How long the fine tier keeps a bucket, in nanoseconds.
pub(super) const FINE_KEEP_NANOS: i64 = match TIERS[0].keep {
    Keep::For(d) => d.as_nanos() as i64,
    Keep::Retention => panic!("the fine tier keeps its buckets for a fixed time"),
};

// The store is written for exactly these two tiers; these checks keep the table honest.
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
};

/// The start of the bucket of `width` nanoseconds holding `t` (floor division; saturates at the
/// bottom of the time range instead of wrapping).
pub(super) fn floor_to(t: i64, width: i64) -> i64 {
    t.saturating_sub(t.rem_euclid(width))
}
