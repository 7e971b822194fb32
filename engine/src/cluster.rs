//! Several `serve` instances on one PostgreSQL database (issue 7): PostgreSQL session advisory
//! locks, each held by a connection of its own, decide who evaluates ([`Leader`]) and who
//! consumes which stream partition ([`PartitionLocks`]). A lock lives exactly as long as its
//! session: an instance that dies (even `kill -9`) closes its socket, the server ends the
//! session and the lock is free for the next attempt of another instance.
//!
//! On SQLite there is one instance: [`Leader::always`] leads and no partition is locked.
//!
//! Keys: the evaluator lock is the 64-bit key [`lock_key`]`("tracebudget-evaluator")`; a
//! partition lock is the pair (`lock_key(stream)` folded to 32 bits, partition). PostgreSQL keeps
//! the one-`bigint` and two-`int4` key spaces apart, so the two kinds never collide.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The name the evaluator lock's key is derived from.
pub const EVALUATOR_LOCK: &str = "tracebudget-evaluator";

/// How long one lock query (or connecting) may take before the session counts as lost.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A stable 64-bit advisory lock key for a name (FNV-1a), the same in every instance and version.
pub fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// The first key of a stream's partition locks: [`lock_key`] folded to 32 bits.
pub fn stream_key(stream: &str) -> i32 {
    let k = lock_key(stream) as u64;
    ((k >> 32) ^ (k & 0xffff_ffff)) as u32 as i32
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what}: {source}")]
    Db {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what}: no answer within {QUERY_TIMEOUT:?}")]
    Timeout { what: &'static str },
}

/// A dedicated PostgreSQL connection whose session holds advisory locks. Any failure drops the
/// connection (the server then ends the session and frees its locks), so a holder never
/// believes it holds a lock its session lost.
#[derive(Debug)]
pub struct LockSession {
    options: PgConnectOptions,
    conn: Option<PgConnection>,
}

impl LockSession {
    /// A session on `url` (a `postgres://` URL); it connects on first use.
    pub fn new(url: &str) -> Result<Self, LockError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|source| LockError::Db {
                what: "parse the database url",
                source,
            })?
            .disable_statement_logging()
            .application_name("tracebudget-locks");
        Ok(LockSession { options, conn: None })
    }

    /// Whether a connection is open (it may still turn out dead at the next query).
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Closes the connection: every lock of the session is released.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Closes the connection politely (the server ends the session at once).
    pub async fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = tokio::time::timeout(QUERY_TIMEOUT, c.close()).await;
        }
    }

    async fn run<T>(
        &mut self,
        what: &'static str,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, LockError> {
        if self.conn.is_none() {
            let conn = tokio::time::timeout(QUERY_TIMEOUT, self.options.connect())
                .await
                .map_err(|_| LockError::Timeout { what: "connect" })?
                .map_err(|source| LockError::Db {
                    what: "connect",
                    source,
                })?;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let result = match tokio::time::timeout(QUERY_TIMEOUT, f(conn)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(source)) => LockError::Db { what, source },
            Err(_) => LockError::Timeout { what },
        };
        self.conn = None;
        Err(result)
    }

    /// `pg_try_advisory_lock(key)`: true when this session holds it now (also when it already did).
    pub async fn try_lock(&mut self, key: i64) -> Result<bool, LockError> {
        self.run("try the lock", async |c| {
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(c)
                .await
        })
        .await
    }

    /// `pg_try_advisory_lock(k1, k2)`.
    pub async fn try_lock_pair(&mut self, k1: i32, k2: i32) -> Result<bool, LockError> {
        self.run("try a partition lock", async |c| {
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
                .bind(k1)
                .bind(k2)
                .fetch_one(c)
                .await
        })
        .await
    }

    /// `pg_advisory_unlock(k1, k2)`: true when the session held it.
    pub async fn unlock_pair(&mut self, k1: i32, k2: i32) -> Result<bool, LockError> {
        self.run("release a partition lock", async |c| {
            sqlx::query_scalar("SELECT pg_advisory_unlock($1, $2)")
                .bind(k1)
                .bind(k2)
                .fetch_one(c)
                .await
        })
        .await
    }

    /// The second keys of every advisory lock held (by any session) whose first key is `k1`:
    /// read from `pg_locks`, nothing is locked.
    pub async fn held_pairs(&mut self, k1: i32) -> Result<BTreeSet<u32>, LockError> {
        let rows: Vec<i64> = self
            .run("read the advisory locks", async |c| {
                sqlx::query_scalar(
                    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 \
                     AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     AND classid::bigint = $1",
                )
                .bind(i64::from(k1 as u32))
                .fetch_all(c)
                .await
            })
            .await?;
        Ok(rows.into_iter().filter_map(|p| u32::try_from(p).ok()).collect())
    }

    /// Whether the session is still there (so its locks are held): a round trip.
    pub async fn alive(&mut self) -> bool {
        if self.conn.is_none() {
            return false;
        }
        self.run("check the lock session", async |c| c.ping().await)
            .await
            .is_ok()
    }
}

/// What one [`Leader::poll`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leading {
    /// This instance took the lock now: restore the alert state, then evaluate.
    Became,
    /// Still the leader.
    Still,
    /// The lock session is gone: stop evaluating and delivering.
    Lost,
    /// Another instance leads (or the database cannot be reached).
    Standby,
}

impl Leading {
    pub fn leads(self) -> bool {
        matches!(self, Leading::Became | Leading::Still)
    }
}

/// The evaluator lock: exactly one instance on a PostgreSQL database evaluates and delivers.
#[derive(Debug)]
pub struct Leader {
    /// `None`: SQLite, one instance, always the leader.
    session: Option<LockSession>,
    key: i64,
    leading: bool,
    metrics: ClusterMetrics,
}

impl Leader {
    /// The only instance (SQLite): always leads.
    pub fn always(metrics: ClusterMetrics) -> Self {
        metrics.leader.set(1);
        Leader {
            session: None,
            key: lock_key(EVALUATOR_LOCK),
            leading: true,
            metrics,
        }
    }

    /// Competes for the evaluator lock of the PostgreSQL database at `url`.
    pub fn postgres(url: &str, metrics: ClusterMetrics) -> Result<Self, LockError> {
        metrics.leader.set(0);
        Ok(Leader {
            session: Some(LockSession::new(url)?),
            key: lock_key(EVALUATOR_LOCK),
            leading: false,
            metrics,
        })
    }

    /// Whether this instance competes through PostgreSQL (false: always the leader).
    pub fn shared(&self) -> bool {
        self.session.is_some()
    }

    pub fn leads(&self) -> bool {
        self.leading
    }

    /// The leader checks that its lock session is alive; a standby tries to take the lock.
    pub async fn poll(&mut self) -> Leading {
        let Some(session) = &mut self.session else {
            return Leading::Still;
        };
        let now = if self.leading {
            if session.alive().await {
                Leading::Still
            } else {
                tracing::warn!("lost the evaluator lock session: standing down");
                Leading::Lost
            }
        } else {
            match session.try_lock(self.key).await {
                Ok(true) => {
                    tracing::info!("took the evaluator lock: leading");
                    Leading::Became
                }
                Ok(false) => Leading::Standby,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot try the evaluator lock; retrying");
                    Leading::Standby
                }
            }
        };
        let leads = now.leads();
        if leads != self.leading {
            let to = if leads { "leader" } else { "standby" };
            self.metrics.leadership_changes.get_or_create(&ToLabels { to }).inc();
            self.metrics.leader.set(i64::from(leads));
        }
        self.leading = leads;
        now
    }

    /// Gives the lock up (at shutdown), so a standby takes over at its next attempt.
    pub async fn resign(&mut self) {
        if let Some(s) = &mut self.session {
            s.close().await;
        }
        if self.session.is_some() && self.leading {
            self.leading = false;
            self.metrics.leader.set(0);
        }
    }
}

/// The stream partitions this instance consumes, held as PostgreSQL advisory locks. See
/// [`PartitionLocks::spawn`].
#[derive(Debug, Clone)]
pub struct PartitionLocks {
    owned: watch::Receiver<BTreeSet<u32>>,
}

impl PartitionLocks {
    /// Holds partition locks of `stream` (`0..partitions`) on a connection of its own until
    /// `stop`: the `preferred` ones at once, then, every `poll`, any partition nobody holds (so
    /// instances starting together get their preferred ones first, and a dead instance's
    /// partitions are taken within one `poll`). Each poll also
    /// checks the session; when it is lost the owned set empties at once and is taken again
    /// from scratch. The owned set is published on the watch channel.
    pub fn spawn(
        url: &str,
        stream: &str,
        partitions: u32,
        preferred: &[u32],
        poll: Duration,
        metrics: ClusterMetrics,
        stop: CancellationToken,
    ) -> Result<(PartitionLocks, tokio::task::JoinHandle<()>), LockError> {
        let mut session = LockSession::new(url)?;
        let key = stream_key(stream);
        let preferred: BTreeSet<u32> = preferred.iter().copied().filter(|&p| p < partitions).collect();
        let (tx, rx) = watch::channel(BTreeSet::new());
        let stream = stream.to_owned();
        let task = tokio::spawn(async move {
            let mut owned = BTreeSet::new();
            // The first poll takes only the preferred partitions: instances starting together
            // each get their own before anyone takes what is left.
            let mut first = true;
            loop {
                if !owned.is_empty() && !session.alive().await {
                    tracing::warn!(%stream, partitions = ?owned, "lost the partition lock session");
                    owned.clear();
                }
                // Who holds what, read from pg_locks without touching any lock.
                let held = match session.held_pairs(key).await {
                    Ok(held) => held,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the partition locks");
                        BTreeSet::new()
                    }
                };
                if session.connected() {
                    for p in (0..partitions).filter(|p| !held.contains(p)) {
                        if first && !preferred.contains(&p) {
                            continue;
                        }
                        match session.try_lock_pair(key, p as i32).await {
                            Ok(true) => {
                                tracing::info!(%stream, partition = p, "took a partition");
                                owned.insert(p);
                            }
                            // Taken by another instance since the read.
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot try a partition lock");
                                break;
                            }
                        }
                    }
                }
                if !session.connected() {
                    owned.clear();
                }
                first = false;
                metrics.partitions_owned.set(owned.len() as i64);
                tx.send_if_modified(|current| {
                    let changed = *current != owned;
                    if changed {
                        current.clone_from(&owned);
                    }
                    changed
                });
                if stop.run_until_cancelled(tokio::time::sleep(poll)).await.is_none() {
                    break;
                }
            }
            session.close().await;
            metrics.partitions_owned.set(0);
            tx.send_replace(BTreeSet::new());
        });
        Ok((PartitionLocks { owned: rx }, task))
    }

    /// The partitions held now, and every change (the consumer starts and stops partition
    /// consumers from it).
    pub fn subscribe(&self) -> watch::Receiver<BTreeSet<u32>> {
        self.owned.clone()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToLabels {
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// `tracebudget_cluster_…`: leadership, partitions, and reading the other instances' rows.
#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    pub leader: Gauge,
    pub leadership_changes: Family<ToLabels, Counter>,
    pub partitions_owned: Gauge,
    pub others_reads: Family<OutcomeLabels, Counter>,
    pub others_read_seconds: Histogram,
    pub others_rows: Gauge,
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        ClusterMetrics {
            leader: Gauge::default(),
            leadership_changes: Family::default(),
            partitions_owned: Gauge::default(),
            others_reads: Family::default(),
            others_read_seconds: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            others_rows: Gauge::default(),
        }
    }
}

impl ClusterMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("cluster");
        r.register(
            "leader",
            "1 while this instance runs the evaluator and the deliverer (always on SQLite)",
            self.leader.clone(),
        );
        r.register(
            "leadership_changes",
            "Times this instance became leader or stood down",
            self.leadership_changes.clone(),
        );
        for to in ["leader", "standby"] {
            let _ = self.leadership_changes.get_or_create(&ToLabels { to });
        }
        r.register(
            "partitions_owned",
            "Stream partitions this instance holds the lock of",
            self.partitions_owned.clone(),
        );
        r.register(
            "others_reads",
            "Reads of the other instances' rows for merged evaluation, per outcome (none: no other instance has rows)",
            self.others_reads.clone(),
        );
        for outcome in ["ok", "none", "failed"] {
            let _ = self.others_reads.get_or_create(&OutcomeLabels { outcome });
        }
        r.register(
            "others_read_duration_seconds",
            "Time to read the other instances' rows into windows",
            self.others_read_seconds.clone(),
        );
        r.register(
            "others_rows",
            "Rows of the other instances read by the last read",
            self.others_rows.clone(),
        );
    }
}

#[cfg(test)]
mod tests;
