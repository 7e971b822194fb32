//! The listeners' counters: handshake failures, slow clients cut off, connections refused and open.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

/// The listeners' counters; see the module docs.
#[derive(Debug, Default)]
pub struct ListenMetrics {
    pub tls_handshake_failures: Family<ListenerLabels, Counter>,
    pub http_timeouts: Family<ListenerLabels, Counter>,
    pub connections_refused: Family<ListenerLabels, Counter>,
    pub connections_open: Family<ListenerLabel, Gauge>,
}

impl ListenMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed, per listener and reason (no_client_cert, bad_cert, timeout, protocol)",
            self.tls_handshake_failures.clone(),
        );
        registry.register(
            "http_timeouts",
            "HTTP clients cut off for being slow, per listener and reason (header, body)",
            self.http_timeouts.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed as soon as accepted, per listener and reason (max_connections)",
            self.connections_refused.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open, per listener",
            self.connections_open.clone(),
        );
    }

    /// Shows every series of `listener` at 0 from the start (the TLS ones only with TLS);
    /// `timeouts` are the reasons its slow clients can be cut off for.
    pub fn initialise(&self, listener: &'static str, timeouts: &[&'static str], tls: bool) {
        if tls {
            for reason in ["no_client_cert", "bad_cert", "timeout", "protocol"] {
                let _ = self
                    .tls_handshake_failures
                    .get_or_create(&ListenerLabels { listener, reason });
            }
        }
        for &reason in timeouts {
            let _ = self.http_timeouts.get_or_create(&ListenerLabels { listener, reason });
        }
        let _ = self.connections_refused.get_or_create(&ListenerLabels {
            listener,
            reason: "max_connections",
        });
        let _ = self.connections_open.get_or_create(&ListenerLabel { listener });
    }

    /// What counts the slow clients of `listener`.
    pub fn counted(self: &Arc<Self>, listener: &'static str) -> Counted {
        Counted {
            metrics: self.clone(),
            listener,
        }
    }

    pub(super) fn tls_failure(&self, listener: &'static str, reason: &'static str) {
        self.tls_handshake_failures
            .get_or_create(&ListenerLabels { listener, reason })
            .inc();
    }
}

/// Counts the slow clients of one listener.
#[derive(Debug, Clone)]
pub struct Counted {
    metrics: Arc<ListenMetrics>,
    listener: &'static str,
}

impl Counted {
    pub(super) fn count(&self, reason: &'static str) {
        tracing::debug!(listener = self.listener, reason, "cut off a slow client");
        self.metrics
            .http_timeouts
            .get_or_create(&ListenerLabels {
                listener: self.listener,
                reason,
            })
            .inc();
    }
}
