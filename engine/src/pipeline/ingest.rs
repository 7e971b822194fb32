//! What a batch meets at the door: where it came from, the clock rules that refuse a span, what
//! the caller is told back, and backpressure.

use std::time::Duration;

use slis::{Span, Timestamp};

/// Where spans came from; the `receiver` label of the engine's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    OtlpGrpc,
    OtlpHttp,
    Zipkin,
    /// A JetStream partition's consumer.
    JetStream,
    /// A recorded file (`tracebudget replay`).
    Replay,
}

impl Source {
    /// The `receiver` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::OtlpGrpc => "otlp_grpc",
            Source::OtlpHttp => "otlp_http",
            Source::Zipkin => "zipkin",
            Source::JetStream => "jetstream",
            Source::Replay => "replay",
        }
    }
}

/// Why a span was refused by the pipeline (`reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    MissingTimestamp,
    Future,
    TooOld,
}

impl Reject {
    pub(super) const ALL: [Reject; 3] = [Reject::MissingTimestamp, Reject::Future, Reject::TooOld];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::MissingTimestamp => "missing_timestamp",
            Reject::Future => "future",
            Reject::TooOld => "too_old",
        }
    }
}

/// The outcome of one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Spans taken.
    pub accepted: u64,
    /// Spans refused by the clock rules.
    pub rejected: u64,
    /// Why the first refused span was refused, for the OTLP `partial_success.error_message`.
    pub first_rejection: Option<String>,
}

impl Ingested {
    /// The `outcome` label of the request: `ok`, or `partial` when spans were refused.
    pub fn outcome(&self) -> &'static str {
        if self.rejected == 0 { "ok" } else { "partial" }
    }
}

/// The assembler holds `max_buffered_spans`: the whole batch was refused, nothing recorded.
/// Receivers answer 429 / RESOURCE_EXHAUSTED with Retry-After.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backpressure;

/// Clock sanity rules, from `[ingest]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ClockRules {
    pub max_future_skew: Duration,
    pub max_span_age: Duration,
}

impl ClockRules {
    /// The rules as of the receive time `now`.
    pub fn at(&self, now: Timestamp) -> Admit {
        Admit {
            newest: now + self.max_future_skew,
            oldest: now - self.max_span_age,
        }
    }
}

/// The span ends a batch received at one instant admits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Admit {
    newest: Timestamp,
    oldest: Timestamp,
}

impl Admit {
    /// Whether `span` is taken, or why not. A negative duration is taken (and clamped later).
    #[inline]
    pub fn check(&self, span: &Span) -> Result<(), Reject> {
        if span.start.unix_nanos() <= 0 || span.end.unix_nanos() <= 0 {
            Err(Reject::MissingTimestamp)
        } else if span.end > self.newest {
            Err(Reject::Future)
        } else if span.end < self.oldest {
            Err(Reject::TooOld)
        } else {
            Ok(())
        }
    }
}
