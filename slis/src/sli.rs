//! The SLI kinds, each in one place: what it counts, when its verdict is known, which root or
//! closed trace is bad, how its bad traces rank and what they blame.
//!
//! | kind           | judged          | bad when                          | rank              | blames                      |
//! |----------------|-----------------|-----------------------------------|-------------------|-----------------------------|
//! | `latency`      | on the root     | root duration > threshold         | slowest           | the critical path's end     |
//! | `error`        | on the root     | the journey says the root failed  | errors, slowest   | where the error originated  |
//! | `completeness` | at trace close  | a service missing, orphans, roots | errors, slowest   | missing services, orphans   |
//! | `fragmentation`| at trace close  | [`TraceVerdict::fragmented`]      | errors, slowest   | boundaries that lost context|
//! | `export_lag`   | at trace close  | a span received > threshold late  | slowest           | the span received last      |
//! | `clock_skew`   | at trace close  | [`TraceVerdict::skewed`]          | errors, slowest   | the skewed spans' services  |
//!
//! [`SliKind`] is the kind as configured (thresholds as durations, shown in alerts and the API);
//! [`Sli`] is what the windows and the engine judge with (thresholds in nanoseconds). Every rule
//! of the table is a method of [`Sli`], so `window::JourneyWindows` and the engine's pipeline
//! derive from it and decide nothing of their own. A new kind is a variant of both enums and an
//! arm in each match of this file; the config parses its name (`alerting`'s `[[slos]]`).

use std::fmt;
use std::time::Duration;

use crate::duration::format_duration;
use crate::time::Timestamp;

/// What makes one event of a journey good.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SliKind {
    /// Good = root span duration ≤ threshold.
    Latency { threshold: Duration },
    /// Bad = root status ERROR or a journey error rule.
    Error,
    /// Good = the closed trace holds every expected service, one root and no orphan.
    Completeness,
    /// Good = the closed trace is not fragmented: one root, no orphan span, and no client call
    /// whose callee started a trace of its own (see docs/trace-health.md).
    Fragmentation,
    /// Good = every span of the closed trace was received within `threshold` of its end.
    ExportLag { threshold: Duration },
    /// Good = no span of the closed trace starts before its parent or ends after it by more than
    /// `[trace_health] skew_tolerance`, and none ends before it starts.
    ClockSkew,
}

impl SliKind {
    /// The kind's name in the config and in metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            SliKind::Latency { .. } => "latency",
            SliKind::Error => "error",
            SliKind::Completeness => "completeness",
            SliKind::Fragmentation => "fragmentation",
            SliKind::ExportLag { .. } => "export_lag",
            SliKind::ClockSkew => "clock_skew",
        }
    }

    /// The window's view of this SLI.
    pub fn window_sli(&self) -> Sli {
        match *self {
            SliKind::Latency { threshold } => Sli::Latency {
                threshold_nanos: nanos(threshold),
            },
            SliKind::Error => Sli::Error,
            SliKind::Completeness => Sli::Completeness,
            SliKind::Fragmentation => Sli::Fragmentation,
            SliKind::ExportLag { threshold } => Sli::ExportLag {
                threshold_nanos: nanos(threshold),
            },
            SliKind::ClockSkew => Sli::ClockSkew,
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Display for SliKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SliKind::Latency { threshold } => write!(f, "latency ≤ {}", format_duration(*threshold)),
            SliKind::ExportLag { threshold } => write!(f, "export_lag ≤ {}", format_duration(*threshold)),
            other => f.write_str(other.name()),
        }
    }
}

/// What an SLO counts, as the windows and the engine judge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sli {
    /// Bad = root latency above the threshold (exact nanoseconds, never from the histogram).
    Latency { threshold_nanos: u64 },
    /// Bad = the root span is an error.
    Error,
    /// Bad = the closed trace is incomplete.
    Completeness,
    /// Bad = the closed trace is fragmented (see [`TraceVerdict::fragmented`]).
    Fragmentation,
    /// Bad = some span of the closed trace was received more than the threshold after it ended.
    ExportLag { threshold_nanos: u64 },
    /// Bad = the closed trace holds a skewed span (see [`TraceVerdict::skewed`]).
    ClockSkew,
}

impl Sli {
    /// The root rule of an SLI judged on the root's arrival; `None` for one judged at close.
    #[inline]
    pub fn root_rule(&self) -> Option<RootRule> {
        match *self {
            Sli::Latency { threshold_nanos } => Some(RootRule {
                threshold: threshold_nanos,
                on_error: false,
            }),
            Sli::Error => Some(RootRule {
                threshold: u64::MAX,
                on_error: true,
            }),
            Sli::Completeness | Sli::Fragmentation | Sli::ExportLag { .. } | Sli::ClockSkew => None,
        }
    }

    /// The close rule: whether this SLI is judged when a trace closes (not on the root's arrival).
    pub fn on_close(&self) -> bool {
        self.root_rule().is_none()
    }

    /// Whether a root makes this SLI bad at once (never for an SLI judged at close).
    #[inline]
    pub fn root_bad(&self, s: &RootSample) -> bool {
        self.root_rule().is_some_and(|r| r.bad(s))
    }

    /// Whether `v` is a bad event of this SLI (root SLIs are never judged from a verdict).
    pub fn trace_bad(&self, v: &TraceVerdict) -> bool {
        match *self {
            Sli::Latency { .. } | Sli::Error => false,
            Sli::Completeness => !v.complete,
            Sli::Fragmentation => v.fragmented,
            Sli::ExportLag { threshold_nanos } => v.max_lag_nanos > threshold_nanos,
            Sli::ClockSkew => v.skewed,
        }
    }

    /// Whether the trace of root `s`, closed with verdict `v`, is a bad event of this SLI: by the
    /// root rule or by the close rule.
    pub fn bad(&self, s: &RootSample, v: &TraceVerdict) -> bool {
        match self.root_rule() {
            Some(r) => r.bad(s),
            None => self.trace_bad(v),
        }
    }

    /// How this SLI orders its bad traces, worst first.
    pub fn rank(&self) -> Rank {
        match self {
            Sli::Latency { .. } | Sli::ExportLag { .. } => Rank::Slowest,
            Sli::Error | Sli::Completeness | Sli::Fragmentation | Sli::ClockSkew => Rank::ErrorsThenSlowest,
        }
    }

    /// What a bad trace of this SLI blames.
    pub fn blames(&self) -> Blames {
        match self {
            Sli::Latency { .. } => Blames::CriticalPath,
            Sli::Error => Blames::ErrorOrigin,
            Sli::Completeness => Blames::MissingServices,
            Sli::Fragmentation => Blames::LostContext,
            Sli::ExportLag { .. } => Blames::LatestExport,
            Sli::ClockSkew => Blames::SkewedSpans,
        }
    }
}

/// What a root adds to an SLI judged on arrival: bad = `latency > threshold || (error &&
/// on_error)`. A latency SLI has `on_error = false`, an error SLI `threshold = u64::MAX`, so
/// judging is branch-free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootRule {
    /// Latency above this many nanoseconds is bad.
    pub threshold: u64,
    /// A root the journey judges an error is bad.
    pub on_error: bool,
}

impl RootRule {
    /// Whether root `s` is bad by this rule.
    #[inline]
    pub fn bad(&self, s: &RootSample) -> bool {
        (s.latency_nanos > self.threshold) | (s.error & self.on_error)
    }
}

/// How an SLO orders its bad traces (its exemplars), worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rank {
    /// Errors first, then the slowest.
    ErrorsThenSlowest,
    /// The slowest (every bad trace of a latency SLO is slow).
    Slowest,
}

impl Rank {
    /// Whether an error ranks above any trace without one.
    pub fn errors_first(self) -> bool {
        self == Rank::ErrorsThenSlowest
    }
}

/// Which spans or services a bad trace blames (the engine's `exemplars` finds them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blames {
    /// The last span of the critical path from the root.
    CriticalPath,
    /// The deepest failed span under the root.
    ErrorOrigin,
    /// Each expected service missing and each span that lost its parent.
    MissingServices,
    /// Each service boundary where the trace context was lost.
    LostContext,
    /// The span received longest after its end.
    LatestExport,
    /// Each skewed span's service.
    SkewedSpans,
}

/// What a closed trace is judged on by the SLIs recorded at close.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceVerdict {
    /// Every expected service present, exactly one root, no orphan.
    pub complete: bool,
    /// More than one root, an orphan span, or a client call whose callee reported a trace of
    /// its own (the engine's fragmentation rule, `tracebudget_engine::health`).
    pub fragmented: bool,
    /// A span starting before its parent or ending after it beyond the tolerance, or a span
    /// ending before it starts.
    pub skewed: bool,
    /// The largest receive time − end time of the trace's spans (0 when none was late).
    pub max_lag_nanos: u64,
}

/// One root span of a matched journey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootSample {
    /// The root's end: the instant its events count at.
    pub at: Timestamp,
    pub latency_nanos: u64,
    /// Whether the journey judges the root an error.
    pub error: bool,
    /// Sampling weight (adjusted count); 0 counts nothing.
    pub weight: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(latency_ms: u64, error: bool) -> RootSample {
        RootSample {
            at: Timestamp::from_unix_secs(1),
            latency_nanos: latency_ms * 1_000_000,
            error,
            weight: 1,
        }
    }

    const MS_200: u64 = 200_000_000;

    #[test]
    fn each_kind_says_when_and_what_is_bad() {
        let slow_error = root(300, true);
        let fast_ok = root(100, false);
        let broken = TraceVerdict {
            complete: false,
            fragmented: true,
            skewed: true,
            max_lag_nanos: 3 * MS_200,
        };
        let whole = TraceVerdict {
            complete: true,
            ..TraceVerdict::default()
        };
        // (kind, on_close, bad on slow_error, bad on fast_ok, bad when broken, rank, blames)
        let cases = [
            (
                Sli::Latency {
                    threshold_nanos: MS_200,
                },
                false,
                true,
                false,
                false,
                Rank::Slowest,
                Blames::CriticalPath,
            ),
            (
                Sli::Error,
                false,
                true,
                false,
                false,
                Rank::ErrorsThenSlowest,
                Blames::ErrorOrigin,
            ),
            (
                Sli::Completeness,
                true,
                false,
                false,
                true,
                Rank::ErrorsThenSlowest,
                Blames::MissingServices,
            ),
            (
                Sli::Fragmentation,
                true,
                false,
                false,
                true,
                Rank::ErrorsThenSlowest,
                Blames::LostContext,
            ),
            (
                Sli::ExportLag {
                    threshold_nanos: MS_200,
                },
                true,
                false,
                false,
                true,
                Rank::Slowest,
                Blames::LatestExport,
            ),
            (
                Sli::ClockSkew,
                true,
                false,
                false,
                true,
                Rank::ErrorsThenSlowest,
                Blames::SkewedSpans,
            ),
        ];
        for (sli, on_close, slow_bad, fast_bad, broken_bad, rank, blames) in cases {
            assert_eq!(sli.on_close(), on_close, "{sli:?}");
            assert_eq!(sli.root_bad(&slow_error), slow_bad, "{sli:?}");
            assert_eq!(sli.root_bad(&fast_ok), fast_bad, "{sli:?}");
            assert_eq!(sli.trace_bad(&broken), broken_bad, "{sli:?}");
            assert!(!sli.trace_bad(&whole), "{sli:?}");
            assert_eq!(sli.bad(&slow_error, &whole), slow_bad, "{sli:?}");
            assert_eq!(sli.bad(&fast_ok, &broken), broken_bad, "{sli:?}");
            assert_eq!(sli.rank(), rank, "{sli:?}");
            assert_eq!(sli.blames(), blames, "{sli:?}");
        }
    }

    #[test]
    fn a_latency_exactly_at_the_threshold_is_good() {
        let sli = SliKind::Latency {
            threshold: Duration::from_millis(200),
        }
        .window_sli();
        assert!(!sli.root_bad(&root(200, false)));
        assert!(sli.root_bad(&RootSample {
            latency_nanos: MS_200 + 1,
            ..root(0, false)
        }));
    }

    #[test]
    fn kinds_read_as_configured() {
        let cases = [
            (
                SliKind::Latency {
                    threshold: Duration::from_millis(200),
                },
                "latency",
                "latency ≤ 200ms",
            ),
            (SliKind::Error, "error", "error"),
            (SliKind::Completeness, "completeness", "completeness"),
            (SliKind::Fragmentation, "fragmentation", "fragmentation"),
            (
                SliKind::ExportLag {
                    threshold: Duration::from_secs(2),
                },
                "export_lag",
                "export_lag ≤ 2s",
            ),
            (SliKind::ClockSkew, "clock_skew", "clock_skew"),
        ];
        for (kind, name, shown) in cases {
            assert_eq!((kind.name(), kind.to_string().as_str()), (name, shown));
        }
    }
}
