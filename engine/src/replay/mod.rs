//! Backtesting: recorded spans through the same pipeline on a virtual clock.
//!
//! - `input.rs` — [`Input`]: one recorded file (or stdin) read as a stream of requests, its
//!   format detected by content: gzip or not (magic bytes), then OTLP JSON lines (`{`), Zipkin v2
//!   JSON arrays one per line (`[`), or OTLP protobuf frames (anything else: a 4-byte big-endian
//!   length and an `ExportTraceServiceRequest`, the OpenTelemetry Collector `file` exporter's
//!   proto framing). Never more than one line or frame in memory; a line or frame over the size
//!   limit is corrupt and skipped without being allocated.
//! - `clock.rs` — [`Clock`]: the virtual clock. It moves with the newest span end seen and says
//!   which assembler ticks and evaluations fell due in between, so trace idle/close and the
//!   evaluator run on the data's own time, never on the wall clock, and nothing sleeps.
//! - `writer.rs` — [`Writer`]: what `tracebudget record` (and `loadgen --out`) write: requests in
//!   the format [`Input`] reads, flushed (one gzip member each) after every request.

mod clock;
mod input;
mod writer;

#[cfg(test)]
mod tests;

pub use clock::{Clock, Step, newest_end};
pub use input::{Corrupt, Input, Item, Kind, Position, decode};
pub use writer::{OutFormat, Request, Writer};
