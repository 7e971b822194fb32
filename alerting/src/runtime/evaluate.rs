//! One evaluation cycle: the statuses from the [`SloSource`], the decision, its metrics, and the
//! commit of state, history and outbox rows.
//!
//! The source is read (for a pipeline: under its lock) only for the statuses and the extras;
//! everything else runs outside it, so ingestion never waits for routing, the database or a slow
//! receiver.

use std::sync::Arc;
use std::time::Instant;

use slis::Timestamp;

use super::{AlertRuntime, SloSource, StateStore, firing_by_slo};
use crate::alerter::Cycle;
use crate::deliver::{OutcomeLabels, ReasonLabels, ReceiverLabels, SeverityLabels, TransitionLabels};
use crate::mute::{Silence, SilenceState};
use crate::store::Pending;

impl<S: StateStore> AlertRuntime<S> {
    /// One evaluation cycle at `now`; returns what the alerter decided. The alerter's lock is
    /// held for the decision only; the store work (`pending`, owned by the evaluator) happens
    /// after it is released, so the API never waits for a slow database.
    ///
    /// When the source merges other instances' windows, those are read first and the silences
    /// reloaded (a standby's API may have added some), so the decision covers every instance.
    pub async fn cycle<W: SloSource>(&self, source: &W, pending: &mut Pending, now: Timestamp) -> Cycle {
        let started = Instant::now();
        let _config = self.reconfig.read().await;
        let silences = if source.merges_others() {
            source.refresh_others(now).await;
            match self.store.silences().await {
                Ok(list) => Some(list),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reload the silences; keeping those known");
                    None
                }
            }
        } else {
            None
        };
        let mut st = self.alerter.lock().await;
        if let Some(stored) = silences {
            merge_silences(&mut st.silences, stored);
        }
        let model = Arc::clone(st.model_arc());
        let journeys = st.journeys().to_vec();
        let statuses = source.statuses(&model, now);
        let (n_exemplars, n_contributors) = (model.settings.exemplars, model.settings.contributors);
        let cycle = st.cycle(now, &statuses, &mut |slo, since| {
            source.extras(slo, since, n_exemplars, n_contributors)
        });
        for t in &cycle.transitions {
            let severity = t.alert.labels.get("severity").cloned().unwrap_or_default();
            let to = if t.firing { "firing" } else { "resolved" };
            self.metrics
                .transitions
                .get_or_create(&TransitionLabels { severity, to })
                .inc();
        }
        for (_, why) in &cycle.muted {
            self.metrics
                .muted
                .get_or_create(&ReasonLabels { reason: why.as_str() })
                .inc();
        }
        for n in &cycle.notifications {
            self.metrics
                .queued
                .get_or_create(&ReceiverLabels {
                    receiver: n.receiver.clone(),
                })
                .inc();
        }
        for sev in ["page", "ticket"] {
            let firing = st
                .alerts
                .values()
                .filter(|a| a.firing && a.labels.get("severity").is_some_and(|s| s == sev))
                .count();
            self.metrics
                .firing
                .get_or_create(&SeverityLabels { severity: sev.into() })
                .set(firing as i64);
        }
        self.firing_by_slo.set(firing_by_slo(&model, &st));
        let active = st.silences.iter().filter(|s| s.state(now) == SilenceState::Active);
        self.metrics.silences_active.set(active.count() as i64);
        pending.add(&cycle, &st, now);
        drop(st);
        let outcome = match self.store.commit(pending, now).await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, pending = pending.len(), "cannot store the alert state; kept for the next cycle");
                "store_failed"
            }
        };
        self.metrics.store_pending.set(pending.len() as i64);
        self.metrics.cycles.get_or_create(&OutcomeLabels { outcome }).inc();
        self.metrics.cycle_seconds.0.observe(started.elapsed().as_secs_f64());
        let queued_reports = self.reports(&model, &journeys, source, &statuses, now).await;
        if !cycle.notifications.is_empty() || queued_reports > 0 {
            self.wake.notify_one();
        }
        cycle
    }
}

/// Takes the stored silences (those made or expired through any instance's API) as the ones in
/// force, keeping those this instance's API added after the read (stored too, so the next read
/// has them). Silences are never deleted, so one known here and missing from the read is new.
pub(super) fn merge_silences(known: &mut Vec<Silence>, stored: Vec<Silence>) {
    let newer: Vec<_> = known
        .drain(..)
        .filter(|k| !stored.iter().any(|s| s.id == k.id))
        .collect();
    *known = stored;
    known.extend(newer);
}
