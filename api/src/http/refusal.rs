//! Why a request was refused ([`Refusal`]) and how many were, by reason ([`GuardMetrics`]):
//! `tracebudget_api_requests_refused_total{reason}`. The checks themselves are in
//! `auth.rs` and the silence route.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Why a request was refused: the `reason` of `tracebudget_api_requests_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` names a host this server does not answer to (403).
    Host,
    /// A write from another origin (403).
    Origin,
    /// A write whose body is not JSON (415).
    ContentType,
    /// No or a wrong bearer token (401).
    Unauthorized,
    /// An anonymous write to a server listening beyond loopback (403).
    WritesDisabled,
    /// A silence over one of its size limits (400).
    SilenceLimit,
}

impl Refusal {
    /// Every reason, in the order of the metric's help text.
    pub const ALL: [Refusal; 6] = [
        Refusal::Host,
        Refusal::Origin,
        Refusal::ContentType,
        Refusal::Unauthorized,
        Refusal::WritesDisabled,
        Refusal::SilenceLimit,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Host => "host",
            Refusal::Origin => "origin",
            Refusal::ContentType => "content_type",
            Refusal::Unauthorized => "unauthorized",
            Refusal::WritesDisabled => "writes_disabled",
            Refusal::SilenceLimit => "silence_limit",
        }
    }
}

/// The labels of a refusal counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// [`Refusal::as_str`].
    pub reason: &'static str,
}

/// `tracebudget_api_requests_refused_total{reason}`: every reason shows 0 from the start.
#[derive(Debug, Default)]
pub struct GuardMetrics {
    /// The counters, by reason.
    pub refused: Family<ReasonLabels, Counter>,
}

impl GuardMetrics {
    /// Registers the family with every reason at 0.
    pub fn register(&self, registry: &mut Registry) {
        for r in Refusal::ALL {
            let _ = self.refused.get_or_create(&ReasonLabels { reason: r.as_str() });
        }
        registry.register(
            "api_requests_refused",
            "API requests refused, by reason (host, origin, content_type, unauthorized, writes_disabled, silence_limit)",
            self.refused.clone(),
        );
    }

    /// Counts one request refused for `r`.
    pub fn count(&self, r: Refusal) {
        self.refused.get_or_create(&ReasonLabels { reason: r.as_str() }).inc();
    }

    /// How many requests were refused for `r` so far.
    pub fn refused(&self, r: Refusal) -> u64 {
        self.refused.get_or_create(&ReasonLabels { reason: r.as_str() }).get()
    }
}
