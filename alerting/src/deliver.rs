//! Delivery from the durable outbox: at-least-once, in order per group, with exponential backoff
//! and jitter, an idempotency key on every attempt (the notification id), and a give-up after a
//! configurable age. Every attempt, retry and give-up is counted.
//!
//! A notification is marked delivered only after its receiver accepted it, so a crash between
//! the two sends it again after the restart with the same idempotency key (receivers dedup on
//! it); one marked delivered is never sent again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use slis::Timestamp;

use crate::alert::Notification;
use crate::notify::{Delivery, Notifier};
use crate::store::{AlertStore, OutboxRow, StoreError};

/// Retry delays: doubling from the first to the last, ±20% jitter.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(2);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A receiver's `Retry-After` is honoured up to this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3_600);
/// Notifications sent at once (from different groups).
pub const BATCH: i64 = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub receiver: String,
    /// `delivered`, `retry` or `give_up`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GiveUpLabels {
    pub receiver: String,
    /// `rejected` (the receiver said retrying cannot help), `too_old` (`give_up_after` passed),
    /// `unknown_receiver` (removed from the config), `undecodable`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabels {
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub severity: String,
    /// `firing` or `resolved`.
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// The alerting metrics (`tracebudget_alerts_…`, `tracebudget_notifications_…`, `tracebudget_eval_…`).
#[derive(Debug, Default)]
pub struct AlertingMetrics {
    pub firing: Family<SeverityLabels, Gauge>,
    pub transitions: Family<TransitionLabels, Counter>,
    pub muted: Family<ReasonLabels, Counter>,
    pub queued: Family<ReceiverLabels, Counter>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub given_up: Family<GiveUpLabels, Counter>,
    pub outbox_pending: Gauge,
    pub cycles: Family<OutcomeLabels, Counter>,
    pub cycle_seconds: EvalHistogram,
    pub store_pending: Gauge,
    pub silences_active: Gauge,
}

/// A histogram with buckets from 100 µs to ~3 s.
#[derive(Debug)]
pub struct EvalHistogram(pub Histogram);

impl Default for EvalHistogram {
    fn default() -> Self {
        EvalHistogram(Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.000_1, 2.0, 16),
        ))
    }
}

impl AlertingMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "alerts_firing",
            "Alerts firing now, per severity (muted ones included)",
            self.firing.clone(),
        );
        registry.register(
            "alert_transitions",
            "Alerts that started firing or resolved",
            self.transitions.clone(),
        );
        registry.register(
            "alert_notifications_muted",
            "Alerts left out of a due notification, per reason (silenced, inhibited)",
            self.muted.clone(),
        );
        registry.register(
            "notifications_queued",
            "Notifications put in the outbox, per receiver",
            self.queued.clone(),
        );
        registry.register(
            "notification_attempts",
            "Delivery attempts per receiver and outcome (delivered, retry, give_up)",
            self.attempts.clone(),
        );
        registry.register(
            "notifications_given_up",
            "Notifications abandoned, per receiver and reason",
            self.given_up.clone(),
        );
        registry.register(
            "outbox_pending",
            "Notifications in the outbox not yet delivered",
            self.outbox_pending.clone(),
        );
        registry.register(
            "eval_cycles",
            "Evaluation cycles, per outcome (ok, store_failed: state kept and retried)",
            self.cycles.clone(),
        );
        registry.register_with_unit(
            "eval_cycle_duration",
            "Time to evaluate, route and store one cycle",
            prometheus_client::registry::Unit::Seconds,
            self.cycle_seconds.0.clone(),
        );
        registry.register(
            "alerting_store_pending",
            "Alert state, history and outbox rows waiting for the database",
            self.store_pending.clone(),
        );
        registry.register("silences_active", "Silences in force now", self.silences_active.clone());
    }
}

/// Retry delay after `attempts` failed attempts, with `jitter` in [0, 1) mapped to ±20%.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let doubled = BACKOFF_FIRST.saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
    doubled.min(BACKOFF_MAX).mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

/// Sends what the outbox holds.
#[derive(Debug)]
pub struct Deliverer {
    pub store: AlertStore,
    pub notifiers: HashMap<String, Arc<Notifier>>,
    pub metrics: Arc<AlertingMetrics>,
    pub give_up_after: Duration,
}

impl Deliverer {
    /// One pass: every due notification at the head of its group, sent concurrently. Returns how
    /// many were attempted.
    pub async fn run_once(&self, now: Timestamp) -> Result<usize, StoreError> {
        let rows = self.store.due(now, BATCH).await?;
        let n = rows.len();
        let results = futures_util::future::join_all(rows.into_iter().map(|row| self.deliver(row, now))).await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        self.metrics.outbox_pending.set(self.store.pending_count().await?);
        Ok(n)
    }

    async fn deliver(&self, row: OutboxRow, now: Timestamp) -> Result<(), StoreError> {
        let attempts = row.attempts + 1;
        let give_up = |reason: &'static str| {
            self.metrics
                .given_up
                .get_or_create(&GiveUpLabels {
                    receiver: row.receiver.clone(),
                    reason,
                })
                .inc();
        };
        if now >= row.created_at + self.give_up_after {
            give_up("too_old");
            tracing::warn!(id = %row.id, receiver = %row.receiver, attempts = row.attempts, "gave up on a notification: too old");
            return self
                .store
                .finish(row.seq, "given_up", row.attempts, Some("too old"), now)
                .await;
        }
        let Some(notifier) = self.notifiers.get(&row.receiver) else {
            give_up("unknown_receiver");
            return self
                .store
                .finish(
                    row.seq,
                    "given_up",
                    row.attempts,
                    Some("receiver not in the config"),
                    now,
                )
                .await;
        };
        // A row that no longer decodes is given up as `undecodable`, never sent.
        let (delivery, refused) = match row.kind.as_str() {
            "alerts" => match serde_json::from_str::<Notification>(&row.payload) {
                Ok(n) => (notifier.send(&n).await, "rejected"),
                Err(_) => (Delivery::give_up("undecodable"), "undecodable"),
            },
            "report" => match serde_json::from_str::<crate::report::Digest>(&row.payload) {
                Ok(d) => (notifier.send_report(&d).await, "rejected"),
                Err(_) => (Delivery::give_up("undecodable"), "undecodable"),
            },
            _ => (Delivery::give_up("undecodable"), "undecodable"),
        };
        let outcome = |o: &'static str| {
            self.metrics
                .attempts
                .get_or_create(&AttemptLabels {
                    receiver: row.receiver.clone(),
                    outcome: o,
                })
                .inc();
        };
        match delivery {
            Delivery::Delivered => {
                outcome("delivered");
                self.store.finish(row.seq, "delivered", attempts, None, now).await
            }
            Delivery::Retry { reason, after } => {
                outcome("retry");
                let wait =
                    backoff(attempts as u32, rand::random::<f64>()).max(after.unwrap_or_default().min(RETRY_AFTER_MAX));
                tracing::info!(id = %row.id, receiver = %row.receiver, attempts, %reason, ?wait, "delivery failed, will retry");
                self.store.retry_at(row.seq, attempts, &reason, now + wait).await
            }
            Delivery::GiveUp { reason } => {
                outcome("give_up");
                give_up(refused);
                tracing::warn!(id = %row.id, receiver = %row.receiver, attempts, %reason, "gave up on a notification");
                self.store
                    .finish(row.seq, "given_up", attempts, Some(&reason), now)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let mid = |a| backoff(a, 0.5);
        assert_eq!(mid(1), Duration::from_secs(2));
        assert_eq!(mid(2), Duration::from_secs(4));
        assert_eq!(mid(5), Duration::from_secs(32));
        assert_eq!(mid(6), Duration::from_secs(60));
        assert_eq!(mid(40), Duration::from_secs(60));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(1_600));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(2_400));
    }
}
