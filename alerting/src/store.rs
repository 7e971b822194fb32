//! The alerting state in the database (migration `0004_alerting`): alert state and groups (so a
//! restart neither re-pages nor forgets a firing alert), the alert history, the durable outbox
//! (which is also the notification log), silences and report runs. Runtime queries through
//! sqlx's `AnyPool`, the same SQL on SQLite and PostgreSQL.
//!
//! A cycle's writes are collected in [`Pending`] and committed in one transaction; when the
//! database is away they wait (bounded by the number of alerts and groups, plus the queued
//! notifications and history rows) and the next commit writes them all, in order.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slis::Timestamp;
use sqlx::{AnyPool, Row as _};

use crate::alert::{AlertDetail, Notification};
use crate::alerter::{AlertState, Alerter, Cycle};
use crate::dispatch::Group;
use crate::labels::{LabelMatcher, Labels};
use crate::mute::Silence;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored {what} is not valid: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data always serializes")
}

fn parse<T: for<'de> Deserialize<'de>>(what: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { what, source })
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn dur(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

#[derive(Serialize, Deserialize)]
struct StoredAlert {
    fingerprint: String,
    slo: String,
    labels: Labels,
    annotations: Labels,
    firing: bool,
    starts_at_ms: i64,
    ends_at_ms: Option<i64>,
    last_active_ms: i64,
    detail: AlertDetail,
}

#[derive(Serialize, Deserialize)]
struct StoredGroup {
    receiver: String,
    key: String,
    labels: Labels,
    group_wait_ms: i64,
    group_interval_ms: i64,
    repeat_interval_ms: i64,
    alerts: Vec<String>,
    notified_firing: Vec<String>,
    last_notified_ms: Option<i64>,
    next_flush_ms: i64,
    seq: u64,
    epoch_ms: i64,
}

impl From<&Group> for StoredGroup {
    fn from(g: &Group) -> Self {
        StoredGroup {
            receiver: g.receiver.clone(),
            key: g.key.clone(),
            labels: g.labels.clone(),
            group_wait_ms: ms(g.group_wait),
            group_interval_ms: ms(g.group_interval),
            repeat_interval_ms: ms(g.repeat_interval),
            alerts: g.alerts.iter().cloned().collect(),
            notified_firing: g.notified_firing.iter().cloned().collect(),
            last_notified_ms: g.last_notified.map(Timestamp::unix_millis),
            next_flush_ms: g.next_flush.unix_millis(),
            seq: g.seq,
            epoch_ms: g.epoch.unix_millis(),
        }
    }
}

impl From<StoredGroup> for Group {
    fn from(g: StoredGroup) -> Self {
        Group {
            receiver: g.receiver,
            key: g.key,
            labels: g.labels,
            group_wait: dur(g.group_wait_ms),
            group_interval: dur(g.group_interval_ms),
            repeat_interval: dur(g.repeat_interval_ms),
            alerts: g.alerts.into_iter().collect(),
            notified_firing: g.notified_firing.into_iter().collect(),
            last_notified: g.last_notified_ms.map(ts),
            next_flush: ts(g.next_flush_ms),
            seq: g.seq,
            epoch: ts(g.epoch_ms),
        }
    }
}

/// One row of the alert history.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub fingerprint: String,
    pub slo: String,
    pub severity: String,
    pub alertname: String,
    /// `"firing"` or `"resolved"`.
    pub event: &'static str,
    pub at: Timestamp,
    pub alert: crate::alert::Alert,
}

/// A notification to queue.
#[derive(Debug, Clone)]
pub struct OutboxInsert {
    pub id: String,
    pub receiver: String,
    pub group_key: String,
    /// `"alerts"` or `"report"`.
    pub kind: &'static str,
    pub payload: String,
    pub created_at: Timestamp,
}

impl OutboxInsert {
    pub fn alerts(n: &Notification, now: Timestamp) -> Self {
        OutboxInsert {
            id: n.id.clone(),
            receiver: n.receiver.clone(),
            group_key: n.group_key.clone(),
            kind: "alerts",
            payload: json(n),
            created_at: now,
        }
    }
}

/// Writes waiting for the next commit, snapshotted when the cycle made them (so a commit needs
/// no lock on the alerter): the newest state of each changed alert and group (`None`: delete),
/// history rows and notifications in order.
#[derive(Debug, Default)]
pub struct Pending {
    /// Per fingerprint: the SLO name and the stored state, or `None` to delete.
    pub(crate) alerts: BTreeMap<String, Option<(String, String)>>,
    /// Per group id: the stored state, or `None` to delete.
    pub(crate) groups: BTreeMap<String, Option<String>>,
    pub(crate) history: Vec<HistoryRow>,
    pub(crate) outbox: Vec<OutboxInsert>,
}

impl Pending {
    /// Adds what a cycle of `alerter` changed; its notifications are queued in order.
    pub fn add(&mut self, cycle: &Cycle, alerter: &Alerter, now: Timestamp) {
        for fp in &cycle.changed_alerts {
            if let Some(a) = alerter.alerts.get(fp) {
                let slo = alerter.model().slos[a.slo].name.clone();
                let stored = StoredAlert {
                    fingerprint: a.fingerprint.clone(),
                    slo: slo.clone(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    firing: a.firing,
                    starts_at_ms: a.starts_at.unix_millis(),
                    ends_at_ms: a.ends_at.map(Timestamp::unix_millis),
                    last_active_ms: a.last_active.unix_millis(),
                    detail: a.detail.clone(),
                };
                self.alerts.insert(fp.clone(), Some((slo, json(&stored))));
            }
        }
        for fp in &cycle.removed_alerts {
            self.alerts.insert(fp.clone(), None);
        }
        for id in &cycle.changed_groups {
            if let Some(g) = alerter.dispatcher.groups.get(id) {
                self.groups.insert(id.clone(), Some(json(&StoredGroup::from(g))));
            }
        }
        for id in &cycle.removed_groups {
            self.groups.insert(id.clone(), None);
        }
        for t in &cycle.transitions {
            let label = |k: &str| t.alert.labels.get(k).cloned().unwrap_or_default();
            self.history.push(HistoryRow {
                fingerprint: t.fingerprint.clone(),
                slo: t.alert.detail.slo.clone(),
                severity: label("severity"),
                alertname: label("alertname"),
                event: if t.firing { "firing" } else { "resolved" },
                at: t.at,
                alert: t.alert.clone(),
            });
        }
        self.outbox
            .extend(cycle.notifications.iter().map(|n| OutboxInsert::alerts(n, now)));
    }

    /// Rows waiting.
    pub fn len(&self) -> usize {
        self.alerts.len() + self.groups.len() + self.history.len() + self.outbox.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A queued notification, as the deliverer reads it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub seq: i64,
    pub id: String,
    pub receiver: String,
    pub group_key: String,
    pub kind: String,
    pub payload: String,
    pub created_at: Timestamp,
    pub attempts: i64,
}

/// One line of the notification log.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub seq: i64,
    pub id: String,
    pub receiver: String,
    pub group_key: String,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub done_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// A stored silence as the API shows it.
#[derive(Debug, Clone)]
pub struct StoredSilence {
    pub silence: Silence,
    pub updated_at: Timestamp,
}

/// Queues one notification. The id is the idempotency key: one queued twice is stored once.
async fn queue(tx: &mut sqlx::Transaction<'_, sqlx::Any>, o: &OutboxInsert) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, receiver, group_key, kind, payload, created_at_ms, state, attempts, \
         next_attempt_ms) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&o.id)
    .bind(&o.receiver)
    .bind(&o.group_key)
    .bind(o.kind)
    .bind(&o.payload)
    .bind(o.created_at.unix_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What `load` found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub alerts: Vec<AlertState>,
    pub groups: Vec<Group>,
    pub silences: Vec<Silence>,
    /// Alerts of SLOs the config no longer has: dropped.
    pub dropped_alerts: usize,
}

impl Loaded {
    /// Adds a stored alert state row (as [`Pending`] wrote it); an alert of an SLO not in
    /// `index` (SLO name → index) is counted in `dropped_alerts`.
    pub(crate) fn add_alert(&mut self, state: &str, index: &BTreeMap<&str, usize>) -> Result<(), StoreError> {
        let a: StoredAlert = parse("alert state", state)?;
        let Some(&slo) = index.get(a.slo.as_str()) else {
            self.dropped_alerts += 1;
            return Ok(());
        };
        self.alerts.push(AlertState {
            fingerprint: a.fingerprint,
            slo,
            labels: a.labels,
            annotations: a.annotations,
            firing: a.firing,
            starts_at: ts(a.starts_at_ms),
            ends_at: a.ends_at_ms.map(ts),
            last_active: ts(a.last_active_ms),
            detail: a.detail,
        });
        Ok(())
    }

    /// Adds a stored group row (as [`Pending`] wrote it).
    pub(crate) fn add_group(&mut self, state: &str) -> Result<(), StoreError> {
        let g: StoredGroup = parse("alert group", state)?;
        self.groups.push(g.into());
        Ok(())
    }
}

/// The alerting tables of one database.
#[derive(Debug, Clone)]
pub struct AlertStore {
    pool: AnyPool,
}

impl AlertStore {
    pub fn new(pool: AnyPool) -> Self {
        AlertStore { pool }
    }

    /// Reads alert state, groups and silences for `alerter`'s config.
    pub async fn load(&self, slo_names: &[String]) -> Result<Loaded, StoreError> {
        let index: BTreeMap<&str, usize> = slo_names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut out = Loaded::default();
        for row in sqlx::query("SELECT state FROM alert_state ORDER BY fingerprint")
            .fetch_all(&self.pool)
            .await?
        {
            out.add_alert(row.try_get::<String, _>(0)?.as_str(), &index)?;
        }
        for row in sqlx::query("SELECT state FROM alert_groups ORDER BY id")
            .fetch_all(&self.pool)
            .await?
        {
            out.add_group(row.try_get::<String, _>(0)?.as_str())?;
        }
        out.silences = self.silences().await?.into_iter().map(|s| s.silence).collect();
        Ok(out)
    }

    /// Writes everything pending in one transaction; on success `pending` is emptied, on failure
    /// it is kept whole for the next try.
    pub async fn commit(&self, pending: &mut Pending, now: Timestamp) -> Result<(), StoreError> {
        if pending.is_empty() {
            return Ok(());
        }
        let now_ms = now.unix_millis();
        let mut tx = self.pool.begin().await?;
        for (fp, row) in &pending.alerts {
            match row {
                Some((slo, state)) => {
                    sqlx::query(
                        "INSERT INTO alert_state (fingerprint, slo, state, updated_at_ms) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (fingerprint) DO UPDATE SET slo = excluded.slo, state = excluded.state, \
                         updated_at_ms = excluded.updated_at_ms",
                    )
                    .bind(fp)
                    .bind(slo)
                    .bind(state)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM alert_state WHERE fingerprint = $1")
                        .bind(fp)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        for (id, row) in &pending.groups {
            match row {
                Some(state) => {
                    sqlx::query(
                        "INSERT INTO alert_groups (id, state, updated_at_ms) VALUES ($1, $2, $3) \
                         ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at_ms = excluded.updated_at_ms",
                    )
                    .bind(id)
                    .bind(state)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM alert_groups WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        for h in &pending.history {
            sqlx::query(
                "INSERT INTO alert_history (fingerprint, slo, severity, alertname, event, at_ms, alert) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&h.fingerprint)
            .bind(&h.slo)
            .bind(&h.severity)
            .bind(&h.alertname)
            .bind(h.event)
            .bind(h.at.unix_millis())
            .bind(json(&h.alert))
            .execute(&mut *tx)
            .await?;
        }
        for o in &pending.outbox {
            queue(&mut tx, o).await?;
        }
        tx.commit().await?;
        *pending = Pending::default();
        Ok(())
    }

    /// The notifications due at `now`: for each (receiver, group) only its oldest pending one,
    /// so a group's notifications go out in order.
    pub async fn due(&self, now: Timestamp, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, receiver, group_key, kind, payload, created_at_ms, attempts FROM outbox o \
             WHERE state = 'pending' AND next_attempt_ms <= $1 AND NOT EXISTS ( \
               SELECT 1 FROM outbox p WHERE p.state = 'pending' AND p.receiver = o.receiver \
               AND p.group_key = o.group_key AND p.seq < o.seq) \
             ORDER BY seq LIMIT $2",
        )
        .bind(now.unix_millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(OutboxRow {
                    seq: r.try_get(0)?,
                    id: r.try_get(1)?,
                    receiver: r.try_get(2)?,
                    group_key: r.try_get(3)?,
                    kind: r.try_get(4)?,
                    payload: r.try_get(5)?,
                    created_at: ts(r.try_get(6)?),
                    attempts: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Marks a notification delivered (or given up: `state` = `"given_up"`).
    pub async fn finish(
        &self,
        seq: i64,
        state: &str,
        attempts: i64,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET state = $1, attempts = $2, last_error = $3, done_at_ms = $4 WHERE seq = $5")
            .bind(state)
            .bind(attempts)
            .bind(error)
            .bind(now.unix_millis())
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Schedules the next attempt of a notification.
    pub async fn retry_at(&self, seq: i64, attempts: i64, error: &str, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET attempts = $1, last_error = $2, next_attempt_ms = $3 WHERE seq = $4")
            .bind(attempts)
            .bind(error)
            .bind(at.unix_millis())
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Notifications still pending.
    pub async fn pending_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The notification log, newest first.
    pub async fn log(&self, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, receiver, group_key, kind, state, attempts, created_at_ms, done_at_ms, last_error \
             FROM outbox ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(LogRow {
                    seq: r.try_get(0)?,
                    id: r.try_get(1)?,
                    receiver: r.try_get(2)?,
                    group_key: r.try_get(3)?,
                    kind: r.try_get(4)?,
                    state: r.try_get(5)?,
                    attempts: r.try_get(6)?,
                    created_at: ts(r.try_get(7)?),
                    done_at: r.try_get::<Option<i64>, _>(8)?.map(ts),
                    last_error: r.try_get(9)?,
                })
            })
            .collect()
    }

    /// The alert history since `since`, newest first.
    pub async fn history(&self, since: Timestamp, limit: i64) -> Result<Vec<HistoryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT fingerprint, slo, severity, alertname, event, at_ms, alert FROM alert_history \
             WHERE at_ms >= $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(since.unix_millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let event: String = r.try_get(4)?;
                Ok(HistoryRow {
                    fingerprint: r.try_get(0)?,
                    slo: r.try_get(1)?,
                    severity: r.try_get(2)?,
                    alertname: r.try_get(3)?,
                    event: if event == "firing" { "firing" } else { "resolved" },
                    at: ts(r.try_get(5)?),
                    alert: parse("alert history", r.try_get::<String, _>(6)?.as_str())?,
                })
            })
            .collect()
    }

    pub async fn add_silence(&self, s: &Silence) -> Result<(), StoreError> {
        let matchers: Vec<&str> = s.matchers.iter().map(LabelMatcher::as_str).collect();
        sqlx::query(
            "INSERT INTO silences (id, matchers, starts_at_ms, ends_at_ms, created_by, comment, created_at_ms, \
             updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&s.id)
        .bind(json(&matchers))
        .bind(s.starts_at.unix_millis())
        .bind(s.ends_at.unix_millis())
        .bind(&s.created_by)
        .bind(&s.comment)
        .bind(s.created_at.unix_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a silence now (a pending one never starts). `Ok(false)`: no such silence, or
    /// already expired.
    pub async fn expire_silence(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let n = now.unix_millis();
        let done = sqlx::query(
            "UPDATE silences SET ends_at_ms = $1, starts_at_ms = CASE WHEN starts_at_ms > $1 THEN $1 ELSE starts_at_ms END, \
             updated_at_ms = $1 WHERE id = $2 AND ends_at_ms > $1",
        )
        .bind(n)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every silence, newest first.
    pub async fn silences(&self) -> Result<Vec<StoredSilence>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, matchers, starts_at_ms, ends_at_ms, created_by, comment, created_at_ms, updated_at_ms \
             FROM silences ORDER BY created_at_ms DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let matchers =
                parse::<Vec<String>>("silence matchers", r.try_get::<String, _>(1)?.as_str()).and_then(|texts| {
                    texts
                        .iter()
                        .map(|t| LabelMatcher::parse(t).map_err(|e| StoreError::Invalid(e.to_string())))
                        .collect::<Result<Vec<_>, _>>()
                });
            // One unreadable row must not take the others (or the start-up) with it.
            let matchers = match matchers {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(silence = %id, error = %e, "skipped a stored silence that does not parse");
                    continue;
                }
            };
            out.push(StoredSilence {
                silence: Silence {
                    id,
                    matchers,
                    starts_at: ts(r.try_get(2)?),
                    ends_at: ts(r.try_get(3)?),
                    created_by: r.try_get(4)?,
                    comment: r.try_get(5)?,
                    created_at: ts(r.try_get(6)?),
                },
                updated_at: ts(r.try_get(7)?),
            });
        }
        Ok(out)
    }

    /// Deletes delivered and given-up notifications and alert history older than `before`.
    pub async fn prune(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let a = sqlx::query("DELETE FROM outbox WHERE state <> 'pending' AND done_at_ms < $1")
            .bind(before.unix_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM alert_history WHERE at_ms < $1")
            .bind(before.unix_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(a + b)
    }

    /// When report `name` last ran.
    pub async fn report_last_run(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        let row = sqlx::query("SELECT last_run_ms FROM report_runs WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(ts(r.try_get(0)?)),
            None => None,
        })
    }

    /// Remembers the first time a report is seen (its first run is the next scheduled instant
    /// after it); a report seen before keeps its last run.
    pub async fn report_seen(&self, name: &str, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO report_runs (name, last_run_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(at.unix_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a report run and queues its notification in one transaction.
    pub async fn report_ran(&self, name: &str, at: Timestamp, row: &OutboxInsert) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO report_runs (name, last_run_ms) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET last_run_ms = excluded.last_run_ms",
        )
        .bind(name)
        .bind(at.unix_millis())
        .execute(&mut *tx)
        .await?;
        queue(&mut tx, row).await?;
        tx.commit().await?;
        Ok(())
    }
}
