//! [`MemoryStore`]: the alert state, history, outbox and report runs kept in memory, for a
//! runtime whose state ends with the process (`replay`). Nothing is delivered from it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use slis::Timestamp;

use super::StateStore;
use crate::mute::Silence;
use crate::store::{HistoryRow, Loaded, OutboxInsert, Pending, StoreError};

/// What [`AlertStore`](crate::store::AlertStore) would hold, in memory. Its futures never wait.
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<Tables>);

#[derive(Debug, Default)]
struct Tables {
    /// Per fingerprint: the SLO name and the stored state.
    alerts: BTreeMap<String, (String, String)>,
    /// Per group id: the stored state.
    groups: BTreeMap<String, String>,
    /// Oldest first.
    history: Vec<HistoryRow>,
    /// Oldest first; an id is queued once.
    outbox: Vec<OutboxInsert>,
    outbox_ids: HashSet<String>,
    silences: Vec<Silence>,
    /// When each report last ran.
    report_runs: BTreeMap<String, Timestamp>,
}

impl Tables {
    fn queue(&mut self, row: OutboxInsert) {
        if self.outbox_ids.insert(row.id.clone()) {
            self.outbox.push(row);
        }
    }
}

impl MemoryStore {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.0.lock().expect("memory store lock poisoned")
    }

    /// Stores a silence, as the API does.
    pub fn add_silence(&self, silence: Silence) {
        self.tables().silences.push(silence);
    }

    /// Everything queued for delivery, oldest first.
    pub fn outbox(&self) -> Vec<OutboxInsert> {
        self.tables().outbox.clone()
    }
}

impl StateStore for MemoryStore {
    async fn load(&self, slo_names: &[String]) -> Result<Loaded, StoreError> {
        let index: BTreeMap<&str, usize> = slo_names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let t = self.tables();
        let mut out = Loaded::default();
        for (_, state) in t.alerts.values() {
            out.add_alert(state, &index)?;
        }
        for state in t.groups.values() {
            out.add_group(state)?;
        }
        out.silences = newest_first(&t.silences);
        Ok(out)
    }

    async fn commit(&self, pending: &mut Pending, _now: Timestamp) -> Result<(), StoreError> {
        let Pending {
            alerts,
            groups,
            history,
            outbox,
        } = std::mem::take(pending);
        let mut t = self.tables();
        for (fp, row) in alerts {
            match row {
                Some(row) => t.alerts.insert(fp, row),
                None => t.alerts.remove(&fp),
            };
        }
        for (id, row) in groups {
            match row {
                Some(row) => t.groups.insert(id, row),
                None => t.groups.remove(&id),
            };
        }
        t.history.extend(history);
        for row in outbox {
            t.queue(row);
        }
        Ok(())
    }

    async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        Ok(newest_first(&self.tables().silences))
    }

    async fn history(&self, since: Timestamp, limit: i64) -> Result<Vec<HistoryRow>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let t = self.tables();
        Ok(t.history
            .iter()
            .rev()
            .filter(|h| h.at >= since)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn report_last_run(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.tables().report_runs.get(name).copied())
    }

    async fn report_seen(&self, name: &str, at: Timestamp) -> Result<(), StoreError> {
        self.tables().report_runs.entry(name.to_owned()).or_insert(at);
        Ok(())
    }

    async fn report_ran(&self, name: &str, at: Timestamp, row: &OutboxInsert) -> Result<(), StoreError> {
        let mut t = self.tables();
        t.report_runs.insert(name.to_owned(), at);
        t.queue(row.clone());
        Ok(())
    }

    /// Drops the history older than `before` (nothing is delivered, so the outbox stays).
    async fn prune(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut t = self.tables();
        let n = t.history.len();
        t.history.retain(|h| h.at >= before);
        Ok((n - t.history.len()) as u64)
    }
}

/// `silences` ordered as the database orders them: newest first, then by id.
fn newest_first(silences: &[Silence]) -> Vec<Silence> {
    let mut out = silences.to_vec();
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
    out
}
