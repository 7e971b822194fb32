//! The engine's own counters, registered in a prometheus-client `Registry`. Every reject, eviction
//! and give-up is counted here with a reason. Hot paths aggregate per batch and add once.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub receiver: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub receiver: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// See the module docs. Names get the `tracebudget_` prefix and counters `_total`.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub spans_received: Family<ReceiverLabels, Counter>,
    pub spans_accepted: Family<ReceiverLabels, Counter>,
    pub spans_rejected: Family<RejectLabels, Counter>,
    pub spans_clamped: Family<ReasonLabels, Counter>,
    pub strings_truncated: Family<ReceiverLabels, Counter>,
    pub duplicate_spans: Counter,
    pub late_spans: Counter,
    pub requests: Family<RequestLabels, Counter>,
    pub traces_closed: Family<ResultLabels, Counter>,
    pub traces_evicted: Counter,
    pub samples_dropped: Family<ReasonLabels, Counter>,
    pub exemplars_dropped: Family<ReasonLabels, Counter>,
    pub blame_dropped: Family<ReasonLabels, Counter>,
    pub buffered_spans: Gauge,
    pub open_traces: Gauge,
    /// Bytes of request bodies the receivers hold (see [`crate::receiver::budget`]).
    pub body_bytes_in_flight: Gauge,
}

impl EngineMetrics {
    /// Registers every metric under `registry` (expected to carry the `tracebudget` prefix).
    pub fn register(self: &std::sync::Arc<Self>, registry: &mut Registry) {
        let m = self.as_ref();
        registry.register(
            "spans_received",
            "Spans decoded from requests, per receiver",
            m.spans_received.clone(),
        );
        registry.register(
            "spans_accepted",
            "Spans taken into the pipeline, per receiver",
            m.spans_accepted.clone(),
        );
        registry.register(
            "spans_rejected",
            "Spans refused, per receiver and reason",
            m.spans_rejected.clone(),
        );
        registry.register(
            "spans_clamped",
            "Spans kept after correcting a clock fault, per reason",
            m.spans_clamped.clone(),
        );
        registry.register(
            "strings_truncated",
            "Service names, span names, attribute keys and kept values longer than 1 KiB, cut to their first 1 KiB, per receiver",
            m.strings_truncated.clone(),
        );
        registry.register(
            "duplicate_spans",
            "Spans ignored because the trace already held their id",
            m.duplicate_spans.clone(),
        );
        registry.register(
            "late_spans",
            "Spans of traces already closed or evicted (never recount the trace)",
            m.late_spans.clone(),
        );
        registry.register(
            "requests",
            "Export requests, per receiver and outcome",
            m.requests.clone(),
        );
        registry.register(
            "traces_closed",
            "Traces closed after trace_idle, per completeness result",
            m.traces_closed.clone(),
        );
        registry.register(
            "traces_evicted",
            "Open traces evicted to keep max_buffered_spans",
            m.traces_evicted.clone(),
        );
        registry.register(
            "sli_samples_dropped",
            "SLI samples not recorded, per reason",
            m.samples_dropped.clone(),
        );
        registry.register(
            "exemplars_dropped",
            "Bad traces not kept as exemplars, per reason (beyond normal aging out)",
            m.exemplars_dropped.clone(),
        );
        registry.register(
            "blame_dropped",
            "Weighted bad events whose contributor was not recorded, per reason",
            m.blame_dropped.clone(),
        );
        registry.register(
            "buffered_spans",
            "Spans held by the trace assembler",
            m.buffered_spans.clone(),
        );
        registry.register(
            "open_traces",
            "Traces held open by the trace assembler",
            m.open_traces.clone(),
        );
        registry.register(
            "ingest_body_bytes_in_flight",
            "Bytes of request bodies the receivers hold, at most [ingest] max_body_bytes_in_flight",
            m.body_bytes_in_flight.clone(),
        );
    }

    pub fn reject(&self, receiver: &'static str, reason: &'static str, n: u64) {
        if n > 0 {
            self.spans_rejected
                .get_or_create(&RejectLabels { receiver, reason })
                .inc_by(n);
        }
    }

    /// Counts what the decoder did to a request beyond its spans: rejected spans, cut strings.
    pub fn decoded(&self, receiver: &'static str, decoded: &crate::decode::Decoded) {
        self.reject(receiver, "invalid_span", decoded.rejected);
        if decoded.truncated > 0 {
            self.strings_truncated
                .get_or_create(&ReceiverLabels { receiver })
                .inc_by(decoded.truncated);
        }
    }

    pub fn request(&self, receiver: &'static str, outcome: &'static str) {
        self.requests.get_or_create(&RequestLabels { receiver, outcome }).inc();
    }
}
