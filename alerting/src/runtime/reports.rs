//! The `[[reports]]` due at a cycle's instant: the alert history since each one's last run,
//! built into a digest and queued in the outbox with the run, in one transaction.

use std::time::Duration;

use slis::Timestamp;
use slis::eval::SloStatus;

use super::{AlertRuntime, SloSource, StateStore};
use crate::alerter::datetime;
use crate::config::Alerting;
use crate::deliver::ReceiverLabels;
use crate::report::{self, AlertEvent};
use crate::store::{HistoryRow, OutboxInsert};

/// How far before a report's period the alert history is read.
const HISTORY_BEFORE: Duration = Duration::from_secs(31 * 86_400);

/// The most history rows a digest reads.
const HISTORY_ROWS: i64 = 100_000;

impl<S: StateStore> AlertRuntime<S> {
    /// Queues the digest of every report due at `now`; returns how many.
    pub(super) async fn reports<W: SloSource>(
        &self,
        model: &Alerting,
        journeys: &[String],
        source: &W,
        statuses: &[SloStatus],
        now: Timestamp,
    ) -> usize {
        let now_dt = datetime(now);
        let mut queued = 0;
        for report in &model.reports {
            let last = match self.store.report_last_run(&report.name).await {
                Ok(Some(t)) => t,
                Ok(None) => {
                    if let Err(e) = self.store.report_seen(&report.name, now).await {
                        tracing::warn!(report = %report.name, error = %e, "cannot record the report");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(report = %report.name, error = %e, "cannot read when the report last ran");
                    continue;
                }
            };
            let last_dt = datetime(last);
            let Some(run_at) = report::due(&report.schedule, Some(last_dt), now_dt) else {
                continue;
            };
            // The period since the last run (a downtime's missed runs fold into this one).
            let from = last_dt.min(report::period_of(&report.schedule, run_at).map_or(last_dt, |p| p.0));
            let since = Timestamp::from_unix_millis(from.timestamp_millis()) - HISTORY_BEFORE;
            let history = match self.store.history(since, HISTORY_ROWS).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(report = %report.name, error = %e, "cannot read the alert history; retried next cycle");
                    continue;
                }
            };
            let events: Vec<AlertEvent> = history.iter().map(event).collect();
            let digest = report::build(
                report,
                model,
                journeys,
                statuses,
                &events,
                from,
                run_at,
                &self.external_url,
                &mut |slo| {
                    let since = Timestamp::from_unix_millis(from.timestamp_millis());
                    source.extras(slo, since, 0, model.settings.contributors).contributors
                },
            );
            let row = OutboxInsert {
                id: digest.id.clone(),
                receiver: digest.receiver.clone(),
                group_key: format!("report/{}", report.name),
                kind: "report",
                payload: serde_json::to_string(&digest).expect("plain data"),
                created_at: now,
            };
            let ran = Timestamp::from_unix_millis(run_at.timestamp_millis());
            match self.store.report_ran(&report.name, ran, &row).await {
                Ok(()) => {
                    queued += 1;
                    self.metrics
                        .queued
                        .get_or_create(&ReceiverLabels {
                            receiver: row.receiver.clone(),
                        })
                        .inc();
                    tracing::info!(report = %report.name, run = %run_at, "report queued");
                }
                Err(e) => {
                    tracing::warn!(report = %report.name, error = %e, "cannot queue the report; retried next cycle")
                }
            }
        }
        queued
    }
}

/// A history row as the digest reads it.
fn event(h: &HistoryRow) -> AlertEvent {
    AlertEvent {
        fingerprint: h.fingerprint.clone(),
        slo: h.slo.clone(),
        severity: h.severity.clone(),
        alertname: h.alertname.clone(),
        firing: h.event == "firing",
        at: datetime(h.at),
    }
}
