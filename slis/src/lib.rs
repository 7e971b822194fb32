//! `slis` — the domain core of tracebudget.
//!
//! Spans and journeys, the SLI kinds and their rules (`sli`), SLI windows (time buckets of
//! good/bad counts and HDR latency histograms), burn-rate and error-budget maths.
//!
//! **Invariant:** this crate does no I/O, spawns nothing, never reads the system clock (every
//! function that needs "now" takes it as an argument) and cannot fail on valid input.

pub mod budget;
pub mod config;
pub mod duration;
pub mod eval;
#[doc(hidden)]
pub mod fuzzing;
pub mod journey;
pub mod model;
pub mod policy;
pub mod privacy;
pub mod sli;
pub mod slo;
pub mod time;
pub mod window;

pub use duration::{format_duration, format_exact, parse_duration};
pub use model::{AttrValue, PEER_SERVICE, Span, SpanId, SpanKind, StatusCode, TraceId, sampling_weight};
pub use time::Timestamp;
